//! The auto-trust agent (feature `matrix-sdk`): makes a citizen's matrix-sdk
//! 0.18 client trust an agency's attested devices without manual
//! verification, shows who they are, and withdraws that trust on
//! revocation, expiry or a key change.
//!
//! ```no_run
//! # async fn run(client: matrix_sdk::Client, root_pem: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! use govtrust_agent::{AgentConfig, AutoTrustAgent};
//! use govtrust_verifier::TrustAnchors;
//!
//! // `client` is logged in, with end-to-end encryption; the app syncs it.
//! let config = AgentConfig::new(TrustAnchors::from_pem(root_pem)?, "govtrust-agent.json");
//! let agent = AutoTrustAgent::start(client.clone(), config).await?;
//! let mut decisions = agent.subscribe();
//! tokio::spawn(async move {
//!     while let Ok(decision) = decisions.recv().await {
//!         println!("{decision}"); // e.g. show decision.badge() next to the sender
//!     }
//! });
//! # Ok(()) }
//! ```
//!
//! What it does, for every user whose devices the client's crypto store
//! knows (the users it shares encrypted rooms with, and users passed to
//! [`AutoTrustAgent::check_user`]):
//!
//! - finds the `io.govtrust.attestation` state events for each device
//!   (`device|<user>|<device>`) and for the user's cross-signing identity
//!   (`identity|<user>`) in the rooms the client is in and in the directory
//!   rooms (read without joining; they are world-readable);
//! - verifies each against the key the client's **own crypto store** holds
//!   for that device or identity, the pinned roots and fresh CRLs fetched
//!   from the certificates' distribution points;
//! - sets local trust `Verified` on attested devices, and — for an attested
//!   identity — either signs the master key with the citizen's
//!   user-signing key (opt-in, [`AgentConfig::sign_identities`]) or trusts
//!   locally each device that identity's self-signing key signed;
//! - on revocation, expiry, a missing attestation or a key change,
//!   withdraws exactly what it set (recorded in its own store), and never
//!   changes trust it did not set;
//! - broadcasts a [`TrustDecision`] whenever a verdict or what it did
//!   changes.
//!
//! It re-checks a user when the sync brings an attestation or membership
//! event or the crypto store reports new or changed devices or identities,
//! and everybody every [`AgentConfig::refresh_interval`], when an accepted
//! certificate expires, and when a cached CRL is due.

mod crls;
mod error;
mod plan;
mod store;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use matrix_sdk::deserialized_responses::RawAnySyncOrStrippedState;
use matrix_sdk::encryption::identities::{Device, UserIdentity};
use matrix_sdk::encryption::LocalTrust;
use matrix_sdk::event_handler::EventHandlerHandle;
use matrix_sdk::ruma::api::client::state::get_state_event_for_key;
use matrix_sdk::ruma::api::error::ErrorKind;
use matrix_sdk::ruma::events::{AnySyncStateEvent, StateEventType};
use matrix_sdk::ruma::serde::Raw;
use matrix_sdk::ruma::{
    OwnedDeviceId, OwnedRoomAliasId, OwnedRoomId, OwnedUserId, RoomId, UserId as RumaUserId,
};
use matrix_sdk::{Client, RoomState};
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc, Mutex};
use tokio::task::JoinHandle;

use self::crls::CrlCache;
pub use self::crls::{
    distribution_points, CrlFetcher, HttpCrlFetcher, CRL_FETCH_TIMEOUT, MAX_CRL_BYTES,
};
pub use self::error::AgentError;
use self::plan::{plan, Desired, RecordOp};
use self::store::{DeviceRecord, IdentityRecord, Reason, Store};
use govtrust_verifier::event::{state_key, AttestationContent, EVENT_TYPE};
use govtrust_verifier::{
    AuthorityRecord, CrlPolicy, DeviceId, Ed25519Key, Error, Expected, PathPosition, Subject,
    TrustAnchors, UserId, VerifiedAttestation, Verifier,
};

/// Localpart of the directory room alias the govtrust service creates on
/// each homeserver (`#govtrust-directory:<server>`).
pub const DEFAULT_DIRECTORY_ALIAS_LOCALPART: &str = "govtrust-directory";
/// Capacity of the decision broadcast: a subscriber that falls further
/// behind gets `RecvError::Lagged` and can re-read [`AutoTrustAgent::decisions`].
const DECISION_BUFFER: usize = 1024;
/// Shortest pause between two background wake-ups.
const MIN_WAKE: Duration = Duration::from_secs(1);
/// Largest Matrix event (the spec's limit), for reading the directory.
const MAX_EVENT_BYTES: usize = 65_536;
/// How long a directory alias stays resolved (seconds); a read error
/// resolves it again sooner.
const DIRECTORY_TTL: i64 = 3600;
/// Coalescing window for bursts of sync triggers.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// A room where attestations are looked up without joining it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DirectoryRoom {
    /// `#govtrust-directory:<the client's own homeserver>`: where the
    /// service publishes attestations of the agencies on that homeserver.
    OwnServer,
    /// A room by alias.
    Alias(OwnedRoomAliasId),
    /// A room by ID.
    Id(OwnedRoomId),
}

/// What the agent does to a device whose trust it set, when its
/// attestation is revoked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RevocationAction {
    /// Block it (local trust `BlackListed`): a revoked key gets no more room
    /// keys from this client under the `AllDevices` (matrix-sdk's default),
    /// `ErrorOnVerifiedUserProblem` and `OnlyTrustedDevices` sharing
    /// strategies, where an `Unset` device would still get them under the
    /// first two. (`IdentityBasedStrategy` ignores local trust; see
    /// docs/client.md.) The agent records the block as its own and lifts it
    /// if a valid attestation appears again.
    #[default]
    BlackList,
    /// Only withdraw the trust (local trust `Unset`), as on expiry.
    Unset,
}

/// How the agent is set up. [`AgentConfig::new`] gives the production
/// defaults; the fields say what each changes.
pub struct AgentConfig {
    /// The pinned government root(s).
    pub anchors: TrustAnchors,
    /// What is demanded of revocation information; the default requires a
    /// CRL within its nextUpdate for every certificate on the path.
    pub crl_policy: CrlPolicy,
    /// Rooms read (without joining) for attestations, in addition to the
    /// joined rooms. Default: the client's own homeserver's directory.
    pub directory_rooms: Vec<DirectoryRoom>,
    /// Also look for attestations in every room the client is in (read
    /// from the local state store, updated by sync). Default: on.
    pub scan_joined_rooms: bool,
    /// If not empty, only attestation events sent by these accounts (the
    /// service's bot) are considered. The verdict rests on the certificate
    /// chain either way; this keeps other room members from planting
    /// events (such as a fake `revoked` marker) that make trust flap.
    pub publishers: Vec<OwnedUserId>,
    /// For an attested identity, sign its master key with the citizen's
    /// user-signing key (`UserIdentity::verify`), so the trust reaches all
    /// of the citizen's devices and counts for identity-based room-key
    /// sharing. **Matrix cannot take such a signature back**: on a later
    /// revocation the agent can only block the agency's devices locally.
    /// Off by default; without cross-signing on the citizen's side the
    /// agent falls back to local trust per device either way.
    pub sign_identities: bool,
    /// The agent's own store: what trust it set (a small JSON file; keep it
    /// with the client's other stores).
    pub store_path: PathBuf,
    /// Where CRLs come from. `None`: HTTPS with the pinned roots as the
    /// only TLS roots ([`HttpCrlFetcher::with_tls_roots`]), which fits the
    /// service's own TLS certificate.
    pub crl_fetcher: Option<Arc<dyn CrlFetcher>>,
    /// Every user is re-checked at least this often (attestations in
    /// directory rooms are not pushed by sync). Default: 10 minutes.
    pub refresh_interval: Duration,
    /// A CRL is re-fetched at its nextUpdate, or this long after it was
    /// fetched if that is sooner, so that a revocation takes effect within
    /// this interval. Default: 1 hour.
    pub crl_refresh_interval: Duration,
    /// What to do on revocation to a device the agent trusted.
    pub on_revoked: RevocationAction,
}

impl AgentConfig {
    /// Production defaults for `anchors`, storing the agent's records at
    /// `store_path`.
    pub fn new(anchors: TrustAnchors, store_path: impl Into<PathBuf>) -> Self {
        AgentConfig {
            anchors,
            crl_policy: CrlPolicy::REQUIRE_FRESH,
            directory_rooms: vec![DirectoryRoom::OwnServer],
            scan_joined_rooms: true,
            publishers: Vec::new(),
            sign_identities: false,
            store_path: store_path.into(),
            crl_fetcher: None,
            refresh_interval: Duration::from_secs(600),
            crl_refresh_interval: Duration::from_secs(3600),
            on_revoked: RevocationAction::BlackList,
        }
    }
}

impl fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentConfig")
            .field("roots", &self.anchors.roots().count())
            .field("crl_policy", &self.crl_policy)
            .field("directory_rooms", &self.directory_rooms)
            .field("scan_joined_rooms", &self.scan_joined_rooms)
            .field("publishers", &self.publishers)
            .field("sign_identities", &self.sign_identities)
            .field("store_path", &self.store_path)
            .field("crl_fetcher", &self.crl_fetcher.as_ref().map(|_| "custom"))
            .field("refresh_interval", &self.refresh_interval)
            .field("crl_refresh_interval", &self.crl_refresh_interval)
            .field("on_revoked", &self.on_revoked)
            .finish()
    }
}

/// What the attestations say about a device or identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Attested: the authority record to show. For a device trusted through
    /// its identity, this is the identity's attestation
    /// (`subject == Subject::Identity`).
    Verified(Box<VerifiedAttestation>),
    /// An attestation was found and rejected, for this reason (revocation,
    /// expiry, a key that is not the one in the crypto store, ...).
    Rejected(Error),
    /// No attestation was found.
    NotAttested,
}

impl Verdict {
    /// The stable reason code of a rejection ([`Error::code`]).
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Verdict::Rejected(e) => Some(e.code()),
            _ => None,
        }
    }

    fn summary(&self) -> String {
        match self {
            Verdict::Verified(att) => format!("verified:{}", att.serial),
            Verdict::Rejected(e) => format!("rejected:{}", e.code()),
            Verdict::NotAttested => "none".to_owned(),
        }
    }
}

/// The state the agent leaves a device or identity in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustAction {
    /// The agent set the device's local trust to `Verified`.
    Trusted,
    /// (Identity) The agent signed the master key with the citizen's
    /// user-signing key; the identity's self-signed devices are verified
    /// through cross-signing.
    SignedIdentity,
    /// (Device) Verified through cross-signing from a signed, attested
    /// identity; the agent sets nothing on the device itself.
    ViaSignedIdentity,
    /// The trust was set by somebody else (the user verified by hand,
    /// blocked or ignored it); the agent does not touch it.
    LeftAlone {
        /// The device's local trust (`Verified` for an identity the user
        /// verified themselves).
        local_trust: LocalTrust,
    },
    /// The agent withdrew the trust it had set (local trust `Unset`).
    Withdrawn,
    /// The agent blocked the device (local trust `BlackListed`).
    Blocked,
    /// Nothing to set and nothing to withdraw.
    NoChange,
}

/// One decision of the agent, as it happens.
#[derive(Clone, Debug)]
pub struct TrustDecision {
    /// The user the decision is about.
    pub user_id: OwnedUserId,
    /// The device, or `None` for the user's cross-signing identity.
    pub device_id: Option<OwnedDeviceId>,
    /// What the attestations say.
    pub verdict: Verdict,
    /// What the agent did about it (or the state it left).
    pub action: TrustAction,
    /// Something the user should be told beyond the verdict (e.g. that a
    /// cross-signing signature made earlier cannot be withdrawn).
    pub warning: Option<String>,
    /// When the decision was made.
    pub at: SystemTime,
}

impl TrustDecision {
    /// The verified authority record, if attested.
    pub fn authority(&self) -> Option<&AuthorityRecord> {
        match &self.verdict {
            Verdict::Verified(att) => Some(&att.authority),
            _ => None,
        }
    }

    /// Whether the device or identity ends up trusted because of the
    /// government PKI (by the agent's doing, now or earlier).
    pub fn is_trusted(&self) -> bool {
        matches!(self.verdict, Verdict::Verified(_))
            && matches!(
                self.action,
                TrustAction::Trusted | TrustAction::SignedIdentity | TrustAction::ViaSignedIdentity
            )
    }

    /// The line an app shows next to the account: `Registration Office
    /// Berlin, Donaustraße 29, 12043 Berlin — verified by the government
    /// PKI`. `None` unless attested.
    pub fn badge(&self) -> Option<String> {
        self.authority()
            .map(|a| format!("{a} — verified by the government PKI"))
    }

    fn key(&self) -> (OwnedUserId, Option<OwnedDeviceId>) {
        (self.user_id.clone(), self.device_id.clone())
    }
}

impl fmt::Display for TrustDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.user_id)?;
        match &self.device_id {
            Some(d) => write!(f, " device {d}")?,
            None => f.write_str(" identity")?,
        }
        match &self.verdict {
            Verdict::Verified(att) => write!(
                f,
                ": {} — verified by the government PKI [{}] (serial {})",
                att.authority, att.authority.id, att.serial
            )?,
            Verdict::Rejected(e) => write!(f, ": not trusted ({}): {e}", e.code())?,
            Verdict::NotAttested => f.write_str(": no attestation")?,
        }
        write!(f, "; {:?}", self.action)?;
        if let Some(w) = &self.warning {
            write!(f, "; WARNING: {w}")?;
        }
        Ok(())
    }
}

/// The agent. Start one per logged-in client with [`AutoTrustAgent::start`];
/// dropping it stops it (what it set stays, recorded in its store, and is
/// re-checked on the next start).
pub struct AutoTrustAgent {
    inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
    handlers: Vec<EventHandlerHandle>,
}

impl fmt::Debug for AutoTrustAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutoTrustAgent")
            .field("user", &self.inner.own_user)
            .finish_non_exhaustive()
    }
}

struct Settings {
    directory_rooms: Vec<DirectoryRoom>,
    scan_joined_rooms: bool,
    publishers: Vec<OwnedUserId>,
    sign_identities: bool,
    refresh_interval: Duration,
    on_revoked: RevocationAction,
}

struct Inner {
    client: Client,
    own_user: OwnedUserId,
    strict: Verifier,
    /// Same roots, CRLs not required: the first pass that proves a chain
    /// genuine before its distribution points are contacted.
    lenient: Verifier,
    settings: Settings,
    state: Mutex<EvalState>,
    last: StdMutex<HashMap<(OwnedUserId, Option<OwnedDeviceId>), TrustDecision>>,
    decisions: broadcast::Sender<TrustDecision>,
}

struct EvalState {
    store: Store,
    crls: CrlCache,
    /// Directory rooms resolved to IDs (`None`: the alias does not exist),
    /// with the time of resolution (see [`DIRECTORY_TTL`]).
    directories: HashMap<DirectoryRoom, (Option<OwnedRoomId>, i64)>,
    /// notAfter of each accepted attestation, to re-check at expiry.
    expiries: HashMap<(OwnedUserId, Option<OwnedDeviceId>), i64>,
}

impl AutoTrustAgent {
    /// Starts the agent on a logged-in client with end-to-end encryption.
    ///
    /// The agent does not sync: the app keeps syncing the client as usual,
    /// and the agent reacts to what the sync brings. A first check of every
    /// known user starts at once in the background.
    pub async fn start(client: Client, config: AgentConfig) -> Result<Self, AgentError> {
        let own_user = client.user_id().ok_or(AgentError::NotReady)?.to_owned();
        let own_device = client.device_id().ok_or(AgentError::NotReady)?.to_owned();
        let encryption = client.encryption();
        let devices = encryption
            .devices_stream()
            .await
            .map_err(|_| AgentError::NotReady)?;
        let identities = encryption
            .user_identities_stream()
            .await
            .map_err(|_| AgentError::NotReady)?;

        let roots: Vec<CertificateDer<'static>> = config.anchors.roots().cloned().collect();
        let lenient = Verifier::new(
            TrustAnchors::from_der(roots.clone())?,
            CrlPolicy::ALLOW_MISSING,
        );
        let fetcher: Arc<dyn CrlFetcher> = match config.crl_fetcher {
            Some(f) => f,
            None => Arc::new(HttpCrlFetcher::with_tls_roots(&roots)?),
        };
        let store = Store::open(&config.store_path, &format!("{own_user}|{own_device}"))?;
        let state = EvalState {
            store,
            crls: CrlCache::new(fetcher, config.crl_refresh_interval, config.crl_policy),
            directories: HashMap::new(),
            expiries: HashMap::new(),
        };
        let (decisions, _) = broadcast::channel(DECISION_BUFFER);
        let inner = Arc::new(Inner {
            client: client.clone(),
            own_user,
            strict: Verifier::new(config.anchors, config.crl_policy),
            lenient,
            settings: Settings {
                directory_rooms: config.directory_rooms,
                scan_joined_rooms: config.scan_joined_rooms,
                publishers: config.publishers,
                sign_identities: config.sign_identities,
                refresh_interval: config.refresh_interval.max(MIN_WAKE),
                on_revoked: config.on_revoked,
            },
            state: Mutex::new(state),
            last: StdMutex::new(HashMap::new()),
            decisions,
        });

        let (tx, rx) = mpsc::unbounded_channel();
        let mut handlers = Vec::new();
        let state_tx = tx.clone();
        handlers.push(
            client.add_event_handler(move |raw: Raw<AnySyncStateEvent>| {
                let tx = state_tx.clone();
                async move {
                    if let Some(user) = affected_user(&raw) {
                        let _ = tx.send(user);
                    }
                }
            }),
        );

        let mut tasks = Vec::new();
        let device_tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut devices = Box::pin(devices);
            while let Some(update) = devices.next().await {
                for user in update.new.keys().chain(update.changed.keys()) {
                    let _ = device_tx.send(user.clone());
                }
            }
        }));
        let identity_tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut identities = Box::pin(identities);
            while let Some(update) = identities.next().await {
                for user in update.new.keys().chain(update.changed.keys()) {
                    let _ = identity_tx.send(user.clone());
                }
            }
        }));
        tasks.push(tokio::spawn(worker(inner.clone(), rx)));

        Ok(AutoTrustAgent {
            inner,
            tasks,
            handlers,
        })
    }

    /// Decisions as they happen: each time a verdict, or what the agent
    /// did, changes for a device or identity.
    pub fn subscribe(&self) -> broadcast::Receiver<TrustDecision> {
        self.inner.decisions.subscribe()
    }

    /// The latest decision for every device and identity the agent has an
    /// opinion on (for a UI that starts after the events).
    pub fn decisions(&self) -> Vec<TrustDecision> {
        self.inner
            .last
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The latest decision for one device (`Some(device)`) or identity
    /// (`None`).
    pub fn decision_for(
        &self,
        user: &RumaUserId,
        device: Option<&matrix_sdk::ruma::DeviceId>,
    ) -> Option<TrustDecision> {
        let key = (user.to_owned(), device.map(ToOwned::to_owned));
        self.inner.last.lock().ok()?.get(&key).cloned()
    }

    /// Waits until the decision about one device (`Some(device)`) or
    /// identity (`None`) satisfies `want`, and returns it; `None` after
    /// `timeout`. For a UI step ("wait until the agency's device is
    /// verified") and for tests: the latest decision counts too, so a
    /// decision made before the call is not missed.
    pub async fn wait_for_decision(
        &self,
        user: &RumaUserId,
        device: Option<&matrix_sdk::ruma::DeviceId>,
        timeout: Duration,
        want: impl Fn(&TrustDecision) -> bool,
    ) -> Option<TrustDecision> {
        // Subscribe before looking at the latest decision: anything made
        // after the look arrives on the stream.
        let mut rx = self.subscribe();
        if let Some(d) = self.decision_for(user, device).filter(|d| want(d)) {
            return Some(d);
        }
        let about = |d: &TrustDecision| *d.user_id == *user && d.device_id.as_deref() == device;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(d)) if about(&d) && want(&d) => return Some(d),
                Ok(Ok(_)) => {}
                // Missed decisions: the latest one is what counts.
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    if let Some(d) = self.decision_for(user, device).filter(|d| want(d)) {
                        return Some(d);
                    }
                }
                Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => return None,
            }
        }
    }

    /// Fetches `user`'s devices and identity from the homeserver (even if
    /// the client shares no encrypted room with them) and checks them now,
    /// e.g. before showing a room with that user.
    pub async fn check_user(&self, user: &RumaUserId) -> Result<(), AgentError> {
        self.inner
            .client
            .encryption()
            .request_user_identity(user)
            .await
            .map_err(|e| AgentError::matrix("querying keys", e))?;
        let mut state = self.inner.state.lock().await;
        let result = self.inner.evaluate_user(&mut state, user).await;
        state.store.save()?;
        result
    }

    /// Re-checks every known user now (fetching CRLs that are due).
    pub async fn reevaluate(&self) -> Result<(), AgentError> {
        self.inner.sweep(false).await
    }

    /// Fetches every CRL again now, whatever its nextUpdate, and re-checks
    /// every known user (e.g. after the app learnt of a revocation).
    pub async fn refresh_crls(&self) -> Result<(), AgentError> {
        self.inner.sweep(true).await
    }

    /// Stops the agent (same as dropping it).
    pub fn shutdown(self) {}
}

impl Drop for AutoTrustAgent {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        for handle in self.handlers.drain(..) {
            self.inner.client.remove_event_handler(handle);
        }
    }
}

/// The user whose trust an attestation or membership state event may
/// change.
fn affected_user(raw: &Raw<AnySyncStateEvent>) -> Option<OwnedUserId> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(rename = "type")]
        kind: String,
        state_key: String,
    }
    let head: Head = serde_json::from_str(raw.json().get()).ok()?;
    let user = match head.kind.as_str() {
        EVENT_TYPE => user_from_state_key(&head.state_key)?,
        "m.room.member" => head.state_key.as_str(),
        _ => return None,
    };
    OwnedUserId::try_from(user).ok()
}

/// The user named by an attestation state key (`device|<user>|<device>` or
/// `identity|<user>`).
fn user_from_state_key(key: &str) -> Option<&str> {
    if let Some(rest) = key.strip_prefix("device|") {
        rest.rsplit_once('|').map(|(user, _)| user)
    } else {
        key.strip_prefix("identity|")
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The background task: reacts to triggers, and sweeps periodically, at
/// certificate expiry and when CRLs are due.
async fn worker(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<OwnedUserId>) {
    let mut next_sweep = tokio::time::Instant::now();
    loop {
        let wake = inner.next_wake(next_sweep).await;
        tokio::select! {
            trigger = rx.recv() => {
                let Some(first) = trigger else { return };
                // A sync brings bursts (membership, device lists, state):
                // collect them and check each user once.
                tokio::time::sleep(DEBOUNCE).await;
                let mut users = BTreeSet::from([first]);
                while let Ok(user) = rx.try_recv() {
                    users.insert(user);
                }
                let mut state = inner.state.lock().await;
                for user in users {
                    if let Err(e) = inner.evaluate_user(&mut state, &user).await {
                        tracing::warn!(%user, error = %e, "govtrust agent: check failed");
                    }
                }
                if let Err(e) = state.store.save() {
                    tracing::error!(error = %e, "govtrust agent: cannot save its store");
                }
            }
            () = tokio::time::sleep_until(wake) => {
                if let Err(e) = inner.sweep(false).await {
                    tracing::warn!(error = %e, "govtrust agent: sweep failed");
                }
                next_sweep = tokio::time::Instant::now() + inner.settings.refresh_interval;
            }
        }
    }
}

/// One attestation event found for a state key.
struct Candidate {
    content: Vec<u8>,
    source: String,
}

/// The outcome of checking one subject.
enum Check {
    Absent,
    Verified {
        att: Box<VerifiedAttestation>,
        content: String,
    },
    Rejected {
        error: Error,
        content: Option<String>,
    },
}

impl Check {
    fn verified(&self) -> Option<&VerifiedAttestation> {
        match self {
            Check::Verified { att, .. } => Some(att),
            _ => None,
        }
    }

    fn is_revoked(&self) -> bool {
        matches!(self, Check::Rejected { error, .. } if matches!(error, Error::Revoked { .. }))
    }

    fn content(&self) -> Option<&str> {
        match self {
            Check::Verified { content, .. } => Some(content),
            Check::Rejected { content, .. } => content.as_deref(),
            Check::Absent => None,
        }
    }

    fn verdict(&self) -> Verdict {
        match self {
            Check::Absent => Verdict::NotAttested,
            Check::Verified { att, .. } => Verdict::Verified(att.clone()),
            Check::Rejected { error, .. } => Verdict::Rejected(error.clone()),
        }
    }
}

/// The identity side of one user's evaluation, as the devices need it.
struct IdentityOutcome {
    check: Check,
    /// The agent's signature on the current master key is in force.
    signed_by_us: bool,
}

impl Inner {
    /// When the worker must wake next: the periodic sweep, the earliest
    /// expiry of an accepted certificate, or the earliest CRL due.
    async fn next_wake(&self, next_sweep: tokio::time::Instant) -> tokio::time::Instant {
        let state = self.state.lock().await;
        let now = now_secs();
        let soonest = state
            .expiries
            .values()
            .map(|t| t.saturating_add(1))
            .chain(state.crls.next_due())
            .min();
        let mut wake = next_sweep;
        if let Some(at) = soonest {
            let secs = u64::try_from(at.saturating_sub(now)).unwrap_or(0);
            wake = wake.min(tokio::time::Instant::now() + Duration::from_secs(secs).max(MIN_WAKE));
        }
        wake
    }

    /// Re-checks every user the crypto store tracks and every user the
    /// agent holds a record for.
    async fn sweep(&self, force_crls: bool) -> Result<(), AgentError> {
        let mut state = self.state.lock().await;
        state.crls.refresh_due(force_crls).await;
        let mut users: BTreeSet<OwnedUserId> = self
            .client
            .encryption()
            .tracked_users()
            .await
            .map_err(|e| AgentError::matrix("reading tracked users", e))?
            .into_iter()
            .collect();
        users.extend(
            state
                .store
                .users()
                .into_iter()
                .filter_map(|u| OwnedUserId::try_from(u).ok()),
        );
        for user in users {
            if let Err(e) = self.evaluate_user(&mut state, &user).await {
                tracing::warn!(%user, error = %e, "govtrust agent: check failed");
            }
        }
        state.store.save()
    }

    /// Checks one user's identity and devices and applies the result.
    async fn evaluate_user(
        &self,
        state: &mut EvalState,
        user: &RumaUserId,
    ) -> Result<(), AgentError> {
        if user == self.own_user {
            return Ok(());
        }
        let Ok(vuser) = UserId::parse(user.as_str()) else {
            tracing::debug!(%user, "govtrust agent: user ID outside the profile, skipped");
            return Ok(());
        };
        let encryption = self.client.encryption();
        let identity = encryption
            .get_user_identity(user)
            .await
            .map_err(|e| AgentError::matrix("reading the identity", e))?;
        let outcome = self
            .evaluate_identity(state, user, &vuser, identity.as_ref())
            .await?;
        // Read after the identity step: a signature made there changes
        // the devices' cross-signing state.
        let devices = encryption
            .get_user_devices(user)
            .await
            .map_err(|e| AgentError::matrix("reading devices", e))?;
        let mut present = HashSet::new();
        for device in devices.devices() {
            if device.is_deleted() {
                continue;
            }
            present.insert(device.device_id().to_string());
            self.evaluate_device(state, user, &vuser, &device, &outcome)
                .await?;
        }
        // Devices that are gone: nothing left to undo.
        for device in state.store.devices_of(user.as_str()) {
            if !present.contains(&device) {
                state.store.remove_device(user.as_str(), &device);
                let id = OwnedDeviceId::from(device.as_str());
                state.expiries.remove(&(user.to_owned(), Some(id.clone())));
                if let Ok(mut last) = self.last.lock() {
                    last.remove(&(user.to_owned(), Some(id)));
                }
            }
        }
        Ok(())
    }

    async fn evaluate_identity(
        &self,
        state: &mut EvalState,
        user: &RumaUserId,
        vuser: &UserId,
        identity: Option<&UserIdentity>,
    ) -> Result<IdentityOutcome, AgentError> {
        let record = state.store.identity(user.as_str()).cloned();
        let master = identity
            .and_then(|i| i.master_key().get_first_key())
            .map(|k| k.to_base64());
        let (Some(identity), Some(master_b64)) = (identity, master) else {
            // No cross-signing identity known: an unsigned record is moot;
            // a signed one is kept (the signature stays on the server).
            if record.as_ref().is_some_and(|r| !r.signed) {
                state.store.remove_identity(user.as_str());
            }
            return Ok(IdentityOutcome {
                check: Check::Absent,
                signed_by_us: false,
            });
        };
        // A record for another master key is moot: a signature of the old
        // key does not vouch for the new one.
        let record = match record {
            Some(r) if r.master_key != master_b64 => {
                state.store.remove_identity(user.as_str());
                None
            }
            other => other,
        };
        let check = match Ed25519Key::from_base64(&master_b64) {
            Ok(key) => {
                let cached = record.as_ref().and_then(|r| r.content.clone());
                self.check(state, vuser, &Subject::Identity, key, cached.as_deref())
                    .await
            }
            Err(error) => Check::Rejected {
                error,
                content: None,
            },
        };
        let mut signed = record.as_ref().is_some_and(|r| r.signed);
        let mut changed = false;
        let mut warning = None;
        let action = match &check {
            Check::Verified { att, content } => {
                let action = if identity.is_verified() {
                    if signed {
                        TrustAction::SignedIdentity
                    } else {
                        TrustAction::LeftAlone {
                            local_trust: LocalTrust::Verified,
                        }
                    }
                } else if self.settings.sign_identities && self.can_sign().await {
                    // Write-ahead, as for devices: a signature the agent
                    // made must never go unrecorded.
                    let mut pending = IdentityRecord {
                        master_key: master_b64.clone(),
                        signed: true,
                        serial: Some(att.serial.clone()),
                        at: now_secs(),
                        content: Some(content.clone()),
                    };
                    state.store.put_identity(user.to_string(), pending.clone());
                    state.store.save()?;
                    match identity.verify().await {
                        Ok(()) => {
                            signed = true;
                            changed = true;
                            // The store learns of the new signature from
                            // the next key query.
                            if let Err(e) =
                                self.client.encryption().request_user_identity(user).await
                            {
                                tracing::debug!(%user, error = %e, "key query after signing failed");
                            }
                            TrustAction::SignedIdentity
                        }
                        Err(e) => {
                            tracing::warn!(%user, error = %e, "govtrust agent: signing the identity failed");
                            pending.signed = signed;
                            state.store.put_identity(user.to_string(), pending);
                            TrustAction::NoChange
                        }
                    }
                } else {
                    TrustAction::NoChange
                };
                state.store.put_identity(
                    user.to_string(),
                    IdentityRecord {
                        master_key: master_b64.clone(),
                        signed,
                        serial: Some(att.serial.clone()),
                        at: record.as_ref().map_or_else(now_secs, |r| r.at),
                        content: Some(content.clone()),
                    },
                );
                action
            }
            Check::Rejected { .. } | Check::Absent => {
                if signed {
                    warning = Some(SIGNATURE_WARNING.to_owned());
                    TrustAction::Blocked
                } else {
                    state.store.remove_identity(user.as_str());
                    TrustAction::NoChange
                }
            }
        };
        // Only a signature that still makes the identity verified needs
        // standing in for by blocks.
        let signed_by_us = signed && (identity.is_verified() || changed);
        self.track_expiry(state, user, None, &check);
        self.emit(
            TrustDecision {
                user_id: user.to_owned(),
                device_id: None,
                verdict: check.verdict(),
                action,
                warning,
                at: SystemTime::now(),
            },
            changed,
        );
        Ok(IdentityOutcome {
            check,
            signed_by_us,
        })
    }

    async fn evaluate_device(
        &self,
        state: &mut EvalState,
        user: &RumaUserId,
        vuser: &UserId,
        device: &Device,
        identity: &IdentityOutcome,
    ) -> Result<(), AgentError> {
        let device_id = device.device_id().to_owned();
        let (Some(key_b64), Ok(vdevice)) = (
            device.ed25519_key().map(|k| k.to_base64()),
            DeviceId::parse(device_id.as_str()),
        ) else {
            return Ok(());
        };
        let Ok(key) = Ed25519Key::from_base64(&key_b64) else {
            return Ok(());
        };
        let record = state
            .store
            .device(user.as_str(), device_id.as_str())
            .cloned();
        // Content cached for this very key only: after a key change the
        // old attestation is not evidence for anything.
        let cached = record
            .as_ref()
            .filter(|r| r.key == key_b64)
            .and_then(|r| r.content.clone());
        let check = self
            .check(
                state,
                vuser,
                &Subject::Device(vdevice),
                key,
                cached.as_deref(),
            )
            .await;

        let cross_signed = device.is_cross_signed_by_owner();
        let identity_ok = identity.check.verified().is_some();
        let identity_revoked = identity.check.is_revoked();
        // Verified through the agent's own identity signature: withdrawing
        // means blocking (the signature cannot be taken back).
        let signed = cross_signed && identity.signed_by_us;
        let desired = if check.is_revoked() {
            if signed {
                Desired::Block(Reason::Revoked)
            } else {
                Desired::Revoked
            }
        } else if cross_signed && identity_revoked {
            if signed {
                Desired::Block(Reason::SignatureNoLongerBacked)
            } else {
                Desired::Revoked
            }
        } else if check.verified().is_some() {
            Desired::Trust(Reason::DeviceAttestation)
        } else if signed && !identity_ok {
            Desired::Block(Reason::SignatureNoLongerBacked)
        } else if cross_signed && identity_ok && device.is_verified_with_cross_signing() {
            Desired::Covered
        } else if cross_signed && identity_ok {
            Desired::Trust(Reason::IdentityAttestation)
        } else {
            Desired::Lapsed
        };
        // The verdict shown is the one the decision rests on.
        let (verdict, basis) = match desired {
            Desired::Trust(Reason::IdentityAttestation) | Desired::Covered => {
                (identity.check.verdict(), &identity.check)
            }
            Desired::Revoked | Desired::Block(_) if !check.is_revoked() => {
                (identity.check.verdict(), &identity.check)
            }
            _ => (check.verdict(), &check),
        };

        let current = device.local_trust_state();
        let ours = record.as_ref().map(|r| (r.set, r.reason));
        let planned = plan(current, ours, desired, self.settings.on_revoked);
        let serial = basis.verified().map(|a| a.serial.clone());
        let content = check.content().map(str::to_owned);
        // Write-ahead: what the agent is about to set is on disk before it
        // is set, and a record is dropped only after the trust is undone,
        // so a crash in between never leaves trust the agent set but does
        // not know about (it would then never withdraw it).
        match planned.record {
            RecordOp::Put(set, reason) => {
                state.store.put_device(
                    user.as_str(),
                    device_id.as_str(),
                    DeviceRecord {
                        key: key_b64,
                        set,
                        reason,
                        serial: serial.or_else(|| record.as_ref().and_then(|r| r.serial.clone())),
                        at: now_secs(),
                        content: content.or(cached),
                    },
                );
                state.store.save()?;
            }
            RecordOp::Keep => {
                if let Some(mut r) = record {
                    if serial.is_some() {
                        r.serial = serial;
                    }
                    if content.is_some() {
                        r.content = content;
                    }
                    state.store.put_device(user.as_str(), device_id.as_str(), r);
                }
            }
            RecordOp::Remove => {}
        }
        if let Some(to) = planned.set {
            device
                .set_local_trust(to)
                .await
                .map_err(|e| AgentError::matrix("setting local trust", e))?;
            tracing::info!(%user, device = %device_id, ?to, ?desired, "govtrust agent set local trust");
        }
        if planned.record == RecordOp::Remove {
            state.store.remove_device(user.as_str(), device_id.as_str());
            state.store.save()?;
        }
        let warning = matches!(desired, Desired::Block(_)).then(|| SIGNATURE_WARNING.to_owned());
        self.track_expiry(state, user, Some(&device_id), basis);
        self.emit(
            TrustDecision {
                user_id: user.to_owned(),
                device_id: Some(device_id),
                verdict,
                action: planned.action,
                warning,
                at: SystemTime::now(),
            },
            planned.set.is_some(),
        );
        Ok(())
    }

    /// Whether the citizen can sign other users' identities (has a
    /// user-signing key on this device).
    async fn can_sign(&self) -> bool {
        self.client
            .encryption()
            .cross_signing_status()
            .await
            .is_some_and(|s| s.has_master && s.has_user_signing)
    }

    fn track_expiry(
        &self,
        state: &mut EvalState,
        user: &RumaUserId,
        device: Option<&OwnedDeviceId>,
        check: &Check,
    ) {
        let key = (user.to_owned(), device.cloned());
        match check.verified() {
            Some(att) => {
                state.expiries.insert(key, att.not_after);
            }
            None => {
                state.expiries.remove(&key);
            }
        }
    }

    /// Records the decision and broadcasts it if it says something new:
    /// trust was changed, or the verdict or the resulting state differs
    /// from the last one sent for the subject. "No attestation, nothing
    /// done" is not news for a device nobody attested.
    fn emit(&self, decision: TrustDecision, changed: bool) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let key = decision.key();
        let previous = last.get(&key);
        let quiet = matches!(decision.verdict, Verdict::NotAttested)
            && decision.action == TrustAction::NoChange;
        let news = changed
            || match previous {
                Some(p) => {
                    p.verdict.summary() != decision.verdict.summary() || p.action != decision.action
                }
                None => !quiet,
            };
        if quiet && previous.is_none() {
            return;
        }
        if news {
            tracing::info!("govtrust agent: {decision}");
            let _ = self.decisions.send(decision.clone());
        }
        last.insert(key, decision);
    }

    /// Looks the subject's attestation up everywhere and verifies what is
    /// found. Several events for one subject (several rooms): a revocation
    /// in any of them wins; otherwise any valid one is enough; otherwise
    /// the first rejection is reported.
    async fn check(
        &self,
        state: &mut EvalState,
        user: &UserId,
        subject: &Subject,
        key: Ed25519Key,
        cached: Option<&str>,
    ) -> Check {
        let expected = Expected {
            user_id: user.clone(),
            subject: subject.clone(),
            key,
        };
        let state_key = state_key(user, subject);
        let (mut candidates, unavailable) = self.lookup(state, &state_key).await;
        if candidates.is_empty() {
            match (unavailable, cached) {
                // The homeserver is unreachable: re-verify what was seen
                // last, so expiry and revocation still apply.
                (true, Some(content)) => candidates.push(Candidate {
                    content: content.as_bytes().to_vec(),
                    source: "cache".to_owned(),
                }),
                _ => return Check::Absent,
            }
        }
        let mut verified: Option<(VerifiedAttestation, String)> = None;
        let mut rejected: Option<(Error, String)> = None;
        for candidate in candidates {
            let text = String::from_utf8_lossy(&candidate.content).into_owned();
            match self
                .verify_content(state, &expected, &candidate.content)
                .await
            {
                Ok(att) => {
                    let better = verified
                        .as_ref()
                        .is_none_or(|(v, _)| att.not_after > v.not_after);
                    if better {
                        verified = Some((att, text));
                    }
                }
                Err(error) => {
                    tracing::debug!(%state_key, source = %candidate.source, code = error.code(), "attestation rejected");
                    let revoked = matches!(error, Error::Revoked { .. });
                    if rejected
                        .as_ref()
                        .is_none_or(|(e, _)| revoked && !matches!(e, Error::Revoked { .. }))
                    {
                        rejected = Some((error, text));
                    }
                }
            }
        }
        match (verified, rejected) {
            (_, Some((error, content))) if matches!(error, Error::Revoked { .. }) => {
                Check::Rejected {
                    error,
                    content: Some(content),
                }
            }
            (Some((att, content)), _) => Check::Verified {
                att: Box::new(att),
                content,
            },
            (None, Some((error, content))) => Check::Rejected {
                error,
                content: Some(content),
            },
            (None, None) => Check::Absent,
        }
    }

    /// Verifies one event content for `expected`, fetching the CRLs its
    /// chain needs — only after the chain proved genuine without them.
    async fn verify_content(
        &self,
        state: &mut EvalState,
        expected: &Expected,
        json: &[u8],
    ) -> Result<VerifiedAttestation, Error> {
        let content = AttestationContent::from_json(json)?;
        if content.is_revoked() {
            return Err(Error::Revoked {
                position: PathPosition::Leaf,
            });
        }
        let chain = content.chain_der()?;
        let leaf_points = chain
            .first()
            .map(|c| distribution_points(c))
            .unwrap_or_default();
        let issuer_points = chain
            .get(1)
            .map(|c| distribution_points(c))
            .unwrap_or_default();
        let now_unix = UnixTime::now();
        let now = now_secs();
        let all_fresh = !leaf_points.is_empty()
            && leaf_points
                .iter()
                .chain(&issuer_points)
                .all(|u| state.crls.is_fresh(u, now));
        if !all_fresh {
            let att = self
                .lenient
                .verify_event(expected, json, &state.crls.set(), now_unix)?;
            // The issuing CA's distribution point counts only if that
            // certificate is the one the validated path went through: the
            // profile's chain is exactly leaf and issuing CA, and the
            // path's issuer is that certificate's subject.
            let mut points = leaf_points;
            if chain.len() == 2
                && chain.get(1).and_then(|c| crls::subject_string(c)) == Some(att.issuer.clone())
            {
                points.extend(issuer_points);
            }
            state.crls.ensure(&points, false).await;
        }
        self.strict
            .verify_event(expected, json, &state.crls.set(), now_unix)
    }

    /// Finds the attestation events stored under `state_key`: in the joined
    /// rooms (local state store) and the directory rooms (homeserver).
    /// Returns them and whether some source could not be read.
    async fn lookup(&self, state: &mut EvalState, state_key: &str) -> (Vec<Candidate>, bool) {
        let mut found = Vec::new();
        let mut unavailable = false;
        let mut read_locally: HashSet<OwnedRoomId> = HashSet::new();
        if self.settings.scan_joined_rooms {
            for room in self.client.joined_rooms() {
                read_locally.insert(room.room_id().to_owned());
                self.read_local(&room, state_key, &mut found).await;
            }
        }
        for directory in self.settings.directory_rooms.clone() {
            let room_id = match self.resolve(state, &directory).await {
                Ok(Some(id)) => id,
                Ok(None) => continue,
                Err(e) => {
                    tracing::debug!(?directory, error = %e, "directory room unavailable");
                    unavailable = true;
                    continue;
                }
            };
            if read_locally.contains(&room_id) {
                continue;
            }
            if let Some(room) = self
                .client
                .get_room(&room_id)
                .filter(|r| r.state() == RoomState::Joined)
            {
                self.read_local(&room, state_key, &mut found).await;
                continue;
            }
            match self.read_remote(&room_id, state_key).await {
                Ok(Some(candidate)) => found.push(candidate),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(room = %room_id, error = %e, "directory read failed");
                    // The alias may point elsewhere now.
                    state.directories.remove(&directory);
                    unavailable = true;
                }
            }
        }
        (found, unavailable)
    }

    async fn read_local(&self, room: &matrix_sdk::Room, state_key: &str, out: &mut Vec<Candidate>) {
        let event = room
            .get_state_event(StateEventType::from(EVENT_TYPE), state_key)
            .await;
        if let Ok(Some(RawAnySyncOrStrippedState::Sync(raw))) = event {
            if let Some(content) = self.accept_event(raw.json().get(), room.room_id()) {
                out.push(Candidate {
                    content,
                    source: room.room_id().to_string(),
                });
            }
        }
    }

    /// Reads the state event from the homeserver (the room is
    /// world-readable; no join needed). `Ok(None)` if there is none.
    ///
    /// A plain GET with the client's HTTP client and access token: most
    /// devices have no attestation, and matrix-sdk's request path logs
    /// every 404 as an error. If the token is refused (it may need a
    /// refresh), the request goes through matrix-sdk instead.
    async fn read_remote(
        &self,
        room_id: &RoomId,
        state_key: &str,
    ) -> Result<Option<Candidate>, AgentError> {
        let candidate = |json: &str| {
            self.accept_event(json, room_id).map(|content| Candidate {
                content,
                source: room_id.to_string(),
            })
        };
        if let Some(token) = self.client.access_token() {
            let mut url = self.client.homeserver();
            if let Ok(mut segments) = url.path_segments_mut() {
                segments.pop_if_empty().extend([
                    "_matrix",
                    "client",
                    "v3",
                    "rooms",
                    room_id.as_str(),
                    "state",
                    EVENT_TYPE,
                    state_key,
                ]);
            }
            url.set_query(Some("format=event"));
            let response = self
                .client
                .http_client()
                .get(url)
                .bearer_auth(token)
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .map_err(|e| AgentError::matrix("reading the directory room", e))?;
            match response.status().as_u16() {
                200 => {
                    // Matrix caps events at 64 KiB; read no more than that.
                    let mut response = response;
                    let mut body = Vec::new();
                    while let Some(chunk) = response
                        .chunk()
                        .await
                        .map_err(|e| AgentError::matrix("reading the directory room", e))?
                    {
                        if body.len() + chunk.len() > MAX_EVENT_BYTES {
                            return Err(AgentError::matrix(
                                "reading the directory room",
                                "event larger than 64 KiB",
                            ));
                        }
                        body.extend_from_slice(&chunk);
                    }
                    return Ok(candidate(&String::from_utf8_lossy(&body)));
                }
                404 => return Ok(None),
                401 => {}
                status => {
                    return Err(AgentError::matrix(
                        "reading the directory room",
                        format!("HTTP {status}"),
                    ))
                }
            }
        }
        let mut request = get_state_event_for_key::v3::Request::new(
            room_id.to_owned(),
            StateEventType::from(EVENT_TYPE),
            state_key.to_owned(),
        );
        // The whole event, so the sender can be checked.
        request.format = get_state_event_for_key::v3::StateEventFormat::Event;
        match self.client.send(request).await {
            Ok(response) => Ok(candidate(response.event_or_content.get())),
            Err(e) if matches!(e.client_api_error_kind(), Some(ErrorKind::NotFound)) => Ok(None),
            Err(e) => Err(AgentError::matrix("reading the directory room", e)),
        }
    }

    /// The content of an attestation event, if it is one to consider:
    /// not redacted, and from an accepted publisher.
    fn accept_event(&self, json: &str, room_id: &RoomId) -> Option<Vec<u8>> {
        #[derive(Deserialize)]
        struct Event {
            sender: Option<String>,
            content: Option<serde_json::Value>,
        }
        let event: Event = serde_json::from_str(json).ok()?;
        let content = event.content?;
        if content.as_object().is_none_or(|o| o.is_empty()) {
            return None;
        }
        if !self.settings.publishers.is_empty()
            && !event
                .sender
                .as_deref()
                .is_some_and(|s| self.settings.publishers.iter().any(|p| p.as_str() == s))
        {
            tracing::warn!(room = %room_id, sender = ?event.sender, "attestation from an unexpected sender ignored");
            return None;
        }
        serde_json::to_vec(&content).ok()
    }

    /// The room ID of a directory room (cached until the next sweep);
    /// `Ok(None)` if its alias does not exist.
    async fn resolve(
        &self,
        state: &mut EvalState,
        directory: &DirectoryRoom,
    ) -> Result<Option<OwnedRoomId>, AgentError> {
        if let Some((id, at)) = state.directories.get(directory) {
            if now_secs().saturating_sub(*at) < DIRECTORY_TTL {
                return Ok(id.clone());
            }
        }
        let alias = match directory {
            DirectoryRoom::Id(id) => return Ok(Some(id.clone())),
            DirectoryRoom::Alias(alias) => alias.clone(),
            DirectoryRoom::OwnServer => OwnedRoomAliasId::try_from(format!(
                "#{DEFAULT_DIRECTORY_ALIAS_LOCALPART}:{}",
                self.own_user.server_name()
            ))
            .map_err(|e| AgentError::Config(format!("directory alias: {e}")))?,
        };
        let id = match self.client.resolve_room_alias(&alias).await {
            Ok(response) => Some(response.room_id),
            Err(e) if matches!(e.client_api_error_kind(), Some(ErrorKind::NotFound)) => None,
            Err(e) => return Err(AgentError::matrix("resolving the directory alias", e)),
        };
        state
            .directories
            .insert(directory.clone(), (id.clone(), now_secs()));
        Ok(id)
    }
}

/// What the user is told when the agent blocks devices of an identity it
/// signed earlier.
const SIGNATURE_WARNING: &str = "this client signed the agency's cross-signing identity \
     when it was attested; Matrix cannot take that signature back, so the agency's \
     devices are blocked on this device only — other devices of yours may still trust them";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_keys_name_their_user() {
        assert_eq!(
            user_from_state_key("device|@a:example.org|DEV"),
            Some("@a:example.org")
        );
        assert_eq!(
            user_from_state_key("identity|@a:example.org"),
            Some("@a:example.org")
        );
        assert_eq!(user_from_state_key("@a:example.org"), None);
        assert_eq!(user_from_state_key("device|nodevice"), None);
    }
}

//! Issue #4, "Must show", end to end through the REAL service: a real
//! Synapse (tests/support/synapse.rs), the enrollment service in-process on
//! its TLS listener (tests/support/service.rs: `service::build` +
//! `serve_on`, mTLS for agencies, its bot publishing into the directory
//! room, CRLs at its distribution points), agency devices enrolling through
//! its HTTPS API, and citizens' matrix-sdk clients running
//! `govtrust_agent` with the default HTTPS CRL fetcher (pinned
//! root as the only TLS root).
//!
//! One Synapse, one service and one authority serve every test; they live on
//! one shared tokio runtime (their background tasks outlive any single
//! test) and each test is a plain `#[test]` that blocks on it, with fresh
//! users of its own. Agency devices are real matrix-sdk clients where the
//! scenario needs one (to-device challenge, cross-signing) and otherwise
//! "fake" devices with self-signed keys uploaded through the raw API
//! (tests/support/fake_device.rs), enrolled with `signature` proof — still
//! through the service's HTTPS API with mTLS.
//!
//! Agents are configured as docs/client.md says an app should be: the
//! pinned root, `publishers` = the service's bot. Where an attacker plants
//! events in a room of their own, the agent runs with the defaults of
//! `AgentConfig::new` (no `publishers` filter), so that the event reaches
//! the verifier and the chain check is what rejects it.

#[path = "support/fake_device.rs"]
mod fake_device;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/service.rs"]
mod service;
#[path = "support/synapse.rs"]
mod synapse;

use harness::{bootstrap_cross_signing, enc, login, run, spawn_sync, step, wait_for, WAIT};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use futures::future::BoxFuture;
use govtrust_agent::{
    AgentConfig, AgentError, AutoTrustAgent, CrlFetcher, DirectoryRoom, HttpCrlFetcher,
    TrustAction, TrustDecision, Verdict,
};
use govtrust_pki::der::DistinguishedName;
use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use govtrust_pki::{AttestationRequest, IssuingCa, RootCa, Validity};
use govtrust_service::agency::{enroll_device, enroll_identity};
use govtrust_service::matrix::{Bot, MatrixConfig};
use govtrust_service::storage::CertificateKind;
use govtrust_verifier::event::{state_key, AttestationContent, EVENT_TYPE};
use govtrust_verifier::{
    CertificateDer, CrlPolicy, DeviceId, Ed25519Key, Expected, Subject, TrustAnchors, UnixTime,
    UserId, Verifier,
};
use matrix_sdk::encryption::LocalTrust;
use matrix_sdk::ruma::{OwnedRoomId, OwnedUserId};
use matrix_sdk::Client;
use reqwest::{Method, StatusCode};
use ring::signature::Ed25519KeyPair;
use serde_json::{json, Value};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

use fake_device::FakeDevice;
use service::{record, Agency, TestService};
use synapse::Synapse;

const BOT_PW: &str = "bot-password";
/// Every user of the shared authority is `agency.*`.
const AGENCY_PW: &str = "agency-password";
const CITIZEN_PW: &str = "citizen-password";
const MALLORY_PW: &str = "mallory-password";
/// Long-poll timeout of the citizens' sync loops: one sync cycle.
const SYNC_TIMEOUT: Duration = Duration::from_secs(2);
/// What "within one sync cycle" allows on a loaded 2-core machine: the
/// cycle itself, the key query it triggers, the agent's debounce, the
/// directory lookup and the CRL download. The agents' `refresh_interval`
/// stays at its default of 10 minutes, so anything within this bound was
/// triggered by the sync, not by a timer.
const ONE_SYNC_CYCLE: Duration = Duration::from_secs(15);

/// The Synapse, service and authority every test shares.
struct Shared {
    hs: Synapse,
    svc: TestService,
    /// Authority `DE-BE-11000000-BA-NK`: users `agency.*` on the fixture.
    agency: Agency,
    /// The service's directory room.
    directory: OwnedRoomId,
    /// Plain HTTP client for the homeserver.
    http: reqwest::Client,
}

static SHARED: OnceCell<Shared> = OnceCell::const_new();

async fn shared() -> &'static Shared {
    SHARED
        .get_or_init(|| async {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "warn".into()),
                )
                .with_test_writer()
                .try_init();
            let t0 = Instant::now();
            let hs = Synapse::new().await.expect("start Synapse");
            let bot_id = hs
                .register("govtrust", BOT_PW, false)
                .await
                .expect("register bot");
            let svc =
                TestService::start(&hs.base_url(), &bot_id, BOT_PW, hs.server_name(), |_| {}).await;
            let agency = svc
                .add_authority(
                    record("DE-BE-11000000-BA-NK", "Registration Office Berlin"),
                    &[hs.server_name()],
                    &["agency.*"],
                )
                .await;
            let directory = svc
                .bot()
                .ensure_directory_room()
                .await
                .expect("directory room");
            step(t0, "shared fixture: Synapse and service up");
            Shared {
                hs,
                svc,
                agency,
                directory,
                http: reqwest::Client::new(),
            }
        })
        .await
}

impl Shared {
    async fn register(&self, localpart: &str, password: &str) -> String {
        self.hs
            .register(localpart, password, false)
            .await
            .unwrap_or_else(|e| panic!("register {localpart}: {e}"))
    }

    fn bot_id(&self) -> OwnedUserId {
        self.svc.bot_user_id()
    }

    /// A fake device of `user` with self-signed keys on the homeserver.
    async fn fake_device(&self, user: &str, password: &str) -> FakeDevice {
        FakeDevice::create(&self.http, &self.hs.base_url(), user, password, None)
            .await
            .unwrap_or_else(|e| panic!("fake device of {user}: {e}"))
    }

    /// A device `device_id` of `user` whose Ed25519 key is the one in
    /// `pkcs8` (so two devices can share a key), self-signed with it.
    async fn device_with_key(
        &self,
        user: &str,
        password: &str,
        device_id: &str,
        pkcs8: &[u8],
    ) -> FakeDevice {
        let session = self
            .hs
            .login(user, password, Some(device_id))
            .await
            .unwrap_or_else(|e| panic!("login {user}/{device_id}: {e}"));
        let device = FakeDevice {
            user_id: session.user_id,
            device_id: session.device_id,
            access_token: session.access_token,
            key: Ed25519KeyPair::from_pkcs8(pkcs8).expect("key"),
        };
        self.upload_keys(&device).await;
        device
    }

    /// (Re-)uploads `device`'s self-signed device keys.
    async fn upload_keys(&self, device: &FakeDevice) {
        fake_device::post_json(
            &self.http,
            &format!("{}/_matrix/client/v3/keys/upload", self.hs.base_url()),
            Some(&device.access_token),
            &json!({ "device_keys": device.device_keys() }),
        )
        .await
        .unwrap_or_else(|e| panic!("keys/upload for {}: {e}", device.device_id));
    }

    /// Enrolls a fake device through the service (mTLS, `signature`
    /// proof) and waits for the state event; returns the answer.
    async fn enroll(&self, device: &FakeDevice) -> Value {
        let answer = device
            .enroll(
                &self.svc.mtls_client(&self.agency),
                &self.svc.base,
                Some(10_000),
            )
            .await
            .unwrap_or_else(|e| panic!("enrolling {}: {e}", device.device_id));
        assert!(
            answer["event_id"].is_string(),
            "not published within 10 s: {answer}"
        );
        answer
    }

    /// A real matrix-sdk agency device with the service's bot library
    /// (persistent store, background sync), as an agency would run it.
    async fn sdk_device(&self, user: &str, password: &str, store: &Path) -> Bot {
        Bot::connect(MatrixConfig::new(
            self.hs.base_url().parse().expect("url"),
            user.to_owned(),
            password,
            store,
        ))
        .await
        .unwrap_or_else(|e| panic!("agency device of {user}: {e}"))
    }

    /// A state event of a room as JSON (`None` while it does not exist).
    async fn read_state(&self, token: &str, room: &str, state_key: &str) -> Option<Value> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/{EVENT_TYPE}/{}",
            enc(room),
            enc(state_key)
        );
        let (status, body) = self
            .hs
            .call(Method::GET, &path, Some(token), None)
            .await
            .expect("read state");
        match status {
            StatusCode::OK => Some(body),
            StatusCode::NOT_FOUND => None,
            other => panic!("GET {path}: {other} {body}"),
        }
    }

    /// Sends an `io.govtrust.attestation` state event with a raw token.
    async fn send_attestation(
        &self,
        token: &str,
        room: &str,
        state_key: &str,
        content: &Value,
    ) -> (StatusCode, Value) {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/{EVENT_TYPE}/{}",
            enc(room),
            enc(state_key)
        );
        self.hs
            .call(Method::PUT, &path, Some(token), Some(content))
            .await
            .expect("send state")
    }

    /// The user behind `token` creates an encrypted room and invites the
    /// citizen, who joins: the citizen's client then tracks that user's
    /// devices (as for a DM with an agency, or an attacker's room).
    async fn encrypted_room_with(&self, token: &str, citizen: &Client) -> String {
        let body = json!({
            "preset": "private_chat",
            "is_direct": true,
            "invite": [citizen.user_id().expect("citizen").as_str()],
            "initial_state": [{
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }],
        });
        let (status, answer) = self
            .hs
            .call(
                Method::POST,
                "/_matrix/client/v3/createRoom",
                Some(token),
                Some(&body),
            )
            .await
            .expect("createRoom");
        assert!(status.is_success(), "createRoom: {status} {answer}");
        let room = answer["room_id"].as_str().expect("room_id").to_owned();
        citizen
            .join_room_by_id(&OwnedRoomId::try_from(room.as_str()).expect("room id"))
            .await
            .expect("citizen joins");
        room
    }

    /// The agent configuration a real app uses (docs/client.md): the
    /// pinned root, the service's bot as the only publisher, everything
    /// else at its production default (HTTPS CRL fetcher with the pinned
    /// root as TLS root, `REQUIRE_FRESH`, 10 min refresh, 1 h CRL refresh).
    fn agent_config(&self, store_file: &Path) -> AgentConfig {
        let mut config = self.default_agent_config(store_file);
        config.publishers = vec![self.bot_id()];
        config
    }

    /// `AgentConfig::new` as is: no `publishers` filter.
    fn default_agent_config(&self, store_file: &Path) -> AgentConfig {
        AgentConfig::new(
            TrustAnchors::from_pem(self.svc.root_pem.as_bytes()).expect("pinned root"),
            store_file,
        )
    }

    /// The pure verifier with the pinned root.
    fn verifier(&self) -> Verifier {
        Verifier::new(
            TrustAnchors::from_pem(self.svc.root_pem.as_bytes()).expect("pinned root"),
            CrlPolicy::REQUIRE_FRESH,
        )
    }
}

// ----- citizens ------------------------------------------------------------

/// A citizen: a logged-in matrix-sdk client (its first sync uploads its
/// keys) that keeps syncing in the background, counting its sync cycles.
struct Citizen {
    client: Client,
    user_id: String,
    syncs: Arc<AtomicUsize>,
    sync_task: JoinHandle<()>,
}

impl Citizen {
    async fn new(s: &Shared, localpart: &str, store: &Path) -> Citizen {
        let user_id = s.register(localpart, CITIZEN_PW).await;
        let client = login(
            &s.hs.base_url(),
            &user_id,
            CITIZEN_PW,
            &store.join(localpart),
        )
        .await;
        let syncs = Arc::new(AtomicUsize::new(0));
        let sync_task = spawn_sync(client.clone(), SYNC_TIMEOUT, Some(syncs.clone()));
        Citizen {
            client,
            user_id,
            syncs,
            sync_task,
        }
    }

    /// Waits until the citizen's crypto store knows `device` of `user`.
    async fn wait_for_device(&self, user: &str, device: &str) {
        let user = OwnedUserId::try_from(user).expect("user");
        let deadline = Instant::now() + WAIT;
        loop {
            let known = self
                .client
                .encryption()
                .get_device(&user, device.into())
                .await
                .expect("crypto store");
            if known.is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the citizen never learnt {user} {device}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `(local trust, is_verified())` of a device in the citizen's store.
    async fn trust(&self, user: &str, device: &str) -> (LocalTrust, bool) {
        let user = OwnedUserId::try_from(user).expect("user");
        let device = self
            .client
            .encryption()
            .get_device(&user, device.into())
            .await
            .expect("crypto store")
            .unwrap_or_else(|| panic!("the citizen does not know {user} {device}"));
        (device.local_trust_state(), device.is_verified())
    }

    async fn set_trust(&self, user: &str, device: &str, trust: LocalTrust) {
        let user = OwnedUserId::try_from(user).expect("user");
        self.client
            .encryption()
            .get_device(&user, device.into())
            .await
            .expect("crypto store")
            .expect("device known")
            .set_local_trust(trust)
            .await
            .expect("set local trust");
    }

    async fn start_agent(&self, config: AgentConfig) -> AutoTrustAgent {
        AutoTrustAgent::start(self.client.clone(), config)
            .await
            .expect("start the agent")
    }
}

impl Drop for Citizen {
    fn drop(&mut self) {
        self.sync_task.abort();
    }
}

/// Asserts a rejection: the expected reason code, nothing set, and the
/// device not verified in the citizen's store.
async fn assert_rejected(citizen: &Citizen, decision: &TrustDecision, device: &str, code: &str) {
    assert_eq!(decision.verdict.code(), Some(code), "{decision}");
    assert!(!decision.is_trusted(), "{decision}");
    assert_eq!(decision.authority(), None, "{decision}");
    assert_eq!(decision.action, TrustAction::NoChange, "{decision}");
    assert_eq!(
        citizen.trust(decision.user_id.as_str(), device).await,
        (LocalTrust::Unset, false),
        "{device} must stay unverified"
    );
}

// ----- certificates --------------------------------------------------------

fn device_subject(device: &str) -> Subject {
    Subject::Device(DeviceId::parse(device).expect("device id"))
}

fn raw_key(b64: &str) -> Vec<u8> {
    STANDARD_NO_PAD.decode(b64).expect("key base64")
}

/// Fresh Ed25519 key material (PKCS#8), for devices that share a key.
fn new_pkcs8() -> Vec<u8> {
    Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
        .expect("Ed25519 key")
        .as_ref()
        .to_vec()
}

/// Issues an attestation with `ca` for `validity` and returns its state key
/// and event content.
fn attest<S: Signer>(
    ca: &IssuingCa<S>,
    user: &str,
    subject: Subject,
    key_b64: &str,
    validity: Validity,
) -> (String, AttestationContent) {
    let request = AttestationRequest {
        user_id: UserId::parse(user).expect("user"),
        subject,
        key: Ed25519Key::from_base64(key_b64).expect("key"),
        authority: record("DE-BE-11000000-BA-NK", "Registration Office Berlin"),
    };
    let issued = ca
        .issue_attestation(&request, validity)
        .expect("issue attestation");
    (
        state_key(&request.user_id, &request.subject),
        issued.attestation_content(&request),
    )
}

/// A rogue hierarchy built with govtrust_pki directly: a root nobody pinned
/// and an issuing CA for the fixture's server name, with the same
/// authority records and profile as the real one.
fn rogue_issuing_ca(server_name: &str) -> IssuingCa<FileSigner> {
    let root = RootCa::create(
        &DistinguishedName::ca("Rogue Government Root", None).expect("dn"),
        FileSigner::generate(KeyAlgorithm::EcdsaP256).expect("root key"),
        Validity::from_now(Duration::from_secs(86_400 * 365)),
    )
    .expect("rogue root");
    let ica_key = FileSigner::generate(KeyAlgorithm::EcdsaP256).expect("ica key");
    let cert = root
        .issue_issuing_ca(
            &DistinguishedName::ca("Rogue Issuing CA", None).expect("dn"),
            ica_key.spki_der().to_vec(),
            &[server_name.to_owned()],
            Validity::from_now(Duration::from_secs(86_400 * 100)),
            Some("https://rogue.example/crl/root.crl"),
        )
        .expect("rogue issuing CA");
    IssuingCa::load(
        cert,
        root.certificate().der().clone(),
        ica_key,
        Some("https://rogue.example/crl/issuing.crl".to_owned()),
    )
    .expect("load rogue issuing CA")
}

/// Replaces the one occurrence of `needle` in `der` by `with` (same length).
fn patch(der: &mut [u8], needle: &[u8], with: &[u8]) {
    assert_eq!(needle.len(), with.len());
    let hits: Vec<usize> = der
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "expected exactly one occurrence");
    der[hits[0]..hits[0] + needle.len()].copy_from_slice(with);
}

/// Serves an issuing-CA CRL that is past its nextUpdate (signed by the
/// real issuing CA: a replay of an old CRL, or a distribution point stuck
/// on one), and everything else from the real distribution points.
struct StaleIssuingCrl {
    real: HttpCrlFetcher,
    issuing_url: String,
    stale: Vec<u8>,
    served: AtomicUsize,
}

impl CrlFetcher for StaleIssuingCrl {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, AgentError>> {
        if url == self.issuing_url {
            self.served.fetch_add(1, Ordering::SeqCst);
            let stale = self.stale.clone();
            Box::pin(async move { Ok(stale) })
        } else {
            self.real.fetch(url)
        }
    }
}

// ----- 1. device attestation through the service ---------------------------

/// An agency device (matrix-sdk) enrolls through the service's HTTPS API
/// with mTLS and the Olm to-device challenge (`govtrust_service::agency`). A
/// citizen in an encrypted room with the agency user sees the device
/// `is_verified()` within one sync cycle — no SAS, no QR — and the
/// decision stream carries the authority record. A second device enrolled
/// later, while the citizen is in the (joined) directory room, reaches the
/// citizen by sync as well.
#[test]
fn enrolled_device_is_verified_within_one_sync() {
    run(async {
        let t0 = Instant::now();
        let s = shared().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let agency_id = s.register("agency.enroll", AGENCY_PW).await;
        let device = s
            .sdk_device(&agency_id, AGENCY_PW, &dir.path().join("agency-a"))
            .await;
        let dev_a = device.device_id().expect("device id").to_string();
        let service = s.svc.service_client(&s.agency);
        let enrolled = enroll_device(device.client(), &service, s.bot_id())
            .await
            .expect("device enrollment through the service");
        assert!(enrolled.event_id.is_some(), "not published: {enrolled:?}");
        step(t0, &format!("agency device {dev_a} enrolled"));

        let citizen = Citizen::new(s, "citizen.enroll", dir.path()).await;
        let agent = citizen
            .start_agent(s.agent_config(&dir.path().join("citizen-agent.json")))
            .await;
        // What an app's UI task would read: the broadcast stream only.
        let mut stream = agent.subscribe();
        let shared_at = Instant::now();
        let syncs_before = citizen.syncs.load(Ordering::SeqCst);
        let room = device
            .client()
            .create_dm(citizen.client.user_id().expect("citizen"))
            .await
            .expect("create DM");
        citizen
            .client
            .join_room_by_id(room.room_id())
            .await
            .expect("citizen joins the DM");
        step(t0, "agency invited the citizen to an encrypted DM; joined");

        let decision = wait_for(
            t0,
            &agent,
            &agency_id,
            Some(&dev_a),
            "device A trusted",
            TrustDecision::is_trusted,
        )
        .await;
        let latency = shared_at.elapsed();
        let syncs = citizen.syncs.load(Ordering::SeqCst) - syncs_before;
        step(
            t0,
            &format!("verified {latency:?} after the invitation ({syncs} sync responses)"),
        );
        assert!(
            latency < ONE_SYNC_CYCLE,
            "took {latency:?} (more than one sync cycle)"
        );
        assert_eq!(
            citizen.trust(&agency_id, &dev_a).await,
            (LocalTrust::Verified, true),
            "device A is not verified in the citizen's crypto store"
        );
        assert_eq!(decision.action, TrustAction::Trusted);
        assert_eq!(decision.authority(), Some(&s.agency.record));
        assert_eq!(
            decision.badge().as_deref(),
            Some(
                "Registration Office Berlin, Donaustraße 29, 12043 Berlin \
                 — verified by the government PKI"
            )
        );
        match &decision.verdict {
            Verdict::Verified(att) => {
                assert_eq!(att.serial, enrolled.serial);
                assert_eq!(att.subject, device_subject(&dev_a));
            }
            other => panic!("{other:?}"),
        }
        // The broadcast stream itself carried it, with the record.
        let streamed = std::iter::from_fn(|| stream.try_recv().ok())
            .find(|d| {
                d.device_id.as_deref().map(|d| d.as_str()) == Some(dev_a.as_str()) && d.is_trusted()
            })
            .expect("the decision trusting device A on the stream");
        assert_eq!(streamed.authority(), Some(&s.agency.record));

        // A device enrolled while the citizen is already there: the citizen
        // has joined the (public, world-readable) directory room, so the
        // new state event arrives by sync.
        citizen
            .client
            .join_room_by_id(&s.directory)
            .await
            .expect("citizen joins the directory room");
        let device_b = s
            .sdk_device(&agency_id, AGENCY_PW, &dir.path().join("agency-b"))
            .await;
        let dev_b = device_b.device_id().expect("device id").to_string();
        citizen.wait_for_device(&agency_id, &dev_b).await;
        assert_eq!(
            citizen.trust(&agency_id, &dev_b).await,
            (LocalTrust::Unset, false)
        );
        let enrolled_b = enroll_device(device_b.client(), &service, s.bot_id())
            .await
            .expect("second enrollment");
        let published = Instant::now();
        step(t0, &format!("agency device {dev_b} enrolled"));
        let decision = wait_for(
            t0,
            &agent,
            &agency_id,
            Some(&dev_b),
            "device B trusted",
            TrustDecision::is_trusted,
        )
        .await;
        let latency = published.elapsed();
        assert!(
            latency < ONE_SYNC_CYCLE,
            "took {latency:?} (more than one sync cycle)"
        );
        assert_eq!(decision.authority(), Some(&s.agency.record));
        match &decision.verdict {
            Verdict::Verified(att) => assert_eq!(att.serial, enrolled_b.serial),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            citizen.trust(&agency_id, &dev_b).await,
            (LocalTrust::Verified, true)
        );
        step(
            t0,
            &format!("device B verified {latency:?} after enrollment"),
        );

        drop(agent);
        device.shutdown();
        device_b.shutdown();
    });
}

// ----- 2. identity attestation ---------------------------------------------

/// The agency bootstraps cross-signing and enrolls its identity through the
/// service. The citizen (with cross-signing, `sign_identities` on) has the
/// agency identity verified; a NEW agency device, cross-signed by the
/// agency's self-signing key and with no certificate of its own, is
/// trusted.
#[test]
fn identity_attestation_trusts_cross_signed_devices() {
    run(async {
        let t0 = Instant::now();
        let s = shared().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let agency_id = s.register("agency.identity", AGENCY_PW).await;
        let first = s
            .sdk_device(&agency_id, AGENCY_PW, &dir.path().join("agency-1"))
            .await;
        bootstrap_cross_signing(first.client(), &agency_id, AGENCY_PW).await;
        let service = s.svc.service_client(&s.agency);
        let identity = enroll_identity(first.client(), &service, s.bot_id())
            .await
            .expect("identity enrollment through the service");
        assert!(identity.event_id.is_some(), "not published: {identity:?}");
        let uid = UserId::parse(&agency_id).expect("user");
        assert_eq!(identity.state_key, state_key(&uid, &Subject::Identity));
        step(t0, "agency identity enrolled");

        let citizen = Citizen::new(s, "citizen.identity", dir.path()).await;
        bootstrap_cross_signing(&citizen.client, &citizen.user_id, CITIZEN_PW).await;
        let mut config = s.agent_config(&dir.path().join("citizen-agent.json"));
        config.sign_identities = true;
        let agent = citizen.start_agent(config).await;
        let room = first
            .client()
            .create_dm(citizen.client.user_id().expect("citizen"))
            .await
            .expect("create DM");
        citizen
            .client
            .join_room_by_id(room.room_id())
            .await
            .expect("citizen joins");

        let signed = wait_for(
            t0,
            &agent,
            &agency_id,
            None,
            "agency identity signed",
            |d| d.action == TrustAction::SignedIdentity,
        )
        .await;
        assert_eq!(signed.authority(), Some(&s.agency.record));
        match &signed.verdict {
            Verdict::Verified(att) => {
                assert_eq!(att.subject, Subject::Identity);
                assert_eq!(att.serial, identity.serial);
            }
            other => panic!("{other:?}"),
        }
        let agency_user = OwnedUserId::try_from(agency_id.as_str()).expect("user");
        let deadline = Instant::now() + WAIT;
        loop {
            let seen = citizen
                .client
                .encryption()
                .request_user_identity(&agency_user)
                .await
                .expect("key query")
                .expect("agency identity");
            if seen.is_verified() {
                break;
            }
            assert!(Instant::now() < deadline, "agency identity never verified");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        step(t0, "citizen has the agency identity verified");

        // A new agency device, signed by the agency's self-signing key
        // (from the first device), never enrolled.
        let second = login(
            &s.hs.base_url(),
            &agency_id,
            AGENCY_PW,
            &dir.path().join("agency-2"),
        )
        .await;
        let second_sync = spawn_sync(second.clone(), SYNC_TIMEOUT, None);
        let dev_2 = second.device_id().expect("device id").to_string();
        let deadline = Instant::now() + WAIT;
        let on_first = loop {
            if let Some(d) = first
                .client()
                .encryption()
                .get_device(&agency_user, dev_2.as_str().into())
                .await
                .expect("store")
            {
                break d;
            }
            assert!(
                Instant::now() < deadline,
                "first device never saw the second"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        on_first.verify().await.expect("cross-sign the new device");
        step(t0, &format!("new agency device {dev_2} cross-signed"));

        let via = wait_for(
            t0,
            &agent,
            &agency_id,
            Some(&dev_2),
            "new device trusted through the identity",
            TrustDecision::is_trusted,
        )
        .await;
        assert_eq!(via.action, TrustAction::ViaSignedIdentity, "{via}");
        assert_eq!(via.authority(), Some(&s.agency.record));
        match &via.verdict {
            Verdict::Verified(att) => assert_eq!(att.subject, Subject::Identity),
            other => panic!("{other:?}"),
        }
        let (_, verified) = citizen.trust(&agency_id, &dev_2).await;
        assert!(verified, "the new device is not verified for the citizen");
        // It has no certificate of its own.
        let own = s
            .svc
            .svc
            .store
            .find_live_certificate(
                &agency_id,
                CertificateKind::Device,
                Some(&dev_2),
                govtrust_service::clock::now_ms(),
            )
            .await
            .expect("store");
        assert!(own.is_none(), "the new device has a certificate: {own:?}");
        assert!(s
            .read_state(
                &citizen.client.access_token().expect("token"),
                s.directory.as_str(),
                &state_key(&uid, &device_subject(&dev_2)),
            )
            .await
            .is_none());

        drop(agent);
        second_sync.abort();
        first.shutdown();
    });
}

// ----- 3. revocation ---------------------------------------------------------

/// The operator revokes a certificate through the service's API. Citizen 1
/// (default setup, directory room) sees the republished state event with
/// the revocation; citizen 2 only has an unrevoked copy of the event (in a
/// room the bot serves) and no directory, so the service's CRL, fetched
/// over HTTPS from the distribution point with the default fetcher, is its
/// only source. Both end up with the device blocked, not verified.
#[test]
fn revocation_through_the_service_withdraws_trust() {
    run(async {
        let t0 = Instant::now();
        let s = shared().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let agency_id = s.register("agency.revoke", AGENCY_PW).await;
        let dev = s.fake_device(&agency_id, AGENCY_PW).await;
        let enrolled = s.enroll(&dev).await;
        let serial = enrolled["serial"].as_str().expect("serial").to_owned();
        let key = enrolled["state_key"]
            .as_str()
            .expect("state key")
            .to_owned();
        step(t0, &format!("agency device {} enrolled", dev.device_id));

        // Citizen 1: directory room (default).
        let c1 = Citizen::new(s, "citizen.revoke1", dir.path()).await;
        let agent1 = c1
            .start_agent(s.agent_config(&dir.path().join("c1-agent.json")))
            .await;
        s.encrypted_room_with(&dev.access_token, &c1.client).await;

        // Citizen 2: the event only as the bot published it into a room it
        // serves, before the revocation; no directory.
        let c2 = Citizen::new(s, "citizen.revoke2", dir.path()).await;
        let content = AttestationContent::from_json(
            s.read_state(&dev.access_token, s.directory.as_str(), &key)
                .await
                .expect("published")
                .to_string()
                .as_bytes(),
        )
        .expect("content");
        let mut request = matrix_sdk::ruma::api::client::room::create_room::v3::Request::new();
        request.invite = vec![c2.client.user_id().expect("c2").to_owned()];
        let served = s
            .svc
            .bot()
            .client()
            .create_room(request)
            .await
            .expect("bot creates a served room");
        s.svc
            .bot()
            .publish_in(served.room_id(), &key, &content)
            .await
            .expect("publish into the served room");
        c2.client
            .join_room_by_id(served.room_id())
            .await
            .expect("c2 joins the served room");
        let mut config2 = s.agent_config(&dir.path().join("c2-agent.json"));
        config2.directory_rooms = Vec::<DirectoryRoom>::new();
        let agent2 = c2.start_agent(config2).await;
        s.encrypted_room_with(&dev.access_token, &c2.client).await;

        for (c, agent, who) in [(&c1, &agent1, "citizen 1"), (&c2, &agent2, "citizen 2")] {
            let d = wait_for(
                t0,
                agent,
                &agency_id,
                Some(&dev.device_id),
                &format!("{who}: trusted"),
                TrustDecision::is_trusted,
            )
            .await;
            assert_eq!(d.authority(), Some(&s.agency.record));
            assert_eq!(
                c.trust(&agency_id, &dev.device_id).await,
                (LocalTrust::Verified, true)
            );
        }

        // Revoke through the operator API.
        let (status, body) = s.svc.revoke_as_operator(&serial, "key_compromise").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["revoked_now"], true, "{body}");
        step(t0, "revoked through POST /v1/certificates/{serial}/revoke");
        // The CRL at the distribution point names it now.
        let chain: Vec<CertificateDer<'static>> = content
            .chain
            .iter()
            .map(|c| CertificateDer::from(STANDARD.decode(c).expect("b64")))
            .collect();
        let expected =
            Expected::new(&agency_id, Some(&dev.device_id), &dev.ed25519()).expect("expected");
        let err = s
            .verifier()
            .verify(
                &expected,
                &chain,
                &s.svc.fetch_crls().await,
                UnixTime::now(),
            )
            .expect_err("the service's CRL revokes it");
        assert_eq!(err.code(), "revoked");

        // Citizen 2: a re-check with the CRL it holds changes nothing (its
        // copy of the event carries no revocation) ...
        agent2.reevaluate().await.expect("reevaluate");
        let still = agent2
            .decision_for(
                &OwnedUserId::try_from(agency_id.as_str()).expect("user"),
                Some(dev.device_id.as_str().into()),
            )
            .expect("decision");
        assert!(still.is_trusted(), "{still}");
        // ... the CRL refresh does.
        agent2.refresh_crls().await.expect("refresh CRLs");
        let d = wait_for(
            t0,
            &agent2,
            &agency_id,
            Some(&dev.device_id),
            "citizen 2: blocked after the CRL refresh",
            |d| d.action == TrustAction::Blocked,
        )
        .await;
        assert_eq!(d.verdict.code(), Some("revoked"));
        assert_eq!(
            c2.trust(&agency_id, &dev.device_id).await,
            (LocalTrust::BlackListed, false)
        );

        // Citizen 1: the state change in the directory room.
        let token = c1.client.access_token().expect("token");
        let deadline = Instant::now() + WAIT;
        while s
            .read_state(&token, s.directory.as_str(), &key)
            .await
            .is_none_or(|c| c["revoked"].is_null())
        {
            assert!(Instant::now() < deadline, "revocation never republished");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        agent1.reevaluate().await.expect("reevaluate");
        let d = wait_for(
            t0,
            &agent1,
            &agency_id,
            Some(&dev.device_id),
            "citizen 1: blocked after the state change",
            |d| d.action == TrustAction::Blocked,
        )
        .await;
        assert_eq!(d.verdict.code(), Some("revoked"));
        assert_eq!(
            c1.trust(&agency_id, &dev.device_id).await,
            (LocalTrust::BlackListed, false)
        );
    });
}

// ----- 4. negatives ----------------------------------------------------------

/// A device that was never enrolled stays unverified, while its sibling
/// that was is verified. (The agent reports nothing for a device nobody
/// attested: verdict `NotAttested`, no reason code.)
#[test]
fn never_enrolled_device_stays_unverified() {
    run(async {
        let t0 = Instant::now();
        let s = shared().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let agency_id = s.register("agency.never", AGENCY_PW).await;
        let enrolled = s.fake_device(&agency_id, AGENCY_PW).await;
        let never = s.fake_device(&agency_id, AGENCY_PW).await;
        s.enroll(&enrolled).await;
        let citizen = Citizen::new(s, "citizen.never", dir.path()).await;
        let agent = citizen
            .start_agent(s.agent_config(&dir.path().join("citizen-agent.json")))
            .await;
        s.encrypted_room_with(&enrolled.access_token, &citizen.client)
            .await;
        wait_for(
            t0,
            &agent,
            &agency_id,
            Some(&enrolled.device_id),
            "enrolled sibling trusted",
            TrustDecision::is_trusted,
        )
        .await;
        citizen.wait_for_device(&agency_id, &never.device_id).await;
        agent
            .check_user(&OwnedUserId::try_from(agency_id.as_str()).expect("user"))
            .await
            .expect("check the agency user now");
        let decision = agent.decision_for(
            &OwnedUserId::try_from(agency_id.as_str()).expect("user"),
            Some(never.device_id.as_str().into()),
        );
        if let Some(d) = &decision {
            assert!(matches!(d.verdict, Verdict::NotAttested), "{d}");
            assert_eq!(d.verdict.code(), None);
            assert!(!d.is_trusted());
        }
        assert_eq!(
            citizen.trust(&agency_id, &never.device_id).await,
            (LocalTrust::Unset, false)
        );
        step(t0, "never-enrolled device stays unverified");
    });
}

/// An attacker copies a genuine attestation into a room where they may
/// send `io.govtrust.attestation`, under the state key of another device
/// of the same agency user: `key_mismatch` for a device with its own key,
/// and `device_mismatch` for a device that even carries the same key (the
/// device-ID extension binds the certificate to its device).
#[test]
fn attestation_copied_to_another_device_is_rejected() {
    run(async {
        let t0 = Instant::now();
        let s = shared().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let agency_id = s.register("agency.copydev", AGENCY_PW).await;
        let mallory_id = s.register("mallory.copydev", MALLORY_PW).await;
        let pkcs8 = new_pkcs8();
        let genuine = s
            .device_with_key(&agency_id, AGENCY_PW, "COPYDEVAAA", &pkcs8)
            .await;
        let enrolled = s.enroll(&genuine).await;
        let other = s.fake_device(&agency_id, AGENCY_PW).await;
        let same_key = s
            .device_with_key(&agency_id, AGENCY_PW, "COPYDEVBBB", &pkcs8)
            .await;
        let mallory = s.fake_device(&mallory_id, MALLORY_PW).await;

        let citizen = Citizen::new(s, "citizen.copydev", dir.path()).await;
        let agent = citizen
            .start_agent(s.default_agent_config(&dir.path().join("citizen-agent.json")))
            .await;
        s.encrypted_room_with(&genuine.access_token, &citizen.client)
            .await;
        let room = s
            .encrypted_room_with(&mallory.access_token, &citizen.client)
            .await;
        let copied = s
            .read_state(
                &genuine.access_token,
                s.directory.as_str(),
                enrolled["state_key"].as_str().expect("key"),
            )
            .await
            .expect("genuine content");
        let uid = UserId::parse(&agency_id).expect("user");
        for target in [&other.device_id, &same_key.device_id] {
            let (status, body) = s
                .send_attestation(
                    &mallory.access_token,
                    &room,
                    &state_key(&uid, &device_subject(target)),
                    &copied,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        step(t0, "genuine content copied under two other state keys");

        wait_for(
            t0,
            &agent,
            &agency_id,
            Some(&genuine.device_id),
            "the genuine device trusted",
            TrustDecision::is_trusted,
        )
        .await;
        for (device, code) in [
            (&other.device_id, "key_mismatch"),
            (&same_key.device_id, "device_mismatch"),
        ] {
            let d = wait_for(
                t0,
                &agent,
                &agency_id,
                Some(device),
                &format!("copy for {device} rejected"),
                |d| d.verdict.code().is_some(),
            )
            .await;
            assert_rejected(&citizen, &d, device, code).await;
        }
    });
}

/// The same for another user: the attacker copies an agency's attestation
/// under the state keys of their own devices — one with its own key
/// (`key_mismatch`), one that carries the agency device's key
/// (`user_mismatch`: the SAN binds the certificate to its user).
#[test]
fn attestation_copied_to_another_user_is_rejected() {
    run(async {
        let t0 = Instant::now();
        let s = shared().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let agency_id = s.register("agency.copyuser", AGENCY_PW).await;
        let mallory_id = s.register("mallory.copyuser", MALLORY_PW).await;
        let pkcs8 = new_pkcs8();
        let genuine = s
            .device_with_key(&agency_id, AGENCY_PW, "COPYUSRAAA", &pkcs8)
            .await;
        let enrolled = s.enroll(&genuine).await;
        let mallory = s.fake_device(&mallory_id, MALLORY_PW).await;
        let mallory_same_key = s
            .device_with_key(&mallory_id, MALLORY_PW, "COPYUSRBBB", &pkcs8)
            .await;

        let citizen = Citizen::new(s, "citizen.copyuser", dir.path()).await;
        let agent = citizen
            .start_agent(s.default_agent_config(&dir.path().join("citizen-agent.json")))
            .await;
        let room = s
            .encrypted_room_with(&mallory.access_token, &citizen.client)
            .await;
        let copied = s
            .read_state(
                &mallory.access_token,
                s.directory.as_str(),
                enrolled["state_key"].as_str().expect("key"),
            )
            .await
            .expect("genuine content");
        let mallory_uid = UserId::parse(&mallory_id).expect("user");
        for target in [&mallory.device_id, &mallory_same_key.device_id] {
            let (status, body) = s
                .send_attestation(
                    &mallory.access_token,
                    &room,
                    &state_key(&mallory_uid, &device_subject(target)),
                    &copied,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        step(t0, "genuine content copied under Mallory's state keys");
        for (device, code) in [
            (&mallory.device_id, "key_mismatch"),
            (&mallory_same_key.device_id, "user_mismatch"),
        ] {
            let d = wait_for(
                t0,
                &agent,
                &mallory_id,
                Some(device),
                &format!("copy for Mallory's {device} rejected"),
                |d| d.verdict.code().is_some(),
            )
            .await;
            assert_rejected(&citizen, &d, device, code).await;
        }
    });
}

/// A well-formed attestation from a rogue hierarchy (govtrust_pki used
/// directly, its root not pinned), published by the service's own bot into
/// the directory room (as a compromised publisher could): `unknown_issuer`.
#[test]
fn chain_to_another_root_is_rejected() {
    run(async {
        let t0 = Instant::now();
        let s = shared().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let agency_id = s.register("agency.rogue", AGENCY_PW).await;
        let dev = s.fake_device(&agency_id, AGENCY_PW).await;
        let rogue = rogue_issuing_ca(s.hs.server_name());
        let (key, content) = attest(
            &rogue,
            &agency_id,
            device_subject(&dev.device_id),
            &dev.ed25519(),
            Validity::from_now(Duration::from_secs(30 * 86_400)),
        );
        s.svc
            .bot()
            .publish(&key, &content)
            .await
            .expect("publish the rogue attestation");
        let citizen = Citizen::new(s, "citizen.rogue", dir.path()).await;
        let agent = citizen
            .start_agent(s.agent_config(&dir.path().join("citizen-agent.json")))
            .await;
        s.encrypted_room_with(&dev.access_token, &citizen.client)
            .await;
        let d = wait_for(
            t0,
            &agent,
            &agency_id,
            Some(&dev.device_id),
            "rogue chain rejected",
            |d| d.verdict.code().is_some(),
        )
        .await;
        assert_rejected(&citizen, &d, &dev.device_id, "unknown_issuer").await;
    });
}

/// The service issued the certificate for the key the homeserver served at
/// enrollment; afterwards the homeserver serves another key for that device
/// (re-uploaded), and that is what the citizen's crypto store holds: the
/// attestation does not apply to it (`key_mismatch`).
#[test]
fn certificate_key_differs_from_crypto_store_key() {
    run(async {
        let t0 = Instant::now();
        let s = shared().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let agency_id = s.register("agency.keychange", AGENCY_PW).await;
        let mut dev = s.fake_device(&agency_id, AGENCY_PW).await;
        let certified_key = dev.ed25519();
        s.enroll(&dev).await;
        dev.key = fake_device::new_ed25519();
        s.upload_keys(&dev).await;
        let served = s
            .svc
            .bot()
            .device_keys(
                &UserId::parse(&agency_id).expect("user"),
                &DeviceId::parse(&dev.device_id).expect("device"),
            )
            .await
            .expect("keys/query")
            .expect("device");
        assert_eq!(served.ed25519.to_base64(), dev.ed25519());
        assert_ne!(served.ed25519.to_base64(), certified_key);
        step(t0, "the homeserver now serves another key for the device");

        let citizen = Citizen::new(s, "citizen.keychange", dir.path()).await;
        let agent = citizen
            .start_agent(s.agent_config(&dir.path().join("citizen-agent.json")))
            .await;
        s.encrypted_room_with(&dev.access_token, &citizen.client)
            .await;
        let d = wait_for(
            t0,
            &agent,
            &agency_id,
            Some(&dev.device_id),
            "attestation for another key rejected",
            |d| d.verdict.code().is_some(),
        )
        .await;
        assert_rejected(&citizen, &d, &dev.device_id, "key_mismatch").await;
        let held = citizen
            .client
            .encryption()
            .get_device(
                &OwnedUserId::try_from(agency_id.as_str()).expect("user"),
                dev.device_id.as_str().into(),
            )
            .await
            .expect("store")
            .expect("device")
            .ed25519_key()
            .expect("key")
            .to_base64();
        assert_eq!(held, dev.ed25519(), "the crypto store holds the new key");
    });
}

/// An ordinary member of the service's directory room cannot send an
/// `io.govtrust.attestation` event there (the homeserver answers 403 by
/// the room's power levels). In a room that allows it, the attacker plants
/// a forged attestation — a genuine certificate with the victim device's
/// key and device ID written into it — and the verifier rejects the broken
/// signature (`bad_signature`).
#[test]
fn member_cannot_publish_and_forgery_is_rejected() {
    run(async {
        let t0 = Instant::now();
        let s = shared().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let agency_id = s.register("agency.forge", AGENCY_PW).await;
        let mallory_id = s.register("mallory.forge", MALLORY_PW).await;
        let genuine = s
            .device_with_key(&agency_id, AGENCY_PW, "FORGEDEVAA", &new_pkcs8())
            .await;
        let victim = s
            .device_with_key(&agency_id, AGENCY_PW, "FORGEDEVBB", &new_pkcs8())
            .await;
        let enrolled = s.enroll(&genuine).await;
        let mallory = s.fake_device(&mallory_id, MALLORY_PW).await;
        let uid = UserId::parse(&agency_id).expect("user");
        let victim_key = state_key(&uid, &device_subject(&victim.device_id));

        // Mallory joins the directory room and tries to publish there.
        let (status, body) =
            s.hs.call(
                Method::POST,
                &format!("/_matrix/client/v3/join/{}", enc(s.directory.as_str())),
                Some(&mallory.access_token),
                Some(&json!({})),
            )
            .await
            .expect("join");
        assert!(status.is_success(), "join the directory: {status} {body}");
        let copied = s
            .read_state(
                &mallory.access_token,
                s.directory.as_str(),
                enrolled["state_key"].as_str().expect("key"),
            )
            .await
            .expect("genuine content");
        let (status, body) = s
            .send_attestation(
                &mallory.access_token,
                s.directory.as_str(),
                &victim_key,
                &copied,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["errcode"], "M_FORBIDDEN", "{body}");
        assert!(s
            .read_state(&mallory.access_token, s.directory.as_str(), &victim_key)
            .await
            .is_none());
        step(t0, "directory room refused Mallory's event (403)");

        // The forgery, in Mallory's own room.
        let mut leaf = STANDARD
            .decode(copied["chain"][0].as_str().expect("leaf"))
            .expect("leaf base64");
        patch(
            &mut leaf,
            &raw_key(&genuine.ed25519()),
            &raw_key(&victim.ed25519()),
        );
        patch(
            &mut leaf,
            genuine.device_id.as_bytes(),
            victim.device_id.as_bytes(),
        );
        let mut forged = copied.clone();
        forged["chain"][0] = STANDARD.encode(&leaf).into();
        forged["device_id"] = victim.device_id.clone().into();
        forged["key"] = victim.ed25519().into();
        let citizen = Citizen::new(s, "citizen.forge", dir.path()).await;
        let agent = citizen
            .start_agent(s.default_agent_config(&dir.path().join("citizen-agent.json")))
            .await;
        s.encrypted_room_with(&genuine.access_token, &citizen.client)
            .await;
        let room = s
            .encrypted_room_with(&mallory.access_token, &citizen.client)
            .await;
        let (status, body) = s
            .send_attestation(&mallory.access_token, &room, &victim_key, &forged)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let d = wait_for(
            t0,
            &agent,
            &agency_id,
            Some(&victim.device_id),
            "forged attestation rejected",
            |d| d.verdict.code().is_some(),
        )
        .await;
        assert_rejected(&citizen, &d, &victim.device_id, "bad_signature").await;
    });
}

/// An attestation by the service's real issuing CA that has already
/// expired (the API issues at least one day, so it is made with the
/// service's CA key directly) and published by the service's bot:
/// `expired`.
#[test]
fn expired_certificate_is_rejected() {
    run(async {
        let t0 = Instant::now();
        let s = shared().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let agency_id = s.register("agency.expired", AGENCY_PW).await;
        let dev = s.fake_device(&agency_id, AGENCY_PW).await;
        // Valid for half a minute until two seconds ago: within the
        // issuing CA's own validity (it was made when the fixture started,
        // backdated by a minute), so expiry of the leaf is the only fault.
        let now = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .expect("whole seconds");
        let (key, content) = attest(
            &s.svc.issuing_ca(),
            &agency_id,
            device_subject(&dev.device_id),
            &dev.ed25519(),
            Validity {
                not_before: now - Duration::from_secs(30),
                not_after: now - Duration::from_secs(2),
            },
        );
        s.svc
            .bot()
            .publish(&key, &content)
            .await
            .expect("publish the expired attestation");
        let citizen = Citizen::new(s, "citizen.expired", dir.path()).await;
        let agent = citizen
            .start_agent(s.agent_config(&dir.path().join("citizen-agent.json")))
            .await;
        s.encrypted_room_with(&dev.access_token, &citizen.client)
            .await;
        let d = wait_for(
            t0,
            &agent,
            &agency_id,
            Some(&dev.device_id),
            "expired attestation rejected",
            |d| d.verdict.code().is_some(),
        )
        .await;
        assert_rejected(&citizen, &d, &dev.device_id, "expired").await;
    });
}

/// A valid enrollment, but the citizen's agent only gets an issuing-CA CRL
/// that is past its nextUpdate (genuinely signed by the service's CA: an
/// old CRL replayed, or a stuck distribution point). Under the default
/// policy (`REQUIRE_FRESH`) that is `crl_stale`; the same attestation
/// verifies with the service's current CRL.
#[test]
fn stale_crl_is_rejected_under_require_fresh() {
    run(async {
        let t0 = Instant::now();
        let s = shared().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let agency_id = s.register("agency.stale", AGENCY_PW).await;
        let dev = s.fake_device(&agency_id, AGENCY_PW).await;
        let enrolled = s.enroll(&dev).await;
        let chain: Vec<CertificateDer<'static>> = enrolled["chain"]
            .as_array()
            .expect("chain")
            .iter()
            .map(|c| CertificateDer::from(STANDARD.decode(c.as_str().expect("b64")).expect("b64")))
            .collect();
        let issuing_url = s.svc.issuing_crl_url();
        assert_eq!(
            govtrust_agent::distribution_points(&chain[0]),
            vec![issuing_url.clone()]
        );
        // With the service's current CRLs it verifies.
        let expected =
            Expected::new(&agency_id, Some(&dev.device_id), &dev.ed25519()).expect("expected");
        s.verifier()
            .verify(
                &expected,
                &chain,
                &s.svc.fetch_crls().await,
                UnixTime::now(),
            )
            .expect("valid with fresh CRLs");

        let day = Duration::from_secs(86_400);
        let stale = s
            .svc
            .issuing_ca()
            .crl(&[], 1, time::OffsetDateTime::now_utc() - 2 * day, day)
            .expect("stale CRL");
        let root = s.svc.svc.pki.root().clone();
        let fetcher = Arc::new(StaleIssuingCrl {
            real: HttpCrlFetcher::with_tls_roots([&root]).expect("fetcher"),
            issuing_url,
            stale,
            served: AtomicUsize::new(0),
        });
        let citizen = Citizen::new(s, "citizen.stale", dir.path()).await;
        let mut config = s.agent_config(&dir.path().join("citizen-agent.json"));
        assert_eq!(config.crl_policy, CrlPolicy::REQUIRE_FRESH);
        config.crl_fetcher = Some(fetcher.clone());
        let agent = citizen.start_agent(config).await;
        s.encrypted_room_with(&dev.access_token, &citizen.client)
            .await;
        let d = wait_for(
            t0,
            &agent,
            &agency_id,
            Some(&dev.device_id),
            "attestation with a stale CRL rejected",
            |d| d.verdict.code().is_some(),
        )
        .await;
        assert_rejected(&citizen, &d, &dev.device_id, "crl_stale").await;
        assert!(fetcher.served.load(Ordering::SeqCst) >= 1);
    });
}

// ----- 5. trust the agent did not set -----------------------------------------

/// The citizen verified one agency device by hand and blocked another.
/// The agent never changes either: not when an invalid attestation appears
/// for the verified one (`unknown_issuer`, left alone as `Verified`), and
/// not when the blocked one has a valid attestation from the service
/// (verified verdict, left alone as `BlackListed`).
#[test]
fn trust_set_by_the_citizen_is_never_changed() {
    run(async {
        let t0 = Instant::now();
        let s = shared().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let agency_id = s.register("agency.manual", AGENCY_PW).await;
        let by_hand = s.fake_device(&agency_id, AGENCY_PW).await;
        let blocked = s.fake_device(&agency_id, AGENCY_PW).await;
        s.enroll(&blocked).await;

        let citizen = Citizen::new(s, "citizen.manual", dir.path()).await;
        s.encrypted_room_with(&by_hand.access_token, &citizen.client)
            .await;
        citizen
            .wait_for_device(&agency_id, &by_hand.device_id)
            .await;
        citizen
            .wait_for_device(&agency_id, &blocked.device_id)
            .await;
        citizen
            .set_trust(&agency_id, &by_hand.device_id, LocalTrust::Verified)
            .await;
        citizen
            .set_trust(&agency_id, &blocked.device_id, LocalTrust::BlackListed)
            .await;
        step(
            t0,
            "citizen verified one device by hand and blocked another",
        );

        let agent = citizen
            .start_agent(s.agent_config(&dir.path().join("citizen-agent.json")))
            .await;
        let d = wait_for(
            t0,
            &agent,
            &agency_id,
            Some(&blocked.device_id),
            "valid attestation, device blocked by hand",
            |d| matches!(d.verdict, Verdict::Verified(_)),
        )
        .await;
        assert_eq!(
            d.action,
            TrustAction::LeftAlone {
                local_trust: LocalTrust::BlackListed
            }
        );
        assert!(!d.is_trusted());

        // An invalid attestation for the hand-verified device appears.
        let (key, content) = attest(
            &rogue_issuing_ca(s.hs.server_name()),
            &agency_id,
            device_subject(&by_hand.device_id),
            &by_hand.ed25519(),
            Validity::from_now(Duration::from_secs(30 * 86_400)),
        );
        s.svc
            .bot()
            .publish(&key, &content)
            .await
            .expect("publish the invalid attestation");
        agent.reevaluate().await.expect("reevaluate");
        let d = wait_for(
            t0,
            &agent,
            &agency_id,
            Some(&by_hand.device_id),
            "invalid attestation for the hand-verified device",
            |d| d.verdict.code().is_some(),
        )
        .await;
        assert_eq!(d.verdict.code(), Some("unknown_issuer"));
        assert_eq!(
            d.action,
            TrustAction::LeftAlone {
                local_trust: LocalTrust::Verified
            }
        );
        // Once more, with CRLs refetched: still nothing changes.
        agent.refresh_crls().await.expect("refresh");
        assert_eq!(
            citizen.trust(&agency_id, &by_hand.device_id).await,
            (LocalTrust::Verified, true)
        );
        assert_eq!(
            citizen.trust(&agency_id, &blocked.device_id).await,
            (LocalTrust::BlackListed, false)
        );
    });
}

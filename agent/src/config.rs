//! How an agent is set up: [`AgentConfig`] and its parts.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use govtrust_verifier::{CrlPolicy, TrustAnchors};
use matrix_sdk::ruma::{OwnedRoomAliasId, OwnedRoomId, OwnedUserId};

use crate::crls::CrlFetcher;
#[cfg(doc)]
use crate::crls::HttpCrlFetcher;

/// Localpart of the directory room alias the govtrust service creates on
/// each homeserver (`#govtrust-directory:<server>`), so that the agent and
/// the service agree on where attestations are published.
pub const DEFAULT_DIRECTORY_ALIAS_LOCALPART: &str = "govtrust-directory";

/// A room where attestations are looked up without joining it: the
/// service publishes into world-readable directory rooms, which a citizen
/// has no reason to join.
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
/// attestation is revoked: withdrawing trust alone still lets a revoked
/// key receive room keys under most sharing strategies, so the default
/// blocks it.
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
    /// Also verify incoming sealed documents (`io.govtrust.sealed`,
    /// docs/profile.md §16) with the same roots, CRL policy and CRL
    /// fetcher; the verdicts are on [`crate::AutoTrustAgent::sealed_inbox`].
    /// Off by default: an app that shows no sealed documents need not
    /// verify them.
    pub sealed_documents: bool,
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
            sealed_documents: false,
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
            .field("sealed_documents", &self.sealed_documents)
            .finish()
    }
}

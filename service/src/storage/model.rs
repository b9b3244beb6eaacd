//! Plain data types the store reads and writes.
//!
//! All times are unix milliseconds (`i64`): one representation that both
//! backends store as `BIGINT` and that compares correctly in SQL.

pub use govtrust_api::authority::{Authority, AuthorityStatus};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// What the service knows about an agency client when a request arrives:
/// read together so that every agency request costs one round trip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgencyStanding {
    /// The client's authority, if registered.
    pub authority: Option<Authority>,
    /// The status of the client certificate, if this service issued it.
    pub client_status: Option<CertificateStatus>,
    /// The challenge asked about (an enrollment's), if it exists.
    pub challenge: Option<Challenge>,
}

/// A proof-of-possession challenge, sent Olm-encrypted to exactly one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// Opaque random identifier; it is also the secret the agency echoes back.
    pub id: String,
    /// The authority that requested it.
    pub authority_id: String,
    /// The Matrix user the device belongs to.
    pub user_id: String,
    /// The device the challenge was sent to.
    pub device_id: String,
    /// What the enrollment attests (device or identity).
    pub kind: CertificateKind,
    /// Proof of possession method (`to_device` or `signature`).
    pub proof: String,
    /// The key to be attested, bound when the challenge was made (unpadded
    /// base64): the device key, or the master key for identities.
    pub key: String,
    /// The device's Ed25519 key as /keys/query served it (and, for
    /// `to_device`, the key the Olm message was encrypted for).
    pub device_key: String,
    /// Creation time (unix ms).
    pub created_at: i64,
    /// After this time (unix ms) the challenge is no longer accepted.
    pub expires_at: i64,
    /// When it was consumed, if it was.
    pub used_at: Option<i64>,
}

/// What consuming a challenge must match: the caller's claim about whom it
/// was sent to, checked in the same conditional `UPDATE` that consumes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengeClaim {
    /// The challenge id (the SHA-256 of its secret).
    pub id: String,
    /// The authority the caller acts for.
    pub authority_id: String,
    /// The user the caller enrolls.
    pub user_id: String,
    /// The device the caller says received the challenge.
    pub device_id: String,
    /// The key the caller wants attested (unpadded base64): it must be the
    /// key bound when the challenge was made.
    pub key: String,
    /// The time of consumption (unix ms); the challenge must not have
    /// expired by then.
    pub now: i64,
}

/// Result of [`Store::consume_challenge`](super::Store::consume_challenge)
/// and of the claim in [`Store::enroll_certificate`](super::Store::enroll_certificate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeOutcome {
    /// Consumed now, by this caller; nobody else will ever get `Ok` for it.
    Ok,
    /// No challenge with that id exists (or it was purged).
    Unknown,
    /// It exists and is bound as claimed, but expired.
    Expired,
    /// It exists and is bound as claimed, but was consumed before.
    AlreadyUsed,
    /// It exists but was issued for another authority, user or device.
    /// Such an attempt does not burn the challenge.
    WrongBinding,
    /// It exists, is bound as claimed and usable, but the key claimed is
    /// not the key bound when it was made. Does not burn it either.
    KeyMismatch,
}

/// What a certificate attests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateKind {
    /// A Matrix device's Ed25519 key (EKU ARC.1).
    Device,
    /// A user's cross-signing master key (EKU ARC.2).
    Identity,
    /// An agency's mTLS client certificate for the service (EKU ARC.3).
    EnrollmentClient,
    /// An agency's RSA key that signs the user's master key for Element's
    /// `io.element.x509` (EKU ARC.5); never published, never renewed.
    IdentitySigning,
    /// A pseudonymous citizen's device (EKU ARC.6, level of assurance in
    /// ARC.12); never published, never renewed (a renewal needs a fresh
    /// identity-provider assertion).
    Citizen,
}

impl CertificateKind {
    /// The value stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Device => "device",
            Self::Identity => "identity",
            Self::EnrollmentClient => "enrollment_client",
            Self::IdentitySigning => "identity_signing",
            Self::Citizen => "citizen",
        }
    }

    /// Parses the stored value; anything else means the row is corrupt.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "device" => Ok(Self::Device),
            "identity" => Ok(Self::Identity),
            "enrollment_client" => Ok(Self::EnrollmentClient),
            "identity_signing" => Ok(Self::IdentitySigning),
            "citizen" => Ok(Self::Citizen),
            other => Err(StoreError::Corrupt(format!(
                "unknown certificate kind {other:?}"
            ))),
        }
    }
}

/// Lifecycle state of a stored certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateStatus {
    /// Current certificate for its binding.
    Valid,
    /// Revoked; it has a row in `revocations` and is listed on CRLs.
    Revoked,
    /// Replaced by a renewal. It is still cryptographically valid until
    /// `not_after`, so it can (and on compromise must) still be revoked.
    Superseded,
}

impl CertificateStatus {
    /// The value stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Revoked => "revoked",
            Self::Superseded => "superseded",
        }
    }

    /// Parses the stored value; anything else means the row is corrupt.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "valid" => Ok(Self::Valid),
            "revoked" => Ok(Self::Revoked),
            "superseded" => Ok(Self::Superseded),
            other => Err(StoreError::Corrupt(format!(
                "unknown certificate status {other:?}"
            ))),
        }
    }
}

/// A certificate to be stored by
/// [`Store::insert_certificate`](super::Store::insert_certificate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCertificate {
    /// Lower-case hex serial number, unique across all issuing CAs.
    pub serial: String,
    /// Identifier of the issuing CA (the service's name for it).
    pub issuing_ca: String,
    /// Device, identity or enrollment client.
    pub kind: CertificateKind,
    /// The attested Matrix user; `None` for enrollment-client certificates.
    pub user_id: Option<String>,
    /// The attested device (device certificates only).
    pub device_id: Option<String>,
    /// The certified public key (unpadded base64 of the Ed25519 key for
    /// attestations).
    pub key: String,
    /// The authority in the subject DN; must exist.
    pub authority_id: String,
    /// Start of validity (unix ms).
    pub not_before: i64,
    /// End of validity (unix ms).
    pub not_after: i64,
    /// The DER-encoded leaf certificate.
    pub der: Vec<u8>,
    /// The certificate this one renews. In the same transaction the old one
    /// is marked superseded (if it is still valid).
    pub renewed_from: Option<String>,
    /// Issuance time (unix ms); also the time of its audit entry.
    pub created_at: i64,
}

/// A stored certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    /// Lower-case hex serial number.
    pub serial: String,
    /// Identifier of the issuing CA.
    pub issuing_ca: String,
    /// Device, identity or enrollment client.
    pub kind: CertificateKind,
    /// The attested Matrix user (`None` for enrollment clients).
    pub user_id: Option<String>,
    /// The attested device (device certificates only).
    pub device_id: Option<String>,
    /// The certified public key.
    pub key: String,
    /// The authority in the subject DN.
    pub authority_id: String,
    /// Start of validity (unix ms).
    pub not_before: i64,
    /// End of validity (unix ms).
    pub not_after: i64,
    /// The DER-encoded leaf certificate.
    pub der: Vec<u8>,
    /// Valid, revoked or superseded.
    pub status: CertificateStatus,
    /// The certificate this one renewed.
    pub renewed_from: Option<String>,
    /// Issuance time (unix ms).
    pub created_at: i64,
    /// Set while a replica holds the renewal claim (unix ms lease end).
    pub renewal_claimed_until: Option<i64>,
}

/// Result of [`Store::revoke`](super::Store::revoke).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RevokeOutcome {
    /// Revoked now (status, revocation row, audit entry and outbox item
    /// were written together).
    Revoked,
    /// It had been revoked before; nothing was written.
    AlreadyRevoked,
    /// No certificate with that serial; nothing was written.
    Unknown,
}

/// One revoked certificate, as a CRL lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// Lower-case hex serial number.
    pub serial: String,
    /// Revocation time (unix ms).
    pub revoked_at: i64,
    /// Reason as given to [`Store::revoke`](super::Store::revoke)
    /// (e.g. `keyCompromise`).
    pub reason: String,
}

/// A signed CRL to keep as the latest one of its issuing CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCrl {
    /// Identifier of the issuing CA.
    pub issuing_ca: String,
    /// CRL number, from [`Store::allocate_crl_number`](super::Store::allocate_crl_number).
    pub number: u64,
    /// The DER-encoded CRL.
    pub der: Vec<u8>,
    /// thisUpdate (unix ms).
    pub this_update: i64,
    /// nextUpdate (unix ms).
    pub next_update: i64,
    /// How many revocations its CA had when the CRL's entries were read
    /// (the count [`Store::crl_entries`](super::Store::crl_entries) returns
    /// with them). Revocations are never deleted, so the CRL lists every
    /// revocation exactly while [`Store::revocation_count`](super::Store::revocation_count)
    /// still equals it. `None` for a CRL stored before the count was kept:
    /// whether it is complete is unknown.
    pub revocation_count: Option<u64>,
}

/// A Matrix state event to publish, queued in the same transaction as the
/// change it announces (transactional outbox).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOutboxItem {
    /// What it is; today always `attestation` (`io.govtrust.attestation`).
    pub kind: String,
    /// The event's state key. A newer item with the same state key
    /// supersedes older unpublished ones: only the latest is published.
    pub state_key: String,
    /// The event content.
    pub content: serde_json::Value,
}

/// Publication state of an outbox row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting to be published (possibly claimed by a publisher right now).
    Pending,
    /// Published; `event_id` says as which event.
    Published,
    /// A newer item for the same state key replaced it before publication.
    Superseded,
}

impl OutboxState {
    /// The value stored in the `state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Published => "published",
            Self::Superseded => "superseded",
        }
    }

    /// Parses the stored value; anything else means the row is corrupt.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(Self::Pending),
            "published" => Ok(Self::Published),
            "superseded" => Ok(Self::Superseded),
            other => Err(StoreError::Corrupt(format!(
                "unknown outbox state {other:?}"
            ))),
        }
    }
}

/// A stored outbox row.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxRecord {
    /// Monotonic id; larger means newer.
    pub id: i64,
    /// What it is (`attestation`).
    pub kind: String,
    /// The event's state key.
    pub state_key: String,
    /// The event content.
    pub content: serde_json::Value,
    /// Pending, published or superseded.
    pub state: OutboxState,
    /// When it was queued (unix ms).
    pub created_at: i64,
    /// How often it was claimed for publication.
    pub attempts: i64,
    /// Not claimable before this time (unix ms).
    pub next_attempt_at: i64,
    /// Lease end (unix ms) while a publisher holds it.
    pub claimed_until: Option<i64>,
    /// The last publication error.
    pub last_error: Option<String>,
    /// When it was published (unix ms).
    pub published_at: Option<i64>,
    /// The Matrix event id it was published as.
    pub event_id: Option<String>,
}

/// What an operator token may do. The API's permission table
/// (`crate::caller::Permission`) says which roles each endpoint admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorRole {
    /// Everything, including managing tokens.
    Admin,
    /// The authority registry: create, update, suspend, activate
    /// authorities, issue enrollment clients.
    Registrar,
    /// Revoking certificates.
    Revoker,
    /// Read-only: certificates, authorities, the audit log.
    Auditor,
}

impl OperatorRole {
    /// Every role, in the order documentation lists them.
    pub const ALL: [OperatorRole; 4] = [Self::Admin, Self::Registrar, Self::Revoker, Self::Auditor];

    /// The role's name (API, database, CLI).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Registrar => "registrar",
            Self::Revoker => "revoker",
            Self::Auditor => "auditor",
        }
    }

    /// Parses a role name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The stored form of a set of roles: names joined by commas.
    pub fn join(roles: &[OperatorRole]) -> String {
        roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Parses the stored form; an unknown name means the row is corrupt.
    pub fn split(stored: &str) -> Result<Vec<OperatorRole>, StoreError> {
        stored
            .split(',')
            .map(|name| {
                Self::parse(name.trim())
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown operator role {name:?}")))
            })
            .collect()
    }
}

impl std::fmt::Display for OperatorRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operator's API token (only its hash is stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorToken {
    /// Token name (audit actor `operator:<name>`); unique, kept after
    /// revocation so that the audit log's names stay unambiguous.
    pub name: String,
    /// Lower-case hex SHA-256 of the bearer token.
    pub token_hash: String,
    /// What it may do; never empty.
    pub roles: Vec<OperatorRole>,
    /// When it was created (unix ms).
    pub created_at: i64,
    /// It is refused from this time on (unix ms), if set.
    pub expires_at: Option<i64>,
    /// When it was revoked (unix ms); a revoked token is refused.
    pub revoked_at: Option<i64>,
    /// When its secret was last replaced (unix ms), if ever.
    pub rotated_at: Option<i64>,
}

impl OperatorToken {
    /// A fresh token with `roles`, no expiry, never revoked or rotated.
    pub fn new(
        name: impl Into<String>,
        token_hash: impl Into<String>,
        roles: Vec<OperatorRole>,
        created_at: i64,
    ) -> Self {
        OperatorToken {
            name: name.into(),
            token_hash: token_hash.into(),
            roles,
            created_at,
            expires_at: None,
            revoked_at: None,
            rotated_at: None,
        }
    }

    /// Whether it authenticates at `now`: not revoked and not expired.
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// What `GET /v1/certificates?status=` selects. The four values partition
/// the certificates at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListedStatus {
    /// Valid and not expired: the current certificate of its binding.
    Live,
    /// Revoked (whether expired or not).
    Revoked,
    /// Not revoked and past `not_after`.
    Expired,
    /// Replaced by a renewal or a new enrollment and not expired (it still
    /// verifies until `not_after`).
    Superseded,
}

impl ListedStatus {
    /// Every value, for error messages.
    pub const ALL: [ListedStatus; 4] = [Self::Live, Self::Revoked, Self::Expired, Self::Superseded];

    /// The value's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Superseded => "superseded",
        }
    }

    /// Parses a name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Where a stored certificate falls at `now`.
    pub fn of(cert: &Certificate, now: i64) -> Self {
        match cert.status {
            CertificateStatus::Revoked => Self::Revoked,
            _ if cert.not_after <= now => Self::Expired,
            CertificateStatus::Valid => Self::Live,
            CertificateStatus::Superseded => Self::Superseded,
        }
    }
}

/// A page request of [`Store::list_certificates`](super::Store::list_certificates):
/// filters, and the keyset position to continue after.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertificateQuery {
    /// Only this authority's certificates.
    pub authority_id: Option<String>,
    /// Only this Matrix user's certificates.
    pub user_id: Option<String>,
    /// Only certificates in this state at `now`.
    pub status: Option<ListedStatus>,
    /// Only certificates with `not_after` before this time (unix ms).
    pub expiring_before: Option<i64>,
    /// The time `status` is judged at (unix ms).
    pub now: i64,
    /// Continue after this (created_at, serial), exclusive.
    pub after: Option<(i64, String)>,
    /// Page size.
    pub limit: u32,
}

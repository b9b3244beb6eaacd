//! The enrollment API's bodies (DESIGN.md "Enrollment flow"):
//! `POST /v1/enrollment/challenge` and `POST /v1/enrollment`, and the object
//! a device signs for `signature` proof of possession.
//!
//! Both request bodies refuse unknown fields: a misspelt optional field
//! must be an error, not silently the default.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which key an enrollment attests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The device's own Ed25519 key.
    Device,
    /// The user's cross-signing master key.
    Identity,
}

/// How the agency proves it controls the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Proof {
    /// The service sends a secret Olm-encrypted to exactly that device; the
    /// agency returns it. Works with stock matrix-sdk 0.18.
    #[default]
    ToDevice,
    /// The service returns a nonce; the device signs the signing payload
    /// with its Ed25519 key (Matrix signing rules: canonical JSON).
    Signature,
}

impl Proof {
    /// The name the API and the store use.
    pub fn as_str(self) -> &'static str {
        match self {
            Proof::ToDevice => "to_device",
            Proof::Signature => "signature",
        }
    }
}

/// `POST /v1/enrollment/challenge`
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// Device or identity attestation.
    pub kind: Kind,
    /// The agency's Matrix user.
    pub user_id: String,
    /// The device that receives (or signs) the challenge. For identity
    /// enrollment: a device of the user signed by its self-signing key.
    pub device_id: String,
    /// Proof of possession method.
    #[serde(default)]
    pub proof: Proof,
}

/// Answer to a challenge request.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ChallengeResponse {
    /// The proof method in force.
    pub proof: Proof,
    /// Milliseconds since the Unix epoch after which the challenge is void.
    pub expires_at: i64,
    /// With `signature` proof: the object the device signs (canonical JSON,
    /// Matrix signing rules), containing the nonce. Absent for `to_device`,
    /// where the secret only ever travels to the device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_payload: Option<serde_json::Value>,
}

/// `POST /v1/enrollment`
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// Device or identity attestation.
    pub kind: Kind,
    /// The agency's Matrix user.
    pub user_id: String,
    /// The device the challenge went to.
    pub device_id: String,
    /// The key to attest (device key or master key), standard base64.
    pub key: String,
    /// The secret the device received (`to_device`) or the nonce (`signature`).
    pub challenge: String,
    /// With `signature` proof: the device's Ed25519 signature over the
    /// signing payload, base64.
    #[serde(default)]
    pub signature: Option<String>,
    /// Wait up to this many milliseconds for the state event to be
    /// published, to return its event ID (default 3000, at most 10000).
    #[serde(default)]
    pub wait_for_event_ms: Option<u64>,
}

/// A successful enrollment.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EnrollResponse {
    /// Certificate serial, hex.
    pub serial: String,
    /// The chain, leaf first, standard base64 DER (as in the state event).
    pub chain: Vec<String>,
    /// The chain as PEM.
    pub chain_pem: String,
    /// RFC 3339 end of validity.
    pub not_after: String,
    /// State key of the `io.govtrust.attestation` event.
    pub state_key: String,
    /// The event ID once published; `null` if publication is pending
    /// (the outbox retries until the homeserver takes it).
    pub event_id: Option<String>,
}

/// The object a device signs for `signature` proof: it names the
/// challenge, the user, the device and the service (`service`: its public
/// base URL), so a signature made for one enrollment cannot be replayed to
/// another service or for another device.
pub fn signing_payload(service: &str, nonce: &str, user: &str, device: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "io.govtrust.enrollment",
        "challenge": nonce,
        "user_id": user,
        "device_id": device,
        "service": service,
    })
}

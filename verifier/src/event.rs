//! The `io.govtrust.attestation` state event: its content, state key and
//! size limits.
//!
//! The homeserver is untrusted, so the content is transport only: the chain
//! is what gets verified, against the key from the client's crypto store.
//! The other fields are informational, except that a `revoked` marker is
//! honoured (it can only make the verdict stricter).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use crate::matrix_id::UserId;
use crate::{Error, Subject};

/// Event type of attestation state events.
pub const EVENT_TYPE: &str = "io.govtrust.attestation";
/// Largest accepted content, in bytes of JSON. Matrix caps whole events at
/// 65,536 bytes; a two-certificate chain needs about 2 KiB.
pub const MAX_CONTENT_BYTES: usize = 16 * 1024;
/// Most certificates in a chain (leaf, issuing CA, and room for one more).
pub const MAX_CHAIN_LEN: usize = 4;
/// Largest accepted DER certificate.
pub const MAX_CERT_BYTES: usize = 4 * 1024;

/// Content of an `io.govtrust.attestation` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationContent {
    /// Content format version; this crate understands 1.
    pub version: u32,
    /// `device` or `identity`.
    pub kind: AttestationKind,
    /// The attested user (informational).
    pub user_id: String,
    /// The attested device (informational; device attestations only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The attested key, unpadded base64 (informational).
    pub key: String,
    /// Standard base64 of the DER certificates, leaf first, then its issuing CA.
    pub chain: Vec<String>,
    /// Leaf notAfter, milliseconds since the Unix epoch (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Set when the service revoked the certificate.
    #[serde(default)]
    pub revoked: Option<RevocationNotice>,
}

/// Kind of attestation named in the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttestationKind {
    /// A device key attestation.
    Device,
    /// A cross-signing identity attestation.
    Identity,
}

/// The service's note that the certificate was revoked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationNotice {
    /// Revocation time, milliseconds since the Unix epoch.
    pub revoked_at: u64,
    /// RFC 5280 reason name, e.g. `key_compromise`.
    pub reason: String,
}

impl AttestationContent {
    /// Parses event content JSON, enforcing the size and chain limits.
    pub fn from_json(json: &[u8]) -> Result<Self, Error> {
        if json.len() > MAX_CONTENT_BYTES {
            return Err(Error::EventTooLarge {
                size: json.len(),
                limit: MAX_CONTENT_BYTES,
            });
        }
        let content: AttestationContent =
            serde_json::from_slice(json).map_err(|e| Error::malformed("attestation event", e))?;
        if content.version != 1 {
            return Err(Error::malformed(
                "attestation event",
                format!("unsupported version {}", content.version),
            ));
        }
        if content.chain.is_empty() || content.chain.len() > MAX_CHAIN_LEN {
            return Err(Error::malformed(
                "attestation event",
                format!("chain must hold 1 to {MAX_CHAIN_LEN} certificates"),
            ));
        }
        Ok(content)
    }

    /// Serialises the content as event JSON.
    pub fn to_json(&self) -> String {
        // Serialising this plain struct cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Decodes the chain into DER certificates, leaf first.
    pub fn chain_der(&self) -> Result<Vec<CertificateDer<'static>>, Error> {
        self.chain
            .iter()
            .map(|b64| {
                if b64.len() > MAX_CERT_BYTES * 4 / 3 + 4 {
                    return Err(Error::malformed(
                        "attestation chain",
                        "certificate too large",
                    ));
                }
                STANDARD
                    .decode(b64)
                    .map(CertificateDer::from)
                    .map_err(|e| Error::malformed("attestation chain", e))
            })
            .collect()
    }

    /// Whether the service marked the certificate revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked.is_some()
    }
}

/// The state key an attestation for `subject` of `user` is published under:
/// `device|<user_id>|<device_id>` or `identity|<user_id>` (a state key may
/// not start with `@`, which the spec reserves for that user).
pub fn state_key(user: &UserId, subject: &Subject) -> String {
    match subject {
        Subject::Device(device) => format!("device|{user}|{device}"),
        Subject::Identity => format!("identity|{user}"),
    }
}

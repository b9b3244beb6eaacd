//! The contents of `io.govtrust.sealed` and `io.govtrust.receipt` events
//! (docs/profile.md §16): their wire types, size limits and the builders
//! that produce the bytes to sign and take the signature back.
//!
//! It exists so that agencies and clients build exactly the structures the
//! verifiers ([`super::seal`], [`super::receipt`]) parse: one definition of
//! the wire format, with `deny_unknown_fields` everywhere.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::signing::{add_signature, signing_bytes_of};
use crate::Error;

/// Event type of a sealed document (a room message event).
pub const SEALED_EVENT_TYPE: &str = "io.govtrust.sealed";
/// Event type of a citizen's receipt for a sealed document.
pub const RECEIPT_EVENT_TYPE: &str = "io.govtrust.receipt";
/// Version of both contents defined here.
pub const SEALED_VERSION: u32 = 1;
/// Largest sealed content accepted (Matrix caps a whole event at 65,536
/// bytes; this leaves room for the envelope and encryption).
pub const MAX_SEALED_CONTENT_BYTES: usize = 48 * 1024;
/// Largest receipt content accepted.
pub const MAX_RECEIPT_CONTENT_BYTES: usize = 4 * 1024;

/// Signatures in the Matrix layout: user ID → key ID → unpadded base64.
pub type Signatures = BTreeMap<String, BTreeMap<String, String>>;

/// The device whose attested key sealed the document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerRef {
    /// The signer's user ID; must be the event's sender.
    pub user_id: String,
    /// The signer's device ID (the attestation's ARC.10).
    pub device_id: String,
    /// The signer's Ed25519 key, unpadded base64 (the attestation's SPKI).
    pub key: String,
}

/// What the agency states about the document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealMetadata {
    /// The issuing authority's ID; must be the attestation's authority record ID.
    pub authority_id: String,
    /// The agency's reference number (Aktenzeichen).
    pub reference: String,
    /// When the agency sealed the document, milliseconds since the Unix epoch.
    pub issued_at: u64,
}

/// The sealed document itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Document {
    /// A JSON document (e.g. a FIM decision with its `$schema`). It must be
    /// expressible in canonical JSON: no floats, integers within ±(2^53 − 1).
    Json {
        /// The document.
        json: Value,
    },
    /// A file sent separately (e.g. a PDF in the media repository), sealed
    /// by its hash.
    File {
        /// SHA-256 of the file's bytes, lower-case hex.
        sha256: String,
        /// Where the file is, e.g. an `mxc://` URI.
        url: String,
        /// Its media type, e.g. `application/pdf`.
        media_type: String,
        /// Its size in bytes.
        size: u64,
    },
}

/// The content of an `io.govtrust.sealed` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedContent {
    /// [`SEALED_VERSION`].
    pub version: u32,
    /// The room the document is sealed for.
    pub room_id: String,
    /// The Matrix user that sends it (the agency account).
    pub sender: String,
    /// The attested device that sealed it.
    pub signer: SignerRef,
    /// Authority ID, reference number, `issued_at`.
    pub metadata: SealMetadata,
    /// The document.
    pub document: Document,
    /// SHA-256 of the canonical JSON of `document`, lower-case hex.
    pub document_sha256: String,
    /// The signer's attestation chain, leaf first, padded base64 DER.
    pub chain: Vec<String>,
    /// `{sender: {"ed25519:<device>": signature}}`.
    #[serde(default)]
    pub signatures: Signatures,
}

/// The content of an `io.govtrust.receipt` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptContent {
    /// [`SEALED_VERSION`].
    pub version: u32,
    /// The room of the sealed event.
    pub room_id: String,
    /// The sealed event's ID.
    pub event_id: String,
    /// The sealed content's `document_sha256`.
    pub document_sha256: String,
    /// When the citizen's client received and verified it, ms since the epoch.
    pub received_at: u64,
    /// The citizen's user ID.
    pub user_id: String,
    /// The citizen's device whose key signs the receipt.
    pub device_id: String,
    /// `{user_id: {"ed25519:<device>": signature}}`.
    #[serde(default)]
    pub signatures: Signatures,
}

impl SealedContent {
    /// The bytes the signer signs (Matrix signing rules).
    pub fn signing_bytes(&self) -> Result<Vec<u8>, Error> {
        signing_bytes_of(self)
    }

    /// Adds the signer's signature (64 bytes) under `ed25519:<device>`.
    pub fn add_signature(&mut self, signature: &[u8]) {
        add_signature(
            &mut self.signatures,
            &self.signer.user_id,
            &self.signer.device_id,
            signature,
        );
    }

    /// Serializes the content as sent.
    pub fn to_json(&self) -> Result<String, Error> {
        serde_json::to_string(self).map_err(|e| Error::malformed("sealed event", e))
    }

    /// Parses content without verifying it (for archives and display).
    pub fn from_json(json: &[u8]) -> Result<Self, Error> {
        parse_object::<SealedContent>(json, "sealed event").map(|(_, c)| c)
    }
}

impl ReceiptContent {
    /// The bytes the citizen's device signs (Matrix signing rules).
    pub fn signing_bytes(&self) -> Result<Vec<u8>, Error> {
        signing_bytes_of(self)
    }

    /// Adds the device's signature (64 bytes) under `ed25519:<device>`.
    pub fn add_signature(&mut self, signature: &[u8]) {
        add_signature(
            &mut self.signatures,
            &self.user_id,
            &self.device_id,
            signature,
        );
    }

    /// Serializes the content as sent.
    pub fn to_json(&self) -> Result<String, Error> {
        serde_json::to_string(self).map_err(|e| Error::malformed("receipt", e))
    }

    /// Parses content without verifying it.
    pub fn from_json(json: &[u8]) -> Result<Self, Error> {
        parse_object::<ReceiptContent>(json, "receipt").map(|(_, c)| c)
    }
}

/// Parses `json` as an object and as `T`; returns both, so that signatures
/// are checked over the object as received.
pub(super) fn parse_object<T: for<'de> Deserialize<'de>>(
    json: &[u8],
    what: &'static str,
) -> Result<(Map<String, Value>, T), Error> {
    let value: Value = serde_json::from_slice(json).map_err(|e| Error::malformed(what, e))?;
    let Value::Object(object) = value else {
        return Err(Error::malformed(what, "not a JSON object"));
    };
    let content =
        T::deserialize(Value::Object(object.clone())).map_err(|e| Error::malformed(what, e))?;
    Ok((object, content))
}

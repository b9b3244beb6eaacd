//! Sealed documents (`io.govtrust.sealed`) and their receipts
//! (`io.govtrust.receipt`), docs/profile.md §15.
//!
//! A sealed event carries a machine-readable document (a JSON decision, or
//! the SHA-256 of a file with its media URL), the seal metadata (authority
//! ID, reference number, `issued_at`), the room ID and sender it was sealed
//! for, the signer's device attestation chain, and an Ed25519 signature by
//! the attested key over the Matrix signing bytes (canonical JSON of the
//! content without `signatures` and `unsigned`).
//!
//! [`SealedVerifier::verify_sealed`] decides offline, from the content, the
//! pinned roots and CRLs alone:
//!
//! 1. the content parses and is within [`MAX_SEALED_CONTENT_BYTES`];
//! 2. it was sealed for this room and this sender, and the signer is the
//!    sender's user (a copy replayed elsewhere is refused);
//! 3. `document_sha256` is the SHA-256 of the canonical JSON of `document`
//!    (`sealed_document_tampered` otherwise);
//! 4. the signature under `ed25519:<signer device>` verifies with the
//!    signer key over the signing bytes;
//! 5. the chain attests exactly that key for that user and device, and
//!    validates to a pinned root **at `issued_at`** (`signer_not_attested`
//!    wraps the attestation rule's reason);
//! 6. revocation as of `issued_at`: a certificate on the path that a CRL
//!    lists with a revocation date at or before `issued_at` is refused
//!    (`revoked_before_signing`); one revoked after `issued_at` leaves the
//!    seal valid (the CRL that lists it was signed after the seal, so it
//!    also speaks for the signing time). The CRL policy (required, fresh)
//!    is applied at `issued_at`;
//! 7. the metadata's authority ID is the certificate's authority record.
//!
//! Receipts are checked by [`verify_receipt`] against the key the caller
//! holds for the citizen's device (from its own crypto store), exactly as
//! attestations are.
//!
//! This module never holds a private key: the builders return the bytes to
//! sign and take the signature back.

use std::collections::BTreeMap;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::crl::CertUnderCheck;
use crate::event::{MAX_CERT_BYTES, MAX_CHAIN_LEN};
use crate::path::{validate_path, CaUsage, PathOptions, TrustAnchors};
use crate::profile::{self, Expected, Subject};
use crate::signature::PROFILE_ALGORITHMS;
use crate::verify::VerifiedAttestation;
use crate::{CrlPolicy, CrlSet, DeviceId, Ed25519Key, Error, PathPosition, UserId};

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

/// Where a sealed event was found: what it must be bound to.
#[derive(Clone, Copy, Debug)]
pub struct SealedContext<'a> {
    /// The room the event was received in.
    pub room_id: &'a str,
    /// The event's sender (as the homeserver and the event's encryption
    /// state report it).
    pub sender: &'a str,
}

/// A sealed document that passed every check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifiedSealed {
    /// The content as verified.
    pub content: SealedContent,
    /// The signer's attestation, validated at `issued_at`.
    pub attestation: VerifiedAttestation,
    /// When a certificate on the signer's path was revoked after
    /// `issued_at` (seconds since the epoch), if one was: the seal stays
    /// valid, but the signer may not seal anything newer.
    pub revoked_after_signing: Option<i64>,
}

impl VerifiedSealed {
    /// "sealed by <authority>" line for display.
    pub fn sealed_by(&self) -> String {
        format!("sealed by {}", self.attestation.authority)
    }
}

/// A receipt that passed every check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifiedReceipt {
    /// The content as verified.
    pub content: ReceiptContent,
}

/// What a receipt must match: the sealed event it answers and the
/// citizen's device key from the caller's own crypto store.
#[derive(Clone, Debug)]
pub struct ReceiptExpected<'a> {
    /// The room of the sealed event (and of the receipt).
    pub room_id: &'a str,
    /// The sealed event's ID.
    pub event_id: &'a str,
    /// The sealed content's `document_sha256`.
    pub document_sha256: &'a str,
    /// The receipt event's sender.
    pub user_id: &'a str,
    /// The receipt's device, as the caller knows it.
    pub device_id: &'a str,
    /// That device's Ed25519 key, from the caller's crypto store.
    pub key: Ed25519Key,
}

/// Decides sealed documents against pinned roots and a CRL policy.
#[derive(Debug)]
pub struct SealedVerifier {
    anchors: TrustAnchors,
    crl_policy: CrlPolicy,
}

impl SealedVerifier {
    /// A verifier trusting `anchors`, applying `crl_policy` at each seal's
    /// `issued_at`.
    pub fn new(anchors: TrustAnchors, crl_policy: CrlPolicy) -> Self {
        SealedVerifier {
            anchors,
            crl_policy,
        }
    }

    /// Verifies the content of an `io.govtrust.sealed` event found in
    /// `context` (see the module documentation for the order of checks).
    pub fn verify_sealed(
        &self,
        content_json: &[u8],
        context: &SealedContext<'_>,
        crls: &CrlSet,
    ) -> Result<VerifiedSealed, Error> {
        self.verify_with(content_json, context, crls, &self.crl_policy)
    }

    /// Every check of [`SealedVerifier::verify_sealed`] except revocation
    /// (no CRLs, none required): whether the seal is worth fetching CRLs
    /// for. A client fetches the CRLs the chain names only after this
    /// passed, so a forged chain cannot make it contact hosts the pinned
    /// hierarchy did not certify. Never a final verdict.
    pub fn precheck(
        &self,
        content_json: &[u8],
        context: &SealedContext<'_>,
    ) -> Result<VerifiedSealed, Error> {
        self.verify_with(
            content_json,
            context,
            &CrlSet::new(),
            &CrlPolicy::ALLOW_MISSING,
        )
    }

    fn verify_with(
        &self,
        content_json: &[u8],
        context: &SealedContext<'_>,
        crls: &CrlSet,
        crl_policy: &CrlPolicy,
    ) -> Result<VerifiedSealed, Error> {
        if content_json.len() > MAX_SEALED_CONTENT_BYTES {
            return Err(Error::EventTooLarge {
                size: content_json.len(),
                limit: MAX_SEALED_CONTENT_BYTES,
            });
        }
        let (object, content): (Map<String, Value>, SealedContent) =
            parse_object(content_json, "sealed event")?;
        if content.version != SEALED_VERSION {
            return Err(Error::malformed("sealed event", "unsupported version"));
        }
        let chain = decode_chain(&content.chain)?;
        if content.room_id != context.room_id {
            return Err(Error::SealedWrongRoom {
                expected: context.room_id.to_owned(),
                found: content.room_id,
            });
        }
        if content.sender != context.sender || content.signer.user_id != context.sender {
            return Err(Error::SealedWrongSender {
                expected: context.sender.to_owned(),
                found: if content.sender != context.sender {
                    content.sender
                } else {
                    content.signer.user_id
                },
            });
        }
        if document_sha256(&content.document)? != content.document_sha256 {
            return Err(Error::SealedDocumentTampered);
        }
        let expected = Expected {
            user_id: UserId::parse(&content.signer.user_id)?,
            subject: Subject::Device(DeviceId::parse(&content.signer.device_id)?),
            key: Ed25519Key::from_base64(&content.signer.key)?,
        };
        check_signature(
            &object,
            &content.signatures,
            &content.signer.user_id,
            &content.signer.device_id,
            &expected.key,
        )
        .map_err(|()| Error::SealedSignatureInvalid)?;

        let issued_at_ms = content.metadata.issued_at;
        let issued_at = i64::try_from(issued_at_ms / 1000)
            .map_err(|_| Error::malformed("sealed event", "issued_at out of range"))?;
        let (attestation, revoked_after_signing) = self
            .attested_at(&expected, &chain, crls, crl_policy, issued_at)
            .map_err(|e| match e {
                e @ Error::RevokedBeforeSigning { .. } => e,
                e => Error::SignerNotAttested(Box::new(e)),
            })?;
        if attestation.authority.id != content.metadata.authority_id {
            return Err(Error::SealedAuthorityMismatch {
                claimed: content.metadata.authority_id,
                certified: attestation.authority.id,
            });
        }
        Ok(VerifiedSealed {
            content,
            attestation,
            revoked_after_signing,
        })
    }

    /// The attestation rule at `issued_at` (seconds), with revocation as of
    /// that time.
    fn attested_at(
        &self,
        expected: &Expected,
        chain: &[CertificateDer<'static>],
        crls: &CrlSet,
        crl_policy: &CrlPolicy,
        issued_at: i64,
    ) -> Result<(VerifiedAttestation, Option<i64>), Error> {
        let (leaf_der, intermediates) = chain
            .split_first()
            .ok_or_else(|| Error::malformed("chain", "no certificate"))?;
        let leaf = parse_cert(leaf_der, "attestation certificate")?;
        let authority = profile::check_leaf(&leaf, expected)?;
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(issued_at).unwrap_or(0),
        ));
        // Path rules at the signing time; revocation is judged below, per
        // certificate, with the revocation dates.
        let empty = CrlSet::new();
        let path = validate_path(
            &self.anchors,
            leaf_der,
            intermediates,
            &PathOptions {
                algorithms: PROFILE_ALGORITHMS,
                eku: Some(expected.subject.eku()),
                time,
                crls: &empty,
                crl_policy: CrlPolicy::ALLOW_MISSING,
            },
        )?;
        let issuer = parse_cert(path.leaf_issuer(), "issuing CA certificate")?;
        profile::check_issuer(&issuer, expected)?;
        let root = parse_cert(&path.root, "root certificate")?;

        let mut revoked_after = None;
        for (index, der) in path.certificates.iter().enumerate() {
            let cert = parse_cert(der, "certificate")?;
            let issuer_der = path.certificates.get(index + 1).unwrap_or(&path.root);
            let issuer_cert = parse_cert(issuer_der, "CA certificate")?;
            let issuer_spki = issuer_cert.public_key().raw;
            let can_sign_crls = CaUsage::of_der(issuer_der)
                .map_err(|_| Error::malformed("CA certificate", "undecodable"))?
                .can_sign_crls;
            let position = if index == 0 {
                PathPosition::Leaf
            } else {
                PathPosition::Issuer
            };
            let issuer_name = tlv_content(cert.issuer().as_raw())
                .ok_or_else(|| Error::malformed("certificate", "issuer name"))?;
            let serial = cert.tbs_certificate.raw_serial();
            let under_check = CertUnderCheck {
                position,
                serial,
                issuer_name,
                issuer_spki,
                issuer_can_sign_crls: can_sign_crls,
            };
            match crls.check(under_check, time, crl_policy) {
                Ok(()) => {}
                Err(Error::Revoked { position }) => {
                    // Only CRLs whose signature verified can have said so;
                    // the earliest date any of them gives decides.
                    let revoked_at = crls
                        .iter()
                        .filter(|crl| crl.issuer_der() == issuer_name)
                        .filter(|crl| crl.verify_signed_by(issuer_spki).is_ok())
                        .filter_map(|crl| crl.lookup(serial))
                        .map(|entry| entry.revoked_at)
                        .min()
                        .ok_or(Error::Revoked { position })?;
                    if revoked_at <= issued_at {
                        return Err(Error::RevokedBeforeSigning {
                            position,
                            revoked_at,
                            issued_at,
                        });
                    }
                    revoked_after =
                        Some(revoked_after.map_or(revoked_at, |r: i64| r.min(revoked_at)));
                }
                Err(e) => return Err(e),
            }
        }
        Ok((
            VerifiedAttestation {
                user_id: expected.user_id.clone(),
                subject: expected.subject.clone(),
                key: expected.key,
                authority,
                serial: leaf.raw_serial_as_string().replace(':', ""),
                not_after: leaf.validity().not_after.timestamp(),
                issuer: issuer.subject().to_string(),
                root: root.subject().to_string(),
            },
            revoked_after,
        ))
    }
}

/// Verifies the content of an `io.govtrust.receipt` event against what the
/// caller expects: the sealed event it answers, and the citizen's device
/// key from the caller's own crypto store.
pub fn verify_receipt(
    content_json: &[u8],
    expected: &ReceiptExpected<'_>,
) -> Result<VerifiedReceipt, Error> {
    if content_json.len() > MAX_RECEIPT_CONTENT_BYTES {
        return Err(Error::EventTooLarge {
            size: content_json.len(),
            limit: MAX_RECEIPT_CONTENT_BYTES,
        });
    }
    let (object, content): (Map<String, Value>, ReceiptContent) =
        parse_object(content_json, "receipt")?;
    if content.version != SEALED_VERSION {
        return Err(Error::malformed("receipt", "unsupported version"));
    }
    let fields: [(&'static str, &str, &str); 5] = [
        ("room_id", &content.room_id, expected.room_id),
        ("event_id", &content.event_id, expected.event_id),
        (
            "document_sha256",
            &content.document_sha256,
            expected.document_sha256,
        ),
        ("user_id", &content.user_id, expected.user_id),
        ("device_id", &content.device_id, expected.device_id),
    ];
    for (field, found, wanted) in fields {
        if found != wanted {
            return Err(Error::ReceiptMismatch { field });
        }
    }
    check_signature(
        &object,
        &content.signatures,
        &content.user_id,
        &content.device_id,
        &expected.key,
    )
    .map_err(|()| Error::ReceiptSignatureInvalid)?;
    Ok(VerifiedReceipt { content })
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

/// SHA-256 (lower-case hex) of the canonical JSON of `document`: the value
/// of `document_sha256` and what receipts acknowledge.
pub fn document_sha256(document: &Document) -> Result<String, Error> {
    let value =
        serde_json::to_value(document).map_err(|e| Error::malformed("sealed document", e))?;
    let canonical = canonical(&value, "sealed document")?;
    Ok(hex(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    )
    .as_ref()))
}

/// Lower-case hex SHA-256 of raw bytes (a file sealed as [`Document::File`]).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Canonical JSON (Matrix specification appendix) of `value`.
pub fn canonical_json(value: &Value) -> Result<String, Error> {
    canonical(value, "JSON")
}

fn canonical(value: &Value, what: &'static str) -> Result<String, Error> {
    crate::element_x509::canonical_json(value).map_err(|e| match e {
        Error::MasterKeyInvalid(detail) => Error::malformed(what, detail),
        other => other,
    })
}

fn signing_bytes_of<T: Serialize>(content: &T) -> Result<Vec<u8>, Error> {
    match serde_json::to_value(content) {
        Ok(Value::Object(map)) => object_signing_bytes(&map),
        Ok(_) => Err(Error::malformed("content", "not a JSON object")),
        Err(e) => Err(Error::malformed("content", e)),
    }
}

fn object_signing_bytes(object: &Map<String, Value>) -> Result<Vec<u8>, Error> {
    let mut stripped = object.clone();
    stripped.remove("signatures");
    stripped.remove("unsigned");
    Ok(canonical(&Value::Object(stripped), "content")?.into_bytes())
}

fn add_signature(signatures: &mut Signatures, user: &str, device: &str, signature: &[u8]) {
    signatures.entry(user.to_owned()).or_default().insert(
        format!("ed25519:{device}"),
        STANDARD_NO_PAD.encode(signature),
    );
}

/// Checks the signature of `user`'s `ed25519:<device>` over the signing
/// bytes of `object` (the content as received, so unknown order or
/// formatting cannot matter).
fn check_signature(
    object: &Map<String, Value>,
    signatures: &Signatures,
    user: &str,
    device: &str,
    key: &Ed25519Key,
) -> Result<(), ()> {
    let signature = signatures
        .get(user)
        .and_then(|by_key| by_key.get(&format!("ed25519:{device}")))
        .ok_or(())?;
    let signature = STANDARD_NO_PAD
        .decode(signature.trim_end_matches('='))
        .map_err(|_| ())?;
    let message = object_signing_bytes(object).map_err(|_| ())?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key.as_bytes())
        .verify(&message, &signature)
        .map_err(|_| ())
}

fn parse_object<T: for<'de> Deserialize<'de>>(
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

fn decode_chain(chain: &[String]) -> Result<Vec<CertificateDer<'static>>, Error> {
    if chain.is_empty() || chain.len() > MAX_CHAIN_LEN {
        return Err(Error::malformed("chain", "wrong number of certificates"));
    }
    chain
        .iter()
        .map(|b64| {
            let der = STANDARD
                .decode(b64)
                .map_err(|e| Error::malformed("chain", e))?;
            if der.len() > MAX_CERT_BYTES {
                return Err(Error::malformed("chain", "certificate too large"));
            }
            Ok(CertificateDer::from(der))
        })
        .collect()
}

fn parse_cert<'a>(der: &'a [u8], what: &'static str) -> Result<X509Certificate<'a>, Error> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| Error::malformed(what, e))?;
    if !rest.is_empty() {
        return Err(Error::malformed(what, "trailing data"));
    }
    Ok(cert)
}

/// The content octets of one DER TLV (definite length), or `None`.
fn tlv_content(der: &[u8]) -> Option<&[u8]> {
    let (&first_len, rest) = der.get(1..)?.split_first()?;
    let (len, rest) = if first_len < 0x80 {
        (usize::from(first_len), rest)
    } else {
        let n = usize::from(first_len & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (len_bytes, rest) = rest.split_at(n);
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest)
    };
    (rest.len() == len).then_some(rest)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keypair() -> ring::signature::Ed25519KeyPair {
        // RFC 8032 test 1 secret key.
        let seed = [
            0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec,
            0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03,
            0x1c, 0xae, 0x7f, 0x60,
        ];
        ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).expect("seed")
    }

    fn receipt(key: &ring::signature::Ed25519KeyPair) -> ReceiptContent {
        let mut r = ReceiptContent {
            version: 1,
            room_id: "!room:hs".into(),
            event_id: "$ev".into(),
            document_sha256: "ab".repeat(32),
            received_at: 1_700_000_000_000,
            user_id: "@citizen:hs".into(),
            device_id: "CITDEV".into(),
            signatures: Signatures::new(),
        };
        let sig = key.sign(&r.signing_bytes().expect("bytes"));
        r.add_signature(sig.as_ref());
        r
    }

    fn expected(key: &ring::signature::Ed25519KeyPair) -> ReceiptExpected<'static> {
        use ring::signature::KeyPair;
        let mut pk = [0u8; 32];
        pk.copy_from_slice(key.public_key().as_ref());
        ReceiptExpected {
            room_id: "!room:hs",
            event_id: "$ev",
            document_sha256: Box::leak("ab".repeat(32).into_boxed_str()),
            user_id: "@citizen:hs",
            device_id: "CITDEV",
            key: Ed25519Key::from_bytes(pk),
        }
    }

    #[test]
    fn canonical_json_known_vectors() {
        // Matrix specification, appendix "Canonical JSON".
        let cases = [
            (json!({"one": 1, "two": "Two"}), r#"{"one":1,"two":"Two"}"#),
            (json!({"b": "2", "a": "1"}), r#"{"a":"1","b":"2"}"#),
            (
                json!({"auth": {"success": true, "mxid": "@john.doe:example.com",
                  "profile": {"display_name": "John Doe", "three_pids": [
                    {"medium": "email", "address": "john.doe@example.org"},
                    {"medium": "msisdn", "address": "123456789"}]}}}),
                r#"{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}"#,
            ),
            (json!({"a": "日本語"}), r#"{"a":"日本語"}"#),
            (json!({"本": 2, "日": 1}), r#"{"日":1,"本":2}"#),
            (json!({"a": "\u{65e5}"}), r#"{"a":"日"}"#),
            (json!({"a": null}), r#"{"a":null}"#),
            (json!({"a": -0}), r#"{"a":0}"#),
        ];
        for (value, want) in cases {
            assert_eq!(canonical_json(&value).expect("canonical"), want);
        }
        assert_eq!(
            canonical_json(&json!({"amount": 1.5})).map_err(|e| e.code()),
            Err("malformed")
        );
    }

    #[test]
    fn document_hash_is_over_canonical_json() {
        let doc = Document::Json {
            json: json!({"b": 1, "a": "x"}),
        };
        let want = sha256_hex(br#"{"json":{"a":"x","b":1},"kind":"json"}"#);
        assert_eq!(document_sha256(&doc).expect("hash"), want);
    }

    #[test]
    fn receipt_accepts_and_each_field_binds() {
        let key = keypair();
        let good = receipt(&key);
        let json = good.to_json().expect("json");
        verify_receipt(json.as_bytes(), &expected(&key)).expect("valid receipt");

        for field in [
            "room_id",
            "event_id",
            "document_sha256",
            "user_id",
            "device_id",
        ] {
            let mut exp = expected(&key);
            match field {
                "room_id" => exp.room_id = "!other:hs",
                "event_id" => exp.event_id = "$other",
                "document_sha256" => exp.document_sha256 = "00",
                "user_id" => exp.user_id = "@other:hs",
                _ => exp.device_id = "OTHER",
            }
            assert_eq!(
                verify_receipt(json.as_bytes(), &exp),
                Err(Error::ReceiptMismatch { field }),
                "{field}"
            );
        }
    }

    #[test]
    fn receipt_signature_binds_content_and_key() {
        let key = keypair();
        let mut tampered = receipt(&key);
        tampered.received_at += 1;
        let json = tampered.to_json().expect("json");
        assert_eq!(
            verify_receipt(json.as_bytes(), &expected(&key)).map_err(|e| e.code()),
            Err("receipt_signature_invalid")
        );
        let other = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[7; 32]).expect("seed");
        let json = receipt(&other).to_json().expect("json");
        assert_eq!(
            verify_receipt(json.as_bytes(), &expected(&key)).map_err(|e| e.code()),
            Err("receipt_signature_invalid")
        );
        let mut unsigned = receipt(&key);
        unsigned.signatures.clear();
        let json = unsigned.to_json().expect("json");
        assert_eq!(
            verify_receipt(json.as_bytes(), &expected(&key)).map_err(|e| e.code()),
            Err("receipt_signature_invalid")
        );
    }

    #[test]
    fn receipt_malformed() {
        let key = keypair();
        for bad in [&b"[]"[..], b"{", br#"{"version":1}"#] {
            assert_eq!(
                verify_receipt(bad, &expected(&key)).map_err(|e| e.code()),
                Err("malformed")
            );
        }
        let mut extra: Value =
            serde_json::from_str(&receipt(&key).to_json().expect("json")).expect("value");
        extra["surprise"] = json!(1);
        assert_eq!(
            verify_receipt(extra.to_string().as_bytes(), &expected(&key)).map_err(|e| e.code()),
            Err("malformed")
        );
    }

    #[test]
    fn tlv_content_reads_short_and_long_forms() {
        assert_eq!(tlv_content(&[0x30, 0x02, 1, 2]), Some(&[1u8, 2][..]));
        let mut long = vec![0x30, 0x81, 0x80];
        long.extend([0u8; 0x80]);
        assert_eq!(tlv_content(&long).map(<[u8]>::len), Some(0x80));
        assert_eq!(tlv_content(&[0x30, 0x03, 1, 2]), None);
        assert_eq!(tlv_content(&[0x30]), None);
    }
}

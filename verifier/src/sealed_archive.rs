//! The archive record of a sealed document: everything needed to re-verify
//! it offline years later (docs/profile.md §16.5). One record per sealed
//! event: the content as received, the room, event ID and sender, the CRLs
//! as of the time of archiving (DER), and the receipts with the citizen's
//! device key as the archiving agency's crypto store held it.
//!
//! [`verify_record`] re-runs [`SealedVerifier::verify_sealed`] and
//! [`verify_receipt`] on it; the pinned root comes from the caller, never
//! from the archive.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sealed::{
    verify_receipt, ReceiptExpected, SealedContext, SealedVerifier, VerifiedReceipt, VerifiedSealed,
};
use crate::{Crl, CrlSet, Ed25519Key, Error};

/// Version of [`ArchiveRecord`].
pub const ARCHIVE_VERSION: u32 = 1;

/// One sealed event and its evidence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveRecord {
    /// [`ARCHIVE_VERSION`].
    pub version: u32,
    /// The room the event was sent in.
    pub room_id: String,
    /// The sealed event's ID.
    pub event_id: String,
    /// The event's sender.
    pub sender: String,
    /// The homeserver's timestamp of the event (informational).
    pub origin_server_ts: Option<u64>,
    /// The `io.govtrust.sealed` content exactly as received.
    pub content: Value,
    /// CRLs (padded base64 DER) covering the signer's path, as of archiving.
    pub crls: Vec<String>,
    /// Receipts the citizen sent for this event.
    pub receipts: Vec<ArchivedReceipt>,
}

/// A receipt with the key it was checked against.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchivedReceipt {
    /// The receipt event's ID.
    pub event_id: String,
    /// The receipt event's sender.
    pub sender: String,
    /// The citizen device's Ed25519 key (unpadded base64) as the agency's
    /// crypto store held it when the receipt was archived.
    pub device_key: String,
    /// The `io.govtrust.receipt` content exactly as received.
    pub content: Value,
}

/// The outcome of re-verifying one record.
#[derive(Debug)]
pub struct RecordVerdict {
    /// The sealed document.
    pub sealed: VerifiedSealed,
    /// Each receipt's verdict, in record order.
    pub receipts: Vec<Result<VerifiedReceipt, Error>>,
}

impl ArchiveRecord {
    /// The record's CRLs, decoded.
    pub fn crl_set(&self) -> Result<CrlSet, Error> {
        self.crls
            .iter()
            .map(|b64| {
                let der = STANDARD
                    .decode(b64)
                    .map_err(|e| Error::malformed("archived CRL", e))?;
                Crl::from_der(&der)
            })
            .collect()
    }
}

/// Re-verifies an archive record (JSON) offline with `verifier`.
pub fn verify_record(
    verifier: &SealedVerifier,
    record_json: &[u8],
) -> Result<RecordVerdict, Error> {
    let record: ArchiveRecord =
        serde_json::from_slice(record_json).map_err(|e| Error::malformed("archive record", e))?;
    if record.version != ARCHIVE_VERSION {
        return Err(Error::malformed("archive record", "unsupported version"));
    }
    let content =
        serde_json::to_vec(&record.content).map_err(|e| Error::malformed("archive record", e))?;
    let sealed = verifier.verify_sealed(
        &content,
        &SealedContext {
            room_id: &record.room_id,
            sender: &record.sender,
        },
        &record.crl_set()?,
    )?;
    let receipts = record
        .receipts
        .iter()
        .map(|r| {
            let json =
                serde_json::to_vec(&r.content).map_err(|e| Error::malformed("receipt", e))?;
            let device_id = r
                .content
                .get("device_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            verify_receipt(
                &json,
                &ReceiptExpected {
                    room_id: &record.room_id,
                    event_id: &record.event_id,
                    document_sha256: &sealed.content.document_sha256,
                    user_id: &r.sender,
                    device_id,
                    key: Ed25519Key::from_base64(&r.device_key)?,
                },
            )
        })
        .collect();
    Ok(RecordVerdict { sealed, receipts })
}

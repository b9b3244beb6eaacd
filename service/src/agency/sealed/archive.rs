//! The archive of a room's sealed events: each with the receipts that
//! verify against the citizens' device keys and the CRLs given, written as
//! one JSON record per event for offline re-verification.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use govtrust_verifier::sealed::{
    verify_receipt, ReceiptExpected, RECEIPT_EVENT_TYPE, SEALED_EVENT_TYPE,
};
use govtrust_verifier::sealed_archive::{ArchiveRecord, ArchivedReceipt, ARCHIVE_VERSION};
use govtrust_verifier::Ed25519Key;
use matrix_sdk::room::MessagesOptions;
use matrix_sdk::ruma::{RoomId, UserId as RumaUserId};
use matrix_sdk::Client;
use serde_json::Value;

use super::error::{io, SealError};

/// Reads the room's history (as far as the server gives it) and builds one
/// archive record per sealed event the agency account sent, with every
/// receipt whose signature verifies with the citizen device key this
/// client's crypto store holds (asked from the homeserver if the store does
/// not know the device yet). Receipts that do not verify and events this
/// store cannot decrypt are left out and reported. `crls` (DER) are stored
/// with every record.
pub async fn archive_room(
    client: &Client,
    room_id: &RoomId,
    crls: &[Vec<u8>],
) -> Result<(Vec<ArchiveRecord>, Vec<String>), SealError> {
    let me = client
        .user_id()
        .ok_or_else(|| SealError::Matrix("not logged in".into()))?
        .to_owned();
    let room = client
        .get_room(room_id)
        .ok_or_else(|| SealError::Matrix(format!("not in room {room_id}")))?;
    let mut events: Vec<Value> = Vec::new();
    let mut from: Option<String> = None;
    for _ in 0..100 {
        let options = MessagesOptions::backward().from(from.as_deref());
        let page = room
            .messages(options)
            .await
            .map_err(|e| SealError::Matrix(e.to_string()))?;
        for event in &page.chunk {
            if let Ok(value) = event.raw().deserialize_as::<Value>() {
                events.push(value);
            }
        }
        match page.end {
            Some(end) if !page.chunk.is_empty() => from = Some(end),
            _ => break,
        }
    }
    events.reverse();
    let crl_b64: Vec<String> = crls.iter().map(|der| STANDARD.encode(der)).collect();
    let mut records: Vec<ArchiveRecord> = Vec::new();
    let mut refused = Vec::new();
    for event in events.iter().filter(|e| e["type"] == "m.room.encrypted") {
        // Not decryptable with this store's keys (e.g. sent by another
        // device of the account before this one joined): it may be a
        // sealed event, so say that it was left out rather than skip it.
        refused.push(format!(
            "event {}: could not be decrypted with this device's keys; not archived",
            event["event_id"].as_str().unwrap_or("(no ID)")
        ));
    }
    for event in events.iter().filter(|e| e["type"] == SEALED_EVENT_TYPE) {
        if event["sender"].as_str() != Some(me.as_str()) {
            continue;
        }
        let (Some(event_id), Some(content)) = (event["event_id"].as_str(), event.get("content"))
        else {
            continue;
        };
        records.push(ArchiveRecord {
            version: ARCHIVE_VERSION,
            room_id: room_id.to_string(),
            event_id: event_id.to_owned(),
            sender: me.to_string(),
            origin_server_ts: event["origin_server_ts"].as_u64(),
            content: content.clone(),
            crls: crl_b64.clone(),
            receipts: Vec::new(),
        });
    }
    for event in events.iter().filter(|e| e["type"] == RECEIPT_EVENT_TYPE) {
        let content = &event["content"];
        let (Some(sender), Some(receipt_id)) =
            (event["sender"].as_str(), event["event_id"].as_str())
        else {
            continue;
        };
        let Some(record) = records
            .iter_mut()
            .find(|r| Some(r.event_id.as_str()) == content["event_id"].as_str())
        else {
            continue;
        };
        match check_receipt(client, record, sender, content).await {
            Ok(device_key) => record.receipts.push(ArchivedReceipt {
                event_id: receipt_id.to_owned(),
                sender: sender.to_owned(),
                device_key,
                content: content.clone(),
            }),
            Err(why) => refused.push(format!("receipt {receipt_id}: {why}")),
        }
    }
    Ok((records, refused))
}

/// Verifies one receipt against the citizen device key from this
/// client's crypto store; returns that key.
pub async fn check_receipt(
    client: &Client,
    record: &ArchiveRecord,
    sender: &str,
    content: &Value,
) -> Result<String, SealError> {
    let device_id = content["device_id"].as_str().unwrap_or_default();
    let user = <&RumaUserId>::try_from(sender).map_err(|e| SealError::Matrix(e.to_string()))?;
    let encryption = client.encryption();
    let mut device = encryption
        .get_device(user, device_id.into())
        .await
        .map_err(|e| SealError::Matrix(e.to_string()))?;
    if device.is_none() {
        // A receipt device registered after this store last queried the
        // citizen's keys (e.g. an archive run right after the receipt, or
        // a store that was not syncing): ask the homeserver once.
        encryption
            .request_user_identity(user)
            .await
            .map_err(|e| SealError::Matrix(e.to_string()))?;
        device = encryption
            .get_device(user, device_id.into())
            .await
            .map_err(|e| SealError::Matrix(e.to_string()))?;
    }
    let device = device
        .ok_or_else(|| SealError::Matrix(format!("unknown device {device_id} of {sender}")))?;
    let key = device
        .ed25519_key()
        .ok_or_else(|| SealError::Matrix("device without Ed25519 key".into()))?
        .to_base64();
    let document_sha256 = record.content["document_sha256"]
        .as_str()
        .unwrap_or_default();
    let json = serde_json::to_vec(content).map_err(|e| SealError::Document(e.to_string()))?;
    verify_receipt(
        &json,
        &ReceiptExpected {
            room_id: &record.room_id,
            event_id: &record.event_id,
            document_sha256,
            user_id: sender,
            device_id,
            key: Ed25519Key::from_base64(&key).map_err(|e| SealError::Key(e.to_string()))?,
        },
    )
    .map_err(|e| SealError::Document(format!("{} ({})", e, e.code())))?;
    Ok(key)
}

/// Writes records into `dir` (created if missing): one pretty-printed
/// JSON file per sealed event, named after the SHA-256 of its event ID.
pub fn write_archive(dir: &Path, records: &[ArchiveRecord]) -> Result<Vec<PathBuf>, SealError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    records
        .iter()
        .map(|record| {
            let name = govtrust_verifier::sealed::sha256_hex(record.event_id.as_bytes());
            let path = dir.join(format!("{}.json", &name[..32]));
            let json = serde_json::to_vec_pretty(record)
                .map_err(|e| SealError::Document(e.to_string()))?;
            std::fs::write(&path, json).map_err(io(&path))?;
            Ok(path)
        })
        .collect()
}

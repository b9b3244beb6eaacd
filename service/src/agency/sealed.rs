//! Sealed documents, agency side (docs/profile.md §15): seal a document
//! with the agency's **sealing key**, validate it against the agency's
//! JSON Schemas, send it as `io.govtrust.sealed` into an (encrypted) room,
//! verify the citizens' receipts and export an archive that re-verifies
//! offline.
//!
//! # Why a sealing key and not the sending device's own key
//!
//! matrix-sdk 0.18 gives an application no way to sign bytes with its
//! device's Ed25519 key: `OlmMachine::sign` exists in matrix-sdk-crypto,
//! but the client's `OlmMachine` is reachable only through
//! `Client::olm_machine_for_testing` (feature `testing`) or the
//! crate-private `Client::base_client()`, and no public API exports or
//! signs with the account key. Rather than depend on a test feature or
//! export the key, the agency holds a **separate Ed25519 key** (PKCS#8,
//! mode 0600) that is registered as its own Matrix device of the agency
//! user ([`register_sealing_device`]: login + self-signed device keys) and
//! enrolled with the ordinary device attestation through the service's
//! `signature` proof ([`enroll_sealing_device`]). Seals name that device as
//! signer; the verifier requires the signer's user to be the event's
//! sender, so the matrix-sdk device of the same agency account sends them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use govtrust_api::enrollment::{ChallengeRequest, EnrollRequest, EnrollResponse, Kind, Proof};
use govtrust_verifier::sealed::{
    document_sha256, verify_receipt, Document, ReceiptExpected, SealMetadata, SealedContent,
    SignerRef, RECEIPT_EVENT_TYPE, SEALED_EVENT_TYPE, SEALED_VERSION,
};
use govtrust_verifier::sealed_archive::{ArchiveRecord, ArchivedReceipt, ARCHIVE_VERSION};
use govtrust_verifier::{profile, DeviceId, Ed25519Key, Expected, Subject, UserId};
use matrix_sdk::room::MessagesOptions;
use matrix_sdk::ruma::{OwnedEventId, RoomId, UserId as RumaUserId};
use matrix_sdk::Client;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::ServiceClient;

/// Why sealing, sending or archiving failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The sealing key could not be read or used.
    #[error("sealing key: {0}")]
    Key(String),
    /// The sealing certificate chain does not attest the sealing key.
    #[error("sealing certificate: {0}")]
    Certificate(String),
    /// The document cannot be sealed (not canonical JSON, too large).
    #[error("document: {0}")]
    Document(String),
    /// The document names a `$schema` the agency has not configured.
    #[error("no schema with $id {0} in the schema directory")]
    UnknownSchema(String),
    /// The document does not conform to its schema.
    #[error("the document does not conform to {schema}: {errors}")]
    Schema {
        /// The schema's `$id`.
        schema: String,
        /// The validation errors, joined.
        errors: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {detail}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The homeserver or matrix-sdk failed.
    #[error("Matrix: {0}")]
    Matrix(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SealError + '_ {
    move |e| SealError::Io {
        path: path.to_owned(),
        detail: e.to_string(),
    }
}

/// The agency's sealing key with the attestation chain that certifies it.
pub struct SealingKey {
    keypair: Ed25519KeyPair,
    user_id: String,
    device_id: String,
    chain: Vec<String>,
    authority_id: String,
    authority_name: String,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealingKey")
            .field("user_id", &self.user_id)
            .field("device_id", &self.device_id)
            .field("authority_id", &self.authority_id)
            .finish_non_exhaustive()
    }
}

/// A new Ed25519 key, PKCS#8 v2 DER, for a sealing device.
pub fn generate_sealing_key() -> Result<Vec<u8>, SealError> {
    Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
        .map(|doc| doc.as_ref().to_vec())
        .map_err(|_| SealError::Key("key generation failed".into()))
}

fn keypair(pkcs8: &[u8]) -> Result<Ed25519KeyPair, SealError> {
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
        .map_err(|e| SealError::Key(format!("not an Ed25519 PKCS#8 key: {e}")))
}

/// The unpadded base64 public key of a PKCS#8 Ed25519 key.
pub fn public_key_b64(pkcs8: &[u8]) -> Result<String, SealError> {
    Ok(STANDARD_NO_PAD.encode(keypair(pkcs8)?.public_key().as_ref()))
}

impl SealingKey {
    /// The key (PKCS#8 DER, or PEM `PRIVATE KEY`) and its attestation chain
    /// (PEM, leaf first) for `user_id`: the chain's leaf must attest
    /// exactly this key for this user and a device.
    pub fn new(key: &[u8], chain_pem: &[u8], user_id: &str) -> Result<Self, SealError> {
        let keypair = keypair(&pkcs8_der(key)?)?;
        let chain = govtrust_verifier::pem::certificates(chain_pem)
            .map_err(|e| SealError::Certificate(e.to_string()))?;
        let leaf_der = chain
            .first()
            .ok_or_else(|| SealError::Certificate("empty chain".into()))?;
        let (_, leaf) = X509Certificate::from_der(leaf_der)
            .map_err(|e| SealError::Certificate(e.to_string()))?;
        let cert_err = |e: govtrust_verifier::Error| SealError::Certificate(e.to_string());
        let device_id = profile::device_id(&leaf)
            .map_err(cert_err)?
            .ok_or_else(|| SealError::Certificate("not a device attestation".into()))?;
        let key_bytes: [u8; 32] = keypair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| SealError::Key("public key is not 32 bytes".into()))?;
        let authority = profile::check_leaf(
            &leaf,
            &Expected {
                user_id: UserId::parse(user_id).map_err(cert_err)?,
                subject: Subject::Device(DeviceId::parse(&device_id).map_err(cert_err)?),
                key: Ed25519Key::from_bytes(key_bytes),
            },
        )
        .map_err(cert_err)?;
        Ok(SealingKey {
            keypair,
            user_id: user_id.to_owned(),
            device_id,
            chain: chain.iter().map(|c| STANDARD.encode(c)).collect(),
            authority_id: authority.id.clone(),
            authority_name: authority.to_string(),
        })
    }

    /// [`SealingKey::new`] from files.
    pub fn load(key: &Path, chain: &Path, user_id: &str) -> Result<Self, SealError> {
        let key_bytes = std::fs::read(key).map_err(io(key))?;
        let chain_pem = std::fs::read(chain).map_err(io(chain))?;
        Self::new(&key_bytes, &chain_pem, user_id)
    }

    /// The sealing device's ID.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The authority the certificate names (display form).
    pub fn authority(&self) -> &str {
        &self.authority_name
    }

    /// Seals `document` for `room_id` at `issued_at_ms` under `reference`.
    pub fn seal(
        &self,
        room_id: &str,
        document: Document,
        reference: &str,
        issued_at_ms: u64,
    ) -> Result<SealedContent, SealError> {
        let mut content = SealedContent {
            version: SEALED_VERSION,
            room_id: room_id.to_owned(),
            sender: self.user_id.clone(),
            signer: SignerRef {
                user_id: self.user_id.clone(),
                device_id: self.device_id.clone(),
                key: STANDARD_NO_PAD.encode(self.keypair.public_key().as_ref()),
            },
            metadata: SealMetadata {
                authority_id: self.authority_id.clone(),
                reference: reference.to_owned(),
                issued_at: issued_at_ms,
            },
            document_sha256: document_sha256(&document)
                .map_err(|e| SealError::Document(e.to_string()))?,
            document,
            chain: self.chain.clone(),
            signatures: Default::default(),
        };
        let bytes = content
            .signing_bytes()
            .map_err(|e| SealError::Document(e.to_string()))?;
        content.add_signature(self.keypair.sign(&bytes).as_ref());
        Ok(content)
    }
}

fn pkcs8_der(key: &[u8]) -> Result<Vec<u8>, SealError> {
    let text = match std::str::from_utf8(key) {
        Ok(text) if text.contains("-----BEGIN") => text,
        _ => return Ok(key.to_vec()),
    };
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    STANDARD
        .decode(body.trim())
        .map_err(|e| SealError::Key(format!("PEM: {e}")))
}

/// PEM (`PRIVATE KEY`) of a PKCS#8 DER key.
pub fn pkcs8_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

/// The agency's JSON Schemas (from a local directory, never fetched),
/// by `$id`.
#[derive(Debug, Default)]
pub struct SchemaStore {
    schemas: HashMap<String, Value>,
}

impl SchemaStore {
    /// Loads every `*.json` file of `dir` that has a string `$id`.
    pub fn load_dir(dir: &Path) -> Result<Self, SealError> {
        let mut schemas = HashMap::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            let schema: Value = serde_json::from_slice(&bytes).map_err(|e| SealError::Io {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            if let Some(id) = schema.get("$id").and_then(Value::as_str) {
                schemas.insert(id.to_owned(), schema);
            }
        }
        Ok(SchemaStore { schemas })
    }

    /// Validates `document` against the schema its `$schema` names.
    /// Returns the schema ID, or `None` when the document names none.
    /// A `$schema` the store does not hold is an error: the agency sends
    /// only documents of the schemas it configured.
    pub fn check(&self, document: &Value) -> Result<Option<String>, SealError> {
        let Some(id) = document.get("$schema").and_then(Value::as_str) else {
            return Ok(None);
        };
        let schema = self
            .schemas
            .get(id)
            .ok_or_else(|| SealError::UnknownSchema(id.to_owned()))?;
        let validator = jsonschema::validator_for(schema).map_err(|e| SealError::Schema {
            schema: id.to_owned(),
            errors: format!("the schema itself is invalid: {e}"),
        })?;
        let errors: Vec<String> = validator
            .iter_errors(document)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        if errors.is_empty() {
            Ok(Some(id.to_owned()))
        } else {
            Err(SealError::Schema {
                schema: id.to_owned(),
                errors: errors.join("; "),
            })
        }
    }
}

/// Sends a sealed content into `room_id` (encrypted if the room is), with
/// the client of the agency account the seal names as sender.
pub async fn send_sealed(
    client: &Client,
    room_id: &RoomId,
    content: &SealedContent,
) -> Result<OwnedEventId, SealError> {
    let room = client
        .get_room(room_id)
        .ok_or_else(|| SealError::Matrix(format!("not in room {room_id}")))?;
    let value = serde_json::to_value(content).map_err(|e| SealError::Document(e.to_string()))?;
    let sent = room
        .send_raw(SEALED_EVENT_TYPE, value)
        .await
        .map_err(|e| SealError::Matrix(e.to_string()))?;
    Ok(sent.response.event_id)
}

/// Registers the sealing key as a Matrix device of `user` (password
/// login, then self-signed device keys), so the service can enroll it.
/// Returns the device ID.
pub async fn register_sealing_device(
    http: &reqwest::Client,
    homeserver: &url::Url,
    user: &str,
    password: &str,
    pkcs8: &[u8],
) -> Result<String, SealError> {
    let key = keypair(&pkcs8_der(pkcs8)?)?;
    let matrix = |e: reqwest::Error| SealError::Matrix(e.to_string());
    let url = |path: &str| {
        homeserver
            .join(path)
            .map_err(|e| SealError::Matrix(e.to_string()))
    };
    let session: Value = http
        .post(url("_matrix/client/v3/login")?)
        .json(&json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
            "initial_device_display_name": "govtrust sealing key",
        }))
        .send()
        .await
        .map_err(matrix)?
        .error_for_status()
        .map_err(matrix)?
        .json()
        .await
        .map_err(matrix)?;
    let field = |name: &str| {
        session[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| SealError::Matrix(format!("login answer without {name}")))
    };
    let (user_id, device_id, token) = (
        field("user_id")?,
        field("device_id")?,
        field("access_token")?,
    );
    // The device never runs Olm; a curve25519 key is still required by the
    // device-keys schema, so it gets a random one nobody holds.
    let mut curve = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut curve)
        .map_err(|_| SealError::Key("randomness".into()))?;
    let mut keys = json!({
        "user_id": user_id,
        "device_id": device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {
            format!("ed25519:{device_id}"): STANDARD_NO_PAD.encode(key.public_key().as_ref()),
            format!("curve25519:{device_id}"): STANDARD_NO_PAD.encode(curve),
        },
    });
    keys["signatures"] = json!({ user_id.clone(): {
        format!("ed25519:{device_id}"): sign_object(&key, &keys)?,
    }});
    http.post(url("_matrix/client/v3/keys/upload")?)
        .bearer_auth(&token)
        .json(&json!({ "device_keys": keys }))
        .send()
        .await
        .map_err(matrix)?
        .error_for_status()
        .map_err(matrix)?;
    Ok(device_id)
}

fn sign_object(key: &Ed25519KeyPair, object: &Value) -> Result<String, SealError> {
    let map = object
        .as_object()
        .ok_or_else(|| SealError::Document("not a JSON object".into()))?;
    let bytes = govtrust_api::keys::signing_bytes(map)
        .ok_or_else(|| SealError::Document("not canonical JSON".into()))?;
    Ok(STANDARD_NO_PAD.encode(key.sign(&bytes).as_ref()))
}

/// Enrolls the sealing device with the service (device attestation,
/// `signature` proof: the service's signing payload signed with the key).
pub async fn enroll_sealing_device(
    service: &ServiceClient,
    user: &str,
    device: &str,
    pkcs8: &[u8],
) -> anyhow::Result<EnrollResponse> {
    let key = keypair(&pkcs8_der(pkcs8)?)?;
    let answer = service
        .challenge(&ChallengeRequest {
            kind: Kind::Device,
            user_id: user.to_owned(),
            device_id: device.to_owned(),
            proof: Proof::Signature,
        })
        .await?;
    let payload = answer
        .signing_payload
        .ok_or_else(|| anyhow::anyhow!("the service sent no signing payload"))?;
    let challenge = payload["challenge"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("signing payload without challenge"))?
        .to_owned();
    service
        .enroll(&EnrollRequest {
            kind: Kind::Device,
            user_id: user.to_owned(),
            device_id: device.to_owned(),
            key: STANDARD_NO_PAD.encode(key.public_key().as_ref()),
            challenge,
            signature: Some(sign_object(&key, &payload)?),
            wait_for_event_ms: None,
            rsa_public_key: None,
        })
        .await
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> SchemaStore {
        let mut store = SchemaStore::default();
        store.schemas.insert(
            "https://schema.fim.example/decision/1.0.json".into(),
            json!({
                "$id": "https://schema.fim.example/decision/1.0.json",
                "type": "object",
                "required": ["decision"],
                "properties": {"decision": {"enum": ["approved", "rejected"]}},
            }),
        );
        store
    }

    #[test]
    fn schema_check_accepts_refuses_and_skips() {
        let store = store();
        let id = "https://schema.fim.example/decision/1.0.json";
        assert_eq!(
            store
                .check(&json!({"$schema": id, "decision": "approved"}))
                .ok()
                .flatten()
                .as_deref(),
            Some(id)
        );
        assert!(matches!(
            store.check(&json!({"$schema": id, "decision": "maybe"})),
            Err(SealError::Schema { .. })
        ));
        assert!(matches!(
            store.check(&json!({"$schema": "https://other", "decision": "approved"})),
            Err(SealError::UnknownSchema(_))
        ));
        assert!(matches!(store.check(&json!({"decision": 1})), Ok(None)));
    }

    #[test]
    fn pkcs8_pem_round_trips() {
        let der = generate_sealing_key().expect("key");
        let pem = pkcs8_pem(&der);
        assert_eq!(pkcs8_der(pem.as_bytes()).expect("der"), der);
        assert_eq!(
            public_key_b64(&der).expect("pk"),
            public_key_b64(&pkcs8_der(pem.as_bytes()).expect("der")).expect("pk")
        );
    }
}

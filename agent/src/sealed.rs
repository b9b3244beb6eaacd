//! Sealed documents, citizen side (docs/client.md "Sealed documents"):
//! [`SealedInbox`] verifies every incoming `io.govtrust.sealed` room event
//! with [`govtrust_verifier::SealedVerifier`] — bound to the room it
//! arrived in and its sender, the signer's chain to the pinned roots, CRLs
//! fetched from the chain's distribution points — and reports a
//! [`SealedDecision`]: `"sealed by <authority>"` or the typed rejection.
//! [`send_receipt`] answers a verified seal with an `io.govtrust.receipt`
//! signed by the citizen's receipt key ([`ReceiptKey`]).
//!
//! matrix-sdk 0.18 cannot sign bytes with the client's own device key
//! (see `govtrust_service::agency::sealed`), so receipts are signed by a
//! key the app holds, registered as its own Matrix device of the citizen:
//! the agency checks the receipt against that device's key from its own
//! crypto store, as it knows any of the citizen's devices.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use govtrust_verifier::sealed::{ReceiptContent, SEALED_EVENT_TYPE, SEALED_VERSION};
use govtrust_verifier::{Crl, CrlSet, SealedContext, SealedVerifier, VerifiedSealed};
use matrix_sdk::event_handler::EventHandlerHandle;
use matrix_sdk::ruma::events::AnySyncTimelineEvent;
use matrix_sdk::ruma::serde::Raw;
use matrix_sdk::ruma::{OwnedEventId, OwnedRoomId, OwnedUserId};
use matrix_sdk::{Client, Room};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::crls::{distribution_points, CrlFetcher};

/// What the inbox decided about one sealed event.
#[derive(Clone, Debug)]
pub struct SealedDecision {
    /// The room it arrived in.
    pub room_id: OwnedRoomId,
    /// Its event ID.
    pub event_id: OwnedEventId,
    /// Its sender.
    pub sender: OwnedUserId,
    /// Whether it arrived Megolm-encrypted.
    pub encrypted: bool,
    /// The verified seal, or why it was refused.
    pub verdict: Result<VerifiedSealed, govtrust_verifier::Error>,
}

impl SealedDecision {
    /// One line for a UI: `"sealed by …"` or `"refused (<code>): …"`.
    pub fn describe(&self) -> String {
        match &self.verdict {
            Ok(sealed) => format!(
                "{} ({}), reference {}",
                sealed.sealed_by(),
                sealed.attestation.authority.id,
                sealed.content.metadata.reference
            ),
            Err(e) => format!("refused ({}): {e}", e.code()),
        }
    }
}

/// Why sending a receipt failed.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The receipt key is not a usable Ed25519 PKCS#8 key.
    #[error("receipt key: {0}")]
    Key(String),
    /// The receipt could not be built.
    #[error("receipt: {0}")]
    Content(#[from] govtrust_verifier::Error),
    /// matrix-sdk failed to send it.
    #[error("Matrix: {0}")]
    Matrix(String),
}

/// The citizen's receipt key: an Ed25519 key registered as a Matrix device
/// (`device_id`) of the citizen.
pub struct ReceiptKey {
    user_id: String,
    device_id: String,
    keypair: Ed25519KeyPair,
}

impl std::fmt::Debug for ReceiptKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptKey")
            .field("user_id", &self.user_id)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl ReceiptKey {
    /// The key (PKCS#8 DER) of `user_id`'s device `device_id`.
    pub fn new(user_id: &str, device_id: &str, pkcs8: &[u8]) -> Result<Self, ReceiptError> {
        let keypair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|e| ReceiptError::Key(e.to_string()))?;
        Ok(ReceiptKey {
            user_id: user_id.to_owned(),
            device_id: device_id.to_owned(),
            keypair,
        })
    }

    /// The public key, unpadded base64.
    pub fn public_key(&self) -> String {
        STANDARD_NO_PAD.encode(self.keypair.public_key().as_ref())
    }

    /// A signed receipt for the sealed event `event_id` received at
    /// `received_at_ms`.
    pub fn receipt(
        &self,
        sealed: &VerifiedSealed,
        event_id: &str,
        received_at_ms: u64,
    ) -> Result<ReceiptContent, ReceiptError> {
        let mut receipt = ReceiptContent {
            version: SEALED_VERSION,
            room_id: sealed.content.room_id.clone(),
            event_id: event_id.to_owned(),
            document_sha256: sealed.content.document_sha256.clone(),
            received_at: received_at_ms,
            user_id: self.user_id.clone(),
            device_id: self.device_id.clone(),
            signatures: Default::default(),
        };
        let bytes = receipt.signing_bytes()?;
        receipt.add_signature(self.keypair.sign(&bytes).as_ref());
        Ok(receipt)
    }
}

/// Sends a signed receipt for a verified seal into its room.
pub async fn send_receipt(
    room: &Room,
    sealed: &VerifiedSealed,
    event_id: &str,
    key: &ReceiptKey,
) -> Result<OwnedEventId, ReceiptError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let receipt = key.receipt(sealed, event_id, now)?;
    let value = serde_json::to_value(&receipt).map_err(|e| {
        ReceiptError::Content(govtrust_verifier::Error::InvalidInput(e.to_string()))
    })?;
    let sent = room
        .send_raw(govtrust_verifier::sealed::RECEIPT_EVENT_TYPE, value)
        .await
        .map_err(|e| ReceiptError::Matrix(e.to_string()))?;
    Ok(sent.response.event_id)
}

/// Capacity of the decision broadcast.
const DECISION_BUFFER: usize = 256;
/// Most decisions [`SealedInbox::decisions`] keeps (the oldest half is
/// dropped when it is full).
pub const DECISIONS_KEPT: usize = 4096;

/// Verifies incoming sealed events as the app's sync brings them.
pub struct SealedInbox {
    client: Client,
    handle: EventHandlerHandle,
    decisions: broadcast::Sender<SealedDecision>,
    seen: Arc<Mutex<Vec<SealedDecision>>>,
}

impl std::fmt::Debug for SealedInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedInbox").finish_non_exhaustive()
    }
}

impl SealedInbox {
    /// Starts verifying sealed events on `client` with `verifier`, fetching
    /// the CRLs the signer's chain names through `crls`.
    pub fn start(
        client: &Client,
        verifier: Arc<SealedVerifier>,
        crls: Arc<dyn CrlFetcher>,
    ) -> Self {
        let (decisions, _) = broadcast::channel(DECISION_BUFFER);
        let seen: Arc<Mutex<Vec<SealedDecision>>> = Arc::default();
        let tx = decisions.clone();
        let log = seen.clone();
        let handle = client.add_event_handler(
            move |raw: Raw<AnySyncTimelineEvent>,
                  room: Room,
                  info: Option<matrix_sdk::deserialized_responses::EncryptionInfo>| {
                let (verifier, crls, tx, log) =
                    (verifier.clone(), crls.clone(), tx.clone(), log.clone());
                async move {
                    let Some(decision) =
                        decide(&raw, &room, info.is_some(), &verifier, &*crls).await
                    else {
                        return;
                    };
                    if let Ok(mut log) = log.lock() {
                        if log.len() >= DECISIONS_KEPT {
                            // Bounded: any room member can send sealed
                            // events, so a flood must not grow memory.
                            log.drain(..DECISIONS_KEPT / 2);
                        }
                        log.push(decision.clone());
                    }
                    let _ = tx.send(decision);
                }
            },
        );
        SealedInbox {
            client: client.clone(),
            handle,
            decisions,
            seen,
        }
    }

    /// Decisions as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<SealedDecision> {
        self.decisions.subscribe()
    }

    /// The decisions so far (at most the latest [`DECISIONS_KEPT`]).
    pub fn decisions(&self) -> Vec<SealedDecision> {
        self.seen.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits up to `timeout` for the decision on `event_id`.
    pub async fn wait_for(&self, event_id: &str, timeout: Duration) -> Option<SealedDecision> {
        let mut rx = self.subscribe();
        let find = |d: &SealedDecision| d.event_id.as_str() == event_id;
        if let Some(d) = self.decisions().into_iter().find(find) {
            return Some(d);
        }
        tokio::time::timeout(timeout, async {
            loop {
                match rx.recv().await {
                    Ok(d) if find(&d) => return Some(d),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        if let Some(d) = self.decisions().into_iter().find(find) {
                            return Some(d);
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// Stops handling events.
    pub fn shutdown(self) {
        self.client.remove_event_handler(self.handle);
    }
}

/// The decision for one timeline event, `None` if it is not a sealed event.
async fn decide(
    raw: &Raw<AnySyncTimelineEvent>,
    room: &Room,
    encrypted: bool,
    verifier: &SealedVerifier,
    fetcher: &dyn CrlFetcher,
) -> Option<SealedDecision> {
    let event: Value = raw.deserialize_as().ok()?;
    if event.get("type").and_then(Value::as_str) != Some(SEALED_EVENT_TYPE) {
        return None;
    }
    let event_id: OwnedEventId = event.get("event_id")?.as_str()?.try_into().ok()?;
    let sender: OwnedUserId = event.get("sender")?.as_str()?.try_into().ok()?;
    let content = event.get("content").cloned().unwrap_or(Value::Null);
    let content_json = serde_json::to_vec(&content).unwrap_or_default();
    let context = SealedContext {
        room_id: room.room_id().as_str(),
        sender: sender.as_str(),
    };
    // Everything but revocation first: only a chain that validates to a
    // pinned root gets its distribution points fetched, so a forged seal
    // cannot make the client contact hosts of the sender's choosing.
    let verdict = match verifier.precheck(&content_json, &context) {
        Ok(prechecked) => {
            let crls = fetch_crls(&prechecked.content.chain, fetcher).await;
            verifier.verify_sealed(&content_json, &context, &crls)
        }
        Err(e) => Err(e),
    };
    Some(SealedDecision {
        room_id: room.room_id().to_owned(),
        event_id,
        sender,
        encrypted,
        verdict,
    })
}

/// The CRLs every certificate of a (prechecked) chain names (what cannot be
/// fetched or decoded is left out; the verifier's CRL policy decides).
async fn fetch_crls(chain: &[String], fetcher: &dyn CrlFetcher) -> CrlSet {
    let mut urls: Vec<String> = Vec::new();
    for cert in chain.iter().take(govtrust_verifier::event::MAX_CHAIN_LEN) {
        if let Ok(der) = STANDARD.decode(cert) {
            for url in distribution_points(&der) {
                if !urls.contains(&url) {
                    urls.push(url);
                }
            }
        }
    }
    let mut set = CrlSet::new();
    for url in urls {
        if let Ok(bytes) = fetcher.fetch(&url).await {
            if let Ok(crl) = Crl::from_pem_or_der(&bytes) {
                set.push(crl);
            }
        }
    }
    set
}

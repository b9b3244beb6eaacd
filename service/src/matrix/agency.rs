//! The agency side of proof of possession: receiving the service's
//! enrollment challenge in a matrix-sdk 0.18 client.
//!
//! The service bot sends a fresh challenge as an Olm-encrypted to-device
//! message to exactly the device being enrolled; only whoever holds that
//! device's keys can decrypt it and hand the challenge back in the
//! enrollment call. matrix-sdk also passes *plaintext* to-device events of
//! the same type to the handler (with no `EncryptionInfo`), and anyone can
//! send those, so the receiver drops everything that was not Olm-decrypted
//! or did not come from the expected service bot.

use std::time::Duration;

use matrix_sdk::deserialized_responses::{AlgorithmInfo, EncryptionInfo};
use matrix_sdk::event_handler::EventHandlerHandle;
use matrix_sdk::ruma::events::macros::EventContent;
use matrix_sdk::ruma::events::ToDeviceEvent;
use matrix_sdk::ruma::OwnedUserId;
use matrix_sdk::Client;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Mutex};

use super::{MatrixError, Result};

/// Event type of the enrollment challenge to-device message.
pub const CHALLENGE_EVENT_TYPE: &str = "io.govtrust.enrollment_challenge";

/// Longest challenge the receiver accepts; the service sends far shorter
/// ones, and the bound keeps a hostile sender from filling memory.
pub const MAX_CHALLENGE_LEN: usize = 1024;

/// How many received challenges wait for [`ChallengeReceiver::next`] before
/// further ones are dropped.
const QUEUE_LEN: usize = 16;

/// Content of `io.govtrust.enrollment_challenge`: the challenge, and the
/// service bot that issued it (which must equal the event's sender).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, EventContent)]
#[ruma_event(type = "io.govtrust.enrollment_challenge", kind = ToDevice)]
pub struct EnrollmentChallengeEventContent {
    /// The opaque challenge to return in the enrollment call.
    pub challenge: String,
    /// The service bot's user ID.
    pub service: String,
}

/// Collects enrollment challenges that arrive Olm-encrypted from one
/// expected service bot; the agency's enrollment code awaits them with
/// [`ChallengeReceiver::next`].
///
/// The client must be syncing (the challenge arrives through `/sync`).
/// Dropping the receiver unregisters its event handler.
pub struct ChallengeReceiver {
    client: Client,
    handle: Option<EventHandlerHandle>,
    rx: Mutex<mpsc::Receiver<String>>,
}

impl ChallengeReceiver {
    /// Registers the to-device handler on `client`, accepting challenges
    /// only from `service` (the service bot's user ID).
    pub fn install(client: &Client, service: OwnedUserId) -> ChallengeReceiver {
        let (tx, rx) = mpsc::channel(QUEUE_LEN);
        let handle = client.add_event_handler(
            move |ev: ToDeviceEvent<EnrollmentChallengeEventContent>,
                  info: Option<EncryptionInfo>| {
                let tx = tx.clone();
                let service = service.clone();
                async move {
                    match accept(&ev, info.as_ref(), &service) {
                        Ok(challenge) => {
                            if tx.try_send(challenge).is_err() {
                                tracing::warn!("enrollment challenge dropped: queue full");
                            }
                        }
                        Err(why) => {
                            tracing::warn!(sender = %ev.sender, "ignored enrollment challenge: {why}");
                        }
                    }
                }
            },
        );
        ChallengeReceiver {
            client: client.clone(),
            handle: Some(handle),
            rx: Mutex::new(rx),
        }
    }

    /// Waits up to `timeout` for the next accepted challenge.
    pub async fn next(&self, timeout: Duration) -> Result<String> {
        let mut rx = self.rx.lock().await;
        match tokio::time::timeout(timeout, rx.recv()).await {
            Ok(Some(challenge)) => Ok(challenge),
            Ok(None) => Err(MatrixError::Closed),
            Err(_) => Err(MatrixError::Timeout),
        }
    }

    /// Discards challenges that arrived so far (e.g. before starting a new
    /// enrollment), so that `next` returns a fresh one.
    pub async fn clear(&self) {
        let mut rx = self.rx.lock().await;
        while rx.try_recv().is_ok() {}
    }
}

impl Drop for ChallengeReceiver {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            self.client.remove_event_handler(handle);
        }
    }
}

/// The acceptance rule, separate from the handler so it can be tested:
/// Olm-encrypted, from the expected service, content naming that service.
fn accept(
    ev: &ToDeviceEvent<EnrollmentChallengeEventContent>,
    info: Option<&EncryptionInfo>,
    service: &OwnedUserId,
) -> std::result::Result<String, &'static str> {
    let Some(info) = info else {
        return Err("not encrypted");
    };
    if !matches!(
        info.algorithm_info,
        AlgorithmInfo::OlmV1Curve25519AesSha2 { .. }
    ) {
        return Err("not Olm-encrypted");
    }
    if &ev.sender != service || &info.sender != service {
        return Err("not from the expected service bot");
    }
    if ev.content.service != service.as_str() {
        return Err("content names another service");
    }
    let challenge = &ev.content.challenge;
    if challenge.is_empty() || challenge.len() > MAX_CHALLENGE_LEN {
        return Err("challenge empty or too long");
    }
    Ok(challenge.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use matrix_sdk::deserialized_responses::VerificationState;
    use matrix_sdk::ruma::owned_user_id;

    fn event(
        sender: &str,
        service: &str,
        challenge: &str,
    ) -> ToDeviceEvent<EnrollmentChallengeEventContent> {
        serde_json::from_value(serde_json::json!({
            "type": CHALLENGE_EVENT_TYPE,
            "sender": sender,
            "content": {"challenge": challenge, "service": service},
        }))
        .unwrap()
    }

    fn olm_info(sender: &str) -> EncryptionInfo {
        EncryptionInfo {
            sender: sender.try_into().unwrap(),
            sender_device: Some("SERVICEDEV".into()),
            forwarder: None,
            algorithm_info: AlgorithmInfo::OlmV1Curve25519AesSha2 {
                curve25519_public_key_base64: "key".into(),
            },
            verification_state: VerificationState::Verified,
        }
    }

    #[test]
    fn acceptance_rule() {
        let service = owned_user_id!("@govtrust:gov.example");
        let s = service.as_str();
        let good = event(s, s, "abc");
        assert_eq!(
            accept(&good, Some(&olm_info(s)), &service),
            Ok("abc".into())
        );
        // Plaintext: the handler sees it with no EncryptionInfo.
        assert!(accept(&good, None, &service).is_err());
        // Wrong sender, wrong Olm sender, content naming another service.
        let m = "@mallory:gov.example";
        assert!(accept(&event(m, s, "abc"), Some(&olm_info(m)), &service).is_err());
        assert!(accept(&good, Some(&olm_info(m)), &service).is_err());
        assert!(accept(&event(s, m, "abc"), Some(&olm_info(s)), &service).is_err());
        // Megolm is not how to-device messages are encrypted.
        let mut megolm = olm_info(s);
        megolm.algorithm_info = AlgorithmInfo::MegolmV1AesSha2 {
            curve25519_key: "key".into(),
            sender_claimed_keys: Default::default(),
            session_id: None,
        };
        assert!(accept(&good, Some(&megolm), &service).is_err());
        assert!(accept(&event(s, s, ""), Some(&olm_info(s)), &service).is_err());
        let long = "x".repeat(MAX_CHALLENGE_LEN + 1);
        assert!(accept(&event(s, s, &long), Some(&olm_info(s)), &service).is_err());
    }
}

//! When the agent re-checks: the sync events and crypto-store updates that
//! trigger a check of one user, the background task that runs the checks,
//! and the sweeps over everybody (periodic, at certificate expiry, when a
//! CRL is due).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use govtrust_verifier::event::EVENT_TYPE;
use matrix_sdk::encryption::identities::{DeviceUpdates, IdentityUpdates};
use matrix_sdk::event_handler::EventHandlerHandle;
use matrix_sdk::ruma::events::AnySyncStateEvent;
use matrix_sdk::ruma::serde::Raw;
use matrix_sdk::ruma::OwnedUserId;
use matrix_sdk::Client;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::clock::now_secs;
use crate::error::AgentError;
use crate::state::Inner;

/// Shortest pause between two background wake-ups.
pub(crate) const MIN_WAKE: Duration = Duration::from_secs(1);
/// Coalescing window for bursts of sync triggers.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Users to re-check, as the triggers name them.
type Triggers = mpsc::UnboundedReceiver<OwnedUserId>;

/// Hooks the triggers up: an event handler for attestation and membership
/// state events, and a task per crypto-store stream (new or changed
/// devices, new or changed identities). Returns the users they name, the
/// tasks and the handler, for the agent to stop on drop.
pub(crate) fn spawn_triggers(
    client: &Client,
    devices: impl Stream<Item = DeviceUpdates> + Send + 'static,
    identities: impl Stream<Item = IdentityUpdates> + Send + 'static,
) -> (Triggers, Vec<JoinHandle<()>>, Vec<EventHandlerHandle>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut handlers = Vec::new();
    let state_tx = tx.clone();
    handlers.push(
        client.add_event_handler(move |raw: Raw<AnySyncStateEvent>| {
            let tx = state_tx.clone();
            async move {
                if let Some(user) = affected_user(&raw) {
                    let _ = tx.send(user);
                }
            }
        }),
    );
    let tasks = vec![
        forward(devices, tx.clone()),
        forward(identities, tx.clone()),
    ];
    (rx, tasks, handlers)
}

/// A crypto-store update (devices or identities): the users it names as
/// new or changed.
trait Updates {
    /// The users with new or changed devices or identities.
    fn users(&self) -> Vec<OwnedUserId>;
}

/// Both update types keep `new` and `changed` maps keyed by user.
macro_rules! impl_updates {
    ($($updates:ty),+) => {$(
        impl Updates for $updates {
            fn users(&self) -> Vec<OwnedUserId> {
                self.new
                    .keys()
                    .chain(self.changed.keys())
                    .cloned()
                    .collect()
            }
        }
    )+};
}

impl_updates!(DeviceUpdates, IdentityUpdates);

/// A task passing on the users each update of `stream` names.
fn forward<U: Updates + Send + 'static>(
    stream: impl Stream<Item = U> + Send + 'static,
    tx: mpsc::UnboundedSender<OwnedUserId>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut stream = Box::pin(stream);
        while let Some(update) = stream.next().await {
            for user in update.users() {
                let _ = tx.send(user);
            }
        }
    })
}

/// The user whose trust an attestation or membership state event may
/// change.
fn affected_user(raw: &Raw<AnySyncStateEvent>) -> Option<OwnedUserId> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(rename = "type")]
        kind: String,
        state_key: String,
    }
    let head: Head = serde_json::from_str(raw.json().get()).ok()?;
    let user = match head.kind.as_str() {
        EVENT_TYPE => user_from_state_key(&head.state_key)?,
        "m.room.member" => head.state_key.as_str(),
        _ => return None,
    };
    OwnedUserId::try_from(user).ok()
}

/// The user named by an attestation state key (`device|<user>|<device>` or
/// `identity|<user>`).
fn user_from_state_key(key: &str) -> Option<&str> {
    if let Some(rest) = key.strip_prefix("device|") {
        rest.rsplit_once('|').map(|(user, _)| user)
    } else {
        key.strip_prefix("identity|")
    }
}

/// The background task: reacts to triggers, and sweeps periodically, at
/// certificate expiry and when CRLs are due.
pub(crate) async fn run(inner: Arc<Inner>, mut rx: Triggers) {
    let mut next_sweep = tokio::time::Instant::now();
    loop {
        let wake = inner.next_wake(next_sweep).await;
        tokio::select! {
            trigger = rx.recv() => {
                let Some(first) = trigger else { return };
                // A sync brings bursts (membership, device lists, state):
                // collect them and check each user once.
                tokio::time::sleep(DEBOUNCE).await;
                let mut users = BTreeSet::from([first]);
                while let Ok(user) = rx.try_recv() {
                    users.insert(user);
                }
                let mut state = inner.state.lock().await;
                for user in users {
                    if let Err(e) = inner.evaluate_user(&mut state, &user).await {
                        tracing::warn!(%user, error = %e, "govtrust agent: check failed");
                    }
                }
                if let Err(e) = state.store.save() {
                    tracing::error!(error = %e, "govtrust agent: cannot save its store");
                }
            }
            () = tokio::time::sleep_until(wake) => {
                if let Err(e) = inner.sweep(false).await {
                    tracing::warn!(error = %e, "govtrust agent: sweep failed");
                }
                next_sweep = tokio::time::Instant::now() + inner.settings.refresh_interval;
            }
        }
    }
}

impl Inner {
    /// When the worker must wake next: the periodic sweep, the earliest
    /// expiry of an accepted certificate, or the earliest CRL due.
    async fn next_wake(&self, next_sweep: tokio::time::Instant) -> tokio::time::Instant {
        let state = self.state.lock().await;
        let now = now_secs();
        let soonest = state
            .expiries
            .values()
            .map(|t| t.saturating_add(1))
            .chain(state.crls.next_due())
            .min();
        let mut wake = next_sweep;
        if let Some(at) = soonest {
            let secs = u64::try_from(at.saturating_sub(now)).unwrap_or(0);
            wake = wake.min(tokio::time::Instant::now() + Duration::from_secs(secs).max(MIN_WAKE));
        }
        wake
    }

    /// Re-checks every user the crypto store tracks and every user the
    /// agent holds a record for.
    pub(crate) async fn sweep(&self, force_crls: bool) -> Result<(), AgentError> {
        let mut state = self.state.lock().await;
        state.crls.refresh_due(force_crls).await;
        let mut users: BTreeSet<OwnedUserId> = self
            .client
            .encryption()
            .tracked_users()
            .await
            .map_err(|e| AgentError::matrix("reading tracked users", e))?
            .into_iter()
            .collect();
        users.extend(
            state
                .store
                .users()
                .into_iter()
                .filter_map(|u| OwnedUserId::try_from(u).ok()),
        );
        for user in users {
            if let Err(e) = self.evaluate_user(&mut state, &user).await {
                tracing::warn!(%user, error = %e, "govtrust agent: check failed");
            }
        }
        state.store.save()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_keys_name_their_user() {
        assert_eq!(
            user_from_state_key("device|@a:example.org|DEV"),
            Some("@a:example.org")
        );
        assert_eq!(
            user_from_state_key("identity|@a:example.org"),
            Some("@a:example.org")
        );
        assert_eq!(user_from_state_key("@a:example.org"), None);
        assert_eq!(user_from_state_key("device|nodevice"), None);
    }

    #[test]
    fn attestation_and_membership_events_name_the_user_to_recheck() {
        let event = |kind: &str, state_key: &str| {
            Raw::<AnySyncStateEvent>::from_json_string(
                serde_json::json!({
                    "type": kind,
                    "state_key": state_key,
                    "content": {},
                    "event_id": "$e",
                    "sender": "@s:example.org",
                    "origin_server_ts": 0,
                })
                .to_string(),
            )
            .unwrap()
        };
        let user = OwnedUserId::try_from("@a:example.org").unwrap();
        assert_eq!(
            affected_user(&event(EVENT_TYPE, "identity|@a:example.org")),
            Some(user.clone())
        );
        assert_eq!(
            affected_user(&event("m.room.member", "@a:example.org")),
            Some(user)
        );
        assert_eq!(affected_user(&event("m.room.topic", "")), None);
        assert_eq!(
            affected_user(&event(EVENT_TYPE, "identity|not a user")),
            None
        );
    }
}

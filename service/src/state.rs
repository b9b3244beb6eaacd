//! The running service: everything a request handler needs.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::auth::RateLimiter;
use crate::config::Config;
use crate::keys::KeySource;
use crate::matrix::Bot;
use crate::metrics::Metrics;
use crate::pki::ServicePki;
use crate::storage::Store;

/// Shared service state (one per process; replicas share the database).
pub struct Service {
    /// Configuration in force.
    pub config: Config,
    /// Storage.
    pub store: Store,
    /// The CAs.
    pub pki: ServicePki,
    /// Where device keys come from.
    pub keys: KeySource,
    /// The publisher bot; `None` turns publishing off.
    pub publisher: Option<Arc<Bot>>,
    /// Metrics.
    pub metrics: Metrics,
    /// Per-agency rate limit.
    pub limiter: RateLimiter,
    /// Wakes the outbox worker after an issuance or revocation.
    pub outbox_wakeup: Notify,
    /// Signals publications to waiting enrollments.
    pub published: Notify,
}

/// Handle shared by handlers and background tasks.
pub type AppState = Arc<Service>;

impl Service {
    /// Whether state events are published (a homeserver bot is configured).
    pub fn publishing(&self) -> bool {
        self.publisher.is_some()
    }

    /// Waits up to `wait` for the latest outbox item of `state_key` to be
    /// published and returns its event ID.
    pub async fn wait_for_publication(&self, state_key: &str, wait: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.published.notified();
            if let Ok(Some(event_id)) = self.store.published_event_id(state_key).await {
                return Some(event_id);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

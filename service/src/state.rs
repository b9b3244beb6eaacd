//! The running service: everything a request handler needs.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Serialize;

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
    /// The publisher bot: not configured (publishing off), still
    /// connecting, or connected.
    pub publisher: Publisher,
    /// Metrics.
    pub metrics: Metrics,
    /// Per-agency rate limit.
    pub limiter: RateLimiter,
    /// Wakes the outbox worker after an issuance or revocation.
    pub outbox_wakeup: Notify,
    /// Signals publications to waiting enrollments.
    pub published: Notify,
    /// The TLS certificate being served (set when serving starts,
    /// hot-swapped on renewal).
    pub tls: OnceLock<Arc<crate::tls::CertHolder>>,
    /// Set once shutdown has begun: `/readyz` answers 503 from then on.
    pub shutting_down: std::sync::atomic::AtomicBool,
}

/// The slot the publisher's bot lands in once it has connected:
/// [`crate::install_bot`] fills it and the slot of the
/// [`crate::keys::KeySource::Deferred`] key source at the same moment.
pub type BotSlot = Arc<OnceLock<Arc<Bot>>>;

/// The publisher bot as the service sees it: configured or not, and once
/// configured, connected or still connecting (the homeserver may be down
/// at start; a background task keeps trying, see
/// [`crate::tasks::run_matrix_connect`]).
pub struct Publisher {
    configured: bool,
    slot: BotSlot,
    last_error: Mutex<Option<String>>,
}

impl Publisher {
    /// No homeserver: publishing is off.
    pub fn off() -> Self {
        Publisher {
            configured: false,
            slot: Arc::default(),
            last_error: Mutex::new(None),
        }
    }

    /// A homeserver is configured; the bot arrives in `slot` (maybe later).
    pub fn connecting(slot: BotSlot) -> Self {
        Publisher {
            configured: true,
            slot,
            last_error: Mutex::new(Some("not connected yet".into())),
        }
    }

    /// A bot that is already connected.
    pub fn connected(bot: Arc<Bot>) -> Self {
        let slot = BotSlot::default();
        let _ = slot.set(bot);
        Publisher {
            configured: true,
            slot,
            last_error: Mutex::new(None),
        }
    }

    /// Whether a homeserver is configured (attestations are queued for
    /// publication even while it is unreachable).
    pub fn is_configured(&self) -> bool {
        self.configured
    }

    /// The bot, once connected.
    pub fn get(&self) -> Option<&Arc<Bot>> {
        self.slot.get()
    }

    /// The slot (for the key source and the connect task).
    pub fn slot(&self) -> &BotSlot {
        &self.slot
    }

    /// Records why the last connection attempt failed (`None`: connected).
    pub fn set_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    /// Why the bot is not connected, if it is not.
    pub fn error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// What `/readyz` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Whether requests can be served (200) or not (503).
    pub ready: bool,
    /// `ok` or the database error.
    pub database: String,
    /// `ok`, `not configured`, `connecting: <why>` or `error: <why>`.
    pub homeserver: String,
    /// Why the service is not ready (absent when it is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Handle shared by handlers and background tasks.
pub type AppState = Arc<Service>;

impl Service {
    /// Whether state events are published (a homeserver bot is configured).
    pub fn publishing(&self) -> bool {
        self.publisher.is_configured()
    }

    /// Readiness: the database answers, and the bot (if configured) is
    /// connected and the homeserver accepts its token; not while shutting
    /// down.
    pub async fn readiness(&self) -> Readiness {
        let database = match self.store.ping().await {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("error: {e}"),
        };
        let homeserver = if !self.publisher.is_configured() {
            "not configured".to_owned()
        } else {
            match self.publisher.get() {
                None => format!(
                    "connecting: {}",
                    self.publisher
                        .error()
                        .unwrap_or_else(|| "not connected yet".into())
                ),
                Some(bot) => match bot.client().whoami().await {
                    Ok(_) => "ok".to_owned(),
                    Err(e) => format!("error: {e}"),
                },
            }
        };
        let mut reasons = Vec::new();
        if self.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
            reasons.push("shutting down".to_owned());
        }
        if database != "ok" {
            reasons.push(format!("database: {database}"));
        }
        if homeserver != "ok" && homeserver != "not configured" {
            reasons.push(format!("homeserver: {homeserver}"));
        }
        Readiness {
            ready: reasons.is_empty(),
            database,
            homeserver,
            reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
        }
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

//! The [`AutoTrustAgent`] handle an app holds: starting the agent on a
//! client, reading its decisions, asking for checks, and stopping it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use govtrust_verifier::{CrlPolicy, SealedVerifier, TrustAnchors, Verifier};
use matrix_sdk::event_handler::EventHandlerHandle;
use matrix_sdk::ruma::{DeviceId as RumaDeviceId, UserId as RumaUserId};
use matrix_sdk::Client;
use rustls_pki_types::CertificateDer;
use tokio::sync::{broadcast, Mutex};
use tokio::task::JoinHandle;

use crate::config::AgentConfig;
use crate::crls::{CrlCache, CrlFetcher, HttpCrlFetcher};
use crate::decision::TrustDecision;
use crate::error::AgentError;
use crate::sealed::SealedInbox;
use crate::state::{EvalState, Inner, Settings};
use crate::store::Store;
use crate::worker::{self, MIN_WAKE};

/// Capacity of the decision broadcast: a subscriber that falls further
/// behind gets `RecvError::Lagged` and can re-read [`AutoTrustAgent::decisions`].
const DECISION_BUFFER: usize = 1024;

/// The agent. Start one per logged-in client with [`AutoTrustAgent::start`];
/// dropping it stops it (what it set stays, recorded in its store, and is
/// re-checked on the next start).
pub struct AutoTrustAgent {
    inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
    handlers: Vec<EventHandlerHandle>,
    sealed: Option<SealedInbox>,
}

impl fmt::Debug for AutoTrustAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutoTrustAgent")
            .field("user", &self.inner.own_user)
            .finish_non_exhaustive()
    }
}

impl AutoTrustAgent {
    /// Starts the agent on a logged-in client with end-to-end encryption.
    ///
    /// The agent does not sync: the app keeps syncing the client as usual,
    /// and the agent reacts to what the sync brings. A first check of every
    /// known user starts at once in the background.
    pub async fn start(client: Client, config: AgentConfig) -> Result<Self, AgentError> {
        let own_user = client.user_id().ok_or(AgentError::NotReady)?.to_owned();
        let own_device = client.device_id().ok_or(AgentError::NotReady)?.to_owned();
        let encryption = client.encryption();
        let devices = encryption
            .devices_stream()
            .await
            .map_err(|_| AgentError::NotReady)?;
        let identities = encryption
            .user_identities_stream()
            .await
            .map_err(|_| AgentError::NotReady)?;

        let roots: Vec<CertificateDer<'static>> = config.anchors.roots().cloned().collect();
        let lenient = Verifier::new(
            TrustAnchors::from_der(roots.clone())?,
            CrlPolicy::ALLOW_MISSING,
        );
        let fetcher: Arc<dyn CrlFetcher> = match config.crl_fetcher {
            Some(f) => f,
            None => Arc::new(HttpCrlFetcher::with_tls_roots(&roots)?),
        };
        let sealed = if config.sealed_documents {
            let verifier =
                SealedVerifier::new(TrustAnchors::from_der(roots.clone())?, config.crl_policy);
            Some(SealedInbox::start(
                &client,
                Arc::new(verifier),
                fetcher.clone(),
            ))
        } else {
            None
        };
        let store = Store::open(&config.store_path, &format!("{own_user}|{own_device}"))?;
        let state = EvalState {
            store,
            crls: CrlCache::new(fetcher, config.crl_refresh_interval, config.crl_policy),
            directories: HashMap::new(),
            expiries: HashMap::new(),
        };
        let (decisions, _) = broadcast::channel(DECISION_BUFFER);
        let inner = Arc::new(Inner {
            client: client.clone(),
            own_user,
            strict: Verifier::new(config.anchors, config.crl_policy),
            lenient,
            settings: Settings {
                directory_rooms: config.directory_rooms,
                scan_joined_rooms: config.scan_joined_rooms,
                publishers: config.publishers,
                sign_identities: config.sign_identities,
                refresh_interval: config.refresh_interval.max(MIN_WAKE),
                on_revoked: config.on_revoked,
            },
            state: Mutex::new(state),
            last: StdMutex::new(HashMap::new()),
            decisions,
        });

        let (rx, mut tasks, handlers) = worker::spawn_triggers(&client, devices, identities);
        tasks.push(tokio::spawn(worker::run(inner.clone(), rx)));

        Ok(AutoTrustAgent {
            inner,
            tasks,
            handlers,
            sealed,
        })
    }

    /// Decisions as they happen: each time a verdict, or what the agent
    /// did, changes for a device or identity.
    pub fn subscribe(&self) -> broadcast::Receiver<TrustDecision> {
        self.inner.decisions.subscribe()
    }

    /// The latest decision for every device and identity the agent has an
    /// opinion on (for a UI that starts after the events).
    pub fn decisions(&self) -> Vec<TrustDecision> {
        self.inner
            .last
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The latest decision for one device (`Some(device)`) or identity
    /// (`None`).
    pub fn decision_for(
        &self,
        user: &RumaUserId,
        device: Option<&RumaDeviceId>,
    ) -> Option<TrustDecision> {
        let key = (user.to_owned(), device.map(ToOwned::to_owned));
        self.inner.last.lock().ok()?.get(&key).cloned()
    }

    /// Waits until the decision about one device (`Some(device)`) or
    /// identity (`None`) satisfies `want`, and returns it; `None` after
    /// `timeout`. For a UI step ("wait until the agency's device is
    /// verified") and for tests: the latest decision counts too, so a
    /// decision made before the call is not missed.
    pub async fn wait_for_decision(
        &self,
        user: &RumaUserId,
        device: Option<&RumaDeviceId>,
        timeout: Duration,
        want: impl Fn(&TrustDecision) -> bool,
    ) -> Option<TrustDecision> {
        // Subscribe before looking at the latest decision: anything made
        // after the look arrives on the stream.
        let mut rx = self.subscribe();
        if let Some(d) = self.decision_for(user, device).filter(|d| want(d)) {
            return Some(d);
        }
        let about = |d: &TrustDecision| *d.user_id == *user && d.device_id.as_deref() == device;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(d)) if about(&d) && want(&d) => return Some(d),
                Ok(Ok(_)) => {}
                // Missed decisions: the latest one is what counts.
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    if let Some(d) = self.decision_for(user, device).filter(|d| want(d)) {
                        return Some(d);
                    }
                }
                Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => return None,
            }
        }
    }

    /// Fetches `user`'s devices and identity from the homeserver (even if
    /// the client shares no encrypted room with them) and checks them now,
    /// e.g. before showing a room with that user.
    pub async fn check_user(&self, user: &RumaUserId) -> Result<(), AgentError> {
        self.inner
            .client
            .encryption()
            .request_user_identity(user)
            .await
            .map_err(|e| AgentError::matrix("querying keys", e))?;
        let mut state = self.inner.state.lock().await;
        let result = self.inner.evaluate_user(&mut state, user).await;
        state.store.save()?;
        result
    }

    /// Re-checks every known user now (fetching CRLs that are due).
    pub async fn reevaluate(&self) -> Result<(), AgentError> {
        self.inner.sweep(false).await
    }

    /// Fetches every CRL again now, whatever its nextUpdate, and re-checks
    /// every known user (e.g. after the app learnt of a revocation).
    pub async fn refresh_crls(&self) -> Result<(), AgentError> {
        self.inner.sweep(true).await
    }

    /// The sealed-document inbox, if [`AgentConfig::sealed_documents`] is
    /// on: subscribe to it for "sealed by …" verdicts and refusals.
    pub fn sealed_inbox(&self) -> Option<&SealedInbox> {
        self.sealed.as_ref()
    }

    /// Stops the agent (same as dropping it).
    pub fn shutdown(self) {}
}

impl Drop for AutoTrustAgent {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        for handle in self.handlers.drain(..) {
            self.inner.client.remove_event_handler(handle);
        }
        if let Some(inbox) = self.sealed.take() {
            inbox.shutdown();
        }
    }
}

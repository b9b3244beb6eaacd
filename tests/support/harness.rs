//! What every end-to-end test file needs around its fixtures: a shared
//! runtime for tests that share a fixture, step logging, and the Matrix
//! client chores (keep syncing, log in, bootstrap cross-signing).
//!
//! ```ignore
//! #[path = "support/harness.rs"]
//! mod harness;
//! use harness::{run, step};
//! ```
#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use govtrust_agent::{AutoTrustAgent, TrustDecision};
use matrix_sdk::config::SyncSettings;
use matrix_sdk::ruma::api::client::uiaa;
use matrix_sdk::ruma::{OwnedDeviceId, OwnedUserId};
use matrix_sdk::Client;
use tokio::task::JoinHandle;

/// How long any one expected event (a decision, a state event) may take.
pub const WAIT: Duration = Duration::from_secs(60);

/// The runtime every test of a file blocks on, so that a fixture shared
/// through a static (its background tasks) outlives each test.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
});

/// Runs a test body on the shared runtime.
pub fn run<F: Future>(test: F) -> F::Output {
    RUNTIME.block_on(test)
}

/// Logs a step with the time since `t0`, so slow steps show up in
/// `--nocapture` output.
pub fn step(t0: Instant, what: &str) {
    eprintln!("[{:>6.2}s] {what}", t0.elapsed().as_secs_f64());
}

/// A path segment, percent-encoded.
pub fn enc(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

/// Keeps a client syncing through errors (e.g. a homeserver restart),
/// which `Client::sync` would return on; counts completed sync cycles in
/// `syncs` if given.
pub fn spawn_sync(
    client: Client,
    timeout: Duration,
    syncs: Option<Arc<AtomicUsize>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let settings = SyncSettings::default().timeout(timeout);
            if client.sync_once(settings).await.is_err() {
                tokio::time::sleep(Duration::from_millis(300)).await;
            } else if let Some(syncs) = &syncs {
                syncs.fetch_add(1, Ordering::SeqCst);
            }
        }
    })
}

/// A logged-in matrix-sdk client with its own store, after a first sync
/// (which uploads real device keys).
pub async fn login(homeserver: &str, user: &str, password: &str, store: &Path) -> Client {
    let client = Client::builder()
        .homeserver_url(homeserver)
        .sqlite_store(store, None)
        .build()
        .await
        .expect("client");
    client
        .matrix_auth()
        .login_username(user, password)
        .initial_device_display_name("e2e")
        .send()
        .await
        .expect("login");
    client
        .sync_once(SyncSettings::default().timeout(Duration::ZERO))
        .await
        .expect("first sync");
    client
}

/// Bootstraps cross-signing on `client`, answering the password UIA.
pub async fn bootstrap_cross_signing(client: &Client, user: &str, password: &str) {
    if let Err(e) = client.encryption().bootstrap_cross_signing(None).await {
        let response = e
            .as_uiaa_response()
            .unwrap_or_else(|| panic!("bootstrap_cross_signing: {e}"));
        let mut auth = uiaa::Password::new(
            uiaa::UserIdentifier::Matrix(uiaa::MatrixUserIdentifier::new(user.to_owned())),
            password.to_owned(),
        );
        auth.session = response.session.clone();
        client
            .encryption()
            .bootstrap_cross_signing(Some(uiaa::AuthData::Password(auth)))
            .await
            .expect("bootstrap_cross_signing with password");
    }
}

/// Waits (at most [`WAIT`]) for a decision about `(user, device)` that
/// satisfies `want`, and logs it.
pub async fn wait_for(
    t0: Instant,
    agent: &AutoTrustAgent,
    user: &str,
    device: Option<&str>,
    what: &str,
    want: impl Fn(&TrustDecision) -> bool,
) -> TrustDecision {
    let user_id = OwnedUserId::try_from(user).expect("user");
    let device_id = device.map(OwnedDeviceId::from);
    let d = agent
        .wait_for_decision(&user_id, device_id.as_deref(), WAIT, want)
        .await
        .unwrap_or_else(|| {
            panic!(
                "timed out waiting for {what}; latest: {:?}",
                agent.decision_for(&user_id, device_id.as_deref())
            )
        });
    step(t0, &format!("{what}: {d}"));
    d
}

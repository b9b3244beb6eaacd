//! # govtrust-service
//!
//! The enrollment & attestation service of the govtrust PKI (`govtrust
//! serve`), as a library: the binary, the load benchmark and the
//! integration tests drive the same code, and nothing here knows about the
//! command line.
//!
//! Layout follows the roles: [`config`] (TOML + environment), [`pki`] (the
//! CAs it signs with) over a [`cadir`] (CA directory) made by
//! [`hierarchy`], [`auth`] and [`caller`] (who is calling), [`enroll`] (the
//! enrollment flow), [`api`] and [`server`] (HTTPS), [`tasks`] (outbox
//! publisher, CRLs, renewal), [`keys`] (homeserver key lookups),
//! [`storage`] (SQLite/PostgreSQL, audit chain), [`matrix`] (the bot that
//! publishes attestations). [`agency`] is the agency side's client of this
//! service, [`operator_client`] the operators' (the `govtrust` operator
//! commands), and [`synapse`] sets up a local homeserver for the demo and the
//! tests. The request bodies, authority records, user policy and the
//! `authority import` file format are the pure crate `govtrust_api`.
#![forbid(unsafe_code)]

pub mod agency;
pub mod api;
pub mod auth;
pub mod cadir;
pub mod caller;
pub mod clock;
pub mod config;
pub mod enroll;
pub mod error;
pub mod gauges;
pub mod hierarchy;
pub mod keys;
pub mod matrix;
pub mod metrics;
pub mod operator_client;
pub mod pemfile;
pub mod pki;
pub mod pseudonym;
pub mod server;
pub mod state;
pub mod storage;
pub mod synapse;
pub mod tasks;
pub mod tls;

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::keys::KeySource;
use crate::matrix::{Bot, MatrixConfig};
use crate::state::{AppState, Publisher, Service};
use crate::storage::{AuditEntry, OperatorToken, Store};

/// Builds the service from its configuration: storage (migrated, with the
/// configured pool), CAs (created for development on first start), and the
/// Matrix bot if configured. The bot gets one attempt here; if the
/// homeserver cannot be reached the service starts anyway (`/readyz`
/// answers 503) and [`tasks::run_matrix_connect`] keeps trying in the
/// background. Only a bot configuration that can never work is an error.
pub async fn build(config: Config) -> Result<AppState> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let store = Store::connect_with(&config.database_url(), config.store_options())
        .await
        .context("opening the database")?;
    let pki = pki::ServicePki::open_or_create(&config)?;
    if config.matrix.is_none() {
        tracing::warn!("no homeserver configured: enrollment and publishing are off");
        return Ok(assemble(config, store, pki, KeySource::Unconfigured, None));
    }
    let first = connect_bot(&config).await;
    let keys = KeySource::Deferred(Arc::default());
    let svc = assemble_with(
        config,
        store,
        pki,
        keys,
        Publisher::connecting(Arc::default()),
    );
    match first {
        Ok(Some(bot)) => install_bot(&svc, Arc::new(bot)),
        Ok(None) => {}
        Err(e) if is_permanent(&e) => return Err(e),
        Err(e) => {
            let why = format!("{e:#}");
            tracing::warn!(error = %why, "homeserver unreachable at start; serving anyway and retrying in the background");
            svc.publisher.set_error(Some(why));
        }
    }
    Ok(svc)
}

/// Logs the bot in (or restores its session) and ensures the directory
/// room; `None` if no homeserver is configured.
pub async fn connect_bot(config: &Config) -> Result<Option<Bot>> {
    let Some(m) = &config.matrix else {
        return Ok(None);
    };
    let mut matrix = MatrixConfig::new(
        m.homeserver_url.clone(),
        m.user_id.clone(),
        m.password.clone().unwrap_or_default(),
        config.data_dir.join("matrix"),
    );
    matrix.directory_alias_localpart = m.directory_alias.clone();
    let bot = Bot::connect(matrix)
        .await
        .context("connecting the Matrix bot")?;
    bot.ensure_directory_room()
        .await
        .context("directory room")?;
    Ok(Some(bot))
}

/// Whether a bot connection error can only be fixed by the operator (bad
/// user ID, a store directory of another account): retrying cannot help.
fn is_permanent(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<matrix::MatrixError>(),
            Some(matrix::MatrixError::Config(_) | matrix::MatrixError::Store(_))
        )
    })
}

/// Hands a connected bot to the service: the key source and the publisher
/// use it from now on, and the outbox worker wakes up to drain the queue.
pub fn install_bot(svc: &Service, bot: Arc<Bot>) {
    if let KeySource::Deferred(slot) = &svc.keys {
        let _ = slot.set(homeserver_keys(Arc::clone(&bot)));
    }
    let _ = svc.publisher.slot().set(bot);
    svc.publisher.set_error(None);
    svc.outbox_wakeup.notify_one();
}

/// The key source over a connected bot: concurrent challenges share their
/// `/keys/query`.
fn homeserver_keys(bot: Arc<Bot>) -> KeySource {
    KeySource::Homeserver(bot).coalesced(keys::batch::BatchConfig::default())
}

/// Puts the parts together (also used by the load benchmark, with a
/// pre-filled key source and no publisher).
pub fn assemble(
    config: Config,
    store: Store,
    pki: pki::ServicePki,
    keys: KeySource,
    publisher: Option<Arc<Bot>>,
) -> AppState {
    let publisher = match publisher {
        Some(bot) => Publisher::connected(bot),
        None => Publisher::off(),
    };
    assemble_with(config, store, pki, keys, publisher)
}

fn assemble_with(
    config: Config,
    store: Store,
    pki: pki::ServicePki,
    keys: KeySource,
    publisher: Publisher,
) -> AppState {
    let limiter = auth::RateLimiter::new(
        config.limits.agency_requests_per_second,
        config.limits.agency_burst,
    );
    let mut metrics = metrics::Metrics::default();
    metrics.observe_store(store.clone());
    Arc::new(Service {
        config,
        store,
        pki,
        // Concurrent challenges share their `/keys/query`.
        keys: keys.coalesced(keys::batch::BatchConfig::default()),
        publisher,
        metrics,
        limiter,
        outbox_wakeup: tokio::sync::Notify::new(),
        published: tokio::sync::Notify::new(),
        tls: std::sync::OnceLock::new(),
        shutting_down: std::sync::atomic::AtomicBool::new(false),
    })
}

/// On first start, creates the operator token `admin` with the role
/// `admin` and writes its secret to `<data_dir>/operator-token` (mode
/// 0600). Further tokens are made through `POST /v1/tokens`.
pub async fn ensure_operator_token(svc: &Service) -> Result<()> {
    let path = svc.config.data_dir.join("operator-token");
    if path.exists() {
        return Ok(());
    }
    let token = auth::new_token()?;
    match svc
        .store
        .insert_operator_token(
            OperatorToken::new(
                "admin",
                auth::token_hash(&token),
                vec![storage::OperatorRole::Admin],
                clock::now_ms(),
            ),
            AuditEntry::new(
                "system",
                "operator.token_created",
                "admin",
                serde_json::json!({}),
            ),
        )
        .await
    {
        Ok(()) => {}
        // Another replica (or an earlier run) created it; its token file is elsewhere.
        Err(crate::storage::StoreError::Duplicate { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(&path)?, format!("{token}\n").as_bytes())?;
    tracing::warn!(path = %path.display(), "created the first operator token (name admin)");
    Ok(())
}

/// Runs the service until SIGINT/SIGTERM, then shuts down gracefully:
/// stops accepting, lets in-flight requests finish (up to
/// `shutdown_grace_secs`), stops the background tasks and closes the
/// database pool (every acknowledged write is committed by then).
pub async fn run(config: Config) -> Result<()> {
    let svc = build(config).await?;
    ensure_operator_token(&svc).await?;
    let listener = TcpListener::bind(svc.config.listen)
        .await
        .with_context(|| format!("binding {}", svc.config.listen))?;
    tracing::info!(listen = %svc.config.listen, public = %svc.config.public_base(), "govtrust serving");
    let result = serve_on(Arc::clone(&svc), listener, shutdown_signal()).await;
    // Every acknowledged write is committed; this returns the connections.
    if tokio::time::timeout(std::time::Duration::from_secs(10), svc.store.close())
        .await
        .is_err()
    {
        tracing::warn!("database pool did not close within 10 s");
    }
    tracing::info!("stopped");
    result
}

/// Serves an assembled service on `listener` (background tasks included,
/// and the plain-HTTP metrics listener if `metrics_listen` is set) until
/// `shutdown` resolves, then drains in-flight requests for up to
/// `shutdown_grace_secs` and stops the background tasks and the bot's
/// sync; `run` and in-process tests share this.
pub async fn serve_on(
    svc: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let material = svc.pki.tls_load(&svc.config)?;
    let holder = match svc.tls.get() {
        Some(holder) => {
            holder.replace(material.chain, material.key)?;
            Arc::clone(holder)
        }
        None => {
            let holder = Arc::new(tls::CertHolder::new(material.chain, material.key)?);
            let _ = svc.tls.set(Arc::clone(&holder));
            holder
        }
    };
    let tls = svc.pki.tls_config(holder)?;
    let metrics_listener = match svc.config.metrics_listen {
        Some(addr) => {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding metrics_listen {addr}"))?;
            tracing::info!(listen = %addr, "metrics served over plain HTTP");
            Some(l)
        }
        None => None,
    };
    let tasks = tasks::spawn_all(&svc);
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics_server = metrics_listener.map(|l| {
        tokio::spawn(server::serve_metrics(l, Arc::clone(&svc), async {
            let _ = metrics_stopped.await;
        }))
    });
    let app = server::with_access_log(api::router(Arc::clone(&svc)));
    let grace = std::time::Duration::from_secs(svc.config.shutdown_grace_secs);
    let flag = Arc::clone(&svc);
    let shutdown = async move {
        shutdown.await;
        flag.shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let result = server::serve(listener, tls, app, shutdown, grace).await;
    let _ = stop_metrics.send(());
    if let Some(task) = metrics_server {
        let _ = task.await;
    }
    tasks.stop().await;
    if let Some(bot) = svc.publisher.get() {
        bot.shutdown();
    }
    result
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

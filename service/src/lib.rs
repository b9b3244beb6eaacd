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
pub mod config;
pub mod enroll;
pub mod error;
pub mod hierarchy;
pub mod keys;
pub mod matrix;
pub mod metrics;
pub mod operator_client;
pub mod pemfile;
pub mod pki;
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
use crate::state::{AppState, Service};
use crate::storage::{AuditEntry, OperatorToken, Store};

/// Builds the service from its configuration: storage (migrated), CAs
/// (created for development on first start), the Matrix bot if configured.
pub async fn build(config: Config) -> Result<AppState> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let store = Store::connect(&config.database_url())
        .await
        .context("opening the database")?;
    let pki = pki::ServicePki::open_or_create(&config)?;
    let publisher = match &config.matrix {
        Some(m) => {
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
            Some(Arc::new(bot))
        }
        None => {
            tracing::warn!("no homeserver configured: enrollment and publishing are off");
            None
        }
    };
    let keys = publisher
        .clone()
        .map_or(KeySource::Unconfigured, KeySource::Homeserver);
    Ok(assemble(config, store, pki, keys, publisher))
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
    let limiter = auth::RateLimiter::new(
        config.limits.agency_requests_per_second,
        config.limits.agency_burst,
    );
    Arc::new(Service {
        config,
        store,
        pki,
        keys,
        publisher,
        metrics: metrics::Metrics::default(),
        limiter,
        outbox_wakeup: tokio::sync::Notify::new(),
        published: tokio::sync::Notify::new(),
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
                tasks::now_ms(),
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

/// Runs the service until SIGINT/SIGTERM.
pub async fn run(config: Config) -> Result<()> {
    let svc = build(config).await?;
    ensure_operator_token(&svc).await?;
    let listener = TcpListener::bind(svc.config.listen)
        .await
        .with_context(|| format!("binding {}", svc.config.listen))?;
    tracing::info!(listen = %svc.config.listen, public = %svc.config.public_base(), "govtrust serving");
    serve_on(svc, listener, shutdown_signal()).await
}

/// Serves an assembled service on `listener` (background tasks included)
/// until `shutdown` resolves; `run` and in-process tests share this.
pub async fn serve_on(
    svc: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let tls = svc.pki.tls_config(&svc.config)?;
    tasks::spawn_all(&svc);
    server::serve(listener, tls, api::router(svc), shutdown).await
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

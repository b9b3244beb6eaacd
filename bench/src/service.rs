//! The service under test: where its data goes (SQLite or a fresh
//! PostgreSQL schema), starting it in-process on loopback through the
//! library's public API with the agencies registered, and the raw issuance
//! baseline measured against the same PKI in the same run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use govtrust_pki::AttestationRequest;
use govtrust_service::config::Config;
use govtrust_service::keys::{KeyAnswer, KeySource};
use govtrust_service::matrix::{Bot, MatrixConfig};
use govtrust_service::pki::ServicePki;
use govtrust_service::state::AppState;
use govtrust_service::storage::{AuditEntry, Authority, AuthorityStatus, Store, StoreOptions};
use govtrust_verifier::{DeviceId, Ed25519Key, Subject, UserId};
use tokio::net::TcpListener;

use crate::args::BenchEnrollArgs;
use crate::devices::Agency;
use crate::report::RawIssuance;

/// A service running on the server runtime.
pub(crate) struct Running {
    pub(crate) svc: AppState,
    pub(crate) base: url::Url,
    pub(crate) root_pem: String,
    pub(crate) shutdown: tokio::sync::oneshot::Sender<()>,
}

/// Where the service's data goes.
pub(crate) struct Storage {
    pub(crate) url: String,
    pub(crate) pg_schema: Option<String>,
    pub(crate) label: String,
    pub(crate) backend: &'static str,
}

/// Chooses the storage from `--database`: a new SQLite file in `data_dir`,
/// the given SQLite file, or a fresh schema `govtrust_bench_<run>` in the
/// given PostgreSQL database.
pub(crate) fn storage(args: &BenchEnrollArgs, data_dir: &Path, run: &str) -> Result<Storage> {
    match args.database.as_deref() {
        None => Ok(Storage {
            url: format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("govtrust.db").display()
            ),
            pg_schema: None,
            label: "new SQLite file in a temporary directory".into(),
            backend: "sqlite",
        }),
        Some(url) if url.starts_with("sqlite:") => Ok(Storage {
            url: url.to_owned(),
            pg_schema: None,
            label: url.to_owned(),
            backend: "sqlite",
        }),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let schema = format!("govtrust_bench_{run}");
            Ok(Storage {
                url: url.to_owned(),
                label: format!(
                    "{} schema {schema}{}",
                    govtrust_service::config::redact_database_url(url),
                    if args.keep_database {
                        " (kept)"
                    } else {
                        " (dropped afterwards)"
                    }
                ),
                pg_schema: Some(schema),
                backend: "postgres",
            })
        }
        Some(other) => bail!("--database must be sqlite://PATH or postgres://…, not {other:?}"),
    }
}

/// What the service is told about the homeserver.
pub(crate) enum Keys {
    /// Pre-filled answers, publishing off.
    Prefilled(HashMap<(String, String), KeyAnswer>),
    /// A real homeserver: the bot to log in.
    Homeserver(MatrixConfig),
}

/// Starts the service on 127.0.0.1 (a free port), registers the agencies'
/// authorities and issues each agency an enrollment-client certificate.
/// Returns the service and each agency's identity PEM (chain + key).
pub(crate) async fn start_service(
    data_dir: &Path,
    storage: &Storage,
    args: &BenchEnrollArgs,
    server: &str,
    keys: Keys,
    agencies: &[Agency],
) -> Result<(Running, Vec<String>, Option<Arc<Bot>>)> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("binding 127.0.0.1")?;
    let mut config = Config {
        listen: listener.local_addr()?,
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    config.database.url = Some(storage.url.clone());
    config.ca.dev_servers = vec![server.to_owned()];
    // The bench is one client per authority, far above any sane agency
    // rate: the limiter must not be what is measured.
    config.limits.agency_requests_per_second = 10_000_000;
    config.limits.agency_burst = 10_000_000;
    config.validate()?;

    let store = Store::connect_with(
        &storage.url,
        StoreOptions {
            max_connections: args.db_connections,
            pg_schema: storage.pg_schema.clone(),
            ..Default::default()
        },
    )
    .await
    .with_context(|| format!("opening {}", storage.label))?;
    let pki = ServicePki::open_or_create(&config)?;
    let (keys, bot) = match keys {
        Keys::Prefilled(map) => (KeySource::Prefilled(Arc::new(map)), None),
        Keys::Homeserver(matrix) => {
            let bot = Arc::new(
                Bot::connect(matrix)
                    .await
                    .context("connecting the service's bot")?,
            );
            bot.ensure_directory_room()
                .await
                .context("directory room")?;
            // Coalesced here with the run's settings; `assemble` leaves an
            // already batched source as it is.
            let keys = KeySource::Homeserver(bot.clone()).coalesced(args.batch_config());
            (keys, Some(bot))
        }
    };
    let publisher = bot.clone().filter(|_| !args.no_publish);
    let svc = govtrust_service::assemble(config, store, pki, keys, publisher);

    let now = govtrust_service::clock::now_ms();
    let mut identities = Vec::with_capacity(agencies.len());
    for agency in agencies {
        svc.store
            .insert_authority(
                Authority {
                    record: agency.record.clone(),
                    servers: vec![server.to_owned()],
                    user_patterns: vec![agency.localpart.clone()],
                    status: AuthorityStatus::Active,
                    contact: None,
                    created_at: now,
                    updated_at: now,
                },
                AuditEntry::new(
                    "operator:bench",
                    "authority.created",
                    agency.record.id.clone(),
                    serde_json::to_value(&agency.record)?,
                ),
            )
            .await
            .with_context(|| format!("registering authority {}", agency.record.id))?;
        let key = FileSigner::generate(KeyAlgorithm::EcdsaP256)?;
        let issued = svc.pki.issue_enrollment_client(
            &agency.record,
            key.spki_der().to_vec(),
            Duration::from_secs(86_400),
        )?;
        let identity = govtrust_service::pemfile::client_identity(
            &govtrust_service::pemfile::chain_pem(&issued.chain),
            &key,
        )?;
        identities.push(identity.as_str().to_owned());
    }

    let base: url::Url = format!("https://{}/", svc.config.listen).parse()?;
    let root_pem = govtrust_service::pemfile::cert_pem(svc.pki.root());
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let serving = svc.clone();
    tokio::spawn(async move {
        let stopped = async {
            let _ = stop.await;
        };
        if let Err(e) = govtrust_service::serve_on(serving, listener, stopped).await {
            eprintln!("bench: the service stopped: {e:#}");
        }
    });
    Ok((
        Running {
            svc,
            base,
            root_pem,
            shutdown,
        },
        identities,
        bot,
    ))
}

/// `ServicePki::issue` (`IssuingCa::issue_attestation`: encode, sign,
/// verify the result with the client verifier) in a tight loop.
pub(crate) fn raw_issuance(svc: &AppState, agency: &Agency, seconds: f64) -> Result<RawIssuance> {
    let device = agency
        .devices
        .first()
        .context("the first agency has no device")?;
    let request = AttestationRequest {
        user_id: UserId::parse(&device.user_id)?,
        subject: Subject::Device(DeviceId::parse(&device.device_id)?),
        key: Ed25519Key::from_base64(&device.key_b64)?,
        authority: agency.record.clone(),
    };
    for _ in 0..20 {
        svc.pki.issue(&request)?;
    }
    let limit = Duration::from_secs_f64(seconds.max(0.1));
    let start = Instant::now();
    let mut issued = 0u64;
    while start.elapsed() < limit {
        std::hint::black_box(svc.pki.issue(std::hint::black_box(&request))?);
        issued += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(RawIssuance {
        issued,
        seconds: secs,
        per_s: issued as f64 / secs,
        us_each: secs * 1e6 / issued as f64,
    })
}

/// Drops the run's PostgreSQL schema.
pub(crate) async fn drop_schema(url: &str, schema: &str) -> Result<()> {
    use sqlx::{AssertSqlSafe, Connection, Executor};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    // The schema name is ours: govtrust_bench_<hex>.
    conn.execute(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
        .await?;
    conn.close().await?;
    Ok(())
}

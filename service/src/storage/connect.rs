//! Opening a [`Store`]: choosing and preparing the backend (SQLite pragmas
//! and its per-file write gate, PostgreSQL schema and session settings),
//! pool settings, migrations, and starting the writer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::AnyConnection;
use sqlx::{AssertSqlSafe, Connection, Executor};
use tokio::sync::Mutex;

use super::{writer, Backend, Inner, Store, StoreError, StoreResult};

/// Migrations for SQLite, embedded at build time.
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
/// Migrations for PostgreSQL, embedded at build time.
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connection settings beyond the URL.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Pool size. SQLite: readers run in parallel, writes are serialised
    /// anyway. PostgreSQL: mind `max_connections` across all replicas.
    pub max_connections: u32,
    /// PostgreSQL only: schema to use (set as `search_path` on every
    /// connection, created if missing). Letters, digits and `_` only.
    /// `None` uses the server's default search path.
    pub pg_schema: Option<String>,
    /// Connections the pool keeps open even when idle.
    pub min_connections: u32,
    /// How long a query waits for a pooled connection before failing.
    pub acquire_timeout: Duration,
    /// Idle connections above `min_connections` are closed after this;
    /// `None` keeps them.
    pub idle_timeout: Option<Duration>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            pg_schema: None,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(600)),
        }
    }
}

/// One write gate per SQLite file in this process, shared by every
/// [`Store`] that opens it.
fn sqlite_gate(url: &str) -> Arc<Mutex<()>> {
    static GATES: OnceLock<StdMutex<HashMap<String, Arc<Mutex<()>>>>> = OnceLock::new();
    let key = sqlite_gate_key(url);
    let gates = GATES.get_or_init(|| StdMutex::new(HashMap::new()));
    // A poisoned map only means another thread panicked while inserting;
    // the map itself is still usable.
    let mut map = match gates.lock() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    map.entry(key).or_default().clone()
}

/// The file a SQLite URL names, with its directory canonicalised (the file
/// itself may not exist yet), so that different spellings of one path
/// share a gate.
fn sqlite_gate_key(url: &str) -> String {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let raw = rest.split('?').next().unwrap_or(rest);
    let path = std::path::Path::new(raw);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    match (std::fs::canonicalize(dir), path.file_name()) {
        (Ok(d), Some(name)) => d.join(name).to_string_lossy().into_owned(),
        _ => raw.to_owned(),
    }
}

fn is_memory_url(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

fn valid_schema_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 63
}

impl Store {
    /// Connects with default options and applies pending migrations.
    ///
    /// `sqlite://PATH?mode=rwc` creates the file if needed;
    /// `postgres://user@host:port/db` uses the server's default schema.
    pub async fn connect(url: &str) -> StoreResult<Store> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    /// Connects, prepares every pooled connection (pragmas or
    /// `search_path`), applies pending migrations and starts the writer
    /// task on the current Tokio runtime.
    pub async fn connect_with(url: &str, options: StoreOptions) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        if backend == Backend::Postgres {
            // sqlx's TLS to PostgreSQL takes rustls's process-wide default
            // provider. This build links both of rustls's providers (other
            // dependencies ask for aws-lc-rs), so there is none to infer and
            // the first TLS connection would panic: use ring, the
            // provider the service's own TLS uses, unless the process has
            // chosen one already (then this does nothing).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let max_connections = options.max_connections.max(2);
        let min_connections = options.min_connections.min(max_connections);
        let configured_pool = || {
            pool_options()
                .min_connections(min_connections)
                .acquire_timeout(options.acquire_timeout)
                .idle_timeout(options.idle_timeout)
        };
        let (pool, gate) = match backend {
            Backend::Sqlite => {
                if options.pg_schema.is_some() {
                    return Err(StoreError::InvalidUrl(
                        "pg_schema is only for PostgreSQL".to_owned(),
                    ));
                }
                let gate = sqlite_gate(url);
                let memory = is_memory_url(url);
                {
                    // Switching to WAL needs a lock the busy timeout cannot
                    // wait for, so do it once, alone, before the pool opens
                    // connections in parallel. The mode persists in the file.
                    let _g = gate.lock().await;
                    if !memory {
                        let mut conn = AnyConnection::connect(url).await?;
                        conn.execute(sqlite_pragmas()).await?;
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.close().await?;
                    }
                }
                let pool = configured_pool()
                    // Each connection to `:memory:` would be its own database.
                    .max_connections(if memory { 1 } else { max_connections })
                    .min_connections(if memory { 1 } else { min_connections })
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute(sqlite_pragmas()).await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?;
                (pool, Some(gate))
            }
            Backend::Postgres => {
                let schema = match options.pg_schema.clone() {
                    Some(s) if valid_schema_name(&s) => Some(s),
                    Some(s) => {
                        return Err(StoreError::InvalidUrl(format!(
                            "invalid schema name {s:?}: use letters, digits and _"
                        )))
                    }
                    None => None,
                };
                if let Some(schema) = &schema {
                    let mut conn = AnyConnection::connect(url).await?;
                    let res = conn
                        .execute(AssertSqlSafe(format!(
                            "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
                        )))
                        .await;
                    conn.close().await?;
                    if let Err(e) = res {
                        // Two replicas creating it at once: one loses the
                        // race on the catalog's unique index; fine.
                        let lost_race =
                            matches!(&e, sqlx::Error::Database(db) if db.is_unique_violation());
                        if !lost_race {
                            return Err(e.into());
                        }
                    }
                }
                let set_path: Option<Arc<str>> =
                    schema.map(|s| Arc::from(format!("SET search_path TO \"{s}\"")));
                let pool = configured_pool()
                    .max_connections(max_connections)
                    .after_connect(move |conn, _meta| {
                        let set_path = set_path.clone();
                        Box::pin(async move {
                            conn.execute(PG_SESSION_SETTINGS).await?;
                            if let Some(sql) = set_path {
                                // The schema name was validated above.
                                conn.execute(AssertSqlSafe(sql.to_string())).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?;
                (pool, None)
            }
        };

        match (&gate, backend) {
            (Some(g), _) => {
                let _g = g.lock().await;
                SQLITE_MIGRATOR.run(&pool).await?;
            }
            (None, Backend::Postgres) => POSTGRES_MIGRATOR.run(&pool).await?,
            (None, Backend::Sqlite) => SQLITE_MIGRATOR.run(&pool).await?,
        }

        let writers = writer::spawn(pool.clone(), backend, gate.clone());
        Ok(Store {
            inner: Arc::new(Inner {
                pool,
                backend,
                gate,
                writers,
            }),
        })
    }
}

/// A pooled connection idle for longer than this is tested before use.
const TEST_AFTER_IDLE: Duration = Duration::from_secs(10);

/// Pool settings shared by both backends. sqlx by default pings every
/// connection before handing it out: one extra round trip per query, which
/// under load doubled the statements the database serves (and its CPU).
/// Only a connection that sat idle long enough to have been cut (a database
/// restart, a firewall) is tested now; a busy one is used as is, and if it
/// broke meanwhile the query fails once and sqlx discards the connection
/// when it is released.
fn pool_options() -> AnyPoolOptions {
    AnyPoolOptions::new()
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > TEST_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Per-connection PostgreSQL settings. A replica that stalls inside a
/// transaction (frozen, partitioned) would hold the audit head lock and stop
/// every other replica's writes: the server ends such a transaction after a
/// minute, and waiting for a lock gives up after one (the waiting change then
/// fails with [`StoreError::Unavailable`] and can be retried).
const PG_SESSION_SETTINGS: &str =
    "SET lock_timeout = '60s'; SET idle_in_transaction_session_timeout = '60s'";

/// Per-connection SQLite settings: durability that is safe with WAL (a
/// power loss may lose the last commits but never corrupts the file), up to
/// 10 s of waiting for another process's write lock, and enforced foreign
/// keys.
fn sqlite_pragmas() -> &'static str {
    "PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
}

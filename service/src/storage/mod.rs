//! Persistent state of the enrollment service, on SQLite or PostgreSQL.
//!
//! One interface ([`Store`]) over two backends, chosen by the URL:
//!
//! * `sqlite://PATH?mode=rwc` — the embedded default: WAL journal,
//!   `synchronous=NORMAL`, a busy timeout and foreign keys on. One process
//!   (several [`Store`]s in it are fine) or several processes on one host.
//! * `postgres://...` — several service replicas behind a load balancer,
//!   sharing one database.
//!
//! SQL is written in the subset both understand (`$n` placeholders, times as
//! unix milliseconds in `BIGINT`, blobs, JSON as `TEXT`); the few statements
//! that must differ (row locking, and PostgreSQL doing an issuance in one
//! statement to save round trips on the serialised path) are chosen by
//! [`Backend`]. Each backend has
//! its own migration folder (`migrations/sqlite`, `migrations/postgres`),
//! embedded into the binary and applied by [`Store::connect`]; PostgreSQL's
//! migrator holds an advisory lock, so replicas starting at once are safe.
//!
//! # Consistency across replicas
//!
//! * Serial numbers and challenge ids are primary keys: uniqueness is the
//!   database's job, not the replica's.
//! * Every business change (issuance, revocation, authority changes, stored
//!   CRLs, ...) is written in one transaction together with its audit entry
//!   and, where it announces something, its outbox item: it is durable
//!   all-or-nothing.
//! * Audit appends are serialised: the chain head (`audit_head`, one row) is
//!   locked with `SELECT ... FOR UPDATE` on PostgreSQL; SQLite writers hold
//!   the database write lock (`BEGIN IMMEDIATE`) anyway.
//! * Work that only one replica should do at a time is claimed with a lease
//!   in a single conditional `UPDATE` (renewals, outbox publication, CRL
//!   generation); a replica that dies just lets the lease run out.
//! * Challenges are consumed with one conditional `UPDATE`, so exactly one
//!   caller ever sees [`ChallengeOutcome::Ok`]; an enrollment consumes its
//!   challenge in the transaction that stores its certificate
//!   ([`Store::enroll_certificate`]), so a challenge is used up exactly when
//!   a certificate is stored for it.
//!
//! # Throughput: group commit
//!
//! Because audit appends are serialised, one transaction per change would
//! cap throughput at one commit (one WAL flush, ~2.5 ms on this host's
//! PostgreSQL) at a time: ~400 issuances/s for *all* replicas together.
//! So each [`Store`] funnels its audited changes through one writer task
//! that takes whatever is queued (up to [`MAX_BATCH`] changes) and applies it
//! in one transaction, with one multi-row insert for the batch's audit
//! entries. Each change still succeeds or fails on its own:
//! "soft" failures (duplicate, not found) write nothing and do not disturb
//! the batch; if the database rejects one change's data (a foreign key, a
//! check), the batch is rolled back and every change in it is retried in its
//! own transaction, so only the culprit fails; if the database itself fails
//! (connection, lock timeout), every change of the batch gets
//! [`StoreError::Unavailable`]. Callers get their result only after the
//! commit. Challenges (stored and consumed) go through the writer as well,
//! unaudited: an enrollment then costs two batched writes, and a batch
//! without audit entries does not touch the chain head. The writer task also makes changes independent of
//! the caller: a caller that gives up (an HTTP client disconnecting) cannot
//! cancel a transaction half-way for the others in its batch.

pub mod audit;
pub mod model;
mod ops;
mod writer;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{AnyConnection, AnyPool};
use sqlx::{AssertSqlSafe, Connection, Executor};
use tokio::sync::Mutex;

pub use audit::{
    audit_hash, sha256_hex, AuditEntry, AuditRecord, AuditReport, ChainVerifier, GENESIS_HASH,
};
pub use model::{
    AgencyStanding, Authority, AuthorityStatus, Certificate, CertificateKind, CertificateStatus,
    Challenge, ChallengeClaim, ChallengeOutcome, NewCertificate, NewOutboxItem, OperatorToken,
    OutboxRecord, OutboxState, Revocation, RevokeOutcome, StoredCrl,
};

/// Most changes the writer applies in one transaction. Large enough to
/// amortise a commit over many issuances, small enough to keep lock hold
/// times (and the work redone after a hard failure) short.
pub const MAX_BATCH: usize = 128;

/// Migrations for SQLite, embedded at build time.
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
/// Migrations for PostgreSQL, embedded at build time.
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a [`Store`] talks to; only a few statements differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Embedded SQLite (the default).
    Sqlite,
    /// PostgreSQL, possibly shared by several replicas.
    Postgres,
}

impl Backend {
    /// The backend a connection URL selects.
    pub fn from_url(url: &str) -> StoreResult<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::InvalidUrl(
                "expected sqlite://PATH or postgres://...".to_owned(),
            ))
        }
    }
}

/// Errors of the storage layer.
///
/// Hand-written rather than `thiserror` because that crate is not a
/// dependency of the root package.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// A row with that key exists already (nothing was written).
    Duplicate {
        /// What kind of row (`authority`, `certificate`, ...).
        entity: &'static str,
        /// Its key.
        key: String,
    },
    /// No row with that key (nothing was written).
    NotFound {
        /// What kind of row.
        entity: &'static str,
        /// Its key.
        key: String,
    },
    /// A reference to a missing row (e.g. a certificate for an unknown
    /// authority) or another constraint violation; nothing was written.
    Constraint(String),
    /// The connection URL or options are unusable.
    InvalidUrl(String),
    /// An argument cannot be stored (e.g. a number out of range).
    InvalidInput(String),
    /// A stored row cannot be decoded (unknown enum value, bad JSON).
    Corrupt(String),
    /// The database failed.
    Database(sqlx::Error),
    /// Applying migrations failed.
    Migrate(MigrateError),
    /// The commit of a batch failed: whether it took effect is unknown.
    /// Look the change up before retrying.
    CommitFailed(String),
    /// The database could not apply the batch this change was part of for a
    /// reason unrelated to the change (connection lost, lock timeout, disk
    /// full, ...). Nothing was written; retrying later is safe.
    Unavailable(String),
    /// The store's writer task is gone (the runtime is shutting down).
    WriterClosed,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Duplicate { entity, key } => write!(f, "{entity} {key:?} already exists"),
            Self::NotFound { entity, key } => write!(f, "{entity} {key:?} not found"),
            Self::Constraint(msg) => write!(f, "constraint violated: {msg}"),
            Self::InvalidUrl(msg) => write!(f, "invalid database URL: {msg}"),
            Self::InvalidInput(msg) => write!(f, "invalid input: {msg}"),
            Self::Corrupt(msg) => write!(f, "corrupt database row: {msg}"),
            Self::Database(e) => write!(f, "database error: {e}"),
            Self::Migrate(e) => write!(f, "database migration failed: {e}"),
            Self::CommitFailed(msg) => write!(f, "commit failed, outcome unknown: {msg}"),
            Self::Unavailable(msg) => write!(f, "database unavailable, nothing written: {msg}"),
            Self::WriterClosed => f.write_str("storage writer has shut down"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Database(e) => Some(e),
            Self::Migrate(e) => Some(e),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_foreign_key_violation() || db.is_check_violation() {
                return Self::Constraint(db.message().to_owned());
            }
        }
        Self::Database(e)
    }
}

impl From<MigrateError> for StoreError {
    fn from(e: MigrateError) -> Self {
        Self::Migrate(e)
    }
}

/// Result type of the storage layer.
pub type StoreResult<T> = Result<T, StoreError>;

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
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            pg_schema: None,
        }
    }
}

/// The storage handle. Cheap to clone; all clones share one pool and one
/// writer task. Dropping the last clone stops the writer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    backend: Backend,
    /// SQLite only: serialises this process's write transactions on the
    /// file, so they queue here instead of spinning in SQLite's busy handler.
    gate: Option<Arc<Mutex<()>>>,
    writers: writer::Writers,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
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
        let max_connections = options.max_connections.max(2);
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
                let pool = pool_options()
                    // Each connection to `:memory:` would be its own database.
                    .max_connections(if memory { 1 } else { max_connections })
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
                let schema = match options.pg_schema {
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
                let pool = pool_options()
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

    /// Which backend this store uses.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The underlying pool, for health checks and maintenance queries.
    pub fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    /// Closes the pool (waits for checked-out connections to return).
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    /// Holds this process's write gate on SQLite (no-op on PostgreSQL) for
    /// writes that bypass the writer task.
    async fn write_gate(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.inner.gate {
            Some(g) => Some(g.lock().await),
            None => None,
        }
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

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
//! that must differ (row locking, and PostgreSQL doing issuances in one
//! function call to save round trips on the serialised path) are chosen by
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
//! * Audit appends are serialised, and the chain head is the *last* lock a
//!   transaction takes: on PostgreSQL a batch first runs its own statements
//!   (challenges, issuances, revocations), then one call of
//!   `govtrust_audit_append` (migration `postgres/0008`) locks `audit_head`,
//!   chains and inserts the batch's entries, supersedes older pending outbox
//!   items of the batch's state keys and moves the head — so commit order is
//!   chain order, and only that call and the commit run under the lock.
//!   A batch of only issuances is one call of `govtrust_issue_batch`
//!   (`postgres/0011`) per 1 MiB message of them, outside a transaction:
//!   the issuances in order, then the same append, then the implicit
//!   commit.
//!   SQLite writers hold the database write lock (`BEGIN IMMEDIATE`) from
//!   the start and supersede outbox items inline.
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
//! So each [`Store`] funnels its audited changes through a writer task (on
//! PostgreSQL one by default; several can share the queue, which pays off only
//! where round trips are slow)
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
//! without audit entries does not touch the chain head. On PostgreSQL the
//! two most frequent batches are sent as one statement per 1 MiB message
//! (in practice the whole batch), each committed on its own without
//! `BEGIN` and `COMMIT`: a batch of only fresh challenges as one insert,
//! one round trip instead of three or more; a batch of only issuances
//! (enrollments, renewals) as one
//! call of a function that also appends the audit entries of those
//! stored, one round trip instead of one per issuance plus three. The
//! writer task also makes changes independent of the caller: a caller that
//! gives up (an HTTP client disconnecting) cannot cancel a transaction
//! half-way for the others in its batch.
//!
//! # Layout
//!
//! This module is the facade: the [`Store`] handle, [`Backend`] and the
//! re-exported types. Opening a store is in `connect`, its errors in
//! `error`. The operations of [`Store`] are grouped by table, each module
//! with its columns and row decoding: `authorities` (and `standing`, the
//! one query every agency request makes), `challenges`, `certificates`,
//! `renewals`, `revocations`, `crls`, `outbox`, `audit_log` and
//! `operator_tokens`. Changes go through `writer`: its batching loop, and
//! the statements each change runs, again by table. [`audit`] is the pure
//! hash chain, [`model`] the row types.

pub mod audit;
pub mod model;

mod audit_log;
mod authorities;
mod certificates;
mod challenges;
mod connect;
mod crls;
mod error;
mod operator_tokens;
mod outbox;
mod renewals;
mod revocations;
mod standing;
mod writer;

use std::fmt;
use std::sync::Arc;

use sqlx::AnyPool;
use tokio::sync::Mutex;

pub use audit::{
    audit_hash, sha256_hex, AuditEntry, AuditRecord, AuditReport, ChainVerifier, GENESIS_HASH,
};
pub use connect::StoreOptions;
pub use error::{StoreError, StoreResult};
pub use model::{
    AgencyStanding, Authority, AuthorityStatus, Certificate, CertificateKind, CertificateQuery,
    CertificateStatus, Challenge, ChallengeClaim, ChallengeOutcome, ListedStatus, NewCertificate,
    NewOutboxItem, OperatorRole, OperatorToken, OutboxRecord, OutboxState, Revocation,
    RevokeOutcome, StoredCrl,
};
pub use operator_tokens::TokenRevocation;
pub use writer::{Commits, WriteStats};

use error::{duplicate, not_found};

/// Most changes the writer applies in one transaction. Large enough to
/// amortise a commit over many issuances, small enough to keep lock hold
/// times (and the work redone after a hard failure) short.
pub const MAX_BATCH: usize = 128;

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

impl Store {
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

    /// Checks the database answers (readiness probe).
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
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

/// u64 to the i64 the databases store.
fn to_i64(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::InvalidInput(format!("{v} exceeds the i64 range")))
}

/// A page size to the i64 a `LIMIT` binds.
fn limit_i64(limit: u32) -> i64 {
    i64::from(limit)
}

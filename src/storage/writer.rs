//! The writer task: applies audited changes in batched transactions.
//!
//! See the module docs of [`super`] ("group commit") for why it exists.
//! Every change is an [`Op`] plus an optional audit entry; [`apply`] runs
//! one op inside the batch's transaction and reports an [`Outcome`]. Only
//! outcomes that changed something get their audit entry appended.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sqlx::Row;
use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::audit::audit_hash;
use super::model::{
    Authority, AuthorityStatus, NewCertificate, OperatorToken, RevokeOutcome, StoredCrl,
};
use super::{Backend, StoreError, StoreResult, MAX_BATCH};

/// An audit entry with its details already serialised to the stored text.
pub(super) struct PreparedAudit {
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub details: String,
}

/// An outbox item with its content already serialised.
pub(super) struct PreparedOutbox {
    pub kind: String,
    pub state_key: String,
    pub content: String,
}

/// An authority with its list columns already serialised.
pub(super) struct PreparedAuthority {
    pub authority: Authority,
    pub servers: String,
    pub user_patterns: String,
}

/// A change the writer applies.
pub(super) enum Op {
    InsertAuthority(Box<PreparedAuthority>),
    UpdateAuthority(Box<PreparedAuthority>),
    SetAuthorityStatus {
        id: String,
        status: AuthorityStatus,
    },
    IssueCertificate {
        cert: Box<NewCertificate>,
        outbox: Option<PreparedOutbox>,
    },
    Supersede {
        serial: String,
    },
    Revoke {
        serial: String,
        reason: String,
        outbox: Option<PreparedOutbox>,
    },
    StoreCrl(Box<StoredCrl>),
    InsertOperatorToken(OperatorToken),
    DeleteOperatorToken {
        name: String,
    },
    Enqueue(PreparedOutbox),
    AuditOnly,
}

/// One change with its audit entry and time.
pub(super) struct Work {
    pub op: Op,
    pub audit: Option<PreparedAudit>,
    /// Time of the change (unix ms), used for its audit entry and rows.
    pub at: i64,
}

/// What an op did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Applied.
    Done,
    /// Not applied: the key exists.
    Duplicate,
    /// Not applied: no such row.
    NotFound,
    /// Not applied: nothing to change (already superseded, stale CRL).
    Unchanged,
    /// Result of a revocation.
    Revoke(RevokeOutcome),
}

impl Outcome {
    /// Whether the op changed something and its audit entry must be written.
    fn changed(self) -> bool {
        matches!(self, Self::Done | Self::Revoke(RevokeOutcome::Revoked))
    }
}

/// The writer's answer for one change.
#[derive(Debug)]
pub(super) struct Reply {
    pub outcome: Outcome,
    /// Seq of the appended audit entry, if one was appended.
    pub audit_seq: Option<u64>,
}

/// A queued change and where to send its result.
pub(super) struct Job {
    pub work: Work,
    pub reply: oneshot::Sender<StoreResult<Reply>>,
}

enum BatchError {
    /// A statement failed before the commit: nothing was written.
    Statement(StoreError),
    /// The commit failed: the outcome is unknown.
    Commit(String),
}

impl From<sqlx::Error> for BatchError {
    fn from(e: sqlx::Error) -> Self {
        Self::Statement(e.into())
    }
}

impl From<StoreError> for BatchError {
    fn from(e: StoreError) -> Self {
        Self::Statement(e)
    }
}

struct Writer {
    pool: AnyPool,
    backend: Backend,
    gate: Option<Arc<Mutex<()>>>,
}

/// Starts the writer task on the current runtime; it ends when every
/// sender is dropped.
pub(super) fn spawn(
    pool: AnyPool,
    backend: Backend,
    gate: Option<Arc<Mutex<()>>>,
) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel(MAX_BATCH * 16);
    let writer = Writer {
        pool,
        backend,
        gate,
    };
    tokio::spawn(writer.run(rx));
    tx
}

impl Writer {
    async fn run(self, mut rx: mpsc::Receiver<Job>) {
        let mut buf = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut buf, MAX_BATCH).await > 0 {
            let jobs = std::mem::replace(&mut buf, Vec::with_capacity(MAX_BATCH));
            self.process(jobs).await;
        }
    }

    async fn process(&self, jobs: Vec<Job>) {
        let (works, replies): (Vec<Work>, Vec<_>) =
            jobs.into_iter().map(|j| (j.work, j.reply)).unzip();
        let _gate = match &self.gate {
            Some(g) => Some(g.lock().await),
            None => None,
        };
        match self.run_batch(&works).await {
            Ok(results) => {
                for (result, reply) in results.into_iter().zip(replies) {
                    // The caller may have gone away; the change stands.
                    let _ = reply.send(Ok(result));
                }
            }
            Err(BatchError::Commit(msg)) => {
                for reply in replies {
                    let _ = reply.send(Err(StoreError::CommitFailed(msg.clone())));
                }
            }
            Err(BatchError::Statement(err)) if works.len() == 1 => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(err));
                }
            }
            Err(BatchError::Statement(err)) if !rejects_one_change(self.backend, &err) => {
                // Not the fault of one change: retrying each would only
                // repeat the failure (and its timeouts) many times over.
                let msg = err.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Unavailable(msg.clone())));
                }
            }
            Err(BatchError::Statement(_)) => {
                // Some change in the batch fails on its own: redo each in its
                // own transaction so only that one reports the failure.
                for (work, reply) in works.iter().zip(replies) {
                    let result = match self.run_batch(std::slice::from_ref(work)).await {
                        Ok(mut r) => r.pop().ok_or(StoreError::WriterClosed),
                        Err(BatchError::Statement(e)) => Err(e),
                        Err(BatchError::Commit(msg)) => Err(StoreError::CommitFailed(msg)),
                    };
                    let _ = reply.send(result);
                }
            }
        }
    }

    /// Applies `works` in one transaction with the audit head locked.
    async fn run_batch(&self, works: &[Work]) -> Result<Vec<Reply>, BatchError> {
        let started = Instant::now();
        let mut tx = match self.backend {
            // Take the write lock up front: a deferred transaction that reads
            // first and writes later can fail with SQLITE_BUSY immediately.
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        let head_sql = match self.backend {
            Backend::Sqlite => "SELECT seq, hash FROM audit_head WHERE id = 1",
            // Locks the head row until commit: appends from all replicas
            // queue here. READ COMMITTED re-reads the row once it gets it.
            Backend::Postgres => "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
        };
        let head = sqlx::query(head_sql).fetch_one(&mut *tx).await?;
        let locked = Instant::now();
        let head_seq: i64 = head.try_get("seq")?;
        let mut hash: String = head.try_get("hash")?;
        let mut seq = u64::try_from(head_seq)
            .map_err(|_| StoreError::Corrupt(format!("audit head seq {head_seq}")))?;
        let start = seq;

        let mut replies = Vec::with_capacity(works.len());
        let mut entries: Vec<AuditRow<'_>> = Vec::new();
        for work in works {
            let outcome = apply(&mut tx, self.backend, work).await?;
            let mut audit_seq = None;
            if let (true, Some(a)) = (outcome.changed(), &work.audit) {
                seq += 1;
                let next = audit_hash(
                    &hash,
                    seq,
                    work.at,
                    &a.actor,
                    &a.action,
                    a.subject.as_deref(),
                    &a.details,
                );
                entries.push(AuditRow {
                    seq: to_i64(seq)?,
                    at: work.at,
                    audit: a,
                    prev_hash: std::mem::replace(&mut hash, next.clone()),
                    hash: next,
                });
                audit_seq = Some(seq);
            }
            replies.push(Reply { outcome, audit_seq });
        }
        insert_audit_rows(&mut tx, &entries).await?;
        if seq != start {
            sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                .bind(to_i64(seq)?)
                .bind(hash.as_str())
                .execute(&mut *tx)
                .await?;
        }
        let worked = Instant::now();
        tx.commit()
            .await
            .map_err(|e| BatchError::Commit(e.to_string()))?;
        tracing::debug!(
            changes = works.len(),
            audit_entries = entries.len(),
            lock_wait_us = micros(locked - started),
            work_us = micros(worked - locked),
            commit_us = micros(worked.elapsed()),
            "storage batch committed"
        );
        Ok(replies)
    }
}

/// Whether the database refused a statement because of the data of one
/// change (a constraint, bad data, a deadlock victim), as opposed to the
/// database being unreachable, locked or out of resources.
fn rejects_one_change(backend: Backend, err: &StoreError) -> bool {
    let db = match err {
        StoreError::Constraint(_) | StoreError::InvalidInput(_) => return true,
        StoreError::Database(sqlx::Error::Database(db)) => db,
        _ => return false,
    };
    if db.kind() != sqlx::error::ErrorKind::Other {
        return true;
    }
    let Some(code) = db.code() else {
        return false;
    };
    match backend {
        // SQLSTATE classes: 22 data exception, 23 integrity constraint,
        // 40 transaction rollback (deadlock, serialization failure).
        Backend::Postgres => ["22", "23", "40"].iter().any(|c| code.starts_with(c)),
        // Primary result codes: 18 TOOBIG, 19 CONSTRAINT, 20 MISMATCH,
        // 25 RANGE (extended codes carry them in the low byte).
        Backend::Sqlite => code
            .parse::<i32>()
            .is_ok_and(|c| matches!(c & 0xff, 18 | 19 | 20 | 25)),
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// u64 to the i64 the databases store.
pub(super) fn to_i64(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::InvalidInput(format!("{v} exceeds the i64 range")))
}

/// Applies one op inside the batch transaction. Ops check their
/// preconditions before writing anything, so a non-`Done` outcome leaves
/// no trace; a returned error aborts the whole batch.
async fn apply(
    conn: &mut AnyConnection,
    backend: Backend,
    work: &Work,
) -> Result<Outcome, StoreError> {
    let at = work.at;
    match &work.op {
        Op::InsertAuthority(p) => {
            let a = &p.authority;
            let r = &a.record;
            let res = sqlx::query(
                "INSERT INTO authorities (id, name, unit, street, postal_code, locality, state, \
                 country, servers, user_patterns, status, contact, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(r.id.as_str())
            .bind(r.name.as_str())
            .bind(r.unit.as_deref())
            .bind(r.street.as_deref())
            .bind(r.postal_code.as_deref())
            .bind(r.locality.as_deref())
            .bind(r.state.as_deref())
            .bind(r.country.as_deref())
            .bind(p.servers.as_str())
            .bind(p.user_patterns.as_str())
            .bind(a.status.as_str())
            .bind(a.contact.as_deref())
            .bind(a.created_at)
            .bind(a.updated_at)
            .execute(&mut *conn)
            .await?;
            Ok(if res.rows_affected() == 0 {
                Outcome::Duplicate
            } else {
                Outcome::Done
            })
        }
        Op::UpdateAuthority(p) => {
            let a = &p.authority;
            let r = &a.record;
            let res = sqlx::query(
                "UPDATE authorities SET name = $2, unit = $3, street = $4, postal_code = $5, \
                 locality = $6, state = $7, country = $8, servers = $9, user_patterns = $10, \
                 status = $11, contact = $12, updated_at = $13 WHERE id = $1",
            )
            .bind(r.id.as_str())
            .bind(r.name.as_str())
            .bind(r.unit.as_deref())
            .bind(r.street.as_deref())
            .bind(r.postal_code.as_deref())
            .bind(r.locality.as_deref())
            .bind(r.state.as_deref())
            .bind(r.country.as_deref())
            .bind(p.servers.as_str())
            .bind(p.user_patterns.as_str())
            .bind(a.status.as_str())
            .bind(a.contact.as_deref())
            .bind(a.updated_at)
            .execute(&mut *conn)
            .await?;
            Ok(found(res.rows_affected()))
        }
        Op::SetAuthorityStatus { id, status } => {
            let res =
                sqlx::query("UPDATE authorities SET status = $2, updated_at = $3 WHERE id = $1")
                    .bind(id.as_str())
                    .bind(status.as_str())
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
            Ok(found(res.rows_affected()))
        }
        Op::IssueCertificate { cert, outbox } if backend == Backend::Postgres => {
            // Certificate, outbox item and superseding older items in one
            // statement: one round trip on the serialised path instead of
            // three. Same effect as the SQLite arm.
            let c = cert;
            let row = bind_certificate(sqlx::query(
                "WITH c AS (INSERT INTO certificates (serial, issuing_ca, kind, user_id, device_id, \
                 key, authority_id, not_before, not_after, der, status, renewed_from, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'valid', $11, $12) \
                 ON CONFLICT (serial) DO NOTHING RETURNING serial), \
                 o AS (INSERT INTO outbox (kind, state_key, content, state, created_at, attempts, \
                 next_attempt_at) SELECT $13, $14, $15, 'pending', $12, 0, $12 FROM c \
                 WHERE $13::text IS NOT NULL RETURNING id), \
                 s AS (UPDATE outbox SET state = 'superseded', superseded_by = (SELECT id FROM o) \
                 WHERE state_key = $14 AND state = 'pending' AND id < (SELECT id FROM o)) \
                 SELECT COUNT(*) AS inserted FROM c",
            ), c)
            .bind(outbox.as_ref().map(|o| o.kind.as_str()))
            .bind(outbox.as_ref().map(|o| o.state_key.as_str()))
            .bind(outbox.as_ref().map(|o| o.content.as_str()))
            .fetch_one(&mut *conn)
            .await?;
            let inserted: i64 = row.try_get("inserted")?;
            if inserted == 0 {
                return Ok(Outcome::Duplicate);
            }
            if let Some(old) = &c.renewed_from {
                supersede_renewed(conn, old).await?;
            }
            Ok(Outcome::Done)
        }
        Op::IssueCertificate { cert, outbox } => {
            let c = cert;
            let res = bind_certificate(
                sqlx::query(
                    "INSERT INTO certificates (serial, issuing_ca, kind, user_id, device_id, key, \
                 authority_id, not_before, not_after, der, status, renewed_from, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'valid', $11, $12) \
                 ON CONFLICT (serial) DO NOTHING",
                ),
                c,
            )
            .execute(&mut *conn)
            .await?;
            if res.rows_affected() == 0 {
                return Ok(Outcome::Duplicate);
            }
            if let Some(old) = &c.renewed_from {
                supersede_renewed(conn, old).await?;
            }
            if let Some(item) = outbox {
                enqueue(conn, backend, item, at).await?;
            }
            Ok(Outcome::Done)
        }
        Op::Supersede { serial } => {
            let res = sqlx::query(SUPERSEDE_SQL)
                .bind(serial.as_str())
                .execute(&mut *conn)
                .await?;
            Ok(if res.rows_affected() == 0 {
                Outcome::Unchanged
            } else {
                Outcome::Done
            })
        }
        Op::Revoke {
            serial,
            reason,
            outbox,
        } => {
            let row = sqlx::query(
                "UPDATE certificates SET status = 'revoked' \
                 WHERE serial = $1 AND status <> 'revoked' RETURNING issuing_ca",
            )
            .bind(serial.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            let Some(row) = row else {
                let exists = sqlx::query("SELECT status FROM certificates WHERE serial = $1")
                    .bind(serial.as_str())
                    .fetch_optional(&mut *conn)
                    .await?
                    .is_some();
                return Ok(Outcome::Revoke(if exists {
                    RevokeOutcome::AlreadyRevoked
                } else {
                    RevokeOutcome::Unknown
                }));
            };
            let issuing_ca: String = row.try_get("issuing_ca")?;
            sqlx::query(
                "INSERT INTO revocations (serial, issuing_ca, revoked_at, reason) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(serial.as_str())
            .bind(issuing_ca.as_str())
            .bind(at)
            .bind(reason.as_str())
            .execute(&mut *conn)
            .await?;
            if let Some(item) = outbox {
                enqueue(conn, backend, item, at).await?;
            }
            Ok(Outcome::Revoke(RevokeOutcome::Revoked))
        }
        Op::StoreCrl(crl) => {
            let number = to_i64(crl.number)?;
            sqlx::query(
                "INSERT INTO crls (issuing_ca, last_number) VALUES ($1, 0) \
                 ON CONFLICT (issuing_ca) DO NOTHING",
            )
            .bind(crl.issuing_ca.as_str())
            .execute(&mut *conn)
            .await?;
            // Only a newer CRL replaces the stored one, so a slow replica
            // cannot roll the published CRL back.
            let res = sqlx::query(
                "UPDATE crls SET crl_number = $2, der = $3, this_update = $4, next_update = $5, \
                 last_number = CASE WHEN last_number < $2 THEN $2 ELSE last_number END \
                 WHERE issuing_ca = $1 AND (crl_number IS NULL OR crl_number < $2)",
            )
            .bind(crl.issuing_ca.as_str())
            .bind(number)
            .bind(crl.der.as_slice())
            .bind(crl.this_update)
            .bind(crl.next_update)
            .execute(&mut *conn)
            .await?;
            Ok(if res.rows_affected() == 0 {
                Outcome::Unchanged
            } else {
                Outcome::Done
            })
        }
        Op::InsertOperatorToken(t) => {
            // No conflict target: covers the name and the token hash.
            let res = sqlx::query(
                "INSERT INTO operator_tokens (name, token_hash, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(t.name.as_str())
            .bind(t.token_hash.as_str())
            .bind(t.created_at)
            .execute(&mut *conn)
            .await?;
            Ok(if res.rows_affected() == 0 {
                Outcome::Duplicate
            } else {
                Outcome::Done
            })
        }
        Op::DeleteOperatorToken { name } => {
            let res = sqlx::query("DELETE FROM operator_tokens WHERE name = $1")
                .bind(name.as_str())
                .execute(&mut *conn)
                .await?;
            Ok(found(res.rows_affected()))
        }
        Op::Enqueue(item) => {
            enqueue(conn, backend, item, at).await?;
            Ok(Outcome::Done)
        }
        Op::AuditOnly => Ok(Outcome::Done),
    }
}

/// Binds $1–$12 of an insert into `certificates`, in the column order both
/// backends' statements use.
fn bind_certificate<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    c: &'q NewCertificate,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(c.serial.as_str())
        .bind(c.issuing_ca.as_str())
        .bind(c.kind.as_str())
        .bind(c.user_id.as_deref())
        .bind(c.device_id.as_deref())
        .bind(c.key.as_str())
        .bind(c.authority_id.as_str())
        .bind(c.not_before)
        .bind(c.not_after)
        .bind(c.der.as_slice())
        .bind(c.renewed_from.as_deref())
        .bind(c.created_at)
}

/// Marks a valid certificate superseded. The status test is spelt "neither
/// revoked nor superseded" (the same as "valid", given the CHECK) on
/// purpose: `status = 'valid'` would let PostgreSQL pick the partial index
/// `certificates_renewal_due` (all valid certificates) over the primary key
/// in a plan cached while the table was small.
const SUPERSEDE_SQL: &str = "UPDATE certificates SET status = 'superseded' \
     WHERE serial = $1 AND status NOT IN ('revoked', 'superseded')";

/// Marks the certificate a renewal replaces as superseded (if still valid).
async fn supersede_renewed(conn: &mut AnyConnection, serial: &str) -> StoreResult<()> {
    sqlx::query(SUPERSEDE_SQL)
        .bind(serial)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn found(rows: u64) -> Outcome {
    if rows == 0 {
        Outcome::NotFound
    } else {
        Outcome::Done
    }
}

/// Queues an outbox item and supersedes older pending items for the same
/// state key. Runs only in writer transactions, which are serialised, so
/// afterwards each state key has at most one pending item. On PostgreSQL
/// both happen in one statement (one round trip on the serialised path).
async fn enqueue(
    conn: &mut AnyConnection,
    backend: Backend,
    item: &PreparedOutbox,
    at: i64,
) -> StoreResult<()> {
    match backend {
        Backend::Postgres => {
            // The UPDATE does not see the row the INSERT adds (one snapshot
            // per statement), and would spare it anyway (`id <`).
            sqlx::query(
                "WITH ins AS (INSERT INTO outbox (kind, state_key, content, state, created_at, \
                 attempts, next_attempt_at) VALUES ($1, $2, $3, 'pending', $4, 0, $4) RETURNING id) \
                 UPDATE outbox SET state = 'superseded', superseded_by = (SELECT id FROM ins) \
                 WHERE state_key = $2 AND state = 'pending' AND id < (SELECT id FROM ins)",
            )
            .bind(item.kind.as_str())
            .bind(item.state_key.as_str())
            .bind(item.content.as_str())
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        Backend::Sqlite => {
            let row = sqlx::query(
                "INSERT INTO outbox (kind, state_key, content, state, created_at, attempts, \
                 next_attempt_at) VALUES ($1, $2, $3, 'pending', $4, 0, $4) RETURNING id",
            )
            .bind(item.kind.as_str())
            .bind(item.state_key.as_str())
            .bind(item.content.as_str())
            .bind(at)
            .fetch_one(&mut *conn)
            .await?;
            let id: i64 = row.try_get("id")?;
            sqlx::query(
                "UPDATE outbox SET state = 'superseded', superseded_by = $2 \
                 WHERE state_key = $1 AND state = 'pending' AND id < $2",
            )
            .bind(item.state_key.as_str())
            .bind(id)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// An audit entry ready to insert.
struct AuditRow<'a> {
    seq: i64,
    at: i64,
    audit: &'a PreparedAudit,
    prev_hash: String,
    hash: String,
}

/// Largest number of audit rows in one `INSERT` (8 parameters each).
const AUDIT_CHUNK: usize = 32;

/// `INSERT INTO audit_log ... VALUES (...), (...)` for `rows` rows
/// (a power of two up to [`AUDIT_CHUNK`]), built once per size so that
/// only a handful of distinct statements reach the statement cache.
fn audit_insert_sql(rows: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        (0..=AUDIT_CHUNK.trailing_zeros())
            .map(|k| {
                let n = 1usize << k;
                let mut sql = String::from(
                    "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash) VALUES ",
                );
                for r in 0..n {
                    if r > 0 {
                        sql.push_str(", ");
                    }
                    let p = r * 8;
                    sql.push_str(&format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                        p + 1,
                        p + 2,
                        p + 3,
                        p + 4,
                        p + 5,
                        p + 6,
                        p + 7,
                        p + 8
                    ));
                }
                sql
            })
            .collect()
    });
    let k = rows.trailing_zeros() as usize;
    all.get(k).map_or("", String::as_str)
}

/// Inserts the batch's audit entries with as few statements as possible
/// (chunks of 32, 16, ..., 1 rows).
async fn insert_audit_rows(conn: &mut AnyConnection, rows: &[AuditRow<'_>]) -> StoreResult<()> {
    let mut rest = rows;
    while !rest.is_empty() {
        let mut n = AUDIT_CHUNK;
        while n > rest.len() {
            n /= 2;
        }
        let (chunk, tail) = rest.split_at(n);
        let mut query = sqlx::query(audit_insert_sql(n));
        for r in chunk {
            query = query
                .bind(r.seq)
                .bind(r.at)
                .bind(r.audit.actor.as_str())
                .bind(r.audit.action.as_str())
                .bind(r.audit.subject.as_deref())
                .bind(r.audit.details.as_str())
                .bind(r.prev_hash.as_str())
                .bind(r.hash.as_str());
        }
        query.execute(&mut *conn).await?;
        rest = tail;
    }
    Ok(())
}

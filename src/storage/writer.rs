//! The writer task: applies audited changes in batched transactions.
//!
//! See the module docs of [`super`] ("group commit") for why it exists.
//! Every change is an [`Op`] plus an optional audit entry; [`apply`] runs
//! one op inside the batch's transaction and reports an [`Outcome`]. Only
//! outcomes that changed something get their audit entry appended.

use std::sync::Arc;

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
        let head_seq: i64 = head.try_get("seq")?;
        let mut hash: String = head.try_get("hash")?;
        let mut seq = u64::try_from(head_seq)
            .map_err(|_| StoreError::Corrupt(format!("audit head seq {head_seq}")))?;
        let start = seq;

        let mut replies = Vec::with_capacity(works.len());
        for work in works {
            let outcome = apply(&mut tx, work).await?;
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
                sqlx::query(
                    "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(to_i64(seq)?)
                .bind(work.at)
                .bind(a.actor.as_str())
                .bind(a.action.as_str())
                .bind(a.subject.as_deref())
                .bind(a.details.as_str())
                .bind(hash.as_str())
                .bind(next.as_str())
                .execute(&mut *tx)
                .await?;
                hash = next;
                audit_seq = Some(seq);
            }
            replies.push(Reply { outcome, audit_seq });
        }
        if seq != start {
            sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                .bind(to_i64(seq)?)
                .bind(hash.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit()
            .await
            .map_err(|e| BatchError::Commit(e.to_string()))?;
        Ok(replies)
    }
}

/// u64 to the i64 the databases store.
pub(super) fn to_i64(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::InvalidInput(format!("{v} exceeds the i64 range")))
}

/// Applies one op inside the batch transaction. Ops check their
/// preconditions before writing anything, so a non-`Done` outcome leaves
/// no trace; a returned error aborts the whole batch.
async fn apply(conn: &mut AnyConnection, work: &Work) -> Result<Outcome, StoreError> {
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
        Op::IssueCertificate { cert, outbox } => {
            let c = cert;
            let res = sqlx::query(
                "INSERT INTO certificates (serial, issuing_ca, kind, user_id, device_id, key, \
                 authority_id, not_before, not_after, der, status, renewed_from, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'valid', $11, $12) \
                 ON CONFLICT (serial) DO NOTHING",
            )
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
            .execute(&mut *conn)
            .await?;
            if res.rows_affected() == 0 {
                return Ok(Outcome::Duplicate);
            }
            if let Some(old) = &c.renewed_from {
                sqlx::query(
                    "UPDATE certificates SET status = 'superseded' \
                     WHERE serial = $1 AND status = 'valid'",
                )
                .bind(old.as_str())
                .execute(&mut *conn)
                .await?;
            }
            if let Some(item) = outbox {
                enqueue(conn, item, at).await?;
            }
            Ok(Outcome::Done)
        }
        Op::Supersede { serial } => {
            let res = sqlx::query(
                "UPDATE certificates SET status = 'superseded' \
                 WHERE serial = $1 AND status = 'valid'",
            )
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
                enqueue(conn, item, at).await?;
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
            enqueue(conn, item, at).await?;
            Ok(Outcome::Done)
        }
        Op::AuditOnly => Ok(Outcome::Done),
    }
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
/// at most one pending item per state key exists at any time.
async fn enqueue(conn: &mut AnyConnection, item: &PreparedOutbox, at: i64) -> StoreResult<()> {
    let row = sqlx::query(
        "INSERT INTO outbox (kind, state_key, content, state, created_at, attempts, next_attempt_at) \
         VALUES ($1, $2, $3, 'pending', $4, 0, $4) RETURNING id",
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
    Ok(())
}

//! The writer task: applies audited changes in batched transactions.
//!
//! See the module docs of [`super`] ("group commit") for why it exists.
//! Every change is an [`Op`] plus an optional audit entry; [`apply`] runs
//! one op inside the batch's transaction and reports an [`Outcome`]. Only
//! outcomes that changed something get their audit entry appended.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sqlx::Row;
use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::audit::audit_hash;
use super::model::{
    Authority, AuthorityStatus, Challenge, ChallengeClaim, ChallengeOutcome, NewCertificate,
    OperatorToken, RevokeOutcome, StoredCrl,
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
    /// Stores a fresh challenge (not audited).
    InsertChallenge(Box<Challenge>),
    /// Consumes a challenge without issuing anything (burning it).
    ConsumeChallenge(ChallengeClaim),
    /// Stores an issued certificate; with a claim, only if the claimed
    /// challenge is consumed by this very op (an enrollment).
    IssueCertificate {
        cert: Box<NewCertificate>,
        outbox: Option<PreparedOutbox>,
        claim: Option<ChallengeClaim>,
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
    /// Not applied: the claimed challenge was not consumable (any outcome
    /// but `Ok`). A `ConsumeChallenge` that succeeds reports `Done`.
    Challenge(ChallengeOutcome),
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

/// Where to queue changes: the writer tasks of one [`super::Store`].
pub(super) struct Writers {
    /// Every audited change (and anything that touches audited rows).
    pub audited: mpsc::Sender<Job>,
    /// Challenges (stored, burnt): unaudited and independent of everything
    /// else. On PostgreSQL they have a writer of their own, so their
    /// commits do not queue behind the audit chain's; SQLite has one write
    /// lock for the file, so there it is the same writer.
    pub challenges: mpsc::Sender<Job>,
}

/// Starts the writer tasks on the current runtime; they end when every
/// sender is dropped.
pub(super) fn spawn(pool: AnyPool, backend: Backend, gate: Option<Arc<Mutex<()>>>) -> Writers {
    let start = |pool: AnyPool, gate: Option<Arc<Mutex<()>>>| {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 16);
        let writer = Writer {
            pool,
            backend,
            gate,
        };
        tokio::spawn(writer.run(rx));
        tx
    };
    let audited = start(pool.clone(), gate.clone());
    let challenges = match backend {
        Backend::Postgres => start(pool, gate),
        Backend::Sqlite => audited.clone(),
    };
    Writers {
        audited,
        challenges,
    }
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
        // A batch without audit entries (only challenges) leaves the chain
        // head alone, and so does not queue behind other replicas' appends.
        let (mut seq, mut hash) = if works.iter().any(|w| w.audit.is_some()) {
            let head_sql = match self.backend {
                Backend::Sqlite => "SELECT seq, hash FROM audit_head WHERE id = 1",
                // Locks the head row until commit: appends from all replicas
                // queue here. READ COMMITTED re-reads the row once it gets it.
                Backend::Postgres => "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
            };
            let head = sqlx::query(head_sql).fetch_one(&mut *tx).await?;
            let head_seq: i64 = head.try_get("seq")?;
            let seq = u64::try_from(head_seq)
                .map_err(|_| StoreError::Corrupt(format!("audit head seq {head_seq}")))?;
            (seq, head.try_get::<String, _>("hash")?)
        } else {
            (0, String::new())
        };
        let locked = Instant::now();
        let start = seq;

        let mut bulk = bulk_insert_challenges(&mut tx, works).await?;
        let mut replies = Vec::with_capacity(works.len());
        let mut entries: Vec<AuditRow<'_>> = Vec::new();
        for (index, work) in works.iter().enumerate() {
            let outcome = match bulk.remove(&index) {
                Some(outcome) => outcome,
                None => apply(&mut tx, self.backend, work).await?,
            };
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
        if seq != start {
            append_audit(&mut tx, self.backend, &entries, to_i64(seq)?, &hash).await?;
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

/// Applies the batch's challenge inserts first, together (the batch's other
/// ops cannot depend on them: a challenge's secret leaves the service only
/// after its insert is committed). The outcome of each, by index in
/// `works`.
async fn bulk_insert_challenges(
    conn: &mut AnyConnection,
    works: &[Work],
) -> StoreResult<HashMap<usize, Outcome>> {
    let challenges: Vec<(usize, &Challenge)> = works
        .iter()
        .enumerate()
        .filter_map(|(i, w)| match &w.op {
            Op::InsertChallenge(c) => Some((i, c.as_ref())),
            _ => None,
        })
        .collect();
    if challenges.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<&Challenge> = challenges.iter().map(|(_, c)| *c).collect();
    let mut inserted = insert_challenges(conn, &rows).await?;
    Ok(challenges
        .into_iter()
        .map(|(i, c)| {
            // An id given twice: the first one is the insert.
            let outcome = if inserted.remove(&c.id) {
                Outcome::Done
            } else {
                Outcome::Duplicate
            };
            (i, outcome)
        })
        .collect())
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
        // `run_batch` applies these in bulk (`bulk_insert_challenges`)
        // before the batch's other ops; alone, one is a bulk of one.
        Op::InsertChallenge(c) => {
            let inserted = insert_challenges(conn, &[c.as_ref()]).await?;
            Ok(if inserted.is_empty() {
                Outcome::Duplicate
            } else {
                Outcome::Done
            })
        }
        Op::ConsumeChallenge(claim) => Ok(if try_consume(conn, claim).await? {
            Outcome::Done
        } else {
            Outcome::Challenge(refusal(conn, claim).await?)
        }),
        Op::IssueCertificate {
            cert,
            outbox,
            claim,
        } => issue_certificate(conn, backend, cert, outbox.as_ref(), claim.as_ref(), at).await,
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

/// Stores an issued certificate with its outbox item (superseding older
/// pending items for the state key), supersedes the certificate it renews,
/// and, for an enrollment, consumes the claimed challenge: all or nothing.
///
/// On PostgreSQL all of it is one statement (one round trip on the
/// serialised path, where round trips are what limits throughput under
/// load); SQLite, in process, runs the steps one by one to the same effect.
async fn issue_certificate(
    conn: &mut AnyConnection,
    backend: Backend,
    c: &NewCertificate,
    outbox: Option<&PreparedOutbox>,
    claim: Option<&ChallengeClaim>,
    at: i64,
) -> StoreResult<Outcome> {
    let (consumed, inserted) = match backend {
        Backend::Postgres => {
            let row = bind_certificate(
                sqlx::query(
                    "WITH ch AS (UPDATE challenges SET used_at = $16::bigint WHERE id = $17::text \
                     AND authority_id = $18 AND user_id = $19 AND device_id = $20 AND key = $21 \
                     AND used_at IS NULL AND expires_at > $16::bigint RETURNING id), \
                     c AS (INSERT INTO certificates (serial, issuing_ca, kind, user_id, \
                     device_id, key, authority_id, not_before, not_after, der, status, \
                     renewed_from, created_at) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'valid', $11, $12 \
                     WHERE $17::text IS NULL OR EXISTS (SELECT 1 FROM ch) \
                     ON CONFLICT (serial) DO NOTHING RETURNING serial), \
                     o AS (INSERT INTO outbox (kind, state_key, content, state, created_at, \
                     attempts, next_attempt_at) SELECT $13, $14, $15, 'pending', $12, 0, $12 \
                     FROM c WHERE $13::text IS NOT NULL RETURNING id), \
                     s AS (UPDATE outbox SET state = 'superseded', superseded_by = (SELECT id FROM o) \
                     WHERE state_key = $14 AND state = 'pending' AND id < (SELECT id FROM o)), \
                     r AS (UPDATE certificates SET status = 'superseded' WHERE serial = $11 \
                     AND status NOT IN ('revoked', 'superseded') AND EXISTS (SELECT 1 FROM c)) \
                     SELECT (SELECT COUNT(*) FROM ch) AS consumed, \
                     (SELECT COUNT(*) FROM c) AS inserted",
                ),
                c,
            )
            .bind(outbox.map(|o| o.kind.as_str()))
            .bind(outbox.map(|o| o.state_key.as_str()))
            .bind(outbox.map(|o| o.content.as_str()))
            .bind(claim.map(|k| k.now))
            .bind(claim.map(|k| k.id.as_str()))
            .bind(claim.map(|k| k.authority_id.as_str()))
            .bind(claim.map(|k| k.user_id.as_str()))
            .bind(claim.map(|k| k.device_id.as_str()))
            .bind(claim.map(|k| k.key.as_str()))
            .fetch_one(&mut *conn)
            .await?;
            (
                row.try_get::<i64, _>("consumed")? > 0,
                row.try_get::<i64, _>("inserted")? > 0,
            )
        }
        Backend::Sqlite => {
            let consumed = match claim {
                Some(claim) => try_consume(conn, claim).await?,
                None => false,
            };
            let inserted = if claim.is_some() && !consumed {
                false
            } else {
                insert_certificate_sqlite(conn, c, outbox, at).await?
            };
            (consumed, inserted)
        }
    };
    if let Some(claim) = claim {
        if !consumed {
            return Ok(Outcome::Challenge(refusal(conn, claim).await?));
        }
    }
    if !inserted {
        if let Some(claim) = claim {
            // Nothing of a refused op may remain: give the challenge back.
            sqlx::query("UPDATE challenges SET used_at = NULL WHERE id = $1")
                .bind(claim.id.as_str())
                .execute(&mut *conn)
                .await?;
        }
        return Ok(Outcome::Duplicate);
    }
    Ok(Outcome::Done)
}

/// SQLite's steps of [`issue_certificate`] after the claim: the
/// certificate, its outbox item, the certificate it renews. Whether the
/// certificate was new.
async fn insert_certificate_sqlite(
    conn: &mut AnyConnection,
    c: &NewCertificate,
    outbox: Option<&PreparedOutbox>,
    at: i64,
) -> StoreResult<bool> {
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
        return Ok(false);
    }
    if let Some(item) = outbox {
        enqueue(conn, Backend::Sqlite, item, at).await?;
    }
    if let Some(old) = &c.renewed_from {
        supersede_renewed(conn, old).await?;
    }
    Ok(true)
}

/// Consumes the claimed challenge if it is unused, unexpired and bound to
/// exactly the claimed authority, user, device and key: one conditional
/// `UPDATE`, so across all replicas at most one caller ever succeeds.
async fn try_consume(conn: &mut AnyConnection, claim: &ChallengeClaim) -> StoreResult<bool> {
    let res = sqlx::query(
        "UPDATE challenges SET used_at = $5 WHERE id = $1 AND authority_id = $2 \
         AND user_id = $3 AND device_id = $4 AND key = $6 AND used_at IS NULL \
         AND expires_at > $5",
    )
    .bind(claim.id.as_str())
    .bind(claim.authority_id.as_str())
    .bind(claim.user_id.as_str())
    .bind(claim.device_id.as_str())
    .bind(claim.now)
    .bind(claim.key.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Why a claim could not consume its challenge (after the conditional
/// `UPDATE` matched nothing).
async fn refusal(
    conn: &mut AnyConnection,
    claim: &ChallengeClaim,
) -> StoreResult<ChallengeOutcome> {
    let row = sqlx::query(
        "SELECT authority_id, user_id, device_id, key, expires_at, used_at FROM challenges \
         WHERE id = $1",
    )
    .bind(claim.id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(ChallengeOutcome::Unknown);
    };
    let bound_authority: String = row.try_get("authority_id")?;
    let bound_user: String = row.try_get("user_id")?;
    let bound_device: String = row.try_get("device_id")?;
    let bound_key: String = row.try_get("key")?;
    let expires_at: i64 = row.try_get("expires_at")?;
    let used_at: Option<i64> = row.try_get("used_at")?;
    Ok(
        if bound_authority != claim.authority_id
            || bound_user != claim.user_id
            || bound_device != claim.device_id
        {
            ChallengeOutcome::WrongBinding
        } else if used_at.is_some() {
            ChallengeOutcome::AlreadyUsed
        } else if expires_at <= claim.now {
            ChallengeOutcome::Expired
        } else if bound_key != claim.key {
            ChallengeOutcome::KeyMismatch
        } else {
            // Unreachable unless the row changed between the statements
            // (e.g. purged and recreated); report it as used.
            ChallengeOutcome::AlreadyUsed
        },
    )
}

/// Stores fresh challenges with as few statements as possible; returns the
/// ids actually inserted (an existing id is skipped, also one repeated
/// within `challenges`).
async fn insert_challenges(
    conn: &mut AnyConnection,
    challenges: &[&Challenge],
) -> StoreResult<HashSet<String>> {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let mut inserted = HashSet::new();
    for chunk in pow2_chunks(challenges) {
        let sql = multi_row_sql(
            &SQL,
            "INSERT INTO challenges (id, authority_id, user_id, device_id, created_at, \
             expires_at, used_at, kind, proof, key, device_key) VALUES ",
            11,
            |_| " ON CONFLICT (id) DO NOTHING RETURNING id".to_owned(),
            chunk.len(),
        );
        let mut query = sqlx::query(sql);
        for c in chunk {
            query = query
                .bind(c.id.as_str())
                .bind(c.authority_id.as_str())
                .bind(c.user_id.as_str())
                .bind(c.device_id.as_str())
                .bind(c.created_at)
                .bind(c.expires_at)
                .bind(c.used_at)
                .bind(c.kind.as_str())
                .bind(c.proof.as_str())
                .bind(c.key.as_str())
                .bind(c.device_key.as_str());
        }
        for row in query.fetch_all(&mut *conn).await? {
            inserted.insert(row.try_get::<String, _>("id")?);
        }
    }
    Ok(inserted)
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

/// Largest number of rows in one multi-row `INSERT`.
const MAX_ROWS: usize = 32;

/// Splits `items` into chunks of 32, 16, ..., 1 items: few statements, and
/// only a handful of distinct statement texts for the statement cache.
fn pow2_chunks<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut n = MAX_ROWS;
        while n > rest.len() {
            n /= 2;
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

/// `{head}($1, ..., $columns), (...), ...{tail}` for `rows` rows (a chunk
/// of [`pow2_chunks`]), built once per size into `cache`. `tail` gets the
/// number of parameters the rows use, for parameters of its own.
fn multi_row_sql(
    cache: &'static OnceLock<Vec<String>>,
    head: &str,
    columns: usize,
    tail: impl Fn(usize) -> String,
    rows: usize,
) -> &'static str {
    let all = cache.get_or_init(|| {
        (0..=MAX_ROWS.trailing_zeros())
            .map(|k| {
                let tuples: Vec<String> = (0..1usize << k)
                    .map(|r| {
                        let params: Vec<String> = (1..=columns)
                            .map(|c| format!("${}", r * columns + c))
                            .collect();
                        format!("({})", params.join(", "))
                    })
                    .collect();
                format!("{head}{}{}", tuples.join(", "), tail(columns << k))
            })
            .collect()
    });
    let k = rows.trailing_zeros() as usize;
    all.get(k).map_or("", String::as_str)
}

/// Appends the batch's audit entries and moves the chain head to `seq` /
/// `hash`, in as few statements as possible: on PostgreSQL the head moves
/// in the statement that inserts the last rows (one round trip less on the
/// serialised path).
async fn append_audit(
    conn: &mut AnyConnection,
    backend: Backend,
    rows: &[AuditRow<'_>],
    seq: i64,
    hash: &str,
) -> StoreResult<()> {
    const COLUMNS: &str =
        "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash) VALUES ";
    static PLAIN: OnceLock<Vec<String>> = OnceLock::new();
    static WITH_HEAD: OnceLock<Vec<String>> = OnceLock::new();
    let chunks: Vec<&[AuditRow<'_>]> = pow2_chunks(rows).collect();
    let last = chunks.len().saturating_sub(1);
    let head_in_last = backend == Backend::Postgres && !chunks.is_empty();
    for (i, chunk) in chunks.into_iter().enumerate() {
        let sql = if head_in_last && i == last {
            multi_row_sql(
                &WITH_HEAD,
                &format!("WITH a AS ({COLUMNS}"),
                8,
                |used| {
                    format!(
                        ") UPDATE audit_head SET seq = ${}, hash = ${} WHERE id = 1",
                        used + 1,
                        used + 2
                    )
                },
                chunk.len(),
            )
        } else {
            multi_row_sql(&PLAIN, COLUMNS, 8, |_| String::new(), chunk.len())
        };
        let mut query = sqlx::query(sql);
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
        if head_in_last && i == last {
            query = query.bind(seq).bind(hash);
        }
        query.execute(&mut *conn).await?;
    }
    if !head_in_last {
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(seq)
            .bind(hash)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

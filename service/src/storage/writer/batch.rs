//! The batching loop: each writer task takes whatever is queued (up to
//! [`MAX_BATCH`] changes), applies it in one transaction with the audit
//! chain head locked, appends the batch's audit entries, commits, and only
//! then answers each change. When a batch fails, this decides which change
//! gets which error (and redoes the batch change by change if one change's
//! data was refused).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Row;
use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{mpsc, Mutex};

use super::apply::apply;
use super::audit::{append_audit, AuditRow};
use super::challenges::insert_challenges;
use super::{Job, Op, Outcome, Reply, Work, Writers};
use crate::storage::audit::audit_hash;
use crate::storage::model::Challenge;
use crate::storage::{to_i64, Backend, StoreError, StoreResult, MAX_BATCH};

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

/// Starts the writer tasks on the current runtime; they end when every
/// sender is dropped.
pub(in crate::storage) fn spawn(
    pool: AnyPool,
    backend: Backend,
    gate: Option<Arc<Mutex<()>>>,
) -> Writers {
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

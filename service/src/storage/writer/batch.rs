//! The batching loop: each writer task takes whatever is queued (up to
//! [`MAX_BATCH`] changes), applies it in one transaction, then locks the
//! audit chain head, appends the batch's audit entries, commits, and only
//! then answers each change. When a batch fails, this decides which change
//! gets which error (and redoes the batch change by change if one change's
//! data was refused).
//!
//! # The head lock comes last
//!
//! The chain head (`audit_head`, one row) is what serialises every audited
//! change of every replica. A batch takes it only after all of its own
//! statements ran. On PostgreSQL it then needs two round trips under it
//! for a batch whose entries fit in one message (1 MiB, see
//! `messages::MESSAGE_BYTES`; one more per further MiB): one call
//! ([`append_postgres`]) that locks the head, chains and inserts the
//! entries, supersedes the outbox items the batch replaces and moves the
//! head, and the commit. So the statements of
//! one replica's batch run while another replica's batch holds the head
//! and commits; within a store, several writer tasks can share the queue
//! the same way ([`POSTGRES_AUDITED_WRITERS`]). A batch of only issuances
//! (the enrollment path) is one call per message of issuances instead
//! (`Writer::call`, like a batch of only challenges), each its own
//! implicit transaction: the function
//! runs the issuances and then the same append, in the server, so the head
//! is held for no round trip at all, only until the commit. SQLite's
//! writer holds the database write lock from `BEGIN` anyway; there the
//! head is simply read at the end.
//!
//! The chain keeps its guarantees: the head is the last lock a
//! transaction takes and is held until its commit, so transactions that
//! append commit one after the other, in chain order; a transaction whose
//! statements conflict with another's (a row lock) waits for that one's
//! commit before it can reach the head, so the chain orders conflicting
//! changes the way the database applied them. Two transactions of one
//! replica can conflict the way two replicas always could (the same
//! challenge, the same renewed certificate); a deadlock between them is a
//! statement error that redoes each change on its own.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Row;
use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::apply::{apply, Applied};
use super::audit::{append_postgres, append_sqlite, AuditRow, PreparedEntry};
use super::certificates::{issue_postgres, Issuance};
use super::challenges::{challenge_json, insert_challenges, insert_json};
use super::messages::json_chunks;
use super::outbox::survivors_json;
use super::{Job, Op, Outcome, Reply, Work, WriteCounters, Writers};
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
    counters: Arc<WriteCounters>,
}

/// Writer tasks that take audited changes from one store's queue on
/// PostgreSQL (at most a third of the pool: each holds a connection while
/// its transaction runs). More than one overlaps one batch's statements
/// with another's head lock and commit, which pays where round trips are
/// slow (a database on another host). On the 2-core development machine,
/// where the database shares the CPU with the service and the load, it
/// does not: the batches get smaller and PostgreSQL spends more CPU per
/// enrollment (govtrust-bench, 16 clients, idle machine, same session:
/// 2 writers 923–946/s, PostgreSQL 0.97–1.00 ms CPU per enrollment;
/// 1 writer 947–1,024/s, 0.77–0.84 ms; on a faster machine, whole
/// batches in one message, three alternating pairs: 2 writers 2.2
/// changes per commit and 1,203–1,644/s, 1 writer 3.9 and 1,132–1,776/s).
/// Replicas overlap either way, as each takes the head only at the end.
const POSTGRES_AUDITED_WRITERS: usize = 1;

/// A queue that several writer tasks take batches from.
type SharedQueue = Arc<Mutex<mpsc::Receiver<Job>>>;

/// Starts the writer tasks on the current runtime; they end when every
/// sender is dropped.
pub(in crate::storage) fn spawn(
    pool: AnyPool,
    backend: Backend,
    gate: Option<Arc<Mutex<()>>>,
) -> Writers {
    let counters = Arc::new(WriteCounters::default());
    let start = |tasks: usize| {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 16);
        let rx: SharedQueue = Arc::new(Mutex::new(rx));
        for _ in 0..tasks {
            let writer = Writer {
                pool: pool.clone(),
                backend,
                gate: gate.clone(),
                counters: Arc::clone(&counters),
            };
            tokio::spawn(writer.run(Arc::clone(&rx)));
        }
        tx
    };
    match backend {
        Backend::Postgres => {
            // Leave at least two thirds of the pool to the challenge writer
            // and the readers.
            let max = usize::try_from(pool.options().get_max_connections()).unwrap_or(usize::MAX);
            Writers {
                audited: start((max / 3).clamp(1, POSTGRES_AUDITED_WRITERS)),
                challenges: start(1),
                counters,
            }
        }
        Backend::Sqlite => {
            let audited = start(1);
            Writers {
                challenges: audited.clone(),
                audited,
                counters,
            }
        }
    }
}

impl Writer {
    async fn run(self, rx: SharedQueue) {
        let mut buf = Vec::with_capacity(MAX_BATCH);
        loop {
            // The other tasks queue on the receiver meanwhile (a fair lock):
            // the next takes the next batch while this one runs its own.
            let taken = rx.lock().await.recv_many(&mut buf, MAX_BATCH).await;
            if taken == 0 {
                break;
            }
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
        if let Some(calls) = OneStatement::of(self.backend, &works) {
            // One call per message (see `messages`), each its own implicit
            // transaction, answered as it commits.
            let mut replies = replies.into_iter();
            let mut start = 0;
            for (count, array) in json_chunks(calls.items(&works)) {
                let range = start..start + count;
                start += count;
                let result = self
                    .call(&calls, range.clone(), &works[range.clone()], &array)
                    .await;
                if result.is_ok() {
                    self.counters.committed(&works[range.clone()]);
                }
                let replies = replies.by_ref().take(count).collect();
                self.answer(&works[range], replies, result).await;
            }
            return;
        }
        let result = self.run_batch(&works).await;
        self.answer(&works, replies, result).await;
    }

    /// Sends each change of `works` its result: the batch's, or, when one
    /// change's data made the batch fail, the change's own, redone alone.
    async fn answer(
        &self,
        works: &[Work],
        replies: Vec<oneshot::Sender<StoreResult<Reply>>>,
        result: Result<Vec<Reply>, BatchError>,
    ) {
        match result {
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

    /// Applies `works` in one transaction, then, if it appends audit
    /// entries or queued outbox items, locks the audit head, appends and
    /// commits (see the module docs).
    async fn run_batch(&self, works: &[Work]) -> Result<Vec<Reply>, BatchError> {
        let started = Instant::now();
        let challenges = challenges_of(works);
        let mut tx = match self.backend {
            // Take the write lock up front: a deferred transaction that reads
            // first and writes later can fail with SQLITE_BUSY immediately.
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        let mut bulk: HashMap<usize, Outcome> =
            bulk_insert_challenges(&mut tx, self.backend, challenges)
                .await?
                .into_iter()
                .collect();
        let mut outcomes = Vec::with_capacity(works.len());
        // (state key, id) of the outbox items queued, in batch order.
        let mut queued: Vec<(&str, i64)> = Vec::new();
        for (index, work) in works.iter().enumerate() {
            let applied = match bulk.remove(&index) {
                Some(outcome) => Applied::from(outcome),
                None => apply(&mut tx, self.backend, work).await?,
            };
            if let (Some(id), Some(item)) = (applied.outbox_id, work.op.outbox()) {
                queued.push((item.state_key.as_str(), id));
            }
            outcomes.push(applied.outcome);
        }
        let worked = Instant::now();

        // A batch that appends nothing and queues nothing (only challenges)
        // leaves the chain head alone, and so does not queue behind other
        // batches' and replicas' appends.
        let appends = works
            .iter()
            .zip(&outcomes)
            .any(|(w, o)| o.changed() && w.audit.is_some());
        let supersedes = self.backend == Backend::Postgres && !queued.is_empty();
        let mut entries = 0;
        let mut replies = Vec::with_capacity(works.len());
        if !(appends || supersedes) {
            replies.extend(outcomes.into_iter().map(|outcome| Reply {
                outcome,
                audit_seq: None,
            }));
        } else if self.backend == Backend::Postgres {
            let to_append: Vec<PreparedEntry<'_>> = works
                .iter()
                .zip(&outcomes)
                .filter_map(|(w, o)| match (o.changed(), &w.audit) {
                    (true, Some(audit)) => Some(PreparedEntry { at: w.at, audit }),
                    _ => None,
                })
                .collect();
            let first = append_postgres(&mut tx, &to_append, survivors_json(&queued)).await?;
            let mut seq = u64::try_from(first)
                .map_err(|_| StoreError::Corrupt(format!("audit head seq {first}")))?;
            for (work, outcome) in works.iter().zip(outcomes) {
                let mut audit_seq = None;
                if outcome.changed() && work.audit.is_some() {
                    seq += 1;
                    audit_seq = Some(seq);
                }
                replies.push(Reply { outcome, audit_seq });
            }
            entries = to_append.len();
        } else {
            let (mut seq, mut hash) = lock_head_sqlite(&mut tx).await?;
            let mut rows: Vec<AuditRow<'_>> = Vec::new();
            for (work, outcome) in works.iter().zip(outcomes) {
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
                    rows.push(AuditRow {
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
            if !rows.is_empty() {
                append_sqlite(&mut tx, &rows, to_i64(seq)?, &hash).await?;
            }
            entries = rows.len();
        }
        let appended = Instant::now();
        tx.commit()
            .await
            .map_err(|e| BatchError::Commit(e.to_string()))?;
        self.counters.committed(works);
        tracing::debug!(
            changes = works.len(),
            audit_entries = entries,
            work_us = micros(worked - started),
            // Waiting for the head lock and appending.
            head_us = micros(appended - worked),
            commit_us = micros(appended.elapsed()),
            "storage batch committed"
        );
        Ok(replies)
    }

    /// PostgreSQL: the changes `range` of `calls` (`array` is their JSON)
    /// in one statement outside a transaction, committed as it ends: one
    /// round trip instead of `BEGIN`, the statements and `COMMIT`.
    /// Challenges are one insert; issuances one call of
    /// `govtrust_issue_batch` (see `issue_postgres`), which runs them in
    /// order and then the audit append under the chain head lock.
    async fn call(
        &self,
        calls: &OneStatement<'_>,
        range: Range<usize>,
        works: &[Work],
        array: &str,
    ) -> Result<Vec<Reply>, BatchError> {
        let started = Instant::now();
        let mut conn = self.pool.acquire().await?;
        let issuances = match calls {
            OneStatement::Challenges(challenges) => {
                let inserted = insert_json(&mut conn, array)
                    .await
                    .map_err(one_statement_error)?;
                tracing::debug!(
                    changes = works.len(),
                    work_us = micros(started.elapsed()),
                    "storage batch of challenges committed in one statement"
                );
                let challenges = challenges.get(range).unwrap_or_default();
                return Ok(
                    challenge_outcomes(challenges.iter().copied().enumerate(), inserted)
                        .into_iter()
                        .map(|(_, outcome)| Reply {
                            outcome,
                            audit_seq: None,
                        })
                        .collect(),
                );
            }
            OneStatement::Issuances(issuances) => issuances.get(range).unwrap_or_default(),
        };
        let batch = issue_postgres(&mut conn, array, true)
            .await
            .map_err(one_statement_error)?;
        if batch.results.len() != works.len() {
            return Err(BatchError::Commit(format!(
                "govtrust_issue_batch answered {} results for {} issuances",
                batch.results.len(),
                works.len()
            )));
        }
        // The head's seq before the batch's entries, which got the next ones.
        let mut seq = batch.first;
        let mut entries = 0;
        let replies = batch
            .results
            .iter()
            .zip(issuances.iter().zip(works))
            .map(|(issued, (issuance, work))| {
                let outcome = issued.outcome(issuance.claim);
                let mut audit_seq = None;
                if outcome.changed() && work.audit.is_some() {
                    let appended = seq.as_mut().map(|seq| {
                        *seq += 1;
                        u64::try_from(*seq).ok()
                    });
                    let Some(Some(appended)) = appended else {
                        return Err(BatchError::Commit(format!(
                            "govtrust_issue_batch gave no audit seq for entry {entries}"
                        )));
                    };
                    entries += 1;
                    audit_seq = Some(appended);
                }
                Ok(Reply { outcome, audit_seq })
            })
            .collect::<Result<Vec<_>, BatchError>>()?;
        tracing::debug!(
            changes = works.len(),
            audit_entries = entries,
            work_us = micros(started.elapsed()),
            "storage batch of issuances committed in one call"
        );
        Ok(replies)
    }
}

/// The error of a statement run on its own (its implicit transaction
/// commits as it ends): an error the database reported means it was
/// rolled back; any other (the connection lost, an answer that cannot be
/// read) leaves its outcome unknown.
fn one_statement_error(err: StoreError) -> BatchError {
    match err {
        StoreError::Database(sqlx::Error::Database(_))
        | StoreError::Constraint(_)
        | StoreError::InvalidInput(_) => BatchError::Statement(err),
        other => BatchError::Commit(other.to_string()),
    }
}

/// A PostgreSQL batch of one kind of change that has a one-statement form
/// (the two most frequent batches there are): sent as one statement per
/// message, each committed on its own.
enum OneStatement<'a> {
    Challenges(Vec<&'a Challenge>),
    Issuances(Vec<Issuance<'a>>),
}

impl<'a> OneStatement<'a> {
    /// `works` in that form, if the backend is PostgreSQL and they are all
    /// challenges or all issuances.
    fn of(backend: Backend, works: &'a [Work]) -> Option<Self> {
        if backend != Backend::Postgres {
            return None;
        }
        let challenges: Option<Vec<&Challenge>> = works
            .iter()
            .map(|w| match &w.op {
                Op::InsertChallenge(c) => Some(c.as_ref()),
                _ => None,
            })
            .collect();
        if let Some(challenges) = challenges {
            return Some(Self::Challenges(challenges));
        }
        let issuances: Option<Vec<Issuance<'a>>> = works
            .iter()
            .map(|w| match &w.op {
                Op::IssueCertificate {
                    cert,
                    outbox,
                    claim,
                } => Some(Issuance {
                    cert,
                    outbox: outbox.as_ref(),
                    claim: claim.as_ref(),
                }),
                _ => None,
            })
            .collect();
        issuances.map(Self::Issuances)
    }

    /// Each change as an item of its statement's JSON array.
    fn items(&self, works: &[Work]) -> Vec<String> {
        match self {
            Self::Challenges(challenges) => challenges.iter().map(|c| challenge_json(c)).collect(),
            Self::Issuances(issuances) => issuances
                .iter()
                .zip(works)
                .map(|(issuance, w)| {
                    let audit = w.audit.as_ref().map(|a| a.json(w.at));
                    issuance.json(audit).to_string()
                })
                .collect(),
        }
    }
}

/// Reads the audit chain head on SQLite, whose writer holds the database
/// write lock already (PostgreSQL locks it in [`append_postgres`]).
async fn lock_head_sqlite(conn: &mut AnyConnection) -> Result<(u64, String), BatchError> {
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?;
    let head_seq: i64 = head.try_get("seq")?;
    let seq = u64::try_from(head_seq)
        .map_err(|_| StoreError::Corrupt(format!("audit head seq {head_seq}")))?;
    Ok((seq, head.try_get::<String, _>("hash")?))
}

/// The challenges `works` stores, with their index in `works`.
fn challenges_of(works: &[Work]) -> Vec<(usize, &Challenge)> {
    works
        .iter()
        .enumerate()
        .filter_map(|(i, w)| match &w.op {
            Op::InsertChallenge(c) => Some((i, c.as_ref())),
            _ => None,
        })
        .collect()
}

/// Applies the batch's challenge inserts first, together (the batch's other
/// ops cannot depend on them: a challenge's secret leaves the service only
/// after its insert is committed). `challenges` are [`challenges_of`] the
/// batch; the outcome of each, by index in the batch, in order.
async fn bulk_insert_challenges(
    conn: &mut AnyConnection,
    backend: Backend,
    challenges: Vec<(usize, &Challenge)>,
) -> StoreResult<Vec<(usize, Outcome)>> {
    if challenges.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<&Challenge> = challenges.iter().map(|(_, c)| *c).collect();
    let inserted = insert_challenges(conn, backend, &rows).await?;
    Ok(challenge_outcomes(challenges, inserted))
}

/// Each challenge's outcome, given the ids the database inserted: an id
/// given twice was inserted by its first op.
fn challenge_outcomes<'a>(
    challenges: impl IntoIterator<Item = (usize, &'a Challenge)>,
    mut inserted: HashSet<String>,
) -> Vec<(usize, Outcome)> {
    challenges
        .into_iter()
        .map(|(i, c)| {
            let outcome = if inserted.remove(&c.id) {
                Outcome::Done
            } else {
                Outcome::Duplicate
            };
            (i, outcome)
        })
        .collect()
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

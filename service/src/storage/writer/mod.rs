//! The writer: applies changes in batched transactions (group commit).
//!
//! See the module docs of [`super`] ("group commit") for why it exists.
//! Every change is an [`Op`] plus an optional audit entry, handed over by
//! `Store::submit` as a [`Job`]; the batching loop ([`batch`]) applies each
//! op ([`apply`]) inside the batch's transaction and reports an
//! [`Outcome`]. Only outcomes that changed something get their audit entry
//! appended ([`audit`]).
//!
//! This module holds that protocol; the statements each op runs are in
//! the module of its table; [`multi_row`] builds the multi-row `INSERT`s
//! that bulk operations share on SQLite, and [`messages`] the JSON arrays
//! they take on PostgreSQL.

mod apply;
mod audit;
mod authorities;
mod batch;
mod certificates;
mod challenges;
mod crls;
mod messages;
mod multi_row;
mod operator_tokens;
mod outbox;
mod prepared;
mod revocations;
mod stats;

use tokio::sync::{mpsc, oneshot};

use super::audit::AuditEntry;
use super::model::{
    AuthorityStatus, Challenge, ChallengeClaim, ChallengeOutcome, NewCertificate, OperatorToken,
    RevokeOutcome, StoredCrl,
};
use super::{Store, StoreError, StoreResult};

pub(super) use batch::spawn;
use prepared::{prepare_audit, PreparedAudit, PreparedAuthority, PreparedOutbox};
pub(super) use prepared::{prepare_authority, prepare_outbox};
use stats::WriteCounters;
pub use stats::{Commits, WriteStats};

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
    InsertOperatorToken(Box<OperatorToken>),
    RotateOperatorToken {
        name: String,
        token_hash: String,
    },
    RevokeOperatorToken {
        name: String,
    },
    DeleteOperatorToken {
        name: String,
    },
    Enqueue(PreparedOutbox),
    AuditOnly,
}

impl Op {
    /// The outbox item this op queues when it changes something.
    fn outbox(&self) -> Option<&PreparedOutbox> {
        match self {
            Self::IssueCertificate { outbox, .. } | Self::Revoke { outbox, .. } => outbox.as_ref(),
            Self::Enqueue(item) => Some(item),
            _ => None,
        }
    }

    /// Whether this op is a challenge's (stored or burnt): unaudited, and
    /// on PostgreSQL taken by a writer of its own.
    fn is_challenge(&self) -> bool {
        matches!(self, Self::InsertChallenge(_) | Self::ConsumeChallenge(_))
    }
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

/// [`Outcome::NotFound`] if a statement touched no row, else
/// [`Outcome::Done`].
fn found(rows: u64) -> Outcome {
    if rows == 0 {
        Outcome::NotFound
    } else {
        Outcome::Done
    }
}

/// Where to queue changes: the writer tasks of one [`super::Store`].
pub(super) struct Writers {
    /// Every audited change (and anything that touches audited rows). On
    /// PostgreSQL [`batch`]'s writer tasks (one by default) take batches
    /// from this queue; each takes the audit chain head lock only at the
    /// end of its transaction, so batches of several tasks or replicas
    /// overlap up to it.
    pub audited: mpsc::Sender<Job>,
    /// Challenges (stored, burnt): unaudited and independent of everything
    /// else. On PostgreSQL they have a writer of their own, so their
    /// commits do not queue behind the audit chain's; SQLite has one write
    /// lock for the file, so there it is the same writer.
    pub challenges: mpsc::Sender<Job>,
    /// What the writer tasks committed, counted by all of them.
    pub counters: std::sync::Arc<WriteCounters>,
}

impl Store {
    /// Hands a change to its writer task and waits for its committed result.
    pub(super) async fn submit(
        &self,
        op: Op,
        audit: Option<AuditEntry>,
        at: i64,
    ) -> StoreResult<Reply> {
        let audit = audit.map(prepare_audit).transpose()?;
        let writers = &self.inner.writers;
        let writer = if op.is_challenge() {
            &writers.challenges
        } else {
            &writers.audited
        };
        let (reply, rx) = oneshot::channel();
        let job = Job {
            work: Work { op, audit, at },
            reply,
        };
        writer
            .send(job)
            .await
            .map_err(|_| StoreError::WriterClosed)?;
        rx.await.map_err(|_| StoreError::WriterClosed)?
    }

    /// How many changes each commit carried since the store opened: whether
    /// group commit batches (see the module docs of [`super`]).
    pub fn write_stats(&self) -> WriteStats {
        self.inner.writers.counters.stats()
    }
}

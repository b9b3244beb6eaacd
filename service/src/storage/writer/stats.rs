//! Group commit, observed: how many changes each commit carried. A
//! commit's cost is mostly per commit (a round trip, a WAL flush, a call's
//! set-up in the server), so this ratio says whether batching works; the
//! bench prints it and `/metrics` exports it.

use std::sync::atomic::{AtomicU64, Ordering};

use super::Work;

/// Commits of one kind of batch since the store opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Commits {
    /// Commits that succeeded (transactions, or calls committed on their
    /// own).
    pub commits: u64,
    /// Changes they carried.
    pub changes: u64,
    /// Most changes in one commit.
    pub largest: u64,
}

/// What a store's writers committed since it opened, by kind of batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Batches of only challenges (stored or burnt): not audited, so
    /// they never wait for the chain head.
    pub challenges: Commits,
    /// Every other batch (issuances, revocations, CRLs, ...): each appends
    /// to the audit chain under its head lock.
    pub audited: Commits,
}

#[derive(Default)]
struct Counter {
    commits: AtomicU64,
    changes: AtomicU64,
    largest: AtomicU64,
}

impl Counter {
    fn record(&self, changes: u64) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.changes.fetch_add(changes, Ordering::Relaxed);
        self.largest.fetch_max(changes, Ordering::Relaxed);
    }

    fn get(&self) -> Commits {
        Commits {
            commits: self.commits.load(Ordering::Relaxed),
            changes: self.changes.load(Ordering::Relaxed),
            largest: self.largest.load(Ordering::Relaxed),
        }
    }
}

/// The counters every writer task of one store adds to.
#[derive(Default)]
pub(in crate::storage) struct WriteCounters {
    challenges: Counter,
    audited: Counter,
}

impl WriteCounters {
    /// Counts one successful commit of `works`.
    pub(super) fn committed(&self, works: &[Work]) {
        let counter = if works.iter().all(|w| w.op.is_challenge()) {
            &self.challenges
        } else {
            &self.audited
        };
        counter.record(u64::try_from(works.len()).unwrap_or(u64::MAX));
    }

    /// The counts so far.
    pub(in crate::storage) fn stats(&self) -> WriteStats {
        WriteStats {
            challenges: self.challenges.get(),
            audited: self.audited.get(),
        }
    }
}

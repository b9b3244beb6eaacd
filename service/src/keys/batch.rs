//! Coalescing of `/keys/query`: concurrent lookups become one request.
//!
//! Synapse spends about 5 ms of CPU on a `/keys/query` however few devices
//! it asks for, and under 0.1 ms more per device (`govtrust-bench enroll
//! --mode full` probes these), so under load the service asks for many
//! devices at once. A [`Batcher`] owns one dispatcher task that collects the
//! lookups and sends them as batches:
//!
//! * with no query in flight, what has arrived goes out at once (no added
//!   latency when the service is idle);
//! * while queries are in flight, lookups wait for one of them to return,
//!   but never longer than [`BatchConfig::max_wait`] after the oldest
//!   arrived: then they go out anyway, so a slow query holds up only its
//!   own batch (at most [`BatchConfig::max_in_flight`] queries at a time);
//! * a batch holds at most [`BatchConfig::max_batch`] devices.
//!
//! Every waiter gets the whole answer of its batch (or its error, shared)
//! and picks out its own device: the checks stay per caller. A waiter
//! gives up after [`BatchConfig::wait_timeout`]; one that is dropped
//! (cancelled) is skipped if its batch has not gone out yet.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use govtrust_verifier::{DeviceId, UserId};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// What one query asks for: user → devices.
pub type Wanted = BTreeMap<UserId, BTreeSet<DeviceId>>;

/// The raw query a [`Batcher`] coalesces (the bot's `/keys/query`; a
/// counting double in tests).
pub trait KeyQuery: Send + Sync + 'static {
    /// What the query returns for a whole batch.
    type Answer: Send + Sync + 'static;
    /// Why the whole query failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Asks for all of `wanted` in one request.
    fn query(
        &self,
        wanted: &Wanted,
    ) -> impl Future<Output = Result<Self::Answer, Self::Error>> + Send;
}

/// How a [`Batcher`] coalesces.
#[derive(Clone, Copy, Debug)]
pub struct BatchConfig {
    /// Most devices in one query.
    pub max_batch: usize,
    /// Most queries in flight at once.
    pub max_in_flight: usize,
    /// Longest a lookup waits for its batch to go out while other queries
    /// are in flight. Longer than a query under load takes, so that the
    /// queue normally grows until a query returns (bigger batches), yet
    /// short enough that a slow query, say to a remote homeserver, holds up
    /// the lookups behind it only this long.
    pub max_wait: Duration,
    /// Longest one query may take.
    pub query_timeout: Duration,
    /// Longest a lookup waits for its answer, all in all.
    pub wait_timeout: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_batch: 64,
            max_in_flight: 4,
            // govtrust-bench full mode, 16 clients: 6.1–6.3 devices per
            // query with 50 ms against 2.9–3.1 with 3 ms, half of Synapse's
            // /keys/query CPU per enrollment (a query took 30–60 ms under
            // load).
            max_wait: Duration::from_millis(50),
            query_timeout: Duration::from_secs(30),
            wait_timeout: Duration::from_secs(35),
        }
    }
}

/// Why a lookup got no answer. Cloneable: one query's failure is every
/// waiter's.
#[derive(Debug, thiserror::Error)]
pub enum BatchError<E: std::error::Error + 'static> {
    /// The query failed.
    #[error("{0}")]
    Query(#[source] Arc<E>),
    /// The query took longer than [`BatchConfig::query_timeout`].
    #[error("the key query timed out")]
    QueryTimeout,
    /// No answer within [`BatchConfig::wait_timeout`].
    #[error("no key query answer in time")]
    WaitTimeout,
    /// The batcher or the query task went away.
    #[error("the key batcher stopped")]
    Closed,
}

// Not derived: that would require `E: Clone`.
impl<E: std::error::Error + 'static> Clone for BatchError<E> {
    fn clone(&self) -> Self {
        match self {
            BatchError::Query(e) => BatchError::Query(e.clone()),
            BatchError::QueryTimeout => BatchError::QueryTimeout,
            BatchError::WaitTimeout => BatchError::WaitTimeout,
            BatchError::Closed => BatchError::Closed,
        }
    }
}

/// Counts since the batcher started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Queries sent.
    pub queries: u64,
    /// Lookups answered by them (devices asked for, with repeats).
    pub lookups: u64,
    /// Largest batch, in lookups.
    pub largest: u64,
    /// Time lookups spent queued before their batch went out, summed over
    /// lookups: with [`BatchStats::query_time`], where a lookup's wait goes.
    pub queued: Duration,
    /// Time the queries took, summed over queries.
    pub query_time: Duration,
}

type Reply<Q> = Result<Arc<<Q as KeyQuery>::Answer>, BatchError<<Q as KeyQuery>::Error>>;

struct Waiter<Q: KeyQuery> {
    user: UserId,
    device: DeviceId,
    arrived: Instant,
    reply: oneshot::Sender<Reply<Q>>,
}

#[derive(Default)]
struct Counters {
    queries: AtomicU64,
    lookups: AtomicU64,
    largest: AtomicU64,
    queued_ns: AtomicU64,
    query_ns: AtomicU64,
}

/// Coalesces concurrent lookups into batched queries (see the module
/// documentation). The dispatcher task starts with the first lookup (so
/// that a batcher can be built outside a runtime) and ends when the
/// batcher is dropped.
pub struct Batcher<Q: KeyQuery> {
    query: Arc<Q>,
    config: BatchConfig,
    sender: OnceLock<mpsc::UnboundedSender<Waiter<Q>>>,
    counters: Arc<Counters>,
}

impl<Q: KeyQuery> Batcher<Q> {
    /// A batcher over `query`.
    pub fn new(query: Arc<Q>, config: BatchConfig) -> Self {
        Batcher {
            query,
            config: BatchConfig {
                max_batch: config.max_batch.max(1),
                max_in_flight: config.max_in_flight.max(1),
                ..config
            },
            sender: OnceLock::new(),
            counters: Arc::default(),
        }
    }

    /// The query it coalesces.
    pub fn inner(&self) -> &Arc<Q> {
        &self.query
    }

    /// Queries and lookups so far.
    pub fn stats(&self) -> BatchStats {
        BatchStats {
            queries: self.counters.queries.load(Ordering::Relaxed),
            lookups: self.counters.lookups.load(Ordering::Relaxed),
            largest: self.counters.largest.load(Ordering::Relaxed),
            queued: Duration::from_nanos(self.counters.queued_ns.load(Ordering::Relaxed)),
            query_time: Duration::from_nanos(self.counters.query_ns.load(Ordering::Relaxed)),
        }
    }

    /// The answer of the batch that asked for `device` of `user`. Must be
    /// called within a Tokio runtime.
    pub async fn fetch(&self, user: &UserId, device: &DeviceId) -> Reply<Q> {
        let (reply, answer) = oneshot::channel();
        let waiter = Waiter {
            user: user.clone(),
            device: device.clone(),
            arrived: Instant::now(),
            reply,
        };
        self.sender().send(waiter).map_err(|_| BatchError::Closed)?;
        match tokio::time::timeout(self.config.wait_timeout, answer).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(BatchError::Closed),
            Err(_) => Err(BatchError::WaitTimeout),
        }
    }

    fn sender(&self) -> &mpsc::UnboundedSender<Waiter<Q>> {
        self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(dispatch(
                self.query.clone(),
                self.config,
                receiver,
                self.counters.clone(),
            ));
            sender
        })
    }
}

/// The dispatcher: collects waiters and decides when a batch goes out.
async fn dispatch<Q: KeyQuery>(
    query: Arc<Q>,
    config: BatchConfig,
    mut arrivals: mpsc::UnboundedReceiver<Waiter<Q>>,
    counters: Arc<Counters>,
) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<()>();
    let mut pending: Vec<Waiter<Q>> = Vec::new();
    // When the oldest pending waiter must go out even with queries in flight.
    let mut due: Option<Instant> = None;
    let mut in_flight = 0usize;
    let mut open = true;
    loop {
        // Take what has already arrived before deciding.
        while open {
            match arrivals.try_recv() {
                Ok(waiter) => {
                    due.get_or_insert_with(|| Instant::now() + config.max_wait);
                    pending.push(waiter);
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        pending.retain(|w| !w.reply.is_closed());
        if pending.is_empty() {
            due = None;
        }
        let overdue = due.is_some_and(|at| at <= Instant::now());
        let go = !pending.is_empty()
            && in_flight < config.max_in_flight
            && (in_flight == 0 || overdue || pending.len() >= config.max_batch || !open);
        if go {
            let rest = pending.split_off(pending.len().min(config.max_batch));
            let batch = std::mem::replace(&mut pending, rest);
            if pending.is_empty() {
                due = None;
            }
            in_flight += 1;
            tokio::spawn(run_batch(
                query.clone(),
                config.query_timeout,
                batch,
                counters.clone(),
                InFlight(done_tx.clone()),
            ));
            continue;
        }
        if !open && pending.is_empty() {
            // The batcher is gone and every waiter is on its way.
            return;
        }
        let wake_at = due.filter(|_| in_flight < config.max_in_flight);
        tokio::select! {
            Some(()) = done_rx.recv() => in_flight = in_flight.saturating_sub(1),
            arrival = arrivals.recv(), if open => match arrival {
                Some(waiter) => {
                    due.get_or_insert_with(|| Instant::now() + config.max_wait);
                    pending.push(waiter);
                }
                None => open = false,
            },
            () = sleep_until(wake_at) => {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Tells the dispatcher that a query finished, even if its task panicked.
struct InFlight(mpsc::UnboundedSender<()>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Sends one batch and hands every waiter the shared answer or error.
async fn run_batch<Q: KeyQuery>(
    query: Arc<Q>,
    timeout: Duration,
    batch: Vec<Waiter<Q>>,
    counters: Arc<Counters>,
    in_flight: InFlight,
) {
    let mut wanted = Wanted::new();
    for waiter in &batch {
        wanted
            .entry(waiter.user.clone())
            .or_default()
            .insert(waiter.device.clone());
    }
    let size = u64::try_from(batch.len()).unwrap_or(u64::MAX);
    let sent = Instant::now();
    let queued: Duration = batch.iter().map(|w| sent - w.arrived).sum();
    counters.queries.fetch_add(1, Ordering::Relaxed);
    counters.lookups.fetch_add(size, Ordering::Relaxed);
    counters.largest.fetch_max(size, Ordering::Relaxed);
    counters
        .queued_ns
        .fetch_add(nanos(queued), Ordering::Relaxed);
    let reply: Reply<Q> = match tokio::time::timeout(timeout, query.query(&wanted)).await {
        Ok(Ok(answer)) => Ok(Arc::new(answer)),
        Ok(Err(e)) => Err(BatchError::Query(Arc::new(e))),
        Err(_) => Err(BatchError::QueryTimeout),
    };
    counters
        .query_ns
        .fetch_add(nanos(sent.elapsed()), Ordering::Relaxed);
    drop(in_flight);
    for waiter in batch {
        // A waiter that gave up in the meantime no longer listens.
        let _ = waiter.reply.send(reply.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::sync::Notify;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("homeserver down")]
    struct Down;

    /// A query double: records what each call asked for, answers with the
    /// set of (user, device) it was asked, fails or hangs on demand.
    #[derive(Default)]
    struct Double {
        calls: Mutex<Vec<Wanted>>,
        fail: std::sync::atomic::AtomicBool,
        /// While set, the first call waits for `release`.
        hold_first: std::sync::atomic::AtomicBool,
        release: Notify,
        delay: Mutex<Duration>,
    }

    impl Double {
        fn calls(&self) -> Vec<Wanted> {
            self.calls.lock().map(|c| c.clone()).unwrap_or_default()
        }
    }

    impl KeyQuery for Double {
        type Answer = BTreeSet<(UserId, DeviceId)>;
        type Error = Down;

        async fn query(&self, wanted: &Wanted) -> Result<Self::Answer, Down> {
            let first = {
                let mut calls = self.calls.lock().expect("lock");
                calls.push(wanted.clone());
                calls.len() == 1
            };
            if first && self.hold_first.load(Ordering::SeqCst) {
                self.release.notified().await;
            }
            let delay = *self.delay.lock().expect("lock");
            tokio::time::sleep(delay).await;
            if self.fail.load(Ordering::SeqCst) {
                return Err(Down);
            }
            Ok(wanted
                .iter()
                .flat_map(|(u, ds)| ds.iter().map(move |d| (u.clone(), d.clone())))
                .collect())
        }
    }

    fn ids(n: usize) -> (UserId, DeviceId) {
        (
            UserId::parse(&format!("@u{}:gov.example", n % 3)).expect("user"),
            DeviceId::parse(&format!("DEV{n}")).expect("device"),
        )
    }

    /// A batcher over a fresh test double.
    fn batcher(config: BatchConfig) -> (Arc<Double>, Arc<Batcher<Double>>) {
        let double = Arc::new(Double::default());
        let b = Arc::new(Batcher::new(double.clone(), config));
        (double, b)
    }

    /// Holds the first query in flight so that the next lookups pile up.
    async fn park_first(
        b: &Arc<Batcher<Double>>,
        double: &Arc<Double>,
    ) -> tokio::task::JoinHandle<Reply<Double>> {
        double.hold_first.store(true, Ordering::SeqCst);
        let b0 = b.clone();
        let (u, d) = ids(1000);
        let first = tokio::spawn(async move { b0.fetch(&u, &d).await });
        while double.calls().is_empty() {
            tokio::task::yield_now().await;
        }
        first
    }

    #[tokio::test]
    async fn concurrent_lookups_become_one_query_and_each_gets_its_device() {
        let (double, b) = batcher(BatchConfig {
            max_wait: Duration::from_secs(5),
            ..BatchConfig::default()
        });
        let first = park_first(&b, &double).await;
        let tasks: Vec<_> = (0..10)
            .map(|n| {
                let b = b.clone();
                tokio::spawn(async move {
                    let (u, d) = ids(n);
                    (n, b.fetch(&u, &d).await)
                })
            })
            .collect();
        // Let all ten arrive, then let the first query return.
        while b.stats().queries < 1 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        double.release.notify_one();
        for task in tasks {
            let (n, reply) = task.await.expect("task");
            let answer = reply.expect("answer");
            assert!(answer.contains(&ids(n)), "waiter {n} finds its device");
        }
        assert!(first.await.expect("task").is_ok());
        let calls = double.calls();
        assert_eq!(calls.len(), 2, "the parked query and one batch: {calls:?}");
        // The batch merged devices per user: 3 users, 10 devices.
        assert_eq!(calls[1].len(), 3);
        assert_eq!(calls[1].values().map(BTreeSet::len).sum::<usize>(), 10);
        let stats = b.stats();
        assert_eq!((stats.queries, stats.lookups, stats.largest), (2, 11, 10));
        // The ten queued while the parked query was held for 20 ms.
        assert!(stats.queued >= Duration::from_millis(200), "{stats:?}");
        assert!(stats.query_time >= Duration::from_millis(20), "{stats:?}");
    }

    #[tokio::test]
    async fn an_idle_batcher_sends_at_once() {
        let (double, b) = batcher(BatchConfig {
            max_wait: Duration::from_secs(60),
            ..BatchConfig::default()
        });
        let (u, d) = ids(1);
        let answer = tokio::time::timeout(Duration::from_secs(5), b.fetch(&u, &d))
            .await
            .expect("no waiting for max_wait when idle")
            .expect("answer");
        assert!(answer.contains(&(u, d)));
        assert_eq!(double.calls().len(), 1);
    }

    #[tokio::test]
    async fn an_error_reaches_every_waiter() {
        let (double, b) = batcher(BatchConfig {
            max_wait: Duration::from_secs(5),
            ..BatchConfig::default()
        });
        double.fail.store(true, Ordering::SeqCst);
        let first = park_first(&b, &double).await;
        let tasks: Vec<_> = (0..5)
            .map(|n| {
                let b = b.clone();
                tokio::spawn(async move {
                    let (u, d) = ids(n);
                    b.fetch(&u, &d).await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        double.release.notify_one();
        for task in tasks {
            assert!(matches!(
                task.await.expect("task"),
                Err(BatchError::Query(_))
            ));
        }
        assert!(matches!(
            first.await.expect("task"),
            Err(BatchError::Query(_))
        ));
        assert_eq!(double.calls().len(), 2);
    }

    #[tokio::test]
    async fn a_slow_query_does_not_hold_up_the_next_batch() {
        let (double, b) = batcher(BatchConfig {
            max_wait: Duration::from_millis(5),
            ..BatchConfig::default()
        });
        let first = park_first(&b, &double).await;
        let (u, d) = ids(2);
        let answer = tokio::time::timeout(Duration::from_secs(5), b.fetch(&u, &d))
            .await
            .expect("the second batch went out while the first hangs")
            .expect("answer");
        assert!(answer.contains(&(u, d)));
        assert!(!first.is_finished());
        double.release.notify_one();
        assert!(first.await.expect("task").is_ok());
    }

    #[tokio::test]
    async fn a_hanging_query_times_out_for_its_waiters() {
        let (double, b) = batcher(BatchConfig {
            query_timeout: Duration::from_millis(50),
            ..BatchConfig::default()
        });
        double.hold_first.store(true, Ordering::SeqCst);
        let (u, d) = ids(1);
        let reply = tokio::time::timeout(Duration::from_secs(5), b.fetch(&u, &d))
            .await
            .expect("no hang");
        assert!(matches!(reply, Err(BatchError::QueryTimeout)));
        // The batcher still works afterwards.
        let (u, d) = ids(2);
        assert!(b.fetch(&u, &d).await.is_ok());
    }

    #[tokio::test]
    async fn a_waiter_gives_up_after_wait_timeout() {
        let (double, b) = batcher(BatchConfig {
            wait_timeout: Duration::from_millis(50),
            ..BatchConfig::default()
        });
        double.hold_first.store(true, Ordering::SeqCst);
        let (u, d) = ids(1);
        assert!(matches!(
            b.fetch(&u, &d).await,
            Err(BatchError::WaitTimeout)
        ));
        double.release.notify_one();
    }

    #[tokio::test]
    async fn batches_are_bounded_and_cancelled_waiters_skipped() {
        let (double, b) = batcher(BatchConfig {
            max_batch: 4,
            max_in_flight: 1,
            max_wait: Duration::from_secs(5),
            ..BatchConfig::default()
        });
        let first = park_first(&b, &double).await;
        let mut tasks = Vec::new();
        for n in 0..10 {
            let b = b.clone();
            tasks.push(tokio::spawn(async move {
                let (u, d) = ids(n);
                b.fetch(&u, &d).await
            }));
        }
        // One more that is cancelled before its batch goes out.
        let cancelled = {
            let b = b.clone();
            tokio::spawn(async move {
                let (u, d) = ids(99);
                b.fetch(&u, &d).await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        cancelled.abort();
        let _ = cancelled.await;
        double.release.notify_one();
        for task in tasks {
            assert!(task.await.expect("task").is_ok());
        }
        assert!(first.await.expect("task").is_ok());
        let calls = double.calls();
        let sizes: Vec<usize> = calls
            .iter()
            .map(|w| w.values().map(BTreeSet::len).sum())
            .collect();
        assert_eq!(sizes, vec![1, 4, 4, 2], "{calls:?}");
        let (u, d) = ids(99);
        assert!(calls
            .iter()
            .all(|w| w.get(&u).is_none_or(|ds| !ds.contains(&d))));
    }
}

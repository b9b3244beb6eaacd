//! What a run reports: latency percentiles, the raw-issuance baseline, the
//! full-mode homeserver figures, and the rendering of all of it as text
//! (the `--json` form is the serde serialisation of the same types).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use govtrust_service::storage::{Commits, WriteStats};
use serde::Serialize;

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Latency {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
}

impl Latency {
    pub(crate) fn of(mut samples: Vec<Duration>) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let n = samples.len();
        let at = |q: f64| {
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
            ms(samples[rank - 1])
        };
        Latency {
            count: n,
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: ms(samples[n - 1]),
            mean_ms: ms(samples.iter().sum::<Duration>()) / n as f64,
        }
    }

    fn line(&self) -> String {
        format!(
            "p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (mean {:.2} ms)",
            self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms, self.mean_ms
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The raw issuance measurement.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct RawIssuance {
    /// Certificates issued.
    pub issued: u64,
    /// Seconds it took.
    pub seconds: f64,
    /// Issuances per second on one thread.
    pub per_s: f64,
    /// Microseconds per issuance.
    pub us_each: f64,
}

/// The target of this mode and backend, and whether this run met it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Target {
    /// Required enrollments per second.
    pub min_per_s: f64,
    /// Required p99 per enrollment, milliseconds, if the target sets one.
    pub max_p99_ms: Option<f64>,
    /// Whether both held (and no enrollment failed).
    pub met: bool,
}

/// Standalone `/keys/query` requests of one size on the idle server.
#[derive(Clone, Debug, Serialize)]
pub struct KeysQueryProbe {
    /// Devices asked for in one request.
    pub devices: usize,
    /// Per request, as the bot sees it.
    pub latency: Latency,
    /// Synapse's CPU per request (when the bench started Synapse).
    pub synapse_cpu_ms: Option<f64>,
}

/// What only `full` mode measures.
#[derive(Clone, Debug, Serialize)]
pub struct FullReport {
    /// The homeserver's client-server API.
    pub homeserver: String,
    /// Whether the bench started it (and so could measure its CPU).
    pub started_by_bench: bool,
    /// Seconds spent registering users, logging devices in and uploading
    /// their keys (not part of the measurement; the bench's devices send
    /// nothing to Synapse during the load: signature proof needs no sync
    /// or to-device message).
    pub setup_s: f64,
    /// wait_for_event_ms each enrollment asked for.
    pub wait_for_event_ms: u64,
    /// Whether the service published (off with --no-publish).
    pub publishing: bool,
    /// The service's batcher settings in this run.
    pub batcher: BatcherSettings,
    /// Outbox items still unpublished when the last enrollment returned.
    pub outbox_pending_at_end: u64,
    /// Events published while the load ran, per second.
    pub load_publish_per_s: f64,
    /// Seconds from the last enrollment until the outbox was empty.
    pub outbox_drain_s: Option<f64>,
    /// Publication rate while draining (events/s), the outbox alone.
    pub drain_publish_per_s: Option<f64>,
    /// CPU milliseconds per event published while draining, per party:
    /// the cost of publication alone (Synapse persisting the state event
    /// and answering the bot's /sync, the bot's side of both).
    pub drain_cpu_ms_per_event: BTreeMap<String, f64>,
    /// Events published per second over the whole run (first enrollment
    /// to empty outbox).
    pub overall_publish_per_s: Option<f64>,
    /// Standalone `/keys/query`, one size after the other.
    pub keys_query_probes: Vec<KeysQueryProbe>,
    /// The service's coalesced `/keys/query` during the load.
    pub keys_query_coalesced: Option<Coalesced>,
    /// Synapse's CPU during the load, split by what caused it.
    pub synapse_split: Option<SynapseSplit>,
    /// What the rate would be with every enrollment's event published as
    /// it is made, instead of queued in the outbox.
    pub sustained: Option<Sustained>,
}

/// The batcher settings of a run.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct BatcherSettings {
    /// Most devices per query.
    pub max_batch: usize,
    /// Most queries in flight.
    pub max_in_flight: usize,
    /// Longest queueing while queries are in flight, milliseconds.
    pub max_wait_ms: f64,
}

/// How the service coalesced its `/keys/query` during the load.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Coalesced {
    /// Queries sent.
    pub queries: u64,
    /// Lookups they answered.
    pub lookups: u64,
    /// Lookups per query.
    pub mean_batch: f64,
    /// Largest batch.
    pub largest_batch: u64,
    /// Mean time a lookup was queued before its query went out, ms.
    pub mean_queued_ms: f64,
    /// Mean time a query took, ms.
    pub mean_query_ms: f64,
}

/// Synapse's CPU during the load per successful enrollment, split with the
/// probes' cost model: `/keys/query` = queries × fixed + lookups × per
/// device; publication = events published during the load × Synapse CPU
/// per event while draining; the rest (the bot's /sync and everything
/// else) is what remains, so it also carries the models' error.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct SynapseSplit {
    /// All of Synapse's CPU during the load, ms per enrollment.
    pub total_ms: f64,
    /// `/keys/query`, ms per enrollment.
    pub keys_query_ms: f64,
    /// State events published during the load, ms per enrollment.
    pub publication_ms: f64,
    /// The rest, ms per enrollment.
    pub rest_ms: f64,
    /// Fixed Synapse CPU of one `/keys/query`, ms (from the probes).
    pub query_fixed_ms: f64,
    /// Synapse CPU per device asked for, ms (from the probes).
    pub query_per_device_ms: f64,
}

/// The rate if every enrollment's event were published as it is made.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sustained {
    /// CPU ms per enrollment, all parties, with one publication each
    /// (publication at its cost while draining) instead of the share
    /// published during the load.
    pub cpu_ms_per_enrollment: f64,
    /// cores ÷ that.
    pub cpu_bound_per_s: f64,
    /// The outbox's own rate (one event at a time into one room).
    pub publication_bound_per_s: Option<f64>,
}

/// How the store's writers batched during the load (group commit): a
/// commit's cost is mostly per commit, so more changes per commit is less
/// CPU per enrollment.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct GroupCommit {
    /// Commits of batches of only challenges.
    pub challenge_commits: u64,
    /// Challenges per such commit.
    pub challenges_per_commit: f64,
    /// Commits of audited batches (the issuances).
    pub audited_commits: u64,
    /// Changes per such commit.
    pub audited_per_commit: f64,
    /// Most changes in one audited commit since the store opened.
    pub largest_audited: u64,
}

impl GroupCommit {
    /// The commits between two readings of the store's counts.
    pub(crate) fn between(before: &WriteStats, after: &WriteStats) -> Self {
        let diff = |b: &Commits, a: &Commits| {
            let commits = a.commits.saturating_sub(b.commits);
            let changes = a.changes.saturating_sub(b.changes);
            (commits, changes as f64 / commits.max(1) as f64)
        };
        let (challenge_commits, challenges_per_commit) =
            diff(&before.challenges, &after.challenges);
        let (audited_commits, audited_per_commit) = diff(&before.audited, &after.audited);
        GroupCommit {
            challenge_commits,
            challenges_per_commit,
            audited_commits,
            audited_per_commit,
            largest_audited: after.audited.largest,
        }
    }
}

/// Everything a run reports.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// service or full.
    pub mode: &'static str,
    /// sqlite or postgres.
    pub backend: &'static str,
    /// Where the data went.
    pub database: String,
    /// Concurrent clients.
    pub clients: u32,
    /// Enrollments attempted.
    pub enrollments: u32,
    /// Enrollments that returned a certificate chain.
    pub succeeded: usize,
    /// Enrollments that failed.
    pub errors: usize,
    /// The first few error messages.
    pub first_errors: Vec<String>,
    /// Wall time of the load phase.
    pub elapsed_s: f64,
    /// Successful enrollments per second of wall time.
    pub enrollments_per_s: f64,
    /// Per enrollment (challenge + enrollment request).
    pub latency: Latency,
    /// The challenge request alone.
    pub challenge_latency: Latency,
    /// The enrollment request alone.
    pub enroll_latency: Latency,
    /// `ServicePki::issue` in a tight loop, same process, same run.
    pub raw_issuance: RawIssuance,
    /// enrollments/s ÷ raw issuances/s.
    pub ratio_to_raw_issuance: f64,
    /// CPU seconds used during the load phase, per party: this process's
    /// service runtime threads, client runtime threads, SQLite worker
    /// threads and other threads; Synapse when the bench started it; the
    /// PostgreSQL server processes; every other process on the machine;
    /// and time stolen by the hypervisor.
    pub cpu_s: BTreeMap<String, f64>,
    /// How the store's writers batched during the load.
    pub writes: GroupCommit,
    /// CPU milliseconds per successful enrollment, all parties of the
    /// enrollment together (service, clients, database, homeserver).
    pub cpu_ms_per_enrollment: f64,
    /// cores ÷ CPU per enrollment: the rate this machine could sustain if
    /// the enrollment's parties had every core to themselves. Robust to
    /// other load on the machine, unlike the measured rate.
    pub cpu_bound_per_s: f64,
    /// Cores available to this process.
    pub cores: usize,
    /// 1-minute load average when the run started (other work on the host).
    pub load_average_at_start: Option<f64>,
    /// The target of this mode and backend, and whether it was met.
    pub target: Target,
    /// Full mode: the homeserver side.
    pub full: Option<FullReport>,
}

impl Report {
    pub(crate) fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "govtrust-bench enroll: mode {}, {} ({}), {} clients, {} enrollments",
            self.mode, self.backend, self.database, self.clients, self.enrollments
        );
        let _ = writeln!(
            s,
            "  result        {} ok, {} errors in {:.2} s",
            self.succeeded, self.errors, self.elapsed_s
        );
        for e in &self.first_errors {
            let _ = writeln!(s, "    error: {e}");
        }
        let _ = writeln!(
            s,
            "  rate          {:.0} enrollments/s",
            self.enrollments_per_s
        );
        let _ = writeln!(s, "  latency       {}", self.latency.line());
        let _ = writeln!(s, "    challenge   {}", self.challenge_latency.line());
        let _ = writeln!(s, "    enrollment  {}", self.enroll_latency.line());
        let _ = writeln!(
            s,
            "  raw issuance  {:.0} issuances/s ({:.1} µs each; ServicePki::issue, one thread, {:.1} s, same run)",
            self.raw_issuance.per_s, self.raw_issuance.us_each, self.raw_issuance.seconds
        );
        let _ = writeln!(
            s,
            "  ratio         {:.3} (enrollments/s ÷ raw issuances/s)",
            self.ratio_to_raw_issuance
        );
        let parts: Vec<String> = self
            .cpu_s
            .iter()
            .map(|(k, v)| format!("{k} {v:.2}"))
            .collect();
        let _ = writeln!(
            s,
            "  CPU (load)    seconds: {}; {:.2} s available ({} cores × {:.2} s; load average {} at start)",
            parts.join(", "),
            self.cores as f64 * self.elapsed_s,
            self.cores,
            self.elapsed_s,
            self.load_average_at_start
                .map_or_else(|| "unknown".to_owned(), |l| format!("{l:.2}"))
        );
        let _ = writeln!(
            s,
            "  CPU/enrol     {:.3} ms (enrollment parties together) => CPU-bound ceiling {:.0} enrollments/s on {} cores",
            self.cpu_ms_per_enrollment, self.cpu_bound_per_s, self.cores
        );
        {
            let w = &self.writes;
            let _ = writeln!(
                s,
                "  group commit  challenges {:.1} per commit ({} commits); issuances and other audited changes {:.1} per commit ({} commits, largest {})",
                w.challenges_per_commit,
                w.challenge_commits,
                w.audited_per_commit,
                w.audited_commits,
                w.largest_audited
            );
        }
        {
            let t = &self.target;
            let p99 = t
                .max_p99_ms
                .map_or_else(String::new, |ms| format!(" with p99 < {ms:.0} ms"));
            let _ = writeln!(
                s,
                "  target        >= {:.0}/s{p99}: {}",
                t.min_per_s,
                if t.met { "MET" } else { "MISSED" }
            );
        }
        if let Some(f) = &self.full {
            let _ = writeln!(
                s,
                "  homeserver    {} ({}); set-up (register, login, /keys/upload) {:.1} s",
                f.homeserver,
                if f.started_by_bench {
                    "Synapse started by the bench, SQLite"
                } else {
                    "external"
                },
                f.setup_s
            );
            let b = &f.batcher;
            let _ = writeln!(
                s,
                "  batcher       max_batch {}, max_in_flight {}, max_wait {:.1} ms",
                b.max_batch, b.max_in_flight, b.max_wait_ms
            );
            if let Some(c) = &f.keys_query_coalesced {
                let _ = writeln!(
                    s,
                    "  /keys/query   load: {} lookups in {} queries ({:.1} devices per query, largest {}); \
                     a lookup queued {:.2} ms on average, a query took {:.2} ms",
                    c.lookups,
                    c.queries,
                    c.mean_batch,
                    c.largest_batch,
                    c.mean_queued_ms,
                    c.mean_query_ms
                );
            }
            for p in &f.keys_query_probes {
                let _ = writeln!(
                    s,
                    "                idle, {:>2} devices per request: {:.2} ms p50, {:.2} ms p99{}",
                    p.devices,
                    p.latency.p50_ms,
                    p.latency.p99_ms,
                    p.synapse_cpu_ms.map_or_else(String::new, |c| format!(
                        "; Synapse CPU {c:.2} ms ({:.3} ms per device)",
                        c / p.devices as f64
                    ))
                );
            }
            if f.publishing {
                let _ = writeln!(
                    s,
                    "  publication   {:.0} events/s during the load; {} pending when it ended (wait_for_event_ms {}); {}",
                    f.load_publish_per_s,
                    f.outbox_pending_at_end,
                    f.wait_for_event_ms,
                    match (f.outbox_drain_s, f.drain_publish_per_s) {
                        (Some(d), Some(r)) => format!("drained in {d:.2} s ({r:.0} events/s)"),
                        (Some(d), None) => format!("drained in {d:.2} s"),
                        _ => "did not drain in time".into(),
                    }
                );
                if !f.drain_cpu_ms_per_event.is_empty() {
                    let parts: Vec<String> = f
                        .drain_cpu_ms_per_event
                        .iter()
                        .map(|(k, v)| format!("{k} {v:.2}"))
                        .collect();
                    let _ = writeln!(
                        s,
                        "                CPU ms per event while draining: {}",
                        parts.join(", ")
                    );
                }
                if let Some(r) = f.overall_publish_per_s {
                    let _ = writeln!(
                        s,
                        "                {r:.0} events/s published from the first enrollment to the empty outbox"
                    );
                }
            } else {
                let _ = writeln!(s, "  publication   off (--no-publish)");
            }
            if let Some(x) = &f.synapse_split {
                let _ = writeln!(
                    s,
                    "  Synapse/enrol {:.3} ms CPU during the load = /keys/query {:.3} + publication {:.3} + rest (bot /sync, other) {:.3}",
                    x.total_ms, x.keys_query_ms, x.publication_ms, x.rest_ms
                );
                let _ = writeln!(
                    s,
                    "                (/keys/query model from the probes: {:.2} ms per request + {:.3} ms per device)",
                    x.query_fixed_ms, x.query_per_device_ms
                );
            }
            if let Some(x) = &f.sustained {
                let _ = writeln!(
                    s,
                    "  sustained     with every event published as it is made: {:.3} ms CPU per enrollment => {:.0}/s on {} cores{}",
                    x.cpu_ms_per_enrollment,
                    x.cpu_bound_per_s,
                    self.cores,
                    x.publication_bound_per_s.map_or_else(String::new, |p| format!(
                        "; the outbox publishes {p:.0} events/s"
                    ))
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples = (1..=100).map(Duration::from_millis).collect();
        let l = Latency::of(samples);
        assert_eq!(l.count, 100);
        assert!((l.p50_ms - 50.0).abs() < 1e-9);
        assert!((l.p99_ms - 99.0).abs() < 1e-9);
        assert!((l.max_ms - 100.0).abs() < 1e-9);
        assert_eq!(Latency::of(Vec::new()).count, 0);
    }
}

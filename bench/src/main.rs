//! `govtrust-bench enroll`: a load test of the enrollment API over real
//! HTTPS (mTLS, HTTP/1.1 keep-alive, the agency client `ServiceClient`),
//! driven by N concurrent agency clients,
//! each enrolling its devices one after the other (a closed loop: the
//! concurrency is N).
//!
//! Every enrollment is what an agency does with `signature` proof:
//! `POST /v1/enrollment/challenge`, sign the returned signing payload with
//! the device's Ed25519 key (Matrix signing rules), `POST /v1/enrollment`.
//! Its latency is the time of both requests together.
//!
//! Two modes:
//!
//! * `service` — the service's own path: an in-process service (the real
//!   `assemble` + `serve_on`, the real TLS listener on 127.0.0.1), storage on
//!   SQLite in a temporary directory or on PostgreSQL in a fresh schema,
//!   the homeserver's `/keys/query` answers taken from a pre-filled cache
//!   (`KeySource::Prefilled`, the same signed device-keys JSON a homeserver
//!   would serve, checked the same way) and publishing off.
//! * `full` — everything real: a Synapse (started by the bench, or an
//!   existing one), real devices (password login + `/keys/upload` of
//!   self-signed device keys), real `/keys/query` through the service's bot,
//!   publishing on (the outbox sends every attestation to the directory
//!   room). Reports where the time goes: the challenge step (which holds the
//!   `/keys/query`) against the enrollment step (issuance and storage), the
//!   outbox's publication rate, standalone `/keys/query` latency (single and
//!   batched), and the CPU each party used.
//!
//! Both modes measure, in the same process and run, the raw issuance rate
//! (`ServicePki::issue`, i.e. `IssuingCa::issue_attestation`, in a tight
//! loop on one thread) and print the ratio enrollments/s ÷ raw issuance/s.
//!
//! Synapse for `full` mode comes from [`govtrust_service::synapse`], the launcher the
//! demo and the tests use too, with WARNING-level logging so that log
//! lines do not count as homeserver CPU.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use clap::{Args, Parser, Subcommand, ValueEnum};
use futures::stream::{self, StreamExt, TryStreamExt};
use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use govtrust_pki::AttestationRequest;
use govtrust_verifier::{AuthorityRecord, DeviceId, Ed25519Key, Subject, UserId};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

use govtrust_api::enrollment::{ChallengeRequest, EnrollRequest, Kind, Proof};
use govtrust_api::keys::signing_bytes;
use govtrust_service::agency::ServiceClient;
use govtrust_service::config::Config;
use govtrust_service::keys::{KeyAnswer, KeySource};
use govtrust_service::matrix::{Bot, MatrixConfig, QueriedDevice};
use govtrust_service::pki::ServicePki;
use govtrust_service::state::AppState;
use govtrust_service::storage::{AuditEntry, Authority, AuthorityStatus, Store, StoreOptions};
use govtrust_service::synapse::{HomeserverApi, Synapse, SynapseOptions};

/// Service-mode target: sustained enrollments per second …
const TARGET_RATE: f64 = 1000.0;
/// … with this 99th-percentile latency per enrollment.
const TARGET_P99_MS: f64 = 50.0;
/// Server name of the users in `service` mode (no homeserver exists).
const SERVICE_MODE_SERVER: &str = "bench.example";
/// Concurrent logins and key uploads while preparing `full` mode.
const SETUP_CONCURRENCY: usize = 16;
/// Sequential `/keys/query` probes after a `full` run.
const KEYS_QUERY_PROBES: usize = 100;
/// Devices in the batched `/keys/query` probe.
const KEYS_QUERY_BATCH: usize = 16;
/// How many error messages the report quotes.
const QUOTED_ERRORS: usize = 5;

/// The command line: `govtrust-bench [--json] enroll …`.
#[derive(Debug, Parser)]
#[command(
    name = "govtrust-bench",
    version,
    about = "Load benchmarks of the govtrust enrollment service, with a baseline measured in the same run"
)]
struct Cli {
    /// Print the report as JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: BenchCommand,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        BenchCommand::Enroll(args) => enroll(args, cli.json),
    };
    result.unwrap_or_else(|err| {
        eprintln!("error: {err:#}");
        ExitCode::FAILURE
    })
}

/// `govtrust-bench …`
#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Load-test enrollment over real HTTPS: N concurrent agency clients,
    /// M enrollments; prints enrollments/s, latency percentiles, errors and
    /// the raw issuance rate measured in the same run.
    ///
    /// Each enrollment is what an agency does with signature proof: POST
    /// /v1/enrollment/challenge, sign the returned payload with the device's
    /// Ed25519 key, POST /v1/enrollment (mTLS with an enrollment-client
    /// certificate, one keep-alive HTTP/2 connection per client). Each
    /// client is its own authority with its own certificate; clients run
    /// closed loops, so --clients is the concurrency.
    ///
    /// Modes:
    ///
    ///   service  the service's own path: in-process service on 127.0.0.1
    ///            (real TLS, real handlers, real storage); device keys come
    ///            from a pre-filled cache instead of /keys/query;
    ///            publishing is off. Target on 2 cores: >= 1,000
    ///            enrollments/s with p99 < 50 ms.
    ///   full     everything real: a local Synapse (started by the bench,
    ///            or --homeserver), devices logged in with uploaded signed
    ///            keys, /keys/query through the service's bot, every
    ///            attestation published to the directory room. Also reports
    ///            the outbox's publication rate, standalone /keys/query
    ///            latency and CPU per party, to show what bounds the rate.
    ///
    /// Examples:
    ///
    ///   govtrust-bench enroll --clients 16 --enrollments 5000
    ///   govtrust-bench enroll --database postgres://postgres@127.0.0.1:5432/test
    ///   govtrust-bench enroll --mode full --clients 8 --enrollments 2400
    ///   govtrust-bench enroll --mode full --homeserver http://127.0.0.1:8008 \
    ///       --registration-shared-secret "$SECRET"
    ///
    /// Build with --release for meaningful figures. Exit status 1 if any
    /// enrollment failed.
    #[command(verbatim_doc_comment)]
    Enroll(BenchEnrollArgs),
}

/// What the bench puts in the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchMode {
    /// The service alone: pre-filled key answers, no publishing.
    Service,
    /// With a real Synapse: real /keys/query, publishing on.
    Full,
}

/// `govtrust-bench enroll`
#[derive(Debug, Args)]
pub struct BenchEnrollArgs {
    /// service: the service's own path (no homeserver); full: with a real
    /// Synapse, real /keys/query and publishing.
    #[arg(long, value_enum, default_value_t = BenchMode::Service)]
    pub mode: BenchMode,
    /// Concurrent agency clients (each its own authority, certificate and
    /// connection).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub clients: u32,
    /// Total enrollments, spread evenly over the clients; each enrolls a
    /// distinct device.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub enrollments: u32,
    /// Storage: postgres://… runs in a fresh schema (dropped afterwards
    /// unless --keep-database); sqlite://PATH uses that file. Default: a new
    /// SQLite file in a temporary directory.
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// Keep the PostgreSQL schema (and print its name) instead of dropping it.
    #[arg(long)]
    pub keep_database: bool,
    /// Database pool size of the service.
    #[arg(long, default_value_t = 10)]
    pub db_connections: u32,
    /// Seconds to measure the raw issuance rate for (one thread, same
    /// process, before the load starts).
    #[arg(long, default_value_t = 3.0)]
    pub raw_seconds: f64,
    /// Tokio worker threads of the service (default: one per core).
    #[arg(long)]
    pub server_threads: Option<usize>,
    /// Tokio worker threads of the load generator (default: one per core).
    #[arg(long)]
    pub client_threads: Option<usize>,
    /// full mode: use this running homeserver instead of starting a Synapse
    /// (its client-server API URL; http:// on loopback, as the bench trusts
    /// no public CAs). Needs --registration-shared-secret; raise its rate
    /// limits, or logins and key uploads will be throttled.
    #[arg(long, value_name = "URL", requires = "registration_shared_secret")]
    pub homeserver: Option<url::Url>,
    /// full mode with --homeserver: Synapse's registration_shared_secret,
    /// to register the bench's bot and agency users.
    #[arg(
        long,
        env = "GOVTRUST_BENCH_SHARED_SECRET",
        hide_env_values = true,
        requires = "homeserver"
    )]
    pub registration_shared_secret: Option<String>,
    /// full mode: Python interpreter with Synapse installed (default: the
    /// one service/scripts/synapse-setup.sh prepares in this source tree).
    #[arg(long, env = "GOVTRUST_SYNAPSE_PYTHON", value_name = "PATH")]
    pub synapse_python: Option<PathBuf>,
    /// full mode: how long each enrollment waits for its state event to be
    /// published (the API's wait_for_event_ms). 0 measures enrollment
    /// alone; the outbox's publication rate is reported separately.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub wait_for_event_ms: u64,
    /// full mode: give up waiting for the outbox to drain after this many
    /// seconds.
    #[arg(long, default_value_t = 300)]
    pub drain_timeout_secs: u64,
}

// ----- report ---------------------------------------------------------------

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
    fn of(mut samples: Vec<Duration>) -> Latency {
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

/// The service-mode target and whether this run met it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Target {
    /// Required enrollments per second.
    pub min_per_s: f64,
    /// Required p99 per enrollment, milliseconds.
    pub max_p99_ms: f64,
    /// Whether both held.
    pub met: bool,
}

/// One batched `/keys/query`.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct BatchQuery {
    /// Devices asked for in one request.
    pub devices: usize,
    /// Milliseconds for the request (median of 5).
    pub ms: f64,
    /// Milliseconds per device.
    pub per_device_ms: f64,
}

/// What only `full` mode measures.
#[derive(Clone, Debug, Serialize)]
pub struct FullReport {
    /// The homeserver's client-server API.
    pub homeserver: String,
    /// Whether the bench started it (and so could measure its CPU).
    pub started_by_bench: bool,
    /// Seconds spent registering users, logging devices in and uploading
    /// their keys (not part of the measurement).
    pub setup_s: f64,
    /// wait_for_event_ms each enrollment asked for.
    pub wait_for_event_ms: u64,
    /// Outbox items still unpublished when the last enrollment returned.
    pub outbox_pending_at_end: u64,
    /// Seconds from the last enrollment until the outbox was empty.
    pub outbox_drain_s: Option<f64>,
    /// Publication rate while draining (events/s), the outbox alone.
    pub drain_publish_per_s: Option<f64>,
    /// Events published per second over the whole run (first enrollment
    /// to empty outbox).
    pub overall_publish_per_s: Option<f64>,
    /// Standalone `/keys/query` for one device (sequential, idle server).
    pub keys_query_single: Latency,
    /// Standalone batched `/keys/query`.
    pub keys_query_batch: Option<BatchQuery>,
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
    /// Service mode: the target and whether it was met.
    pub target: Option<Target>,
    /// Full mode: the homeserver side.
    pub full: Option<FullReport>,
}

impl Report {
    fn human(&self) -> String {
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
        if let Some(t) = &self.target {
            let _ = writeln!(
                s,
                "  target        >= {:.0}/s with p99 < {:.0} ms: {}",
                t.min_per_s,
                t.max_p99_ms,
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
            let _ = writeln!(
                s,
                "  publication   {} pending when the load ended (wait_for_event_ms {}); {}",
                f.outbox_pending_at_end,
                f.wait_for_event_ms,
                match (f.outbox_drain_s, f.drain_publish_per_s) {
                    (Some(d), Some(r)) => format!("drained in {d:.2} s ({r:.0} events/s)"),
                    (Some(d), None) => format!("drained in {d:.2} s"),
                    _ => "did not drain in time".into(),
                }
            );
            if let Some(r) = f.overall_publish_per_s {
                let _ = writeln!(
                    s,
                    "                {r:.0} events/s published from the first enrollment to the empty outbox"
                );
            }
            let _ = writeln!(
                s,
                "  /keys/query   single device, sequential, idle: {}",
                f.keys_query_single.line()
            );
            if let Some(b) = &f.keys_query_batch {
                let _ = writeln!(
                    s,
                    "                {} devices in one request: {:.2} ms ({:.2} ms per device)",
                    b.devices, b.ms, b.per_device_ms
                );
            }
        }
        s
    }
}

// ----- devices --------------------------------------------------------------

/// A Matrix device the bench controls: its Ed25519 key and its signed
/// device-keys object (as `/keys/upload` takes it and `/keys/query` serves it).
struct BenchDevice {
    user_id: String,
    device_id: String,
    key: Ed25519KeyPair,
    key_b64: String,
    keys_json: Map<String, Value>,
}

impl BenchDevice {
    fn generate(user_id: &str, device_id: &str, rng: &SystemRandom) -> Result<BenchDevice> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(rng)
            .map_err(|_| anyhow!("Ed25519 key generation failed"))?;
        let key =
            Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| anyhow!("Ed25519 key: {e}"))?;
        let key_b64 = STANDARD_NO_PAD.encode(key.public_key().as_ref());
        // Synapse does not look at it and the signature proof does not use
        // it; a real device's Olm identity key would go here.
        let mut curve = [0u8; 32];
        rng.fill(&mut curve)
            .map_err(|_| anyhow!("system randomness unavailable"))?;
        let Value::Object(mut keys_json) = json!({
            "user_id": user_id,
            "device_id": device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                format!("ed25519:{device_id}"): key_b64,
                format!("curve25519:{device_id}"): STANDARD_NO_PAD.encode(curve),
            },
        }) else {
            unreachable!("json! object literal")
        };
        let bytes = signing_bytes(&keys_json).context("device keys are not canonical JSON")?;
        let signature = STANDARD_NO_PAD.encode(key.sign(&bytes).as_ref());
        keys_json.insert(
            "signatures".into(),
            json!({ user_id: { format!("ed25519:{device_id}"): signature } }),
        );
        Ok(BenchDevice {
            user_id: user_id.to_owned(),
            device_id: device_id.to_owned(),
            key,
            key_b64,
            keys_json,
        })
    }

    /// What `/keys/query` would say about this device, checked the way the
    /// service checks a homeserver's answer.
    fn key_answer(&self) -> Result<KeyAnswer> {
        let text = serde_json::to_string(&self.keys_json)?;
        let device = QueriedDevice::parse(&self.user_id, &self.device_id, &text)?;
        if !device.self_signed {
            bail!("bench device {} is not self-signed", self.device_id);
        }
        Ok(KeyAnswer {
            device: Some(device),
            identity: None,
        })
    }
}

/// One agency: its authority, its Matrix user and its devices.
struct Agency {
    record: AuthorityRecord,
    localpart: String,
    user_id: String,
    password: String,
    devices: Vec<BenchDevice>,
}

fn agencies(
    run: &str,
    server: &str,
    clients: u32,
    enrollments: u32,
    rng: &SystemRandom,
) -> Result<Vec<Agency>> {
    let mut out: Vec<Agency> = (0..clients)
        .map(|i| {
            let localpart = format!("bench-{run}-agency-{i}");
            Ok(Agency {
                record: AuthorityRecord {
                    id: format!("DE-BENCH-{run}-{i:04}"),
                    name: format!("Benchmark Agency {i}"),
                    locality: Some("Berlin".into()),
                    country: Some("DE".into()),
                    ..Default::default()
                },
                user_id: format!("@{localpart}:{server}"),
                localpart,
                password: random_hex(rng, 16)?,
                devices: Vec::new(),
            })
        })
        .collect::<Result<_>>()?;
    for j in 0..enrollments {
        let agency = &mut out[(j % clients) as usize];
        let device = BenchDevice::generate(&agency.user_id, &format!("BENCH{j:07}"), rng)?;
        agency.devices.push(device);
    }
    Ok(out)
}

fn random_hex(rng: &SystemRandom, bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    rng.fill(&mut buf)
        .map_err(|_| anyhow!("system randomness unavailable"))?;
    Ok(govtrust_pki::hex(&buf))
}

// ----- the service under test ------------------------------------------------

/// A service running on the server runtime.
struct Running {
    svc: AppState,
    base: url::Url,
    root_pem: String,
    shutdown: tokio::sync::oneshot::Sender<()>,
}

/// Where the service's data goes.
struct Storage {
    url: String,
    pg_schema: Option<String>,
    label: String,
    backend: &'static str,
}

fn storage(args: &BenchEnrollArgs, data_dir: &Path, run: &str) -> Result<Storage> {
    match args.database.as_deref() {
        None => Ok(Storage {
            url: format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("govtrust.db").display()
            ),
            pg_schema: None,
            label: "new SQLite file in a temporary directory".into(),
            backend: "sqlite",
        }),
        Some(url) if url.starts_with("sqlite:") => Ok(Storage {
            url: url.to_owned(),
            pg_schema: None,
            label: url.to_owned(),
            backend: "sqlite",
        }),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let schema = format!("govtrust_bench_{run}");
            Ok(Storage {
                url: url.to_owned(),
                label: format!(
                    "{} schema {schema}{}",
                    redact(url),
                    if args.keep_database {
                        " (kept)"
                    } else {
                        " (dropped afterwards)"
                    }
                ),
                pg_schema: Some(schema),
                backend: "postgres",
            })
        }
        Some(other) => bail!("--database must be sqlite://PATH or postgres://…, not {other:?}"),
    }
}

fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// What the service is told about the homeserver.
enum Keys {
    /// Pre-filled answers, publishing off.
    Prefilled(HashMap<(String, String), KeyAnswer>),
    /// A real homeserver: the bot to log in.
    Homeserver(MatrixConfig),
}

/// Starts the service on 127.0.0.1 (a free port), registers the agencies'
/// authorities and issues each agency an enrollment-client certificate.
/// Returns the service and each agency's identity PEM (chain + key).
async fn start_service(
    data_dir: &Path,
    storage: &Storage,
    args: &BenchEnrollArgs,
    server: &str,
    keys: Keys,
    agencies: &[Agency],
) -> Result<(Running, Vec<String>, Option<Arc<Bot>>)> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("binding 127.0.0.1")?;
    let mut config = Config {
        listen: listener.local_addr()?,
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    config.database.url = Some(storage.url.clone());
    config.ca.dev_servers = vec![server.to_owned()];
    // The bench is one client per authority, far above any sane agency
    // rate: the limiter must not be what is measured.
    config.limits.agency_requests_per_second = 10_000_000;
    config.limits.agency_burst = 10_000_000;
    config.validate()?;

    let store = Store::connect_with(
        &storage.url,
        StoreOptions {
            max_connections: args.db_connections,
            pg_schema: storage.pg_schema.clone(),
        },
    )
    .await
    .with_context(|| format!("opening {}", storage.label))?;
    let pki = ServicePki::open_or_create(&config)?;
    let (keys, publisher) = match keys {
        Keys::Prefilled(map) => (KeySource::Prefilled(Arc::new(map)), None),
        Keys::Homeserver(matrix) => {
            let bot = Arc::new(
                Bot::connect(matrix)
                    .await
                    .context("connecting the service's bot")?,
            );
            bot.ensure_directory_room()
                .await
                .context("directory room")?;
            (KeySource::Homeserver(bot.clone()), Some(bot))
        }
    };
    let bot = publisher.clone();
    let svc = govtrust_service::assemble(config, store, pki, keys, publisher);

    let now = govtrust_service::tasks::now_ms();
    let mut identities = Vec::with_capacity(agencies.len());
    for agency in agencies {
        svc.store
            .insert_authority(
                Authority {
                    record: agency.record.clone(),
                    servers: vec![server.to_owned()],
                    user_patterns: vec![agency.localpart.clone()],
                    status: AuthorityStatus::Active,
                    contact: None,
                    created_at: now,
                    updated_at: now,
                },
                AuditEntry::new(
                    "operator:bench",
                    "authority.created",
                    agency.record.id.clone(),
                    serde_json::to_value(&agency.record)?,
                ),
            )
            .await
            .with_context(|| format!("registering authority {}", agency.record.id))?;
        let key = FileSigner::generate(KeyAlgorithm::EcdsaP256)?;
        let issued = svc.pki.issue_enrollment_client(
            &agency.record,
            key.spki_der().to_vec(),
            Duration::from_secs(86_400),
        )?;
        let identity = govtrust_service::pemfile::client_identity(
            &govtrust_service::pemfile::chain_pem(&issued.chain),
            &key,
        )?;
        identities.push(identity.as_str().to_owned());
    }

    let base: url::Url = format!("https://{}/", svc.config.listen).parse()?;
    let root_pem = govtrust_service::pemfile::cert_pem(svc.pki.root());
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let serving = svc.clone();
    tokio::spawn(async move {
        let stopped = async {
            let _ = stop.await;
        };
        if let Err(e) = govtrust_service::serve_on(serving, listener, stopped).await {
            eprintln!("bench: the service stopped: {e:#}");
        }
    });
    Ok((
        Running {
            svc,
            base,
            root_pem,
            shutdown,
        },
        identities,
        bot,
    ))
}

/// `ServicePki::issue` (`IssuingCa::issue_attestation`: encode, sign,
/// verify the result with the client verifier) in a tight loop.
fn raw_issuance(svc: &AppState, agency: &Agency, seconds: f64) -> Result<RawIssuance> {
    let device = agency
        .devices
        .first()
        .context("the first agency has no device")?;
    let request = AttestationRequest {
        user_id: UserId::parse(&device.user_id)?,
        subject: Subject::Device(DeviceId::parse(&device.device_id)?),
        key: Ed25519Key::from_base64(&device.key_b64)?,
        authority: agency.record.clone(),
    };
    for _ in 0..20 {
        svc.pki.issue(&request)?;
    }
    let limit = Duration::from_secs_f64(seconds.max(0.1));
    let start = Instant::now();
    let mut issued = 0u64;
    while start.elapsed() < limit {
        std::hint::black_box(svc.pki.issue(std::hint::black_box(&request))?);
        issued += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(RawIssuance {
        issued,
        seconds: secs,
        per_s: issued as f64 / secs,
        us_each: secs * 1e6 / issued as f64,
    })
}

// ----- load -----------------------------------------------------------------

/// One successful enrollment's timings.
struct Sample {
    total: Duration,
    challenge: Duration,
    enroll: Duration,
}

struct AgencyOutcome {
    samples: Vec<Sample>,
    errors: Vec<String>,
}

async fn enroll_one(
    client: &ServiceClient,
    device: &BenchDevice,
    wait_for_event_ms: Option<u64>,
) -> Result<Sample> {
    let t0 = Instant::now();
    let challenge = client
        .challenge(&ChallengeRequest {
            kind: Kind::Device,
            user_id: device.user_id.clone(),
            device_id: device.device_id.clone(),
            proof: Proof::Signature,
        })
        .await
        .context("challenge")?;
    let t1 = Instant::now();
    let payload = challenge
        .signing_payload
        .context("the challenge carries no signing payload")?;
    let payload = payload
        .as_object()
        .context("the signing payload is not an object")?;
    // An agency signs only what it asked for.
    if payload.get("user_id").and_then(Value::as_str) != Some(&device.user_id)
        || payload.get("device_id").and_then(Value::as_str) != Some(&device.device_id)
    {
        bail!("the signing payload names another user or device");
    }
    let nonce = payload
        .get("challenge")
        .and_then(Value::as_str)
        .context("the signing payload has no challenge")?
        .to_owned();
    let bytes = signing_bytes(payload).context("the signing payload is not canonical JSON")?;
    let signature = STANDARD_NO_PAD.encode(device.key.sign(&bytes).as_ref());
    let t2 = Instant::now();
    let enrolled = client
        .enroll(&EnrollRequest {
            kind: Kind::Device,
            user_id: device.user_id.clone(),
            device_id: device.device_id.clone(),
            key: device.key_b64.clone(),
            challenge: nonce,
            signature: Some(signature),
            wait_for_event_ms,
        })
        .await
        .context("enrollment")?;
    let t3 = Instant::now();
    if enrolled.chain.len() != 2 {
        bail!(
            "the enrollment returned a chain of {}",
            enrolled.chain.len()
        );
    }
    Ok(Sample {
        total: t3 - t0,
        challenge: t1 - t0,
        enroll: t3 - t2,
    })
}

async fn run_agency(
    client: ServiceClient,
    devices: Vec<BenchDevice>,
    wait_for_event_ms: Option<u64>,
) -> AgencyOutcome {
    let mut outcome = AgencyOutcome {
        samples: Vec::with_capacity(devices.len()),
        errors: Vec::new(),
    };
    for device in &devices {
        match enroll_one(&client, device, wait_for_event_ms).await {
            Ok(sample) => outcome.samples.push(sample),
            Err(e) => outcome
                .errors
                .push(format!("{} {}: {e:#}", device.user_id, device.device_id)),
        }
    }
    outcome
}

struct LoadResult {
    elapsed: Duration,
    samples: Vec<Sample>,
    errors: Vec<String>,
    cpu: BTreeMap<String, f64>,
}

async fn drive(
    work: Vec<(ServiceClient, Vec<BenchDevice>)>,
    wait_for_event_ms: Option<u64>,
    probe: CpuProbe,
) -> Result<LoadResult> {
    let cpu_before = CpuSnapshot::take(probe);
    let start = Instant::now();
    let tasks: Vec<_> = work
        .into_iter()
        .map(|(client, devices)| tokio::spawn(run_agency(client, devices, wait_for_event_ms)))
        .collect();
    let mut samples = Vec::new();
    let mut errors = Vec::new();
    for task in tasks {
        let outcome = task.await.context("a client task panicked")?;
        samples.extend(outcome.samples);
        errors.extend(outcome.errors);
    }
    let elapsed = start.elapsed();
    let cpu = CpuSnapshot::take(probe).since(&cpu_before);
    Ok(LoadResult {
        elapsed,
        samples,
        errors,
        cpu,
    })
}

// ----- CPU accounting ----------------------------------------------------------

/// Clock ticks of /proc's utime and stime (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// Which processes besides this one take part in an enrollment.
#[derive(Clone, Copy, Debug)]
struct CpuProbe {
    /// Synapse, when the bench started it.
    synapse_pid: Option<u32>,
    /// Count the PostgreSQL server processes (every `postgres` process on
    /// the host: other users of the server are counted too).
    postgres: bool,
}

/// CPU ticks per thread of this process (by name), of Synapse, of the
/// PostgreSQL server, and of the whole machine.
struct CpuSnapshot {
    threads: HashMap<String, (String, u64)>,
    synapse: Option<u64>,
    postgres: Option<u64>,
    /// Busy (not idle, not iowait) ticks of all CPUs, and steal ticks.
    machine: Option<(u64, u64)>,
}

impl CpuSnapshot {
    fn take(probe: CpuProbe) -> CpuSnapshot {
        let mut threads = HashMap::new();
        if let Ok(entries) = std::fs::read_dir("/proc/self/task") {
            for entry in entries.flatten() {
                let dir = entry.path();
                let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
                if let Some(ticks) = stat_ticks(&dir.join("stat")) {
                    threads.insert(
                        entry.file_name().to_string_lossy().into_owned(),
                        (name.trim().to_owned(), ticks),
                    );
                }
            }
        }
        CpuSnapshot {
            threads,
            synapse: probe
                .synapse_pid
                .and_then(|pid| stat_ticks(Path::new(&format!("/proc/{pid}/stat")))),
            postgres: probe.postgres.then(postgres_ticks),
            machine: machine_ticks(),
        }
    }

    /// CPU seconds per party since `before`: this process's threads by
    /// role, Synapse, PostgreSQL, and everything else on the machine.
    fn since(&self, before: &CpuSnapshot) -> BTreeMap<String, f64> {
        let secs = |now: u64, then: u64| now.saturating_sub(then) as f64 / USER_HZ;
        let mut out = BTreeMap::new();
        for (tid, (name, ticks)) in &self.threads {
            let earlier = before.threads.get(tid).map_or(0, |(_, t)| *t);
            let party = if name.starts_with("gt-server") {
                "service"
            } else if name.starts_with("gt-client") {
                "clients"
            } else if name.starts_with("sqlx-sqlite") {
                "sqlite workers"
            } else {
                "other threads"
            };
            *out.entry(party.to_owned()).or_insert(0.0) += secs(*ticks, earlier);
        }
        if let (Some(now), Some(then)) = (self.synapse, before.synapse) {
            out.insert("synapse".into(), secs(now, then));
        }
        if let (Some(now), Some(then)) = (self.postgres, before.postgres) {
            out.insert("postgres".into(), secs(now, then));
        }
        if let (Some((busy, steal)), Some((busy0, steal0))) = (self.machine, before.machine) {
            let ours: f64 = out.values().sum();
            out.insert(
                "other processes".into(),
                (secs(busy, busy0) - ours).max(0.0),
            );
            out.insert("stolen (hypervisor)".into(), secs(steal, steal0));
        }
        out
    }
}

/// Parties that take part in an enrollment (everything but other processes
/// and stolen time).
fn enrollment_cpu(cpu: &BTreeMap<String, f64>) -> f64 {
    cpu.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "other processes" | "stolen (hypervisor)"))
        .map(|(_, v)| v)
        .sum()
}

/// Ticks of every process named `postgres`.
fn postgres_ticks() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "postgres")
        })
        .filter_map(|e| stat_ticks(&e.path().join("stat")))
        .sum()
}

/// (busy, steal) ticks summed over all CPUs, from /proc/stat.
fn machine_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)?;
    Some((busy, *v.get(7)?))
}

/// The 1-minute load average, for the record.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// utime + stime from a /proc stat file.
fn stat_ticks(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name, starting with field 3.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

// ----- homeserver ---------------------------------------------------------------

/// The homeserver of a `full` run: one the bench started, or one given.
struct Homeserver {
    api: HomeserverApi,
    local: Option<Synapse>,
}

impl Homeserver {
    fn connect(base: url::Url, shared_secret: String) -> Result<Homeserver> {
        Ok(Homeserver {
            api: HomeserverApi::new(base, shared_secret)?,
            local: None,
        })
    }

    /// Starts a throwaway Synapse in `dir` on a free loopback port.
    async fn launch(python: Option<&Path>, dir: &Path) -> Result<Homeserver> {
        let synapse = Synapse::start_with(SynapseOptions {
            dir: Some(dir.to_path_buf()),
            python: python.map(Path::to_path_buf),
            venv: None,
            quiet: true,
        })
        .await?;
        Ok(Homeserver {
            api: synapse.api().clone(),
            local: Some(synapse),
        })
    }

    fn pid(&self) -> Option<u32> {
        self.local.as_ref().and_then(Synapse::pid)
    }

    /// Logs `device` in (creating it) and uploads its signed keys.
    async fn add_device(&self, password: &str, device: &BenchDevice) -> Result<()> {
        let (status, body) = self
            .api
            .call(
                reqwest::Method::POST,
                "/_matrix/client/v3/login",
                None,
                Some(&json!({
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": device.user_id},
                    "password": password,
                    "device_id": device.device_id,
                    "initial_device_display_name": "govtrust bench device",
                })),
            )
            .await?;
        if !status.is_success() {
            bail!(
                "login {} {}: {status} {body}",
                device.user_id,
                device.device_id
            );
        }
        let token = body["access_token"]
            .as_str()
            .context("login: no access_token")?;
        let (status, body) = self
            .api
            .call(
                reqwest::Method::POST,
                "/_matrix/client/v3/keys/upload",
                Some(token),
                Some(&json!({ "device_keys": device.keys_json })),
            )
            .await?;
        if !status.is_success() {
            bail!(
                "/keys/upload {} {}: {status} {body}",
                device.user_id,
                device.device_id
            );
        }
        Ok(())
    }
}

// ----- full-mode probes ----------------------------------------------------------

/// Waits for the outbox to empty; returns the seconds it took.
async fn drain_outbox(svc: &AppState, timeout: Duration) -> Result<Option<f64>> {
    let start = Instant::now();
    loop {
        if svc.store.outbox_depth().await? == 0 {
            return Ok(Some(start.elapsed().as_secs_f64()));
        }
        if start.elapsed() > timeout {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sequential single-device `/keys/query` through the bot, and one batch.
async fn probe_keys_query(
    bot: &Bot,
    devices: &[(String, String)],
) -> Result<(Latency, Option<BatchQuery>)> {
    use matrix_sdk::ruma::api::client::keys::get_keys;
    use matrix_sdk::ruma::{OwnedDeviceId, OwnedUserId};

    let mut single = Vec::new();
    for (user, device) in devices.iter().take(KEYS_QUERY_PROBES) {
        let (u, d) = (UserId::parse(user)?, DeviceId::parse(device)?);
        let t = Instant::now();
        let (found, _) = bot.device_and_identity(&u, &d).await?;
        single.push(t.elapsed());
        if found.is_none() {
            bail!("/keys/query does not serve {user} {device}");
        }
    }
    let batch: Vec<_> = devices.iter().take(KEYS_QUERY_BATCH).collect();
    let batch = if batch.len() > 1 {
        let mut times = Vec::new();
        for _ in 0..5 {
            let mut request = get_keys::v3::Request::new();
            for (user, device) in &batch {
                request
                    .device_keys
                    .entry(OwnedUserId::try_from(user.as_str())?)
                    .or_default()
                    .push(OwnedDeviceId::from(device.as_str()));
            }
            let t = Instant::now();
            let response = bot.client().send(request).await?;
            times.push(t.elapsed());
            let served: usize = response.device_keys.values().map(|d| d.len()).sum();
            if served != batch.len() {
                bail!(
                    "batched /keys/query served {served} of {} devices",
                    batch.len()
                );
            }
        }
        let median = Latency::of(times).p50_ms;
        Some(BatchQuery {
            devices: batch.len(),
            ms: median,
            per_device_ms: median / batch.len() as f64,
        })
    } else {
        None
    };
    Ok((Latency::of(single), batch))
}

// ----- the command ------------------------------------------------------------

fn runtime(name: &str, threads: usize) -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name(name)
        .enable_all()
        .build()?)
}

fn note(text: impl std::fmt::Display) {
    eprintln!("bench: {text}");
}

/// `govtrust-bench enroll`
fn enroll(args: &BenchEnrollArgs, json: bool) -> Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "warn,govtrust_service::pki=error,matrix_sdk=off,matrix_sdk_base=off,matrix_sdk_crypto=off",
        )
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    if args.mode == BenchMode::Service
        && (args.homeserver.is_some() || args.synapse_python.is_some())
    {
        bail!("--homeserver and --synapse-python are for --mode full");
    }
    if args.enrollments < args.clients {
        bail!("--enrollments must be at least --clients (each client enrolls at least once)");
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let server_rt = runtime("gt-server", args.server_threads.unwrap_or(cores))?;
    let client_rt = runtime("gt-client", args.client_threads.unwrap_or(cores))?;
    let rng = SystemRandom::new();
    let run = random_hex(&rng, 4)?;
    let temp = tempfile::Builder::new()
        .prefix("govtrust-bench-")
        .tempdir()?;
    let data_dir = temp.path().join("service");
    std::fs::create_dir_all(&data_dir)?;
    let storage = storage(args, &data_dir, &run)?;

    // The homeserver (full mode) and the agencies' users and devices.
    let setup = Instant::now();
    let homeserver = match args.mode {
        BenchMode::Service => None,
        BenchMode::Full => Some(match (&args.homeserver, &args.registration_shared_secret) {
            (Some(url), Some(secret)) => Homeserver::connect(url.clone(), secret.clone())?,
            _ => {
                note("starting Synapse");
                client_rt.block_on(Homeserver::launch(
                    args.synapse_python.as_deref(),
                    &temp.path().join("synapse"),
                ))?
            }
        }),
    };
    let (server, bot_matrix) = match &homeserver {
        None => (SERVICE_MODE_SERVER.to_owned(), None),
        Some(hs) => {
            let password = random_hex(&rng, 16)?;
            let bot_user = client_rt.block_on(hs.api.register(
                &format!("govtrust-bench-{run}"),
                &password,
                false,
            ))?;
            let server = UserId::parse(&bot_user)?.server_name().to_owned();
            let matrix = MatrixConfig::new(
                hs.api.url().clone(),
                bot_user,
                password,
                data_dir.join("matrix"),
            );
            (server, Some(matrix))
        }
    };
    note(format!(
        "generating {} device keys for {} agencies",
        args.enrollments, args.clients
    ));
    let mut agencies = agencies(&run, &server, args.clients, args.enrollments, &rng)?;
    let keys = match (&homeserver, bot_matrix) {
        (Some(hs), Some(matrix)) => {
            note(format!(
                "registering {} users, logging in {} devices and uploading their keys",
                args.clients, args.enrollments
            ));
            client_rt.block_on(async {
                for agency in &mut agencies {
                    agency.user_id = hs
                        .api
                        .register(&agency.localpart, &agency.password, false)
                        .await?;
                }
                let jobs = agencies
                    .iter()
                    .flat_map(|a| a.devices.iter().map(move |d| hs.add_device(&a.password, d)));
                stream::iter(jobs)
                    .buffer_unordered(SETUP_CONCURRENCY)
                    .try_collect::<Vec<()>>()
                    .await
            })?;
            Keys::Homeserver(matrix)
        }
        _ => {
            let mut map = HashMap::with_capacity(args.enrollments as usize);
            for device in agencies.iter().flat_map(|a| &a.devices) {
                map.insert(
                    (device.user_id.clone(), device.device_id.clone()),
                    device.key_answer()?,
                );
            }
            Keys::Prefilled(map)
        }
    };
    let setup_s = setup.elapsed().as_secs_f64();

    note(format!("starting the service ({})", storage.label));
    let (running, identities, bot) = server_rt.block_on(start_service(
        &data_dir, &storage, args, &server, keys, &agencies,
    ))?;

    note(format!(
        "measuring raw issuance for {:.1} s",
        args.raw_seconds
    ));
    let raw = std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("gt-raw".into())
            .spawn_scoped(s, || {
                raw_issuance(&running.svc, &agencies[0], args.raw_seconds)
            })
            .map_err(anyhow::Error::from)?
            .join()
            .map_err(|_| anyhow!("the raw issuance thread panicked"))?
    })?;

    let probe_devices: Vec<(String, String)> = agencies
        .iter()
        .flat_map(|a| {
            a.devices
                .iter()
                .map(|d| (d.user_id.clone(), d.device_id.clone()))
        })
        .collect();
    let work = agencies
        .into_iter()
        .zip(&identities)
        .map(|(agency, identity)| {
            let client = ServiceClient::new(
                running.base.clone(),
                running.root_pem.as_bytes(),
                identity.as_bytes(),
            )?;
            Ok((client, agency.devices))
        })
        .collect::<Result<Vec<_>>>()?;
    let wait = (args.mode == BenchMode::Full).then_some(args.wait_for_event_ms);
    note(format!(
        "load: {} clients, {} enrollments against {}",
        args.clients, args.enrollments, running.base
    ));
    let probe = CpuProbe {
        synapse_pid: homeserver.as_ref().and_then(Homeserver::pid),
        postgres: storage.backend == "postgres",
    };
    let load_average_at_start = load_average();
    let load_started = Instant::now();
    let load = client_rt.block_on(drive(work, wait, probe))?;

    let full = match (&homeserver, &bot) {
        (Some(hs), Some(bot)) => {
            let svc = running.svc.clone();
            let timeout = Duration::from_secs(args.drain_timeout_secs);
            let pending = server_rt.block_on(svc.store.outbox_depth())?;
            note(format!(
                "waiting for the outbox to publish {pending} events"
            ));
            let drain = server_rt.block_on(drain_outbox(&svc, timeout))?;
            let overall =
                drain.map(|_| load.samples.len() as f64 / load_started.elapsed().as_secs_f64());
            note("probing /keys/query");
            let (single, batch) = server_rt.block_on(probe_keys_query(bot, &probe_devices))?;
            Some(FullReport {
                homeserver: hs.api.base_url(),
                started_by_bench: hs.local.is_some(),
                setup_s,
                wait_for_event_ms: args.wait_for_event_ms,
                outbox_pending_at_end: pending,
                outbox_drain_s: drain,
                drain_publish_per_s: drain
                    .filter(|d| *d > 0.0 && pending > 0)
                    .map(|d| pending as f64 / d),
                overall_publish_per_s: overall,
                keys_query_single: single,
                keys_query_batch: batch,
            })
        }
        _ => None,
    };

    let _ = running.shutdown.send(());
    drop(running.svc);
    drop(bot);
    server_rt.shutdown_timeout(Duration::from_secs(5));
    drop(homeserver);
    if let (Some(schema), false) = (&storage.pg_schema, args.keep_database) {
        if let Err(e) = client_rt.block_on(drop_schema(&storage.url, schema)) {
            note(format!("could not drop schema {schema}: {e:#}"));
        }
    }

    let succeeded = load.samples.len();
    let errors = load.errors.len();
    let rate = succeeded as f64 / load.elapsed.as_secs_f64();
    let (mut total, mut challenge, mut enroll) = (Vec::new(), Vec::new(), Vec::new());
    for s in &load.samples {
        total.push(s.total);
        challenge.push(s.challenge);
        enroll.push(s.enroll);
    }
    let latency = Latency::of(total);
    let cpu_ms = if succeeded > 0 {
        enrollment_cpu(&load.cpu) * 1000.0 / succeeded as f64
    } else {
        0.0
    };
    let report = Report {
        mode: match args.mode {
            BenchMode::Service => "service",
            BenchMode::Full => "full",
        },
        backend: storage.backend,
        database: storage.label.clone(),
        clients: args.clients,
        enrollments: args.enrollments,
        succeeded,
        errors,
        first_errors: load.errors.iter().take(QUOTED_ERRORS).cloned().collect(),
        elapsed_s: load.elapsed.as_secs_f64(),
        enrollments_per_s: rate,
        latency,
        challenge_latency: Latency::of(challenge),
        enroll_latency: Latency::of(enroll),
        raw_issuance: raw,
        ratio_to_raw_issuance: rate / raw.per_s,
        cpu_ms_per_enrollment: cpu_ms,
        cpu_bound_per_s: if cpu_ms > 0.0 {
            cores as f64 * 1000.0 / cpu_ms
        } else {
            0.0
        },
        cpu_s: load.cpu,
        cores,
        load_average_at_start,
        target: (args.mode == BenchMode::Service).then_some(Target {
            min_per_s: TARGET_RATE,
            max_p99_ms: TARGET_P99_MS,
            met: errors == 0 && rate >= TARGET_RATE && latency.p99_ms < TARGET_P99_MS,
        }),
        full,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.human().trim_end());
    }
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn drop_schema(url: &str, schema: &str) -> Result<()> {
    use sqlx::{AssertSqlSafe, Connection, Executor};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    // The schema name is ours: govtrust_bench_<hex>.
    conn.execute(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
        .await?;
    conn.close().await?;
    Ok(())
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

    #[test]
    fn bench_devices_are_self_signed() {
        let rng = SystemRandom::new();
        let d = BenchDevice::generate("@a:bench.example", "DEV1", &rng).unwrap();
        let answer = d.key_answer().unwrap();
        let device = answer.device.unwrap();
        assert!(device.self_signed);
        assert_eq!(device.ed25519.to_base64(), d.key_b64);
    }

    #[test]
    fn stat_parsing_reads_utime_and_stime() {
        let ticks = stat_ticks(Path::new("/proc/self/stat"));
        assert!(ticks.is_some());
    }
}

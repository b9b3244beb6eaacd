//! The options of `govtrust-bench enroll`: what the load puts in the loop
//! (service alone or with a real Synapse), how much load, and where the data
//! goes. Kept apart from `main.rs` so the rest of the bench can name the
//! options without depending on the command-line entry point.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::{Args, ValueEnum};
use govtrust_service::keys::batch::BatchConfig;

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
    /// full mode: leave publishing off (nothing is queued in the outbox),
    /// to measure the /keys/query path without state events competing for
    /// Synapse.
    #[arg(long)]
    pub no_publish: bool,
    /// full mode: most devices in one coalesced /keys/query (default: the
    /// service's, `BatchConfig::default()`).
    #[arg(long, value_name = "N", value_parser = RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub keys_max_batch: Option<usize>,
    /// full mode: most coalesced /keys/query requests in flight at once
    /// (default: the service's). Fewer lets the queue grow into bigger
    /// batches while a query is out.
    #[arg(long, value_name = "N", value_parser = RangedU64ValueParser::<usize>::new().range(1..=1_000))]
    pub keys_max_in_flight: Option<usize>,
    /// full mode: longest a lookup waits for its batch while a query is in
    /// flight, in milliseconds (default: the service's).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub keys_max_wait_ms: Option<u64>,
}

impl BenchEnrollArgs {
    /// The service's batcher settings, overridden by the `--keys-*` options.
    pub fn batch_config(&self) -> BatchConfig {
        let default = BatchConfig::default();
        BatchConfig {
            max_batch: self.keys_max_batch.unwrap_or(default.max_batch),
            max_in_flight: self.keys_max_in_flight.unwrap_or(default.max_in_flight),
            max_wait: self
                .keys_max_wait_ms
                .map_or(default.max_wait, Duration::from_millis),
            ..default
        }
    }

    /// Whether an option for full mode only was given.
    pub fn has_full_mode_options(&self) -> bool {
        self.no_publish
            || self.keys_max_batch.is_some()
            || self.keys_max_in_flight.is_some()
            || self.keys_max_wait_ms.is_some()
    }
}

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
//! Both modes report how the store's writers batched during the load
//! (changes per commit, `Store::write_stats`), and measure, in the same
//! process and run, the raw issuance rate
//! (`ServicePki::issue`, i.e. `IssuingCa::issue_attestation`, in a tight
//! loop on one thread) and print the ratio enrollments/s ÷ raw issuance/s.
//!
//! Synapse for `full` mode comes from [`govtrust_service::synapse`], the launcher the
//! demo and the tests use too, with WARNING-level logging so that log
//! lines do not count as homeserver CPU.

#![forbid(unsafe_code)]

mod args;
mod cpu;
mod devices;
mod enroll;
mod homeserver;
mod load;
mod report;
mod service;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::args::BenchEnrollArgs;
use crate::enroll::enroll;

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
    /// certificate, one keep-alive HTTP/1.1 connection per client). Each
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

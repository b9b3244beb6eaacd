//! The `enroll` command itself: sets up the homeserver, agencies and
//! service, measures the raw issuance baseline, drives the load, probes the
//! homeserver in `full` mode, tears everything down and prints the report.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::stream::{self, StreamExt, TryStreamExt};
use govtrust_service::agency::ServiceClient;
use govtrust_service::matrix::MatrixConfig;
use govtrust_verifier::UserId;
use ring::rand::SystemRandom;

use crate::args::{BenchEnrollArgs, BenchMode};
use crate::cpu::{enrollment_cpu, is_enrollment_party, load_average, CpuProbe, CpuSnapshot};
use crate::devices::{agencies, random_hex};
use crate::homeserver::{drain_outbox, probe_keys_query, Homeserver};
use crate::load::{drive, LoadResult};
use crate::report::{
    BatcherSettings, Coalesced, FullReport, GroupCommit, KeysQueryProbe, Latency, Report,
    Sustained, SynapseSplit, Target,
};
use crate::service::{drop_schema, raw_issuance, start_service, storage, Keys};

/// The targets the issues set, as (enrollments per second, p99 per
/// enrollment in ms): the service on SQLite (the first load issue), on
/// PostgreSQL and with Synapse (issue #13, where full mode sets no p99).
fn target_of(mode: BenchMode, backend: &str) -> (f64, Option<f64>) {
    match (mode, backend) {
        (BenchMode::Service, "postgres") => (1500.0, Some(30.0)),
        (BenchMode::Service, _) => (1000.0, Some(50.0)),
        (BenchMode::Full, _) => (600.0, None),
    }
}
/// Server name of the users in `service` mode (no homeserver exists).
const SERVICE_MODE_SERVER: &str = "bench.example";
/// Concurrent logins and key uploads while preparing `full` mode.
const SETUP_CONCURRENCY: usize = 16;
/// How many error messages the report quotes.
const QUOTED_ERRORS: usize = 5;

/// A multi-threaded runtime whose threads are named `name` (the CPU
/// accounting tells parties apart by thread name).
fn runtime(name: &str, threads: usize) -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name(name)
        .enable_all()
        .build()?)
}

/// A progress line on stderr (stdout carries only the report).
fn note(text: impl std::fmt::Display) {
    eprintln!("bench: {text}");
}

/// `govtrust-bench enroll`
pub(crate) fn enroll(args: &BenchEnrollArgs, json: bool) -> Result<ExitCode> {
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
    if args.mode == BenchMode::Service && args.has_full_mode_options() {
        bail!(
            "--no-publish, --keys-max-batch, --keys-max-in-flight and --keys-max-wait-ms are for --mode full"
        );
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
                let first = agencies.first().context("no agencies")?;
                raw_issuance(&running.svc, first, args.raw_seconds)
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
    let writes_before = running.svc.store.write_stats();
    let load = client_rt.block_on(drive(work, wait, probe))?;
    let writes = GroupCommit::between(&writes_before, &running.svc.store.write_stats());
    let coalesced = running.svc.keys.batch_stats().map(|b| Coalesced {
        queries: b.queries,
        lookups: b.lookups,
        mean_batch: b.lookups as f64 / b.queries.max(1) as f64,
        largest_batch: b.largest,
        mean_queued_ms: b.queued.as_secs_f64() * 1000.0 / b.lookups.max(1) as f64,
        mean_query_ms: b.query_time.as_secs_f64() * 1000.0 / b.queries.max(1) as f64,
    });

    let full = match (&homeserver, &bot) {
        (Some(hs), Some(bot)) => {
            let svc = running.svc.clone();
            let timeout = Duration::from_secs(args.drain_timeout_secs);
            let pending = server_rt.block_on(svc.store.outbox_depth())?;
            note(format!(
                "waiting for the outbox to publish {pending} events"
            ));
            let cpu_before_drain = CpuSnapshot::take(probe);
            let drain = server_rt.block_on(drain_outbox(&svc, timeout))?;
            let drain_cpu = CpuSnapshot::take(probe).since(&cpu_before_drain);
            let overall = drain
                .filter(|_| !args.no_publish)
                .map(|_| load.samples.len() as f64 / load_started.elapsed().as_secs_f64());
            note("probing /keys/query");
            // A failed probe must not cost the run's figures; and an early
            // return here would drop the bot outside its runtime.
            let probes = server_rt
                .block_on(probe_keys_query(bot, &probe_devices, probe.synapse_pid))
                .unwrap_or_else(|e| {
                    note(format!("the /keys/query probes failed: {e:#}"));
                    Vec::new()
                });
            let published_in_load = if args.no_publish {
                0
            } else {
                (load.samples.len() as u64).saturating_sub(pending)
            };
            let drain_cpu_ms_per_event: BTreeMap<String, f64> = if drain.is_some() && pending > 0 {
                let mut parties: BTreeMap<String, f64> = drain_cpu
                    .iter()
                    .filter(|(k, _)| is_enrollment_party(k))
                    .map(|(k, v)| (k.clone(), v * 1000.0 / pending as f64))
                    .collect();
                parties.retain(|_, v| *v > 0.0);
                parties
            } else {
                BTreeMap::new()
            };
            let synapse_split = synapse_split(
                &load,
                coalesced.as_ref(),
                &probes,
                published_in_load,
                drain_cpu_ms_per_event.get("synapse").copied(),
            );
            let drain_publish_per_s = drain
                .filter(|d| *d > 0.0 && pending > 0)
                .map(|d| pending as f64 / d);
            let sustained = sustained(
                &load,
                published_in_load,
                &drain_cpu_ms_per_event,
                drain_publish_per_s,
                cores,
            );
            let config = args.batch_config();
            Some(FullReport {
                homeserver: hs.api.base_url(),
                started_by_bench: hs.local.is_some(),
                setup_s,
                wait_for_event_ms: args.wait_for_event_ms,
                publishing: !args.no_publish,
                batcher: BatcherSettings {
                    max_batch: config.max_batch,
                    max_in_flight: config.max_in_flight,
                    max_wait_ms: config.max_wait.as_secs_f64() * 1000.0,
                },
                outbox_pending_at_end: pending,
                load_publish_per_s: published_in_load as f64 / load.elapsed.as_secs_f64(),
                outbox_drain_s: drain,
                drain_publish_per_s,
                drain_cpu_ms_per_event,
                overall_publish_per_s: overall,
                keys_query_probes: probes,
                keys_query_coalesced: coalesced,
                synapse_split,
                sustained,
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
        writes,
        cores,
        load_average_at_start,
        target: {
            let (min_per_s, max_p99_ms) = target_of(args.mode, storage.backend);
            Target {
                min_per_s,
                max_p99_ms,
                met: errors == 0
                    && rate >= min_per_s
                    && max_p99_ms.is_none_or(|ms| latency.p99_ms < ms),
            }
        },
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

/// Splits Synapse's CPU during the load (see [`SynapseSplit`]): needs
/// Synapse's CPU (a Synapse the bench started), the batcher's counts, and
/// probes of two sizes for the `/keys/query` cost model.
fn synapse_split(
    load: &LoadResult,
    coalesced: Option<&Coalesced>,
    probes: &[KeysQueryProbe],
    published_in_load: u64,
    publication_ms_per_event: Option<f64>,
) -> Option<SynapseSplit> {
    let total_s = *load.cpu.get("synapse")?;
    let coalesced = coalesced?;
    let (small, large) = (probes.first()?, probes.last()?);
    let (small_ms, large_ms) = (small.synapse_cpu_ms?, large.synapse_cpu_ms?);
    if large.devices <= small.devices || load.samples.is_empty() {
        return None;
    }
    let per_device = (large_ms - small_ms) / (large.devices - small.devices) as f64;
    let fixed = small_ms - per_device * small.devices as f64;
    let enrollments = load.samples.len() as f64;
    let keys_query = coalesced.queries as f64 * fixed + coalesced.lookups as f64 * per_device;
    let publication = published_in_load as f64 * publication_ms_per_event.unwrap_or(0.0);
    let total = total_s * 1000.0;
    Some(SynapseSplit {
        total_ms: total / enrollments,
        keys_query_ms: keys_query / enrollments,
        publication_ms: publication / enrollments,
        rest_ms: (total - keys_query - publication) / enrollments,
        query_fixed_ms: fixed,
        query_per_device_ms: per_device,
    })
}

/// The CPU per enrollment with exactly one publication each, at its cost
/// while draining, instead of the share that happened to be published
/// during the load; and the rate that bounds on `cores`.
fn sustained(
    load: &LoadResult,
    published_in_load: u64,
    drain_cpu_ms_per_event: &BTreeMap<String, f64>,
    publication_bound_per_s: Option<f64>,
    cores: usize,
) -> Option<Sustained> {
    if drain_cpu_ms_per_event.is_empty() || load.samples.is_empty() {
        return None;
    }
    let per_event: f64 = drain_cpu_ms_per_event.values().sum();
    let enrollments = load.samples.len() as f64;
    let without_publication =
        enrollment_cpu(&load.cpu) * 1000.0 - published_in_load as f64 * per_event;
    let cpu_ms = without_publication / enrollments + per_event;
    Some(Sustained {
        cpu_ms_per_enrollment: cpu_ms,
        cpu_bound_per_s: cores as f64 * 1000.0 / cpu_ms,
        publication_bound_per_s,
    })
}

//! Issue #4 benchmark: a citizen's client verifies the attestations of a
//! room with 10,000 agency devices (state already synced) on one core.
//!
//! ```sh
//! cargo run --release -p govtrust-pki --example room_verify -- --devices 10000 [--json]
//! ```
//!
//! Setup (not measured) issues the attestations with a P-256 root and
//! issuing CA, turns each into the raw synced state event, signs an
//! issuing-CA CRL (`--revoked` other serials) and an empty root CRL, writes
//! the client's view (room state, crypto-store keys, root, CRLs) to a temp
//! file and drops everything else. The measured passes then read only that
//! view, on this one thread, in `--rounds` interleaved rounds:
//!
//! - verifier: decode the two CRLs, then per device parse the state event,
//!   check type / state key / sender, take the content and call
//!   `Verifier::verify_event` with the crypto store's user, device and key
//!   under `CrlPolicy::REQUIRE_FRESH` (see `benches/common/room.rs`);
//! - raw baseline: the signature verifications the verifier cannot avoid,
//!   with ring alone — the two CRL signatures and the issuing-CA
//!   certificate's signature once (the `CrlSet` remembers CRL signatures,
//!   the `Verifier` the issuing CAs it has validated), then per device the
//!   leaf signature (see `benches/common/room.rs`).
//!
//! The verifier is built once and kept across the rounds, as a client keeps
//! it; the first round therefore includes the one full validation of the
//! issuing CA, later rounds find it remembered.
//!
//! Every device must be accepted in every round, and a tampered leaf and a
//! wrong key must be rejected, or the run fails. Peak memory is VmHWM of
//! this process (setup included) and of a child process that loads the
//! room state file and runs only the verifier passes.

#[path = "../benches/common/room.rs"]
mod room;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use govtrust_verifier::UnixTime;
use room::{RawWork, RoomState};
use serde_json::{json, Value};

/// Issue #4's targets.
const TARGET_TIME: Duration = Duration::from_secs(1);
const TARGET_PEAK_MB: f64 = 100.0;

struct Args {
    devices: usize,
    revoked: usize,
    rounds: usize,
    json: bool,
    /// Internal: run as the child that measures the verification phase alone.
    verify_only: Option<PathBuf>,
}

const USAGE: &str = "usage: room_verify [--devices N (10000)] [--revoked N (1000)] \
[--rounds N (3)] [--json]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        devices: 10_000,
        revoked: 1_000,
        rounds: 3,
        json: false,
        verify_only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number\n{USAGE}"))
        };
        match arg.as_str() {
            "--devices" => args.devices = number("--devices")?,
            "--revoked" => args.revoked = number("--revoked")?,
            "--rounds" => args.rounds = number("--rounds")?,
            "--json" => args.json = true,
            "--verify-only" => {
                args.verify_only = Some(it.next().ok_or("--verify-only needs a path")?.into())
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if args.devices == 0 || args.rounds == 0 {
        return Err("--devices and --rounds must be at least 1".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|args| match &args.verify_only {
        Some(path) => child(path, args.rounds),
        None => run(&args),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("room_verify: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A `/proc/self/status` field in kB (VmHWM: peak resident set size).
fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn mb(kb: Option<u64>) -> Option<f64> {
    kb.map(|kb| kb as f64 / 1024.0)
}

/// Time this thread spent on a CPU (first field of
/// `/proc/thread-self/schedstat`, ns): with the wall time it shows whether
/// other processes took the core during a pass.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace()
        .next()?
        .parse()
        .ok()
        .map(Duration::from_nanos)
}

/// Wall and on-CPU time of one pass.
#[derive(Clone, Copy)]
struct Timing {
    wall: Duration,
    cpu: Option<Duration>,
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Timing) {
    let cpu0 = thread_cpu();
    let start = Instant::now();
    let out = f();
    let wall = start.elapsed();
    let cpu = thread_cpu().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
    (out, Timing { wall, cpu })
}

/// One verifier pass over the whole room; fails unless every device is
/// accepted for exactly its own user and device.
fn verifier_pass(
    state: &RoomState,
    verifier: &govtrust_verifier::Verifier,
) -> Result<Timing, String> {
    let now = UnixTime::now();
    let (result, timing) = timed(|| room::verify_room(state, verifier, now));
    let verdicts = result.map_err(|(i, why)| match state.devices.get(i) {
        Some(d) => format!("device {i} ({} {}) rejected: {why}", d.user_id, d.device_id),
        None => format!("room rejected: {why}"),
    })?;
    if verdicts.len() != state.devices.len() {
        return Err(format!(
            "{} of {} devices verified",
            verdicts.len(),
            state.devices.len()
        ));
    }
    for (v, d) in verdicts.iter().zip(&state.devices) {
        if v.user_id.as_str() != d.user_id || v.key.to_base64() != d.key {
            return Err(format!("verdict for {} names someone else", d.user_id));
        }
    }
    Ok(timing)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn timing_json(t: &Timing) -> Value {
    json!({ "wall_ms": ms(t.wall), "cpu_ms": t.cpu.map(ms) })
}

/// The child: load the room state file, run the verifier passes, report
/// its peak memory. Nothing of the setup was ever in this process.
fn child(path: &Path, rounds: usize) -> Result<(), String> {
    let state = RoomState::read(path)?;
    let loaded_kb = status_kb("VmHWM");
    let verifier = state.verifier()?;
    let mut passes = Vec::new();
    for _ in 0..rounds {
        passes.push(verifier_pass(&state, &verifier)?);
    }
    let out = json!({
        "devices": state.devices.len(),
        "peak_kb_after_load": loaded_kb,
        "peak_kb": status_kb("VmHWM"),
        "verifier": passes.iter().map(timing_json).collect::<Vec<_>>(),
    });
    println!("{out}");
    Ok(())
}

/// The verification phase measured in a fresh process.
struct ChildReport {
    peak_mb_after_load: Option<f64>,
    peak_mb: Option<f64>,
    verifier_median: Duration,
}

fn run_child(path: &Path, rounds: usize) -> Result<ChildReport, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let out = Command::new(exe)
        .arg("--verify-only")
        .arg(path)
        .arg("--rounds")
        .arg(rounds.to_string())
        .output()
        .map_err(|e| format!("child: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "child failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("child output: {e}"))?;
    let walls = v["verifier"]
        .as_array()
        .ok_or("child output: no passes")?
        .iter()
        .filter_map(|p| p["wall_ms"].as_f64())
        .map(|ms| Duration::from_secs_f64(ms / 1e3))
        .collect::<Vec<_>>();
    if walls.is_empty() {
        return Err("child output: no passes".into());
    }
    let kb = |k: &str| v[k].as_u64().map(|kb| kb as f64 / 1024.0);
    Ok(ChildReport {
        peak_mb_after_load: kb("peak_kb_after_load"),
        peak_mb: kb("peak_kb"),
        verifier_median: median(walls),
    })
}

fn run(args: &Args) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let path = dir.path().join("room.state");

    // Setup, not measured: everything but the file is dropped at the end
    // of this block.
    let setup_start = Instant::now();
    {
        let state = room::build(args.devices, args.revoked);
        state
            .write(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let setup = setup_start.elapsed();
    let state = RoomState::read(&path)?;
    let verifier = state.verifier()?;
    let raw = RawWork::from_state(&state)?;
    let event_bytes = state.event_bytes();
    let n = state.devices.len();

    // Interleaved rounds, so that load from other processes hits both alike.
    let mut rounds = Vec::with_capacity(args.rounds);
    for _ in 0..args.rounds {
        let v = verifier_pass(&state, &verifier)?;
        let (ok, r) = timed(|| raw.run());
        if ok != raw.signatures() {
            return Err(format!(
                "raw baseline: {ok} of {} signatures verified",
                raw.signatures()
            ));
        }
        rounds.push((v, r));
    }

    // Sanity: the measured path does reject.
    let crls = room::decode_crls(&state)?;
    let now = UnixTime::now();
    let first = state.devices.first().ok_or("empty room")?;
    let tampered = room::tampered(first)?;
    let tampered_code =
        match room::verify_device(&verifier, &crls, &state.publisher, &tampered, now) {
            Err(e) if e.code() == "bad_signature" => e.code(),
            Err(e) => return Err(format!("tampered leaf rejected for the wrong reason: {e}")),
            Ok(_) => return Err("a tampered leaf signature was ACCEPTED".into()),
        };
    // The first device's event, checked against the second device's key.
    let wrong_key_code = match state.devices.get(1) {
        None => "skipped",
        Some(other) => {
            let wrong_key = room::Device {
                user_id: first.user_id.clone(),
                device_id: first.device_id.clone(),
                key: other.key.clone(),
                event: first.event.clone(),
            };
            match room::verify_device(&verifier, &crls, &state.publisher, &wrong_key, now) {
                Err(e) if e.code() == "key_mismatch" => e.code(),
                Err(e) => return Err(format!("wrong key rejected for the wrong reason: {e}")),
                Ok(_) => return Err("another device's key was ACCEPTED".into()),
            }
        }
    };
    drop(crls);
    // Every round after the first chain found the issuing CA remembered;
    // the tampered leaf fell back to the full validation.
    let memo = verifier.issuer_memo_stats();
    let peak_run = mb(status_kb("VmHWM"));

    let child = run_child(&path, args.rounds)?;

    let verify_med = median(rounds.iter().map(|(v, _)| v.wall).collect());
    let raw_med = median(rounds.iter().map(|(_, r)| r.wall).collect());
    // On-CPU medians: what the passes cost on a core of their own, even
    // when other processes share the machine (then wall > cpu).
    let cpu_med = |pick: fn(&(Timing, Timing)) -> Option<Duration>| {
        rounds
            .iter()
            .map(pick)
            .collect::<Option<Vec<_>>>()
            .map(median)
    };
    let verify_cpu = cpu_med(|(v, _)| v.cpu);
    let raw_cpu = cpu_med(|(_, r)| r.cpu);
    let per_sec = |d: Duration| n as f64 / d.as_secs_f64();
    let ratio = verify_med.as_secs_f64() / raw_med.as_secs_f64();
    let ratio_cpu = verify_cpu
        .zip(raw_cpu)
        .map(|(v, r)| v.as_secs_f64() / r.as_secs_f64());
    let time_ok = verify_med < TARGET_TIME;
    let peak_phase = child.peak_mb;
    let memory_ok = peak_phase.is_some_and(|p| p < TARGET_PEAK_MB);

    if args.json {
        let out = json!({
            "devices": n,
            "revoked_entries": args.revoked,
            "rounds": args.rounds,
            "event_bytes_total": event_bytes,
            "setup_ms": ms(setup),
            "verifier": {
                "median_ms": ms(verify_med),
                "attestations_per_s": per_sec(verify_med),
                "median_cpu_ms": verify_cpu.map(ms),
                "attestations_per_cpu_s": verify_cpu.map(per_sec),
                "rounds": rounds.iter().map(|(v, _)| timing_json(v)).collect::<Vec<_>>(),
            },
            "raw_baseline": {
                "signatures_per_pass": raw.signatures(),
                "median_ms": ms(raw_med),
                "attestations_per_s": per_sec(raw_med),
                "median_cpu_ms": raw_cpu.map(ms),
                "attestations_per_cpu_s": raw_cpu.map(per_sec),
                "rounds": rounds.iter().map(|(_, r)| timing_json(r)).collect::<Vec<_>>(),
            },
            "ratio_verifier_to_raw": ratio,
            "ratio_verifier_to_raw_cpu": ratio_cpu,
            "all_accepted": true,
            "tampered_leaf": tampered_code,
            "wrong_key": wrong_key_code,
            "issuer_memo": { "entries": memo.entries, "hits": memo.hits,
                             "fallbacks": memo.fallbacks,
                             "fast_leaf_reads": memo.fast_leaf_reads },
            "peak_mb_run": peak_run,
            "peak_mb_verification_phase": peak_phase,
            "peak_mb_verification_phase_after_load": child.peak_mb_after_load,
            "child_verifier_median_ms": ms(child.verifier_median),
            "target": { "time_ms": ms(TARGET_TIME), "peak_mb": TARGET_PEAK_MB,
                        "time_met": time_ok, "memory_met": memory_ok },
        });
        println!("{out}");
        return Ok(());
    }

    let opt = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.1}"));
    println!("room_verify: {n} agency devices, one thread");
    println!(
        "  setup (not measured): P-256 root + issuing CA, {n} attestations, issuing-CA CRL \
         with {} entries + root CRL, {:.1} s; room state {:.1} MB ({} B per event)",
        args.revoked,
        setup.as_secs_f64(),
        event_bytes as f64 / 1e6,
        event_bytes / n
    );
    println!(
        "  verifier pass: decode 2 CRLs, then per device parse event + verify_event \
         (REQUIRE_FRESH)"
    );
    println!(
        "  raw baseline:  ring ECDSA P-256 verifications, {} per pass (2 CRLs + issuing CA \
         once, leaf per device)",
        raw.signatures()
    );
    println!("  round   verifier ms wall (cpu)   raw ms wall (cpu)   ratio wall (cpu)");
    let ratio_of = |a: Option<Duration>, b: Option<Duration>| {
        a.zip(b).map_or("n/a".to_owned(), |(a, b)| {
            format!("{:.2}", a.as_secs_f64() / b.as_secs_f64())
        })
    };
    for (i, (v, r)) in rounds.iter().enumerate() {
        println!(
            "  {:>5}   {:>8.1} ({:>7})      {:>7.1} ({:>7})    {:.2}x ({}x)",
            i + 1,
            ms(v.wall),
            opt(v.cpu.map(ms)),
            ms(r.wall),
            opt(r.cpu.map(ms)),
            v.wall.as_secs_f64() / r.wall.as_secs_f64(),
            ratio_of(v.cpu, r.cpu)
        );
    }
    println!(
        "  median wall: verifier {:.1} ms = {:.0} attestations/s; raw {:.1} ms = {:.0}/s; \
         verifier/raw {ratio:.2}x",
        ms(verify_med),
        per_sec(verify_med),
        ms(raw_med),
        per_sec(raw_med)
    );
    if let (Some(v), Some(r)) = (verify_cpu, raw_cpu) {
        println!(
            "  median cpu:  verifier {:.1} ms = {:.0} attestations/s; raw {:.1} ms = {:.0}/s; \
             verifier/raw {}x",
            ms(v),
            per_sec(v),
            ms(r),
            per_sec(r),
            ratio_of(Some(v), Some(r))
        );
    }
    println!(
        "  checks: all {n} accepted in every round; tampered leaf rejected ({tampered_code}); \
         another device's key rejected ({wrong_key_code})"
    );
    println!(
        "  issuing-CA memo: {} remembered; {} verifications found it remembered, {} of them \
         fell back to full validation, {} read the leaf without x509-parser",
        memo.entries, memo.hits, memo.fallbacks, memo.fast_leaf_reads
    );
    println!(
        "  peak memory (VmHWM): whole run incl. setup {} MB; verification phase alone \
         (child process) {} MB, of which {} MB after loading the room state; child \
         verifier median {:.1} ms",
        opt(peak_run),
        opt(peak_phase),
        opt(child.peak_mb_after_load),
        ms(child.verifier_median)
    );
    println!(
        "  target (< {} ms, < {TARGET_PEAK_MB} MB): time {}, memory {}",
        ms(TARGET_TIME),
        if time_ok { "met" } else { "NOT met" },
        if memory_ok { "met" } else { "NOT met" }
    );
    Ok(())
}

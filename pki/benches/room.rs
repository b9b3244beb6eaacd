//! Client-side cost of verifying a whole synced room of agency device
//! attestations (issue #4, scaled down to 1,000 devices so a criterion run
//! stays short), against the raw signature verifications it makes.
//!
//! Setup (see `common/room.rs`): P-256 root and issuing CA, 1,000 device
//! attestations for distinct users, devices and Ed25519 keys as raw synced
//! state events, an issuing-CA CRL with 1,000 other serials and an empty
//! root CRL, `CrlPolicy::REQUIRE_FRESH`.
//!
//! - `room_1000/verifier`: decode both CRLs, then per device parse the
//!   state event, check type, state key and sender, and `verify_event`.
//! - `room_1000/raw_signatures`: ring alone verifies the signatures the
//!   verifier cannot avoid: both CRLs and the issuing-CA certificate once,
//!   then each device's leaf (1,003 ECDSA P-256 verifications). The
//!   verifier is built once, as a client keeps it, so it has remembered the
//!   issuing CA after the first iteration (see `common/room.rs`).
//!
//! The full-size run with memory figures is the `room_verify` example.

mod common;
#[path = "common/room.rs"]
mod room;

use std::hint::black_box;
use std::time::Duration;

use common::{print_mean, print_ratio};
use criterion::{criterion_group, Criterion, SamplingMode};
use govtrust_verifier::{UnixTime, Verifier};
use room::{RawWork, RoomState};

const DEVICES: usize = 1_000;
const REVOKED: usize = 1_000;

struct Setup {
    state: RoomState,
    verifier: Verifier,
    raw: RawWork,
}

impl Setup {
    fn new() -> Self {
        let state = room::build(DEVICES, REVOKED);
        let verifier = state.verifier().expect("verifier");
        let raw = RawWork::from_state(&state).expect("raw work");
        let s = Setup {
            state,
            verifier,
            raw,
        };
        // Sanity: every device is accepted, every raw signature verifies.
        assert_eq!(s.verify().len(), DEVICES);
        assert_eq!(s.raw.run(), s.raw.signatures());
        s
    }

    fn verify(&self) -> Vec<govtrust_verifier::VerifiedAttestation> {
        room::verify_room(black_box(&self.state), &self.verifier, UnixTime::now())
            .expect("every device accepted")
    }
}

fn bench_room(c: &mut Criterion, s: &Setup) {
    let mut g = c.benchmark_group("room_1000");
    // One iteration is a whole room (~0.1-0.2 s): flat sampling, few samples.
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    g.bench_function("verifier", |b| b.iter(|| s.verify()));
    g.bench_function("raw_signatures", |b| b.iter(|| s.raw.run()));
    g.finish();
}

fn summary(s: &Setup) {
    if !common::summary_wanted("room_1000") {
        return;
    }
    println!("\n== room_1000 summary (std::time::Instant, same run) ==");
    println!("(median of 5 interleaved rounds, one whole room per call)");
    let t = common::interleaved(
        5,
        1,
        &mut [&mut || drop(black_box(s.verify())), &mut || {
            black_box(s.raw.run());
        }],
    );
    print_mean("verifier, whole room", t[0]);
    print_mean("raw_signatures, whole room", t[1]);
    println!(
        "attestations/s: verifier {:.0}, raw {:.0}",
        DEVICES as f64 / t[0].as_secs_f64(),
        DEVICES as f64 / t[1].as_secs_f64()
    );
    print_ratio("verifier/raw_signatures", t[0], t[1]);
}

criterion_group!(benches, run);

fn run(c: &mut Criterion) {
    let s = Setup::new();
    bench_room(c, &s);
    summary(&s);
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}

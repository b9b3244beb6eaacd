//! A CRL with 100,000 revoked serials: generation (`IssuingCa::crl`:
//! encoding, signing and the self-check decode + signature check), decoding
//! (`Crl::from_der`), and one serial lookup (present / absent).

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{mean_time, print_mean, Fixture};
use criterion::{criterion_group, Criterion, SamplingMode};
use govtrust_pki::RevokedCertificate;
use govtrust_verifier::Crl;
use time::OffsetDateTime;

const REVOKED: usize = 100_000;
const LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

struct Setup {
    fx: Fixture,
    revoked: Vec<RevokedCertificate>,
    der: Vec<u8>,
    crl: Crl,
    present: Vec<u8>,
    absent: Vec<u8>,
}

impl Setup {
    fn new() -> Self {
        let fx = Fixture::new();
        let absent = vec![0x5a; 16];
        let revoked = common::revoked_entries(REVOKED, &absent);
        let der = fx
            .ica
            .crl(&revoked, 1, OffsetDateTime::now_utc(), LIFETIME)
            .unwrap();
        let crl = Crl::from_der(&der).unwrap();
        assert_eq!(crl.len(), REVOKED);
        let present = revoked[REVOKED / 2].serial.clone();
        assert!(crl.lookup(&present).is_some());
        assert!(crl.lookup(&absent).is_none());
        eprintln!("fixture: CRL with {REVOKED} entries, {} B DER", der.len());
        Setup {
            fx,
            revoked,
            der,
            crl,
            present,
            absent,
        }
    }

    fn generate(&self) -> Vec<u8> {
        self.fx
            .ica
            .crl(
                black_box(&self.revoked),
                2,
                OffsetDateTime::now_utc(),
                LIFETIME,
            )
            .unwrap()
    }

    fn decode(&self) -> Crl {
        Crl::from_der(black_box(&self.der)).unwrap()
    }
}

fn bench_crl(c: &mut Criterion, s: &Setup) {
    let mut g = c.benchmark_group("crl_100k");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    g.bench_function("generate", |b| b.iter(|| s.generate()));
    g.bench_function("decode", |b| b.iter(|| s.decode()));
    g.sampling_mode(SamplingMode::Auto)
        .sample_size(100)
        .measurement_time(Duration::from_secs(2));
    g.bench_function("lookup_present", |b| {
        b.iter(|| s.crl.lookup(black_box(&s.present)).is_some())
    });
    g.bench_function("lookup_absent", |b| {
        b.iter(|| s.crl.lookup(black_box(&s.absent)).is_some())
    });
    g.finish();
}

fn summary(s: &Setup) {
    if !common::summary_wanted("crl_100k") {
        return;
    }
    println!("\n== crl summary (std::time::Instant, same run) ==");
    print_mean("crl_100k/generate", mean_time(5, || s.generate()));
    print_mean("crl_100k/decode", mean_time(10, || s.decode()));
    print_mean(
        "crl_100k/lookup_present",
        mean_time(1_000_000, || s.crl.lookup(black_box(&s.present)).is_some()),
    );
    print_mean(
        "crl_100k/lookup_absent",
        mean_time(1_000_000, || s.crl.lookup(black_box(&s.absent)).is_some()),
    );
}

criterion_group!(benches, run);

fn run(c: &mut Criterion) {
    let s = Setup::new();
    bench_crl(c, &s);
    summary(&s);
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}

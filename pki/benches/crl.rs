//! CRL benches.
//!
//! `crl_100k`: a CRL with 100,000 revoked serials: generation
//! (`IssuingCa::crl`: encoding, signing and the self-check decode +
//! signature check), decoding (`Crl::from_der`), and one serial lookup
//! (present / absent).
//!
//! `crl_1m`: a CRL with 1,000,000 revoked serials (random 16-octet serials
//! in random order, as `revoked_entries` makes them), against its baseline
//! in the same run:
//!
//! - `tbs_verify`: ring alone verifies the CRL's signature, i.e. SHA-256
//!   over its TBSCertList plus one ECDSA P-256 verification;
//! - `decode_verify`: `Crl::from_der` plus `Crl::verify_signed_by` (not
//!   memoised: a new `Crl` each time).
//!
//! The summary prints `decode_verify / tbs_verify` and the memory figure:
//! a counting global allocator records the peak of heap bytes in use while
//! `Crl::from_der` runs and what the `Crl` keeps, each against the DER size
//! (the caller's input buffer is not counted; the `Crl`'s own copy of the
//! DER is).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{mean_time, print_mean, print_ratio, Fixture};
use criterion::{criterion_group, Criterion, SamplingMode};
use govtrust_pki::RevokedCertificate;
use govtrust_verifier::Crl;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

const REVOKED: usize = 100_000;
const REVOKED_1M: usize = 1_000_000;
const LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// The system allocator, counting the bytes in use and their peak.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn added(bytes: usize) {
    let now = IN_USE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` with the same arguments; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            added(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            added(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
            added(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result, the peak of heap bytes in use above
/// the level at the start, and the bytes still in use at the end above it.
fn measure_heap<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let base = IN_USE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    let kept = IN_USE.load(Ordering::Relaxed).saturating_sub(base);
    (out, peak, kept)
}

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

/// The 1,000,000-entry CRL, and what ring needs to verify it alone.
struct Million {
    der: Vec<u8>,
    tbs: Vec<u8>,
    signature: Vec<u8>,
    issuer_point: Vec<u8>,
    issuer_spki: Vec<u8>,
}

impl Million {
    fn new(fx: &Fixture) -> Self {
        let absent = vec![0x5a; 16];
        let revoked = common::revoked_entries(REVOKED_1M, &absent);
        let der = fx
            .ica
            .crl(&revoked, 1, OffsetDateTime::now_utc(), LIFETIME)
            .unwrap();
        let (tbs, signature) = {
            let (_, c) = CertificateRevocationList::from_der(&der).unwrap();
            (
                c.tbs_cert_list.as_ref().to_vec(),
                c.signature_value.data.to_vec(),
            )
        };
        let (issuer_point, issuer_spki) = {
            let (_, c) = X509Certificate::from_der(fx.ica.certificate().der()).unwrap();
            (
                c.public_key().subject_public_key.data.to_vec(),
                c.public_key().raw.to_vec(),
            )
        };
        let m = Million {
            der,
            tbs,
            signature,
            issuer_point,
            issuer_spki,
        };
        let crl = m.decode_verify();
        assert_eq!(crl.len(), REVOKED_1M);
        for entry in revoked.iter().step_by(REVOKED_1M / 100) {
            let found = crl.lookup(&entry.serial).unwrap();
            assert_eq!(found.revoked_at, entry.revoked_at.unix_timestamp());
        }
        assert!(crl.lookup(&absent).is_none());
        m.tbs_verify();
        eprintln!(
            "fixture: CRL with {REVOKED_1M} entries, {} B DER, TBS {} B",
            m.der.len(),
            m.tbs.len()
        );
        m
    }

    fn tbs_verify(&self) {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.issuer_point)
            .verify(black_box(&self.tbs), black_box(&self.signature))
            .unwrap();
    }

    fn decode_verify(&self) -> Crl {
        let crl = Crl::from_der(black_box(&self.der)).unwrap();
        crl.verify_signed_by(&self.issuer_spki).unwrap();
        crl
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

fn bench_million(c: &mut Criterion, m: &Million) {
    let mut g = c.benchmark_group("crl_1m");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.bench_function("tbs_verify", |b| b.iter(|| m.tbs_verify()));
    g.bench_function("decode_verify", |b| b.iter(|| m.decode_verify()));
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

fn summary_million(m: &Million) {
    if !common::summary_wanted("crl_1m") {
        return;
    }
    println!("\n== crl_1m summary (std::time::Instant, same run) ==");
    println!("(median of 7 interleaved rounds, 3 calls each)");
    let t = common::interleaved(
        7,
        3,
        &mut [&mut || m.tbs_verify(), &mut || {
            drop(black_box(m.decode_verify()))
        }],
    );
    let (baseline, decode) = (t[0], t[1]);
    print_mean("crl_1m/tbs_verify", baseline);
    print_mean("crl_1m/decode_verify", decode);
    print_ratio("crl_1m/decode_verify/tbs_verify", decode, baseline);
    let (crl, peak, kept) = measure_heap(|| Crl::from_der(&m.der).unwrap());
    let der = m.der.len() as f64;
    println!(
        "memory crl_1m: DER {} B; peak heap during Crl::from_der {} B = {:.2}x DER; \
         kept by the Crl {} B = {:.2}x DER (Crl::heap_bytes {} B)",
        m.der.len(),
        peak,
        peak as f64 / der,
        kept,
        kept as f64 / der,
        crl.heap_bytes()
    );
}

criterion_group!(benches, run);

fn run(c: &mut Criterion) {
    let s = Setup::new();
    if !common::group_filtered_out("crl_100k") {
        bench_crl(c, &s);
        summary(&s);
    }
    if !common::group_filtered_out("crl_1m") {
        let m = Million::new(&s.fx);
        bench_million(c, &m);
        summary_million(&m);
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}

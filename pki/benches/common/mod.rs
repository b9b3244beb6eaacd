//! Shared fixture for the govtrust-pki benches: a P-256 root, a P-256
//! issuing CA under it, one device attestation, and helpers for CRLs and
//! timing summaries.
#![allow(dead_code)] // each bench uses a different subset

use std::time::{Duration, Instant};

use govtrust_pki::der::DistinguishedName;
use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use govtrust_pki::{
    AttestationRequest, IssuedCertificate, IssuingCa, RevocationReason, RevokedCertificate, RootCa,
    Validity,
};
use govtrust_verifier::{AuthorityRecord, DeviceId, Ed25519Key, Expected, Subject, UserId};
use ring::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;

pub const SERVER: &str = "id.bund.example";

pub struct Fixture {
    pub root: RootCa<FileSigner>,
    pub ica: IssuingCa<FileSigner>,
}

impl Fixture {
    pub fn new() -> Self {
        let root = RootCa::create(
            &DistinguishedName::ca("govtrust Bench Root", None).unwrap(),
            FileSigner::generate(KeyAlgorithm::EcdsaP256).unwrap(),
            Validity::from_now(Duration::from_secs(3600 * 24 * 365)),
        )
        .unwrap();
        let ica_key = FileSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let ica_cert = root
            .issue_issuing_ca(
                &DistinguishedName::ca("govtrust Bench Issuing CA", None).unwrap(),
                ica_key.spki_der().to_vec(),
                &[SERVER.to_string()],
                Validity::from_now(Duration::from_secs(3600 * 24 * 100)),
                Some("https://ca.example/root.crl"),
            )
            .unwrap();
        let ica = IssuingCa::load(
            ica_cert,
            root.certificate().der().clone(),
            ica_key,
            Some("https://ca.example/issuing.crl".into()),
        )
        .unwrap();
        Fixture { root, ica }
    }
}

/// A realistic device attestation request.
pub fn device_request() -> AttestationRequest {
    AttestationRequest {
        user_id: UserId::parse(&format!("@meldeamt-neukoelln:{SERVER}")).unwrap(),
        subject: Subject::Device(DeviceId::parse("AGENCYDEV1").unwrap()),
        key: Ed25519Key::from_bytes([9; 32]),
        authority: AuthorityRecord {
            id: "DE-BE-11000000-BA-NK".into(),
            name: "Bezirksamt Neukölln von Berlin, Bürgeramt".into(),
            ..Default::default()
        },
    }
}

pub fn expected_for(request: &AttestationRequest) -> Expected {
    Expected {
        user_id: request.user_id.clone(),
        subject: request.subject.clone(),
        key: request.key,
    }
}

pub fn issue_device(fixture: &Fixture) -> (AttestationRequest, IssuedCertificate) {
    let request = device_request();
    let issued = fixture
        .ica
        .issue_attestation(
            &request,
            Validity::from_now(govtrust_pki::profile::ATTESTATION_VALIDITY),
        )
        .unwrap();
    (request, issued)
}

/// `n` revoked entries with random 16-byte serials (the shape
/// `random_serial` produces), none equal to `avoid`; every fourth entry
/// carries a reason code, as a real CRL mixes both.
pub fn revoked_entries(n: usize, avoid: &[u8]) -> Vec<RevokedCertificate> {
    let rng = SystemRandom::new();
    let now = OffsetDateTime::now_utc();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut serial = vec![0u8; 16];
        rng.fill(&mut serial).unwrap();
        serial[0] = (serial[0] & 0x7f) | 0x40;
        if serial == avoid {
            continue;
        }
        let reason = match out.len() % 4 {
            0 => RevocationReason::KeyCompromise,
            1 => RevocationReason::Superseded,
            _ => RevocationReason::Unspecified,
        };
        out.push(RevokedCertificate {
            serial,
            revoked_at: now - Duration::from_secs(out.len() as u64),
            reason,
        });
    }
    out
}

/// Mean wall time per call of `f` over `iters` calls (after a short warm-up).
pub fn mean_time<T>(iters: u32, mut f: impl FnMut() -> T) -> Duration {
    for _ in 0..iters.div_ceil(10) {
        std::hint::black_box(f());
    }
    let start = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(f());
    }
    start.elapsed() / iters
}

/// Times several functions in interleaved rounds (so that load from other
/// processes hits all of them alike) and returns, per function, the median
/// of its per-round mean times: `rounds * iters` calls each in total.
pub fn interleaved(rounds: u32, iters: u32, fns: &mut [&mut dyn FnMut()]) -> Vec<Duration> {
    interleaved_calls(rounds, iters, fns.len(), |i| {
        let start = Instant::now();
        fns[i]();
        start.elapsed()
    })
}

/// As [`interleaved`], for functions that time themselves: each call
/// returns how long its measured part took, so that what it prepares (an
/// input buffer to hand over) or drops stays out of the figure.
pub fn interleaved_timed(
    rounds: u32,
    iters: u32,
    fns: &mut [&mut dyn FnMut() -> Duration],
) -> Vec<Duration> {
    interleaved_calls(rounds, iters, fns.len(), |i| fns[i]())
}

/// The rounds of [`interleaved`]: `call(i)` runs function `i` once and
/// returns its time.
fn interleaved_calls(
    rounds: u32,
    iters: u32,
    n: usize,
    mut call: impl FnMut(usize) -> Duration,
) -> Vec<Duration> {
    let mut per_round: Vec<Vec<Duration>> = vec![Vec::new(); n];
    for i in 0..n {
        for _ in 0..iters.div_ceil(10) {
            call(i);
        }
    }
    for _ in 0..rounds {
        for (i, times) in per_round.iter_mut().enumerate() {
            let total: Duration = (0..iters).map(|_| call(i)).sum();
            times.push(total / iters);
        }
    }
    per_round
        .into_iter()
        .map(|mut t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect()
}

pub fn print_ratio(name: &str, numerator: Duration, denominator: Duration) {
    println!(
        "ratio {name} = {:.2}x   ({:.1} µs / {:.1} µs)",
        numerator.as_secs_f64() / denominator.as_secs_f64(),
        numerator.as_secs_f64() * 1e6,
        denominator.as_secs_f64() * 1e6,
    );
}

pub fn print_mean(name: &str, d: Duration) {
    println!("mean {name} = {:.3} µs", d.as_secs_f64() * 1e6);
}

/// Whether to run the `Instant`-based summary for `group`: only under
/// `cargo bench` (criterion gets `--bench`; `cargo test --benches` does not
/// pass it), and not when a name filter excludes the group.
pub fn summary_wanted(group: &str) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        return false;
    }
    let filters = filters();
    filters.is_empty()
        || filters
            .iter()
            .any(|f| group.contains(f.as_str()) || f.starts_with(group))
}

/// Whether criterion's positional name filters exclude every benchmark of
/// `group` (to skip building a fixture no benchmark will use).
pub fn group_filtered_out(group: &str) -> bool {
    let filters = filters();
    !filters.is_empty()
        && !filters
            .iter()
            .any(|f| group.contains(f.as_str()) || f.starts_with(group))
}

/// Criterion's positional arguments (name filters): neither options nor
/// the values of the options that take one (`--measurement-time 3`).
fn filters() -> Vec<String> {
    const WITH_VALUE: &[&str] = &[
        "--warm-up-time",
        "--measurement-time",
        "--sample-size",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--profile-time",
        "--plotting-backend",
        "--output-format",
        "--color",
        "--format",
        "--logfile",
    ];
    let mut out = Vec::new();
    let mut skip_next = false;
    for arg in std::env::args().skip(1) {
        if std::mem::take(&mut skip_next) {
            continue;
        }
        if arg.starts_with('-') {
            skip_next = WITH_VALUE.contains(&arg.as_str());
        } else {
            out.push(arg);
        }
    }
    out
}

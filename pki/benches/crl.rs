//! CRL benches.
//!
//! `crl_100k`: a CRL with 100,000 revoked serials: generation
//! (`IssuingCa::crl`: encoding, signing and the self-check decode +
//! signature check), decoding (`Crl::from_der`), and one serial lookup
//! (present / absent).
//!
//! `crl_1m`: CRLs with 1,000,000 revoked serials (random 16-octet
//! serials, as `revoked_entries` makes them), each against its baseline in
//! the same run:
//!
//! - govtrust's own (`IssuingCa::crl`), whose entries its CA writes sorted
//!   by serial, so the decoder finds them sorted and skips its sort;
//! - `unsorted`: the same revocations in random order, as another CA may
//!   list them, encoded here with yasna and signed with a key of the bench
//!   (not by govtrust's CRL code), so the decoder sorts its index.
//!
//! For each, `tbs_verify` is ring alone verifying the CRL's signature, i.e.
//! SHA-256 over its TBSCertList plus one ECDSA P-256 verification;
//! `decode_verify` is `Crl::from_der` of a slice (the `Crl` copies it) plus
//! `Crl::verify_signed_by` (not memoised: a new `Crl` each time); and
//! `owned/decode_verify` the same from a `Vec` handed over, as a client
//! holds a CRL it downloaded (the `Crl` keeps that buffer; making the
//! buffer and dropping the `Crl` are not timed).
//!
//! The summary prints both ratios to `tbs_verify` for both CRLs and the
//! memory figures: a counting global allocator records the peak of heap
//! bytes in use while `Crl::from_der` runs and what the `Crl` keeps, each
//! against the DER size (the caller's input slice is not counted, the
//! `Crl`'s copy of it is; a buffer handed over is counted in what the
//! `Crl` keeps, not in the peak).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{mean_time, print_mean, print_ratio, Fixture};
use criterion::{criterion_group, BatchSize, Criterion, SamplingMode};
use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use govtrust_pki::{RevocationReason, RevokedCertificate};
use govtrust_verifier::Crl;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;
use yasna::models::ObjectIdentifier;

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

/// A 1,000,000-entry CRL, and what ring needs to verify it alone.
struct Million {
    der: Vec<u8>,
    tbs: Vec<u8>,
    signature: Vec<u8>,
    issuer_point: Vec<u8>,
    issuer_spki: Vec<u8>,
}

impl Million {
    /// govtrust's CRL of `revoked` (entries sorted by its CA) and the same
    /// revocations in the order given, from another encoder.
    fn both(fx: &Fixture) -> (Self, Self) {
        let absent = vec![0x5a; 16];
        let revoked = common::revoked_entries(REVOKED_1M, &absent);
        let der = fx
            .ica
            .crl(&revoked, 1, OffsetDateTime::now_utc(), LIFETIME)
            .unwrap();
        let (_, ica) = X509Certificate::from_der(fx.ica.certificate().der()).unwrap();
        let sorted = Million::new(der, ica.public_key().raw.to_vec(), &revoked, &absent);
        assert!(is_sorted(&sorted.der), "govtrust writes its entries sorted");
        let signer = FileSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let der = foreign_crl(&signer, fx.ica.certificate().subject_der(), &revoked);
        let unsorted = Million::new(der, signer.spki_der().to_vec(), &revoked, &absent);
        assert!(!is_sorted(&unsorted.der), "random order");
        (sorted, unsorted)
    }

    fn new(
        der: Vec<u8>,
        issuer_spki: Vec<u8>,
        revoked: &[RevokedCertificate],
        absent: &[u8],
    ) -> Self {
        let (tbs, signature) = {
            let (_, c) = CertificateRevocationList::from_der(&der).unwrap();
            (
                c.tbs_cert_list.as_ref().to_vec(),
                c.signature_value.data.to_vec(),
            )
        };
        let (_, spki) = SubjectPublicKeyInfo::from_der(&issuer_spki).unwrap();
        let m = Million {
            der,
            tbs,
            signature,
            issuer_point: spki.subject_public_key.data.to_vec(),
            issuer_spki,
        };
        let crl = m.decode_verify();
        assert_eq!(crl.len(), REVOKED_1M);
        for entry in revoked.iter().step_by(REVOKED_1M / 100) {
            let found = crl.lookup(&entry.serial).unwrap();
            assert_eq!(found.revoked_at, entry.revoked_at.unix_timestamp());
        }
        assert!(crl.lookup(absent).is_none());
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

    /// As `decode_verify`, from a buffer handed over (`Crl::from_der` of a `Vec`).
    fn decode_verify_owned(&self, der: Vec<u8>) -> Crl {
        let crl = Crl::from_der(black_box(der)).unwrap();
        crl.verify_signed_by(&self.issuer_spki).unwrap();
        crl
    }

    /// One `decode_verify_owned`, timed without making its input buffer (a
    /// copy of the DER, as a download would leave it) or dropping the `Crl`.
    fn timed_owned(&self) -> Duration {
        let der = self.der.clone();
        let start = Instant::now();
        let crl = self.decode_verify_owned(der);
        let took = start.elapsed();
        drop(black_box(crl));
        took
    }
}

/// Whether the CRL's serials (DER INTEGER content octets) increase.
fn is_sorted(der: &[u8]) -> bool {
    let (_, crl) = CertificateRevocationList::from_der(der).unwrap();
    let serials: Vec<&[u8]> = crl
        .iter_revoked_certificates()
        .map(|e| e.raw_serial())
        .collect();
    serials.windows(2).all(|w| w[0] < w[1])
}

/// A CRL of `revoked` in the order given, as a CA other than govtrust's
/// might write it (version 2, the CRL number as its one extension, a
/// reasonCode on entries that have a reason), signed by `signer`.
fn foreign_crl(signer: &FileSigner, issuer: &[u8], revoked: &[RevokedCertificate]) -> Vec<u8> {
    const CRL_NUMBER: [u64; 4] = [2, 5, 29, 20];
    const REASON_CODE: [u64; 4] = [2, 5, 29, 21];
    let utc = |t: OffsetDateTime| {
        let t = t.to_offset(time::UtcOffset::UTC);
        format!(
            "{:02}{:02}{:02}{:02}{:02}{:02}Z",
            t.year() % 100,
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    };
    // UTCTime (tag 23), 13 octets.
    let write_utc = |w: yasna::DERWriter<'_>, t: OffsetDateTime| {
        w.write_der(&[b"\x17\x0d", utc(t).as_bytes()].concat())
    };
    let now = OffsetDateTime::now_utc();
    let tbs = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(1);
            w.next()
                .write_der(signer.algorithm().signature_algorithm_der());
            w.next().write_der(issuer);
            write_utc(w.next(), now);
            write_utc(w.next(), now + LIFETIME);
            w.next().write_sequence_of(|w| {
                for entry in revoked {
                    w.next().write_sequence(|w| {
                        w.next().write_bigint_bytes(&entry.serial, true);
                        write_utc(w.next(), entry.revoked_at);
                        if entry.reason != RevocationReason::Unspecified {
                            w.next().write_sequence(|w| {
                                w.next().write_sequence(|w| {
                                    w.next()
                                        .write_oid(&ObjectIdentifier::from_slice(&REASON_CODE));
                                    w.next().write_bytes(&yasna::construct_der(|w| {
                                        w.write_enum(entry.reason as i64)
                                    }));
                                })
                            });
                        }
                    });
                }
            });
            w.next().write_tagged(yasna::Tag::context(0), |w| {
                w.write_sequence(|w| {
                    w.next().write_sequence(|w| {
                        w.next()
                            .write_oid(&ObjectIdentifier::from_slice(&CRL_NUMBER));
                        w.next()
                            .write_bytes(&yasna::construct_der(|w| w.write_u64(1)));
                    })
                })
            });
        })
    });
    let signature = signer.sign(&tbs).unwrap();
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&tbs);
            w.next()
                .write_der(signer.algorithm().signature_algorithm_der());
            w.next().write_bitvec_bytes(&signature, signature.len() * 8);
        })
    })
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

fn bench_million(c: &mut Criterion, sorted: &Million, unsorted: &Million) {
    let mut g = c.benchmark_group("crl_1m");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.bench_function("tbs_verify", |b| b.iter(|| sorted.tbs_verify()));
    g.bench_function("decode_verify", |b| b.iter(|| sorted.decode_verify()));
    g.bench_function("owned/decode_verify", |b| {
        b.iter_batched(
            || sorted.der.clone(),
            |der| sorted.decode_verify_owned(der),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("unsorted/tbs_verify", |b| b.iter(|| unsorted.tbs_verify()));
    g.bench_function("unsorted/decode_verify", |b| {
        b.iter(|| unsorted.decode_verify())
    });
    g.bench_function("unsorted/owned/decode_verify", |b| {
        b.iter_batched(
            || unsorted.der.clone(),
            |der| unsorted.decode_verify_owned(der),
            BatchSize::PerIteration,
        )
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

fn summary_million(sorted: &Million, unsorted: &Million) {
    if !common::summary_wanted("crl_1m") {
        return;
    }
    println!("\n== crl_1m summary (std::time::Instant, same run) ==");
    println!("(median of 7 interleaved rounds, 3 calls each)");
    let untimed = |f: &dyn Fn()| {
        let start = Instant::now();
        f();
        start.elapsed()
    };
    let t = common::interleaved_timed(
        7,
        3,
        &mut [
            &mut || untimed(&|| sorted.tbs_verify()),
            &mut || untimed(&|| drop(black_box(sorted.decode_verify()))),
            &mut || sorted.timed_owned(),
            &mut || untimed(&|| unsorted.tbs_verify()),
            &mut || untimed(&|| drop(black_box(unsorted.decode_verify()))),
            &mut || unsorted.timed_owned(),
        ],
    );
    for (name, m, baseline, decode, owned) in [
        ("crl_1m", sorted, t[0], t[1], t[2]),
        ("crl_1m/unsorted", unsorted, t[3], t[4], t[5]),
    ] {
        print_mean(&format!("{name}/tbs_verify"), baseline);
        print_mean(&format!("{name}/decode_verify"), decode);
        print_mean(&format!("{name}/owned/decode_verify"), owned);
        print_ratio(
            &format!("{name}/decode_verify/tbs_verify"),
            decode,
            baseline,
        );
        print_ratio(
            &format!("{name}/owned/decode_verify/tbs_verify"),
            owned,
            baseline,
        );
        let (crl, peak, kept) = measure_heap(|| Crl::from_der(&m.der).unwrap());
        let der = m.der.len() as f64;
        println!(
            "memory {name}: DER {} B; peak heap during Crl::from_der {} B = {:.2}x DER; \
             kept by the Crl {} B = {:.2}x DER (Crl::heap_bytes {} B)",
            m.der.len(),
            peak,
            peak as f64 / der,
            kept,
            kept as f64 / der,
            crl.heap_bytes()
        );
        let input = m.der.clone();
        let (crl, peak, _) = measure_heap(|| Crl::from_der(input).unwrap());
        println!(
            "memory {name}/owned: peak heap during Crl::from_der(Vec) beyond the buffer handed \
             over {} B = {:.2}x DER; the Crl with that buffer {} B = {:.2}x DER",
            peak,
            peak as f64 / der,
            crl.heap_bytes(),
            crl.heap_bytes() as f64 / der
        );
    }
}

criterion_group!(benches, run);

fn run(c: &mut Criterion) {
    let s = Setup::new();
    if !common::group_filtered_out("crl_100k") {
        bench_crl(c, &s);
        summary(&s);
    }
    if !common::group_filtered_out("crl_1m") {
        let (sorted, unsorted) = Million::both(&s.fx);
        bench_million(c, &sorted, &unsorted);
        summary_million(&sorted, &unsorted);
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}

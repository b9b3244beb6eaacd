//! Client-side cost of verifying one device attestation, against the raw
//! ECDSA P-256 verifications it cannot avoid.
//!
//! Setup: root -> issuing CA -> device attestation (all P-256), an issuing-CA
//! CRL with 10,000 revoked entries (not the leaf) and an empty root CRL,
//! `CrlPolicy::REQUIRE_FRESH`.
//!
//! - `raw_2sig`: ring verifies the leaf and the issuing-CA signatures.
//! - `verify_warm`: `Verifier::verify` with a `CrlSet` built once (a client
//!   caches CRLs until nextUpdate; their signatures are checked once and
//!   memoised).
//! - `raw_4sig_cold`: the two certificate signatures plus both CRL signatures
//!   over their TBS.
//! - `verify_cold`: decode both CRLs, build the `CrlSet` and verify, per
//!   iteration.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{expected_for, issue_device, print_mean, print_ratio, Fixture};
use criterion::{criterion_group, Criterion, SamplingMode};
use govtrust_verifier::path::{validate_path, PathOptions};
use govtrust_verifier::signature::PROFILE_ALGORITHMS;
use govtrust_verifier::{Crl, CrlPolicy, CrlSet, TrustAnchors, UnixTime, Verifier};
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

const REVOKED: usize = 10_000;

/// One signed object as ring sees it.
struct RawSig {
    tbs: Vec<u8>,
    sig: Vec<u8>,
    issuer_point: Vec<u8>,
}

impl RawSig {
    fn verify(&self) {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.issuer_point)
            .verify(black_box(&self.tbs), black_box(&self.sig))
            .unwrap();
    }
}

fn point(cert_der: &[u8]) -> Vec<u8> {
    let (_, c) = X509Certificate::from_der(cert_der).unwrap();
    c.public_key().subject_public_key.data.to_vec()
}

fn cert_sig(der: &[u8], issuer_der: &[u8]) -> RawSig {
    let (_, c) = X509Certificate::from_der(der).unwrap();
    RawSig {
        tbs: c.tbs_certificate.as_ref().to_vec(),
        sig: c.signature_value.data.to_vec(),
        issuer_point: point(issuer_der),
    }
}

fn crl_sig(der: &[u8], issuer_der: &[u8]) -> RawSig {
    let (_, c) = CertificateRevocationList::from_der(der).unwrap();
    RawSig {
        tbs: c.tbs_cert_list.as_ref().to_vec(),
        sig: c.signature_value.data.to_vec(),
        issuer_point: point(issuer_der),
    }
}

struct Setup {
    verifier: Verifier,
    expected: govtrust_verifier::Expected,
    chain: Vec<govtrust_verifier::CertificateDer<'static>>,
    ica_crl: Vec<u8>,
    root_crl: Vec<u8>,
    warm_crls: CrlSet,
    now: UnixTime,
    root_der: govtrust_verifier::CertificateDer<'static>,
    ica_spki: Vec<u8>,
    leaf: RawSig,
    ica: RawSig,
    ica_crl_sig: RawSig,
    root_crl_sig: RawSig,
}

impl Setup {
    fn new() -> Self {
        let fx = Fixture::new();
        let (request, issued) = issue_device(&fx);
        let now_dt = time::OffsetDateTime::now_utc();
        let lifetime = Duration::from_secs(24 * 3600);
        let revoked = common::revoked_entries(REVOKED, &issued.serial);
        let ica_crl = fx.ica.crl(&revoked, 7, now_dt, lifetime).unwrap();
        let root_crl = fx.root.crl(&[], 3, now_dt, lifetime).unwrap();
        let root_der = fx.root.certificate().der().clone();
        let ica_der = fx.ica.certificate().der().clone();
        let verifier = Verifier::new(
            TrustAnchors::from_der([root_der.clone()]).unwrap(),
            CrlPolicy::REQUIRE_FRESH,
        );
        let s = Setup {
            leaf: cert_sig(&issued.chain[0], &ica_der),
            ica: cert_sig(&ica_der, &root_der),
            ica_crl_sig: crl_sig(&ica_crl, &ica_der),
            root_crl_sig: crl_sig(&root_crl, &root_der),
            warm_crls: build_crls(&ica_crl, &root_crl),
            expected: expected_for(&request),
            chain: issued.chain,
            ica_crl,
            root_crl,
            verifier,
            now: UnixTime::now(),
            ica_spki: X509Certificate::from_der(&ica_der)
                .unwrap()
                .1
                .public_key()
                .raw
                .to_vec(),
            root_der,
        };
        // Sanity: every variant succeeds, and the CRL really has the entries.
        s.verify_warm();
        s.verify_cold();
        s.raw_cold();
        assert_eq!(s.warm_crls.iter().map(Crl::len).sum::<usize>(), REVOKED);
        eprintln!(
            "fixture: leaf {} B, issuing CA {} B, issuing-CA CRL {} B ({} entries, TBS {} B), root CRL {} B",
            s.chain[0].len(),
            s.chain[1].len(),
            s.ica_crl.len(),
            REVOKED,
            s.ica_crl_sig.tbs.len(),
            s.root_crl.len()
        );
        s
    }

    fn raw_2sig(&self) {
        self.leaf.verify();
        self.ica.verify();
    }

    fn raw_cold(&self) {
        self.leaf.verify();
        self.ica.verify();
        self.ica_crl_sig.verify();
        self.root_crl_sig.verify();
    }

    fn verify_warm(&self) -> govtrust_verifier::VerifiedAttestation {
        self.verifier
            .verify(
                black_box(&self.expected),
                black_box(&self.chain),
                &self.warm_crls,
                self.now,
            )
            .unwrap()
    }

    fn verify_cold(&self) -> govtrust_verifier::VerifiedAttestation {
        let crls = build_crls(black_box(&self.ica_crl), black_box(&self.root_crl));
        self.verifier
            .verify(
                black_box(&self.expected),
                black_box(&self.chain),
                &crls,
                self.now,
            )
            .unwrap()
    }
}

fn build_crls(ica_crl: &[u8], root_crl: &[u8]) -> CrlSet {
    [
        Crl::from_der(ica_crl).unwrap(),
        Crl::from_der(root_crl).unwrap(),
    ]
    .into_iter()
    .collect()
}

fn bench_verify(c: &mut Criterion, s: &Setup) {
    let mut g = c.benchmark_group("verify");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.bench_function("raw_2sig", |b| b.iter(|| s.raw_2sig()));
    g.bench_function("verify_warm", |b| b.iter(|| s.verify_warm()));
    g.bench_function("raw_4sig_cold", |b| b.iter(|| s.raw_cold()));
    g.sampling_mode(SamplingMode::Flat).sample_size(20);
    g.bench_function("verify_cold", |b| b.iter(|| s.verify_cold()));
    g.finish();
}

fn summary(s: &Setup) {
    if !common::summary_wanted("verify") {
        return;
    }
    println!("\n== verify summary (std::time::Instant, same run) ==");
    println!("(median of 10 interleaved rounds; 2,000 calls each warm, 100 cold)");
    let t = common::interleaved(
        10,
        200,
        &mut [&mut || s.raw_2sig(), &mut || {
            drop(black_box(s.verify_warm()))
        }],
    );
    let (raw2, warm) = (t[0], t[1]);
    let t = common::interleaved(
        10,
        10,
        &mut [&mut || s.raw_cold(), &mut || {
            drop(black_box(s.verify_cold()))
        }],
    );
    let (raw4, cold) = (t[0], t[1]);
    print_mean("raw_2sig", raw2);
    print_mean("verify_warm", warm);
    print_mean("raw_4sig_cold", raw4);
    print_mean("verify_cold", cold);
    print_ratio("verify_warm/raw_2sig", warm, raw2);
    print_ratio("verify_cold/raw_4sig_cold", cold, raw4);
    breakdown(s);
}

/// Where the verifier's time goes, part by part (interleaved with the totals
/// so that they share the same load; the parts overlap rather than sum).
fn breakdown(s: &Setup) {
    println!("-- breakdown (median of 10 interleaved rounds) --");
    let anchors = TrustAnchors::from_der([s.root_der.clone()]).unwrap();
    let path = |crls: &CrlSet, policy: CrlPolicy| {
        validate_path(
            &anchors,
            &s.chain[0],
            &s.chain[1..],
            &PathOptions {
                algorithms: PROFILE_ALGORITHMS,
                eku: Some(s.expected.subject.eku()),
                time: s.now,
                crls,
                crl_policy: policy,
            },
        )
        .unwrap()
    };
    let no_crls = CrlSet::new();
    let parse = |der: &[u8]| X509Certificate::from_der(black_box(der)).unwrap().1.version;
    let warm_names = [
        "raw_2sig",
        "x509-parser parse of the leaf",
        "x509-parser parse of the issuing CA",
        "validate_path, no CRLs, ALLOW_MISSING (webpki + 2 sigs + CRL plumbing)",
        "validate_path, warm CRLs, REQUIRE_FRESH",
        "Verifier::verify, warm CRLs",
    ];
    let warm = common::interleaved(
        10,
        200,
        &mut [
            &mut || s.raw_2sig(),
            &mut || {
                black_box(parse(&s.chain[0]));
            },
            &mut || {
                black_box(parse(&s.chain[1]));
            },
            &mut || {
                black_box(path(&no_crls, CrlPolicy::ALLOW_MISSING));
            },
            &mut || {
                black_box(path(&s.warm_crls, CrlPolicy::REQUIRE_FRESH));
            },
            &mut || {
                black_box(s.verify_warm());
            },
        ],
    );
    for (name, d) in warm_names.iter().zip(warm) {
        print_mean(name, d);
    }
    let cold_names = [
        "ring verify of the 10k CRL (SHA-256 over its TBS + ECDSA)",
        "x509-parser CertificateRevocationList::from_der (10k)",
        "Crl::from_der (10k)",
        "Crl::from_der + verify_signed_by (10k, not memoised yet)",
        "Verifier::verify, cold (decode both CRLs + verify)",
    ];
    let cold = common::interleaved(
        10,
        10,
        &mut [
            &mut || s.ica_crl_sig.verify(),
            &mut || {
                let (_, crl) = CertificateRevocationList::from_der(black_box(&s.ica_crl)).unwrap();
                black_box(crl.tbs_cert_list.revoked_certificates.len());
            },
            &mut || {
                black_box(Crl::from_der(black_box(&s.ica_crl)).unwrap());
            },
            &mut || {
                let crl = Crl::from_der(black_box(&s.ica_crl)).unwrap();
                crl.verify_signed_by(&s.ica_spki).unwrap();
                black_box(crl);
            },
            &mut || {
                black_box(s.verify_cold());
            },
        ],
    );
    for (name, d) in cold_names.iter().zip(cold) {
        print_mean(name, d);
    }
}

criterion_group!(benches, run);

fn run(c: &mut Criterion) {
    let s = Setup::new();
    bench_verify(c, &s);
    summary(&s);
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}

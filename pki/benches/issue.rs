//! CA-side cost of issuing one device attestation with the file signer
//! (P-256), against one raw ECDSA P-256 signature.
//!
//! `IssuingCa::issue_attestation` encodes the certificate, signs it, and then
//! runs the client verifier over the result (two more signature checks), so
//! `raw_sign_2verify` is listed too: the cryptography that path cannot avoid.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{device_request, print_mean, print_ratio, Fixture};
use criterion::{criterion_group, Criterion};
use govtrust_pki::profile::ATTESTATION_VALIDITY;
use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use govtrust_pki::{AttestationRequest, IssuedCertificate, Validity};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1,
    ECDSA_P256_SHA256_ASN1_SIGNING,
};

struct Setup {
    fx: Fixture,
    request: AttestationRequest,
    key: EcdsaKeyPair,
    rng: SystemRandom,
    message: Vec<u8>,
    signature: Vec<u8>,
}

impl Setup {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let fx = Fixture::new();
        let request = device_request();
        let issued = fx
            .ica
            .issue_attestation(&request, Validity::from_now(ATTESTATION_VALIDITY))
            .unwrap();
        eprintln!(
            "fixture: attestation certificate {} B",
            issued.chain[0].len()
        );
        // About the size of an attestation's TBSCertificate.
        let message: Vec<u8> = (0..500u32).map(|i| i as u8).collect();
        let signature = key.sign(&rng, &message).unwrap().as_ref().to_vec();
        // Also check the file signer signs what ring verifies.
        let file = FileSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let sig = file.sign(&message).unwrap();
        UnparsedPublicKey::new(
            &ECDSA_P256_SHA256_ASN1,
            &file.spki_der()[file.spki_der().len() - 65..],
        )
        .verify(&message, &sig)
        .unwrap();
        Setup {
            fx,
            request,
            key,
            rng,
            message,
            signature,
        }
    }

    fn issue(&self) -> IssuedCertificate {
        self.fx
            .ica
            .issue_attestation(
                black_box(&self.request),
                Validity::from_now(ATTESTATION_VALIDITY),
            )
            .unwrap()
    }

    fn raw_sign(&self) -> ring::signature::Signature {
        self.key.sign(&self.rng, black_box(&self.message)).unwrap()
    }

    fn raw_verify(&self) {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, self.key.public_key().as_ref())
            .verify(black_box(&self.message), black_box(&self.signature))
            .unwrap();
    }

    fn raw_sign_2verify(&self) {
        black_box(self.raw_sign());
        self.raw_verify();
        self.raw_verify();
    }
}

fn bench_issue(c: &mut Criterion, s: &Setup) {
    let mut g = c.benchmark_group("issue");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.bench_function("raw_sign", |b| b.iter(|| s.raw_sign()));
    g.bench_function("raw_sign_2verify", |b| b.iter(|| s.raw_sign_2verify()));
    g.bench_function("issue_attestation", |b| b.iter(|| s.issue()));
    g.finish();
}

fn summary(s: &Setup) {
    if !common::summary_wanted("issue") {
        return;
    }
    println!("\n== issue summary (std::time::Instant, same run) ==");
    println!("(median of 10 interleaved rounds, 2,000 calls each)");
    let t = common::interleaved(
        10,
        200,
        &mut [
            &mut || {
                black_box(s.raw_sign());
            },
            &mut || s.raw_sign_2verify(),
            &mut || {
                black_box(s.issue());
            },
        ],
    );
    let (sign, sign_verify, issue) = (t[0], t[1], t[2]);
    print_mean("raw_sign", sign);
    print_mean("raw_sign_2verify", sign_verify);
    print_mean("issue_attestation", issue);
    print_ratio("issue_attestation/raw_sign", issue, sign);
    print_ratio("issue_attestation/raw_sign_2verify", issue, sign_verify);
}

criterion_group!(benches, run);

fn run(c: &mut Criterion) {
    let s = Setup::new();
    bench_issue(c, &s);
    summary(&s);
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}

//! The verifier's issuing-CA memo changes no verdict.
//!
//! A `Verifier` remembers each issuing-CA certificate (byte for byte) it
//! has fully validated, so later chains through it cost only the leaf's
//! signature plus the per-call checks. Each test here warms a verifier
//! with a valid chain (accepted, issuing CA remembered), then presents a
//! chain through the same issuing-CA certificate that violates one rule
//! checked on every call, and asserts that
//!
//! - a fresh verifier (empty memo) rejects it with the expected reason,
//! - the warmed verifier rejects it with exactly the same error, and
//! - the warmed verifier did consult the memo (a hit), so the rule was
//!   checked on the short path and not only by a cold full validation.
//!
//! Because the short path never rejects (it falls back to the full
//! validation), skipping a per-call check on a memo hit would turn these
//! rejections into acceptances. The remaining tests show that the memo is
//! keyed on the exact certificate bytes, the required EKU and the verifier,
//! and a loop compares warmed and fresh verdicts over a mix of good and bad
//! chains, times, CRL sets and policies.
//!
//! Certificates are signed once per test (ECDSA signatures are randomised,
//! and the memo is keyed on the exact DER).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use govtrust_pki::der::{ext, DistinguishedName};
use govtrust_pki::profile;
use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use govtrust_pki::template::CertificateTemplate;
use govtrust_pki::{RevocationReason, RevokedCertificate, RootCa};
use govtrust_verifier::oid::EKU_DEVICE_ATTESTATION;
use govtrust_verifier::{
    CertificateDer, Crl, CrlPolicy, CrlSet, Error, Expected, IssuerMemoStats, PathPosition,
    TrustAnchors, UnixTime, UserId, VerifiedAttestation, Verifier,
};
use time::OffsetDateTime;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// One verification's inputs (the verifier's anchors and policy aside).
#[derive(Clone)]
struct Input {
    expected: Expected,
    chain: Vec<CertificateDer<'static>>,
    crls: Vec<Vec<u8>>,
    time: UnixTime,
}

impl Input {
    /// The baseline device attestation under the fixture's issuing CA, with
    /// fresh CRLs of both CAs, at the fixture's `now`.
    fn baseline(fx: &Fixture) -> Self {
        Input::device(
            fx,
            fx.ica.certificate().der().clone(),
            leaf(fx, fx.leaf_validity()),
        )
    }

    fn device(fx: &Fixture, ica: CertificateDer<'static>, leaf: CertificateDer<'static>) -> Self {
        Input {
            expected: fx.device_scenario().expected,
            chain: vec![leaf, ica],
            crls: vec![fx.ica_crl.clone(), fx.root_crl.clone()],
            time: unix(fx.now),
        }
    }

    fn at(mut self, t: OffsetDateTime) -> Self {
        self.time = unix(t);
        self
    }

    fn with_crls(mut self, crls: Vec<Vec<u8>>) -> Self {
        self.crls = crls;
        self
    }

    fn crl_set(&self) -> CrlSet {
        self.crls
            .iter()
            .map(|der| Crl::from_der(der).expect("CRL decodes"))
            .collect()
    }

    fn run(&self, verifier: &Verifier) -> Result<VerifiedAttestation, Error> {
        verifier.verify(&self.expected, &self.chain, &self.crl_set(), self.time)
    }
}

fn verifier_for(anchors: &[&CertificateDer<'static>], policy: CrlPolicy) -> Verifier {
    Verifier::new(
        TrustAnchors::from_der(anchors.iter().map(|a| (*a).clone())).expect("anchors"),
        policy,
    )
}

/// A verifier pinning the fixture's root under REQUIRE_FRESH.
fn verifier(fx: &Fixture) -> Verifier {
    verifier_for(&[fx.root.certificate().der()], CrlPolicy::REQUIRE_FRESH)
}

/// The baseline device leaf with `validity`, signed by the issuing CA's key.
fn leaf(fx: &Fixture, validity: govtrust_pki::Validity) -> CertificateDer<'static> {
    leaf_template(fx, validity)
        .sign(&*fx.ica_signer)
        .expect("sign leaf")
}

fn leaf_template(fx: &Fixture, validity: govtrust_pki::Validity) -> CertificateTemplate {
    profile::attestation(&fx.device_request(), &fx.ica_info, validity, Some(CRL_URL))
        .expect("leaf template")
}

/// A long-lived leaf: valid from three days before `now` to two days after.
fn long_validity(fx: &Fixture) -> govtrust_pki::Validity {
    govtrust_pki::Validity {
        not_before: fx.now - 3 * DAY,
        not_after: fx.now + 2 * DAY,
    }
}

/// An issuing-CA certificate from the fixture's template, changed by
/// `edit`, signed by the root (once: the bytes are what the memo keys on).
fn ica_variant(
    fx: &Fixture,
    edit: impl FnOnce(&mut CertificateTemplate),
) -> CertificateDer<'static> {
    let mut t = fx.ica_template.clone();
    edit(&mut t);
    t.sign(&*fx.root_signer).expect("sign issuing CA")
}

fn revoked(serial: &[u8], fx: &Fixture) -> RevokedCertificate {
    RevokedCertificate {
        serial: serial.to_vec(),
        revoked_at: fx.now - Duration::from_secs(1800),
        reason: RevocationReason::KeyCompromise,
    }
}

fn serial_of(der: &[u8]) -> Vec<u8> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).expect("certificate");
    cert.raw_serial().to_vec()
}

/// Warms `verifier` with `warm` (must be accepted, leaving the issuing CA
/// remembered), then asserts that `probe` is rejected with `code` both by
/// a fresh verifier with the same anchors and by the warmed one, with the
/// same error, and that the warmed verifier consulted the memo.
fn rejected_after_warmup(
    make: impl Fn() -> Verifier,
    warm: &Input,
    probe: &Input,
    code: &str,
) -> Error {
    let warmed = make();
    warm.run(&warmed).expect("the warm-up chain is accepted");
    let before = warmed.issuer_memo_stats();
    assert!(
        before.entries >= 1,
        "warm-up remembered nothing: {before:?}"
    );
    // The memo really is used for the warm-up chain itself.
    warm.run(&warmed)
        .expect("the warm-up chain is accepted again");
    let after_rerun = warmed.issuer_memo_stats();
    assert_eq!(
        after_rerun.hits,
        before.hits + 1,
        "no memo hit on the rerun"
    );
    assert_eq!(after_rerun.fallbacks, before.fallbacks);

    let cold = probe
        .run(&make())
        .expect_err("a fresh verifier rejects the probe");
    assert_eq!(cold.code(), code, "fresh verifier: {cold:?}");
    let warm_err = probe
        .run(&warmed)
        .expect_err("the warmed verifier rejects the probe");
    assert_eq!(warm_err, cold, "warmed and fresh verifiers disagree");
    let after = warmed.issuer_memo_stats();
    assert_eq!(
        after.hits,
        after_rerun.hits + 1,
        "the probe did not hit the memo"
    );
    assert_eq!(after.fallbacks, after_rerun.fallbacks + 1);
    cold
}

#[test]
fn memo_hit_gives_the_same_verdict_as_full_validation() {
    let fx = fixture();
    let input = Input::baseline(fx);
    let fresh = input.run(&verifier(fx)).expect("baseline accepted");
    let warmed = verifier(fx);
    assert_eq!(warmed.issuer_memo_stats(), IssuerMemoStats::default());
    assert_eq!(input.run(&warmed).expect("first call"), fresh);
    assert_eq!(
        warmed.issuer_memo_stats(),
        IssuerMemoStats {
            entries: 1,
            hits: 0,
            fallbacks: 0,
            fast_leaf_reads: 0,
        }
    );
    for _ in 0..3 {
        assert_eq!(input.run(&warmed).expect("memo hit"), fresh);
    }
    assert_eq!(
        warmed.issuer_memo_stats(),
        IssuerMemoStats {
            entries: 1,
            hits: 3,
            fallbacks: 0,
            // govtrust's own leaves: read without x509-parser.
            fast_leaf_reads: 3,
        }
    );
    // And through the event API.
    let content = fx.device_scenario().content();
    let mut content = content;
    content.chain = input.chain.iter().map(|c| base64(c)).collect();
    let from_event = warmed
        .verify_event(
            &input.expected,
            content.to_json().as_bytes(),
            &input.crl_set(),
            input.time,
        )
        .expect("event accepted");
    assert_eq!(from_event, fresh);
    assert_eq!(warmed.issuer_memo_stats().hits, 4);
}

/// Per call: the issuing CA's notAfter (the leaf outlives the CA here, so
/// the CA's validity is the only rule broken).
#[test]
fn issuing_ca_expired_at_a_later_time() {
    let fx = fixture();
    let ca_end = fx.now + 2 * HOUR;
    let ica = ica_variant(fx, |t| t.not_after = ca_end);
    let warm = Input::device(fx, ica, leaf(fx, long_validity(fx)));
    // At notAfter itself the CA is still valid, with and without the memo.
    let at_end = warm.clone().at(ca_end);
    assert!(at_end.run(&verifier(fx)).is_ok());
    let v = verifier(fx);
    warm.run(&v).expect("warm-up");
    assert!(at_end.run(&v).is_ok(), "valid at notAfter on a memo hit");

    let probe = warm.clone().at(ca_end + Duration::from_secs(1));
    let e = rejected_after_warmup(|| verifier(fx), &warm, &probe, "expired");
    assert_eq!(e, Error::Expired);
    let probe = warm.clone().at(fx.now + 3 * HOUR);
    rejected_after_warmup(|| verifier(fx), &warm, &probe, "expired");
}

/// Per call: the issuing CA's notBefore.
#[test]
fn issuing_ca_not_yet_valid_at_an_earlier_time() {
    let fx = fixture();
    let ica = fx.ica.certificate().der().clone();
    let ca_start = fx.ica_template.not_before;
    let warm = Input::device(fx, ica, leaf(fx, long_validity(fx)));
    let v = verifier(fx);
    warm.run(&v).expect("warm-up");
    assert!(warm.clone().at(ca_start).run(&v).is_ok());
    let probe = warm.clone().at(ca_start - Duration::from_secs(1));
    let e = rejected_after_warmup(|| verifier(fx), &warm, &probe, "not_yet_valid");
    assert_eq!(e, Error::NotYetValid);
}

/// Per call: the pinned root's own validity period (here the root expires
/// long before the issuing CA and the leaf it vouches for).
#[test]
fn root_expired_at_a_later_time() {
    let fx = fixture();
    let root_end = fx.now + 3 * HOUR;
    let root_signer = Arc::new(FileSigner::generate(KeyAlgorithm::EcdsaP256).expect("key"));
    let root = RootCa::create(
        &DistinguishedName::ca("govtrust Short-lived Root", None).unwrap(),
        root_signer.clone(),
        govtrust_pki::Validity {
            not_before: fx.now - 2 * DAY,
            not_after: root_end,
        },
    )
    .expect("root");
    let mut t = fx.ica_template.clone();
    reparent(
        &mut t,
        &issuer_info(
            root.certificate().subject_der(),
            &*root_signer,
            root.certificate().not_after(),
        ),
    );
    let ica = t.sign(&*root_signer).expect("sign issuing CA");
    let root_crl = root
        .crl(&[], 1, fx.now - CRL_AGE, CRL_LIFETIME)
        .expect("root CRL");
    let warm = Input::device(fx, ica, leaf(fx, long_validity(fx)))
        .with_crls(vec![fx.ica_crl.clone(), root_crl]);
    let make = || verifier_for(&[root.certificate().der()], CrlPolicy::REQUIRE_FRESH);
    let v = make();
    warm.run(&v).expect("warm-up");
    assert!(warm.clone().at(root_end).run(&v).is_ok());
    let probe = warm.clone().at(root_end + Duration::from_secs(1));
    rejected_after_warmup(make, &warm, &probe, "expired");
}

/// Path building never takes a CA as the issuer of a certificate with the
/// CA's own subject and key (RFC 4158 loop rule in rustls-webpki), so the
/// short path must not either: a "leaf" that repeats its remembered issuing
/// CA's name and (Ed25519) key and is signed by that key.
#[test]
fn leaf_repeating_the_issuing_cas_name_and_key() {
    let fx = fixture();
    let key = Arc::new(FileSigner::generate(KeyAlgorithm::Ed25519).expect("key"));
    let raw: [u8; 32] = key.spki_der()[12..].try_into().expect("32 bytes");
    let name = DistinguishedName::from_authority(&fx.authority)
        .unwrap()
        .to_der();
    // An issuing CA named like the leaves' authority, with an Ed25519 key.
    let mut t = fx.ica_template.clone();
    t.subject = name.clone();
    set_spki(&mut t, key.spki_der().to_vec());
    let ica = t.sign(&*fx.root_signer).expect("sign issuing CA");
    let info = issuer_info(&name, &*key, t.not_after);
    let ica_crl = sign_crl(&*key, &name, &[], fx.now - CRL_AGE, CRL_LIFETIME);
    let crls = vec![ica_crl, fx.root_crl.clone()];

    let device_leaf = profile::attestation(&fx.device_request(), &info, fx.leaf_validity(), None)
        .unwrap()
        .sign(&*key)
        .unwrap();
    let warm = Input::device(fx, ica.clone(), device_leaf).with_crls(crls.clone());

    let mut request = fx.device_request();
    request.key = govtrust_verifier::Ed25519Key::from_bytes(raw);
    let looped = profile::attestation(&request, &info, fx.leaf_validity(), None)
        .unwrap()
        .sign(&*key)
        .unwrap();
    let mut probe = Input::device(fx, ica, looped).with_crls(crls);
    probe.expected.key = request.key;
    let e = rejected_after_warmup(|| verifier(fx), &warm, &probe, "unknown_issuer");
    assert_eq!(e, Error::UnknownIssuer);
}

/// Per call: the issuing CA against the root's CRL.
#[test]
fn issuing_ca_revoked_in_a_later_root_crl() {
    let fx = fixture();
    let warm = Input::baseline(fx);
    let root_crl = fx.root_crl_with(
        &[revoked(&fx.ica_template.serial, fx)],
        fx.now - CRL_AGE,
        CRL_LIFETIME,
    );
    let probe = warm.clone().with_crls(vec![fx.ica_crl.clone(), root_crl]);
    let e = rejected_after_warmup(|| verifier(fx), &warm, &probe, "issuer_revoked");
    assert_eq!(
        e,
        Error::Revoked {
            position: PathPosition::Issuer
        }
    );
}

/// Per call: the leaf against the issuing CA's CRL.
#[test]
fn leaf_revoked_after_warmup() {
    let fx = fixture();
    let warm = Input::baseline(fx);
    let serial = serial_of(&warm.chain[0]);
    let ica_crl = fx.ica_crl_with(&[revoked(&serial, fx)], fx.now - CRL_AGE, CRL_LIFETIME);
    let probe = warm.clone().with_crls(vec![ica_crl, fx.root_crl.clone()]);
    let e = rejected_after_warmup(|| verifier(fx), &warm, &probe, "revoked");
    assert_eq!(
        e,
        Error::Revoked {
            position: PathPosition::Leaf
        }
    );
    // A stale CRL still proves revocation, under ALLOW_MISSING too.
    let stale = fx.ica_crl_with(&[revoked(&serial, fx)], fx.now - 3 * CRL_AGE, CRL_AGE);
    let probe = warm.clone().with_crls(vec![stale, fx.root_crl.clone()]);
    let lenient = || verifier_for(&[fx.root.certificate().der()], CrlPolicy::ALLOW_MISSING);
    rejected_after_warmup(lenient, &warm, &probe, "revoked");
}

/// Per call: CRL freshness (nextUpdate and max_age) and presence, for both
/// the leaf's and the issuing CA's issuer.
#[test]
fn stale_or_missing_crls_after_warmup() {
    let fx = fixture();
    let long = Input::device(
        fx,
        fx.ica.certificate().der().clone(),
        leaf(fx, long_validity(fx)),
    );
    let next_update = fx.now - CRL_AGE + CRL_LIFETIME;
    // Both CRLs past nextUpdate: the leaf's is checked first.
    let probe = long.clone().at(next_update + Duration::from_secs(1));
    let e = rejected_after_warmup(|| verifier(fx), &long, &probe, "crl_stale");
    assert_eq!(
        e,
        Error::CrlStale {
            position: PathPosition::Leaf
        }
    );
    // Only the root's CRL stale.
    let stale_root = fx.root_crl_with(&[], fx.now - 3 * CRL_AGE, CRL_AGE);
    let probe = long.clone().with_crls(vec![fx.ica_crl.clone(), stale_root]);
    let e = rejected_after_warmup(|| verifier(fx), &long, &probe, "crl_stale");
    assert_eq!(
        e,
        Error::CrlStale {
            position: PathPosition::Issuer
        }
    );
    // Only the issuing CA's CRL stale.
    let stale_ica = fx.ica_crl_with(&[], fx.now - 3 * CRL_AGE, CRL_AGE);
    let probe = long.clone().with_crls(vec![stale_ica, fx.root_crl.clone()]);
    rejected_after_warmup(|| verifier(fx), &long, &probe, "crl_stale");
    // Older than the policy's max_age.
    let strict = || {
        verifier_for(
            &[fx.root.certificate().der()],
            CrlPolicy {
                require: true,
                max_age: Some(CRL_AGE + Duration::from_secs(600)),
            },
        )
    };
    let probe = long.clone().at(fx.now + HOUR);
    rejected_after_warmup(strict, &long, &probe, "crl_stale");
    // No CRL from the root.
    let probe = long.clone().with_crls(vec![fx.ica_crl.clone()]);
    let e = rejected_after_warmup(|| verifier(fx), &long, &probe, "crl_missing");
    assert_eq!(
        e,
        Error::CrlMissing {
            position: PathPosition::Issuer
        }
    );
    // A CRL claiming to be the issuing CA's, signed by the impostor.
    let impostor_crl = fx
        .impostor_ica
        .crl(&[], 1, fx.now - CRL_AGE, CRL_LIFETIME)
        .expect("impostor CRL");
    let probe = long
        .clone()
        .with_crls(vec![impostor_crl, fx.root_crl.clone()]);
    rejected_after_warmup(|| verifier(fx), &long, &probe, "crl_wrong_issuer");
}

/// Per call: the leaf's signature by the remembered issuing CA's key. The
/// leaf names the issuing CA (issuer and authority key ID) but is signed by
/// another key.
#[test]
fn leaf_signed_by_another_key_under_the_remembered_issuing_ca() {
    let fx = fixture();
    let warm = Input::baseline(fx);
    let forged = leaf_template(fx, fx.leaf_validity())
        .sign(&*fx.sub_ca_signer)
        .expect("sign");
    let probe = Input::device(fx, fx.ica.certificate().der().clone(), forged);
    rejected_after_warmup(|| verifier(fx), &warm, &probe, "bad_signature");
    // And a flipped bit in an otherwise genuine leaf signature.
    let mut tampered = warm.chain[0].to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    let probe = Input::device(fx, fx.ica.certificate().der().clone(), tampered.into());
    rejected_after_warmup(|| verifier(fx), &warm, &probe, "bad_signature");
}

/// Per call: everything about the leaf and the expectation.
#[test]
fn leaf_rules_after_warmup() {
    let fx = fixture();
    let warm = Input::baseline(fx);
    let ica = fx.ica.certificate().der().clone();
    // The leaf expired.
    let probe = warm
        .clone()
        .at(fx.now + LEAF_HALF_LIFE + Duration::from_secs(1));
    rejected_after_warmup(|| verifier(fx), &warm, &probe, "expired");
    // The leaf is a CA for rustls-webpki (basicConstraints cA, key usage
    // left to the profile): rejected by the profile first either way.
    let mut t = leaf_template(fx, fx.leaf_validity());
    set_ext(&mut t, ext::basic_constraints(true, None));
    let probe = Input::device(fx, ica.clone(), t.sign(&*fx.ica_signer).unwrap());
    let fresh = probe.run(&verifier(fx)).unwrap_err();
    let v = verifier(fx);
    warm.run(&v).unwrap();
    assert_eq!(probe.run(&v).unwrap_err(), fresh);
    assert_eq!(fresh.code(), "leaf_is_ca");
    // The user's server is not one the issuing CA may certify.
    let mut t = leaf_template(fx, fx.leaf_validity());
    set_ext(
        &mut t,
        ext::subject_alt_name_uris(&["matrix:u/office:other.example"]),
    );
    let mut probe = Input::device(fx, ica.clone(), t.sign(&*fx.ica_signer).unwrap());
    probe.expected.user_id = UserId::parse("@office:other.example").unwrap();
    rejected_after_warmup(|| verifier(fx), &warm, &probe, "server_not_permitted");
    // A leaf with a critical extension rustls-webpki does not know.
    let mut t = leaf_template(fx, fx.leaf_validity());
    t.extensions.push(ext::raw(
        &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xb2, 0x03, 0x01],
        true,
        vec![0x05, 0x00],
    ));
    let probe = Input::device(fx, ica.clone(), t.sign(&*fx.ica_signer).unwrap());
    rejected_after_warmup(
        || verifier(fx),
        &warm,
        &probe,
        "unsupported_critical_extension",
    );
    // The leaf's EKU lacks the device EKU (the profile rejects it first).
    let mut t = leaf_template(fx, fx.leaf_validity());
    set_ext(&mut t, ext::extended_key_usage(&[oids::SERVER_AUTH]));
    let probe = Input::device(fx, ica, t.sign(&*fx.ica_signer).unwrap());
    assert_eq!(probe.run(&v).unwrap_err().code(), "wrong_eku");
}

/// The memo is keyed on the issuing CA's exact bytes: a CA with the same
/// name but another key (under an unpinned root), or the same certificate
/// with a corrupted signature, is not taken for the remembered one.
#[test]
fn another_issuing_ca_certificate_is_not_taken_for_the_remembered_one() {
    let fx = fixture();
    let warm = Input::baseline(fx);
    let v = verifier(fx);
    warm.run(&v).expect("warm-up");
    let remembered = v.issuer_memo_stats();

    // Same subject, other key, issued by the other (unpinned) root.
    let issued = fx
        .impostor_ica
        .issue_attestation(&fx.device_request(), fx.leaf_validity())
        .expect("impostor attestation");
    let probe = Input {
        chain: issued.chain.clone(),
        ..warm.clone()
    };
    let fresh = probe.run(&verifier(fx)).unwrap_err();
    assert_eq!(fresh.code(), "unknown_issuer");
    assert_eq!(probe.run(&v).unwrap_err(), fresh);
    // The impostor with a leaf the real CA signed, too.
    let probe = Input {
        chain: vec![warm.chain[0].clone(), issued.chain[1].clone()],
        ..warm.clone()
    };
    let fresh = probe.run(&verifier(fx)).unwrap_err();
    assert_eq!(probe.run(&v).unwrap_err(), fresh);

    // The remembered certificate with one bit of its signature flipped:
    // same name, key and TBS, other bytes.
    let mut ica = fx.ica.certificate().der().to_vec();
    let last = ica.len() - 1;
    ica[last] ^= 0x01;
    let probe = Input::device(fx, ica.into(), warm.chain[0].clone());
    let fresh = probe.run(&verifier(fx)).unwrap_err();
    assert_eq!(fresh.code(), "bad_signature");
    assert_eq!(probe.run(&v).unwrap_err(), fresh);

    // None of these was a hit, and none was remembered.
    assert_eq!(v.issuer_memo_stats(), remembered);

    // The same issuing CA re-signed by the root (new signature, new bytes)
    // is valid, and remembered as a certificate of its own.
    let resigned = ica_variant(fx, |_| {});
    assert_ne!(resigned.as_ref(), fx.ica.certificate().der().as_ref());
    let probe = Input::device(fx, resigned, warm.chain[0].clone());
    probe.run(&v).expect("re-signed issuing CA accepted");
    let stats = v.issuer_memo_stats();
    assert_eq!((stats.entries, stats.hits), (2, remembered.hits));
}

/// The memo belongs to one verifier: another verifier (other anchors, or
/// the same ones) starts empty, and one pinning only another root rejects
/// the chain the first one remembered.
#[test]
fn a_verifier_with_other_anchors_does_not_share_the_memo() {
    let fx = fixture();
    let warm = Input::baseline(fx);
    let v = verifier(fx);
    warm.run(&v).expect("warm-up");
    warm.run(&v).expect("hit");
    assert_eq!(v.issuer_memo_stats().hits, 1);

    let other = verifier_for(
        &[fx.other_root.certificate().der()],
        CrlPolicy::REQUIRE_FRESH,
    );
    let e = warm.run(&other).unwrap_err();
    assert_eq!(e.code(), "unknown_issuer");
    assert_eq!(other.issuer_memo_stats(), IssuerMemoStats::default());

    // Without the root's CRL to give a shared memo away: under
    // ALLOW_MISSING, with only the issuing CA's CRL.
    let lenient = |root: &CertificateDer<'static>| verifier_for(&[root], CrlPolicy::ALLOW_MISSING);
    let no_root_crl = warm.clone().with_crls(vec![fx.ica_crl.clone()]);
    let ours = lenient(fx.root.certificate().der());
    no_root_crl.run(&ours).expect("warm-up");
    no_root_crl.run(&ours).expect("hit");
    let theirs = lenient(fx.other_root.certificate().der());
    assert_eq!(
        no_root_crl.run(&theirs).unwrap_err().code(),
        "unknown_issuer"
    );

    // Pinning the impostor's root as well as ours: its own memo, its own
    // full validation first.
    let both = verifier_for(
        &[
            fx.other_root.certificate().der(),
            fx.root.certificate().der(),
        ],
        CrlPolicy::REQUIRE_FRESH,
    );
    warm.run(&both).expect("accepted via our root");
    assert_eq!(
        both.issuer_memo_stats(),
        IssuerMemoStats {
            entries: 1,
            hits: 0,
            fallbacks: 0,
            fast_leaf_reads: 0,
        }
    );
}

/// The memo is keyed on the required EKU: an issuing CA remembered for
/// device attestations is not taken as allowed to issue identity
/// attestations.
#[test]
fn the_memo_is_per_required_eku() {
    let fx = fixture();
    let device_only = ica_variant(fx, |t| {
        set_ext(t, ext::extended_key_usage(&[EKU_DEVICE_ATTESTATION]))
    });
    let warm = Input::device(fx, device_only.clone(), leaf(fx, fx.leaf_validity()));
    let v = verifier(fx);
    warm.run(&v).expect("device attestation accepted");
    let stats = v.issuer_memo_stats();

    let identity = fx.identity_scenario();
    let leaf = identity.leaf.sign(&*fx.ica_signer).expect("sign");
    let probe = Input {
        expected: identity.expected.clone(),
        chain: vec![leaf, device_only],
        ..warm.clone()
    };
    let fresh = probe.run(&verifier(fx)).unwrap_err();
    assert_eq!(fresh.code(), "issuer_eku_missing");
    assert_eq!(probe.run(&v).unwrap_err(), fresh);
    assert_eq!(v.issuer_memo_stats(), stats, "no hit across EKUs");

    // A CA allowed both kinds is remembered for each once it validated it.
    let warm_identity = Input {
        expected: identity.expected.clone(),
        chain: vec![
            identity.leaf.sign(&*fx.ica_signer).expect("sign"),
            fx.ica.certificate().der().clone(),
        ],
        ..warm.clone()
    };
    let v = verifier(fx);
    Input::baseline(fx).run(&v).expect("device");
    warm_identity.run(&v).expect("identity, full validation");
    warm_identity.run(&v).expect("identity, memo");
    Input::baseline(fx).run(&v).expect("device, memo");
    let s = v.issuer_memo_stats();
    assert_eq!((s.entries, s.hits, s.fallbacks), (1, 2, 0));
}

/// The memo is bounded.
#[test]
fn the_memo_is_bounded() {
    let fx = fixture();
    let v = verifier(fx);
    let leaf = leaf(fx, fx.leaf_validity());
    for _ in 0..govtrust_verifier::MAX_REMEMBERED_ISSUERS + 5 {
        let ica = ica_variant(fx, |_| {});
        Input::device(fx, ica, leaf.clone())
            .run(&v)
            .expect("accepted");
    }
    assert_eq!(
        v.issuer_memo_stats().entries,
        govtrust_verifier::MAX_REMEMBERED_ISSUERS
    );
}

/// Warmed and fresh verifiers agree on every combination of a few issuing
/// CAs, leaves, times and CRL sets, under two policies, visited in a
/// scrambled order so that memo hits meet good and bad chains alike.
#[test]
fn warmed_and_fresh_verifiers_agree_on_a_mix() {
    let fx = fixture();
    let ca_end = fx.now + 2 * HOUR;
    let real = fx.ica.certificate().der().clone();
    let mut corrupted = real.to_vec();
    let last = corrupted.len() - 1;
    corrupted[last] ^= 0x01;
    let impostor_issued = fx
        .impostor_ica
        .issue_attestation(&fx.device_request(), fx.leaf_validity())
        .expect("impostor attestation");
    let icas: Vec<CertificateDer<'static>> = vec![
        real.clone(),
        ica_variant(fx, |t| t.not_after = ca_end),
        ica_variant(fx, |t| {
            set_ext(t, ext::extended_key_usage(&[EKU_DEVICE_ATTESTATION]))
        }),
        ica_variant(fx, |t| {
            set_ext(
                t,
                ext::permitted_servers(&["matrix.bund.example".to_owned()]),
            )
        }),
        impostor_issued.chain[1].clone(),
        corrupted.into(),
    ];

    let device = fx.device_scenario().expected;
    let identity = fx.identity_scenario();
    let mut matrix_user = leaf_template(fx, long_validity(fx));
    set_ext(
        &mut matrix_user,
        ext::subject_alt_name_uris(&["matrix:u/office:matrix.bund.example"]),
    );
    let mut matrix_expected = device.clone();
    matrix_expected.user_id = UserId::parse("@office:matrix.bund.example").unwrap();
    let mut identity_long = identity.leaf.clone();
    identity_long.not_before = fx.now - 3 * DAY;
    identity_long.not_after = fx.now + 2 * DAY;
    let revoked_leaf = leaf_template(fx, long_validity(fx));
    let revoked_serial = revoked_leaf.serial.clone();
    let leaves: Vec<(Expected, CertificateDer<'static>)> = vec![
        (device.clone(), leaf(fx, fx.leaf_validity())),
        (device.clone(), leaf(fx, long_validity(fx))),
        (device.clone(), revoked_leaf.sign(&*fx.ica_signer).unwrap()),
        (
            device.clone(),
            leaf_template(fx, long_validity(fx))
                .sign(&*fx.sub_ca_signer)
                .unwrap(),
        ),
        (matrix_expected, matrix_user.sign(&*fx.ica_signer).unwrap()),
        (
            identity.expected.clone(),
            identity_long.sign(&*fx.ica_signer).unwrap(),
        ),
        (device.clone(), impostor_issued.chain[0].clone()),
    ];

    let times = [
        fx.now,
        fx.now + Duration::from_secs(90 * 60),
        ca_end,
        ca_end + Duration::from_secs(1),
        fx.ica_template.not_before - Duration::from_secs(1),
        fx.now - CRL_AGE + CRL_LIFETIME + Duration::from_secs(1),
    ];
    let fresh_crls = vec![fx.ica_crl.clone(), fx.root_crl.clone()];
    let crl_sets = [
        fresh_crls.clone(),
        vec![
            fx.ica_crl_with(
                &[revoked(&revoked_serial, fx)],
                fx.now - CRL_AGE,
                CRL_LIFETIME,
            ),
            fx.root_crl.clone(),
        ],
        vec![
            fx.ica_crl.clone(),
            fx.root_crl_with(
                &[revoked(&fx.ica_template.serial, fx)],
                fx.now - CRL_AGE,
                CRL_LIFETIME,
            ),
        ],
        vec![
            fx.ica_crl_with(&[], fx.now - 3 * CRL_AGE, CRL_AGE),
            fx.root_crl.clone(),
        ],
        vec![fx.ica_crl.clone()],
    ];

    let mut inputs = Vec::new();
    for ica in &icas {
        for (expected, leaf) in &leaves {
            for time in times {
                for crls in &crl_sets {
                    inputs.push(Input {
                        expected: expected.clone(),
                        chain: vec![leaf.clone(), ica.clone()],
                        crls: crls.clone(),
                        time: unix(time),
                    });
                }
            }
        }
    }
    // A scrambled but reproducible order (multiplicative step coprime to
    // the length).
    let n = inputs.len();
    let step = (1..n)
        .rev()
        .find(|s| gcd(*s, n) == 1 && *s < n / 3)
        .unwrap_or(1);

    for policy in [CrlPolicy::REQUIRE_FRESH, CrlPolicy::ALLOW_MISSING] {
        let anchors = [fx.root.certificate().der()];
        let warmed = verifier_for(&anchors, policy);
        let (mut accepted, mut rejected) = (0, 0);
        for i in 0..n {
            let input = &inputs[(i * step) % n];
            let cold = input.run(&verifier_for(&anchors, policy));
            let warm = input.run(&warmed);
            assert_eq!(warm, cold, "case {} under {policy:?}", (i * step) % n);
            match cold {
                Ok(_) => accepted += 1,
                Err(_) => rejected += 1,
            }
        }
        let s = warmed.issuer_memo_stats();
        println!("{policy:?}: {n} chains, {accepted} accepted, {rejected} rejected; memo {s:?}");
        assert!(accepted > 20 && rejected > 20);
        assert!(s.entries >= 3, "{s:?}");
        assert!(s.hits - s.fallbacks > 20, "memo accepts: {s:?}");
        assert!(s.fallbacks > 20, "memo fallbacks: {s:?}");
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

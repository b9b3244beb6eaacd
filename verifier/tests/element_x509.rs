//! `io.element.x509` against matrix-rust-sdk's own vector (test_cms.pem, see
//! tests/data/element-x509/SOURCE.txt): the profile parser reads it as
//! Element's parser does, the PEM and DER encodings round-trip byte for
//! byte, and a govtrust verifier pinned to the govtrust root refuses it.
//!
//! Issuance, signing and every mutation of a govtrust signature are in
//! pki/tests/element_x509.rs (they need the issuer).

use std::time::Duration;

use govtrust_verifier::element_x509::{
    key_id_for, parse_cms_der, parse_cms_pem, GovtrustRawX509Verifier, RawX509Signature,
    RawX509Verifier, X509SignatureScheme, PEM_LABEL,
};
use govtrust_verifier::{CrlPolicy, CrlSet, ElementX509Verifier, TrustAnchors, UnixTime, UserId};
use x509_parser::prelude::{FromDer, X509Certificate};

const TEST_CMS: &str = include_str!("data/element-x509/test_cms.pem");
const GOVTRUST_ROOT: &[u8] = include_bytes!("../../certs-example/ca/root/cert.pem");
/// The user the matrix-rust-sdk signer tests use; the leaf's emailAddress.
const VDH: &str = "@vdh-x509test:sw1v.org";
/// SKI of the leaf (the signer) and of the intermediate, from SOURCE.txt.
const LEAF_SKI: [u8; 20] = [
    0x8c, 0x89, 0x04, 0x1c, 0x1e, 0x0e, 0x88, 0xc5, 0xf7, 0xe0, 0xf2, 0x59, 0x27, 0x00, 0xad, 0x70,
    0x63, 0x8d, 0x9f, 0x8c,
];
const INTERMEDIATE_AKI_OF_ROOT: [u8; 20] = [
    0xd8, 0x5e, 0x91, 0x9a, 0x17, 0xf0, 0xc3, 0x5b, 0x13, 0xdb, 0x75, 0x42, 0x7d, 0x21, 0x37, 0x9a,
    0xdf, 0x3e, 0x96, 0x11,
];
/// Inside the validity of both certificates (2026-06-11 .. 2027-06-05).
fn during_validity() -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(1_790_000_000))
}

fn subject(der: &[u8]) -> String {
    let (_, cert) = X509Certificate::from_der(der).expect("certificate");
    cert.subject().to_string()
}

#[test]
fn element_vector_parses_under_the_profile() {
    let cms = parse_cms_pem(TEST_CMS).expect("test_cms.pem follows the profile");
    assert_eq!(cms.scheme, X509SignatureScheme::RsaPssSha512);
    assert_eq!(cms.signature.len(), 256);
    assert_eq!(cms.signer_key_id, LEAF_SKI);
    assert_eq!(cms.chain.len(), 2);
    assert_eq!(subject(&cms.chain[0]), "Email=vdh-x509test@sw1v.org");
    assert_eq!(
        subject(&cms.chain[1]),
        "C=UK, ST=London, O=element.io, CN=intermediate-ca"
    );
    // The key ID Element publishes it under (SOURCE.txt).
    assert_eq!(
        key_id_for(&INTERMEDIATE_AKI_OF_ROOT),
        "io.element.x509:2F6Rmhfww1sT23VCfSE3mt8+lhE"
    );

    let raw = RawX509Signature::from_cms(&cms);
    assert_eq!(raw.signature_bytes, cms.signature);
    assert!(raw
        .certificate_chain
        .starts_with("-----BEGIN CERTIFICATE-----\r\n"));
    assert_eq!(
        raw.certificate_chain.matches("BEGIN CERTIFICATE").count(),
        2
    );
}

/// The encoders the pki emitter uses reproduce Element's bytes: the DER
/// ContentInfo re-encodes identically through the cms types, and the PEM
/// armour (label CMS, 64 columns, LF, one trailing newline) is identical.
#[test]
fn element_vector_round_trips_byte_for_byte() {
    use der::{Decode, Encode};
    let (label, der_bytes) = der::pem::decode_vec(TEST_CMS.as_bytes()).expect("PEM");
    assert_eq!(label, PEM_LABEL);
    let info = cms::content_info::ContentInfo::from_der(&der_bytes).expect("ContentInfo");
    assert_eq!(info.to_der().expect("encode"), der_bytes);
    // The raw-certificate SignedData (what the pki emitter encodes with)
    // re-encodes Element's bytes identically too.
    let raw: govtrust_verifier::element_x509::SignedDataRawCerts =
        info.content.decode_as().expect("SignedData");
    assert_eq!(
        govtrust_verifier::element_x509::content_info_der(&raw).expect("encode"),
        der_bytes
    );
    let pem = der::pem::encode_string(PEM_LABEL, der::pem::LineEnding::LF, &der_bytes)
        .expect("PEM encode");
    assert_eq!(pem, TEST_CMS);
    assert_eq!(
        parse_cms_der(&der_bytes).expect("DER form"),
        parse_cms_pem(TEST_CMS).expect("PEM form")
    );
}

#[test]
fn element_vector_is_refused_against_the_govtrust_root() {
    let verifier = ElementX509Verifier::new(
        TrustAnchors::from_pem(GOVTRUST_ROOT).expect("govtrust root"),
        CrlPolicy::ALLOW_MISSING,
    );
    let user = UserId::parse(VDH).expect("user");
    // The detached content is unknown (SOURCE.txt); the chain is refused
    // before the signature is looked at.
    let err = verifier
        .verify_signature(
            &user,
            "io.element.x509:2F6Rmhfww1sT23VCfSE3mt8+lhE",
            b"{}",
            TEST_CMS,
            &CrlSet::new(),
            during_validity(),
        )
        .expect_err("another PKI's signature");
    assert_eq!(err.code(), "unknown_issuer", "{err}");

    // The same through a master key object carrying it.
    let master = serde_json::json!({
        "user_id": VDH,
        "usage": ["master"],
        "keys": {"ed25519:JHYImDOnLr9/HGI0mXSUzeszaaGlE++8P+k7/rrobE8":
                 "JHYImDOnLr9/HGI0mXSUzeszaaGlE++8P+k7/rrobE8"},
        "signatures": {VDH: {"io.element.x509:2F6Rmhfww1sT23VCfSE3mt8+lhE": TEST_CMS}},
    });
    let err = verifier
        .verify_master_key(
            &user,
            master.to_string().as_bytes(),
            &CrlSet::new(),
            during_validity(),
        )
        .expect_err("another PKI's signature");
    assert_eq!(err.code(), "unknown_issuer", "{err}");

    // And through the matrix-rust-sdk adapter shape.
    let adapter = GovtrustRawX509Verifier::new(ElementX509Verifier::new(
        TrustAnchors::from_pem(GOVTRUST_ROOT).expect("govtrust root"),
        CrlPolicy::ALLOW_MISSING,
    ))
    .at_time(during_validity());
    let raw = RawX509Signature::from_cms(&parse_cms_pem(TEST_CMS).expect("parse"));
    let message = serde_json::json!({"user_id": VDH, "usage": ["master"]}).to_string();
    assert!(!adapter.verify(message.as_bytes(), &raw));
    assert_eq!(
        adapter
            .verify_detailed(message.as_bytes(), &raw)
            .map_err(|e| e.code()),
        Err("unknown_issuer")
    );
}

#[test]
fn element_vector_with_its_own_intermediate_pinned_is_still_refused() {
    // Even pinning Element's intermediate as a root does not make the
    // vector a govtrust identity signature: its certificates are signed
    // with RSA PKCS#1 (outside the profile) and the leaf has no EKU, SAN or
    // authority record.
    let cms = parse_cms_pem(TEST_CMS).expect("parse");
    let verifier = ElementX509Verifier::new(
        TrustAnchors::from_der([cms.chain[1].clone()]).expect("pin the intermediate"),
        CrlPolicy::ALLOW_MISSING,
    );
    let err = verifier
        .verify_signer(
            &UserId::parse(VDH).expect("user"),
            &cms.chain,
            &cms.signature,
            b"{}",
            &CrlSet::new(),
            during_validity(),
        )
        .expect_err("not the govtrust profile");
    assert_eq!(err.code(), "unsupported_algorithm", "{err}");
}

//! The x509-limbo suite (C2SP/x509-limbo `limbo.json`, 135 cases).

use govtrust_verifier::path::{validate_path, PathOptions, TrustAnchors};
use govtrust_verifier::signature::EXTENDED_ALGORITHMS;
use govtrust_verifier::{pem, CrlPolicy, CrlSet, Error};
use serde::Deserialize;

use super::common::{parse_utc, read, Exceptions, Expect, Tally};

pub const SUITE: &str = "x509-limbo";

/// Used when a case gives no validation time (the schema then means "now").
/// Every such certificate is valid from 1970 to 2969 (apart from the one
/// deliberately expired in 1988), so a fixed instant keeps runs
/// reproducible: the snapshot's commit date.
const DEFAULT_TIME: &str = "2023-12-02T00:00:00Z";

/// rustls-webpki's fixed bound on intermediates; the path layer has no
/// `max_chain_depth` input.
const WEBPKI_MAX_SUB_CA_COUNT: u64 = 6;

#[derive(Deserialize)]
struct Limbo {
    version: u32,
    testcases: Vec<Case>,
}

/// The fields of a limbo test case the harness reads. `key_usage` (a
/// constraint on the leaf's key usage, set in two cases whose verdicts do
/// not depend on it) is not a path-layer input and is ignored, like the
/// informational `features` and `description`.
#[derive(Deserialize)]
struct Case {
    id: String,
    validation_kind: String,
    trusted_certs: Vec<String>,
    untrusted_intermediates: Vec<String>,
    peer_certificate: String,
    validation_time: Option<String>,
    signature_algorithms: Option<Vec<String>>,
    extended_key_usage: Option<Vec<String>>,
    expected_result: String,
    max_chain_depth: Option<u64>,
}

/// Cases whose verdict rests on matching the expected peer name (DNS/IP)
/// against the leaf's SAN/CN. The path layer takes no peer name: govtrust
/// binds a certificate to a Matrix user by an exact `matrix:` URI check in
/// the profile layer, never by DNS/IP matching.
const PEER_NAME_MATCHING: &[&str] = &[
    "webpki::san::mismatch-domain-san",
    "webpki::san::mismatch-subdomain-san",
    "webpki::san::mismatch-subdomain-apex-san",
    "webpki::san::mismatch-apex-subdomain-san",
    "webpki::san::public-suffix-wildcard-san",
    "webpki::san::wildcard-embedded-leftmost-san",
    "webpki::san::wildcard-not-in-leftmost-san",
    "webpki::san::wildcard-match-across-labels-san",
    "webpki::san::wildcard-embedded-ulabel-san",
    "webpki::san::unicode-emoji-san",
    "webpki::san::no-san",
];

/// Why a case is not run, if it is not.
fn skip_reason(case: &Case) -> Option<&'static str> {
    if case.validation_kind != "SERVER" {
        return Some("validation kind other than SERVER");
    }
    if PEER_NAME_MATCHING.contains(&case.id.as_str()) {
        return Some("verdict rests on DNS/IP peer-name matching (not a path-layer input)");
    }
    if case
        .max_chain_depth
        .is_some_and(|depth| depth < WEBPKI_MAX_SUB_CA_COUNT)
    {
        return Some("caller-chosen max_chain_depth (not a path-layer input)");
    }
    if case.signature_algorithms.is_some() {
        return Some("caller-chosen signature algorithm list");
    }
    if case
        .extended_key_usage
        .as_ref()
        .is_some_and(|ekus| ekus.len() > 1 || eku_oid(&ekus[0]).is_none())
    {
        return Some("EKU constraint the harness cannot express");
    }
    None
}

/// DER content octets of a known EKU purpose.
fn eku_oid(name: &str) -> Option<&'static [u8]> {
    Some(match name {
        "serverAuth" => &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01],
        "clientAuth" => &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02],
        "codeSigning" => &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03],
        "emailProtection" => &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x04],
        "timeStamping" => &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08],
        "OCSPSigning" => &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x09],
        _ => return None,
    })
}

/// Runs one case through the path layer exactly as a caller would: PEM
/// decoding, anchor pinning and path validation all belong to the verifier.
fn run(case: &Case) -> Result<(), Error> {
    let mut roots = Vec::new();
    for pem_text in &case.trusted_certs {
        roots.extend(pem::certificates(pem_text.as_bytes())?);
    }
    let anchors = TrustAnchors::from_der(roots)?;
    let mut intermediates = Vec::new();
    for pem_text in &case.untrusted_intermediates {
        intermediates.extend(pem::certificates(pem_text.as_bytes())?);
    }
    let leaf = pem::certificates(case.peer_certificate.as_bytes())?;
    assert_eq!(leaf.len(), 1, "{}: one peer certificate", case.id);
    let eku = case
        .extended_key_usage
        .as_ref()
        .map(|ekus| eku_oid(&ekus[0]).expect("filtered by skip_reason"));
    let crls = CrlSet::new();
    validate_path(
        &anchors,
        &leaf[0],
        &intermediates,
        &PathOptions {
            algorithms: EXTENDED_ALGORITHMS,
            eku,
            time: parse_utc(case.validation_time.as_deref().unwrap_or(DEFAULT_TIME)),
            crls: &crls,
            crl_policy: CrlPolicy::ALLOW_MISSING,
        },
    )
    .map(|_| ())
}

/// Runs the suite; returns the number of unexpected outcomes.
pub fn suite(exceptions: &Exceptions) -> usize {
    let limbo: Limbo =
        serde_json::from_slice(&read("x509-limbo/limbo.json")).expect("limbo.json parses");
    assert_eq!(limbo.version, 1, "limbo.json format version");
    let mut tally = Tally::new(SUITE, exceptions);
    for case in &limbo.testcases {
        if let Some(reason) = skip_reason(case) {
            tally.skip(&case.id, reason);
            continue;
        }
        let expect = match case.expected_result.as_str() {
            "SUCCESS" => Expect::Accept,
            "FAILURE" => Expect::Reject,
            other => panic!("{}: unknown expected_result {other}", case.id),
        };
        tally.record(&case.id, expect, &run(case), None);
    }
    tally.finish()
}

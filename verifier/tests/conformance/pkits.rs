//! NIST PKITS v1.0.1, described by `pkits-p256/cases.json` (249 cases), run
//! twice: on the P-256 re-signed certificates without CRLs (`pkits-p256`)
//! and on the original RSA data with its CRLs (`pkits-2048`).

use govtrust_verifier::path::{validate_path, PathOptions, TrustAnchors};
use govtrust_verifier::signature::EXTENDED_ALGORITHMS;
use govtrust_verifier::{CertificateDer, Crl, CrlPolicy, CrlSet, Error};
use serde::Deserialize;

use super::common::{parse_utc, read, Exceptions, Expect, Tally};

/// Inside every PKITS validity window (2011-01-01 .. 2030-12-31): the
/// instant cases.json's own cross-check used.
const VALIDATION_TIME: &str = "2022-03-23T12:49:43Z";

/// The PKITS sections on certificate policies (4.8 policies, 4.9 require
/// explicit policy, 4.10 policy mappings, 4.11 inhibit policy mapping,
/// 4.12 inhibit anyPolicy).
const POLICY_SECTIONS: &[&str] = &["4.8", "4.9", "4.10", "4.11", "4.12"];

#[derive(Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    case_id: String,
    section: String,
    trust_anchor: String,
    intermediates: Vec<String>,
    end_entity: String,
    crls: Vec<String>,
    expected: String,
    revocation_dependent: bool,
    all_certs_in_p256: bool,
}

/// Which of the two data sets a run uses.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum DataSet {
    /// P-256 re-signed certificates, no CRLs: revocation checking off.
    P256,
    /// Original RSA-2048 certificates with their CRLs, which are required.
    Rsa2048,
}

impl DataSet {
    fn suite(self) -> &'static str {
        match self {
            DataSet::P256 => "pkits-p256",
            DataSet::Rsa2048 => "pkits-2048",
        }
    }

    fn dir(self) -> &'static str {
        self.suite()
    }
}

fn skip_reason(case: &Case, data: DataSet) -> Option<&'static str> {
    if !case.all_certs_in_p256 {
        // 4.1.4-4.1.6: DSA keys with SHA-1, which the verifier never accepts.
        return Some("needs DSA/SHA-1 signatures (outside the profile)");
    }
    if data == DataSet::P256 && case.revocation_dependent {
        return Some("needs CRLs, which the P-256 set lacks (run in pkits-2048)");
    }
    if POLICY_SECTIONS.contains(&case.section.as_str()) && case.expected == "invalid" {
        // Valid policy cases still run: the verifier must not reject them.
        return Some("verdict rests on certificate policy processing (outside the profile)");
    }
    None
}

fn load_cert(data: DataSet, file: &str) -> CertificateDer<'static> {
    CertificateDer::from(read(&format!("{}/{file}", data.dir())))
}

fn run(case: &Case, data: DataSet) -> Result<(), Error> {
    let anchors = TrustAnchors::from_der([load_cert(data, &case.trust_anchor)])?;
    let intermediates: Vec<_> = case
        .intermediates
        .iter()
        .map(|file| load_cert(data, file))
        .collect();
    let leaf = load_cert(data, &case.end_entity);
    let (crls, crl_policy) = match data {
        DataSet::P256 => (CrlSet::new(), CrlPolicy::ALLOW_MISSING),
        DataSet::Rsa2048 => (
            case.crls
                .iter()
                .map(|file| Crl::from_der(read(&format!("{}/{file}", data.dir()))))
                .collect::<Result<CrlSet, Error>>()?,
            CrlPolicy {
                require: true,
                max_age: None,
            },
        ),
    };
    validate_path(
        &anchors,
        &leaf,
        &intermediates,
        &PathOptions {
            algorithms: EXTENDED_ALGORITHMS,
            eku: None,
            time: parse_utc(VALIDATION_TIME),
            crls: &crls,
            crl_policy,
        },
    )
    .map(|_| ())
}

/// Whether a rejection comes from revocation processing.
fn is_revocation_error(e: &Error) -> bool {
    matches!(
        e,
        Error::Revoked { .. }
            | Error::CrlMissing { .. }
            | Error::CrlStale { .. }
            | Error::CrlWrongIssuer { .. }
    )
}

/// Runs the suite on one data set; returns the number of unexpected
/// outcomes.
pub fn suite(data: DataSet, exceptions: &Exceptions) -> usize {
    let cases: Cases =
        serde_json::from_slice(&read("pkits-p256/cases.json")).expect("cases.json parses");
    let mut tally = Tally::new(data.suite(), exceptions);
    for case in &cases.cases {
        if let Some(reason) = skip_reason(case, data) {
            tally.skip(&case.case_id, reason);
            continue;
        }
        let expect = match case.expected.as_str() {
            "valid" => Expect::Accept,
            "invalid" => Expect::Reject,
            other => panic!("{}: unknown expected {other}", case.case_id),
        };
        let verdict = run(case, data);
        // A case that fails only through CRL processing must be rejected by
        // the CRL check, not by some unrelated rule that happens to fire.
        let wrong_reason = match &verdict {
            Err(e) if case.revocation_dependent && !is_revocation_error(e) => {
                Some("expected a revocation rejection".to_owned())
            }
            _ => None,
        };
        tally.record(&case.case_id, expect, &verdict, wrong_reason);
    }
    tally.finish()
}

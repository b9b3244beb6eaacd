//! Conformance suites for the path-validation layer
//! ([`govtrust_verifier::path::validate_path`]): chain building,
//! signatures, validity, basic constraints and pathLen, key usage for
//! certificate and CRL signing, EKU chaining, name chaining and CRL
//! revocation, checked against public test vectors.
//!
//! Run with `cargo test -p govtrust-verifier --test conformance -- --nocapture`.
//! Each suite prints exactly one summary line,
//!
//! ```text
//! x509-limbo: N cases, P passed, S skipped, D known divergences, U unexpected
//! pkits-p256: N cases, P passed, S skipped, D known divergences, U unexpected
//! pkits-2048: N cases, P passed, S skipped, D known divergences, U unexpected
//! ```
//!
//! followed by indented per-reason skip counts and any unexpected outcome.
//! PKITS is split into two lines because it runs on two data sets described
//! by the same `cases.json`: `pkits-p256` (the P-256 re-signed certificates,
//! no CRLs, revocation checking off; revocation-dependent cases skipped) and
//! `pkits-2048` (the original NIST RSA data with its CRLs and
//! `CrlPolicy { require: true, max_age: None }`, all cases).
//!
//! A test fails when U > 0. U counts false accepts, false rejects, rejects
//! of a revocation case by an unrelated rule, and stale entries in the
//! reviewed exceptions file `tests/data/conformance/exceptions.txt` (an
//! entry whose case now conforms, or names no case). Every known divergence
//! is an entry there with a one-line reason; skips carry their reason in
//! the code (`skip_reason` of each suite). Set `CONFORMANCE_VERBOSE=1` to
//! print every case's verdict and every divergence.
//!
//! All data is read from `tests/data/conformance/` (copied from the
//! project's shared conformance folder with licences and source notes;
//! see `tests/data/conformance/README.txt`).

#[path = "conformance/common.rs"]
mod common;
#[path = "conformance/limbo.rs"]
mod limbo;
#[path = "conformance/pkits.rs"]
mod pkits;

use common::Exceptions;
use pkits::DataSet;

#[test]
fn x509_limbo() {
    let exceptions = Exceptions::load();
    let unexpected = limbo::suite(&exceptions);
    assert_eq!(unexpected, 0, "x509-limbo: unexpected outcomes (see above)");
}

#[test]
fn pkits() {
    let exceptions = Exceptions::load();
    // Run both data sets before failing, so both summary lines print.
    let p256 = pkits::suite(DataSet::P256, &exceptions);
    let rsa = pkits::suite(DataSet::Rsa2048, &exceptions);
    assert_eq!(p256 + rsa, 0, "pkits: unexpected outcomes (see above)");
}

#[test]
fn exceptions_name_known_suites() {
    let exceptions = Exceptions::load();
    for suite in exceptions.suites() {
        assert!(
            ["x509-limbo", "pkits-p256", "pkits-2048"].contains(&suite),
            "exceptions.txt names unknown suite {suite}"
        );
    }
}

//! Which signature algorithms the verifier accepts, for certificates (via
//! rustls-webpki) and for CRLs (the same algorithm objects, matched by
//! their algorithm identifiers as rustls-webpki does).

use rustls_pki_types::SignatureVerificationAlgorithm;
use webpki::ring as algs;

/// The signature algorithms a govtrust CA may use: ECDSA P-256 and P-384
/// with SHA-256/384, and Ed25519.
pub static PROFILE_ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    algs::ECDSA_P256_SHA256,
    algs::ECDSA_P256_SHA384,
    algs::ECDSA_P384_SHA256,
    algs::ECDSA_P384_SHA384,
    algs::ED25519,
];

/// The profile's algorithms plus RSA (PKCS#1 v1.5 and PSS, 2048 bits or
/// more, SHA-2): for validating paths from other PKIs such as the NIST PKITS
/// conformance data. SHA-1 and DSA are never accepted.
pub static EXTENDED_ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    algs::ECDSA_P256_SHA256,
    algs::ECDSA_P256_SHA384,
    algs::ECDSA_P384_SHA256,
    algs::ECDSA_P384_SHA384,
    algs::ED25519,
    algs::RSA_PKCS1_2048_8192_SHA256,
    algs::RSA_PKCS1_2048_8192_SHA384,
    algs::RSA_PKCS1_2048_8192_SHA512,
    algs::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
    algs::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
    algs::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

//! Interoperability with Element's experimental `io.element.x509` identity
//! verification (matrix-rust-sdk `crates/matrix-sdk-crypto/src/x509/`).
//!
//! # The format
//!
//! A user's cross-signing **master key** object gets one more entry in its
//! `signatures` map, under the user's own Matrix ID:
//!
//! ```json
//! "signatures": { "@alice:example.org": {
//!     "ed25519:…": "…",
//!     "io.element.x509:<unpadded base64 SKI>": "-----BEGIN CMS-----\n…\n-----END CMS-----\n"
//! } }
//! ```
//!
//! - the **key ID** is `io.element.x509:` followed by the unpadded standard
//!   base64 of the subjectKeyIdentifier of the CA that issued the top
//!   certificate of the chain (for govtrust: the pinned root's SKI);
//! - the **signed message** is the canonical JSON of the master key object
//!   without `signatures` and `unsigned` (the Matrix signing rules);
//! - the **value** is a PEM (`-----BEGIN CMS-----`) CMS `ContentInfo`
//!   holding a `SignedData` (RFC 5652) with this exact profile, which
//!   [`parse_cms_pem`] enforces:
//!   - `SignedData` version 3, `digestAlgorithms` = { sha512 };
//!   - `encapContentInfo` = id-data with **no** `eContent` (detached);
//!   - `certificates` = the signer certificate and its intermediates (at
//!     most [`MAX_CHAIN_LEN`](crate::event::MAX_CHAIN_LEN) in all), X.509
//!     only; **no** `crls`;
//!   - exactly **one** `SignerInfo`, version 3, identified by
//!     subjectKeyIdentifier, **no** signed and no unsigned attributes,
//!     digest sha512, signature RSASSA-PSS with SHA-512, MGF1-SHA-512,
//!     salt length 64 and trailer field 1. Every parameter is checked in the
//!     `AlgorithmIdentifier`; the signature itself is checked with ring's
//!     `RSA_PSS_2048_8192_SHA512`, which fixes the salt length to 64.
//!
//! # What govtrust accepts
//!
//! [`ElementX509Verifier::verify_master_key`] accepts a signature only if,
//! besides the CMS profile, the signer certificate is a govtrust
//! **identity-signing** certificate (docs/profile.md §5.7) that validates to
//! the pinned root under exactly the path rules, CRL policy and reject
//! reasons of attestations ([`crate::path::validate_path`], EKU ARC.5 on
//! every non-root certificate that has an EKU); its SAN is exactly the
//! `matrix:u/` URI of the master key's user; its issuing CA lists ARC.5 and
//! permits the user's server (ARC.11); the key ID names the root the chain
//! leads to; and the RSASSA-PSS signature verifies over the canonical JSON.
//!
//! # Canonical JSON
//!
//! The verifier computes the signed bytes itself
//! ([`crate::canonical_json::signing_bytes`]) from the object as received,
//! so that a caller cannot pass bytes that differ from the object it then
//! trusts; a value without a canonical form is `master_key_invalid`.
//! Callers that already hold the signed bytes (e.g. from ruma) can use
//! [`ElementX509Verifier::verify_signature`].
//!
//! # The matrix-rust-sdk adapter
//!
//! [`RawX509Verifier`] has the shape of matrix-rust-sdk's trait of the same
//! name (`fn verify(&self, message: &[u8], signature: &RawX509Signature) ->
//! bool`, `Debug + Send + Sync`); [`GovtrustRawX509Verifier`] implements it
//! with the rules above, so an application embedding matrix-sdk can wrap it
//! in a one-line `impl matrix_sdk_crypto::x509::RawX509Verifier`.
//!
//! # Layout
//!
//! This module holds the format's constants and the key ID; the concepts
//! live in submodules, all re-exported here: `signed_data` (the ASN.1
//! `SignedData` with raw certificates), `cms` (the strict CMS profile
//! parser), `signer` (the rules on the signer chain), `verify` (the
//! master key and signature verification) and `raw` (the
//! matrix-rust-sdk-shaped adapter).

use base64::Engine as _;

mod cert;
mod cms;
mod raw;
mod signed_data;
mod signer;
mod verify;

pub use cms::{parse_cms_der, parse_cms_pem, CmsSignature, X509SignatureScheme};
pub use raw::{GovtrustRawX509Verifier, RawX509Signature, RawX509Verifier};
pub use signed_data::{content_info_der, SignedDataRawCerts};
pub use signer::VerifiedSigner;
pub use verify::{ElementX509Verifier, VerifiedIdentitySignature};

/// Prefix of the key ID of an `io.element.x509` signature.
pub const KEY_ID_PREFIX: &str = "io.element.x509:";
/// PEM label of the signature value.
pub const PEM_LABEL: &str = "CMS";
/// Largest signature value (PEM text) the verifier decodes: four
/// certificates of [`crate::event::MAX_CERT_BYTES`] plus the CMS wrapping,
/// in base64.
pub const MAX_CMS_PEM_BYTES: usize = 32 * 1024;
/// Largest master key object (JSON) the verifier reads: the Matrix limit of
/// a whole event.
pub const MAX_MASTER_KEY_BYTES: usize = 65_536;
/// Human name of the identity-signing EKU, as reject reasons print it.
pub const EKU_NAME: &str = "Matrix identity signing (io.element.x509) (ARC.5)";

/// The key ID for a root (or any CA) key identifier:
/// `io.element.x509:<unpadded base64>`.
pub fn key_id_for(ca_key_identifier: &[u8]) -> String {
    format!(
        "{KEY_ID_PREFIX}{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(ca_key_identifier)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_is_unpadded_base64() {
        let ski = [
            0xd8, 0x5e, 0x91, 0x9a, 0x17, 0xf0, 0xc3, 0x5b, 0x13, 0xdb, 0x75, 0x42, 0x7d, 0x21,
            0x37, 0x9a, 0xdf, 0x3e, 0x96, 0x11,
        ];
        assert_eq!(
            key_id_for(&ski),
            "io.element.x509:2F6Rmhfww1sT23VCfSE3mt8+lhE"
        );
    }
}

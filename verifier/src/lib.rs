//! # govtrust-verifier
//!
//! Decides whether a Matrix device key (or a user's cross-signing master
//! key) is attested by the government PKI: the chain reaches a pinned root;
//! every signature, validity period, basic constraint, key usage and EKU
//! holds at the validation time; the SAN is exactly the user; the device
//! extension is exactly the device; the SPKI is exactly the key the caller's
//! crypto store holds; the issuing CA may certify the user's server; and no
//! certificate on the path is revoked by a CRL within the freshness policy.
//!
//! The core is pure — bytes in, [`VerifiedAttestation`] or a typed
//! [`Error`] out — and depends on no issuer code, so client applications can
//! embed it cheaply. Path building and signature checks are delegated to
//! rustls-webpki; certificate fields are read with x509-parser.
//!
//! ```no_run
//! use govtrust_verifier::{CrlPolicy, CrlSet, Expected, TrustAnchors, Verifier};
//! # fn main() -> Result<(), govtrust_verifier::Error> {
//! # let (root_pem, event_json, key) = (b"", b"", "");
//! let verifier = Verifier::new(TrustAnchors::from_pem(root_pem)?, CrlPolicy::REQUIRE_FRESH);
//! let expected = Expected::new("@office:id.bund.example", Some("AGENCYDEV"), key)?;
//! let verdict = verifier.verify_event(&expected, event_json, &CrlSet::new(),
//!     rustls_pki_types::UnixTime::now());
//! match verdict {
//!     Ok(att) => println!("verified: {}", att.authority),
//!     Err(why) => println!("not trusted ({}): {why}", why.code()),
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod authority;
pub mod canonical_json;
mod crl;
mod der;
pub mod element_x509;
mod error;
pub mod event;
mod leaf;
mod matrix_id;
mod memo;
pub mod oid;
pub mod path;
pub mod pem;
pub mod profile;
pub mod sealed;
pub mod sealed_archive;
pub mod signature;
mod verify;

pub use authority::{
    is_printable_string_char, AuthorityRecord, DnAttribute, DnString, DN_ATTRIBUTES,
};
pub use crl::{Crl, CrlPolicy, CrlSet, RevokedEntry, MAX_CRL_ENTRIES};
pub use element_x509::{ElementX509Verifier, VerifiedIdentitySignature};
pub use error::{Error, PathPosition};
pub use matrix_id::{validate_server_name, DeviceId, Ed25519Key, UserId};
pub use memo::{IssuerMemoStats, MAX_REMEMBERED_ISSUERS};
pub use path::TrustAnchors;
pub use profile::{AssuranceLevel, CitizenExpected, Expected, Subject, VerifiedCitizen};
pub use rustls_pki_types::{CertificateDer, UnixTime};
pub use sealed::{
    verify_receipt, ReceiptContent, ReceiptExpected, SealedContent, SealedContext, SealedVerifier,
    VerifiedReceipt, VerifiedSealed,
};
pub use verify::{VerifiedAttestation, Verifier};

//! # govtrust-pki
//!
//! The CA side of govtrust: the certificate profile as templates
//! ([`profile`]), DER encoding ([`der`], [`template`]), CAs that sign and
//! then verify what they signed ([`ca`]), CRLs ([`crl`]), and where CA keys
//! live ([`signer`]: PKCS#8 files or PKCS#11 tokens).
//!
//! Policy (who may get which certificate) is not here: that is the
//! service's authority registry. This crate answers "produce a correct
//! certificate for this request, or an error".
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ca;
pub mod crl;
pub mod der;
pub mod element_x509;
mod error;
pub mod inspect;
pub mod profile;
pub mod signer;
pub mod template;

pub use ca::{hex, CaCertificate, IssuedCertificate, IssuingCa, RootCa};
pub use crl::{RevocationReason, RevokedCertificate};
pub use error::Error;
pub use profile::{rfc3339, AttestationRequest, IdentitySigningRequest, Validity};

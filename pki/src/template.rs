//! Certificate templates: the raw fields of a certificate before signing.
//!
//! [`crate::profile`] fills templates according to the govtrust profile;
//! tests (and only tests) fill them by hand to produce certificates that
//! violate exactly one rule, to prove the verifier rejects each.

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::der::{ext::write_extensions, write_time, Extension};
use crate::signer::Signer;
use crate::Error;

/// Bytes of randomness in a serial number: 127 bits after clearing the
/// sign bit, well above the CA/B Forum's 64-bit minimum.
const SERIAL_BYTES: usize = 16;

/// The fields of a certificate to be signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateTemplate {
    /// Serial number, big-endian, positive.
    pub serial: Vec<u8>,
    /// Issuer `Name` DER (the issuing CA's subject, byte for byte).
    pub issuer: Vec<u8>,
    /// Subject `Name` DER.
    pub subject: Vec<u8>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// SubjectPublicKeyInfo DER of the certified key.
    pub spki: Vec<u8>,
    /// Extensions, in order.
    pub extensions: Vec<Extension>,
}

impl CertificateTemplate {
    /// DER of the TBSCertificate as `signer` will sign it.
    pub fn tbs_der(&self, signer: &dyn Signer) -> Vec<u8> {
        yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next()
                    .write_tagged(yasna::Tag::context(0), |w| w.write_u8(2));
                crate::signer::write_unsigned_integer(w.next(), &self.serial);
                w.next()
                    .write_der(signer.algorithm().signature_algorithm_der());
                w.next().write_der(&self.issuer);
                w.next().write_sequence(|w| {
                    write_time(w.next(), self.not_before);
                    write_time(w.next(), self.not_after);
                });
                w.next().write_der(&self.subject);
                w.next().write_der(&self.spki);
                if !self.extensions.is_empty() {
                    w.next().write_tagged(yasna::Tag::context(3), |w| {
                        write_extensions(w, &self.extensions)
                    });
                }
            })
        })
    }

    /// Signs the template. No profile check happens here: callers that hand
    /// certificates out go through [`crate::ca`], which verifies first.
    pub fn sign(&self, signer: &dyn Signer) -> Result<CertificateDer<'static>, Error> {
        if self.not_after <= self.not_before {
            return Err(Error::InvalidRequest(
                "validity ends before it starts".into(),
            ));
        }
        let tbs = self.tbs_der(signer);
        let signature = signer.sign(&tbs)?;
        Ok(CertificateDer::from(signed(&tbs, signer, &signature)))
    }
}

/// Wraps signed TBS bytes into the outer `SEQUENCE { tbs, alg, signature }`
/// shared by certificates and CRLs.
pub(crate) fn signed(tbs: &[u8], signer: &dyn Signer, signature: &[u8]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(tbs);
            w.next()
                .write_der(signer.algorithm().signature_algorithm_der());
            w.next().write_bitvec_bytes(signature, signature.len() * 8);
        })
    })
}

/// A fresh random serial number: 16 bytes, positive, never zero-led.
pub fn random_serial() -> Result<Vec<u8>, Error> {
    use ring::rand::SecureRandom;
    let mut serial = vec![0u8; SERIAL_BYTES];
    ring::rand::SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| Error::Signer("system randomness unavailable".into()))?;
    serial[0] = (serial[0] & 0x7f) | 0x40;
    Ok(serial)
}

/// Re-exported for templates that set extensions by OID.
pub use crate::der::ext;

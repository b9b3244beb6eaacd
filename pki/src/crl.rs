//! CRL issuance: the revoked serials of one CA, signed by it.

use time::OffsetDateTime;

use crate::der::ext::{self, write_extensions};
use crate::der::{write_time, Extension};
use crate::signer::Signer;
use crate::template::signed;
use crate::Error;

/// RFC 5280 CRLReason codes a govtrust operator may give.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    /// No reason given.
    Unspecified = 0,
    /// The private key is known or suspected to be compromised.
    KeyCompromise = 1,
    /// The issuing CA's key is compromised.
    CaCompromise = 2,
    /// The subject's affiliation changed (e.g. the device left the agency).
    AffiliationChanged = 3,
    /// Replaced by a newer certificate.
    Superseded = 4,
    /// The subject no longer operates (e.g. the authority was dissolved).
    CessationOfOperation = 5,
    /// Temporarily suspended.
    CertificateHold = 6,
    /// The authority record no longer permits the subject.
    PrivilegeWithdrawn = 9,
}

impl RevocationReason {
    /// All reasons with their snake-case names, for parsing and display.
    pub const ALL: [(RevocationReason, &'static str); 8] = [
        (RevocationReason::Unspecified, "unspecified"),
        (RevocationReason::KeyCompromise, "key_compromise"),
        (RevocationReason::CaCompromise, "ca_compromise"),
        (RevocationReason::AffiliationChanged, "affiliation_changed"),
        (RevocationReason::Superseded, "superseded"),
        (
            RevocationReason::CessationOfOperation,
            "cessation_of_operation",
        ),
        (RevocationReason::CertificateHold, "certificate_hold"),
        (RevocationReason::PrivilegeWithdrawn, "privilege_withdrawn"),
    ];

    /// Snake-case name (`key_compromise`).
    pub fn name(self) -> &'static str {
        RevocationReason::ALL
            .iter()
            .find(|(r, _)| *r == self)
            .map_or("unspecified", |(_, n)| n)
    }

    /// Parses a snake-case (or kebab-case) name.
    pub fn parse(name: &str) -> Result<Self, Error> {
        let wanted = name.replace('-', "_");
        RevocationReason::ALL
            .iter()
            .find(|(_, n)| *n == wanted)
            .map(|(r, _)| *r)
            .ok_or_else(|| {
                let names: Vec<_> = RevocationReason::ALL.iter().map(|(_, n)| *n).collect();
                Error::InvalidRequest(format!(
                    "unknown revocation reason {name:?}; one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// One revoked certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedCertificate {
    /// Serial number, big-endian.
    pub serial: Vec<u8>,
    /// When it was revoked.
    pub revoked_at: OffsetDateTime,
    /// Why (omitted from the CRL when `Unspecified`, as RFC 5280 advises).
    pub reason: RevocationReason,
}

/// The content of a CRL before signing.
#[derive(Clone, Debug)]
pub struct CrlTemplate<'a> {
    /// Issuer `Name` DER: the CA certificate's subject, byte for byte.
    pub issuer: &'a [u8],
    /// The CA's key identifier (for the authorityKeyIdentifier extension).
    pub issuer_key_id: &'a [u8],
    /// Monotonic CRL number.
    pub number: u64,
    /// Issue time.
    pub this_update: OffsetDateTime,
    /// When the next CRL will be issued at the latest.
    pub next_update: OffsetDateTime,
    /// The revoked certificates.
    pub revoked: &'a [RevokedCertificate],
}

impl CrlTemplate<'_> {
    /// Encodes and signs the CRL, returning its DER.
    pub fn sign(&self, signer: &dyn Signer) -> Result<Vec<u8>, Error> {
        if self.next_update <= self.this_update {
            return Err(Error::InvalidRequest(
                "CRL nextUpdate must be after thisUpdate".into(),
            ));
        }
        let extensions = [
            ext::authority_key_identifier(self.issuer_key_id),
            Extension {
                oid: ext::CRL_NUMBER.to_vec(),
                critical: false,
                value: yasna::construct_der(|w| w.write_u64(self.number)),
            },
        ];
        let tbs = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_u8(1);
                w.next()
                    .write_der(signer.algorithm().signature_algorithm_der());
                w.next().write_der(self.issuer);
                write_time(w.next(), self.this_update);
                write_time(w.next(), self.next_update);
                if !self.revoked.is_empty() {
                    w.next().write_sequence_of(|w| {
                        for entry in self.revoked {
                            write_entry(w.next(), entry);
                        }
                    });
                }
                w.next()
                    .write_tagged(yasna::Tag::context(0), |w| write_extensions(w, &extensions));
            })
        });
        let signature = signer.sign(&tbs)?;
        Ok(signed(&tbs, signer, &signature))
    }
}

fn write_entry(w: yasna::DERWriter<'_>, entry: &RevokedCertificate) {
    w.write_sequence(|w| {
        crate::signer::write_unsigned_integer(w.next(), &entry.serial);
        write_time(w.next(), entry.revoked_at);
        if entry.reason != RevocationReason::Unspecified {
            let reason = Extension {
                oid: ext::REASON_CODE.to_vec(),
                critical: false,
                value: yasna::construct_der(|w| w.write_enum(entry.reason as i64)),
            };
            write_extensions(w.next(), std::slice::from_ref(&reason));
        }
    })
}

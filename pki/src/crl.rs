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
                        for entry in by_serial(self.revoked) {
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

/// The entries in increasing order of their serials' DER INTEGER content
/// octets (for serials of one encoded length, as govtrust's are, the
/// numeric order), entries with equal serials in the order given. The same
/// revocations then always give the same CRL, whatever order the caller
/// (a database query, say) lists them in, and a verifier that indexes the
/// serials finds them already sorted and skips its sort.
fn by_serial(revoked: &[RevokedCertificate]) -> Vec<&RevokedCertificate> {
    let mut sorted: Vec<&RevokedCertificate> = revoked.iter().collect();
    // Stable: of entries with equal serials, the last given stays last (the
    // one a decoder takes).
    sorted.sort_by(|a, b| encoded_serial(&a.serial).cmp(encoded_serial(&b.serial)));
    sorted
}

/// The content octets `write_unsigned_integer` writes for a serial,
/// without building them: the significant octets, behind a 0x00 sign
/// octet when the first has its top bit set.
fn encoded_serial(serial: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let zeros = serial.iter().take_while(|&&b| b == 0).count();
    let trimmed = &serial[zeros.min(serial.len().saturating_sub(1))..];
    let sign = trimmed.first().is_some_and(|b| b & 0x80 != 0);
    sign.then_some(0).into_iter().chain(trimmed.iter().copied())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer::{FileSigner, KeyAlgorithm};
    use x509_parser::prelude::FromDer;
    use x509_parser::revocation_list::CertificateRevocationList;

    fn sign(revoked: &[RevokedCertificate], signer: &FileSigner) -> Vec<u8> {
        let now = OffsetDateTime::from_unix_timestamp(1_704_067_200).unwrap();
        CrlTemplate {
            issuer: &[0x30, 0x00],
            issuer_key_id: &[1; 20],
            number: 1,
            this_update: now,
            next_update: now + time::Duration::days(1),
            revoked,
        }
        .sign(signer)
        .unwrap()
    }

    #[test]
    fn entries_are_written_sorted_by_serial() {
        let at = |secs| OffsetDateTime::from_unix_timestamp(secs).unwrap();
        let entry = |serial: &[u8], secs| RevokedCertificate {
            serial: serial.to_vec(),
            revoked_at: at(secs),
            reason: RevocationReason::Unspecified,
        };
        // Lengths differ, one needs a sign octet (0x00 0x80 ... sorts
        // first), leading zeros are not written, and 0x05 is listed twice.
        let revoked = vec![
            entry(&[0x7f, 1], 1),
            entry(&[0x05], 2),
            entry(&[0x80, 0], 3),
            entry(&[0, 0, 0x05, 1], 4),
            entry(&[0x05], 5),
            entry(&[0x01, 0xff, 0xff], 6),
        ];
        // Ed25519 signs deterministically: equal DER means equal CRLs.
        let signer = FileSigner::generate(KeyAlgorithm::Ed25519).unwrap();
        let der = sign(&revoked, &signer);
        let mut reversed = revoked.clone();
        reversed.reverse();
        reversed.swap(1, 4); // keep the two 0x05 entries in their order
        assert_eq!(sign(&reversed, &signer), der, "order of the input");
        let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
        let written: Vec<(Vec<u8>, i64)> = crl
            .iter_revoked_certificates()
            .map(|e| (e.raw_serial().to_vec(), e.revocation_date.timestamp()))
            .collect();
        let expected: Vec<(Vec<u8>, i64)> = [
            (&[0x00, 0x80, 0][..], 3),
            (&[0x01, 0xff, 0xff], 6),
            (&[0x05], 2),
            (&[0x05], 5),
            (&[0x05, 1], 4),
            (&[0x7f, 1], 1),
        ]
        .iter()
        .map(|(s, t)| (s.to_vec(), *t))
        .collect();
        assert_eq!(written, expected);
    }
}

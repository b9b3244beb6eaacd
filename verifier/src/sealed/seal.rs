//! Verification of a sealed document ([`SealedVerifier::verify_sealed`],
//! the order of checks in the [parent module](super)): binding to room and
//! sender, document hash, signature, and the signer's attestation
//! validated **at `issued_at`**, with revocation judged by the revocation
//! dates (`revoked_before_signing` vs. a seal that stays valid).
//!
//! It exists apart from [`crate::verify`] because a seal is judged at its
//! signing time, not now, which changes how CRLs are read.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Serialize;
use serde_json::{Map, Value};

use super::content::parse_object;
use super::signing::check_signature;
use super::{document_sha256, SealedContent, MAX_SEALED_CONTENT_BYTES, SEALED_VERSION};
use crate::crl::CertUnderCheck;
use crate::event::{MAX_CERT_BYTES, MAX_CHAIN_LEN};
use crate::path::{validate_path, CaUsage, PathOptions, TrustAnchors};
use crate::profile::{self, parse_cert, Expected, Subject};
use crate::signature::PROFILE_ALGORITHMS;
use crate::verify::VerifiedAttestation;
use crate::{CrlPolicy, CrlSet, DeviceId, Ed25519Key, Error, PathPosition, UserId};

/// Where a sealed event was found: what it must be bound to.
#[derive(Clone, Copy, Debug)]
pub struct SealedContext<'a> {
    /// The room the event was received in.
    pub room_id: &'a str,
    /// The event's sender (as the homeserver and the event's encryption
    /// state report it).
    pub sender: &'a str,
}

/// A sealed document that passed every check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifiedSealed {
    /// The content as verified.
    pub content: SealedContent,
    /// The signer's attestation, validated at `issued_at`.
    pub attestation: VerifiedAttestation,
    /// When a certificate on the signer's path was revoked after
    /// `issued_at` (seconds since the epoch), if one was: the seal stays
    /// valid, but the signer may not seal anything newer.
    pub revoked_after_signing: Option<i64>,
}

impl VerifiedSealed {
    /// The `sealed by <authority>` line for display.
    pub fn sealed_by(&self) -> String {
        format!("sealed by {}", self.attestation.authority)
    }
}

/// Decides sealed documents against pinned roots and a CRL policy.
#[derive(Debug)]
pub struct SealedVerifier {
    anchors: TrustAnchors,
    crl_policy: CrlPolicy,
}

impl SealedVerifier {
    /// A verifier trusting `anchors`, applying `crl_policy` at each seal's
    /// `issued_at`.
    pub fn new(anchors: TrustAnchors, crl_policy: CrlPolicy) -> Self {
        SealedVerifier {
            anchors,
            crl_policy,
        }
    }

    /// Verifies the content of an `io.govtrust.sealed` event found in
    /// `context` (see the module documentation for the order of checks).
    pub fn verify_sealed(
        &self,
        content_json: &[u8],
        context: &SealedContext<'_>,
        crls: &CrlSet,
    ) -> Result<VerifiedSealed, Error> {
        self.verify_with(content_json, context, crls, &self.crl_policy)
    }

    /// Every check of [`SealedVerifier::verify_sealed`] except revocation
    /// (no CRLs, none required): whether the seal is worth fetching CRLs
    /// for. A client fetches the CRLs the chain names only after this
    /// passed, so a forged chain cannot make it contact hosts the pinned
    /// hierarchy did not certify. Never a final verdict.
    pub fn precheck(
        &self,
        content_json: &[u8],
        context: &SealedContext<'_>,
    ) -> Result<VerifiedSealed, Error> {
        self.verify_with(
            content_json,
            context,
            &CrlSet::new(),
            &CrlPolicy::ALLOW_MISSING,
        )
    }

    fn verify_with(
        &self,
        content_json: &[u8],
        context: &SealedContext<'_>,
        crls: &CrlSet,
        crl_policy: &CrlPolicy,
    ) -> Result<VerifiedSealed, Error> {
        if content_json.len() > MAX_SEALED_CONTENT_BYTES {
            return Err(Error::EventTooLarge {
                size: content_json.len(),
                limit: MAX_SEALED_CONTENT_BYTES,
            });
        }
        let (object, content): (Map<String, Value>, SealedContent) =
            parse_object(content_json, "sealed event")?;
        if content.version != SEALED_VERSION {
            return Err(Error::malformed("sealed event", "unsupported version"));
        }
        let chain = decode_chain(&content.chain)?;
        if content.room_id != context.room_id {
            return Err(Error::SealedWrongRoom {
                expected: context.room_id.to_owned(),
                found: content.room_id,
            });
        }
        if content.sender != context.sender || content.signer.user_id != context.sender {
            return Err(Error::SealedWrongSender {
                expected: context.sender.to_owned(),
                found: if content.sender != context.sender {
                    content.sender
                } else {
                    content.signer.user_id
                },
            });
        }
        if document_sha256(&content.document)? != content.document_sha256 {
            return Err(Error::SealedDocumentTampered);
        }
        let expected = Expected {
            user_id: UserId::parse(&content.signer.user_id)?,
            subject: Subject::Device(DeviceId::parse(&content.signer.device_id)?),
            key: Ed25519Key::from_base64(&content.signer.key)?,
        };
        check_signature(
            &object,
            &content.signatures,
            &content.signer.user_id,
            &content.signer.device_id,
            &expected.key,
        )
        .map_err(|()| Error::SealedSignatureInvalid)?;

        let issued_at_ms = content.metadata.issued_at;
        let issued_at = i64::try_from(issued_at_ms / 1000)
            .map_err(|_| Error::malformed("sealed event", "issued_at out of range"))?;
        let (attestation, revoked_after_signing) = self
            .attested_at(&expected, &chain, crls, crl_policy, issued_at)
            .map_err(|e| match e {
                e @ Error::RevokedBeforeSigning { .. } => e,
                e => Error::SignerNotAttested(Box::new(e)),
            })?;
        if attestation.authority.id != content.metadata.authority_id {
            return Err(Error::SealedAuthorityMismatch {
                claimed: content.metadata.authority_id,
                certified: attestation.authority.id,
            });
        }
        Ok(VerifiedSealed {
            content,
            attestation,
            revoked_after_signing,
        })
    }

    /// The attestation rule at `issued_at` (seconds), with revocation as of
    /// that time.
    fn attested_at(
        &self,
        expected: &Expected,
        chain: &[CertificateDer<'static>],
        crls: &CrlSet,
        crl_policy: &CrlPolicy,
        issued_at: i64,
    ) -> Result<(VerifiedAttestation, Option<i64>), Error> {
        let (leaf_der, intermediates) = chain
            .split_first()
            .ok_or_else(|| Error::malformed("chain", "no certificate"))?;
        let leaf = parse_cert(leaf_der, "attestation certificate")?;
        let authority = profile::check_leaf(&leaf, expected)?;
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(issued_at).unwrap_or(0),
        ));
        // Path rules at the signing time; revocation is judged below, per
        // certificate, with the revocation dates.
        let empty = CrlSet::new();
        let path = validate_path(
            &self.anchors,
            leaf_der,
            intermediates,
            &PathOptions {
                algorithms: PROFILE_ALGORITHMS,
                eku: Some(expected.subject.eku()),
                time,
                crls: &empty,
                crl_policy: CrlPolicy::ALLOW_MISSING,
            },
        )?;
        let issuer = parse_cert(path.leaf_issuer(), "issuing CA certificate")?;
        profile::check_issuer(&issuer, expected)?;
        let root = parse_cert(&path.root, "root certificate")?;

        let mut revoked_after = None;
        for (index, der) in path.certificates.iter().enumerate() {
            let cert = parse_cert(der, "certificate")?;
            let issuer_der = path.certificates.get(index + 1).unwrap_or(&path.root);
            let issuer_cert = parse_cert(issuer_der, "CA certificate")?;
            let issuer_spki = issuer_cert.public_key().raw;
            let can_sign_crls = CaUsage::of_der(issuer_der)
                .map_err(|_| Error::malformed("CA certificate", "undecodable"))?
                .can_sign_crls;
            let position = if index == 0 {
                PathPosition::Leaf
            } else {
                PathPosition::Issuer
            };
            let issuer_name = tlv_content(cert.issuer().as_raw())
                .ok_or_else(|| Error::malformed("certificate", "issuer name"))?;
            let serial = cert.tbs_certificate.raw_serial();
            let under_check = CertUnderCheck {
                position,
                serial,
                issuer_name,
                issuer_spki,
                issuer_can_sign_crls: can_sign_crls,
            };
            match crls.check(under_check, time, crl_policy) {
                Ok(()) => {}
                Err(Error::Revoked { position }) => {
                    // Only CRLs whose signature verified can have said so;
                    // the earliest date any of them gives decides.
                    let revoked_at = crls
                        .iter()
                        .filter(|crl| crl.issuer_der() == issuer_name)
                        .filter(|crl| crl.verify_signed_by(issuer_spki).is_ok())
                        .filter_map(|crl| crl.lookup(serial))
                        .map(|entry| entry.revoked_at)
                        .min()
                        .ok_or(Error::Revoked { position })?;
                    if revoked_at <= issued_at {
                        return Err(Error::RevokedBeforeSigning {
                            position,
                            revoked_at,
                            issued_at,
                        });
                    }
                    revoked_after =
                        Some(revoked_after.map_or(revoked_at, |r: i64| r.min(revoked_at)));
                }
                Err(e) => return Err(e),
            }
        }
        Ok((
            VerifiedAttestation {
                user_id: expected.user_id.clone(),
                subject: expected.subject.clone(),
                key: expected.key,
                authority,
                serial: leaf.raw_serial_as_string().replace(':', ""),
                not_after: leaf.validity().not_after.timestamp(),
                issuer: issuer.subject().to_string(),
                root: root.subject().to_string(),
            },
            revoked_after,
        ))
    }
}

fn decode_chain(chain: &[String]) -> Result<Vec<CertificateDer<'static>>, Error> {
    if chain.is_empty() || chain.len() > MAX_CHAIN_LEN {
        return Err(Error::malformed("chain", "wrong number of certificates"));
    }
    chain
        .iter()
        .map(|b64| {
            let der = STANDARD
                .decode(b64)
                .map_err(|e| Error::malformed("chain", e))?;
            if der.len() > MAX_CERT_BYTES {
                return Err(Error::malformed("chain", "certificate too large"));
            }
            Ok(CertificateDer::from(der))
        })
        .collect()
}

/// The content octets of one DER TLV (definite length), or `None`.
fn tlv_content(der: &[u8]) -> Option<&[u8]> {
    let (&first_len, rest) = der.get(1..)?.split_first()?;
    let (len, rest) = if first_len < 0x80 {
        (usize::from(first_len), rest)
    } else {
        let n = usize::from(first_len & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (len_bytes, rest) = rest.split_at(n);
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest)
    };
    (rest.len() == len).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlv_content_reads_short_and_long_forms() {
        assert_eq!(tlv_content(&[0x30, 0x02, 1, 2]), Some(&[1u8, 2][..]));
        let mut long = vec![0x30, 0x81, 0x80];
        long.extend([0u8; 0x80]);
        assert_eq!(tlv_content(&long).map(<[u8]>::len), Some(0x80));
        assert_eq!(tlv_content(&[0x30, 0x03, 1, 2]), None);
        assert_eq!(tlv_content(&[0x30]), None);
    }
}

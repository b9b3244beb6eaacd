//! The rules on the signer chain of an `io.element.x509` signature: path
//! validation to a pinned root with revocation, the identity-signing
//! profile of the signer certificate (EKU ARC.5, key usage, not a CA, RSA,
//! SAN = the user) and of its issuing CA (ARC.5 listed, the user's server
//! permitted), and the key ID the root calls for.
//!
//! It exists apart from [`super::verify`] because the issuer self-checks a
//! fresh identity-signing certificate with these rules alone
//! ([`ElementX509Verifier::check_signer_certificate`]), without any
//! signature over a message.

use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Serialize;

use super::cert::{parse_cert, subject_key_id};
use super::{key_id_for, ElementX509Verifier, EKU_NAME};
use crate::path::{validate_path, PathOptions};
use crate::signature::PROFILE_ALGORITHMS;
use crate::verify::split_chain;
use crate::{oid, profile, AuthorityRecord, CrlSet, Error, UserId};

/// rsaEncryption (1.2.840.113549.1.1.1), DER content octets.
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// What a valid signer certificate proves, before the signature itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifiedSigner {
    /// The user the certificate's SAN names.
    pub user_id: UserId,
    /// The official authority record (the verified badge).
    pub authority: AuthorityRecord,
    /// Signer certificate serial, lower-case hex.
    pub serial: String,
    /// Signer certificate notAfter, seconds since the Unix epoch.
    pub not_after: i64,
    /// Subject of the issuing CA, RFC 4514.
    pub issuer: String,
    /// Subject of the pinned root, RFC 4514.
    pub root: String,
    /// The key ID the chain calls for (`io.element.x509:` + root SKI).
    pub key_id: String,
}

impl ElementX509Verifier {
    /// Every rule about the signer chain (path, CRLs, profile of the signer
    /// certificate and of its issuing CA) without any signature over a
    /// message: what an issuer self-checks a fresh identity-signing
    /// certificate with. Returns the verdict and the signer certificate.
    pub fn check_signer_certificate<'c>(
        &self,
        user: &UserId,
        chain: &'c [CertificateDer<'c>],
        crls: &CrlSet,
        now: UnixTime,
    ) -> Result<(VerifiedSigner, &'c CertificateDer<'c>), Error> {
        let (leaf_der, intermediates) = split_chain(chain)?;
        let leaf = parse_cert(leaf_der, "identity-signing certificate")?;
        let eku = leaf
            .extended_key_usage()
            .map_err(|e| Error::malformed("extended key usage", e))?;
        let wrong_eku = Error::WrongEku { expected: EKU_NAME };
        if let Some(eku) = &eku {
            if !profile::eku_is_exactly(eku.value, oid::EKU_IDENTITY_SIGNING) {
                return Err(wrong_eku);
            }
        }
        let path = validate_path(
            &self.anchors,
            leaf_der,
            intermediates,
            &PathOptions {
                algorithms: PROFILE_ALGORITHMS,
                eku: Some(oid::EKU_IDENTITY_SIGNING),
                time: now,
                crls,
                crl_policy: self.crl_policy,
            },
        )?;
        if eku.is_none() {
            return Err(wrong_eku);
        }
        profile::check_leaf_key_usage(&leaf)?;
        profile::check_not_ca(&leaf)?;
        let spki = &leaf.public_key().algorithm;
        if spki.algorithm.as_bytes() != RSA_ENCRYPTION {
            return Err(Error::KeyNotRsa);
        }
        profile::check_san(&leaf, user)?;
        let authority = profile::authority_record(&leaf)?;

        let issuer = parse_cert(path.leaf_issuer(), "issuing CA certificate")?;
        profile::check_issuer_permits(&issuer, oid::EKU_IDENTITY_SIGNING, user.server_name())?;
        let root = parse_cert(&path.root, "root certificate")?;
        let root_ski = subject_key_id(&path.root)?.ok_or_else(|| Error::KeyIdMismatch {
            expected: "(the root has no subjectKeyIdentifier)".into(),
            found: String::new(),
        })?;
        Ok((
            VerifiedSigner {
                user_id: user.clone(),
                authority,
                serial: leaf.raw_serial_as_string().replace(':', ""),
                not_after: leaf.validity().not_after.timestamp(),
                issuer: issuer.subject().to_string(),
                root: root.subject().to_string(),
                key_id: key_id_for(&root_ski),
            },
            leaf_der,
        ))
    }
}

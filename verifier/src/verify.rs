//! The entry point: one attestation chain in, a verified attestation or the
//! reason for rejection out.

use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Serialize;

use crate::event::{AttestationContent, MAX_CHAIN_LEN};
use crate::leaf::ProfileLeaf;
use crate::memo::{IssuerMemo, IssuerMemoStats, MemoAccepted};
use crate::path::{validate_path, CaUsage, PathOptions, TrustAnchors};
use crate::profile::{self, parse_cert, Expected, Subject};
use crate::signature::PROFILE_ALGORITHMS;
use crate::{AuthorityRecord, CrlPolicy, CrlSet, Ed25519Key, Error, PathPosition, UserId};

/// An attestation that passed every rule: what a client may now trust and
/// show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifiedAttestation {
    /// The attested user.
    pub user_id: UserId,
    /// The attested device, or the identity.
    pub subject: Subject,
    /// The attested key (equal to the expected key).
    pub key: Ed25519Key,
    /// The official authority record to display as the verified badge.
    pub authority: AuthorityRecord,
    /// Leaf serial number, lower-case hex.
    pub serial: String,
    /// Leaf notAfter, seconds since the Unix epoch: when trust must be
    /// re-established at the latest.
    pub not_after: i64,
    /// Subject of the issuing CA, RFC 4514 form.
    pub issuer: String,
    /// Subject of the pinned root the chain ends in, RFC 4514 form.
    pub root: String,
}

/// Verifies govtrust attestations against pinned roots under a CRL policy.
///
/// Build one per set of roots and reuse it: it holds the parsed anchors,
/// and it remembers the issuing CAs it has fully validated (at most
/// [`MAX_REMEMBERED_ISSUERS`](crate::MAX_REMEMBERED_ISSUERS)), so that a
/// later chain through the same issuing-CA certificate (byte for byte)
/// costs one signature check, the leaf's, instead of two. Everything that
/// depends on the leaf, the expectation, the CRLs or the validation time
/// is checked on every call, and whenever that shorter check does not
/// accept, the full validation runs and gives the verdict: the memo never
/// changes a verdict or a reason.
#[derive(Debug)]
pub struct Verifier {
    anchors: TrustAnchors,
    crl_policy: CrlPolicy,
    issuers: IssuerMemo,
}

impl Verifier {
    /// A verifier that trusts `anchors` and applies `crl_policy`.
    pub fn new(anchors: TrustAnchors, crl_policy: CrlPolicy) -> Self {
        Verifier {
            anchors,
            crl_policy,
            issuers: IssuerMemo::default(),
        }
    }

    /// The pinned roots.
    pub fn anchors(&self) -> &TrustAnchors {
        &self.anchors
    }

    /// How the issuing-CA memo has been used (for metrics and tests).
    pub fn issuer_memo_stats(&self) -> IssuerMemoStats {
        self.issuers.stats()
    }

    /// Applies the acceptance rule of the profile to `chain` (leaf first,
    /// then its issuing CA) for `expected` at `time`, using `crls` for
    /// revocation.
    pub fn verify(
        &self,
        expected: &Expected,
        chain: &[CertificateDer<'_>],
        crls: &CrlSet,
        time: UnixTime,
    ) -> Result<VerifiedAttestation, Error> {
        let (leaf_der, intermediates) = split_chain(chain)?;
        let verdict = |authority, serial: &[u8], not_after, ok: MemoAccepted| VerifiedAttestation {
            user_id: expected.user_id.clone(),
            subject: expected.subject.clone(),
            key: expected.key,
            authority,
            serial: hex(serial),
            not_after,
            issuer: ok.issuer,
            root: ok.root,
        };
        let short_path = |usage| {
            let [ica] = intermediates else {
                return None;
            };
            self.issuers.try_verify(
                &self.anchors,
                leaf_der,
                usage,
                ica,
                expected,
                crls,
                &self.crl_policy,
                time,
            )
        };

        // A leaf of govtrust's own shape that passes the leaf rules, read
        // without x509-parser. Whatever this does not accept, the parse and
        // checks below decide (and the short path is not tried twice).
        let fast = match intermediates {
            [_] => ProfileLeaf::read(leaf_der).filter(|leaf| leaf.check(expected)),
            _ => None,
        };
        let short_path_tried = fast.is_some();
        if let Some(leaf) = fast {
            match short_path(leaf.usage()) {
                Some(Some(ok)) => {
                    self.issuers.count_fast_leaf_read();
                    return Ok(verdict(leaf.authority, leaf.serial, leaf.not_after, ok));
                }
                Some(None) => self.issuers.count_fast_leaf_read(),
                None => {}
            }
        }

        let leaf = parse_cert(leaf_der, "attestation certificate")?;
        let authority = profile::check_leaf(&leaf, expected)?;
        let serial = leaf.raw_serial();
        let not_after = leaf.validity().not_after.timestamp();
        // For the short path, read from this parse (it parsed, so this
        // cannot fail; if it did, the full validation would decide).
        if let (false, Ok(usage)) = (short_path_tried, CaUsage::of(&leaf)) {
            if let Some(Some(ok)) = short_path(usage) {
                return Ok(verdict(authority, serial, not_after, ok));
            }
        }

        let path = validate_path(
            &self.anchors,
            leaf_der,
            intermediates,
            &PathOptions {
                algorithms: PROFILE_ALGORITHMS,
                eku: Some(expected.subject.eku()),
                time,
                crls,
                crl_policy: self.crl_policy,
            },
        )?;
        let issuer = parse_cert(path.leaf_issuer(), "issuing CA certificate")?;
        profile::check_issuer(&issuer, expected)?;
        let root = parse_cert(&path.root, "root certificate")?;
        let root_subject = root.subject().to_string();

        if let [ica] = intermediates {
            self.issuers.remember(
                &self.anchors,
                ica,
                &path,
                &issuer,
                expected.subject.eku(),
                &root_subject,
                time,
            );
        }
        let ok = MemoAccepted {
            issuer: issuer.subject().to_string(),
            root: root_subject,
        };
        Ok(verdict(authority, serial, not_after, ok))
    }

    /// Verifies the content of an `io.govtrust.attestation` state event:
    /// enforces its size limits, honours a `revoked` marker, and verifies
    /// its chain for `expected`.
    pub fn verify_event(
        &self,
        expected: &Expected,
        content_json: &[u8],
        crls: &CrlSet,
        time: UnixTime,
    ) -> Result<VerifiedAttestation, Error> {
        let content = AttestationContent::from_json(content_json)?;
        if content.is_revoked() {
            return Err(Error::Revoked {
                position: PathPosition::Leaf,
            });
        }
        self.verify(expected, &content.chain_der()?, crls, time)
    }
}

/// Lower-case hex of `bytes`, in one allocation (x509-parser's
/// colon-separated form, with the colons removed, allocated once per
/// octet on the warm path).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Splits a chain into its leaf and the rest, refusing an empty chain or
/// one longer than [`MAX_CHAIN_LEN`].
pub(crate) fn split_chain<'a, 'c>(
    chain: &'a [CertificateDer<'c>],
) -> Result<(&'a CertificateDer<'c>, &'a [CertificateDer<'c>]), Error> {
    let (leaf_der, intermediates) = chain
        .split_first()
        .ok_or_else(|| Error::malformed("chain", "no certificate"))?;
    if chain.len() > MAX_CHAIN_LEN {
        return Err(Error::malformed("chain", "too many certificates"));
    }
    Ok((leaf_der, intermediates))
}

impl Expected {
    /// Convenience constructor from the strings a caller typically holds.
    pub fn new(user_id: &str, device_id: Option<&str>, key_b64: &str) -> Result<Self, Error> {
        Ok(Expected {
            user_id: UserId::parse(user_id)?,
            subject: match device_id {
                Some(d) => Subject::Device(crate::DeviceId::parse(d)?),
                None => Subject::Identity,
            },
            key: Ed25519Key::from_base64(key_b64)?,
        })
    }
}

impl Verifier {
    /// Applies the acceptance rule for a citizen attestation (EKU ARC.6,
    /// docs/profile.md §5.8) to `chain` (leaf first) for `expected` at
    /// `time`: the leaf rules (key, EKU, key usage, SAN, device, pseudonym
    /// subject, ARC.12 level), then the path, the CRLs and the issuing CA's
    /// EKU list and ARC.11 servers, exactly as for device attestations.
    /// Only a chain that passes all of them is compared with
    /// `expected.minimum_level`, so `assurance_too_low` always means "a
    /// valid attestation, at a lower level than demanded".
    ///
    /// The issuing-CA memo is not used: citizen attestations are checked
    /// by agencies one at a time, not by clients rendering a room.
    pub fn verify_citizen(
        &self,
        expected: &profile::CitizenExpected,
        chain: &[CertificateDer<'_>],
        crls: &CrlSet,
        time: UnixTime,
    ) -> Result<profile::VerifiedCitizen, Error> {
        let (leaf_der, intermediates) = split_chain(chain)?;
        let leaf = parse_cert(leaf_der, "citizen attestation certificate")?;
        let level = profile::check_citizen_leaf(&leaf, expected)?;
        let path = validate_path(
            &self.anchors,
            leaf_der,
            intermediates,
            &PathOptions {
                algorithms: PROFILE_ALGORITHMS,
                eku: Some(crate::oid::EKU_CITIZEN_ATTESTATION),
                time,
                crls,
                crl_policy: self.crl_policy,
            },
        )?;
        let issuer = parse_cert(path.leaf_issuer(), "issuing CA certificate")?;
        profile::check_issuer_permits(
            &issuer,
            crate::oid::EKU_CITIZEN_ATTESTATION,
            expected.user_id.server_name(),
        )?;
        let root = parse_cert(&path.root, "root certificate")?;
        if let Some(required) = expected.minimum_level {
            if level < required {
                return Err(Error::AssuranceTooLow {
                    required: required.as_str(),
                    found: level.as_str(),
                });
            }
        }
        Ok(profile::VerifiedCitizen {
            user_id: expected.user_id.clone(),
            device_id: expected.device_id.clone(),
            key: expected.key,
            level,
            serial: hex(leaf.raw_serial()),
            not_after: leaf.validity().not_after.timestamp(),
            issuer: issuer.subject().to_string(),
            root: root.subject().to_string(),
        })
    }
}

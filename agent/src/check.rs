//! Checking one device or identity: its attestation events, wherever they
//! were found, verified against the key the client's own crypto store
//! holds, the pinned roots and fresh CRLs.
//!
//! An identity can also rest on Element's `io.element.x509` signature on
//! the master key (docs/profile.md §15), read from the client's own crypto
//! store ([`Inner::check_element_x509`]): the same roots, the same CRL
//! policy and fetching, and the same outcome type, so the decisions, the
//! badge and the withdrawal on revocation or expiry are those of an
//! identity attestation.

use govtrust_verifier::element_x509::{parse_cms_pem, ElementX509Verifier, KEY_ID_PREFIX};
use govtrust_verifier::event::{state_key, AttestationContent};
use govtrust_verifier::{
    CrlPolicy, Ed25519Key, Error, Expected, PathPosition, Subject, TrustAnchors, UserId,
    VerifiedAttestation, VerifiedIdentitySignature,
};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::clock::now_secs;
use crate::crls::{self, distribution_points, CrlCache};
use crate::decision::Verdict;
use crate::directory::Candidate;
use crate::state::{EvalState, Inner};

/// The outcome of checking one subject, with the event content it rests
/// on (kept in the store, to re-verify when the homeserver is away).
pub(crate) enum Check {
    /// No attestation was found.
    Absent,
    /// A valid attestation.
    Verified {
        att: Box<VerifiedAttestation>,
        content: String,
    },
    /// Attestations were found and none held; this is why.
    Rejected {
        error: Error,
        content: Option<String>,
    },
}

impl Check {
    /// The attestation, if one held.
    pub(crate) fn verified(&self) -> Option<&VerifiedAttestation> {
        match self {
            Check::Verified { att, .. } => Some(att),
            _ => None,
        }
    }

    /// Whether the subject's attestation is revoked (which outweighs
    /// anything else found for it).
    pub(crate) fn is_revoked(&self) -> bool {
        matches!(self, Check::Rejected { error, .. } if matches!(error, Error::Revoked { .. }))
    }

    /// The event content the outcome rests on.
    pub(crate) fn content(&self) -> Option<&str> {
        match self {
            Check::Verified { content, .. } => Some(content),
            Check::Rejected { content, .. } => content.as_deref(),
            Check::Absent => None,
        }
    }

    /// The outcome as reported to the app.
    pub(crate) fn verdict(&self) -> Verdict {
        match self {
            Check::Absent => Verdict::NotAttested,
            Check::Verified { att, .. } => Verdict::Verified(att.clone()),
            Check::Rejected { error, .. } => Verdict::Rejected(error.clone()),
        }
    }
}

impl Inner {
    /// Looks the subject's attestation up everywhere and verifies what is
    /// found. Several events for one subject (several rooms): a revocation
    /// in any of them wins; otherwise any valid one is enough; otherwise
    /// the first rejection is reported.
    pub(crate) async fn check(
        &self,
        state: &mut EvalState,
        user: &UserId,
        subject: &Subject,
        key: Ed25519Key,
        cached: Option<&str>,
    ) -> Check {
        let expected = Expected {
            user_id: user.clone(),
            subject: subject.clone(),
            key,
        };
        let state_key = state_key(user, subject);
        let (mut candidates, unavailable) = self.lookup(state, &state_key).await;
        if candidates.is_empty() {
            match (unavailable, cached) {
                // The homeserver is unreachable: re-verify what was seen
                // last, so expiry and revocation still apply.
                (true, Some(content)) => candidates.push(Candidate {
                    content: content.as_bytes().to_vec(),
                    source: "cache".to_owned(),
                }),
                _ => return Check::Absent,
            }
        }
        let mut verified: Option<(VerifiedAttestation, String)> = None;
        let mut rejected: Option<(Error, String)> = None;
        for candidate in candidates {
            let text = String::from_utf8_lossy(&candidate.content).into_owned();
            match self
                .verify_content(state, &expected, &candidate.content)
                .await
            {
                Ok(att) => {
                    let better = verified
                        .as_ref()
                        .is_none_or(|(v, _)| att.not_after > v.not_after);
                    if better {
                        verified = Some((att, text));
                    }
                }
                Err(error) => {
                    tracing::debug!(%state_key, source = %candidate.source, code = error.code(), "attestation rejected");
                    let revoked = matches!(error, Error::Revoked { .. });
                    if rejected
                        .as_ref()
                        .is_none_or(|(e, _)| revoked && !matches!(e, Error::Revoked { .. }))
                    {
                        rejected = Some((error, text));
                    }
                }
            }
        }
        match (verified, rejected) {
            (_, Some((error, content))) if matches!(error, Error::Revoked { .. }) => {
                Check::Rejected {
                    error,
                    content: Some(content),
                }
            }
            (Some((att, content)), _) => Check::Verified {
                att: Box::new(att),
                content,
            },
            (None, Some((error, content))) => Check::Rejected {
                error,
                content: Some(content),
            },
            (None, None) => Check::Absent,
        }
    }

    /// Checks the `io.element.x509` signature(s) on a master key object as
    /// the client's crypto store holds it (`master_key_json`): `Absent` if
    /// it carries none; otherwise verified against the pinned roots,
    /// fetching the CRLs the signer's chain needs — only after the chain
    /// proved genuine without them — and then under the agent's CRL policy.
    pub(crate) async fn check_element_x509(
        &self,
        state: &mut EvalState,
        user: &UserId,
        master_key_json: &str,
    ) -> Check {
        let Some(cms) = element_x509_signature(user, master_key_json) else {
            return Check::Absent;
        };
        let rejected = |error| Check::Rejected {
            error,
            content: Some(master_key_json.to_owned()),
        };
        let roots =
            || TrustAnchors::from_der(self.strict.anchors().roots().cloned().collect::<Vec<_>>());
        let chain = parse_cms_pem(&cms).map(|c| c.chain).unwrap_or_default();
        let points = ChainCrlPoints::of(&chain);
        let now_unix = UnixTime::now();
        if !points.all_fresh(&state.crls, now_secs()) {
            let lenient = match roots() {
                Ok(anchors) => ElementX509Verifier::new(anchors, CrlPolicy::ALLOW_MISSING),
                Err(error) => return rejected(error),
            };
            let verified = match lenient.verify_master_key(
                user,
                master_key_json.as_bytes(),
                &state.crls.set(),
                now_unix,
            ) {
                Ok(v) => v,
                Err(error) => return rejected(error),
            };
            let points = points.needed_for(&verified.signer.issuer);
            state.crls.ensure(&points, false).await;
        }
        let strict = match roots() {
            Ok(anchors) => ElementX509Verifier::new(anchors, state.crls.policy()),
            Err(error) => return rejected(error),
        };
        match strict.verify_master_key(
            user,
            master_key_json.as_bytes(),
            &state.crls.set(),
            now_unix,
        ) {
            Ok(v) => Check::Verified {
                att: Box::new(as_identity_attestation(v)),
                content: master_key_json.to_owned(),
            },
            Err(error) => rejected(error),
        }
    }

    /// Verifies one event content for `expected`, fetching the CRLs its
    /// chain needs — only after the chain proved genuine without them.
    async fn verify_content(
        &self,
        state: &mut EvalState,
        expected: &Expected,
        json: &[u8],
    ) -> Result<VerifiedAttestation, Error> {
        let content = AttestationContent::from_json(json)?;
        if content.is_revoked() {
            return Err(Error::Revoked {
                position: PathPosition::Leaf,
            });
        }
        let chain = content.chain_der()?;
        let points = ChainCrlPoints::of(&chain);
        let now_unix = UnixTime::now();
        if !points.all_fresh(&state.crls, now_secs()) {
            let att = self
                .lenient
                .verify_event(expected, json, &state.crls.set(), now_unix)?;
            let points = points.needed_for(&att.issuer);
            state.crls.ensure(&points, false).await;
        }
        self.strict
            .verify_event(expected, json, &state.crls.set(), now_unix)
    }
}

/// The CRL distribution points a leaf-and-issuing-CA chain names, for
/// fetching the CRLs it needs only after the chain proved genuine.
struct ChainCrlPoints<'c> {
    chain: &'c [CertificateDer<'c>],
    leaf: Vec<String>,
    issuer: Vec<String>,
}

impl<'c> ChainCrlPoints<'c> {
    fn of(chain: &'c [CertificateDer<'c>]) -> Self {
        let points = |i: usize| {
            chain
                .get(i)
                .map(|c| distribution_points(c))
                .unwrap_or_default()
        };
        ChainCrlPoints {
            chain,
            leaf: points(0),
            issuer: points(1),
        }
    }

    /// Whether the leaf names a distribution point and every point of the
    /// leaf and the issuing CA has a fresh CRL in the cache.
    fn all_fresh(&self, crls: &CrlCache, now: i64) -> bool {
        !self.leaf.is_empty()
            && self
                .leaf
                .iter()
                .chain(&self.issuer)
                .all(|u| crls.is_fresh(u, now))
    }

    /// The points to fetch once a path validated through `path_issuer`:
    /// the leaf's, and the issuing CA's only if that certificate is the one
    /// the validated path went through: the profile's chain is exactly leaf
    /// and issuing CA, and the path's issuer is that certificate's subject.
    fn needed_for(self, path_issuer: &str) -> Vec<String> {
        let mut points = self.leaf;
        if self.chain.len() == 2
            && self
                .chain
                .get(1)
                .and_then(|c| crls::subject_string(c))
                .as_deref()
                == Some(path_issuer)
        {
            points.extend(self.issuer);
        }
        points
    }
}

/// The first `io.element.x509:*` signature value under the user's own ID
/// in a master key object, if there is one.
fn element_x509_signature(user: &UserId, master_key_json: &str) -> Option<String> {
    let object: serde_json::Value = serde_json::from_str(master_key_json).ok()?;
    object
        .get("signatures")?
        .get(user.as_str())?
        .as_object()?
        .iter()
        .find(|(key_id, _)| key_id.starts_with(KEY_ID_PREFIX))
        .and_then(|(_, value)| value.as_str().map(str::to_owned))
}

/// A verified `io.element.x509` signature in the shape of an identity
/// attestation: the master key, the signer certificate's authority record
/// (the badge), serial, notAfter, issuer and root.
fn as_identity_attestation(v: VerifiedIdentitySignature) -> VerifiedAttestation {
    VerifiedAttestation {
        user_id: v.signer.user_id,
        subject: Subject::Identity,
        key: v.master_key,
        authority: v.signer.authority,
        serial: v.signer.serial,
        not_after: v.signer.not_after,
        issuer: v.signer.issuer,
        root: v.signer.root,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revocation_reads_as_revoked_and_keeps_its_content() {
        let check = Check::Rejected {
            error: Error::Revoked {
                position: PathPosition::Leaf,
            },
            content: Some("{}".to_owned()),
        };
        assert!(check.is_revoked());
        assert!(check.verified().is_none());
        assert_eq!(check.content(), Some("{}"));
        assert!(matches!(
            check.verdict(),
            Verdict::Rejected(Error::Revoked { .. })
        ));
    }

    #[test]
    fn only_an_io_element_x509_signature_of_the_user_counts() {
        let user = UserId::parse("@a:example.org").expect("user");
        let json = r#"{"user_id":"@a:example.org","signatures":{
            "@b:example.org":{"io.element.x509:AAAA":"other user"},
            "@a:example.org":{"ed25519:DEV":"sig","io.element.x509:BBBB":"cms"}}}"#;
        assert_eq!(element_x509_signature(&user, json).as_deref(), Some("cms"));
        let none = r#"{"signatures":{"@a:example.org":{"ed25519:DEV":"sig"}}}"#;
        assert_eq!(element_x509_signature(&user, none), None);
        assert_eq!(element_x509_signature(&user, "not json"), None);
    }

    #[test]
    fn absence_is_not_attested() {
        let check = Check::Absent;
        assert!(!check.is_revoked());
        assert_eq!(check.content(), None);
        assert_eq!(check.verdict(), Verdict::NotAttested);
    }
}

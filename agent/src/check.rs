//! Checking one device or identity: its attestation events, wherever they
//! were found, verified against the key the client's own crypto store
//! holds, the pinned roots and fresh CRLs.

use govtrust_verifier::event::{state_key, AttestationContent};
use govtrust_verifier::{
    Ed25519Key, Error, Expected, PathPosition, Subject, UserId, VerifiedAttestation,
};
use rustls_pki_types::UnixTime;

use crate::clock::now_secs;
use crate::crls::{self, distribution_points};
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
        let leaf_points = chain
            .first()
            .map(|c| distribution_points(c))
            .unwrap_or_default();
        let issuer_points = chain
            .get(1)
            .map(|c| distribution_points(c))
            .unwrap_or_default();
        let now_unix = UnixTime::now();
        let now = now_secs();
        let all_fresh = !leaf_points.is_empty()
            && leaf_points
                .iter()
                .chain(&issuer_points)
                .all(|u| state.crls.is_fresh(u, now));
        if !all_fresh {
            let att = self
                .lenient
                .verify_event(expected, json, &state.crls.set(), now_unix)?;
            // The issuing CA's distribution point counts only if that
            // certificate is the one the validated path went through: the
            // profile's chain is exactly leaf and issuing CA, and the
            // path's issuer is that certificate's subject.
            let mut points = leaf_points;
            if chain.len() == 2
                && chain.get(1).and_then(|c| crls::subject_string(c)) == Some(att.issuer.clone())
            {
                points.extend(issuer_points);
            }
            state.crls.ensure(&points, false).await;
        }
        self.strict
            .verify_event(expected, json, &state.crls.set(), now_unix)
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
    fn absence_is_not_attested() {
        let check = Check::Absent;
        assert!(!check.is_revoked());
        assert_eq!(check.content(), None);
        assert_eq!(check.verdict(), Verdict::NotAttested);
    }
}

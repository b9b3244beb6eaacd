//! What the agent reports: the [`Verdict`] on a device or identity, the
//! [`TrustAction`] it took, and the [`TrustDecision`] that carries both to
//! the app.

use std::fmt;
use std::time::SystemTime;

use govtrust_verifier::{AuthorityRecord, Error, VerifiedAttestation};
use matrix_sdk::encryption::LocalTrust;
use matrix_sdk::ruma::{OwnedDeviceId, OwnedUserId};

/// What the user is told when the agent blocks devices of an identity it
/// signed earlier.
pub(crate) const SIGNATURE_WARNING: &str =
    "this client signed the agency's cross-signing identity \
     when it was attested; Matrix cannot take that signature back, so the agency's \
     devices are blocked on this device only — other devices of yours may still trust them";

/// What the attestations say about a device or identity: the outcome of
/// the checks, apart from what the agent did about it, so an app can show
/// why a device is (not) trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Attested: the authority record to show. For a device trusted through
    /// its identity, this is the identity's attestation
    /// (`subject == Subject::Identity`).
    Verified(Box<VerifiedAttestation>),
    /// An attestation was found and rejected, for this reason (revocation,
    /// expiry, a key that is not the one in the crypto store, ...).
    Rejected(Error),
    /// No attestation was found.
    NotAttested,
}

impl Verdict {
    /// The stable reason code of a rejection ([`Error::code`]).
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Verdict::Rejected(e) => Some(e.code()),
            _ => None,
        }
    }

    /// A short form that changes exactly when the verdict says something
    /// new (another certificate, another reason), to tell news from
    /// repetition.
    pub(crate) fn summary(&self) -> String {
        match self {
            Verdict::Verified(att) => format!("verified:{}", att.serial),
            Verdict::Rejected(e) => format!("rejected:{}", e.code()),
            Verdict::NotAttested => "none".to_owned(),
        }
    }
}

/// The state the agent leaves a device or identity in: what it did, or
/// why it did nothing, so an app can tell trust the agent set from trust
/// the user set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustAction {
    /// The agent set the device's local trust to `Verified`.
    Trusted,
    /// (Identity) The agent signed the master key with the citizen's
    /// user-signing key; the identity's self-signed devices are verified
    /// through cross-signing.
    SignedIdentity,
    /// (Device) Verified through cross-signing from a signed, attested
    /// identity; the agent sets nothing on the device itself.
    ViaSignedIdentity,
    /// The trust was set by somebody else (the user verified by hand,
    /// blocked or ignored it); the agent does not touch it.
    LeftAlone {
        /// The device's local trust (`Verified` for an identity the user
        /// verified themselves).
        local_trust: LocalTrust,
    },
    /// The agent withdrew the trust it had set (local trust `Unset`).
    Withdrawn,
    /// The agent blocked the device (local trust `BlackListed`).
    Blocked,
    /// Nothing to set and nothing to withdraw.
    NoChange,
}

/// One decision of the agent, as it happens: what an app subscribes to
/// ([`crate::AutoTrustAgent::subscribe`]) to show a badge or a warning.
#[derive(Clone, Debug)]
pub struct TrustDecision {
    /// The user the decision is about.
    pub user_id: OwnedUserId,
    /// The device, or `None` for the user's cross-signing identity.
    pub device_id: Option<OwnedDeviceId>,
    /// What the attestations say.
    pub verdict: Verdict,
    /// What the agent did about it (or the state it left).
    pub action: TrustAction,
    /// Something the user should be told beyond the verdict (e.g. that a
    /// cross-signing signature made earlier cannot be withdrawn).
    pub warning: Option<String>,
    /// When the decision was made.
    pub at: SystemTime,
}

impl TrustDecision {
    /// The verified authority record, if attested.
    pub fn authority(&self) -> Option<&AuthorityRecord> {
        match &self.verdict {
            Verdict::Verified(att) => Some(&att.authority),
            _ => None,
        }
    }

    /// Whether the device or identity ends up trusted because of the
    /// government PKI (by the agent's doing, now or earlier).
    pub fn is_trusted(&self) -> bool {
        matches!(self.verdict, Verdict::Verified(_))
            && matches!(
                self.action,
                TrustAction::Trusted | TrustAction::SignedIdentity | TrustAction::ViaSignedIdentity
            )
    }

    /// The line an app shows next to the account: `Registration Office
    /// Berlin, Donaustraße 29, 12043 Berlin — verified by the government
    /// PKI`. `None` unless attested.
    pub fn badge(&self) -> Option<String> {
        self.authority()
            .map(|a| format!("{a} — verified by the government PKI"))
    }

    /// The subject the decision is about, as the agent keys its latest
    /// decisions.
    pub(crate) fn key(&self) -> (OwnedUserId, Option<OwnedDeviceId>) {
        (self.user_id.clone(), self.device_id.clone())
    }
}

impl fmt::Display for TrustDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.user_id)?;
        match &self.device_id {
            Some(d) => write!(f, " device {d}")?,
            None => f.write_str(" identity")?,
        }
        match &self.verdict {
            Verdict::Verified(att) => write!(
                f,
                ": {} — verified by the government PKI [{}] (serial {})",
                att.authority, att.authority.id, att.serial
            )?,
            Verdict::Rejected(e) => write!(f, ": not trusted ({}): {e}", e.code())?,
            Verdict::NotAttested => f.write_str(": no attestation")?,
        }
        write!(f, "; {:?}", self.action)?;
        if let Some(w) = &self.warning {
            write!(f, "; WARNING: {w}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use govtrust_verifier::PathPosition;

    fn decision(verdict: Verdict, action: TrustAction) -> TrustDecision {
        TrustDecision {
            user_id: OwnedUserId::try_from("@agency:example.org").unwrap(),
            device_id: Some(OwnedDeviceId::from("DEV")),
            verdict,
            action,
            warning: None,
            at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_rejection_is_never_trusted_and_has_no_badge() {
        let revoked = Verdict::Rejected(Error::Revoked {
            position: PathPosition::Leaf,
        });
        let code = revoked.code();
        assert!(code.is_some());
        assert_eq!(
            Some(revoked.summary()),
            code.map(|c| format!("rejected:{c}"))
        );
        let d = decision(revoked, TrustAction::Blocked);
        assert!(!d.is_trusted());
        assert_eq!(d.badge(), None);
        assert!(d
            .to_string()
            .starts_with("@agency:example.org device DEV: not trusted ("));
    }

    #[test]
    fn no_attestation_reads_as_such() {
        let mut d = decision(Verdict::NotAttested, TrustAction::NoChange);
        assert_eq!(d.verdict.code(), None);
        assert_eq!(d.verdict.summary(), "none");
        d.device_id = None;
        d.warning = Some("w".to_owned());
        assert_eq!(
            d.to_string(),
            "@agency:example.org identity: no attestation; NoChange; WARNING: w"
        );
        assert_eq!(d.key().1, None);
    }
}

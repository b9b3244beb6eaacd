//! The pure part of the web verifier: bytes and strings in, a [`Verdict`]
//! out. No JavaScript types here, so the vector generator can run exactly
//! this natively and check the vectors before the browser does.

use std::time::Duration;

use govtrust_verifier::{
    Crl, CrlPolicy, CrlSet, ElementX509Verifier, Error, Expected, TrustAnchors, UnixTime, UserId,
    VerifiedAttestation, VerifiedIdentitySignature, Verifier,
};

/// The outcome of one verification: an attestation that passed every rule,
/// or the rule it broke.
pub type Verdict = Result<VerifiedAttestation, Error>;

/// The CRL policy a web client picks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Reject when no fresh CRL from an issuer on the path was given
    /// (`CrlPolicy::REQUIRE_FRESH`, the default); `false` only for tools.
    pub require_crls: bool,
    /// Reject CRLs whose thisUpdate is older than this many seconds.
    pub crl_max_age_secs: Option<u64>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            require_crls: true,
            crl_max_age_secs: None,
        }
    }
}

impl From<Policy> for CrlPolicy {
    fn from(p: Policy) -> Self {
        CrlPolicy {
            require: p.require_crls,
            max_age: p.crl_max_age_secs.map(Duration::from_secs),
        }
    }
}

/// A verifier with its pinned roots and current CRLs, kept across calls:
/// CRLs are decoded once and their signatures checked once, and issuing
/// CAs already validated cost one signature check on later calls.
#[derive(Debug)]
pub struct Session {
    verifier: Verifier,
    element: ElementX509Verifier,
    crls: CrlSet,
}

/// Decodes DER (or PEM) CRLs into a set.
pub fn crl_set<B: AsRef<[u8]>>(crls: &[B]) -> Result<CrlSet, Error> {
    let mut set = CrlSet::new();
    for der in crls {
        set.push(Crl::from_pem_or_der(der.as_ref())?);
    }
    Ok(set)
}

/// A validation time from seconds since the Unix epoch (JavaScript hands
/// over a float; negative, NaN and fractions are clamped/truncated).
pub fn unix_time(secs: f64) -> UnixTime {
    let secs = if secs.is_finite() && secs > 0.0 {
        secs as u64
    } else {
        0
    };
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

impl Session {
    /// Pins the root(s) of `root_pem` and decodes `crls`.
    pub fn new<B: AsRef<[u8]>>(root_pem: &[u8], crls: &[B], policy: Policy) -> Result<Self, Error> {
        Ok(Session {
            verifier: Verifier::new(TrustAnchors::from_pem(root_pem)?, policy.into()),
            element: ElementX509Verifier::new(TrustAnchors::from_pem(root_pem)?, policy.into()),
            crls: crl_set(crls)?,
        })
    }

    /// Replaces the CRLs (e.g. after fetching newer ones).
    pub fn set_crls<B: AsRef<[u8]>>(&mut self, crls: &[B]) -> Result<(), Error> {
        self.crls = crl_set(crls)?;
        Ok(())
    }

    /// How many CRLs the session holds.
    pub fn crl_count(&self) -> usize {
        self.crls.iter().count()
    }

    /// Verifies `io.govtrust.attestation` content for a device key: the
    /// user, device and key come from the client's own crypto store.
    pub fn verify_device(
        &self,
        content_json: &[u8],
        user_id: &str,
        device_id: &str,
        key_b64: &str,
        time: UnixTime,
    ) -> Verdict {
        let expected = Expected::new(user_id, Some(device_id), key_b64)?;
        self.verifier
            .verify_event(&expected, content_json, &self.crls, time)
    }

    /// Verifies `io.govtrust.attestation` content for a user's
    /// cross-signing master key (identity attestation).
    pub fn verify_identity(
        &self,
        content_json: &[u8],
        user_id: &str,
        master_key_b64: &str,
        time: UnixTime,
    ) -> Verdict {
        let expected = Expected::new(user_id, None, master_key_b64)?;
        self.verifier
            .verify_event(&expected, content_json, &self.crls, time)
    }

    /// Verifies the `io.element.x509` signature on a user's cross-signing
    /// master key object (as `/keys/query` returns it under
    /// `master_keys[user]`): Element's X.509 identity verification, checked
    /// against the same pinned root, CRLs and policy.
    pub fn verify_element_x509(
        &self,
        master_key_json: &[u8],
        user_id: &str,
        time: UnixTime,
    ) -> Result<VerifiedIdentitySignature, Error> {
        let user = UserId::parse(user_id)?;
        self.element
            .verify_master_key(&user, master_key_json, &self.crls, time)
    }
}

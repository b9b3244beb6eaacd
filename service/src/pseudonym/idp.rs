//! Who the citizen is: the identity provider's assertion, turned into a
//! stable citizen ID and a level of assurance.
//!
//! The real identity provider (BundID) authenticates the citizen outside
//! this machine and hands the service a signed assertion — a SAML 2.0
//! `Response` (BundID's interface) or an OIDC ID token — whose persistent
//! subject identifier is the stable ID and whose authentication context
//! (eIDAS `LoA` / `acr`) is the level. An adapter for it implements
//! [`IdentityProvider`]: verify the signature against the IdP's published
//! key, the audience (this service), the validity window and replay, then
//! return [`IdentifiedCitizen`]. None ships yet (docs/operations.md
//! "Pseudonymous citizens").
//!
//! [`StaticTestIdp`] is **an adapter for tests only**: it accepts compact
//! assertions `base64url(JSON) "." base64url(Ed25519 signature)` signed by
//! a key the test holds, so tests can play the IdP. Configuring it in
//! production would let whoever holds that key mint any citizen.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use govtrust_verifier::profile::AssuranceLevel;
use govtrust_verifier::Ed25519Key;
use serde::{Deserialize, Serialize};

use super::derive::CitizenId;

/// A verified identification: the stable ID (personal data; never logged)
/// and the level of assurance the IdP asserted.
#[derive(Debug)]
pub struct IdentifiedCitizen {
    /// The IdP's stable ID of the citizen.
    pub citizen: CitizenId,
    /// eIDAS level of assurance of this authentication.
    pub level: AssuranceLevel,
}

/// Why an assertion was refused. The messages never contain the subject.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdpError {
    /// Not an assertion of the expected form.
    #[error("assertion malformed: {0}")]
    Malformed(&'static str),
    /// The signature does not verify with the IdP's key.
    #[error("assertion signature does not verify")]
    BadSignature,
    /// Issued for another issuer or audience.
    #[error("assertion for another issuer or audience")]
    WrongAudience,
    /// Outside its validity window.
    #[error("assertion expired")]
    Expired,
}

/// Verifies identity-provider assertions. Implementations must check
/// signature, issuer, audience and validity, and must not log the subject.
pub trait IdentityProvider: Send + Sync {
    /// Verifies `assertion` at `now` (seconds since the epoch).
    fn verify(&self, assertion: &str, now: i64) -> Result<IdentifiedCitizen, IdpError>;
}

/// Claims of a [`StaticTestIdp`] assertion.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestAssertion {
    /// Issuer: [`StaticTestIdp::ISSUER`].
    pub iss: String,
    /// Audience: the service's public base URL.
    pub aud: String,
    /// The citizen's stable ID.
    pub sub: String,
    /// Level of assurance.
    pub loa: AssuranceLevel,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

/// Test-only identity provider: trusts compact assertions signed with one
/// Ed25519 key (see the module documentation).
#[derive(Clone, Debug)]
pub struct StaticTestIdp {
    key: Ed25519Key,
    audience: String,
}

impl StaticTestIdp {
    /// The `iss` every test assertion carries.
    pub const ISSUER: &'static str = "govtrust-static-test-idp";

    /// An IdP trusting `key` for assertions addressed to `audience`.
    pub fn new(key: Ed25519Key, audience: impl Into<String>) -> Self {
        StaticTestIdp {
            key,
            audience: audience.into(),
        }
    }

    /// Makes an assertion as the test IdP (for tests: `signer` is the key
    /// pair whose public key the service was configured with).
    pub fn sign(signer: &ring::signature::Ed25519KeyPair, claims: &TestAssertion) -> String {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let signature = signer.sign(&payload);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }
}

impl IdentityProvider for StaticTestIdp {
    fn verify(&self, assertion: &str, now: i64) -> Result<IdentifiedCitizen, IdpError> {
        let (payload, signature) = assertion
            .split_once('.')
            .ok_or(IdpError::Malformed("no signature part"))?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| IdpError::Malformed("payload is not base64url"))?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| IdpError::Malformed("signature is not base64url"))?;
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, self.key.as_bytes())
            .verify(&payload, &signature)
            .map_err(|_| IdpError::BadSignature)?;
        let claims: TestAssertion = serde_json::from_slice(&payload)
            .map_err(|_| IdpError::Malformed("claims are not the expected JSON"))?;
        if claims.iss != Self::ISSUER || claims.aud != self.audience {
            return Err(IdpError::WrongAudience);
        }
        if claims.exp <= now {
            return Err(IdpError::Expired);
        }
        Ok(IdentifiedCitizen {
            citizen: CitizenId::new(claims.sub)
                .map_err(|_| IdpError::Malformed("subject empty or too long"))?,
            level: claims.loa,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn keypair() -> Ed25519KeyPair {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    fn idp(kp: &Ed25519KeyPair) -> StaticTestIdp {
        let key = Ed25519Key::from_bytes(kp.public_key().as_ref().try_into().unwrap());
        StaticTestIdp::new(key, "https://govtrust.example")
    }

    fn claims() -> TestAssertion {
        TestAssertion {
            iss: StaticTestIdp::ISSUER.into(),
            aud: "https://govtrust.example".into(),
            sub: "bundid-4711".into(),
            loa: AssuranceLevel::Substantial,
            exp: 2_000,
        }
    }

    #[test]
    fn accepts_its_own_and_refuses_the_rest() {
        let kp = keypair();
        let ok = idp(&kp)
            .verify(&StaticTestIdp::sign(&kp, &claims()), 1_000)
            .unwrap();
        assert_eq!(ok.level, AssuranceLevel::Substantial);
        assert_eq!(ok.citizen, CitizenId::new("bundid-4711").unwrap());

        let other = keypair();
        assert_eq!(
            idp(&kp)
                .verify(&StaticTestIdp::sign(&other, &claims()), 1_000)
                .unwrap_err(),
            IdpError::BadSignature
        );
        let mut c = claims();
        c.aud = "https://elsewhere.example".into();
        assert_eq!(
            idp(&kp)
                .verify(&StaticTestIdp::sign(&kp, &c), 1_000)
                .unwrap_err(),
            IdpError::WrongAudience
        );
        assert_eq!(
            idp(&kp)
                .verify(&StaticTestIdp::sign(&kp, &claims()), 2_000)
                .unwrap_err(),
            IdpError::Expired
        );
        assert!(matches!(
            idp(&kp).verify("garbage", 1_000),
            Err(IdpError::Malformed(_))
        ));
        // Tampered payload under the original signature.
        let token = StaticTestIdp::sign(&kp, &claims());
        let (_, sig) = token.split_once('.').unwrap();
        let mut c = claims();
        c.loa = AssuranceLevel::High;
        let forged = format!(
            "{}.{sig}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap())
        );
        assert_eq!(
            idp(&kp).verify(&forged, 1_000).unwrap_err(),
            IdpError::BadSignature
        );
        // No error message contains the subject.
        for e in [
            IdpError::BadSignature,
            IdpError::WrongAudience,
            IdpError::Expired,
        ] {
            assert!(!e.to_string().contains("4711"));
        }
    }
}

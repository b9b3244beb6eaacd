//! The enrollment API's bodies (DESIGN.md "Enrollment flow"):
//! `POST /v1/enrollment/challenge` and `POST /v1/enrollment`, and the object
//! a device signs for `signature` proof of possession.
//!
//! Both request bodies refuse unknown fields: a misspelt optional field
//! must be an error, not silently the default.
//!
//! Three kinds: `device` and `identity` attestations (published as
//! `io.govtrust.attestation` state events), and `identity_signing`, an
//! identity-signing certificate (docs/profile.md §5.7) for the agency's RSA
//! key, with which the agency signs the user's master key in Element's
//! `io.element.x509` format itself. The proof of possession and the
//! homeserver cross-check of `identity_signing` are those of `identity`;
//! the request also carries the RSA key ([`EnrollRequest::rsa_public_key`],
//! checked by [`EnrollRequest::validate`]).
//!
//! A fourth kind, `citizen`, is a citizen attestation (EKU ARC.6,
//! docs/profile.md §5.8) for the device of a pseudonymous citizen. Its
//! caller is not an agency but a citizen with a fresh identity-provider
//! assertion, so it has its own bodies ([`CitizenChallengeRequest`],
//! [`CitizenEnrollRequest`]) at `POST /v1/pseudonyms/enrollment/challenge`
//! and `POST /v1/pseudonyms/enrollment`; they become the same
//! [`ChallengeRequest`] and [`EnrollRequest`] with kind `citizen`, proven
//! exactly like `device`. The agency endpoints refuse kind `citizen`.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Smallest RSA modulus an identity-signing key may have, in bits.
pub const RSA_MIN_BITS: usize = 2048;
/// Largest RSA modulus an identity-signing key may have, in bits (ring's
/// verification limit).
pub const RSA_MAX_BITS: usize = 8192;
/// Largest accepted `rsa_public_key` (base64 text): an 8192-bit SPKI is
/// about 1.1 KB of DER.
const RSA_SPKI_MAX_B64: usize = 4096;

/// Which certificate an enrollment issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The device's own Ed25519 key.
    Device,
    /// The user's cross-signing master key.
    Identity,
    /// An identity-signing certificate (EKU ARC.5) for the agency's RSA
    /// key, bound to the user; proven like `identity` (the device and the
    /// user's master key), not published as a state event.
    IdentitySigning,
    /// A citizen attestation (EKU ARC.6) for the device of a pseudonymous
    /// citizen, at the identity provider's level of assurance; proven like
    /// `device`, requested only through the citizen endpoints, not
    /// published as a state event.
    Citizen,
}

impl Kind {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Device => "device",
            Kind::Identity => "identity",
            Kind::IdentitySigning => "identity_signing",
            Kind::Citizen => "citizen",
        }
    }

    /// Whether the proven and certified key is the device's own Ed25519
    /// key (and the certificate names the device).
    pub fn attests_device(self) -> bool {
        matches!(self, Kind::Device | Kind::Citizen)
    }

    /// Whether the proven key is the user's cross-signing master key (and
    /// the device must be signed by the user's self-signing key).
    pub fn proves_master_key(self) -> bool {
        matches!(self, Kind::Identity | Kind::IdentitySigning)
    }
}

/// How the agency proves it controls the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Proof {
    /// The service sends a secret Olm-encrypted to exactly that device; the
    /// agency returns it. Works with stock matrix-sdk 0.18.
    #[default]
    ToDevice,
    /// The service returns a nonce; the device signs the signing payload
    /// with its Ed25519 key (Matrix signing rules: canonical JSON).
    Signature,
}

impl Proof {
    /// The name the API and the store use.
    pub fn as_str(self) -> &'static str {
        match self {
            Proof::ToDevice => "to_device",
            Proof::Signature => "signature",
        }
    }
}

/// `POST /v1/enrollment/challenge`
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// Device or identity attestation.
    pub kind: Kind,
    /// The agency's Matrix user.
    pub user_id: String,
    /// The device that receives (or signs) the challenge. For identity
    /// enrollment: a device of the user signed by its self-signing key.
    pub device_id: String,
    /// Proof of possession method.
    #[serde(default)]
    pub proof: Proof,
}

/// Answer to a challenge request.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ChallengeResponse {
    /// The proof method in force.
    pub proof: Proof,
    /// Milliseconds since the Unix epoch after which the challenge is void.
    pub expires_at: i64,
    /// With `signature` proof: the object the device signs (canonical JSON,
    /// Matrix signing rules), containing the nonce. Absent for `to_device`,
    /// where the secret only ever travels to the device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_payload: Option<serde_json::Value>,
}

/// `POST /v1/enrollment`
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// Device or identity attestation.
    pub kind: Kind,
    /// The agency's Matrix user.
    pub user_id: String,
    /// The device the challenge went to.
    pub device_id: String,
    /// The key to attest (device key or master key), standard base64.
    pub key: String,
    /// The secret the device received (`to_device`) or the nonce (`signature`).
    pub challenge: String,
    /// With `signature` proof: the device's Ed25519 signature over the
    /// signing payload, base64.
    #[serde(default)]
    pub signature: Option<String>,
    /// Wait up to this many milliseconds for the state event to be
    /// published, to return its event ID (default 3000, at most 10000).
    #[serde(default)]
    pub wait_for_event_ms: Option<u64>,
    /// `identity_signing` only (and required there): the RSA public key the
    /// agency signs with, as SubjectPublicKeyInfo DER (rsaEncryption,
    /// 2048 to 8192 bits), standard base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rsa_public_key: Option<String>,
}

/// Why an enrollment request is malformed ([`EnrollRequest::validate`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnrollRequestError {
    /// `identity_signing` without `rsa_public_key`.
    #[error("identity_signing enrollment needs \"rsa_public_key\"")]
    RsaKeyMissing,
    /// `rsa_public_key` with another kind.
    #[error("\"rsa_public_key\" is only allowed with kind identity_signing")]
    RsaKeyUnexpected,
    /// Not base64, or too long.
    #[error("rsa_public_key is not standard base64 of at most {RSA_SPKI_MAX_B64} characters")]
    RsaKeyEncoding,
    /// Not one DER SubjectPublicKeyInfo.
    #[error("rsa_public_key is not a DER SubjectPublicKeyInfo: {0}")]
    RsaKeyNotSpki(String),
    /// A SubjectPublicKeyInfo of another algorithm.
    #[error("rsa_public_key is not an RSA (rsaEncryption) key")]
    RsaKeyNotRsa,
    /// An RSA key outside 2048 to 8192 bits.
    #[error(
        "rsa_public_key has {0} bits; identity-signing keys have {RSA_MIN_BITS} to {RSA_MAX_BITS}"
    )]
    RsaKeySize(usize),
}

/// An RSA public key that passed [`parse_rsa_spki`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsaSpki {
    /// The SubjectPublicKeyInfo DER, exactly as submitted.
    pub der: Vec<u8>,
    /// Modulus length in bits.
    pub bits: usize,
}

/// Decodes and checks an identity-signing key: standard base64 (padding
/// optional) of exactly one DER SubjectPublicKeyInfo, rsaEncryption with
/// NULL parameters, modulus of 2048 to 8192 bits.
pub fn parse_rsa_spki(b64: &str) -> Result<RsaSpki, EnrollRequestError> {
    if b64.len() > RSA_SPKI_MAX_B64 {
        return Err(EnrollRequestError::RsaKeyEncoding);
    }
    let der = STANDARD
        .decode(b64)
        .or_else(|_| STANDARD_NO_PAD.decode(b64))
        .map_err(|_| EnrollRequestError::RsaKeyEncoding)?;
    let (rest, spki) = SubjectPublicKeyInfo::from_der(&der)
        .map_err(|e| EnrollRequestError::RsaKeyNotSpki(e.to_string()))?;
    if !rest.is_empty() {
        return Err(EnrollRequestError::RsaKeyNotSpki(
            "trailing bytes after the SubjectPublicKeyInfo".into(),
        ));
    }
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
        return Err(EnrollRequestError::RsaKeyNotRsa);
    }
    let bits = match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => modulus_bits(rsa.modulus),
        Ok(_) => return Err(EnrollRequestError::RsaKeyNotRsa),
        Err(e) => return Err(EnrollRequestError::RsaKeyNotSpki(e.to_string())),
    };
    if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        return Err(EnrollRequestError::RsaKeySize(bits));
    }
    Ok(RsaSpki { der, bits })
}

/// The bit length of a big-endian unsigned integer.
fn modulus_bits(modulus: &[u8]) -> usize {
    let start = modulus
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(modulus.len());
    match modulus.get(start) {
        Some(first) => (modulus.len() - start - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    }
}

impl EnrollRequest {
    /// Checks the fields that depend on the kind: `rsa_public_key` is
    /// required with `identity_signing` (and must be a valid key, which is
    /// returned) and refused otherwise.
    pub fn validate(&self) -> Result<Option<RsaSpki>, EnrollRequestError> {
        match (self.kind, self.rsa_public_key.as_deref()) {
            (Kind::IdentitySigning, Some(key)) => parse_rsa_spki(key).map(Some),
            (Kind::IdentitySigning, None) => Err(EnrollRequestError::RsaKeyMissing),
            (_, Some(_)) => Err(EnrollRequestError::RsaKeyUnexpected),
            (_, None) => Ok(None),
        }
    }
}

/// `POST /v1/pseudonyms/enrollment/challenge`: a citizen asks for a
/// challenge to its pseudonym's device (kind `citizen`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CitizenChallengeRequest {
    /// A fresh identity-provider assertion about the citizen (the same
    /// the citizen presents to `POST /v1/pseudonyms`).
    pub assertion: String,
    /// The authority the pseudonym belongs to.
    pub authority_id: String,
    /// The pseudonymous user, exactly `@<pseudonym>:<server>` for this
    /// citizen and authority.
    pub user_id: String,
    /// The pseudonym's device that receives (or signs) the challenge.
    pub device_id: String,
    /// Proof of possession method.
    #[serde(default)]
    pub proof: Proof,
}

impl CitizenChallengeRequest {
    /// The enrollment flow's challenge request (kind `citizen`).
    pub fn challenge_request(&self) -> ChallengeRequest {
        ChallengeRequest {
            kind: Kind::Citizen,
            user_id: self.user_id.clone(),
            device_id: self.device_id.clone(),
            proof: self.proof,
        }
    }
}

/// `POST /v1/pseudonyms/enrollment`: the citizen answers the challenge and
/// gets the citizen attestation (kind `citizen`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CitizenEnrollRequest {
    /// A fresh identity-provider assertion about the citizen; its level of
    /// assurance is the one certified.
    pub assertion: String,
    /// The authority the pseudonym belongs to.
    pub authority_id: String,
    /// The pseudonymous user, as in the challenge.
    pub user_id: String,
    /// The device the challenge went to.
    pub device_id: String,
    /// The device's Ed25519 key, standard base64.
    pub key: String,
    /// The secret the device received (`to_device`) or the nonce (`signature`).
    pub challenge: String,
    /// With `signature` proof: the device's Ed25519 signature over the
    /// signing payload, base64.
    #[serde(default)]
    pub signature: Option<String>,
}

impl CitizenEnrollRequest {
    /// The enrollment flow's request (kind `citizen`; nothing is
    /// published, so no wait).
    pub fn enroll_request(&self) -> EnrollRequest {
        EnrollRequest {
            kind: Kind::Citizen,
            user_id: self.user_id.clone(),
            device_id: self.device_id.clone(),
            key: self.key.clone(),
            challenge: self.challenge.clone(),
            signature: self.signature.clone(),
            wait_for_event_ms: None,
            rsa_public_key: None,
        }
    }
}

/// A successful enrollment.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EnrollResponse {
    /// Certificate serial, hex.
    pub serial: String,
    /// The chain, leaf first, standard base64 DER (as in the state event).
    pub chain: Vec<String>,
    /// The chain as PEM.
    pub chain_pem: String,
    /// RFC 3339 end of validity.
    pub not_after: String,
    /// State key of the `io.govtrust.attestation` event; empty (and left
    /// out) for `identity_signing` and `citizen`, which publish no event.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state_key: String,
    /// The event ID once published; `null` if publication is pending
    /// (the outbox retries until the homeserver takes it) or nothing is
    /// published (`identity_signing`, `citizen`).
    pub event_id: Option<String>,
}

/// The object a device signs for `signature` proof: it names the
/// challenge, the user, the device and the service (`service`: its public
/// base URL), so a signature made for one enrollment cannot be replayed to
/// another service or for another device.
pub fn signing_payload(service: &str, nonce: &str, user: &str, device: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "io.govtrust.enrollment",
        "challenge": nonce,
        "user_id": user,
        "device_id": device,
        "service": service,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test-only public keys (openssl genrsa / ecparam).
    const RSA_2048: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAyxxJ37mwOz+s4k4qVuu8P43B0IFXVPatwT1EJqVku4u9y4eumeP2TKssMQuMiVmAzIRArFoPU3VrI4ZGPX9lhGYkEOfRfmYUzrFBQHoZ4qdLpr9UZGEp68ak1r/e2S5JxrSodjteKi1Kq5N9eECVi70zrWfZ3NPHFie5Go9yHiazAzSMif5t+zvCZMruj2AMr+ZB8IcT66cR8yf03Lx6ZPPuR2dOcbdGpHmAdL+zQzcKdLkwvSduK8WVt502A7IVNTTQvA0NV3fo3gPun6qUv42QBKW1Sw5xm/p6udyaD9iyadqjD5Y1VpfFcZRAmjUeTVsFm1GyuhhreFTHqE5UjwIDAQAB";
    const RSA_1024: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCoEXj4BVNImYqWafr9V8T/Hp4StTm33I4VrMJjF/cXExaBxkaLv5YXKPFDikThXdGI+2KaVyzz98iCiPySA4HotDOAhQEEKyaHpGn9gyZQPMUp3pzrO4lfH5+r6kNqJzd7EpyV+cxFbRkjekZTICIvEk7wi7XXc1AtGlE6erqaWQIDAQAB";
    const P256: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEvkJyHfdqfKtAhE0m0XhMy77is58FyG/SMC55lOCTq/SHtsmdEPOXYCNvI0YFK92CpsmUMtqkRQeaJN/OYkRD/Q==";

    fn request(kind: Kind, rsa: Option<&str>) -> EnrollRequest {
        EnrollRequest {
            kind,
            user_id: "@a:example.org".into(),
            device_id: "D".into(),
            key: String::new(),
            challenge: "c".into(),
            signature: None,
            wait_for_event_ms: None,
            rsa_public_key: rsa.map(str::to_owned),
        }
    }

    #[test]
    fn identity_signing_takes_an_rsa_key_of_2048_to_8192_bits() {
        let key = request(Kind::IdentitySigning, Some(RSA_2048))
            .validate()
            .expect("valid")
            .expect("key");
        assert_eq!(key.bits, 2048);
        assert_eq!(
            request(Kind::IdentitySigning, Some(RSA_1024)).validate(),
            Err(EnrollRequestError::RsaKeySize(1024))
        );
        assert_eq!(
            request(Kind::IdentitySigning, Some(P256)).validate(),
            Err(EnrollRequestError::RsaKeyNotRsa)
        );
        assert_eq!(
            request(Kind::IdentitySigning, Some("%%%")).validate(),
            Err(EnrollRequestError::RsaKeyEncoding)
        );
        assert!(matches!(
            request(Kind::IdentitySigning, Some("AAAA")).validate(),
            Err(EnrollRequestError::RsaKeyNotSpki(_))
        ));
        assert_eq!(
            request(Kind::IdentitySigning, None).validate(),
            Err(EnrollRequestError::RsaKeyMissing)
        );
    }

    #[test]
    fn other_kinds_refuse_an_rsa_key() {
        assert_eq!(request(Kind::Identity, None).validate(), Ok(None));
        assert_eq!(
            request(Kind::Device, Some(RSA_2048)).validate(),
            Err(EnrollRequestError::RsaKeyUnexpected)
        );
    }

    #[test]
    fn wire_names() {
        let kind: Kind = serde_json::from_str("\"identity_signing\"").expect("kind");
        assert_eq!(kind, Kind::IdentitySigning);
        assert_eq!(kind.as_str(), "identity_signing");
        assert!(kind.proves_master_key() && !Kind::Device.proves_master_key());
        let body = serde_json::to_value(request(Kind::Device, None)).expect("json");
        assert!(body.get("rsa_public_key").is_none());
        let citizen: Kind = serde_json::from_str("\"citizen\"").expect("kind");
        assert_eq!(citizen, Kind::Citizen);
        assert_eq!(citizen.as_str(), "citizen");
        assert!(citizen.attests_device() && !citizen.proves_master_key());
        assert!(!Kind::Identity.attests_device());
    }

    #[test]
    fn citizen_bodies_become_citizen_kind_requests() {
        let challenge: CitizenChallengeRequest = serde_json::from_value(serde_json::json!({
            "assertion": "a.b", "authority_id": "DE-1", "user_id": "@p-x:s", "device_id": "D"
        }))
        .expect("challenge body");
        let request = challenge.challenge_request();
        assert_eq!(request.kind, Kind::Citizen);
        assert_eq!(request.proof, Proof::ToDevice);
        let enroll: CitizenEnrollRequest = serde_json::from_value(serde_json::json!({
            "assertion": "a.b", "authority_id": "DE-1", "user_id": "@p-x:s", "device_id": "D",
            "key": "k", "challenge": "c"
        }))
        .expect("enroll body");
        let request = enroll.enroll_request();
        assert_eq!(request.kind, Kind::Citizen);
        assert_eq!(request.validate(), Ok(None));
        // Unknown fields (a kind, an RSA key) are refused, not ignored.
        assert!(
            serde_json::from_value::<CitizenEnrollRequest>(serde_json::json!({
                "assertion": "a.b", "authority_id": "DE-1", "user_id": "@p-x:s", "device_id": "D",
                "key": "k", "challenge": "c", "rsa_public_key": "x"
            }))
            .is_err()
        );
    }
}

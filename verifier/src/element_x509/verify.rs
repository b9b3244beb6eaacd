//! Verification of an `io.element.x509` signature: the cross-signing master
//! key object ([`ElementX509Verifier::verify_master_key`]), one CMS
//! signature value over caller-computed bytes
//! ([`ElementX509Verifier::verify_signature`]) and the RSASSA-PSS-SHA512
//! signature over a message by a checked signer chain
//! ([`ElementX509Verifier::verify_signer`]).
//!
//! It exists as the entry point that ties the CMS profile
//! ([`super::cms`]), the signer rules ([`super::signer`]) and canonical
//! JSON ([`crate::canonical_json`]) together, in the documented order of
//! checks.

use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Serialize;
use serde_json::{Map, Value};

use super::cert::parse_cert;
use super::{parse_cms_pem, VerifiedSigner, KEY_ID_PREFIX, MAX_MASTER_KEY_BYTES};
use crate::canonical_json::signing_bytes;
use crate::path::TrustAnchors;
use crate::{CrlPolicy, CrlSet, Ed25519Key, Error, UserId};

/// A master key whose `io.element.x509` signature passed every rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifiedIdentitySignature {
    /// The user, the signer certificate and the authority record.
    pub signer: VerifiedSigner,
    /// The master key (its one `ed25519:` key) that is now vouched for.
    pub master_key: Ed25519Key,
}

/// Verifies `io.element.x509` signatures against pinned govtrust roots under
/// a CRL policy.
#[derive(Debug)]
pub struct ElementX509Verifier {
    pub(super) anchors: TrustAnchors,
    pub(super) crl_policy: CrlPolicy,
}

impl ElementX509Verifier {
    /// A verifier that trusts `anchors` and applies `crl_policy`.
    pub fn new(anchors: TrustAnchors, crl_policy: CrlPolicy) -> Self {
        ElementX509Verifier {
            anchors,
            crl_policy,
        }
    }

    /// Verifies the `io.element.x509` signature of a cross-signing master
    /// key object (the JSON as `/keys/query` returns it under
    /// `master_keys[user]`) for `user`, at `now`, with `crls`.
    ///
    /// Order of the checks (the first failure is the reason):
    /// the object is JSON ≤ [`MAX_MASTER_KEY_BYTES`] (`master_key_invalid`);
    /// its `user_id` is `user` (`user_mismatch`); `usage` lists `master`
    /// and `keys` holds exactly one `ed25519:<k>` = `k`
    /// (`master_key_invalid`); `signatures[user]` has an
    /// `io.element.x509:*` entry (`identity_signature_missing`); then
    /// [`ElementX509Verifier::verify_signature`] over [`signing_bytes`].
    /// If several `io.element.x509` entries exist, the first that verifies
    /// wins; if none does, the first one's reason is returned.
    pub fn verify_master_key(
        &self,
        user: &UserId,
        master_key_json: &[u8],
        crls: &CrlSet,
        now: UnixTime,
    ) -> Result<VerifiedIdentitySignature, Error> {
        if master_key_json.len() > MAX_MASTER_KEY_BYTES {
            return Err(Error::MasterKeyInvalid(format!(
                "{} bytes, above the limit of {MAX_MASTER_KEY_BYTES}",
                master_key_json.len()
            )));
        }
        let object: Map<String, Value> = serde_json::from_slice(master_key_json)
            .map_err(|e| Error::MasterKeyInvalid(format!("not a JSON object: {e}")))?;
        let found = object.get("user_id").and_then(Value::as_str);
        if found != Some(user.as_str()) {
            return Err(Error::UserMismatch {
                expected: user.to_string(),
                found: found.unwrap_or("(no user_id)").to_owned(),
            });
        }
        let is_master = object
            .get("usage")
            .and_then(Value::as_array)
            .is_some_and(|u| u.iter().any(|v| v.as_str() == Some("master")));
        if !is_master {
            return Err(Error::MasterKeyInvalid(
                "usage does not list \"master\"".into(),
            ));
        }
        let master_key = master_key_of(&object)?;
        let signatures: Vec<(&String, &Value)> = object
            .get("signatures")
            .and_then(Value::as_object)
            .and_then(|s| s.get(user.as_str()))
            .and_then(Value::as_object)
            .map(|sigs| {
                sigs.iter()
                    .filter(|(id, _)| id.starts_with(KEY_ID_PREFIX))
                    .collect()
            })
            .unwrap_or_default();
        if signatures.is_empty() {
            return Err(Error::IdentitySignatureMissing);
        }
        let message = signing_bytes(&object).map_err(|e| Error::MasterKeyInvalid(e.to_string()))?;
        let mut first_error = None;
        for (key_id, value) in signatures {
            let result = match value.as_str() {
                Some(pem) => self.verify_signature(user, key_id, &message, pem, crls, now),
                None => Err(Error::CmsMalformed("the signature is not a string".into())),
            };
            match result {
                Ok(signer) => return Ok(VerifiedIdentitySignature { signer, master_key }),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(Error::IdentitySignatureMissing))
    }

    /// Verifies one signature value (`cms_pem`, published under `key_id`)
    /// over `message` — the signed bytes the caller computed, e.g. with
    /// ruma's canonical JSON — for `user`.
    ///
    /// Order: the CMS profile ([`parse_cms_pem`]: `cms_*` reasons); the
    /// signer certificate's EKU, if present, is exactly ARC.5
    /// (`wrong_eku`); path validation to a pinned root and revocation of
    /// every certificate on the path under the CRL policy, exactly as for
    /// attestations (`unknown_issuer`, `bad_signature`, `expired`,
    /// `revoked`, `crl_stale`, …); the signer certificate: EKU present
    /// (`wrong_eku`), key usage critical digitalSignature only
    /// (`wrong_key_usage`), not a CA (`leaf_is_ca`), RSA key
    /// (`key_not_rsa`), SAN exactly the user's `matrix:u/` URI
    /// (`san_invalid`, `user_mismatch`), authority record
    /// (`authority_record_invalid`); the issuing CA lists ARC.5
    /// (`issuer_eku_missing`) and permits the user's server
    /// (`server_not_permitted`); `key_id` names the root's SKI
    /// (`key_id_mismatch`); the RSASSA-PSS-SHA512 signature verifies
    /// (`identity_signature_invalid`).
    pub fn verify_signature(
        &self,
        user: &UserId,
        key_id: &str,
        message: &[u8],
        cms_pem: &str,
        crls: &CrlSet,
        now: UnixTime,
    ) -> Result<VerifiedSigner, Error> {
        let cms = parse_cms_pem(cms_pem)?;
        let signer = self.verify_signer(user, &cms.chain, &cms.signature, message, crls, now)?;
        if signer.key_id != key_id {
            return Err(Error::KeyIdMismatch {
                expected: signer.key_id,
                found: key_id.to_owned(),
            });
        }
        Ok(signer)
    }

    /// Checks a signer chain (signer certificate first) for `user` and the
    /// RSASSA-PSS-SHA512 `signature` over `message`: every rule of
    /// [`ElementX509Verifier::verify_signature`] except the CMS profile and
    /// the key ID, which the caller does not have in the matrix-rust-sdk
    /// adapter shape.
    pub fn verify_signer(
        &self,
        user: &UserId,
        chain: &[CertificateDer<'_>],
        signature: &[u8],
        message: &[u8],
        crls: &CrlSet,
        now: UnixTime,
    ) -> Result<VerifiedSigner, Error> {
        let (signer, leaf_der) = self.check_signer_certificate(user, chain, crls, now)?;
        let leaf = parse_cert(leaf_der, "identity-signing certificate")?;
        let rsa_public_key = &leaf.public_key().subject_public_key.data;
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PSS_2048_8192_SHA512,
            rsa_public_key.as_ref(),
        )
        .verify(message, signature)
        .map_err(|_| Error::IdentitySignatureInvalid)?;
        Ok(signer)
    }
}

/// The master key object's one Ed25519 key (`keys` = {`ed25519:<k>`: `<k>`}).
fn master_key_of(object: &Map<String, Value>) -> Result<Ed25519Key, Error> {
    let bad = |why: &str| Error::MasterKeyInvalid(why.to_owned());
    let keys = object
        .get("keys")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("no keys map"))?;
    let mut entries = keys.iter();
    let (Some((key_id, value)), None) = (entries.next(), entries.next()) else {
        return Err(bad("keys must hold exactly one key"));
    };
    let value = value
        .as_str()
        .ok_or_else(|| bad("the key is not a string"))?;
    if key_id.strip_prefix("ed25519:") != Some(value) {
        return Err(bad("the key ID does not match the key"));
    }
    Ed25519Key::from_base64(value).map_err(|e| bad(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_master_key_without_canonical_json_is_master_key_invalid() {
        let root: &[u8] = include_bytes!("../../../certs-example/ca/root/cert.pem");
        let verifier = ElementX509Verifier::new(
            TrustAnchors::from_pem(root).expect("govtrust root"),
            CrlPolicy::ALLOW_MISSING,
        );
        let key = "l1wYJ/rW4nOpU5eL5Xy0GWpGZZM4ovDE3OnGzZb43Bw";
        let object = serde_json::json!({
            "user_id": "@alice:example.org",
            "usage": ["master"],
            "keys": { format!("ed25519:{key}"): key },
            "amount": 1.5,
            "signatures": { "@alice:example.org": { "io.element.x509:AAAA": "x" } },
        });
        let user = UserId::parse("@alice:example.org").expect("user");
        let verdict = verifier.verify_master_key(
            &user,
            object.to_string().as_bytes(),
            &CrlSet::new(),
            UnixTime::now(),
        );
        assert_eq!(verdict.map_err(|e| e.code()), Err("master_key_invalid"));
    }
}

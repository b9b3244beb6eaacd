//! Checks on what `/keys/query` serves: device keys and cross-signing keys.
//!
//! Synapse does not check signatures when keys are uploaded, and the
//! homeserver is untrusted anyway, so enrollment must not believe a device
//! key or a cross-signing key unless its signature verifies. This module
//! implements the Matrix signing rules ("Signing JSON" in the spec): the
//! signed bytes are the canonical JSON of the object without its
//! `signatures` and `unsigned` members, and the signature is Ed25519 by the
//! key named in `signatures[<user>][<key id>]`.
//!
//! Everything here is pure (JSON in, verdict out), so it is unit-tested
//! with the spec's test vectors as well as against real Synapse.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use govtrust_verifier::Ed25519Key;
use ring::signature::{UnparsedPublicKey, ED25519};
use ruma_common::CanonicalJsonValue;
use serde_json::{Map, Value};

use crate::Error;

/// Results of this module.
type Result<T> = std::result::Result<T, Error>;

/// A device as `/keys/query` served it, with the result of checking its
/// self-signature.
///
/// `ed25519` is the key an attestation certificate binds; it is only worth
/// certifying when `self_signed` is true.
#[derive(Clone, Debug, PartialEq)]
pub struct QueriedDevice {
    /// The owner, as requested (and as the signed object states).
    pub user_id: String,
    /// The device ID, as requested (and as the signed object states).
    pub device_id: String,
    /// The device's `ed25519:<device_id>` key.
    pub ed25519: Ed25519Key,
    /// The device's `curve25519:<device_id>` key, unpadded base64.
    pub curve25519: String,
    /// Whether the object carries a valid signature by its own Ed25519 key.
    pub self_signed: bool,
    /// The device's display name from `unsigned` (homeserver-controlled,
    /// informational only).
    pub display_name: Option<String>,
    /// The device object exactly as served, kept so that cross-signing
    /// signatures on it can be checked later.
    json: Map<String, Value>,
}

impl QueriedDevice {
    /// Parses a device-keys object served for `user_id`/`device_id` and
    /// checks its self-signature.
    ///
    /// An object that names another user or device than the one asked for
    /// is an error, not merely "unsigned": a homeserver that answers for the
    /// wrong device must not get that device's key certified.
    pub fn parse(user_id: &str, device_id: &str, json: &str) -> Result<QueriedDevice> {
        let object: Map<String, Value> = serde_json::from_str(json)
            .map_err(|e| Error::InvalidKeys(format!("device keys are not a JSON object: {e}")))?;
        if object.get("user_id").and_then(Value::as_str) != Some(user_id) {
            return Err(Error::InvalidKeys(format!(
                "device keys for {user_id} {device_id} name another user"
            )));
        }
        if object.get("device_id").and_then(Value::as_str) != Some(device_id) {
            return Err(Error::InvalidKeys(format!(
                "device keys for {user_id} {device_id} name another device"
            )));
        }
        let keys = object
            .get("keys")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::InvalidKeys("device keys without a keys map".into()))?;
        let ed25519_b64 = keys
            .get(&format!("ed25519:{device_id}"))
            .and_then(Value::as_str)
            .ok_or_else(|| Error::InvalidKeys(format!("device {device_id} has no ed25519 key")))?;
        let ed25519 = Ed25519Key::from_base64(ed25519_b64)
            .map_err(|e| Error::InvalidKeys(format!("device {device_id}: {e}")))?;
        let curve25519 = keys
            .get(&format!("curve25519:{device_id}"))
            .and_then(Value::as_str)
            .ok_or_else(|| Error::InvalidKeys(format!("device {device_id} has no curve25519 key")))?
            .to_owned();
        let self_signed =
            verify_signed_json(&object, user_id, &format!("ed25519:{device_id}"), &ed25519);
        let display_name = object
            .get("unsigned")
            .and_then(|u| u.get("device_display_name"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(QueriedDevice {
            user_id: user_id.to_owned(),
            device_id: device_id.to_owned(),
            ed25519,
            curve25519,
            self_signed,
            display_name,
            json: object,
        })
    }

    /// The device-keys object as the homeserver served it.
    pub fn json(&self) -> &Map<String, Value> {
        &self.json
    }
}

/// A user's cross-signing identity as `/keys/query` served it, with the
/// result of checking that the self-signing key is signed by the master key.
///
/// The chain that identity enrollment needs is "device ← self-signing key ←
/// master key": check [`QueriedIdentity::self_signing_signed_by_master`] and
/// [`QueriedIdentity::device_signed_by_self_signing`] (or both at once with
/// [`QueriedIdentity::vouches_for`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueriedIdentity {
    /// The user the identity belongs to.
    pub user_id: String,
    /// The cross-signing master key: what an identity certificate binds.
    pub master: Ed25519Key,
    /// The self-signing key, which signs the user's devices.
    pub self_signing: Ed25519Key,
    /// Whether the self-signing key object carries a valid signature by the
    /// master key.
    pub self_signing_signed_by_master: bool,
}

impl QueriedIdentity {
    /// Parses the master and self-signing key objects served for `user_id`
    /// and checks the master key's signature on the self-signing key.
    pub fn parse(user_id: &str, master_json: &str, self_signing_json: &str) -> Result<Self> {
        let master_obj: Map<String, Value> = serde_json::from_str(master_json)
            .map_err(|e| Error::InvalidKeys(format!("master key is not a JSON object: {e}")))?;
        let ssk_obj: Map<String, Value> = serde_json::from_str(self_signing_json).map_err(|e| {
            Error::InvalidKeys(format!("self-signing key is not a JSON object: {e}"))
        })?;
        let master = cross_signing_key(&master_obj, user_id, "master")?;
        let self_signing = cross_signing_key(&ssk_obj, user_id, "self_signing")?;
        let self_signing_signed_by_master = verify_signed_json(
            &ssk_obj,
            user_id,
            &format!("ed25519:{}", master.to_base64()),
            &master,
        );
        Ok(QueriedIdentity {
            user_id: user_id.to_owned(),
            master,
            self_signing,
            self_signing_signed_by_master,
        })
    }

    /// Whether `device` (of this identity's user) carries a valid signature
    /// by this identity's self-signing key.
    pub fn device_signed_by_self_signing(&self, device: &QueriedDevice) -> bool {
        device.user_id == self.user_id
            && verify_signed_json(
                device.json(),
                &self.user_id,
                &format!("ed25519:{}", self.self_signing.to_base64()),
                &self.self_signing,
            )
    }

    /// The whole chain at once: the device is self-signed, signed by the
    /// self-signing key, and the self-signing key is signed by the master
    /// key.
    pub fn vouches_for(&self, device: &QueriedDevice) -> bool {
        device.self_signed
            && self.self_signing_signed_by_master
            && self.device_signed_by_self_signing(device)
    }
}

/// Reads the single Ed25519 key of a cross-signing key object, checking its
/// owner and usage and that the key ID names the key it maps to.
fn cross_signing_key(
    object: &Map<String, Value>,
    user_id: &str,
    usage: &str,
) -> Result<Ed25519Key> {
    let bad = |why: &str| Error::InvalidKeys(format!("{usage} key of {user_id}: {why}"));
    if object.get("user_id").and_then(Value::as_str) != Some(user_id) {
        return Err(bad("names another user"));
    }
    let has_usage = object
        .get("usage")
        .and_then(Value::as_array)
        .is_some_and(|u| u.iter().any(|v| v.as_str() == Some(usage)));
    if !has_usage {
        return Err(bad("wrong usage"));
    }
    let keys = object
        .get("keys")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("no keys map"))?;
    let mut entries = keys.iter();
    let (Some((key_id, value)), None) = (entries.next(), entries.next()) else {
        return Err(bad("must hold exactly one key"));
    };
    let value = value.as_str().ok_or_else(|| bad("key is not a string"))?;
    if key_id.strip_prefix("ed25519:") != Some(value) {
        return Err(bad("key ID does not match the key"));
    }
    Ed25519Key::from_base64(value).map_err(|e| bad(&e.to_string()))
}

/// The bytes that the Matrix signing rules sign for `object`: its canonical
/// JSON without `signatures` and `unsigned`. `None` if the object cannot be
/// expressed in canonical JSON (floats, out-of-range integers), in which
/// case no valid signature can exist.
pub fn signing_bytes(object: &Map<String, Value>) -> Option<Vec<u8>> {
    let mut stripped = object.clone();
    stripped.remove("signatures");
    stripped.remove("unsigned");
    let canonical = CanonicalJsonValue::try_from(Value::Object(stripped)).ok()?;
    Some(canonical.to_string().into_bytes())
}

/// Whether `object` carries a valid Ed25519 signature by `key` under
/// `signatures[signer][key_id]`.
pub fn verify_signed_json(
    object: &Map<String, Value>,
    signer: &str,
    key_id: &str,
    key: &Ed25519Key,
) -> bool {
    let Some(signature) = object
        .get("signatures")
        .and_then(|s| s.get(signer))
        .and_then(|s| s.get(key_id))
        .and_then(Value::as_str)
    else {
        return false;
    };
    let Ok(signature) = STANDARD_NO_PAD
        .decode(signature)
        .or_else(|_| STANDARD.decode(signature))
    else {
        return false;
    };
    let Some(message) = signing_bytes(object) else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, key.as_bytes())
        .verify(&message, &signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};
    use serde_json::json;

    /// The Matrix specification's signing-key test vector (appendix
    /// "Signing JSON"): seed, and the signatures of two objects by
    /// `ed25519:1`.
    const SPEC_SEED_B64: &str = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";

    fn spec_key() -> (Ed25519KeyPair, Ed25519Key) {
        // The spec's seed has non-zero trailing bits, which strict decoders
        // refuse.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_allow_trailing_bits(true)
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
        );
        let seed = lenient.decode(SPEC_SEED_B64).unwrap();
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        let public: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
        (pair, Ed25519Key::from_bytes(public))
    }

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn sign(pair: &Ed25519KeyPair, obj: &mut Map<String, Value>, signer: &str, key_id: &str) {
        let sig = STANDARD_NO_PAD.encode(pair.sign(&signing_bytes(obj).unwrap()));
        let sigs = obj
            .entry("signatures")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .unwrap();
        sigs.entry(signer)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .unwrap()
            .insert(key_id.to_owned(), json!(sig));
    }

    #[test]
    fn spec_test_vectors() {
        let (_, key) = spec_key();
        let empty = object(json!({
            "signatures": {"domain": {"ed25519:1": "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"}}
        }));
        assert!(verify_signed_json(&empty, "domain", "ed25519:1", &key));
        let data = object(json!({
            "two": "Two",
            "one": 1,
            "unsigned": {"ignored": true},
            "signatures": {"domain": {"ed25519:1": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"}}
        }));
        assert!(verify_signed_json(&data, "domain", "ed25519:1", &key));
        // Any change to the signed part breaks it; wrong signer or key ID
        // finds no signature.
        let mut changed = data.clone();
        changed.insert("one".into(), json!(2));
        assert!(!verify_signed_json(&changed, "domain", "ed25519:1", &key));
        assert!(!verify_signed_json(&data, "other", "ed25519:1", &key));
        assert!(!verify_signed_json(&data, "domain", "ed25519:2", &key));
    }

    #[test]
    fn canonical_json_sorts_and_compacts() {
        let obj = object(json!({"b": [1, {"z": "ü", "a": null}], "a": "\u{1}", "signatures": {}}));
        assert_eq!(
            String::from_utf8(signing_bytes(&obj).unwrap()).unwrap(),
            "{\"a\":\"\\u0001\",\"b\":[1,{\"a\":null,\"z\":\"ü\"}]}"
        );
        assert!(signing_bytes(&object(json!({"f": 1.5}))).is_none());
    }

    fn device_json(pair: &Ed25519KeyPair, user: &str, device: &str) -> Map<String, Value> {
        let key = STANDARD_NO_PAD.encode(pair.public_key().as_ref());
        let mut obj = object(json!({
            "user_id": user,
            "device_id": device,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                format!("ed25519:{device}"): key,
                format!("curve25519:{device}"): "Y3VydmU",
            },
        }));
        sign(pair, &mut obj, user, &format!("ed25519:{device}"));
        obj.insert(
            "unsigned".into(),
            json!({"device_display_name": "Agency bot"}),
        );
        obj
    }

    fn new_pair() -> Ed25519KeyPair {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    fn cross_signing_json(pair: &Ed25519KeyPair, user: &str, usage: &str) -> Map<String, Value> {
        let key = STANDARD_NO_PAD.encode(pair.public_key().as_ref());
        object(json!({
            "user_id": user,
            "usage": [usage],
            "keys": {format!("ed25519:{key}"): key},
        }))
    }

    #[test]
    fn device_self_signature() {
        let user = "@agency:gov.example";
        let pair = new_pair();
        let obj = device_json(&pair, user, "DEV1");
        let text = serde_json::to_string(&obj).unwrap();
        let dev = QueriedDevice::parse(user, "DEV1", &text).unwrap();
        assert!(dev.self_signed);
        assert_eq!(
            dev.ed25519.as_bytes().as_slice(),
            pair.public_key().as_ref()
        );
        assert_eq!(dev.curve25519, "Y3VydmU");
        assert_eq!(dev.display_name.as_deref(), Some("Agency bot"));

        // Another device's object, or another user's, is refused outright.
        assert!(QueriedDevice::parse(user, "DEV2", &text).is_err());
        assert!(QueriedDevice::parse("@x:gov.example", "DEV1", &text).is_err());

        // A swapped key (signature by a different key) is not self-signed.
        let mut swapped = obj.clone();
        let other = STANDARD_NO_PAD.encode(new_pair().public_key().as_ref());
        swapped["keys"]["ed25519:DEV1"] = json!(other);
        let dev =
            QueriedDevice::parse(user, "DEV1", &serde_json::to_string(&swapped).unwrap()).unwrap();
        assert!(!dev.self_signed);

        // Unsigned data may change freely; signed data may not.
        let mut relabelled = obj.clone();
        relabelled["unsigned"] = json!({"device_display_name": "Mallory"});
        let text = serde_json::to_string(&relabelled).unwrap();
        assert!(
            QueriedDevice::parse(user, "DEV1", &text)
                .unwrap()
                .self_signed
        );
        let mut stripped = obj.clone();
        stripped.remove("signatures");
        let text = serde_json::to_string(&stripped).unwrap();
        assert!(
            !QueriedDevice::parse(user, "DEV1", &text)
                .unwrap()
                .self_signed
        );

        // Malformed objects are errors.
        for bad in [
            "[]",
            "{\"user_id\":\"@agency:gov.example\",\"device_id\":\"DEV1\"}",
            "{\"user_id\":\"@agency:gov.example\",\"device_id\":\"DEV1\",\"keys\":{\"ed25519:DEV1\":\"AAAA\"}}",
        ] {
            assert!(QueriedDevice::parse(user, "DEV1", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cross_signing_chain() {
        let user = "@agency:gov.example";
        let master = new_pair();
        let ssk = new_pair();
        let device = new_pair();
        let master_b64 = STANDARD_NO_PAD.encode(master.public_key().as_ref());
        let ssk_b64 = STANDARD_NO_PAD.encode(ssk.public_key().as_ref());

        let master_obj = cross_signing_json(&master, user, "master");
        let mut ssk_obj = cross_signing_json(&ssk, user, "self_signing");
        sign(
            &master,
            &mut ssk_obj,
            user,
            &format!("ed25519:{master_b64}"),
        );
        let mut dev_obj = device_json(&device, user, "DEV1");
        sign(&ssk, &mut dev_obj, user, &format!("ed25519:{ssk_b64}"));

        let m = serde_json::to_string(&master_obj).unwrap();
        let s = serde_json::to_string(&ssk_obj).unwrap();
        let id = QueriedIdentity::parse(user, &m, &s).unwrap();
        assert!(id.self_signing_signed_by_master);
        assert_eq!(id.master.to_base64(), master_b64);
        let dev =
            QueriedDevice::parse(user, "DEV1", &serde_json::to_string(&dev_obj).unwrap()).unwrap();
        assert!(dev.self_signed);
        assert!(id.device_signed_by_self_signing(&dev));
        assert!(id.vouches_for(&dev));

        // A device signed only by itself is not vouched for.
        let lone = device_json(&device, user, "DEV1");
        let lone =
            QueriedDevice::parse(user, "DEV1", &serde_json::to_string(&lone).unwrap()).unwrap();
        assert!(!id.device_signed_by_self_signing(&lone));
        assert!(!id.vouches_for(&lone));

        // A self-signing key not signed by the master key breaks the chain.
        let unsigned_ssk =
            serde_json::to_string(&cross_signing_json(&ssk, user, "self_signing")).unwrap();
        let id2 = QueriedIdentity::parse(user, &m, &unsigned_ssk).unwrap();
        assert!(!id2.self_signing_signed_by_master);
        assert!(!id2.vouches_for(&dev));

        // Swapped roles, wrong owner, key ID mismatch: errors.
        assert!(QueriedIdentity::parse(user, &s, &m).is_err());
        assert!(QueriedIdentity::parse("@x:gov.example", &m, &s).is_err());
        let mut mismatched = master_obj.clone();
        mismatched["keys"] = json!({format!("ed25519:{ssk_b64}"): master_b64});
        let mm = serde_json::to_string(&mismatched).unwrap();
        assert!(QueriedIdentity::parse(user, &mm, &s).is_err());
    }
}

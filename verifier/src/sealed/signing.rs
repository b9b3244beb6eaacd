//! The Matrix signing rules applied to sealed documents and receipts:
//! canonical JSON (with failures as `malformed`), the signing bytes, the
//! `document_sha256` hash and adding and checking `ed25519:<device>`
//! signatures.
//!
//! It exists so that the builders ([`super::content`]) and the verifiers
//! ([`super::seal`], [`super::receipt`]) compute the signed bytes in
//! exactly one way, on top of the shared [`crate::canonical_json`].

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{Document, Signatures};
use crate::{Ed25519Key, Error};

/// SHA-256 (lower-case hex) of the canonical JSON of `document`: the value
/// of `document_sha256` and what receipts acknowledge.
pub fn document_sha256(document: &Document) -> Result<String, Error> {
    let value =
        serde_json::to_value(document).map_err(|e| Error::malformed("sealed document", e))?;
    let canonical = canonical(&value, "sealed document")?;
    Ok(hex(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    )
    .as_ref()))
}

/// Lower-case hex SHA-256 of raw bytes (a file sealed as [`Document::File`]).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Canonical JSON (Matrix specification appendix) of `value`.
pub fn canonical_json(value: &Value) -> Result<String, Error> {
    canonical(value, "JSON")
}

fn canonical(value: &Value, what: &'static str) -> Result<String, Error> {
    crate::canonical_json::canonical_json(value).map_err(|e| Error::malformed(what, e))
}

pub(super) fn signing_bytes_of<T: Serialize>(content: &T) -> Result<Vec<u8>, Error> {
    match serde_json::to_value(content) {
        Ok(Value::Object(map)) => object_signing_bytes(&map),
        Ok(_) => Err(Error::malformed("content", "not a JSON object")),
        Err(e) => Err(Error::malformed("content", e)),
    }
}

fn object_signing_bytes(object: &Map<String, Value>) -> Result<Vec<u8>, Error> {
    let mut stripped = object.clone();
    stripped.remove("signatures");
    stripped.remove("unsigned");
    Ok(canonical(&Value::Object(stripped), "content")?.into_bytes())
}

pub(super) fn add_signature(
    signatures: &mut Signatures,
    user: &str,
    device: &str,
    signature: &[u8],
) {
    signatures.entry(user.to_owned()).or_default().insert(
        format!("ed25519:{device}"),
        STANDARD_NO_PAD.encode(signature),
    );
}

/// Checks the signature of `user`'s `ed25519:<device>` over the signing
/// bytes of `object` (the content as received, so unknown order or
/// formatting cannot matter).
pub(super) fn check_signature(
    object: &Map<String, Value>,
    signatures: &Signatures,
    user: &str,
    device: &str,
    key: &Ed25519Key,
) -> Result<(), ()> {
    let signature = signatures
        .get(user)
        .and_then(|by_key| by_key.get(&format!("ed25519:{device}")))
        .ok_or(())?;
    let signature = STANDARD_NO_PAD
        .decode(signature.trim_end_matches('='))
        .map_err(|_| ())?;
    let message = object_signing_bytes(object).map_err(|_| ())?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key.as_bytes())
        .verify(&message, &signature)
        .map_err(|_| ())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_known_vectors() {
        // Matrix specification, appendix "Canonical JSON".
        let cases = [
            (json!({"one": 1, "two": "Two"}), r#"{"one":1,"two":"Two"}"#),
            (json!({"b": "2", "a": "1"}), r#"{"a":"1","b":"2"}"#),
            (
                json!({"auth": {"success": true, "mxid": "@john.doe:example.com",
                  "profile": {"display_name": "John Doe", "three_pids": [
                    {"medium": "email", "address": "john.doe@example.org"},
                    {"medium": "msisdn", "address": "123456789"}]}}}),
                r#"{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}"#,
            ),
            (json!({"a": "日本語"}), r#"{"a":"日本語"}"#),
            (json!({"本": 2, "日": 1}), r#"{"日":1,"本":2}"#),
            (json!({"a": "\u{65e5}"}), r#"{"a":"日"}"#),
            (json!({"a": null}), r#"{"a":null}"#),
            (json!({"a": -0}), r#"{"a":0}"#),
        ];
        for (value, want) in cases {
            assert_eq!(canonical_json(&value).expect("canonical"), want);
        }
        assert_eq!(
            canonical_json(&json!({"amount": 1.5})).map_err(|e| e.code()),
            Err("malformed")
        );
    }

    #[test]
    fn document_hash_is_over_canonical_json() {
        let doc = Document::Json {
            json: json!({"b": 1, "a": "x"}),
        };
        let want = sha256_hex(br#"{"json":{"a":"x","b":1},"kind":"json"}"#);
        assert_eq!(document_sha256(&doc).expect("hash"), want);
    }
}

//! Verification of a citizen's receipt ([`verify_receipt`]): every field
//! bound to the sealed event it answers, and the signature checked with the
//! device key the caller holds in its own crypto store, exactly as
//! attestations are.
//!
//! It exists apart from [`super::seal`] because a receipt carries no
//! certificate: its trust comes from the caller's key, not from the PKI.

use serde::Serialize;
use serde_json::{Map, Value};

use super::content::parse_object;
use super::signing::check_signature;
use super::{ReceiptContent, MAX_RECEIPT_CONTENT_BYTES, SEALED_VERSION};
use crate::{Ed25519Key, Error};

/// A receipt that passed every check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifiedReceipt {
    /// The content as verified.
    pub content: ReceiptContent,
}

/// What a receipt must match: the sealed event it answers and the
/// citizen's device key from the caller's own crypto store.
#[derive(Clone, Debug)]
pub struct ReceiptExpected<'a> {
    /// The room of the sealed event (and of the receipt).
    pub room_id: &'a str,
    /// The sealed event's ID.
    pub event_id: &'a str,
    /// The sealed content's `document_sha256`.
    pub document_sha256: &'a str,
    /// The receipt event's sender.
    pub user_id: &'a str,
    /// The receipt's device, as the caller knows it.
    pub device_id: &'a str,
    /// That device's Ed25519 key, from the caller's crypto store.
    pub key: Ed25519Key,
}

/// Verifies the content of an `io.govtrust.receipt` event against what the
/// caller expects: the sealed event it answers, and the citizen's device
/// key from the caller's own crypto store.
pub fn verify_receipt(
    content_json: &[u8],
    expected: &ReceiptExpected<'_>,
) -> Result<VerifiedReceipt, Error> {
    if content_json.len() > MAX_RECEIPT_CONTENT_BYTES {
        return Err(Error::EventTooLarge {
            size: content_json.len(),
            limit: MAX_RECEIPT_CONTENT_BYTES,
        });
    }
    let (object, content): (Map<String, Value>, ReceiptContent) =
        parse_object(content_json, "receipt")?;
    if content.version != SEALED_VERSION {
        return Err(Error::malformed("receipt", "unsupported version"));
    }
    let fields: [(&'static str, &str, &str); 5] = [
        ("room_id", &content.room_id, expected.room_id),
        ("event_id", &content.event_id, expected.event_id),
        (
            "document_sha256",
            &content.document_sha256,
            expected.document_sha256,
        ),
        ("user_id", &content.user_id, expected.user_id),
        ("device_id", &content.device_id, expected.device_id),
    ];
    for (field, found, wanted) in fields {
        if found != wanted {
            return Err(Error::ReceiptMismatch { field });
        }
    }
    check_signature(
        &object,
        &content.signatures,
        &content.user_id,
        &content.device_id,
        &expected.key,
    )
    .map_err(|()| Error::ReceiptSignatureInvalid)?;
    Ok(VerifiedReceipt { content })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealed::Signatures;
    use serde_json::json;

    fn keypair() -> ring::signature::Ed25519KeyPair {
        // RFC 8032 test 1 secret key.
        let seed = [
            0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec,
            0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03,
            0x1c, 0xae, 0x7f, 0x60,
        ];
        ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).expect("seed")
    }

    fn receipt(key: &ring::signature::Ed25519KeyPair) -> ReceiptContent {
        let mut r = ReceiptContent {
            version: 1,
            room_id: "!room:hs".into(),
            event_id: "$ev".into(),
            document_sha256: "ab".repeat(32),
            received_at: 1_700_000_000_000,
            user_id: "@citizen:hs".into(),
            device_id: "CITDEV".into(),
            signatures: Signatures::new(),
        };
        let sig = key.sign(&r.signing_bytes().expect("bytes"));
        r.add_signature(sig.as_ref());
        r
    }

    fn expected(key: &ring::signature::Ed25519KeyPair) -> ReceiptExpected<'static> {
        use ring::signature::KeyPair;
        let mut pk = [0u8; 32];
        pk.copy_from_slice(key.public_key().as_ref());
        ReceiptExpected {
            room_id: "!room:hs",
            event_id: "$ev",
            document_sha256: Box::leak("ab".repeat(32).into_boxed_str()),
            user_id: "@citizen:hs",
            device_id: "CITDEV",
            key: Ed25519Key::from_bytes(pk),
        }
    }

    #[test]
    fn receipt_accepts_and_each_field_binds() {
        let key = keypair();
        let good = receipt(&key);
        let json = good.to_json().expect("json");
        verify_receipt(json.as_bytes(), &expected(&key)).expect("valid receipt");

        for field in [
            "room_id",
            "event_id",
            "document_sha256",
            "user_id",
            "device_id",
        ] {
            let mut exp = expected(&key);
            match field {
                "room_id" => exp.room_id = "!other:hs",
                "event_id" => exp.event_id = "$other",
                "document_sha256" => exp.document_sha256 = "00",
                "user_id" => exp.user_id = "@other:hs",
                _ => exp.device_id = "OTHER",
            }
            assert_eq!(
                verify_receipt(json.as_bytes(), &exp),
                Err(Error::ReceiptMismatch { field }),
                "{field}"
            );
        }
    }

    #[test]
    fn receipt_signature_binds_content_and_key() {
        let key = keypair();
        let mut tampered = receipt(&key);
        tampered.received_at += 1;
        let json = tampered.to_json().expect("json");
        assert_eq!(
            verify_receipt(json.as_bytes(), &expected(&key)).map_err(|e| e.code()),
            Err("receipt_signature_invalid")
        );
        let other = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[7; 32]).expect("seed");
        let json = receipt(&other).to_json().expect("json");
        assert_eq!(
            verify_receipt(json.as_bytes(), &expected(&key)).map_err(|e| e.code()),
            Err("receipt_signature_invalid")
        );
        let mut unsigned = receipt(&key);
        unsigned.signatures.clear();
        let json = unsigned.to_json().expect("json");
        assert_eq!(
            verify_receipt(json.as_bytes(), &expected(&key)).map_err(|e| e.code()),
            Err("receipt_signature_invalid")
        );
    }

    #[test]
    fn receipt_malformed() {
        let key = keypair();
        for bad in [&b"[]"[..], b"{", br#"{"version":1}"#] {
            assert_eq!(
                verify_receipt(bad, &expected(&key)).map_err(|e| e.code()),
                Err("malformed")
            );
        }
        let mut extra: Value =
            serde_json::from_str(&receipt(&key).to_json().expect("json")).expect("value");
        extra["surprise"] = json!(1);
        assert_eq!(
            verify_receipt(extra.to_string().as_bytes(), &expected(&key)).map_err(|e| e.code()),
            Err("malformed")
        );
    }
}

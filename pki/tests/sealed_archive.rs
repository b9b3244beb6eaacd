//! Archive records of sealed documents (docs/profile.md §15.5):
//! `sealed_archive::verify_record` re-verifies a record offline, and every
//! way a record can be wrong fails with its own code — a tampered record
//! (content, binding fields, receipts, the stored device key), missing or
//! garbled CRLs, a root other than the one the chain leads to.

mod common;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::*;
use govtrust_pki::{AttestationRequest, RevocationReason, RevokedCertificate};
use govtrust_verifier::sealed::{
    document_sha256, Document, ReceiptContent, SealMetadata, SealedContent, SignerRef,
};
use govtrust_verifier::sealed_archive::{
    verify_record, ArchiveRecord, ArchivedReceipt, RecordVerdict, ARCHIVE_VERSION,
};
use govtrust_verifier::{
    CrlPolicy, DeviceId, Ed25519Key, Error, SealedVerifier, Subject, TrustAnchors, UserId,
};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};
use time::OffsetDateTime;

const ROOM: &str = "!decisions:id.bund.example";
const EVENT: &str = "$sealed-event";
const CITIZEN: &str = "@citizen:id.bund.example";
const RECEIPT_DEVICE: &str = "RECEIPTDEV";

fn new_key() -> Ed25519KeyPair {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key")
}

fn public(key: &Ed25519KeyPair) -> Ed25519Key {
    Ed25519Key::from_bytes(key.public_key().as_ref().try_into().expect("32 bytes"))
}

fn ms(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp()).expect("after 1970") * 1000
}

/// A valid archive record: a seal by an attested device key at the
/// fixture's `now`, the issuing CA's and the root's CRLs, and one receipt.
struct Archive {
    record: ArchiveRecord,
    leaf_serial: Vec<u8>,
}

impl Archive {
    fn new() -> Archive {
        let fx = fixture();
        let key = new_key();
        let scenario = fx.scenario(&AttestationRequest {
            user_id: UserId::parse(USER).expect("user"),
            subject: Subject::Device(DeviceId::parse(DEVICE).expect("device")),
            key: public(&key),
            authority: fx.authority.clone(),
        });
        let document = Document::Json {
            json: json!({
                "$schema": "https://schema.fim.example/decision/1.0.json",
                "decision": "approved",
                "fee_cents": 1250,
            }),
        };
        let mut content = SealedContent {
            version: 1,
            room_id: ROOM.into(),
            sender: USER.into(),
            signer: SignerRef {
                user_id: USER.into(),
                device_id: DEVICE.into(),
                key: public(&key).to_base64(),
            },
            metadata: SealMetadata {
                authority_id: fx.authority.id.clone(),
                reference: "AZ 42-2026/0815".into(),
                issued_at: ms(fx.now),
            },
            document_sha256: document_sha256(&document).expect("hash"),
            document,
            chain: scenario
                .chain()
                .iter()
                .map(|c| STANDARD.encode(c))
                .collect(),
            signatures: Default::default(),
        };
        let bytes = content.signing_bytes().expect("signing bytes");
        content.add_signature(key.sign(&bytes).as_ref());

        let citizen = new_key();
        let mut receipt = ReceiptContent {
            version: 1,
            room_id: ROOM.into(),
            event_id: EVENT.into(),
            document_sha256: content.document_sha256.clone(),
            received_at: ms(fx.now) + 2_000,
            user_id: CITIZEN.into(),
            device_id: RECEIPT_DEVICE.into(),
            signatures: Default::default(),
        };
        let bytes = receipt.signing_bytes().expect("signing bytes");
        receipt.add_signature(citizen.sign(&bytes).as_ref());

        Archive {
            record: ArchiveRecord {
                version: ARCHIVE_VERSION,
                room_id: ROOM.into(),
                event_id: EVENT.into(),
                sender: USER.into(),
                origin_server_ts: Some(ms(fx.now) + 500),
                content: serde_json::to_value(&content).expect("content JSON"),
                crls: vec![STANDARD.encode(&fx.ica_crl), STANDARD.encode(&fx.root_crl)],
                receipts: vec![ArchivedReceipt {
                    event_id: "$receipt".into(),
                    sender: CITIZEN.into(),
                    device_key: public(&citizen).to_base64(),
                    content: serde_json::to_value(&receipt).expect("receipt JSON"),
                }],
            },
            leaf_serial: scenario.leaf.serial.clone(),
        }
    }

    fn json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(&self.record).expect("record JSON")
    }

    fn verify_with(&self, verifier: &SealedVerifier) -> Result<RecordVerdict, Error> {
        verify_record(verifier, &self.json())
    }

    fn verify(&self) -> Result<RecordVerdict, Error> {
        self.verify_with(&verifier(CrlPolicy::REQUIRE_FRESH))
    }

    fn code(&self) -> &'static str {
        match self.verify() {
            Ok(_) => "accepted",
            Err(e) => e.code(),
        }
    }

    /// The code of the first receipt's verdict (the seal must verify).
    fn receipt_code(&self) -> &'static str {
        let verdict = self.verify().expect("the seal verifies");
        match &verdict.receipts[0] {
            Ok(_) => "accepted",
            Err(e) => e.code(),
        }
    }
}

fn verifier(policy: CrlPolicy) -> SealedVerifier {
    let fx = fixture();
    SealedVerifier::new(
        TrustAnchors::from_der([fx.root.certificate().der().clone()]).expect("anchors"),
        policy,
    )
}

fn revoked(serial: Vec<u8>, at: OffsetDateTime) -> RevokedCertificate {
    RevokedCertificate {
        serial,
        revoked_at: at,
        reason: RevocationReason::KeyCompromise,
    }
}

fn inner_code(err: &Error) -> Option<&'static str> {
    match err {
        Error::SignerNotAttested(inner) => Some(inner.code()),
        _ => None,
    }
}

#[test]
fn valid_record_verifies_with_its_receipt() {
    let archive = Archive::new();
    let verdict = archive.verify().expect("valid record");
    assert_eq!(verdict.sealed.attestation.authority, fixture().authority);
    assert_eq!(verdict.sealed.revoked_after_signing, None);
    assert_eq!(verdict.receipts.len(), 1);
    let receipt = verdict.receipts[0].as_ref().expect("receipt verifies");
    assert_eq!(receipt.content.user_id, CITIZEN);
}

#[test]
fn record_survives_a_json_round_trip_through_a_file() {
    let archive = Archive::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("record.json");
    std::fs::write(&path, archive.json()).expect("write");
    let bytes = std::fs::read(&path).expect("read");
    let parsed: ArchiveRecord = serde_json::from_slice(&bytes).expect("parse");
    assert_eq!(parsed, archive.record);
    verify_record(&verifier(CrlPolicy::REQUIRE_FRESH), &bytes).expect("valid after reading");
}

// ----- tampered records -----------------------------------------------------

#[test]
fn tampered_document_in_the_record_is_refused() {
    let mut archive = Archive::new();
    archive.record.content["document"]["json"]["decision"] = json!("rejected");
    assert_eq!(archive.code(), "sealed_document_tampered");
}

#[test]
fn tampered_document_with_recomputed_hash_fails_the_signature() {
    let mut archive = Archive::new();
    archive.record.content["document"]["json"]["decision"] = json!("rejected");
    let document: Document =
        serde_json::from_value(archive.record.content["document"].clone()).expect("document");
    archive.record.content["document_sha256"] = json!(document_sha256(&document).expect("hash"));
    assert_eq!(archive.code(), "sealed_signature_invalid");
}

#[test]
fn tampered_metadata_in_the_record_fails_the_signature() {
    let mut archive = Archive::new();
    archive.record.content["metadata"]["reference"] = json!("AZ 1-2020/0001");
    assert_eq!(archive.code(), "sealed_signature_invalid");
    let mut archive = Archive::new();
    // Backdating the seal to before a revocation is a signature failure too.
    archive.record.content["metadata"]["issued_at"] = json!(ms(fixture().now) - 60_000);
    assert_eq!(archive.code(), "sealed_signature_invalid");
}

#[test]
fn record_moved_to_another_room_or_sender_is_refused() {
    let mut archive = Archive::new();
    archive.record.room_id = "!elsewhere:id.bund.example".into();
    assert_eq!(archive.code(), "sealed_wrong_room");
    let mut archive = Archive::new();
    archive.record.sender = "@mallory:id.bund.example".into();
    assert_eq!(archive.code(), "sealed_wrong_sender");
}

#[test]
fn content_removed_or_replaced_is_malformed() {
    let mut archive = Archive::new();
    archive.record.content = Value::Null;
    assert_eq!(archive.code(), "malformed");
    let mut archive = Archive::new();
    archive.record.content["unexpected"] = json!(true);
    assert_eq!(archive.code(), "malformed");
}

#[test]
fn malformed_records_are_refused() {
    let archive = Archive::new();
    let verifier = verifier(CrlPolicy::REQUIRE_FRESH);
    let mut value: Value = serde_json::from_slice(&archive.json()).expect("JSON");
    value["version"] = json!(2);
    let code = |v: &Value| {
        verify_record(&verifier, v.to_string().as_bytes())
            .map(|_| ())
            .map_err(|e| e.code())
    };
    assert_eq!(code(&value), Err("malformed"), "unknown version");
    let mut value: Value = serde_json::from_slice(&archive.json()).expect("JSON");
    value["note"] = json!("added later");
    assert_eq!(code(&value), Err("malformed"), "unknown field");
    let mut value: Value = serde_json::from_slice(&archive.json()).expect("JSON");
    value.as_object_mut().expect("object").remove("crls");
    assert_eq!(code(&value), Err("malformed"), "no crls field");
    for bad in [&b""[..], b"[]", b"{", b"null"] {
        assert_eq!(
            verify_record(&verifier, bad)
                .map(|_| ())
                .map_err(|e| e.code()),
            Err("malformed")
        );
    }
}

#[test]
fn tampered_receipt_fails_its_signature() {
    let mut archive = Archive::new();
    archive.record.receipts[0].content["received_at"] = json!(1);
    assert_eq!(archive.receipt_code(), "receipt_signature_invalid");
}

#[test]
fn receipt_checked_against_another_key_fails() {
    let mut archive = Archive::new();
    archive.record.receipts[0].device_key = public(&new_key()).to_base64();
    assert_eq!(archive.receipt_code(), "receipt_signature_invalid");
    let mut archive = Archive::new();
    archive.record.receipts[0].device_key = "not a key".into();
    assert_eq!(archive.receipt_code(), "invalid_input");
}

#[test]
fn receipt_for_another_event_or_sender_is_a_mismatch() {
    let mut archive = Archive::new();
    archive.record.event_id = "$another-event".into();
    // The seal does not bind the event ID; the receipt does.
    assert_eq!(archive.receipt_code(), "receipt_mismatch");
    let mut archive = Archive::new();
    archive.record.receipts[0].sender = "@someone-else:id.bund.example".into();
    assert_eq!(archive.receipt_code(), "receipt_mismatch");
}

// ----- CRLs -----------------------------------------------------------------

#[test]
fn missing_crls_are_refused_under_require_fresh() {
    let mut archive = Archive::new();
    archive.record.crls.clear();
    let err = archive.verify().expect_err("no CRLs");
    assert_eq!(err.code(), "signer_not_attested");
    assert_eq!(inner_code(&err), Some("crl_missing"));

    // Only the root's CRL: the leaf has none.
    let mut archive = Archive::new();
    archive.record.crls.remove(0);
    let err = archive.verify().expect_err("no CRL for the leaf");
    assert_eq!(inner_code(&err), Some("crl_missing"));

    // Only the issuing CA's: the issuing CA has none.
    let mut archive = Archive::new();
    archive.record.crls.truncate(1);
    let err = archive.verify().expect_err("no CRL for the issuing CA");
    assert_eq!(inner_code(&err), Some("crl_missing"));
}

#[test]
fn missing_crls_are_accepted_when_allowed() {
    let mut archive = Archive::new();
    archive.record.crls.clear();
    archive
        .verify_with(&verifier(CrlPolicy::ALLOW_MISSING))
        .expect("allow-missing policy");
}

#[test]
fn garbled_crls_are_malformed() {
    let mut archive = Archive::new();
    archive.record.crls[0] = "%%% not base64 %%%".into();
    assert_eq!(archive.code(), "malformed");
    let mut archive = Archive::new();
    archive.record.crls[0] = STANDARD.encode(b"not a CRL");
    assert_eq!(archive.code(), "malformed");
}

#[test]
fn crl_of_another_issuer_does_not_count() {
    // The root's CRL stored twice, the issuing CA's left out.
    let fx = fixture();
    let mut archive = Archive::new();
    archive.record.crls = vec![STANDARD.encode(&fx.root_crl), STANDARD.encode(&fx.root_crl)];
    let err = archive.verify().expect_err("no CRL for the leaf");
    assert_eq!(inner_code(&err), Some("crl_missing"));
}

#[test]
fn crl_listing_a_revocation_after_issued_at_keeps_the_record_valid() {
    let fx = fixture();
    let mut archive = Archive::new();
    let at = fx.now + Duration::from_secs(3600);
    let crl = fx.ica_crl_with(
        &[revoked(archive.leaf_serial.clone(), at)],
        at + Duration::from_secs(60),
        CRL_LIFETIME,
    );
    archive.record.crls[0] = STANDARD.encode(crl);
    let verdict = archive.verify().expect("revoked after signing");
    assert_eq!(
        verdict.sealed.revoked_after_signing,
        Some(at.unix_timestamp())
    );
    assert!(verdict.receipts[0].is_ok());
}

#[test]
fn crl_listing_a_revocation_before_issued_at_refuses_the_record() {
    let fx = fixture();
    let mut archive = Archive::new();
    let at = fx.now - Duration::from_secs(600);
    let crl = fx.ica_crl_with(
        &[revoked(archive.leaf_serial.clone(), at)],
        fx.now - Duration::from_secs(300),
        CRL_LIFETIME,
    );
    archive.record.crls[0] = STANDARD.encode(crl);
    assert_eq!(archive.code(), "revoked_before_signing");
}

// ----- roots ----------------------------------------------------------------

#[test]
fn another_root_refuses_the_record() {
    let fx = fixture();
    let archive = Archive::new();
    let other = SealedVerifier::new(
        TrustAnchors::from_der([fx.other_root.certificate().der().clone()]).expect("anchors"),
        CrlPolicy::REQUIRE_FRESH,
    );
    let err = archive.verify_with(&other).expect_err("wrong root");
    assert_eq!(err.code(), "signer_not_attested");
    assert_eq!(inner_code(&err), Some("unknown_issuer"));
}

#[test]
fn root_certificate_added_to_the_stored_chain_does_not_help() {
    // An archive cannot bring its own root: a chain that ends in a
    // self-signed root other than the pinned one is still unknown.
    let fx = fixture();
    let mut archive = Archive::new();
    let other_root = STANDARD.encode(fx.other_root.certificate().der());
    archive.record.content["chain"]
        .as_array_mut()
        .expect("chain")
        .push(json!(other_root));
    // The chain is signed content: changing it breaks the signature first.
    assert_eq!(archive.code(), "sealed_signature_invalid");
}

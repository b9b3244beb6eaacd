//! `io.govtrust.sealed` vectors: real attestation chains from the pki
//! fixture, seals signed with the attested key, and one test per rejection
//! (each fails if its check is removed from `govtrust_verifier::sealed`).

mod common;

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use common::*;
use govtrust_pki::{AttestationRequest, RevocationReason, RevokedCertificate};
use govtrust_verifier::sealed::{
    document_sha256, Document, SealMetadata, SealedContent, SignerRef, MAX_SEALED_CONTENT_BYTES,
};
use govtrust_verifier::{
    CrlPolicy, DeviceId, Ed25519Key, Error, PathPosition, SealedContext, SealedVerifier, Subject,
    TrustAnchors, UserId, VerifiedSealed,
};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};
use time::OffsetDateTime;

const ROOM: &str = "!decisions:id.bund.example";

fn new_key() -> Ed25519KeyPair {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key")
}

fn public(key: &Ed25519KeyPair) -> Ed25519Key {
    Ed25519Key::from_bytes(key.public_key().as_ref().try_into().expect("32 bytes"))
}

fn decision() -> Value {
    json!({
        "$schema": "https://schema.fim.example/decision/1.0.json",
        "decision": "approved",
        "subject": "Wohnsitzanmeldung",
        "fee_cents": 1250,
        "notes": ["Bitte Ausweis mitbringen", "Öffnungszeiten: 8–16 Uhr"],
    })
}

/// A seal and everything to check it: the signer's key, the attestation
/// scenario its chain comes from.
struct Case {
    key: Ed25519KeyPair,
    scenario: Scenario,
    content: SealedContent,
    context_room: String,
    context_sender: String,
}

fn ms(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp()).expect("after 1970") * 1000
}

impl Case {
    /// A valid seal of [`decision`] by an attested device key at `now`.
    fn new() -> Case {
        let fx = fixture();
        let key = new_key();
        let scenario = fx.scenario(&AttestationRequest {
            user_id: UserId::parse(USER).expect("user"),
            subject: Subject::Device(DeviceId::parse(DEVICE).expect("device")),
            key: public(&key),
            authority: fx.authority.clone(),
        });
        let document = Document::Json { json: decision() };
        let content = SealedContent {
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
        let mut case = Case {
            key,
            scenario,
            content,
            context_room: ROOM.into(),
            context_sender: USER.into(),
        };
        case.sign();
        case
    }

    /// (Re-)signs the content with the case's key.
    fn sign(&mut self) {
        self.content.signatures.clear();
        let bytes = self.content.signing_bytes().expect("signing bytes");
        let signature = self.key.sign(&bytes);
        self.content.add_signature(signature.as_ref());
    }

    fn json(&self) -> String {
        self.content.to_json().expect("json")
    }

    fn run_json(&self, json: &[u8]) -> Result<VerifiedSealed, Error> {
        let verifier = SealedVerifier::new(
            TrustAnchors::from_der(self.scenario.anchors.clone()).expect("anchors"),
            self.scenario.policy,
        );
        verifier.verify_sealed(
            json,
            &SealedContext {
                room_id: &self.context_room,
                sender: &self.context_sender,
            },
            &self.scenario.crls(),
        )
    }

    fn run(&self) -> Result<VerifiedSealed, Error> {
        self.run_json(self.json().as_bytes())
    }

    fn code(&self) -> &'static str {
        match self.run() {
            Ok(_) => "accepted",
            Err(e) => e.code(),
        }
    }

    fn leaf_serial(&self) -> Vec<u8> {
        self.scenario.leaf.serial.clone()
    }
}

fn revoked(serial: Vec<u8>, at: OffsetDateTime) -> RevokedCertificate {
    RevokedCertificate {
        serial,
        revoked_at: at,
        reason: RevocationReason::KeyCompromise,
    }
}

#[test]
fn valid_seal_is_accepted_with_the_authority_record() {
    let case = Case::new();
    let verified = case.run().expect("valid seal");
    assert_eq!(verified.attestation.authority, fixture().authority);
    assert!(verified.sealed_by().starts_with("sealed by "));
    assert_eq!(verified.revoked_after_signing, None);
    assert_eq!(verified.content, case.content);
}

#[test]
fn key_order_and_whitespace_do_not_matter() {
    let case = Case::new();
    let value: Value = serde_json::from_str(&case.json()).expect("json");
    let pretty = serde_json::to_string_pretty(&value).expect("pretty");
    case.run_json(pretty.as_bytes())
        .expect("same content, other layout");
}

#[test]
fn file_document_is_sealed_by_its_hash() {
    let mut case = Case::new();
    case.content.document = Document::File {
        sha256: govtrust_verifier::sealed::sha256_hex(b"%PDF-1.7 decision"),
        url: "mxc://id.bund.example/AbCdEf".into(),
        media_type: "application/pdf".into(),
        size: 17,
    };
    case.content.document_sha256 = document_sha256(&case.content.document).expect("hash");
    case.sign();
    case.run().expect("file seal");
}

#[test]
fn tampered_document_is_refused() {
    let mut case = Case::new();
    case.content.document = Document::Json {
        json: json!({"decision": "rejected"}),
    };
    assert_eq!(case.code(), "sealed_document_tampered");
}

#[test]
fn tampered_document_with_matching_hash_fails_the_signature() {
    let mut case = Case::new();
    case.content.document = Document::Json {
        json: json!({"decision": "rejected"}),
    };
    case.content.document_sha256 = document_sha256(&case.content.document).expect("hash");
    assert_eq!(case.code(), "sealed_signature_invalid");
}

#[test]
fn tampered_metadata_fails_the_signature() {
    let mut case = Case::new();
    case.content.metadata.reference = "AZ 1-2026/0001".into();
    assert_eq!(case.code(), "sealed_signature_invalid");
}

#[test]
fn signature_by_another_key_is_refused() {
    let mut case = Case::new();
    case.key = new_key();
    case.sign();
    assert_eq!(case.code(), "sealed_signature_invalid");
}

#[test]
fn missing_or_garbled_signature_is_refused() {
    let mut case = Case::new();
    case.content.signatures.clear();
    assert_eq!(case.code(), "sealed_signature_invalid");
    let mut case = Case::new();
    for by_key in case.content.signatures.values_mut() {
        for sig in by_key.values_mut() {
            *sig = STANDARD_NO_PAD.encode([0u8; 64]);
        }
    }
    assert_eq!(case.code(), "sealed_signature_invalid");
}

#[test]
fn replay_into_another_room_is_refused() {
    let mut case = Case::new();
    case.context_room = "!elsewhere:id.bund.example".into();
    assert!(matches!(case.run(), Err(Error::SealedWrongRoom { .. })));
}

#[test]
fn replay_by_another_sender_is_refused() {
    let mut case = Case::new();
    case.context_sender = "@mallory:id.bund.example".into();
    assert_eq!(case.code(), "sealed_wrong_sender");
}

#[test]
fn signer_other_than_sender_is_refused() {
    let mut case = Case::new();
    case.content.signer.user_id = "@other:id.bund.example".into();
    case.sign();
    assert_eq!(case.code(), "sealed_wrong_sender");
}

#[test]
fn unattested_key_is_refused() {
    // A valid signature by a key the chain does not attest.
    let mut case = Case::new();
    let stranger = new_key();
    case.content.signer.key = public(&stranger).to_base64();
    case.key = stranger;
    case.sign();
    let err = case.run().expect_err("unattested");
    assert_eq!(err.code(), "signer_not_attested");
    assert!(matches!(err, Error::SignerNotAttested(inner) if inner.code() == "key_mismatch"));
}

#[test]
fn chain_from_an_unpinned_root_is_refused() {
    let mut case = Case::new();
    case.scenario.anchors = vec![fixture().other_root.certificate().der().clone()];
    let err = case.run().expect_err("unpinned root");
    assert!(matches!(err, Error::SignerNotAttested(inner) if inner.code() == "unknown_issuer"));
}

#[test]
fn seal_outside_the_certificate_validity_is_refused() {
    // The leaf is valid now ± 1 h: a seal claiming a time two hours ago.
    let mut case = Case::new();
    case.content.metadata.issued_at = ms(fixture().now - 2 * LEAF_HALF_LIFE);
    case.sign();
    let err = case.run().expect_err("before notBefore");
    assert!(matches!(err, Error::SignerNotAttested(inner) if inner.code() == "not_yet_valid"));
}

#[test]
fn missing_crl_is_refused_under_require_fresh() {
    let mut case = Case::new();
    case.scenario.ica_crl = None;
    let err = case.run().expect_err("no CRL");
    assert!(matches!(err, Error::SignerNotAttested(inner) if inner.code() == "crl_missing"));
}

#[test]
fn leaf_revoked_before_issued_at_is_refused() {
    let fx = fixture();
    let mut case = Case::new();
    let at = fx.now - Duration::from_secs(1800);
    case.scenario.ica_crl = Some(fx.ica_crl_with(
        &[revoked(case.leaf_serial(), at)],
        fx.now - Duration::from_secs(600),
        CRL_LIFETIME,
    ));
    assert_eq!(
        case.run(),
        Err(Error::RevokedBeforeSigning {
            position: PathPosition::Leaf,
            revoked_at: at.unix_timestamp(),
            issued_at: fx.now.unix_timestamp(),
        })
    );
}

#[test]
fn leaf_revoked_at_issued_at_is_refused() {
    let fx = fixture();
    let mut case = Case::new();
    case.scenario.ica_crl =
        Some(fx.ica_crl_with(&[revoked(case.leaf_serial(), fx.now)], fx.now, CRL_LIFETIME));
    assert_eq!(case.code(), "revoked_before_signing");
}

#[test]
fn leaf_revoked_after_issued_at_stays_valid() {
    // Years later: the CRL that lists the key (revoked an hour after the
    // seal) is all there is, and it is long past nextUpdate for "now" —
    // the seal is judged as of its issued_at.
    let fx = fixture();
    let mut case = Case::new();
    let at = fx.now + Duration::from_secs(3600);
    case.scenario.ica_crl = Some(fx.ica_crl_with(
        &[revoked(case.leaf_serial(), at)],
        at + Duration::from_secs(60),
        CRL_LIFETIME,
    ));
    let verified = case.run().expect("revoked after signing");
    assert_eq!(verified.revoked_after_signing, Some(at.unix_timestamp()));
}

#[test]
fn issuing_ca_revoked_before_issued_at_is_refused() {
    let fx = fixture();
    let mut case = Case::new();
    let serial = case.scenario.cas[0].template.serial.clone();
    let at = fx.now - Duration::from_secs(60);
    case.scenario.root_crl = Some(fx.root_crl_with(
        &[revoked(serial, at)],
        fx.now - Duration::from_secs(30),
        CRL_LIFETIME,
    ));
    assert!(matches!(
        case.run(),
        Err(Error::RevokedBeforeSigning {
            position: PathPosition::Issuer,
            ..
        })
    ));
}

#[test]
fn issuing_ca_revoked_after_issued_at_stays_valid() {
    let fx = fixture();
    let mut case = Case::new();
    let serial = case.scenario.cas[0].template.serial.clone();
    let at = fx.now + Duration::from_secs(60);
    case.scenario.root_crl = Some(fx.root_crl_with(&[revoked(serial, at)], at, CRL_LIFETIME));
    assert!(case.run().expect("valid").revoked_after_signing.is_some());
}

#[test]
fn allow_missing_policy_still_honours_revocation_dates() {
    let fx = fixture();
    let mut case = Case::new();
    case.scenario.policy = CrlPolicy::ALLOW_MISSING;
    case.scenario.root_crl = None;
    case.scenario.ica_crl = Some(fx.ica_crl_with(
        &[revoked(case.leaf_serial(), fx.now - Duration::from_secs(1))],
        fx.now,
        CRL_LIFETIME,
    ));
    assert_eq!(case.code(), "revoked_before_signing");
}

#[test]
fn authority_other_than_the_certificate_is_refused() {
    let mut case = Case::new();
    case.content.metadata.authority_id = "DE-BY-09162000-XX".into();
    case.sign();
    assert_eq!(case.code(), "sealed_authority_mismatch");
}

#[test]
fn malformed_contents_are_refused() {
    let case = Case::new();
    let good: Value = serde_json::from_str(&case.json()).expect("json");
    let mut unknown = good.clone();
    unknown["extra"] = json!(true);
    let mut version = good.clone();
    version["version"] = json!(2);
    let mut chain = good.clone();
    chain["chain"] = json!(["not base64!"]);
    let mut empty_chain = good.clone();
    empty_chain["chain"] = json!([]);
    let mut float = good.clone();
    float["document"]["json"]["fee"] = json!(12.5);
    let mut bad_key = good.clone();
    bad_key["signer"]["key"] = json!("short");
    for (name, bad) in [
        ("not JSON", b"{".to_vec()),
        ("array", b"[]".to_vec()),
        ("unknown field", unknown.to_string().into_bytes()),
        ("version", version.to_string().into_bytes()),
        ("chain encoding", chain.to_string().into_bytes()),
        ("empty chain", empty_chain.to_string().into_bytes()),
        ("float in document", float.to_string().into_bytes()),
    ] {
        assert_eq!(
            case.run_json(&bad).map_err(|e| e.code()).err(),
            Some("malformed"),
            "{name}"
        );
    }
    assert_eq!(
        case.run_json(bad_key.to_string().as_bytes())
            .map_err(|e| e.code())
            .err(),
        Some("invalid_input")
    );
}

#[test]
fn oversized_content_is_refused() {
    let mut case = Case::new();
    case.content.document = Document::Json {
        json: json!({ "padding": "x".repeat(MAX_SEALED_CONTENT_BYTES) }),
    };
    assert_eq!(case.code(), "event_too_large");
}

/// `precheck`: every rule but revocation, with no CRLs at all — what a
/// client runs before it fetches the CRLs a chain names.
#[test]
fn precheck_skips_only_revocation() {
    let precheck = |case: &Case| {
        SealedVerifier::new(
            TrustAnchors::from_der(case.scenario.anchors.clone()).expect("anchors"),
            CrlPolicy::REQUIRE_FRESH,
        )
        .precheck(
            case.json().as_bytes(),
            &SealedContext {
                room_id: &case.context_room,
                sender: &case.context_sender,
            },
        )
        .map(|_| ())
        .map_err(|e| e.code())
    };
    let fx = fixture();
    let case = Case::new();
    assert_eq!(precheck(&case), Ok(()));

    // Revoked before issued_at: the precheck passes (it sees no CRL), the
    // full verification with the CRL refuses.
    let mut revoked_case = Case::new();
    revoked_case.scenario.ica_crl = Some(fx.ica_crl_with(
        &[revoked(
            revoked_case.leaf_serial(),
            fx.now - Duration::from_secs(60),
        )],
        fx.now,
        CRL_LIFETIME,
    ));
    assert_eq!(precheck(&revoked_case), Ok(()));
    assert_eq!(revoked_case.code(), "revoked_before_signing");

    // Everything else is refused before any CRL is needed.
    let mut tampered = Case::new();
    tampered.content.document = Document::Json {
        json: json!({"decision": "rejected"}),
    };
    assert_eq!(precheck(&tampered), Err("sealed_document_tampered"));
    let mut stranger = Case::new();
    let key = new_key();
    stranger.content.signer.key = public(&key).to_base64();
    stranger.key = key;
    stranger.sign();
    assert_eq!(precheck(&stranger), Err("signer_not_attested"));
    let mut unpinned = Case::new();
    unpinned.scenario.anchors = vec![fx.other_root.certificate().der().clone()];
    assert_eq!(precheck(&unpinned), Err("signer_not_attested"));
    let mut elsewhere = Case::new();
    elsewhere.context_room = "!other:id.bund.example".into();
    assert_eq!(precheck(&elsewhere), Err("sealed_wrong_room"));
}

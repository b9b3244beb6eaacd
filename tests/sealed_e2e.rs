//! Issue #11, "what it must show", end to end against a real Synapse and
//! the real service (tests/support/: the same harness as
//! tests/client_service_e2e.rs): sealed documents (docs/profile.md §15).
//!
//! An agency registers its sealing key as a device of its account and
//! enrolls it through the service (mTLS, `signature` proof). Its matrix-sdk
//! device sends a sealed FIM decision (validated against a schema from a
//! local schema directory) into an encrypted room with a citizen. The
//! citizen's `SealedInbox` reports it verified, "sealed by" the authority;
//! a tampered copy and a seal by an unattested key — both sent by the
//! agency account as raw events — are refused with their codes. The
//! citizen sends a signed receipt; the agency's `archive_room` verifies it.
//! The operator then revokes the sealing certificate through the service's
//! API; the archive written afterwards (with the CRLs that list the
//! revocation) re-verifies offline, with `verify_record` and with the real
//! `govtrust archive verify` binary: the seal made before the revocation
//! stays valid, one made after it is `revoked_before_signing`.

#[path = "support/fake_device.rs"]
mod fake_device;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/service.rs"]
mod service;
#[path = "support/synapse.rs"]
mod synapse;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use govtrust_agent::{
    send_receipt, AgentConfig, AgentError, AutoTrustAgent, CrlFetcher, HttpCrlFetcher, ReceiptKey,
    SealedDecision, SealedInbox,
};
use govtrust_service::agency::sealed::{
    archive_room, enroll_sealing_device, generate_sealing_key, register_sealing_device,
    send_sealed, write_archive, SchemaStore, SealError, SealingKey,
};
use govtrust_service::matrix::{Bot, MatrixConfig};
use govtrust_verifier::sealed::{Document, SealedContent, SEALED_EVENT_TYPE};
use govtrust_verifier::sealed_archive::verify_record;
use govtrust_verifier::{CrlPolicy, SealedVerifier, TrustAnchors};
use harness::{login, run, spawn_sync, step, WAIT};
use matrix_sdk::ruma::{OwnedRoomId, OwnedUserId};
use matrix_sdk::{Client, RoomMemberships};
use ring::signature::Ed25519KeyPair;
use serde_json::{json, Value};
use service::{record, TestService};
use synapse::Synapse;

const BOT_PW: &str = "bot-password";
const AGENCY_PW: &str = "agency-password";
const CITIZEN_PW: &str = "citizen-password";
const SCHEMA_ID: &str = "https://schema.fim.example/decision/1.0.json";
const REFERENCE: &str = "AZ 42-2026/0815";

fn now_ms() -> u64 {
    u64::try_from(govtrust_service::clock::now_ms()).expect("after 1970")
}

/// The FIM decision schema the agency has configured.
fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Bescheid (FIM decision)",
        "type": "object",
        "required": ["$schema", "decision", "subject", "fee_cents"],
        "properties": {
            "$schema": {"const": SCHEMA_ID},
            "decision": {"enum": ["approved", "rejected"]},
            "subject": {"type": "string", "minLength": 1},
            "fee_cents": {"type": "integer", "minimum": 0},
            "notes": {"type": "array", "items": {"type": "string"}},
        },
        "additionalProperties": false,
    })
}

fn decision() -> Value {
    json!({
        "$schema": SCHEMA_ID,
        "decision": "approved",
        "subject": "Wohnsitzanmeldung",
        "fee_cents": 1250,
        "notes": ["Bitte Ausweis mitbringen", "Öffnungszeiten: 8–16 Uhr"],
    })
}

/// The real HTTPS CRL fetcher, counting what the inbox fetches.
struct CountingFetcher {
    inner: HttpCrlFetcher,
    fetched: AtomicUsize,
}

impl CrlFetcher for CountingFetcher {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, AgentError>> {
        self.fetched.fetch_add(1, Ordering::SeqCst);
        self.inner.fetch(url)
    }
}

/// Polls `ready` until it holds (at most [`WAIT`]).
async fn wait_until<F, Fut>(what: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !ready().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn decision_for(inbox: &SealedInbox, event_id: &str, what: &str) -> SealedDecision {
    inbox
        .wait_for(event_id, WAIT)
        .await
        .unwrap_or_else(|| panic!("no inbox decision for {what} ({event_id})"))
}

/// Sends arbitrary content as an `io.govtrust.sealed` event with the agency
/// account (what a compromised or buggy agency client could do).
async fn send_raw(agency: &Client, room: &OwnedRoomId, content: Value) -> String {
    agency
        .get_room(room)
        .expect("agency in the room")
        .send_raw(SEALED_EVENT_TYPE, content)
        .await
        .expect("send raw sealed event")
        .response
        .event_id
        .to_string()
}

/// `govtrust --json archive verify DIR --root ROOT`: exit status and report.
fn archive_verify_cli(dir: &Path, root: &Path) -> (i32, Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_govtrust"))
        .args(["--json", "archive", "verify"])
        .arg(dir)
        .arg("--root")
        .arg(root)
        .output()
        .expect("run govtrust archive verify");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "archive verify printed no JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), report)
}

#[test]
fn sealed_decision_receipt_archive_and_revocation() {
    run(async {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let t0 = Instant::now();
        let dir = tempfile::tempdir().expect("temp dir");
        let hs = Synapse::new().await.expect("start Synapse");
        let bot_id = hs
            .register("govtrust", BOT_PW, false)
            .await
            .expect("register bot");
        let svc =
            TestService::start(&hs.base_url(), &bot_id, BOT_PW, hs.server_name(), |_| {}).await;
        let agency = svc
            .add_authority(
                record("DE-BE-11000000-BA-NK", "Registration Office Berlin"),
                &[hs.server_name()],
                &["agency.*"],
            )
            .await;
        let hs_url: url::Url = hs.base_url().parse().expect("homeserver URL");
        let http = reqwest::Client::new();
        step(t0, "Synapse, service and authority up");

        // ----- the agency: its matrix-sdk device and its sealing device.
        let agency_user = hs
            .register("agency.sealed", AGENCY_PW, false)
            .await
            .expect("register agency");
        let agency_bot = Bot::connect(MatrixConfig::new(
            hs_url.clone(),
            agency_user.clone(),
            AGENCY_PW,
            dir.path().join("agency"),
        ))
        .await
        .expect("agency matrix-sdk device");
        let sealing_pkcs8 = generate_sealing_key().expect("sealing key");
        let sealing_device =
            register_sealing_device(&http, &hs_url, &agency_user, AGENCY_PW, &sealing_pkcs8)
                .await
                .expect("register the sealing device");
        let enrolled = enroll_sealing_device(
            &svc.service_client(&agency),
            &agency_user,
            &sealing_device,
            &sealing_pkcs8,
        )
        .await
        .expect("enroll the sealing device through the service");
        let key = SealingKey::new(&sealing_pkcs8, enrolled.chain_pem.as_bytes(), &agency_user)
            .expect("sealing key with its chain");
        assert_eq!(key.device_id(), sealing_device);
        step(
            t0,
            &format!(
                "sealing device {sealing_device} enrolled: serial {}, {}",
                enrolled.serial,
                key.authority()
            ),
        );

        // ----- the schema directory.
        let schemas = dir.path().join("schemas");
        std::fs::create_dir_all(&schemas).expect("schema dir");
        std::fs::write(
            schemas.join("decision-1.0.json"),
            serde_json::to_vec_pretty(&schema()).expect("schema JSON"),
        )
        .expect("write schema");
        let store = SchemaStore::load_dir(&schemas).expect("schema store");
        assert_eq!(
            store.check(&decision()).expect("conforms").as_deref(),
            Some(SCHEMA_ID)
        );
        let mut bad = decision();
        bad["decision"] = json!("maybe");
        assert!(
            matches!(store.check(&bad), Err(SealError::Schema { .. })),
            "a non-conforming decision must be refused before sealing"
        );

        // ----- the citizen and the encrypted room.
        let citizen_user = hs
            .register("citizen.sealed", CITIZEN_PW, false)
            .await
            .expect("register citizen");
        let citizen = login(
            &hs.base_url(),
            &citizen_user,
            CITIZEN_PW,
            &dir.path().join("citizen"),
        )
        .await;
        let root_pem = svc.root_pem.as_bytes();
        let anchors = TrustAnchors::from_pem(root_pem).expect("pinned root");
        let fetcher = Arc::new(CountingFetcher {
            inner: HttpCrlFetcher::with_tls_roots(anchors.roots()).expect("CRL fetcher"),
            fetched: AtomicUsize::new(0),
        });
        let verifier = Arc::new(SealedVerifier::new(
            TrustAnchors::from_pem(root_pem).expect("pinned root"),
            CrlPolicy::REQUIRE_FRESH,
        ));
        let inbox = SealedInbox::start(&citizen, verifier, fetcher.clone());
        // The same through the auto-trust agent (AgentConfig::sealed_documents).
        let mut agent_config = AgentConfig::new(
            TrustAnchors::from_pem(root_pem).expect("pinned root"),
            dir.path().join("citizen-agent.json"),
        );
        agent_config.publishers = vec![svc.bot_user_id()];
        agent_config.sealed_documents = true;
        let agent = AutoTrustAgent::start(citizen.clone(), agent_config)
            .await
            .expect("agent");
        let citizen_sync = spawn_sync(citizen.clone(), Duration::from_secs(2), None);

        let citizen_id = OwnedUserId::try_from(citizen_user.as_str()).expect("citizen ID");
        let room = agency_bot
            .client()
            .create_dm(&citizen_id)
            .await
            .expect("agency creates an encrypted DM");
        let room_id = room.room_id().to_owned();
        wait_until("the invitation", || async {
            citizen.get_room(&room_id).is_some()
        })
        .await;
        citizen
            .join_room_by_id(&room_id)
            .await
            .expect("citizen joins");
        wait_until("the agency to see the citizen joined", || async {
            room.members(RoomMemberships::JOIN)
                .await
                .is_ok_and(|m| m.iter().any(|m| m.user_id() == citizen_id))
        })
        .await;
        assert!(
            room.latest_encryption_state()
                .await
                .expect("encryption state")
                .is_encrypted(),
            "the DM is encrypted"
        );
        step(t0, &format!("encrypted room {room_id}"));

        // ----- 1. a sealed decision arrives verified.
        let sealed = key
            .seal(
                room_id.as_str(),
                Document::Json { json: decision() },
                REFERENCE,
                now_ms(),
            )
            .expect("seal");
        let good_id = send_sealed(agency_bot.client(), &room_id, &sealed)
            .await
            .expect("send sealed")
            .to_string();
        let d = decision_for(&inbox, &good_id, "the sealed decision").await;
        step(t0, &format!("inbox: {}", d.describe()));
        assert!(d.encrypted, "the sealed event arrived Megolm-encrypted");
        assert_eq!(d.sender.as_str(), agency_user);
        let verified = d.verdict.as_ref().expect("the sealed decision verifies");
        assert_eq!(verified.content, sealed);
        assert_eq!(verified.attestation.authority, agency.record);
        assert_eq!(verified.attestation.serial, enrolled.serial);
        assert_eq!(verified.revoked_after_signing, None);
        assert!(
            d.describe().starts_with(
                "sealed by Registration Office Berlin, Donaustraße 29, 12043 Berlin \
                 (DE-BE-11000000-BA-NK), reference AZ 42-2026/0815"
            ),
            "{}",
            d.describe()
        );

        let fetched = fetcher.fetched.load(Ordering::SeqCst);
        assert_eq!(fetched, 2, "the issuing CA's and the root's CRL");

        let via_agent = decision_for(
            agent.sealed_inbox().expect("the agent's inbox"),
            &good_id,
            "the sealed decision (agent)",
        )
        .await;
        assert_eq!(
            via_agent.verdict.as_ref().map(|v| &v.content),
            Ok(&sealed),
            "the agent's inbox verifies it too"
        );

        // ----- 2. a tampered copy: the document changed, re-sent raw.
        let mut tampered = serde_json::to_value(&sealed).expect("content JSON");
        tampered["document"]["json"]["decision"] = json!("rejected");
        let tampered_id = send_raw(agency_bot.client(), &room_id, tampered).await;
        let d = decision_for(&inbox, &tampered_id, "the tampered copy").await;
        step(t0, &format!("inbox, tampered copy: {}", d.describe()));
        assert!(d.encrypted);
        assert_eq!(
            d.verdict.as_ref().map_err(|e| e.code()).err(),
            Some("sealed_document_tampered")
        );

        // ----- 3. a seal by a key no certificate attests (the chain is the
        // sealing device's, the key and signature are another one's).
        let rogue_pkcs8 = generate_sealing_key().expect("rogue key");
        let rogue = Ed25519KeyPair::from_pkcs8(&rogue_pkcs8).expect("rogue key pair");
        let mut forged: SealedContent = sealed.clone();
        forged.signer.key = govtrust_service::agency::sealed::public_key_b64(&rogue_pkcs8)
            .expect("rogue public key");
        forged.metadata.issued_at = now_ms();
        forged.signatures.clear();
        let bytes = forged.signing_bytes().expect("signing bytes");
        forged.add_signature(rogue.sign(&bytes).as_ref());
        let forged_id = send_raw(
            agency_bot.client(),
            &room_id,
            serde_json::to_value(&forged).expect("JSON"),
        )
        .await;
        let d = decision_for(&inbox, &forged_id, "the unattested seal").await;
        step(t0, &format!("inbox, unattested key: {}", d.describe()));
        let err = d
            .verdict
            .as_ref()
            .expect_err("an unattested key is refused");
        assert_eq!(err.code(), "signer_not_attested", "{err}");
        assert_eq!(
            fetcher.fetched.load(Ordering::SeqCst),
            fetched,
            "refused seals make the citizen's client fetch nothing"
        );

        // ----- 4. the citizen's receipt, verified on the agency's side.
        let receipt_pkcs8 = generate_sealing_key().expect("receipt key");
        let receipt_device =
            register_sealing_device(&http, &hs_url, &citizen_user, CITIZEN_PW, &receipt_pkcs8)
                .await
                .expect("register the receipt device");
        let receipt_key =
            ReceiptKey::new(&citizen_user, &receipt_device, &receipt_pkcs8).expect("receipt key");
        let citizen_room = citizen.get_room(&room_id).expect("citizen's room");
        let receipt_id = send_receipt(&citizen_room, verified, &good_id, &receipt_key)
            .await
            .expect("send receipt")
            .to_string();
        step(
            t0,
            &format!("citizen sent receipt {receipt_id} signed by device {receipt_device}"),
        );
        let crls_before: Vec<Vec<u8>> = svc
            .fetch_crls()
            .await
            .iter()
            .map(|c| c.der().to_vec())
            .collect();
        // The agency's store may not know the receipt device yet
        // (`archive_room` then queries its keys) and may still be waiting
        // for the citizen's Megolm key (the receipt is then reported as not
        // decryptable): retry until the receipt is in.
        let deadline = Instant::now() + WAIT;
        let (records, refused) = loop {
            let (records, refused) = archive_room(agency_bot.client(), &room_id, &crls_before)
                .await
                .expect("archive the room");
            let receipted = records
                .iter()
                .any(|r| r.event_id == good_id && !r.receipts.is_empty());
            if receipted || Instant::now() > deadline {
                break (records, refused);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(refused.is_empty(), "left out: {refused:?}");
        let good = records
            .iter()
            .find(|r| r.event_id == good_id)
            .expect("the sealed decision is archived");
        assert_eq!(good.receipts.len(), 1, "the receipt verified: {good:?}");
        assert_eq!(good.receipts[0].event_id, receipt_id);
        assert_eq!(good.receipts[0].device_key, receipt_key.public_key());
        step(
            t0,
            "archive_room: the receipt verifies against the agency's crypto store",
        );

        // ----- 5. the operator revokes the sealing certificate.
        // Revocation dates have one-second resolution: keep the seal above
        // strictly before it, the one below strictly after it.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (status, body) = svc
            .revoke_as_operator(&enrolled.serial, "key_compromise")
            .await;
        assert!(status.is_success(), "revoke: {status} {body}");
        step(t0, &format!("operator revoked {}", enrolled.serial));
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let late = key
            .seal(
                room_id.as_str(),
                Document::Json { json: decision() },
                "AZ 42-2026/0816",
                now_ms(),
            )
            .expect("seal after revocation");
        let late_id = send_sealed(agency_bot.client(), &room_id, &late)
            .await
            .expect("send late seal")
            .to_string();
        let d = decision_for(&inbox, &late_id, "the seal made after revocation").await;
        step(
            t0,
            &format!("inbox, seal after revocation: {}", d.describe()),
        );
        assert_eq!(
            d.verdict.as_ref().map_err(|e| e.code()).err(),
            Some("revoked_before_signing")
        );

        // ----- 6. the archive, written after the revocation, re-verifies
        // offline.
        let crls_after: Vec<Vec<u8>> = svc
            .fetch_crls()
            .await
            .iter()
            .map(|c| c.der().to_vec())
            .collect();
        let (records, refused) = archive_room(agency_bot.client(), &room_id, &crls_after)
            .await
            .expect("archive the room after the revocation");
        assert!(refused.is_empty(), "refused receipts: {refused:?}");
        assert_eq!(records.len(), 4, "four sealed events in the room");
        let archive = dir.path().join("archive");
        let files = write_archive(&archive, &records).expect("write archive");
        assert_eq!(files.len(), 4);
        let offline = SealedVerifier::new(
            TrustAnchors::from_pem(root_pem).expect("pinned root"),
            CrlPolicy::REQUIRE_FRESH,
        );
        let mut good_file = None;
        for (record, file) in records.iter().zip(&files) {
            let bytes = std::fs::read(file).expect("read record");
            let verdict = verify_record(&offline, &bytes);
            let id = record.event_id.as_str();
            if id == good_id {
                let verdict = verdict.expect("the seal made before the revocation stays valid");
                assert!(
                    verdict.sealed.revoked_after_signing.is_some(),
                    "the archive's CRL lists the later revocation"
                );
                assert_eq!(verdict.receipts.len(), 1);
                assert!(verdict.receipts[0].is_ok(), "{:?}", verdict.receipts[0]);
                good_file = Some(file.clone());
            } else {
                let code = verdict.map(|_| ()).map_err(|e| e.code()).err();
                let want = if id == tampered_id {
                    "sealed_document_tampered"
                } else if id == forged_id {
                    "signer_not_attested"
                } else {
                    assert_eq!(id, late_id);
                    "revoked_before_signing"
                };
                assert_eq!(code, Some(want), "record {id}");
            }
        }
        step(t0, "verify_record: before revocation valid, after refused");

        let root_file = dir.path().join("root.pem");
        std::fs::write(&root_file, root_pem).expect("write root");
        let (status, report) = archive_verify_cli(&archive, &root_file);
        assert_eq!(status, 1, "some records fail: {report:#}");
        let entries = report.as_array().expect("a report per file");
        assert_eq!(entries.len(), 4, "{report:#}");
        for entry in entries {
            let file = entry["file"].as_str().expect("file");
            if Some(Path::new(file)) == good_file.as_deref() {
                assert_eq!(entry["ok"], true, "{entry}");
                assert_eq!(entry["reference"], REFERENCE);
                assert!(entry["revoked_after_signing"].is_i64(), "{entry}");
                assert_eq!(entry["receipts"][0]["ok"], true, "{entry}");
            } else {
                assert_eq!(entry["ok"], false, "{entry}");
            }
        }
        let codes: Vec<&str> = entries.iter().filter_map(|e| e["code"].as_str()).collect();
        for code in [
            "sealed_document_tampered",
            "signer_not_attested",
            "revoked_before_signing",
        ] {
            assert!(codes.contains(&code), "{code} missing from {report:#}");
        }
        // The valid record alone: exit status 0.
        let only_good = dir.path().join("archive-good");
        std::fs::create_dir_all(&only_good).expect("dir");
        let good_file = good_file.expect("good record file");
        std::fs::copy(
            &good_file,
            only_good.join(good_file.file_name().expect("file name")),
        )
        .expect("copy record");
        let (status, report) = archive_verify_cli(&only_good, &root_file);
        assert_eq!(status, 0, "{report:#}");
        assert_eq!(report[0]["ok"], true, "{report:#}");
        step(
            t0,
            "govtrust archive verify: valid before the revocation, refused after",
        );

        citizen_sync.abort();
        inbox.shutdown();
        drop(agent);
        agency_bot.shutdown();
        svc.stop().await;
    });
}

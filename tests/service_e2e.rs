//! The enrollment service end to end, against real parts: a real Synapse
//! (tests/support/synapse.rs), the real service in-process on a TLS
//! listener (`service::build` + `serve_on`), real mTLS with rustls through
//! reqwest, real matrix-sdk devices, and the client-side verifier.
//!
//! One Synapse and one service serve every test in this file except the
//! outage test (which stops its homeserver, so it has its own). They live
//! on one shared tokio runtime so that their background tasks (accept loop,
//! outbox publisher, sync loops) outlive any single test; each test is a
//! plain `#[test]` that blocks on that runtime.
//!
//! Tests that need no real Matrix device use `signature` proof with a fake
//! device (tests/support/fake_device.rs): logged in through the raw API,
//! with self-signed device keys made here.

#[path = "support/fake_device.rs"]
mod fake_device;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/service.rs"]
mod service;
#[path = "support/synapse.rs"]
mod synapse;

use harness::{bootstrap_cross_signing, enc, run, step};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use govtrust_api::enrollment::{ChallengeRequest, EnrollRequest, Kind, Proof};
use govtrust_service::agency::{enroll_device, enroll_identity};
use govtrust_service::matrix::{Bot, ChallengeReceiver, MatrixConfig};
use govtrust_service::storage::CertificateStatus;
use govtrust_verifier::event::{state_key, AttestationContent, EVENT_TYPE};
use govtrust_verifier::{
    CertificateDer, CrlPolicy, CrlSet, DeviceId, Expected, Subject, TrustAnchors, UnixTime, UserId,
    Verifier,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::OnceCell;

use fake_device::FakeDevice;
use service::{assert_errcode, record, Agency, TestService};
use synapse::Synapse;

const BOT_PW: &str = "bot-password";
/// Users `office.*` belong to the shared authority.
const OFFICE: &str = "office.berlin";
const OFFICE_PW: &str = "office-password";
/// A user outside every authority's patterns.
const CITIZEN: &str = "citizen";
const CITIZEN_PW: &str = "citizen-password";
/// A server name the shared authority's record lists but the development
/// issuing CA (ARC.11: only the fixture's server name) does not.
const FOREIGN_SERVER: &str = "other.example";

/// The Synapse, service and authority every test shares.
struct Shared {
    hs: Synapse,
    svc: TestService,
    /// Authority `DE-BE-0001`: servers [fixture, other.example], users `office.*`.
    agency: Agency,
    /// The directory room.
    room_id: String,
    /// Token of a user who never joined the directory room.
    outsider_token: String,
    /// Plain HTTP client for the homeserver.
    http: reqwest::Client,
}

static SHARED: OnceCell<Shared> = OnceCell::const_new();

async fn shared() -> &'static Shared {
    SHARED
        .get_or_init(|| async {
            let t0 = Instant::now();
            let hs = Synapse::new().await.expect("start Synapse");
            let bot_id = hs
                .register("govtrust", BOT_PW, false)
                .await
                .expect("register bot");
            hs.register(OFFICE, OFFICE_PW, false)
                .await
                .expect("register office");
            hs.register(CITIZEN, CITIZEN_PW, false)
                .await
                .expect("register citizen");
            let outsider_id = hs
                .register("outsider", "outsider-pw", false)
                .await
                .expect("register outsider");
            let outsider = hs
                .login(&outsider_id, "outsider-pw", None)
                .await
                .expect("outsider login");
            let svc =
                TestService::start(&hs.base_url(), &bot_id, BOT_PW, hs.server_name(), |_| {}).await;
            let agency = svc
                .add_authority(
                    record("DE-BE-0001", "Bürgeramt Neukölln"),
                    &[hs.server_name(), FOREIGN_SERVER],
                    &["office.*"],
                )
                .await;
            let room_id = svc
                .bot()
                .ensure_directory_room()
                .await
                .expect("directory room")
                .to_string();
            step(t0, "shared fixture: Synapse and service up");
            Shared {
                hs,
                svc,
                agency,
                room_id,
                outsider_token: outsider.access_token,
                http: reqwest::Client::new(),
            }
        })
        .await
}

impl Shared {
    fn user(&self, localpart: &str) -> String {
        format!("@{localpart}:{}", self.hs.server_name())
    }

    /// A fake device of `localpart` with self-signed keys on the homeserver.
    async fn fake_device(&self, localpart: &str, password: &str) -> FakeDevice {
        FakeDevice::create(
            &self.http,
            &self.hs.base_url(),
            &self.user(localpart),
            password,
            None,
        )
        .await
        .expect("fake device")
    }

    /// POSTs to the service with the shared agency's client certificate.
    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.svc
            .post(&self.svc.mtls_client(&self.agency), path, body)
            .await
    }
}

/// Reads a state event of the directory room as a non-member; `None` while
/// it does not exist.
async fn read_state(
    hs: &Synapse,
    room_id: &str,
    token: &str,
    state_key: &str,
    as_event: bool,
) -> Option<Value> {
    let path = format!(
        "/_matrix/client/v3/rooms/{}/state/{EVENT_TYPE}/{}{}",
        enc(room_id),
        enc(state_key),
        if as_event { "?format=event" } else { "" }
    );
    let (status, body) = hs
        .call(Method::GET, &path, Some(token), None)
        .await
        .expect("read state");
    match status {
        StatusCode::OK => Some(body),
        StatusCode::NOT_FOUND => None,
        other => panic!("GET {path}: {other} {body}"),
    }
}

/// Waits (bounded) until the state event satisfies `done`.
async fn wait_for_state(
    hs: &Synapse,
    room_id: &str,
    token: &str,
    state_key: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some(content) = read_state(hs, room_id, token, state_key, false).await {
            if done(&content) {
                return content;
            }
        }
        assert!(
            Instant::now() < deadline,
            "state event {state_key} not as expected within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn chain_der(chain: &[String]) -> Vec<CertificateDer<'static>> {
    chain
        .iter()
        .map(|c| CertificateDer::from(STANDARD.decode(c).expect("chain base64")))
        .collect()
}

fn verifier(svc: &TestService) -> Verifier {
    Verifier::new(
        TrustAnchors::from_der([svc.svc.pki.root().clone()]).expect("anchors"),
        CrlPolicy::REQUIRE_FRESH,
    )
}

// ----- 1. end to end ---------------------------------------------------------

/// A real matrix-sdk device enrolls with `to_device` proof (device, then
/// identity after cross-signing); the state events are in the directory
/// room with the profile's content, and the chains verify against the root,
/// the key /keys/query serves and fresh CRLs from the service.
#[test]
fn device_and_identity_enrollment_end_to_end() {
    run(async {
        let t0 = Instant::now();
        let s = shared().await;
        let user = s.user("office.agency");
        s.hs.register("office.agency", "agency-pw", false)
            .await
            .expect("register agency user");
        let store = tempfile::tempdir().expect("temp dir");
        let device = Bot::connect(MatrixConfig::new(
            s.hs.base_url().parse().expect("url"),
            user.clone(),
            "agency-pw",
            store.path().join("agency-device"),
        ))
        .await
        .expect("agency device login");
        let device_id = device.device_id().expect("device id").to_string();
        let client = s.svc.service_client(&s.agency);
        step(t0, "agency device logged in");

        // Device attestation.
        let enrolled = enroll_device(device.client(), &client, s.svc.bot_user_id())
            .await
            .expect("device enrollment");
        step(t0, "device enrolled");
        let uid = UserId::parse(&user).expect("user id");
        let did = DeviceId::parse(&device_id).expect("device id");
        assert_eq!(
            enrolled.state_key,
            state_key(&uid, &Subject::Device(did.clone()))
        );
        assert_eq!(enrolled.chain.len(), 2, "leaf and issuing CA");
        assert!(enrolled.chain_pem.contains("BEGIN CERTIFICATE"));
        let content = wait_for_state(
            &s.hs,
            &s.room_id,
            &s.outsider_token,
            &enrolled.state_key,
            Duration::from_secs(30),
            |c| c["chain"][0] == enrolled.chain[0].as_str(),
        )
        .await;
        let own_key = device
            .client()
            .encryption()
            .ed25519_key()
            .await
            .expect("own key");
        assert_eq!(content["version"], 1, "{content}");
        assert_eq!(content["kind"], "device", "{content}");
        assert_eq!(content["user_id"], user.as_str(), "{content}");
        assert_eq!(content["device_id"], device_id.as_str(), "{content}");
        assert_eq!(content["key"], own_key.as_str(), "{content}");
        assert_eq!(content["chain"], json!(enrolled.chain), "{content}");
        assert!(content["revoked"].is_null(), "{content}");
        assert!(content["expires_at"].as_u64().is_some(), "{content}");
        let event = read_state(
            &s.hs,
            &s.room_id,
            &s.outsider_token,
            &enrolled.state_key,
            true,
        )
        .await
        .expect("event");
        assert_eq!(event["sender"], s.svc.bot().user_id().as_str(), "{event}");
        if let Some(event_id) = &enrolled.event_id {
            assert_eq!(event["event_id"], event_id.as_str(), "{event}");
        }

        // Verify as a client would: the key its store holds for the device
        // (here: what /keys/query serves), the pinned root, fresh CRLs.
        let served = s
            .svc
            .bot()
            .device_keys(&uid, &did)
            .await
            .expect("keys/query")
            .expect("device served");
        assert!(served.self_signed);
        assert_eq!(served.ed25519.to_base64(), own_key);
        let expected =
            Expected::new(&user, Some(&device_id), &served.ed25519.to_base64()).expect("expected");
        let crls = s.svc.fetch_crls().await;
        let verifier = verifier(&s.svc);
        let verified = verifier
            .verify_event(
                &expected,
                content.to_string().as_bytes(),
                &crls,
                UnixTime::now(),
            )
            .expect("device attestation verifies");
        assert_eq!(verified.authority, s.agency.record);
        assert_eq!(verified.serial, enrolled.serial);
        let returned = chain_der(&enrolled.chain);
        verifier
            .verify(&expected, &returned, &crls, UnixTime::now())
            .expect("returned chain verifies");
        // Not for another key, and not without fresh CRLs.
        let other = Expected::new(
            &user,
            Some(&device_id),
            &fake_device::public_b64(&fake_device::new_ed25519()),
        )
        .expect("expected");
        assert!(verifier
            .verify(&other, &returned, &crls, UnixTime::now())
            .is_err());
        let no_crls = verifier
            .verify(&expected, &returned, &CrlSet::new(), UnixTime::now())
            .expect_err("REQUIRE_FRESH without CRLs");
        assert_eq!(no_crls.code(), "crl_missing", "{no_crls}");
        step(t0, "device attestation verified");

        // Identity attestation after cross-signing.
        bootstrap_cross_signing(device.client(), &user, "agency-pw").await;
        let identity = enroll_identity(device.client(), &client, s.svc.bot_user_id())
            .await
            .expect("identity enrollment");
        step(t0, "identity enrolled");
        assert_eq!(identity.state_key, state_key(&uid, &Subject::Identity));
        let master = s
            .svc
            .bot()
            .identity(&uid)
            .await
            .expect("keys/query")
            .expect("identity served")
            .master
            .to_base64();
        let content = wait_for_state(
            &s.hs,
            &s.room_id,
            &s.outsider_token,
            &identity.state_key,
            Duration::from_secs(30),
            |c| c["chain"][0] == identity.chain[0].as_str(),
        )
        .await;
        assert_eq!(content["kind"], "identity", "{content}");
        assert_eq!(content["user_id"], user.as_str(), "{content}");
        assert!(content.get("device_id").is_none(), "{content}");
        assert_eq!(content["key"], master.as_str(), "{content}");
        assert_eq!(content["chain"], json!(identity.chain), "{content}");
        let expected = Expected::new(&user, None, &master).expect("expected");
        let verified = verifier
            .verify_event(
                &expected,
                content.to_string().as_bytes(),
                &s.svc.fetch_crls().await,
                UnixTime::now(),
            )
            .expect("identity attestation verifies");
        assert_eq!(verified.subject, Subject::Identity);
        assert_eq!(verified.authority, s.agency.record);
        // The identity certificate is no device certificate.
        let as_device = Expected::new(&user, Some(&device_id), &master).expect("expected");
        assert!(verifier
            .verify(
                &as_device,
                &chain_der(&identity.chain),
                &crls,
                UnixTime::now()
            )
            .is_err());
        step(t0, "identity attestation verified");

        // An eager agency answers as soon as its device has decrypted the
        // challenge, without waiting for the challenge request to return:
        // the challenge must already be stored by then.
        let receiver = ChallengeReceiver::install(device.client(), s.svc.bot_user_id());
        let request = ChallengeRequest {
            kind: Kind::Device,
            user_id: user.clone(),
            device_id: device_id.clone(),
            proof: Proof::ToDevice,
        };
        let pending = tokio::spawn({
            let client = client.clone();
            async move { client.challenge(&request).await }
        });
        let secret = receiver
            .next(Duration::from_secs(60))
            .await
            .expect("challenge received");
        let renewed = client
            .enroll(&EnrollRequest {
                kind: Kind::Device,
                user_id: user.clone(),
                device_id: device_id.clone(),
                key: own_key.clone(),
                challenge: secret,
                signature: None,
                wait_for_event_ms: Some(0),
                rsa_public_key: None,
            })
            .await
            .expect("enrollment answering the challenge at once");
        pending
            .await
            .expect("challenge task")
            .expect("challenge request");
        assert_ne!(renewed.serial, enrolled.serial);
        let previous = s
            .svc
            .svc
            .store
            .get_certificate(&enrolled.serial)
            .await
            .expect("store")
            .expect("first certificate");
        assert_eq!(previous.status, CertificateStatus::Superseded);
        step(t0, "eager re-enrollment");
        drop(receiver);
        device.shutdown();
    });
}

// ----- 2. rejections ---------------------------------------------------------

/// A user outside the authority's record: localpart pattern, or a server
/// the record does not list.
#[test]
fn rejects_user_not_permitted() {
    run(async {
        let s = shared().await;
        let citizen = s.fake_device(CITIZEN, CITIZEN_PW).await;
        let answer = s
            .post(
                "/v1/enrollment/challenge",
                &citizen.challenge_request("device"),
            )
            .await;
        assert_errcode(&answer, "GT_USER_NOT_PERMITTED");
        // The same at the enrollment step (with a made-up challenge).
        let answer = s
            .post(
                "/v1/enrollment",
                &json!({
                    "kind": "device", "user_id": citizen.user_id, "device_id": citizen.device_id,
                    "key": citizen.ed25519(), "challenge": "whatever", "signature": "AAAA",
                }),
            )
            .await;
        assert_errcode(&answer, "GT_USER_NOT_PERMITTED");
        let elsewhere = json!({
            "kind": "device", "user_id": "@office.berlin:elsewhere.example",
            "device_id": "DEVICE", "proof": "signature",
        });
        let answer = s.post("/v1/enrollment/challenge", &elsewhere).await;
        assert_errcode(&answer, "GT_USER_NOT_PERMITTED");
    });
}

/// Suspending an authority revokes its live certificates (and republishes
/// their events with `revoked` set); its agency is then refused.
#[test]
fn rejects_suspended_authority() {
    run(async {
        let s = shared().await;
        s.hs.register("susp.office", "susp-pw", false)
            .await
            .expect("register");
        let agency = s
            .svc
            .add_authority(
                record("DE-BE-SUSP", "Standesamt Mitte"),
                &[s.hs.server_name()],
                &["susp.*"],
            )
            .await;
        let mtls = s.svc.mtls_client(&agency);
        let dev = s.fake_device("susp.office", "susp-pw").await;
        let enrolled = dev
            .enroll(&mtls, &s.svc.base, Some(5000))
            .await
            .expect("enrollment before suspension");
        let serial = enrolled["serial"].as_str().expect("serial").to_owned();
        let key = enrolled["state_key"]
            .as_str()
            .expect("state key")
            .to_owned();
        wait_for_state(
            &s.hs,
            &s.room_id,
            &s.outsider_token,
            &key,
            Duration::from_secs(30),
            |c| c["chain"] == enrolled["chain"],
        )
        .await;

        let token = s.svc.operator_token().await;
        let (status, body) = s
            .svc
            .request(
                &s.svc.public_client(),
                Method::POST,
                "/v1/authorities/DE-BE-SUSP/suspend",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["revoked"], json!([serial]), "{body}");
        let stored = s
            .svc
            .svc
            .store
            .get_certificate(&serial)
            .await
            .expect("store")
            .expect("certificate");
        assert_eq!(stored.status, CertificateStatus::Revoked);

        // The event is republished with the revocation notice, same chain.
        let content = wait_for_state(
            &s.hs,
            &s.room_id,
            &s.outsider_token,
            &key,
            Duration::from_secs(30),
            |c| !c["revoked"].is_null(),
        )
        .await;
        assert_eq!(content["chain"], enrolled["chain"], "{content}");
        assert_eq!(
            content["revoked"]["reason"], "privilege_withdrawn",
            "{content}"
        );
        // And the CRL the service serves now names it.
        let expected =
            Expected::new(&dev.user_id, Some(&dev.device_id), &dev.ed25519()).expect("expected");
        let chain: Vec<String> = serde_json::from_value(enrolled["chain"].clone()).expect("chain");
        let err = verifier(&s.svc)
            .verify(
                &expected,
                &chain_der(&chain),
                &s.svc.fetch_crls().await,
                UnixTime::now(),
            )
            .expect_err("revoked");
        assert_eq!(err.code(), "revoked", "{err}");

        // The suspended authority's agency is refused.
        let answer = s
            .svc
            .post(
                &mtls,
                "/v1/enrollment/challenge",
                &dev.challenge_request("device"),
            )
            .await;
        assert_errcode(&answer, "GT_AUTHORITY_SUSPENDED");
        let answer = s
            .svc
            .post(
                &mtls,
                "/v1/enrollment",
                &json!({
                    "kind": "device", "user_id": dev.user_id, "device_id": dev.device_id,
                    "key": dev.ed25519(), "challenge": "whatever", "signature": "AAAA",
                }),
            )
            .await;
        assert_errcode(&answer, "GT_AUTHORITY_SUSPENDED");
    });
}

/// A challenge answers one enrollment only.
#[test]
fn rejects_reused_challenge() {
    run(async {
        let s = shared().await;
        let dev = s.fake_device(OFFICE, OFFICE_PW).await;
        let (status, challenge) = s
            .post("/v1/enrollment/challenge", &dev.challenge_request("device"))
            .await;
        assert_eq!(status, StatusCode::OK, "{challenge}");
        let request = dev.enroll_request(&challenge, Some(0));
        let (status, body) = s.post("/v1/enrollment", &request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let answer = s.post("/v1/enrollment", &request).await;
        assert_errcode(&answer, "GT_CHALLENGE_USED");
    });
}

/// A challenge past its lifetime is refused.
#[test]
fn rejects_expired_challenge() {
    run(async {
        let s = shared().await;
        let dev = s.fake_device(OFFICE, OFFICE_PW).await;
        let (status, challenge) = s
            .post("/v1/enrollment/challenge", &dev.challenge_request("device"))
            .await;
        assert_eq!(status, StatusCode::OK, "{challenge}");
        // Age the stored challenge (the configured lifetime is 5 minutes).
        let expired_at = govtrust_service::clock::now_ms() - 1000;
        let updated = sqlx::query(
            "UPDATE challenges SET expires_at = $1 WHERE user_id = $2 AND device_id = $3",
        )
        .bind(expired_at)
        .bind(dev.user_id.as_str())
        .bind(dev.device_id.as_str())
        .execute(s.svc.svc.store.pool())
        .await
        .expect("expire the challenge");
        assert_eq!(updated.rows_affected(), 1);
        let answer = s
            .post("/v1/enrollment", &dev.enroll_request(&challenge, Some(0)))
            .await;
        assert_errcode(&answer, "GT_CHALLENGE_EXPIRED");
    });
}

/// A challenge made for one device does not enroll another, and such an
/// attempt does not burn it.
#[test]
fn rejects_challenge_of_another_device() {
    run(async {
        let s = shared().await;
        let first = s.fake_device(OFFICE, OFFICE_PW).await;
        let second = s.fake_device(OFFICE, OFFICE_PW).await;
        let (status, challenge) = s
            .post(
                "/v1/enrollment/challenge",
                &first.challenge_request("device"),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{challenge}");
        // Claim the second device with the first device's challenge; the
        // signature is made by the key the challenge is bound to, over a
        // payload naming the second device, so only the binding is wrong.
        let mut payload = challenge["signing_payload"].clone();
        payload["device_id"] = second.device_id.clone().into();
        let request = json!({
            "kind": "device",
            "user_id": second.user_id,
            "device_id": second.device_id,
            "key": second.ed25519(),
            "challenge": payload["challenge"],
            "signature": fake_device::sign_json(&first.key, &payload),
        });
        let answer = s.post("/v1/enrollment", &request).await;
        assert_errcode(&answer, "GT_CHALLENGE_MISMATCH");
        // The rightful device can still use it.
        let (status, body) = s
            .post("/v1/enrollment", &first.enroll_request(&challenge, Some(0)))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    });
}

/// Proof of possession fails: a secret that was never sent, and a
/// signature by another key.
#[test]
fn rejects_failed_proof_of_possession() {
    run(async {
        let s = shared().await;
        let dev = s.fake_device(OFFICE, OFFICE_PW).await;

        // Wrong secret (to_device style: no signature involved).
        let answer = s
            .post(
                "/v1/enrollment",
                &json!({
                    "kind": "device", "user_id": dev.user_id, "device_id": dev.device_id,
                    "key": dev.ed25519(), "challenge": "not-the-secret-the-device-received",
                }),
            )
            .await;
        assert_errcode(&answer, "GT_PROOF_FAILED");

        // Signature proof signed by a key that is not the device's.
        let (status, challenge) = s
            .post("/v1/enrollment/challenge", &dev.challenge_request("device"))
            .await;
        assert_eq!(status, StatusCode::OK, "{challenge}");
        let mut request = dev.enroll_request(&challenge, Some(0));
        request["signature"] =
            fake_device::sign_json(&fake_device::new_ed25519(), &challenge["signing_payload"])
                .into();
        let answer = s.post("/v1/enrollment", &request).await;
        assert_errcode(&answer, "GT_PROOF_FAILED");
        // A signature by the right key over other bytes fails as well.
        let mut tampered = challenge["signing_payload"].clone();
        tampered["service"] = "https://evil.example".into();
        request["signature"] = fake_device::sign_json(&dev.key, &tampered).into();
        let answer = s.post("/v1/enrollment", &request).await;
        assert_errcode(&answer, "GT_PROOF_FAILED");
        // The failed attempts did not burn the challenge.
        let (status, body) = s
            .post("/v1/enrollment", &dev.enroll_request(&challenge, Some(0)))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    });
}

/// The agency reports another key than the one the homeserver serves for
/// the device: no certificate, and the challenge stays usable for the
/// right key.
#[test]
fn rejects_key_mismatch() {
    run(async {
        let s = shared().await;
        let dev = s.fake_device(OFFICE, OFFICE_PW).await;
        let (status, challenge) = s
            .post("/v1/enrollment/challenge", &dev.challenge_request("device"))
            .await;
        assert_eq!(status, StatusCode::OK, "{challenge}");
        let mut request = dev.enroll_request(&challenge, Some(0));
        request["key"] = fake_device::public_b64(&fake_device::new_ed25519()).into();
        let answer = s.post("/v1/enrollment", &request).await;
        assert_errcode(&answer, "GT_KEY_MISMATCH");
        assert!(s
            .svc
            .svc
            .store
            .find_live_certificate(
                &dev.user_id,
                govtrust_service::storage::CertificateKind::Device,
                Some(&dev.device_id),
                govtrust_service::clock::now_ms()
            )
            .await
            .expect("store")
            .is_none());
        // The refused attempt left the challenge usable for the right key.
        let (status, body) = s
            .post("/v1/enrollment", &dev.enroll_request(&challenge, Some(0)))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    });
}

/// The authority's record lists the server, but the issuing CA's ARC.11
/// does not.
#[test]
fn rejects_server_not_permitted_by_issuing_ca() {
    run(async {
        let s = shared().await;
        assert!(!s
            .svc
            .svc
            .pki
            .permitted_servers()
            .iter()
            .any(|p| p == FOREIGN_SERVER));
        let answer = s
            .post(
                "/v1/enrollment/challenge",
                &json!({
                    "kind": "device", "user_id": format!("@office.x:{FOREIGN_SERVER}"),
                    "device_id": "DEVICE", "proof": "signature",
                }),
            )
            .await;
        assert_errcode(&answer, "GT_SERVER_NOT_PERMITTED");
    });
}

/// Bodies that are not JSON, or too large.
#[test]
fn rejects_malformed_and_oversized_json() {
    run(async {
        let s = shared().await;
        let mtls = s.svc.mtls_client(&s.agency);
        let raw = |body: Vec<u8>| Some(("application/json", body));
        let answer = s
            .svc
            .request(
                &mtls,
                Method::POST,
                "/v1/enrollment/challenge",
                None,
                raw(b"{\"kind\": \"device\", ".to_vec()),
            )
            .await;
        assert_errcode(&answer, "GT_BAD_JSON");
        // Well-formed but not the schema (unknown field).
        let answer = s
            .post(
                "/v1/enrollment",
                &json!({"kind": "device", "surprise": true}),
            )
            .await;
        assert_errcode(&answer, "GT_BAD_JSON");

        let limit = s.svc.svc.config.limits.max_body_bytes;
        let huge = json!({
            "kind": "device", "user_id": "@office.berlin:localhost", "device_id": "X",
            "proof": "signature", "padding": "x".repeat(limit + 1024),
        });
        let answer = s
            .svc
            .request(
                &mtls,
                Method::POST,
                "/v1/enrollment/challenge",
                None,
                raw(huge.to_string().into_bytes()),
            )
            .await;
        assert_errcode(&answer, "GT_TOO_LARGE");
    });
}

/// Agency endpoints without a client certificate.
#[test]
fn rejects_missing_client_certificate() {
    run(async {
        let s = shared().await;
        let http = s.svc.public_client();
        let body = json!({
            "kind": "device", "user_id": "@office.berlin:localhost",
            "device_id": "DEVICE", "proof": "signature",
        });
        let answer = s.svc.post(&http, "/v1/enrollment/challenge", &body).await;
        assert_errcode(&answer, "GT_NO_CLIENT_CERT");
        let answer = s.svc.post(&http, "/v1/enrollment", &body).await;
        assert_errcode(&answer, "GT_NO_CLIENT_CERT");
    });
}

/// An enrollment-client certificate for the same authority, but under
/// another root.
#[test]
fn rejects_client_certificate_from_another_root() {
    run(async {
        let s = shared().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_dir = dir.path().join("ca");
        govtrust_service::hierarchy::create_hierarchy(
            &govtrust_service::hierarchy::HierarchySpec::development(
                ca_dir.clone(),
                vec![s.hs.server_name().to_owned()],
                None,
            ),
        )
        .expect("another hierarchy");
        let issuing = govtrust_service::cadir::CaDir::open(&ca_dir)
            .expect("CA dir")
            .issuing_ca("issuing-1")
            .expect("issuing CA");
        let key = govtrust_pki::signer::FileSigner::generate(
            govtrust_pki::signer::KeyAlgorithm::EcdsaP256,
        )
        .expect("key");
        let issued = issuing
            .issue_enrollment_client(
                &s.agency.record,
                govtrust_pki::signer::Signer::spki_der(&key).to_vec(),
                govtrust_pki::Validity::from_now(Duration::from_secs(3600)),
            )
            .expect("foreign enrollment client");
        let identity = govtrust_service::pemfile::client_identity(
            &govtrust_service::pemfile::chain_pem(&issued.chain),
            &key,
        )
        .expect("client identity");
        let http = s.svc.client_with_identity(Some(identity.as_bytes()));
        let dev = s.fake_device(OFFICE, OFFICE_PW).await;
        let answer = s
            .svc
            .post(
                &http,
                "/v1/enrollment/challenge",
                &dev.challenge_request("device"),
            )
            .await;
        assert_errcode(&answer, "GT_CLIENT_CERT_REJECTED");
    });
}

/// A certificate from the right CA but without EKU ARC.3: the service's
/// own TLS server certificate.
#[test]
fn rejects_client_certificate_without_enrollment_eku() {
    run(async {
        let s = shared().await;
        let tls = s.svc.svc.config.data_dir.join("tls");
        let mut identity = std::fs::read(tls.join("server.pem")).expect("server.pem");
        identity.extend(std::fs::read(tls.join("server.key.pem")).expect("server.key.pem"));
        let http = s.svc.client_with_identity(Some(&identity));
        let dev = s.fake_device(OFFICE, OFFICE_PW).await;
        let answer = s
            .svc
            .post(
                &http,
                "/v1/enrollment/challenge",
                &dev.challenge_request("device"),
            )
            .await;
        assert_errcode(&answer, "GT_CLIENT_CERT_REJECTED");
    });
}

/// The operator issues an agency's enrollment-client certificate over the
/// API for a key the agency made; it authenticates the agency at once,
/// and revoking it cuts the agency off on the next request. Bad requests
/// are refused: no token, unknown or suspended authority, an unreadable
/// or unsupported key, a lifetime out of range.
#[test]
fn operator_issues_and_revokes_enrollment_clients() {
    run(async {
        let s = shared().await;
        let token = s.svc.operator_token().await;
        let http = s.svc.public_client();
        let operator_post = |path: String, bearer: Option<String>, body: Value| {
            let http = http.clone();
            async move {
                s.svc
                    .request(
                        &http,
                        reqwest::Method::POST,
                        &path,
                        bearer.as_deref(),
                        Some(("application/json", body.to_string().into_bytes())),
                    )
                    .await
            }
        };
        let record = record("DE-BE-0077", "Standesamt Mitte");
        let created = operator_post(
            "/v1/authorities".into(),
            Some(token.clone()),
            json!({"record": record, "servers": [s.hs.server_name()], "user_patterns": ["office.*"]}),
        )
        .await;
        assert_eq!(created.0, StatusCode::OK, "{}", created.1);
        let key = govtrust_pki::signer::FileSigner::generate(
            govtrust_pki::signer::KeyAlgorithm::EcdsaP256,
        )
        .expect("key");
        let public_key_pem = govtrust_service::pemfile::encode(
            "PUBLIC KEY",
            govtrust_pki::signer::Signer::spki_der(&key),
        );
        let path = format!("/v1/authorities/{}/enrollment-clients", record.id);
        let good = json!({"public_key_pem": public_key_pem, "lifetime_days": 30});

        // Refusals first.
        assert_errcode(
            &operator_post(path.clone(), None, good.clone()).await,
            "GT_UNAUTHORIZED",
        );
        assert_errcode(
            &operator_post(
                "/v1/authorities/DE-NOPE/enrollment-clients".into(),
                Some(token.clone()),
                good.clone(),
            )
            .await,
            "GT_NOT_FOUND",
        );
        for bad in [
            json!({"public_key_pem": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}),
            json!({"public_key_pem": "not PEM"}),
            json!({"public_key_pem": public_key_pem, "lifetime_days": 0}),
            json!({"public_key_pem": public_key_pem, "lifetime_days": 399}),
        ] {
            assert_errcode(
                &operator_post(path.clone(), Some(token.clone()), bad).await,
                "GT_INVALID_PARAM",
            );
        }
        // An RSA key is outside the profile.
        let rsa = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .expect("openssl genpkey");
        let mut pubout = std::process::Command::new("openssl")
            .args(["pkey", "-pubout"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("openssl pkey");
        std::io::Write::write_all(pubout.stdin.as_mut().expect("stdin"), &rsa.stdout)
            .expect("write key");
        let rsa_pub = pubout.wait_with_output().expect("openssl pkey -pubout");
        assert_errcode(
            &operator_post(
                path.clone(),
                Some(token.clone()),
                json!({"public_key_pem": String::from_utf8_lossy(&rsa_pub.stdout)}),
            )
            .await,
            "GT_INVALID_PARAM",
        );

        // Issued, it authenticates the agency.
        let issued = operator_post(path.clone(), Some(token.clone()), good.clone()).await;
        assert_eq!(issued.0, StatusCode::OK, "{}", issued.1);
        let serial = issued.1["serial"].as_str().expect("serial").to_owned();
        let identity = govtrust_service::pemfile::client_identity(
            issued.1["chain_pem"].as_str().expect("chain_pem"),
            &key,
        )
        .expect("client identity");
        let agency_http = s.svc.client_with_identity(Some(identity.as_bytes()));
        let dev = s.fake_device(OFFICE, OFFICE_PW).await;
        let answer = s
            .svc
            .post(
                &agency_http,
                "/v1/enrollment/challenge",
                &dev.challenge_request("device"),
            )
            .await;
        assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
        let challenge = answer.1;

        // Revoked, the same connection pool is refused on the next request.
        let revoked = operator_post(
            format!("/v1/certificates/{serial}/revoke"),
            Some(token.clone()),
            json!({"reason": "key_compromise"}),
        )
        .await;
        assert_eq!(revoked.0, StatusCode::OK, "{}", revoked.1);
        let answer = s
            .svc
            .post(
                &agency_http,
                "/v1/enrollment/challenge",
                &dev.challenge_request("device"),
            )
            .await;
        assert_errcode(&answer, "GT_CLIENT_CERT_REJECTED");
        // The enrollment endpoint reads the standing together with its
        // challenge: refused all the same, and no certificate is issued.
        let answer = s
            .svc
            .post(
                &agency_http,
                "/v1/enrollment",
                &dev.enroll_request(&challenge, Some(0)),
            )
            .await;
        assert_errcode(&answer, "GT_CLIENT_CERT_REJECTED");

        // A suspended authority gets no new client certificate.
        let suspended = operator_post(
            format!("/v1/authorities/{}/suspend", record.id),
            Some(token.clone()),
            json!({}),
        )
        .await;
        assert_eq!(suspended.0, StatusCode::OK, "{}", suspended.1);
        assert_errcode(
            &operator_post(path, Some(token), good).await,
            "GT_AUTHORITY_SUSPENDED",
        );
    });
}

// ----- 3. homeserver outage --------------------------------------------------

/// The homeserver stops between challenge and enrollment: the enrollment
/// still succeeds (publication pending), and the outbox publishes the
/// event once the homeserver is back. Nothing is lost.
#[test]
fn homeserver_outage_during_enrollment() {
    run(async {
        let t0 = Instant::now();
        let mut hs = Synapse::new().await.expect("start Synapse");
        let bot_id = hs
            .register("govtrust", BOT_PW, false)
            .await
            .expect("register bot");
        let user = hs
            .register("office.outage", "outage-pw", false)
            .await
            .expect("register agency user");
        let outsider = hs
            .register("outsider", "outsider-pw", false)
            .await
            .expect("register outsider");
        let outsider = hs
            .login(&outsider, "outsider-pw", None)
            .await
            .expect("outsider login");
        let svc =
            TestService::start(&hs.base_url(), &bot_id, BOT_PW, hs.server_name(), |_| {}).await;
        let agency = svc
            .add_authority(
                record("DE-BE-0002", "Ordnungsamt Neukölln"),
                &[hs.server_name()],
                &["office.*"],
            )
            .await;
        let room_id = svc
            .bot()
            .ensure_directory_room()
            .await
            .expect("room")
            .to_string();
        let store_dir = tempfile::tempdir().expect("temp dir");
        let device = Bot::connect(MatrixConfig::new(
            hs.base_url().parse().expect("url"),
            user.clone(),
            "outage-pw",
            store_dir.path().join("device"),
        ))
        .await
        .expect("agency device");
        let device_id = device.device_id().expect("device id").to_string();
        let key = device
            .client()
            .encryption()
            .ed25519_key()
            .await
            .expect("key");
        let client = svc.service_client(&agency);
        step(t0, "outage: set up");

        let receiver = ChallengeReceiver::install(device.client(), svc.bot_user_id());
        client
            .challenge(&ChallengeRequest {
                kind: Kind::Device,
                user_id: user.clone(),
                device_id: device_id.clone(),
                proof: Proof::ToDevice,
            })
            .await
            .expect("challenge");
        let secret = receiver
            .next(Duration::from_secs(60))
            .await
            .expect("challenge received");
        step(t0, "outage: challenge received; stopping Synapse");

        tokio::task::block_in_place(|| hs.stop());
        let enrolled = client
            .enroll(&EnrollRequest {
                kind: Kind::Device,
                user_id: user.clone(),
                device_id: device_id.clone(),
                key: key.clone(),
                challenge: secret,
                signature: None,
                wait_for_event_ms: Some(1000),
                rsa_public_key: None,
            })
            .await
            .expect("enrollment while the homeserver is down");
        assert_eq!(enrolled.event_id, None, "published while Synapse was down?");
        let store = &svc.svc.store;
        assert!(store.outbox_depth().await.expect("depth") >= 1);
        step(t0, "outage: enrolled with event_id null; starting Synapse");

        hs.start().await.expect("restart Synapse");
        let deadline = Instant::now() + Duration::from_secs(90);
        let event_id = loop {
            if let Some(id) = store
                .published_event_id(&enrolled.state_key)
                .await
                .expect("store")
            {
                break id;
            }
            assert!(
                Instant::now() < deadline,
                "the outbox did not publish within 90 s after the homeserver came back"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        step(t0, "outage: published after restart");
        let event = read_state(
            &hs,
            &room_id,
            &outsider.access_token,
            &enrolled.state_key,
            true,
        )
        .await
        .expect("state event after the outage");
        assert_eq!(event["event_id"], event_id.as_str(), "{event}");
        let content = &event["content"];
        assert_eq!(content["chain"], json!(enrolled.chain), "{event}");
        assert_eq!(content["key"], key.as_str(), "{event}");
        let parsed = AttestationContent::from_json(content.to_string().as_bytes()).expect("parse");
        assert!(!parsed.is_revoked());

        // Nothing lost: outbox drained, certificate stored, audit intact.
        assert_eq!(store.outbox_depth().await.expect("depth"), 0);
        let cert = store
            .get_certificate(&enrolled.serial)
            .await
            .expect("store")
            .expect("certificate stored");
        assert_eq!(cert.status, CertificateStatus::Valid);
        let report = store.verify_audit_chain().await.expect("audit");
        assert!(report.is_ok(), "{report:?}");
        let expected = Expected::new(&user, Some(&device_id), &key).expect("expected");
        verifier(&svc)
            .verify_event(
                &expected,
                content.to_string().as_bytes(),
                &svc.fetch_crls().await,
                UnixTime::now(),
            )
            .expect("verifies after the outage");
        step(t0, "outage: done");

        drop(receiver);
        device.shutdown();
        svc.stop().await;
    });
}

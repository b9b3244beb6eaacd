//! Issue #10 part 1 end to end: Element's `io.element.x509` identity
//! signature through the REAL service and a real Synapse.
//!
//! The agency (a real matrix-sdk device with cross-signing) enrolls an
//! identity-signing certificate for its RSA key through the service's
//! HTTPS API (mTLS, to-device proof, `kind: identity_signing`), signs its
//! own master key with it (`govtrust_service::agency::sign_identity`) and
//! uploads the signature to Synapse. A citizen's client, running
//! `govtrust_agent` with the pinned root, learns the agency's identity
//! from `/keys/query`, finds the signature in its own crypto store and
//! trusts the identity: the agency device is verified, the badge is the
//! authority record. `govtrust verify --element-x509` accepts the master
//! key object as `/keys/query` serves it. Then the operator revokes the
//! certificate through the service's API; the CRL names it, the CLI says
//! `revoked`, and the agent withdraws the trust (the device is blocked).

// tests/support/service.rs builds its HTTPS clients with it.
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
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use govtrust_agent::{AgentConfig, AutoTrustAgent, TrustAction, TrustDecision, Verdict};
use govtrust_pki::element_x509::{FileIdentitySigner, IdentitySigner};
use govtrust_service::agency::{enroll_identity_signing, sign_identity};
use govtrust_service::matrix::{Bot, MatrixConfig};
use govtrust_service::storage::CertificateKind;
use govtrust_verifier::element_x509::KEY_ID_PREFIX;
use govtrust_verifier::{Subject, TrustAnchors};
use harness::{bootstrap_cross_signing, login, run, spawn_sync, step, wait_for, WAIT};
use matrix_sdk::encryption::LocalTrust;
use matrix_sdk::ruma::OwnedUserId;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use service::{record, TestService};
use synapse::Synapse;

const BOT_PW: &str = "bot-password";
const AGENCY_PW: &str = "agency-password";
const CITIZEN_PW: &str = "citizen-password";

/// A test-only RSA-2048 identity-signing key of the agency (made once with
/// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`; ring
/// cannot generate RSA keys).
const AGENCY_RSA_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCrWroCy7cpT5zL
m39ts/NOc7qtQriU/oJZvhmnJY1nIrXYwWntMkbfl34cAhlAJhHTRfFnsZwLqGbh
krztBbtS5FgO27U8XEkIuIpfT3zV05z1ZJRwN+7rXV1bYqzafJVFT6CzDMs+gDsm
4ZBXrwJPymWKT+vFVTQ9mkuqy6x5H5xyWkOkKT4aXWuRkUQh5Vjn0hUiBlYzCzvr
LDB6qzloR58ytRHeqYXDorrSAYytoPVnsqLIxzbMkV+LhvmvPpPUYQQQj8F0E+Al
EathkcwvvzTMTiczSUomGQwWKSveuIf8IH4uS8oHSRAVUbN80zew7tqt4K1vZCgI
7+GrGItDAgMBAAECggEAC9sirKfYu/iAskvHhNkjGAYE4BESQWjcrwXqs3hzMLQj
neRABoPoiHbsaFay1Y/sws//lHui/uF/gNMM1F+FpwYam6iTASKngP13wYF38zmJ
jicP6DXOh6V1nKmWqSVelKWeSlUzyNbJgPaxbIe04r1vyiKefxBWpX6EBsTB4b1z
kEmFmDT0PCkQBjKHEIBBrg/Rcaf7vrK/N75yp0g+PimZVQYnKjJ6sf9c257YuJ/e
ShIPw+p4j3VUq8ETm8mpLR2zGRf3LK+FpPgrChtwRFaa+Ek+ltHhpr6X7rptTY26
G8JyKqkj8s1OKantJrH1tJpkTpjUEKiFSWh3KkzzoQKBgQDm2rK3Qsyc/0BqzLNX
Mw7AaWnJMeaSDgCFsKZNJPQcd3plYfrJ/MI6OZPxVn0BnNcBYhWw1Y3ntYGw6x6z
WDgx7GqMv4s5rVtxJajCGw8uyxmx+qpzXIEInMcFLt0V/KubTOGRrAMb4XYgOi4G
/feCR37BP0nkmGNPgoFtz97wIQKBgQC+BORi7byxTWYaaeKRgDHKTFv17bqTBIYL
ek8abEZ7VypZtMEoY28Mu7UkmoAmCgJUVuPVwGZrLlPKAMOLMh2du+Cpdgyd3smw
xP0F8IdkeEWwC9yeA90z7GMRE159B4HkcVayLwzjG1ZIsP1oNH/U/tfmHTMv2D2R
QN0Ego3e4wKBgQDOj0D52Ttb/siUxzRxAa5hW/DbpVq5tO2isb0bqcUC86UAsfrE
YPUpQ/usJccUelGnWywtXefrO+0fcEG4F2eww+lSptDcetEnHJszkyKyq+gB6Fg7
gLm0CxPI/3WzBrJF8zSiM1dUyxf3HhexCe09FNvF7esgL3os2okUyLqiAQKBgESQ
AVRM0bvr4H6BXDYB2nVTDg9zotFvXWqAzFANZ3UTo31Qwi1vi189z4OQl9Kh4+tI
mtbCoHHl+me11NjB0XvbkZmztaO1AnNc8KsW+dNfrk1ySj1dyY/1qF097ucQMWcb
Ghwa6/x6Ha0G57iU0NcqyP4H5TNLRBPIIreA3+3fAoGAeB6v8CchOwbmFrXCJ2ci
N0cnsnoTcf2MwURIHZFQQE6HG6uS8boANo4y7hhsSm/ppLGfcul5m2ooDvO54tS/
rYawOTlGFQ/e5EImxfJucmdiUH3NEq7cFTv8PHL0VxaqExRXydsUyqXuoHQ+ZF/U
/cK43rmI4T3he3tt/4DS+Xg=
-----END PRIVATE KEY-----
";

/// A 1024-bit RSA SubjectPublicKeyInfo (base64 DER), below the minimum.
const RSA_1024_SPKI: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCoEXj4BVNImYqWafr9V8T/Hp4StTm33I4VrMJjF/cXExaBxkaLv5YXKPFDikThXdGI+2KaVyzz98iCiPySA4HotDOAhQEEKyaHpGn9gyZQPMUp3pzrO4lfH5+r6kNqJzd7EpyV+cxFbRkjekZTICIvEk7wi7XXc1AtGlE6erqaWQIDAQAB";

/// Runs `govtrust verify --element-x509` and returns (exit code, stdout JSON).
fn cli_verify(
    dir: &Path,
    user: &str,
    master_key: &Value,
    root_pem: &str,
    crls: &[Vec<u8>],
) -> (i32, Value) {
    let master_file = dir.join("master-key.json");
    std::fs::write(&master_file, serde_json::to_vec(master_key).expect("json")).expect("write");
    let root_file = dir.join("root.pem");
    std::fs::write(&root_file, root_pem).expect("write root");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_govtrust"));
    cmd.arg("--json")
        .arg("verify")
        .arg("--element-x509")
        .arg(&master_file)
        .arg("--user")
        .arg(user)
        .arg("--root")
        .arg(&root_file)
        .arg("--require-crl");
    for (i, crl) in crls.iter().enumerate() {
        let path = dir.join(format!("crl-{i}.der"));
        std::fs::write(&path, crl).expect("write CRL");
        cmd.arg("--crl").arg(path);
    }
    let out = cmd.output().expect("run govtrust verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let verdict = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "govtrust verify printed no JSON ({e}): {stdout} / {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), verdict)
}

/// The service's current CRLs (issuing CA and root), DER.
async fn crl_files(svc: &TestService) -> Vec<Vec<u8>> {
    let http = svc.public_client();
    let mut crls = Vec::new();
    for name in [
        format!("{}.crl", svc.svc.pki.issuing_id()),
        "root.crl".into(),
    ] {
        let response = http
            .get(format!("{}/v1/crl/{name}", svc.base))
            .send()
            .await
            .expect("GET CRL");
        assert_eq!(response.status(), StatusCode::OK, "GET /v1/crl/{name}");
        crls.push(response.bytes().await.expect("CRL body").to_vec());
    }
    crls
}

/// The master key object of `user` as `/keys/query` serves it to `token`.
async fn query_master_key(hs: &Synapse, token: &str, user: &str) -> Value {
    let (status, body) = hs
        .call(
            Method::POST,
            "/_matrix/client/v3/keys/query",
            Some(token),
            Some(&json!({ "device_keys": { user: [] } })),
        )
        .await
        .expect("keys/query");
    assert_eq!(status, StatusCode::OK, "{body}");
    body["master_keys"][user].clone()
}

#[test]
fn element_x509_identity_signature_end_to_end() {
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
        let bot_id = hs.register("govtrust", BOT_PW, false).await.expect("bot");
        let svc =
            TestService::start(&hs.base_url(), &bot_id, BOT_PW, hs.server_name(), |_| {}).await;
        let agency = svc
            .add_authority(
                record("DE-BE-11000000-BA-NK", "Registration Office Berlin"),
                &[hs.server_name()],
                &["agency.*"],
            )
            .await;
        step(t0, "Synapse and service up");

        // ----- the agency: device, cross-signing, identity-signing certificate
        let agency_id = hs
            .register("agency.x509", AGENCY_PW, false)
            .await
            .expect("agency");
        let device = Bot::connect(MatrixConfig::new(
            hs.base_url().parse().expect("url"),
            agency_id.clone(),
            AGENCY_PW,
            dir.path().join("agency"),
        ))
        .await
        .expect("agency device");
        bootstrap_cross_signing(device.client(), &agency_id, AGENCY_PW).await;
        let signer = FileIdentitySigner::from_pkcs8_pem(AGENCY_RSA_KEY).expect("RSA key");

        // The RSA key is checked before anything else of the answer.
        let mtls = svc.mtls_client(&agency);
        let master = device
            .client()
            .encryption()
            .get_user_identity(device.client().user_id().expect("user"))
            .await
            .expect("crypto store")
            .and_then(|i| i.master_key().get_first_key().map(|k| k.to_base64()))
            .expect("master key");
        for (kind, rsa, why) in [
            ("identity_signing", None, "missing"),
            ("identity_signing", Some(RSA_1024_SPKI), "1024 bits"),
            ("identity_signing", Some("bm90IGFuIFNQS0k="), "not an SPKI"),
            ("identity", Some(RSA_1024_SPKI), "with another kind"),
        ] {
            let mut body = json!({
                "kind": kind,
                "user_id": agency_id,
                "device_id": device.client().device_id().expect("device").as_str(),
                "key": master,
                "challenge": "never-sent",
            });
            if let Some(rsa) = rsa {
                body["rsa_public_key"] = json!(rsa);
            }
            let answer = svc.post(&mtls, "/v1/enrollment", &body).await;
            service::assert_errcode(&answer, "GT_INVALID_PARAM");
            step(
                t0,
                &format!("rsa_public_key {why}: refused ({})", answer.1["error"]),
            );
        }
        let enrolled = enroll_identity_signing(
            device.client(),
            &svc.service_client(&agency),
            svc.bot_user_id(),
            &signer,
        )
        .await
        .expect("identity-signing enrollment through the service");
        assert!(
            enrolled.state_key.is_empty() && enrolled.event_id.is_none(),
            "{enrolled:?}"
        );
        assert_eq!(enrolled.chain.len(), 2);
        let stored = svc
            .svc
            .store
            .find_live_certificate(
                &agency_id,
                CertificateKind::IdentitySigning,
                None,
                govtrust_service::clock::now_ms(),
            )
            .await
            .expect("store")
            .expect("the identity-signing certificate is stored");
        assert_eq!(stored.serial, enrolled.serial);
        assert_eq!(stored.key, STANDARD.encode(signer.spki_der()));
        step(
            t0,
            &format!("identity-signing certificate {} issued", enrolled.serial),
        );

        // ----- sign the master key and upload the signature
        let chain =
            govtrust_verifier::pem::certificates(enrolled.chain_pem.as_bytes()).expect("chain");
        let signed = sign_identity(device.client(), &chain, &signer, Some(AGENCY_PW))
            .await
            .expect("sign and upload the master key signature");
        assert!(signed.key_id.starts_with(KEY_ID_PREFIX));
        step(
            t0,
            &format!(
                "master key signed ({}), uploaded with {:?}",
                signed.key_id, signed.uploaded_with
            ),
        );

        // ----- a citizen learns the identity and its agent trusts it
        let citizen_id = hs
            .register("citizen.x509", CITIZEN_PW, false)
            .await
            .expect("citizen");
        let citizen = login(
            &hs.base_url(),
            &citizen_id,
            CITIZEN_PW,
            &dir.path().join("citizen"),
        )
        .await;
        let citizen_sync = spawn_sync(citizen.clone(), Duration::from_secs(2), None);
        let mut config = AgentConfig::new(
            TrustAnchors::from_pem(svc.root_pem.as_bytes()).expect("pinned root"),
            dir.path().join("citizen-agent.json"),
        );
        config.publishers = vec![svc.bot_user_id()];
        let agent = AutoTrustAgent::start(citizen.clone(), config)
            .await
            .expect("agent");
        let room = device
            .client()
            .create_dm(citizen.user_id().expect("citizen"))
            .await
            .expect("create DM");
        citizen
            .join_room_by_id(room.room_id())
            .await
            .expect("citizen joins");

        // The master key as /keys/query serves it to the citizen carries the signature.
        let token = citizen.access_token().expect("token");
        let master = query_master_key(&hs, &token, &agency_id).await;
        assert_eq!(
            master["signatures"][&agency_id][&signed.key_id].as_str(),
            signed.master_key["signatures"][&agency_id][&signed.key_id].as_str(),
            "{master}"
        );

        let identity = wait_for(
            t0,
            &agent,
            &agency_id,
            None,
            "identity verified through io.element.x509",
            |d| matches!(d.verdict, Verdict::Verified(_)),
        )
        .await;
        assert_eq!(identity.authority(), Some(&agency.record));
        match &identity.verdict {
            Verdict::Verified(att) => {
                assert_eq!(att.subject, Subject::Identity);
                assert_eq!(att.serial, enrolled.serial);
            }
            other => panic!("{other:?}"),
        }
        let device_id = device.client().device_id().expect("device id").to_string();
        let trusted = wait_for(
            t0,
            &agent,
            &agency_id,
            Some(&device_id),
            "agency device trusted",
            TrustDecision::is_trusted,
        )
        .await;
        assert_eq!(trusted.action, TrustAction::Trusted, "{trusted}");
        assert_eq!(trusted.authority(), Some(&agency.record));
        let agency_user = OwnedUserId::try_from(agency_id.as_str()).expect("user");
        let seen = citizen
            .encryption()
            .get_device(&agency_user, device_id.as_str().into())
            .await
            .expect("crypto store")
            .expect("device known");
        assert_eq!(
            (seen.local_trust_state(), seen.is_verified()),
            (LocalTrust::Verified, true)
        );
        step(
            t0,
            "citizen trusts the agency device through the identity signature",
        );

        // ----- the CLI accepts the master key object from /keys/query
        let (code, verdict) = cli_verify(
            dir.path(),
            &agency_id,
            &master,
            &svc.root_pem,
            &crl_files(&svc).await,
        );
        assert_eq!(code, 0, "{verdict}");
        assert_eq!(verdict["trusted"], true, "{verdict}");
        assert_eq!(
            verdict["identity_signature"]["signer"]["serial"],
            enrolled.serial.as_str()
        );
        step(t0, "govtrust verify --element-x509: trusted");

        // ----- revocation
        let (status, body) = svc
            .revoke_as_operator(&enrolled.serial, "key_compromise")
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (code, verdict) = cli_verify(
            dir.path(),
            &agency_id,
            &master,
            &svc.root_pem,
            &crl_files(&svc).await,
        );
        assert_eq!(
            (code, verdict["reason"].as_str()),
            (1, Some("revoked")),
            "{verdict}"
        );
        step(t0, "revoked; govtrust verify --element-x509: revoked");

        agent.refresh_crls().await.expect("refresh CRLs");
        let withdrawn = wait_for(
            t0,
            &agent,
            &agency_id,
            Some(&device_id),
            "agency device trust withdrawn",
            |d| !d.is_trusted() && d.action != TrustAction::NoChange,
        )
        .await;
        assert_eq!(withdrawn.verdict.code(), Some("revoked"), "{withdrawn}");
        let deadline = Instant::now() + WAIT;
        loop {
            let seen = citizen
                .encryption()
                .get_device(&agency_user, device_id.as_str().into())
                .await
                .expect("crypto store")
                .expect("device known");
            if !seen.is_verified() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the agency device stays verified"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let identity = agent
            .decision_for(&agency_user, None)
            .expect("identity decision");
        assert_eq!(identity.verdict.code(), Some("revoked"), "{identity}");
        step(t0, "agent withdrew the trust");

        drop(agent);
        citizen_sync.abort();
        device.shutdown();
    });
}

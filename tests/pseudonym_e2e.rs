//! Pseudonymous citizens end to end (issue #11 part 2, docs/pseudonyms.md)
//! against a real Synapse: the service with `[pseudonyms]` enabled (file
//! PRF key in its CA directory, the test identity provider), accounts
//! created through Synapse's admin API with an admin token of the
//! fixture's own admin user, a citizen's matrix-sdk device enrolled for a
//! citizen attestation (EKU ARC.6) through the service's enrollment flow
//! (`POST /v1/pseudonyms/enrollment…`, Olm to-device proof, `/keys/query`
//! cross-check), and an agency that checks it with
//! `Verifier::verify_citizen`.
//!
//! Personal data: the citizen's stable IdP ID must appear nowhere the
//! service leaves traces — the tracing output (captured by a global
//! subscriber for every test of this file), the audit rows (read through
//! the store), the certificates, the HTTP answers, and any file in the
//! service's data directory.
//!
//! Also the refusals of the citizen endpoints, each one a request that
//! would succeed without its check, and `POST /v1/pseudonyms`'s error
//! paths, including the feature switched off (404) and switched on but
//! unusable (503).

#[path = "support/fake_device.rs"]
mod fake_device;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/service.rs"]
mod service;
#[path = "support/synapse.rs"]
mod synapse;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use govtrust_pki::signer::FileMacKey;
use govtrust_service::config::Config;
use govtrust_service::pseudonym::client::{enroll_citizen_device, CitizenServiceClient};
use govtrust_service::pseudonym::{
    default_key_file, derive, CitizenId, StaticTestIdp, TestAssertion,
};
use govtrust_service::storage::CertificateKind;
use govtrust_verifier::{
    AssuranceLevel, CertificateDer, CitizenExpected, CrlPolicy, DeviceId, Ed25519Key, TrustAnchors,
    UnixTime, UserId, Verifier,
};
use harness::{enc, login, run, spawn_sync, step};
use reqwest::StatusCode;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};
use tokio::sync::OnceCell;

use fake_device::FakeDevice;
use service::{assert_errcode, record, TestService};
use synapse::Synapse;

const BOT_PW: &str = "bot-password";
const ADMIN_PW: &str = "admin-password";
/// The password the test gives a pseudonymous account so that the
/// citizen's device can log in (the service creates it without one; a
/// real deployment logs the citizen in through the IdP, e.g. SSO).
const CITIZEN_PW: &str = "pseudonym-password";
const AGENCY_PW: &str = "agency-password";

/// The citizen of the main scenario: personal data, never to be seen.
const STABLE_ID: &str = "bundid:5c0f3e91-7d2a-4b6e-a8c4-stable-citizen-id";
/// Part of it, in case something logs a fragment.
const STABLE_FRAGMENT: &str = "5c0f3e91-7d2a";
/// The citizen of the refusal scenario.
const REFUSAL_ID: &str = "bundid:e81b77d0-refusal-citizen";
/// Another citizen.
const OTHER_ID: &str = "bundid:a93c11f4-another-citizen";

const AUTH_A: &str = "DE-BE-11000000-JC-MI";
const AUTH_B: &str = "DE-BE-11000000-FA-KR";
const AUTH_SUSPENDED: &str = "DE-BE-11000000-SUSP";

/// Everything the tracing subscriber writes, for the personal-data scan.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// The Synapse, the service and the IdP key every test shares.
struct Shared {
    hs: Synapse,
    svc: TestService,
    /// PKCS#8 of the test IdP's signing key.
    idp_pkcs8: Vec<u8>,
    /// The Synapse admin token the service uses (also for the test's own
    /// admin calls).
    admin_token: String,
    /// Holds the admin token file.
    _token_dir: tempfile::TempDir,
    capture: Capture,
    /// Every service answer's body, for the personal-data scan.
    answers: Mutex<Vec<String>>,
    http: reqwest::Client,
}

static SHARED: OnceCell<Shared> = OnceCell::const_new();

/// The IdP's key and its public half, base64.
fn idp_key() -> (Vec<u8>, String) {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
        .expect("IdP key")
        .as_ref()
        .to_vec();
    let public = Ed25519KeyPair::from_pkcs8(&pkcs8)
        .expect("IdP key")
        .public_key()
        .as_ref()
        .to_vec();
    (pkcs8, STANDARD.encode(public))
}

/// `[pseudonyms]` on, with the test IdP and the homeserver's admin API.
fn enable_pseudonyms(config: &mut Config, hs: &Synapse, token_file: &Path, idp_public: &str) {
    let p = &mut config.pseudonyms;
    p.enabled = true;
    p.server_name = Some(hs.server_name().to_owned());
    p.homeserver_admin_url = Some(hs.base_url().parse().expect("homeserver URL"));
    p.admin_token_file = Some(token_file.to_owned());
    p.identity_provider = Some("static-test".into());
    p.test_idp_public_key = Some(idp_public.to_owned());
}

async fn shared() -> &'static Shared {
    SHARED
        .get_or_init(|| async {
            let capture = Capture::default();
            // Everything the service logs at debug (govtrust at trace),
            // captured for the whole file.
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(
                    "debug,govtrust_service=trace,govtrust=trace,hyper=info,hyper_util=info,h2=info,rustls=info,sqlx=info,matrix_sdk=info,matrix_sdk_base=info,matrix_sdk_crypto=info,matrix_sdk_sqlite=info",
                ))
                .with_ansi(false)
                .with_writer(capture.clone())
                .try_init()
                .expect("the capturing subscriber is the only global one");
            let t0 = Instant::now();
            let hs = Synapse::new().await.expect("start Synapse");
            let bot = hs
                .register("govtrust", BOT_PW, false)
                .await
                .expect("register bot");
            let admin = hs
                .register("pseudonym-admin", ADMIN_PW, true)
                .await
                .expect("register admin");
            let admin_token = hs
                .login(&admin, ADMIN_PW, None)
                .await
                .expect("admin login")
                .access_token;
            let token_dir = tempfile::tempdir().expect("temp dir");
            let token_file = token_dir.path().join("synapse-admin-token");
            std::fs::write(&token_file, format!("{admin_token}\n")).expect("token file");
            let (idp_pkcs8, idp_public) = idp_key();
            let svc = TestService::start(&hs.base_url(), &bot, BOT_PW, hs.server_name(), |c| {
                enable_pseudonyms(c, &hs, &token_file, &idp_public)
            })
            .await;
            for (id, name) in [
                (AUTH_A, "Jobcenter Berlin Mitte"),
                (AUTH_B, "Finanzamt Kreuzberg"),
                (AUTH_SUSPENDED, "Bürgeramt Suspended"),
            ] {
                svc.add_authority(record(id, name), &[hs.server_name()], &["agency.*"])
                    .await;
            }
            step(t0, "shared fixture: Synapse and service with pseudonyms up");
            Shared {
                hs,
                svc,
                idp_pkcs8,
                admin_token,
                _token_dir: token_dir,
                capture,
                answers: Mutex::new(Vec::new()),
                http: reqwest::Client::new(),
            }
        })
        .await
}

/// A fresh compact assertion of the test IdP.
fn sign_assertion(pkcs8: &[u8], sub: &str, loa: AssuranceLevel, aud: &str, exp: i64) -> String {
    StaticTestIdp::sign(
        &Ed25519KeyPair::from_pkcs8(pkcs8).expect("IdP key"),
        &TestAssertion {
            iss: StaticTestIdp::ISSUER.into(),
            aud: aud.to_owned(),
            sub: sub.to_owned(),
            loa,
            exp,
        },
    )
}

fn in_an_hour() -> i64 {
    govtrust_service::clock::now_ms() / 1000 + 3600
}

impl Shared {
    /// An assertion for `sub` at `loa`, addressed to the shared service.
    fn assertion(&self, sub: &str, loa: AssuranceLevel) -> String {
        sign_assertion(
            &self.idp_pkcs8,
            sub,
            loa,
            &self.svc.svc.config.public_base(),
            in_an_hour(),
        )
    }

    /// POSTs to the shared service (no client certificate) and keeps the
    /// answer for the personal-data scan.
    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let answer = self.svc.post(&self.svc.public_client(), path, body).await;
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(answer.1.to_string());
        answer
    }

    /// `POST /v1/pseudonyms`, which must succeed: `(user_id, created)`.
    async fn pseudonym(&self, sub: &str, authority: &str) -> (String, bool) {
        let (status, body) = self
            .post(
                "/v1/pseudonyms",
                &json!({
                    "assertion": self.assertion(sub, AssuranceLevel::Substantial),
                    "authority_id": authority,
                }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "POST /v1/pseudonyms: {body}");
        assert_eq!(body["assurance_level"], "substantial");
        (
            body["user_id"].as_str().expect("user_id").to_owned(),
            body["created"].as_bool().expect("created"),
        )
    }

    /// The pseudonym the service's own key gives `sub` at `authority`.
    fn derived(&self, config: &Config, sub: &str, authority: &str) -> String {
        let (key, generated) =
            FileMacKey::load_or_generate(&default_key_file(config)).expect("the service's key");
        assert!(!generated, "the service generated its key at start");
        derive(&key, &CitizenId::new(sub).expect("citizen ID"), authority)
            .expect("derivation")
            .user_id(self.hs.server_name())
            .expect("user ID")
            .to_string()
    }

    /// Gives the (password-less) pseudonymous account a password through
    /// the admin API, so that a device can log in.
    async fn set_password(&self, user: &str) {
        let response = self
            .http
            .put(format!(
                "{}/_synapse/admin/v2/users/{}",
                self.hs.base_url(),
                enc(user)
            ))
            .bearer_auth(&self.admin_token)
            .json(&json!({ "password": CITIZEN_PW }))
            .send()
            .await
            .expect("admin API");
        assert_eq!(response.status(), 200, "setting the password of {user}");
    }

    /// The Ed25519 key `/keys/query` serves for `user`'s `device`, as an
    /// agency's client sees it.
    async fn served_key(&self, token: &str, user: &str, device: &str) -> String {
        let answer = fake_device::post_json(
            &self.http,
            &format!("{}/_matrix/client/v3/keys/query", self.hs.base_url()),
            Some(token),
            &json!({ "device_keys": { user: [] } }),
        )
        .await
        .expect("keys/query");
        answer["device_keys"][user][device]["keys"][format!("ed25519:{device}")]
            .as_str()
            .unwrap_or_else(|| panic!("no key for {user} {device}: {answer}"))
            .to_owned()
    }

    /// The citizen body of a challenge request.
    fn challenge_body(&self, assertion: &str, authority: &str, user: &str, device: &str) -> Value {
        json!({
            "assertion": assertion,
            "authority_id": authority,
            "user_id": user,
            "device_id": device,
            "proof": "signature",
        })
    }

    /// Suspends `authority` through the operator API.
    async fn suspend(&self, authority: &str) {
        let token = self.svc.operator_token().await;
        let (status, body) = self
            .svc
            .request(
                &self.svc.public_client(),
                reqwest::Method::POST,
                &format!("/v1/authorities/{authority}/suspend"),
                Some(&token),
                Some(("application/json", b"{}".to_vec())),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "suspend {authority}: {body}");
    }

    /// The stable IDs `ids` appear nowhere: not in the captured tracing
    /// output, the audit rows, the HTTP answers, the certificates `ders`
    /// or any file of the service's data directory. Also checks that the
    /// capture works (it holds `must_log`, a pseudonym the service logged).
    async fn assert_no_personal_data(&self, ids: &[&str], ders: &[Vec<u8>], must_log: &str) {
        let logs = self.capture.text();
        assert!(
            logs.contains(must_log),
            "the capture holds the service's log lines ({} bytes)",
            logs.len()
        );
        let audit = self
            .svc
            .svc
            .store
            .list_audit(0, 100_000)
            .await
            .expect("audit rows");
        assert!(!audit.is_empty());
        let audit_text = serde_json::to_string(&audit).expect("audit JSON");
        let answers = self
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n");
        let mut files = Vec::new();
        collect_files(self.svc.dir.path(), &mut files);
        for id in ids {
            assert!(!logs.contains(id), "{id} in the service's log");
            assert!(!audit_text.contains(id), "{id} in the audit log");
            assert!(!answers.contains(id), "{id} in an answer");
            for der in ders {
                assert!(!contains(der, id.as_bytes()), "{id} in a certificate");
            }
            for (path, bytes) in &files {
                assert!(
                    !contains(bytes, id.as_bytes()),
                    "{id} in {}",
                    path.display()
                );
            }
        }
        assert!(
            !logs.contains(STABLE_FRAGMENT),
            "part of the stable ID logged"
        );
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn collect_files(dir: &Path, out: &mut Vec<(std::path::PathBuf, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
}

fn chain_der(chain: &[String]) -> Vec<CertificateDer<'static>> {
    chain
        .iter()
        .map(|c| CertificateDer::from(STANDARD.decode(c).expect("base64 DER")))
        .collect()
}

/// One citizen, two authorities: different pseudonyms, stable across
/// requests and equal to the derivation under the service's key; the
/// account of one is created on Synapse, its matrix-sdk device enrolled
/// for a citizen attestation (to-device proof), which an agency accepts at
/// `substantial` and refuses when `high` is demanded; stored, audited
/// without the stable ID, published nowhere; then revoked.
#[test]
fn citizen_attestation_through_the_enrollment_flow() {
    run(async {
        let sh = shared().await;
        let t0 = Instant::now();
        let server = sh.hs.server_name();

        let (a, created) = sh.pseudonym(STABLE_ID, AUTH_A).await;
        assert!(created, "the first request creates the account");
        let (a_again, created_again) = sh.pseudonym(STABLE_ID, AUTH_A).await;
        assert_eq!(a, a_again, "stable");
        assert!(!created_again, "the second request finds it");
        let (b, _) = sh.pseudonym(STABLE_ID, AUTH_B).await;
        assert_ne!(a, b, "one pseudonym per authority");
        assert_eq!(a, sh.derived(&sh.svc.svc.config, STABLE_ID, AUTH_A));
        assert_eq!(b, sh.derived(&sh.svc.svc.config, STABLE_ID, AUTH_B));
        for user in [&a, &b] {
            let localpart = user
                .strip_prefix("@p-")
                .and_then(|u| u.strip_suffix(&format!(":{server}")))
                .unwrap_or_else(|| panic!("{user} is not @p-…:{server}"));
            assert_eq!(localpart.len(), 26);
        }
        step(t0, &format!("pseudonyms {a} and {b}"));

        // The citizen's device on the account the service created.
        sh.set_password(&a).await;
        let store = tempfile::tempdir().expect("store");
        let client = login(&sh.hs.base_url(), &a, CITIZEN_PW, store.path()).await;
        let sync = spawn_sync(client.clone(), Duration::from_secs(2), None);
        let device = client.device_id().expect("device").to_string();
        let citizen_service = CitizenServiceClient::new(
            sh.svc.base.parse().expect("base URL"),
            sh.svc.root_pem.as_bytes(),
        )
        .expect("citizen client");
        let enrolled = enroll_citizen_device(
            &client,
            &citizen_service,
            sh.svc.bot_user_id(),
            &sh.assertion(STABLE_ID, AssuranceLevel::Substantial),
            AUTH_A,
        )
        .await
        .expect("citizen enrollment");
        sync.abort();
        sh.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(serde_json::to_string(&enrolled).expect("answer JSON"));
        assert!(enrolled.state_key.is_empty(), "nothing to publish");
        assert!(enrolled.event_id.is_none(), "nothing published");
        assert_eq!(enrolled.chain.len(), 2, "leaf and issuing CA");
        step(
            t0,
            &format!("device {device} enrolled: {}", enrolled.serial),
        );

        // The agency's side: the key its own /keys/query serves, the
        // pinned root, the service's CRLs.
        let agency = sh
            .hs
            .register("agency.desk", AGENCY_PW, false)
            .await
            .expect("agency");
        let agency_session = sh.hs.login(&agency, AGENCY_PW, None).await.expect("login");
        let served = sh
            .served_key(&agency_session.access_token, &a, &device)
            .await;
        let verifier = Verifier::new(
            TrustAnchors::from_pem(sh.svc.root_pem.as_bytes()).expect("root"),
            CrlPolicy::REQUIRE_FRESH,
        );
        let chain = chain_der(&enrolled.chain);
        let mut expected = CitizenExpected {
            user_id: UserId::parse(&a).expect("user"),
            device_id: DeviceId::parse(&device).expect("device"),
            key: Ed25519Key::from_base64(&served).expect("key"),
            minimum_level: Some(AssuranceLevel::Substantial),
        };
        let crls = sh.svc.fetch_crls().await;
        let verified = verifier
            .verify_citizen(&expected, &chain, &crls, UnixTime::now())
            .expect("the agency accepts the citizen at substantial");
        assert_eq!(verified.level, AssuranceLevel::Substantial);
        assert_eq!(verified.user_id.as_str(), a);
        assert_eq!(verified.device_id.as_str(), device);
        assert_eq!(verified.serial, enrolled.serial);
        expected.minimum_level = Some(AssuranceLevel::High);
        let refused = verifier
            .verify_citizen(&expected, &chain, &crls, UnixTime::now())
            .expect_err("high is more than the IdP asserted");
        assert_eq!(refused.code(), "assurance_too_low");
        // B's pseudonym is not A's: the certificate names only A.
        expected.minimum_level = None;
        expected.user_id = UserId::parse(&b).expect("user");
        assert!(verifier
            .verify_citizen(&expected, &chain, &crls, UnixTime::now())
            .is_err());
        step(t0, "verify_citizen: substantial accepted, high refused");

        // Stored under the authority, kind citizen.
        let store = &sh.svc.svc.store;
        let now = govtrust_service::clock::now_ms();
        let stored = store
            .find_live_certificate(&a, CertificateKind::Citizen, Some(&device), now)
            .await
            .expect("store")
            .expect("the citizen attestation is stored");
        assert_eq!(stored.serial, enrolled.serial);
        assert_eq!(stored.authority_id, AUTH_A);
        assert_eq!(stored.der, chain[0].as_ref());

        // Audited with the pseudonym, the authority and the level.
        let audit = store.list_audit(0, 100_000).await.expect("audit");
        let issued = audit
            .iter()
            .find(|r| {
                r.action == "certificate.issued" && r.subject.as_deref() == Some(&enrolled.serial)
            })
            .expect("audit row of the issuance");
        assert_eq!(issued.actor, "citizen");
        let details: Value = serde_json::from_str(&issued.details).expect("details");
        assert_eq!(details["kind"], "citizen");
        assert_eq!(details["user_id"], a.as_str());
        assert_eq!(details["device_id"], device.as_str());
        assert_eq!(details["authority_id"], AUTH_A);
        assert_eq!(details["assurance_level"], "substantial");
        assert!(details.get("client_certificate").is_none());
        assert!(audit
            .iter()
            .any(|r| r.action == "pseudonym.ensured" && r.subject.as_deref() == Some(&a)));

        // Published nowhere: no state event of the directory room names
        // the pseudonym, and the outbox got nothing.
        let directory = sh
            .svc
            .bot()
            .ensure_directory_room()
            .await
            .expect("directory room");
        let state = sh
            .http
            .get(format!(
                "{}/_matrix/client/v3/rooms/{}/state",
                sh.hs.base_url(),
                enc(directory.as_str())
            ))
            .bearer_auth(&agency_session.access_token)
            .send()
            .await
            .expect("room state");
        assert_eq!(state.status(), 200, "the directory is world-readable");
        let state = state.text().await.expect("state body");
        assert!(!state.contains(&a), "the citizen attestation was published");

        // The certificates name neither the person nor the other pseudonym.
        let leaf = chain[0].as_ref();
        assert!(contains(
            leaf,
            a.trim_start_matches('@')
                .split(':')
                .next()
                .unwrap_or("")
                .as_bytes()
        ));
        let b_localpart = b
            .trim_start_matches('@')
            .split(':')
            .next()
            .unwrap_or("")
            .to_owned();
        assert!(
            !contains(leaf, b_localpart.as_bytes()),
            "B's pseudonym certified"
        );

        // Revocable like any certificate; the agency then refuses it.
        let (status, body) = sh
            .svc
            .revoke_as_operator(&enrolled.serial, "key_compromise")
            .await;
        assert_eq!(status, StatusCode::OK, "revoke: {body}");
        expected.user_id = UserId::parse(&a).expect("user");
        let crls = sh.svc.fetch_crls().await;
        let revoked = verifier
            .verify_citizen(&expected, &chain, &crls, UnixTime::now())
            .expect_err("revoked");
        assert_eq!(revoked.code(), "revoked");
        step(t0, "revoked; refused under the new CRL");

        let ders: Vec<Vec<u8>> = chain.iter().map(|c| c.as_ref().to_vec()).collect();
        sh.assert_no_personal_data(&[STABLE_ID], &ders, &a).await;
    });
}

/// Each refusal of the citizen endpoints, with a request that would pass
/// without that check, then the valid enrollment (at the level of the
/// enrollment's assertion).
#[test]
fn citizen_enrollment_refusals() {
    run(async {
        let sh = shared().await;
        let aud = sh.svc.svc.config.public_base();
        let (p, _) = sh.pseudonym(REFUSAL_ID, AUTH_A).await;
        sh.set_password(&p).await;
        let dev = FakeDevice::create(&sh.http, &sh.hs.base_url(), &p, CITIZEN_PW, None)
            .await
            .expect("the pseudonym's device");
        let good = sh.assertion(REFUSAL_ID, AssuranceLevel::Substantial);
        let challenge = "/v1/pseudonyms/enrollment/challenge";
        let enrollment = "/v1/pseudonyms/enrollment";

        // The assertion: malformed, another IdP's key, expired, another
        // audience.
        let (other_idp, _) = idp_key();
        let bad_assertions = [
            "not-an-assertion".to_owned(),
            sign_assertion(
                &other_idp,
                REFUSAL_ID,
                AssuranceLevel::High,
                &aud,
                in_an_hour(),
            ),
            sign_assertion(&sh.idp_pkcs8, REFUSAL_ID, AssuranceLevel::High, &aud, 1),
            sign_assertion(
                &sh.idp_pkcs8,
                REFUSAL_ID,
                AssuranceLevel::High,
                "https://elsewhere.example",
                in_an_hour(),
            ),
        ];
        for bad in &bad_assertions {
            let answer = sh
                .post(
                    challenge,
                    &sh.challenge_body(bad, AUTH_A, &p, &dev.device_id),
                )
                .await;
            assert_errcode(&answer, "GT_UNAUTHORIZED");
        }
        // An authority the service does not know.
        let answer = sh
            .post(
                challenge,
                &sh.challenge_body(&good, "DE-XX-UNKNOWN", &p, &dev.device_id),
            )
            .await;
        assert_errcode(&answer, "GT_UNKNOWN_AUTHORITY");
        // Not this citizen's pseudonym for this authority: the same
        // citizen's account used for another authority, another citizen's
        // assertion, an agency's account.
        let answer = sh
            .post(
                challenge,
                &sh.challenge_body(&good, AUTH_B, &p, &dev.device_id),
            )
            .await;
        assert_errcode(&answer, "GT_USER_NOT_PERMITTED");
        let other = sh.assertion(OTHER_ID, AssuranceLevel::Substantial);
        let answer = sh
            .post(
                challenge,
                &sh.challenge_body(&other, AUTH_A, &p, &dev.device_id),
            )
            .await;
        assert_errcode(&answer, "GT_USER_NOT_PERMITTED");
        let agency_user = format!("@agency.refusals:{}", sh.hs.server_name());
        let answer = sh
            .post(
                challenge,
                &sh.challenge_body(&good, AUTH_A, &agency_user, &dev.device_id),
            )
            .await;
        assert_errcode(&answer, "GT_USER_NOT_PERMITTED");
        // A device the homeserver does not serve for the pseudonym.
        let answer = sh
            .post(
                challenge,
                &sh.challenge_body(&good, AUTH_A, &p, "NOSUCHDEVICE"),
            )
            .await;
        assert_errcode(&answer, "GT_DEVICE_UNKNOWN");

        // A valid challenge, then refused answers, then the valid one.
        let (status, answer) = sh
            .post(
                challenge,
                &sh.challenge_body(&good, AUTH_A, &p, &dev.device_id),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let nonce = answer["signing_payload"]["challenge"]
            .as_str()
            .expect("nonce")
            .to_owned();
        let signature = dev.sign_payload(&answer);
        let high = sh.assertion(REFUSAL_ID, AssuranceLevel::High);
        let body = |assertion: &str, key: &str, signature: &str| {
            json!({
                "assertion": assertion,
                "authority_id": AUTH_A,
                "user_id": p,
                "device_id": dev.device_id,
                "key": key,
                "challenge": nonce,
                "signature": signature,
            })
        };
        for bad in &bad_assertions {
            let answer = sh
                .post(enrollment, &body(bad, &dev.ed25519(), &signature))
                .await;
            assert_errcode(&answer, "GT_UNAUTHORIZED");
        }
        // Another citizen answering this citizen's challenge: the
        // enrollment checks the pseudonym again.
        let answer = sh
            .post(enrollment, &body(&other, &dev.ed25519(), &signature))
            .await;
        assert_errcode(&answer, "GT_USER_NOT_PERMITTED");
        // Extra fields (an agency's or an RSA key) are refused.
        let mut extra = body(&high, &dev.ed25519(), &signature);
        extra["kind"] = "device".into();
        let answer = sh.post(enrollment, &extra).await;
        assert_errcode(&answer, "GT_BAD_JSON");
        // A signature by another key.
        let forged = fake_device::sign_json(
            &fake_device::new_ed25519(),
            &govtrust_api::enrollment::signing_payload(&aud, &nonce, &p, &dev.device_id),
        );
        let answer = sh
            .post(enrollment, &body(&high, &dev.ed25519(), &forged))
            .await;
        assert_errcode(&answer, "GT_PROOF_FAILED");
        // Another key claimed than the one bound at challenge time.
        let answer = sh
            .post(
                enrollment,
                &body(
                    &high,
                    &fake_device::public_b64(&fake_device::new_ed25519()),
                    &signature,
                ),
            )
            .await;
        assert_errcode(&answer, "GT_KEY_MISMATCH");
        // The valid answer, with an assertion at `high`: issued at `high`.
        let (status, issued) = sh
            .post(enrollment, &body(&high, &dev.ed25519(), &signature))
            .await;
        assert_eq!(status, StatusCode::OK, "{issued}");
        assert!(issued.get("state_key").is_none() && issued["event_id"].is_null());
        let chain: Vec<String> = serde_json::from_value(issued["chain"].clone()).expect("chain");
        let verified = Verifier::new(
            TrustAnchors::from_pem(sh.svc.root_pem.as_bytes()).expect("root"),
            CrlPolicy::ALLOW_MISSING,
        )
        .verify_citizen(
            &CitizenExpected {
                user_id: UserId::parse(&p).expect("user"),
                device_id: DeviceId::parse(&dev.device_id).expect("device"),
                key: Ed25519Key::from_base64(&dev.ed25519()).expect("key"),
                minimum_level: Some(AssuranceLevel::High),
            },
            &chain_der(&chain),
            &govtrust_verifier::CrlSet::new(),
            UnixTime::now(),
        )
        .expect("issued at the enrollment assertion's level");
        assert_eq!(verified.level, AssuranceLevel::High);
        // The challenge is used up.
        let answer = sh
            .post(enrollment, &body(&high, &dev.ed25519(), &signature))
            .await;
        assert_errcode(&answer, "GT_CHALLENGE_USED");

        // The agency endpoints refuse kind citizen.
        let agency = sh
            .svc
            .enrollment_client(&record(AUTH_A, "Jobcenter Berlin Mitte"));
        let mtls = sh.svc.mtls_client(&agency);
        let answer = sh
            .svc
            .post(
                &mtls,
                "/v1/enrollment/challenge",
                &json!({"kind": "citizen", "user_id": agency_user, "device_id": "DESK", "proof": "signature"}),
            )
            .await;
        assert_errcode(&answer, "GT_INVALID_PARAM");
        let answer = sh
            .svc
            .post(
                &mtls,
                "/v1/enrollment",
                &json!({"kind": "citizen", "user_id": agency_user, "device_id": "DESK",
                        "key": dev.ed25519(), "challenge": "c", "signature": "AAAA"}),
            )
            .await;
        assert_errcode(&answer, "GT_INVALID_PARAM");

        // A suspended authority: refused at the challenge, and at the
        // enrollment when suspended in between.
        let (s, _) = sh.pseudonym(REFUSAL_ID, AUTH_SUSPENDED).await;
        sh.set_password(&s).await;
        let sdev = FakeDevice::create(&sh.http, &sh.hs.base_url(), &s, CITIZEN_PW, None)
            .await
            .expect("device");
        let (status, answer) = sh
            .post(
                challenge,
                &sh.challenge_body(&good, AUTH_SUSPENDED, &s, &sdev.device_id),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        sh.suspend(AUTH_SUSPENDED).await;
        let answer_body = json!({
            "assertion": good,
            "authority_id": AUTH_SUSPENDED,
            "user_id": s,
            "device_id": sdev.device_id,
            "key": sdev.ed25519(),
            "challenge": answer["signing_payload"]["challenge"],
            "signature": sdev.sign_payload(&answer),
        });
        let refused = sh.post(enrollment, &answer_body).await;
        assert_errcode(&refused, "GT_AUTHORITY_SUSPENDED");
        let refused = sh
            .post(
                challenge,
                &sh.challenge_body(&good, AUTH_SUSPENDED, &s, &sdev.device_id),
            )
            .await;
        assert_errcode(&refused, "GT_AUTHORITY_SUSPENDED");
        let refused = sh
            .post(
                "/v1/pseudonyms",
                &json!({"assertion": good, "authority_id": AUTH_SUSPENDED}),
            )
            .await;
        assert_errcode(&refused, "GT_AUTHORITY_SUSPENDED");

        sh.assert_no_personal_data(&[REFUSAL_ID, OTHER_ID], &[], &p)
            .await;
    });
}

/// `POST /v1/pseudonyms` refusals on the shared service, then the feature
/// switched off (404 on every citizen route), switched on but unusable
/// (no admin token: 503), and on with a homeserver that refuses the
/// admin token (503) and a server name the issuing CA may not certify.
#[test]
fn pseudonyms_endpoint_error_paths() {
    run(async {
        let sh = shared().await;
        let aud = sh.svc.svc.config.public_base();
        let (other_idp, _) = idp_key();
        let refused = |assertion: String| json!({"assertion": assertion, "authority_id": AUTH_A});
        for assertion in [
            "garbage".to_owned(),
            "e30.AAAA".to_owned(),
            sign_assertion(
                &other_idp,
                OTHER_ID,
                AssuranceLevel::High,
                &aud,
                in_an_hour(),
            ),
            sign_assertion(&sh.idp_pkcs8, OTHER_ID, AssuranceLevel::High, &aud, 1),
            sign_assertion(
                &sh.idp_pkcs8,
                OTHER_ID,
                AssuranceLevel::High,
                "https://elsewhere.example",
                in_an_hour(),
            ),
        ] {
            let answer = sh.post("/v1/pseudonyms", &refused(assertion)).await;
            assert_errcode(&answer, "GT_UNAUTHORIZED");
        }
        let good = sh.assertion(OTHER_ID, AssuranceLevel::Low);
        let answer = sh
            .post(
                "/v1/pseudonyms",
                &json!({"assertion": good, "authority_id": "DE-XX-UNKNOWN"}),
            )
            .await;
        assert_errcode(&answer, "GT_UNKNOWN_AUTHORITY");
        let answer = sh
            .post(
                "/v1/pseudonyms",
                &json!({"assertion": good, "authority_id": AUTH_A, "name": "Erika Mustermann"}),
            )
            .await;
        assert_errcode(&answer, "GT_BAD_JSON");
        let answer = sh.post("/v1/pseudonyms", &json!({"assertion": good})).await;
        assert_errcode(&answer, "GT_BAD_JSON");

        let routes = [
            "/v1/pseudonyms",
            "/v1/pseudonyms/enrollment/challenge",
            "/v1/pseudonyms/enrollment",
        ];
        let probe = json!({"assertion": good, "authority_id": AUTH_A});

        // Switched off (the default): no such endpoints.
        let off = TestService::start(
            &sh.hs.base_url(),
            "@unused:localhost",
            "",
            sh.hs.server_name(),
            |c| {
                c.matrix = None;
            },
        )
        .await;
        for path in routes {
            let answer = off.post(&off.public_client(), path, &probe).await;
            assert_errcode(&answer, "GT_NOT_FOUND");
        }
        off.stop().await;

        // Switched on, but the admin token file is missing: 503 on every
        // citizen route, whatever the request.
        let dir = tempfile::tempdir().expect("temp dir");
        let (_, idp_public) = idp_key();
        let missing = dir.path().join("no-such-token");
        let unusable = TestService::start(
            &sh.hs.base_url(),
            "@unused:localhost",
            "",
            sh.hs.server_name(),
            |c| {
                c.matrix = None;
                enable_pseudonyms(c, &sh.hs, &missing, &idp_public);
            },
        )
        .await;
        for path in routes {
            let answer = unusable.post(&unusable.public_client(), path, &probe).await;
            assert_errcode(&answer, "GT_HOMESERVER_UNAVAILABLE");
        }
        unusable.stop().await;

        // Switched on, the homeserver refuses the admin token, and the
        // pseudonyms live on a server the issuing CA may not certify.
        let bogus = dir.path().join("bogus-token");
        std::fs::write(&bogus, "not-an-admin-token").expect("token file");
        let (misconfigured_idp, misconfigured_public) = idp_key();
        let misconfigured = TestService::start(
            &sh.hs.base_url(),
            "@unused:localhost",
            "",
            sh.hs.server_name(),
            |c| {
                c.matrix = None;
                enable_pseudonyms(c, &sh.hs, &bogus, &misconfigured_public);
                c.pseudonyms.server_name = Some("elsewhere.example".into());
            },
        )
        .await;
        misconfigured
            .add_authority(
                record(AUTH_A, "Jobcenter Berlin Mitte"),
                &[sh.hs.server_name()],
                &["agency.*"],
            )
            .await;
        let assertion = sign_assertion(
            &misconfigured_idp,
            OTHER_ID,
            AssuranceLevel::Substantial,
            &misconfigured.svc.config.public_base(),
            in_an_hour(),
        );
        let answer = misconfigured
            .post(
                &misconfigured.public_client(),
                "/v1/pseudonyms",
                &json!({"assertion": assertion, "authority_id": AUTH_A}),
            )
            .await;
        assert_errcode(&answer, "GT_HOMESERVER_UNAVAILABLE");
        let (key, _) = FileMacKey::load_or_generate(&default_key_file(&misconfigured.svc.config))
            .expect("key");
        let user = derive(&key, &CitizenId::new(OTHER_ID).expect("ID"), AUTH_A)
            .expect("derive")
            .user_id("elsewhere.example")
            .expect("user")
            .to_string();
        let answer = misconfigured
            .post(
                &misconfigured.public_client(),
                "/v1/pseudonyms/enrollment/challenge",
                &json!({"assertion": assertion, "authority_id": AUTH_A, "user_id": user,
                        "device_id": "CITIZENDEV", "proof": "signature"}),
            )
            .await;
        assert_errcode(&answer, "GT_SERVER_NOT_PERMITTED");
        misconfigured.stop().await;
    });
}

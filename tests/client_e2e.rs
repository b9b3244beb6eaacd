//! Client auto-trust, end to end: a real Synapse, the service's bot
//! publishing attestations into the world-readable directory room, CRLs
//! served over HTTPS from the certificates' distribution points, and a
//! citizen's matrix-sdk client running `govtrust_agent`.
//!
//! What it shows, in one scenario (one Synapse, steps in sequence):
//!
//! 1. the agency device with a device attestation becomes verified on the
//!    citizen's client — no SAS, no QR — and the decision stream carries
//!    its authority record;
//! 2. a device the citizen verified by hand, with no attestation (and then
//!    with an attestation from a rogue PKI), is never changed by the agent;
//! 3. a short-lived attestation: trusted, then withdrawn at expiry; its
//!    renewal, read from the directory room's state after the citizen
//!    joined it (pushed by sync), is trusted again;
//! 4. an identity attestation with `sign_identities`: the agent signs the
//!    agency's master key with the citizen's user-signing key and the
//!    agency's cross-signed device is verified;
//! 5. revocation through a new CRL fetched in the background: the device
//!    trusted locally is blocked; the signed identity's device is blocked
//!    locally with a warning (the signature cannot be taken back);
//! 6. a restarted agent (same store) keeps all of it and still leaves the
//!    hand-verified device alone.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/synapse.rs"]
mod synapse;

use harness::{bootstrap_cross_signing, login, spawn_sync, step, wait_for, WAIT};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use govtrust_agent::{AgentConfig, AutoTrustAgent, TrustAction, Verdict};
use govtrust_pki::der::DistinguishedName;
use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use govtrust_pki::{
    AttestationRequest, IssuedCertificate, IssuingCa, RevocationReason, RevokedCertificate, RootCa,
    Validity,
};
use govtrust_service::matrix::{Bot, MatrixConfig};
use govtrust_verifier::event::state_key;
use govtrust_verifier::{AuthorityRecord, DeviceId, Ed25519Key, Subject, TrustAnchors, UserId};
use hyper_util::rt::{TokioExecutor, TokioIo};
use matrix_sdk::encryption::LocalTrust;
use matrix_sdk::ruma::{OwnedDeviceId, OwnedUserId};
use matrix_sdk::Client;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use synapse::Synapse;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::ServiceExt;
use url::Url;

const BOT_PW: &str = "bot-password";
const AGENCY_PW: &str = "agency-password";
const TAX_PW: &str = "tax-password";
const CITIZEN_PW: &str = "citizen-password";
fn berlin() -> AuthorityRecord {
    AuthorityRecord {
        id: "DE-BE-11000000-BA-NK".into(),
        name: "Registration Office Berlin".into(),
        street: Some("Donaustraße 29".into()),
        postal_code: Some("12043".into()),
        locality: Some("Berlin".into()),
        country: Some("DE".into()),
        ..Default::default()
    }
}

fn tax_office() -> AuthorityRecord {
    AuthorityRecord {
        id: "DE-BE-FA-1127".into(),
        name: "Finanzamt Neukölln".into(),
        street: Some("Thiemannstraße 1".into()),
        postal_code: Some("12059".into()),
        locality: Some("Berlin".into()),
        country: Some("DE".into()),
        ..Default::default()
    }
}

/// A test PKI whose distribution points point at the test's HTTPS server.
struct Pki {
    root: RootCa<FileSigner>,
    ica: IssuingCa<FileSigner>,
    tls_chain: Vec<CertificateDer<'static>>,
    tls_key: PrivateKeyDer<'static>,
}

fn make_pki(name: &str, crl_base: &str, server_name: &str) -> Pki {
    let root = RootCa::create(
        &DistinguishedName::ca(&format!("{name} Root"), None).expect("dn"),
        FileSigner::generate(KeyAlgorithm::EcdsaP256).expect("root key"),
        Validity::from_now(Duration::from_secs(86_400 * 365)),
    )
    .expect("root");
    let ica_key = FileSigner::generate(KeyAlgorithm::EcdsaP256).expect("ica key");
    let ica_cert = root
        .issue_issuing_ca(
            &DistinguishedName::ca(&format!("{name} Issuing CA"), None).expect("dn"),
            ica_key.spki_der().to_vec(),
            &[server_name.to_owned()],
            Validity::from_now(Duration::from_secs(86_400 * 100)),
            Some(&format!("{crl_base}/crl/root.crl")),
        )
        .expect("issuing CA");
    let ica = IssuingCa::load(
        ica_cert,
        root.certificate().der().clone(),
        ica_key,
        Some(format!("{crl_base}/crl/issuing.crl")),
    )
    .expect("load issuing CA");
    let tls_key = FileSigner::generate(KeyAlgorithm::EcdsaP256).expect("tls key");
    let tls = ica
        .issue_tls_server(
            "govtrust CRL test server",
            &["localhost"],
            &[[127, 0, 0, 1].into()],
            tls_key.spki_der().to_vec(),
            Validity::from_now(Duration::from_secs(86_400)),
        )
        .expect("tls cert");
    let pem = tls_key.to_pem(None).expect("key pem");
    Pki {
        root,
        ica,
        tls_chain: tls.chain,
        tls_key: PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("key"),
    }
}

impl Pki {
    fn attest(
        &self,
        user: &str,
        subject: Subject,
        key: &str,
        authority: AuthorityRecord,
        lifetime: Duration,
    ) -> (
        String,
        IssuedCertificate,
        govtrust_verifier::event::AttestationContent,
    ) {
        let request = AttestationRequest {
            user_id: UserId::parse(user).expect("user"),
            subject,
            key: Ed25519Key::from_base64(key).expect("key"),
            authority,
        };
        let issued = self
            .ica
            .issue_attestation(&request, Validity::from_now(lifetime))
            .expect("issue");
        let content = issued.attestation_content(&request);
        (
            state_key(&request.user_id, &request.subject),
            issued,
            content,
        )
    }

    /// Root CRL and issuing CA CRL, the latter revoking `serials`.
    fn crls(&self, number: u64, serials: &[Vec<u8>]) -> HashMap<String, Vec<u8>> {
        let now = OffsetDateTime::now_utc();
        let revoked: Vec<RevokedCertificate> = serials
            .iter()
            .map(|serial| RevokedCertificate {
                serial: serial.clone(),
                revoked_at: now,
                reason: RevocationReason::KeyCompromise,
            })
            .collect();
        let day = Duration::from_secs(86_400);
        HashMap::from([
            (
                "root.crl".to_owned(),
                self.root.crl(&[], number, now, day).expect("root crl"),
            ),
            (
                "issuing.crl".to_owned(),
                self.ica.crl(&revoked, number, now, day).expect("crl"),
            ),
        ])
    }
}

type Crls = Arc<RwLock<HashMap<String, Vec<u8>>>>;

/// A tiny HTTPS server for `/crl/<name>`, with a fetch counter.
fn serve_crls(
    listener: TcpListener,
    pki: &Pki,
    crls: Crls,
    fetches: Arc<AtomicUsize>,
) -> JoinHandle<()> {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("tls versions")
    .with_no_client_auth()
    .with_single_cert(pki.tls_chain.clone(), pki.tls_key.clone_key())
    .expect("tls config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let app = axum::Router::new().route(
        "/crl/{name}",
        axum::routing::get(
            move |axum::extract::Path(name): axum::extract::Path<String>| {
                let crls = crls.clone();
                let fetches = fetches.clone();
                async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    match crls.read().ok().and_then(|m| m.get(&name).cloned()) {
                        Some(der) => (
                            axum::http::StatusCode::OK,
                            [("content-type", "application/pkix-crl")],
                            der,
                        ),
                        None => (
                            axum::http::StatusCode::NOT_FOUND,
                            [("content-type", "text/plain")],
                            b"no such CRL".to_vec(),
                        ),
                    }
                }
            },
        ),
    );
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        app.clone().oneshot(request)
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    })
}

fn device_of(client: &Client) -> OwnedDeviceId {
    client.device_id().expect("device").to_owned()
}

async fn ed25519(client: &Client) -> String {
    client.encryption().ed25519_key().await.expect("device key")
}

/// The agency invites the citizen into an encrypted DM and the citizen
/// joins, so the citizen's client tracks the agency's devices.
async fn share_encrypted_room(agency: &Client, citizen: &Client) {
    let room = agency
        .create_dm(citizen.user_id().expect("citizen"))
        .await
        .expect("create DM");
    citizen
        .join_room_by_id(room.room_id())
        .await
        .expect("citizen joins");
}

async fn local_trust(citizen: &Client, user: &str, device: &str) -> (LocalTrust, bool) {
    let user = OwnedUserId::try_from(user).expect("user");
    let device = citizen
        .encryption()
        .get_device(&user, device.into())
        .await
        .expect("store")
        .expect("device known");
    (device.local_trust_state(), device.is_verified())
}

fn root_pem(pki: &Pki) -> String {
    govtrust_service::pemfile::cert_pem(pki.root.certificate().der())
}

/// Runs the example citizen app for a new citizen and waits until it
/// prints the badge of `device` of `agency`.
async fn run_example(
    hs: &Synapse,
    example: &str,
    dir: &Path,
    root_pem: &str,
    bot: &str,
    agency: &str,
    device: &str,
) {
    use tokio::io::AsyncBufReadExt;
    let citizen = hs
        .register("citizen2", CITIZEN_PW, false)
        .await
        .expect("citizen2");
    let root = dir.join("root.pem");
    std::fs::write(&root, root_pem).expect("root pem");
    let mut child = tokio::process::Command::new(example)
        .args(["--homeserver", &hs.base_url(), "--user", &citizen])
        .args(["--root", &root.display().to_string()])
        .args(["--store", &dir.join("citizen2").display().to_string()])
        .args(["--publisher", bot, "--check", agency])
        .env("GOVTRUST_CITIZEN_PASSWORD", CITIZEN_PW)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the example");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let found = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("           example: {line}");
            if line.starts_with('✔')
                && line.contains(device)
                && line.contains("Registration Office Berlin, Donaustraße 29, 12043 Berlin")
            {
                return true;
            }
        }
        false
    })
    .await;
    let _ = child.kill().await;
    assert_eq!(found, Ok(true), "the example did not print the badge");
}

fn agent_config(root: &CertificateDer<'static>, store: &Path, bot: &str) -> AgentConfig {
    let mut config = AgentConfig::new(
        TrustAnchors::from_der([root.clone()]).expect("anchors"),
        store,
    );
    config.publishers = vec![OwnedUserId::try_from(bot).expect("bot")];
    config.sign_identities = true;
    // Fast enough for a test; production defaults are minutes and an hour.
    config.refresh_interval = Duration::from_secs(2);
    config.crl_refresh_interval = Duration::from_secs(2);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn citizen_client_trusts_attested_agency_devices() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let t0 = Instant::now();
    let hs = Synapse::new().await.expect("start Synapse");
    step(t0, "synapse up");
    let bot_id = hs.register("govtrust", BOT_PW, false).await.expect("bot");
    let agency_id = hs
        .register("meldeamt", AGENCY_PW, false)
        .await
        .expect("agency");
    let tax_id = hs.register("finanzamt", TAX_PW, false).await.expect("tax");
    let citizen_id = hs
        .register("citizen", CITIZEN_PW, false)
        .await
        .expect("citizen");

    // The PKI, its CRLs on HTTPS at the distribution points it names.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let crl_base = format!("https://127.0.0.1:{}", addr.port());
    let pki = make_pki("govtrust e2e", &crl_base, hs.server_name());
    let crls: Crls = Arc::new(RwLock::new(pki.crls(1, &[])));
    let fetches = Arc::new(AtomicUsize::new(0));
    let crl_server = serve_crls(listener, &pki, crls.clone(), fetches.clone());
    step(t0, &format!("PKI ready, CRLs at {crl_base}"));

    // The service's bot and its world-readable directory room.
    let tmp = tempfile::tempdir().expect("tmp");
    let bot = Bot::connect(MatrixConfig::new(
        Url::parse(&hs.base_url()).expect("url"),
        bot_id.clone(),
        BOT_PW,
        tmp.path().join("bot"),
    ))
    .await
    .expect("bot");
    bot.ensure_directory_room().await.expect("directory room");
    step(t0, "bot and directory room");

    // Agency devices: A attested, B verified by hand only, C short-lived.
    let agency_a = login(&hs.base_url(), &agency_id, AGENCY_PW, &tmp.path().join("a")).await;
    let agency_b = login(&hs.base_url(), &agency_id, AGENCY_PW, &tmp.path().join("b")).await;
    let agency_c = login(&hs.base_url(), &agency_id, AGENCY_PW, &tmp.path().join("c")).await;
    let (dev_a, dev_b, dev_c) = (
        device_of(&agency_a),
        device_of(&agency_b),
        device_of(&agency_c),
    );
    let device = |d: &OwnedDeviceId| Subject::Device(DeviceId::parse(d.as_str()).expect("id"));
    let (key_a, attest_a, content_a) = pki.attest(
        &agency_id,
        device(&dev_a),
        &ed25519(&agency_a).await,
        berlin(),
        Duration::from_secs(30 * 86_400),
    );
    bot.publish(&key_a, &content_a).await.expect("publish A");
    step(
        t0,
        &format!("agency devices {dev_a} (attested), {dev_b}, {dev_c}"),
    );

    // The citizen shares an encrypted room with the agency and verifies
    // device B by hand.
    let citizen = login(
        &hs.base_url(),
        &citizen_id,
        CITIZEN_PW,
        &tmp.path().join("citizen"),
    )
    .await;
    let citizen_sync = spawn_sync(citizen.clone(), Duration::from_secs(2), None);
    share_encrypted_room(&agency_a, &citizen).await;
    let deadline = Instant::now() + WAIT;
    let agency_user = OwnedUserId::try_from(agency_id.as_str()).expect("id");
    let hand_verified = loop {
        let known = citizen
            .encryption()
            .get_device(&agency_user, &dev_b)
            .await
            .expect("store");
        if let Some(d) = known {
            break d;
        }
        assert!(Instant::now() < deadline, "citizen never learnt device B");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    hand_verified
        .set_local_trust(LocalTrust::Verified)
        .await
        .expect("verify B by hand");
    step(t0, "citizen joined; device B verified by hand");

    // Device C: an attestation that expires within seconds.
    let (key_c, _, content_c) = pki.attest(
        &agency_id,
        device(&dev_c),
        &ed25519(&agency_c).await,
        berlin(),
        Duration::from_secs(8),
    );
    bot.publish(&key_c, &content_c).await.expect("publish C");

    // --- The agent: a few lines in the citizen's app. ---
    let agent_store = tmp.path().join("citizen-agent.json");
    let root_der = pki.root.certificate().der().clone();
    let agent = AutoTrustAgent::start(
        citizen.clone(),
        agent_config(&root_der, &agent_store, &bot_id),
    )
    .await
    .expect("start agent");
    step(t0, "agent started");

    // 1. Device A is verified automatically, with its authority record.
    let decision = wait_for(
        t0,
        &agent,
        &agency_id,
        Some(dev_a.as_str()),
        "A trusted",
        |d| d.is_trusted(),
    )
    .await;
    assert_eq!(decision.action, TrustAction::Trusted);
    assert_eq!(decision.authority(), Some(&berlin()));
    assert_eq!(
        decision.badge().as_deref(),
        Some("Registration Office Berlin, Donaustraße 29, 12043 Berlin — verified by the government PKI")
    );
    match &decision.verdict {
        Verdict::Verified(att) => assert_eq!(att.serial, attest_a.serial_hex()),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        local_trust(&citizen, &agency_id, dev_a.as_str()).await,
        (LocalTrust::Verified, true),
        "device A is not verified in the citizen's crypto store"
    );
    assert!(fetches.load(Ordering::SeqCst) >= 2, "CRLs were not fetched");

    // 1b. The example app (verifier/examples/citizen.rs), if built and
    //     named by GOVTRUST_CITIZEN_EXAMPLE: a second citizen, sharing no
    //     room with the agency, asks for it with --check and prints A's
    //     badge.
    if let Ok(example) = std::env::var("GOVTRUST_CITIZEN_EXAMPLE") {
        run_example(
            &hs,
            &example,
            tmp.path(),
            &root_pem(&pki),
            &bot_id,
            &agency_id,
            dev_a.as_str(),
        )
        .await;
        step(t0, "example app printed A's badge");
    }

    // 2. Device B: verified by hand, no attestation — left alone.
    assert_eq!(
        local_trust(&citizen, &agency_id, dev_b.as_str()).await,
        (LocalTrust::Verified, true)
    );
    // A rogue PKI's attestation for B is rejected, and B is still untouched.
    let rogue = make_pki("rogue", &crl_base, hs.server_name());
    let (key_b, _, content_b) = rogue.attest(
        &agency_id,
        device(&dev_b),
        &ed25519(&agency_b).await,
        berlin(),
        Duration::from_secs(86_400),
    );
    bot.publish(&key_b, &content_b)
        .await
        .expect("publish rogue B");
    let rogue_decision = wait_for(
        t0,
        &agent,
        &agency_id,
        Some(dev_b.as_str()),
        "rogue B rejected",
        |d| d.verdict.code() == Some("unknown_issuer"),
    )
    .await;
    assert_eq!(
        rogue_decision.action,
        TrustAction::LeftAlone {
            local_trust: LocalTrust::Verified
        }
    );

    // 3. Device C was trusted and is withdrawn at expiry.
    let expired = wait_for(
        t0,
        &agent,
        &agency_id,
        Some(dev_c.as_str()),
        "C withdrawn at expiry",
        |d| d.action == TrustAction::Withdrawn,
    )
    .await;
    assert_eq!(expired.verdict.code(), Some("expired"));
    assert_eq!(
        local_trust(&citizen, &agency_id, dev_c.as_str()).await,
        (LocalTrust::Unset, false)
    );

    // 3b. The citizen joins the directory room: attestations now come from
    //     the local state store, pushed by sync. C's renewal is trusted.
    let directory = bot.ensure_directory_room().await.expect("directory");
    citizen
        .join_room_by_id(&directory)
        .await
        .expect("citizen joins the directory");
    let (_, _, renewed_c) = pki.attest(
        &agency_id,
        device(&dev_c),
        &ed25519(&agency_c).await,
        berlin(),
        Duration::from_secs(30 * 86_400),
    );
    bot.publish(&key_c, &renewed_c).await.expect("renew C");
    wait_for(
        t0,
        &agent,
        &agency_id,
        Some(dev_c.as_str()),
        "C renewed, trusted again",
        |d| d.is_trusted(),
    )
    .await;
    assert_eq!(
        local_trust(&citizen, &agency_id, dev_c.as_str()).await,
        (LocalTrust::Verified, true)
    );

    // 4. Identity attestation: the tax office has cross-signing; the
    //    citizen too, so the agent signs the tax office's master key.
    bootstrap_cross_signing(&citizen, &citizen_id, CITIZEN_PW).await;
    let tax = login(&hs.base_url(), &tax_id, TAX_PW, &tmp.path().join("tax")).await;
    bootstrap_cross_signing(&tax, &tax_id, TAX_PW).await;
    let tax_device = device_of(&tax);
    let master = tax
        .encryption()
        .get_user_identity(tax.user_id().expect("user"))
        .await
        .expect("store")
        .expect("own identity")
        .master_key()
        .get_first_key()
        .expect("master key")
        .to_base64();
    let (key_tax, attest_tax, content_tax) = pki.attest(
        &tax_id,
        Subject::Identity,
        &master,
        tax_office(),
        Duration::from_secs(30 * 86_400),
    );
    bot.publish(&key_tax, &content_tax)
        .await
        .expect("publish identity");
    share_encrypted_room(&tax, &citizen).await;
    step(
        t0,
        "tax office: cross-signing, identity attested, room shared",
    );
    let signed = wait_for(t0, &agent, &tax_id, None, "tax identity signed", |d| {
        d.action == TrustAction::SignedIdentity
    })
    .await;
    assert_eq!(signed.authority(), Some(&tax_office()));
    let tax_user = OwnedUserId::try_from(tax_id.as_str()).expect("id");
    let deadline = Instant::now() + WAIT;
    loop {
        let identity = citizen
            .encryption()
            .request_user_identity(&tax_user)
            .await
            .expect("query")
            .expect("tax identity");
        if identity.is_verified() {
            break;
        }
        assert!(Instant::now() < deadline, "tax identity never verified");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let via = wait_for(
        t0,
        &agent,
        &tax_id,
        Some(tax_device.as_str()),
        "tax device trusted",
        |d| d.is_trusted(),
    )
    .await;
    assert_eq!(via.authority(), Some(&tax_office()));
    assert!(local_trust(&citizen, &tax_id, tax_device.as_str()).await.1);

    // 5. Revocation by CRL (fetched in the background): A and the tax
    //    identity revoked.
    *crls.write().expect("lock") =
        pki.crls(2, &[attest_a.serial.clone(), attest_tax.serial.clone()]);
    step(t0, "new CRL revokes A and the tax identity");
    let revoked = wait_for(
        t0,
        &agent,
        &agency_id,
        Some(dev_a.as_str()),
        "A blocked",
        |d| d.action == TrustAction::Blocked,
    )
    .await;
    assert_eq!(revoked.verdict.code(), Some("revoked"));
    assert_eq!(
        local_trust(&citizen, &agency_id, dev_a.as_str()).await,
        (LocalTrust::BlackListed, false)
    );
    let identity_blocked = wait_for(t0, &agent, &tax_id, None, "tax identity blocked", |d| {
        d.action == TrustAction::Blocked
    })
    .await;
    assert_eq!(identity_blocked.verdict.code(), Some("revoked"));
    assert!(identity_blocked.warning.is_some());
    wait_for(
        t0,
        &agent,
        &tax_id,
        Some(tax_device.as_str()),
        "tax device blocked",
        |d| d.action == TrustAction::Blocked && d.warning.is_some(),
    )
    .await;
    assert_eq!(
        local_trust(&citizen, &tax_id, tax_device.as_str()).await.0,
        LocalTrust::BlackListed
    );
    // Device B was never touched.
    assert_eq!(
        local_trust(&citizen, &agency_id, dev_b.as_str()).await,
        (LocalTrust::Verified, true)
    );

    // 6. Restart with the same store: nothing is undone or re-done.
    drop(agent);
    let agent = AutoTrustAgent::start(
        citizen.clone(),
        agent_config(&root_der, &agent_store, &bot_id),
    )
    .await
    .expect("restart agent");
    wait_for(
        t0,
        &agent,
        &agency_id,
        Some(dev_a.as_str()),
        "A still blocked after restart",
        |d| d.action == TrustAction::Blocked,
    )
    .await;
    let b = wait_for(
        t0,
        &agent,
        &agency_id,
        Some(dev_b.as_str()),
        "B still left alone",
        |d| matches!(d.action, TrustAction::LeftAlone { .. }),
    )
    .await;
    assert_eq!(b.verdict.code(), Some("unknown_issuer"));
    assert_eq!(
        local_trust(&citizen, &agency_id, dev_a.as_str()).await.0,
        LocalTrust::BlackListed
    );
    assert_eq!(
        local_trust(&citizen, &agency_id, dev_b.as_str()).await,
        (LocalTrust::Verified, true)
    );
    assert_eq!(
        local_trust(&citizen, &agency_id, dev_c.as_str()).await,
        (LocalTrust::Verified, true)
    );
    step(
        t0,
        &format!("done ({} CRL fetches)", fetches.load(Ordering::SeqCst)),
    );

    drop(agent);
    citizen_sync.abort();
    crl_server.abort();
    bot.shutdown();
}

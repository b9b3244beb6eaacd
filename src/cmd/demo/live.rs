//! `govtrust demo`: the whole story with real parts, narrated, in about a
//! minute — a local Synapse, the service on its embedded defaults, an
//! agency enrolling a real matrix-sdk device over mTLS, a citizen's
//! matrix-sdk client whose auto-trust agent marks that device verified and
//! shows the authority record, a sealed decision from the agency that the
//! citizen's agent verifies ("sealed by …"), and the trust withdrawn after
//! the operator revokes the certificate.
//!
//! Every step goes through the interfaces a real deployment uses: the
//! service's HTTPS API (operator bearer token, agency mTLS), the Matrix
//! client-server API, the directory room, the CRL distribution point. Only
//! the agent's refresh intervals are shortened so the revocation shows
//! within seconds rather than within the hour of the production default.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use govtrust_agent::{AgentConfig, AutoTrustAgent, SealedInbox, TrustDecision};
use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use govtrust_service::agency::sealed::{
    enroll_sealing_device, generate_sealing_key, register_sealing_device, send_sealed, SchemaStore,
    SealingKey,
};
use govtrust_verifier::sealed::Document;
use govtrust_verifier::TrustAnchors;
use matrix_sdk::config::SyncSettings;
use matrix_sdk::ruma::{OwnedDeviceId, OwnedUserId, RoomId};
use matrix_sdk::Client;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::step;
use crate::cli::DemoArgs;
use govtrust_service::agency::{enroll_device, ServiceClient};
use govtrust_service::config::{Config, MatrixConfig};
use govtrust_service::synapse::{HomeserverApi, Synapse, SynapseOptions};

/// How long any one awaited event (a decision, a sync) may take.
const WAIT: Duration = Duration::from_secs(60);
/// The agent's refresh intervals in the demo (production: 10 min and 1 h).
const DEMO_REFRESH: Duration = Duration::from_secs(2);
/// Localparts of the demo's accounts.
const BOT: &str = "govtrust";
const AGENCY: &str = "registration.office";
const CITIZEN: &str = "citizen";

/// Runs the demo on its own runtime.
pub fn live(args: &DemoArgs) -> Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // The narration says what happens; logs only for what goes wrong
        // in govtrust itself (matrix-sdk logs transient sync errors loudly).
        tracing_subscriber::EnvFilter::new(
            "error,matrix_sdk=off,matrix_sdk_base=off,matrix_sdk_crypto=off",
        )
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))?;
    Ok(ExitCode::SUCCESS)
}

/// Prints a timed line under the current step.
struct Clock(Instant);

impl Clock {
    fn say(&self, text: impl std::fmt::Display) {
        println!("   [{:>5.1}s] {text}", self.0.elapsed().as_secs_f64());
    }
}

async fn run(args: &DemoArgs) -> Result<()> {
    let clock = Clock(Instant::now());
    let temp;
    let base: PathBuf = match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("govtrust-demo-")
                .tempdir()?;
            temp.path().to_path_buf()
        }
    };
    println!("govtrust demo — an agency's Matrix device becomes trusted by a citizen's client");
    println!(
        "through the government PKI, with no manual verification. Working in {}",
        base.display()
    );

    step(1, "A homeserver: Synapse from PyPI, on loopback");
    let venv = govtrust_service::synapse::default_venv();
    if args.synapse_python.is_none() {
        clock.say(format!(
            "Synapse's virtualenv: {} (the first run installs it, about half a minute)",
            venv.display()
        ));
    }
    let synapse = Synapse::start_with(SynapseOptions {
        dir: Some(base.join("synapse")),
        python: args.synapse_python.clone(),
        venv: Some(venv),
        quiet: true,
    })
    .await
    .context("starting the local Synapse")?;
    let hs = synapse.api();
    let bot_password = random_password()?;
    let agency_password = random_password()?;
    let citizen_password = random_password()?;
    let bot_user = hs.register(BOT, &bot_password, false).await?;
    let agency_user = hs.register(AGENCY, &agency_password, false).await?;
    let citizen_user = hs.register(CITIZEN, &citizen_password, false).await?;
    clock.say(format!(
        "Synapse answers at {}; accounts {bot_user} (the service's bot), {agency_user} (the agency), {citizen_user} (a citizen)",
        hs.base_url()
    ));

    step(2, "The govtrust service on its embedded defaults");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let service_url = format!("https://{addr}");
    let mut config = Config {
        listen: addr,
        data_dir: base.join("service"),
        public_url: Some(service_url.clone()),
        matrix: Some(MatrixConfig {
            homeserver_url: hs.url().clone(),
            user_id: bot_user.clone(),
            password: Some(bot_password),
            directory_alias: "govtrust-directory".into(),
        }),
        ..Config::default()
    };
    config.ca.dev_servers = vec![synapse.server_name().to_owned()];
    config.validate()?;
    let svc = govtrust_service::build(config).await?;
    govtrust_service::ensure_operator_token(&svc).await?;
    let operator_token = std::fs::read_to_string(svc.config.data_dir.join("operator-token"))?
        .trim()
        .to_owned();
    let root_pem = govtrust_service::pemfile::cert_pem(svc.pki.root());
    let directory = svc
        .publisher
        .get()
        .map(|bot| bot.directory_alias().to_string())
        .unwrap_or_default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(govtrust_service::serve_on(svc.clone(), listener, async {
        let _ = stopped.await;
    }));
    clock.say(format!(
        "HTTPS API at {service_url}: SQLite, file keys, a development root and issuing CA that may certify only @…:{}",
        synapse.server_name()
    ));
    clock.say(format!(
        "the bot publishes attestations into the world-readable room {directory}, where only it may send them"
    ));
    let operator = Operator::new(&service_url, &root_pem, operator_token)?;

    step(
        3,
        "The operator registers the agency and issues its enrollment-client certificate",
    );
    let record = super::berlin();
    operator
        .post(
            "/v1/authorities",
            &json!({
                "record": record,
                "servers": [synapse.server_name()],
                "user_patterns": ["registration.*"],
                "contact": "it@registration-office.example",
            }),
        )
        .await?;
    clock.say(format!(
        "POST /v1/authorities: {} [{}] may enroll users @registration.*:{}",
        record.name,
        record.id,
        synapse.server_name()
    ));
    let agency_key = FileSigner::generate(KeyAlgorithm::EcdsaP256)?;
    let client_cert = operator
        .post(
            &format!("/v1/authorities/{}/enrollment-clients", record.id),
            &json!({
                "public_key_pem": govtrust_service::pemfile::encode("PUBLIC KEY", agency_key.spki_der()),
                "lifetime_days": 30,
            }),
        )
        .await?;
    let chain_pem = client_cert["chain_pem"]
        .as_str()
        .context("no chain_pem in the answer")?;
    clock.say(format!(
        "POST /v1/authorities/{}/enrollment-clients: serial {} (EKU enrollment client), key made by the agency",
        record.id,
        client_cert["serial"].as_str().unwrap_or("?")
    ));
    let agency_service = ServiceClient::new(
        format!("{service_url}/").parse()?,
        root_pem.as_bytes(),
        govtrust_service::pemfile::client_identity(chain_pem, &agency_key)?.as_bytes(),
    )?;

    step(
        4,
        "The agency enrolls its Matrix device: challenge over mTLS, proof to the device, certificate",
    );
    let agency = login(hs, &agency_user, &agency_password, &base.join("agency")).await?;
    let agency_sync = spawn_sync(agency.clone());
    let agency_device = agency.device_id().context("no device")?.to_owned();
    clock.say(format!(
        "{agency_user} logged in with matrix-sdk: device {agency_device}, Ed25519 key {}",
        agency.encryption().ed25519_key().await.unwrap_or_default()
    ));
    let enrolled = enroll_device(
        &agency,
        &agency_service,
        OwnedUserId::try_from(bot_user.as_str())?,
    )
    .await
    .context("enrollment")?;
    clock.say(format!(
        "the service checked the key against /keys/query, the device answered the to-device challenge: certificate {} valid until {}",
        enrolled.serial, enrolled.not_after
    ));
    clock.say(format!(
        "state event {} in {directory}: {}",
        enrolled.state_key,
        enrolled
            .event_id
            .as_deref()
            .unwrap_or("(queued in the outbox)")
    ));

    step(
        5,
        "A citizen's client with the govtrust agent, the government root pinned",
    );
    let citizen = login(hs, &citizen_user, &citizen_password, &base.join("citizen")).await?;
    let citizen_sync = spawn_sync(citizen.clone());
    let room = agency
        .create_dm(citizen.user_id().context("not logged in")?)
        .await?;
    wait_until(|| async { citizen.get_room(room.room_id()).is_some() }).await?;
    citizen.join_room_by_id(room.room_id()).await?;
    clock.say(format!(
        "{citizen_user} shares an encrypted room with {agency_user}; nobody compared emoji or scanned a QR code"
    ));
    let mut config = AgentConfig::new(
        TrustAnchors::from_pem(root_pem.as_bytes())?,
        base.join("citizen-agent.json"),
    );
    config.publishers = vec![OwnedUserId::try_from(bot_user.as_str())?];
    config.refresh_interval = DEMO_REFRESH;
    config.crl_refresh_interval = DEMO_REFRESH;
    config.sealed_documents = true;
    let agent = AutoTrustAgent::start(citizen.clone(), config).await?;
    let agency_id = OwnedUserId::try_from(agency_user.as_str())?;
    agent.check_user(&agency_id).await?;
    let trusted = wait_for(&agent, &agency_id, &agency_device, |d| d.is_trusted()).await?;
    clock.say(format!("agent: {trusted}"));
    let verified = is_verified(&citizen, &agency_id, &agency_device).await?;
    clock.say(format!(
        "citizen's crypto store: device {agency_device} is_verified() = {verified}"
    ));
    if !verified {
        bail!("the agent said trusted but the crypto store does not show the device verified");
    }
    println!(
        "\n   The app shows next to {agency_user}:\n     ✔ {}\n",
        trusted.badge().unwrap_or_default()
    );

    step(
        6,
        "The agency seals a decision; the citizen's client verifies the seal",
    );
    sealed_decision(
        &SealingSetup {
            base: &base,
            hs,
            agency: &agency,
            agency_user: &agency_user,
            agency_password: &agency_password,
            service: &agency_service,
            inbox: agent
                .sealed_inbox()
                .context("the agent runs no sealed-document inbox")?,
            room: room.room_id(),
        },
        &clock,
    )
    .await?;

    step(
        7,
        "The operator revokes the certificate; the client withdraws the trust",
    );
    operator
        .post(
            &format!("/v1/certificates/{}/revoke", enrolled.serial),
            &json!({ "reason": "key_compromise" }),
        )
        .await?;
    clock.say(format!(
        "POST /v1/certificates/{}/revoke: the CRL at {service_url}/v1/crl/ lists it, the state event says revoked",
        enrolled.serial
    ));
    let withdrawn = wait_for(&agent, &agency_id, &agency_device, |d| {
        !d.is_trusted() && d.verdict.code().is_some()
    })
    .await?;
    clock.say(format!("agent: {withdrawn}"));
    let verified = is_verified(&citizen, &agency_id, &agency_device).await?;
    clock.say(format!(
        "citizen's crypto store: device {agency_device} is_verified() = {verified}"
    ));
    if verified {
        bail!("the device is still verified after revocation");
    }

    agency_sync.abort();
    citizen_sync.abort();
    drop(agent);
    let _ = stop.send(());
    let _ = server.await;
    println!(
        "\nDone in {:.0} s. What happened: the PKI certified the agency's device key, bound to its",
        clock.0.elapsed().as_secs_f64()
    );
    println!(
        "authority record; the citizen's client checked the chain against the pinned root, its own"
    );
    println!("copy of the device key and a fresh CRL — and trusted it, then stopped trusting it.");
    println!(
        "A decision sealed by the agency's attested sealing key verified from the event, the root and the CRLs."
    );
    match &args.keep {
        Some(dir) => println!(
            "Files kept in {}: service/ (database, CA, operator token), synapse/, agency/ and citizen/ stores.",
            dir.display()
        ),
        None => println!(
            "Next: README.md (serve, agency enroll, verify), docs/client.md (the agent in your app)."
        ),
    }
    Ok(())
}

/// What the sealed-decision step needs from the demo so far.
struct SealingSetup<'a> {
    base: &'a Path,
    hs: &'a HomeserverApi,
    agency: &'a Client,
    agency_user: &'a str,
    agency_password: &'a str,
    service: &'a ServiceClient,
    inbox: &'a SealedInbox,
    room: &'a RoomId,
}

/// The agency registers and enrolls its sealing key as a device of its
/// account (docs/profile.md §16.3), validates a FIM decision against its
/// schema, seals it and sends it into the encrypted room; the citizen's
/// agent (`AgentConfig::sealed_documents`) verifies it.
async fn sealed_decision(setup: &SealingSetup<'_>, clock: &Clock) -> Result<()> {
    let pkcs8 = generate_sealing_key()?;
    let device = register_sealing_device(
        &reqwest::Client::new(),
        setup.hs.url(),
        setup.agency_user,
        setup.agency_password,
        &pkcs8,
    )
    .await?;
    let enrolled = enroll_sealing_device(setup.service, setup.agency_user, &device, &pkcs8).await?;
    let key = SealingKey::new(&pkcs8, enrolled.chain_pem.as_bytes(), setup.agency_user)?;
    clock.say(format!(
        "sealing key registered as device {device} of {} and attested: certificate {}",
        setup.agency_user, enrolled.serial
    ));

    let schemas = setup.base.join("schemas");
    std::fs::create_dir_all(&schemas)?;
    std::fs::write(
        schemas.join("decision-1.0.json"),
        serde_json::to_vec_pretty(&json!({
            "$id": DECISION_SCHEMA,
            "type": "object",
            "required": ["$schema", "decision", "subject"],
            "properties": {
                "decision": {"enum": ["approved", "rejected"]},
                "subject": {"type": "string"},
                "fee_cents": {"type": "integer", "minimum": 0},
            },
        }))?,
    )?;
    let document = json!({
        "$schema": DECISION_SCHEMA,
        "decision": "approved",
        "subject": "Wohnsitzanmeldung",
        "fee_cents": 1250,
    });
    SchemaStore::load_dir(&schemas)?.check(&document)?;
    clock.say(format!(
        "the decision conforms to {DECISION_SCHEMA} (schema from {})",
        schemas.display()
    ));

    let issued_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let content = key.seal(
        setup.room.as_str(),
        Document::Json { json: document },
        "AZ 42-2026/0815",
        issued_at,
    )?;
    let event_id = send_sealed(setup.agency, setup.room, &content).await?;
    clock.say(format!(
        "{} sent {event_id} (io.govtrust.sealed, Megolm-encrypted), document SHA-256 {}…",
        setup.agency_user,
        &content.document_sha256[..16]
    ));
    let decision = setup
        .inbox
        .wait_for(event_id.as_str(), WAIT)
        .await
        .context("the citizen's agent saw no sealed decision")?;
    if let Err(e) = &decision.verdict {
        bail!("the sealed decision was refused: {e} ({})", e.code());
    }
    clock.say(format!(
        "citizen's agent: {} — verified{}",
        decision.describe(),
        if decision.encrypted {
            " (arrived end-to-end encrypted)"
        } else {
            ""
        }
    ));
    Ok(())
}

/// `$id` of the demo's decision schema.
const DECISION_SCHEMA: &str = "https://schema.fim.example/decision/1.0.json";

/// The operator's HTTPS client: the service's root pinned, bearer token.
struct Operator {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Operator {
    fn new(base: &str, root_pem: &str, token: String) -> Result<Operator> {
        Ok(Operator {
            base: base.to_owned(),
            token,
            http: reqwest::Client::builder()
                .use_rustls_tls()
                .add_root_certificate(reqwest::Certificate::from_pem(root_pem.as_bytes())?)
                .timeout(WAIT)
                .build()?,
        })
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path}: {status} {body}");
        }
        Ok(body)
    }
}

fn random_password() -> Result<String> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| anyhow::anyhow!("system randomness unavailable"))?;
    Ok(govtrust_pki::hex(&bytes))
}

/// A logged-in matrix-sdk client with a persistent store; its first sync
/// uploads real device keys.
async fn login(hs: &HomeserverApi, user: &str, password: &str, store: &Path) -> Result<Client> {
    let client = Client::builder()
        .homeserver_url(hs.base_url())
        .sqlite_store(store, None)
        .build()
        .await?;
    client
        .matrix_auth()
        .login_username(user, password)
        .initial_device_display_name("govtrust demo")
        .send()
        .await?;
    client
        .sync_once(SyncSettings::default().timeout(Duration::ZERO))
        .await?;
    Ok(client)
}

/// The app's sync loop (the agent rides on it).
fn spawn_sync(client: Client) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let settings = SyncSettings::default().timeout(Duration::from_secs(2));
            if client.sync_once(settings).await.is_err() {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    })
}

/// Polls `ready` until it holds, for at most [`WAIT`].
async fn wait_until<F, Fut>(ready: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !ready().await {
        if Instant::now() > deadline {
            bail!("timed out after {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The first decision about `(user, device)` satisfying `want`, within
/// [`WAIT`].
async fn wait_for(
    agent: &AutoTrustAgent,
    user: &OwnedUserId,
    device: &OwnedDeviceId,
    want: impl Fn(&TrustDecision) -> bool,
) -> Result<TrustDecision> {
    match agent
        .wait_for_decision(user, Some(device), WAIT, want)
        .await
    {
        Some(d) => Ok(d),
        None => bail!(
            "no such decision within {WAIT:?}; the latest: {}",
            agent
                .decision_for(user, Some(device))
                .map_or_else(|| "none".to_owned(), |d| d.to_string())
        ),
    }
}

/// What the citizen's crypto store says about the device.
async fn is_verified(client: &Client, user: &OwnedUserId, device: &OwnedDeviceId) -> Result<bool> {
    Ok(client
        .encryption()
        .get_device(user, device)
        .await?
        .context("the citizen's client does not know the device")?
        .is_verified())
}

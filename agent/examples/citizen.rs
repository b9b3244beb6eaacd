//! A citizen's Matrix client with the govtrust auto-trust agent: logs in,
//! syncs, and prints the agent's trust decisions as they happen.
//!
//! ```text
//! cargo run -p govtrust-agent --example citizen -- \
//!     --homeserver https://matrix.example --user @citizen:example --password … \
//!     --root root.pem [--store ./citizen-store] [--publisher @govtrust:example] \
//!     [--check @agency:example] [--sign-identities] [--crl-tls-root ca.pem]
//! ```
//!
//! The password may also come from `GOVTRUST_CITIZEN_PASSWORD`. The session
//! is kept in the store directory, so later runs reuse the same device.
//! Stop with Ctrl-C.

// matrix-sdk's sync futures are deeply nested; proving them `Send` for
// `tokio::spawn` needs more than the default recursion limit.
#![recursion_limit = "256"]

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use govtrust_agent::{AgentConfig, AutoTrustAgent, HttpCrlFetcher, TrustAction};
use govtrust_verifier::{pem, TrustAnchors};
use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::SyncSettings;
use matrix_sdk::ruma::api::client::uiaa;
use matrix_sdk::ruma::OwnedUserId;
use matrix_sdk::Client;
use tokio::sync::broadcast::error::RecvError;

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

const USAGE: &str = "usage: citizen --homeserver URL --user @user:server [--password PW] \
    --root ROOT.pem [--store DIR] [--publisher @bot:server]... [--check @user:server]... \
    [--sign-identities] [--bootstrap-cross-signing] [--crl-tls-root CA.pem]... [--allow-http-crl]";

#[derive(Default)]
struct Args {
    homeserver: Option<String>,
    user: Option<String>,
    password: Option<String>,
    root: Option<PathBuf>,
    store: Option<PathBuf>,
    publishers: Vec<String>,
    check: Vec<String>,
    crl_tls_roots: Vec<PathBuf>,
    sign_identities: bool,
    bootstrap_cross_signing: bool,
    allow_http_crl: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--homeserver" => args.homeserver = Some(value()?),
            "--user" => args.user = Some(value()?),
            "--password" => args.password = Some(value()?),
            "--root" => args.root = Some(value()?.into()),
            "--store" => args.store = Some(value()?.into()),
            "--publisher" => args.publishers.push(value()?),
            "--check" => args.check.push(value()?),
            "--crl-tls-root" => args.crl_tls_roots.push(value()?.into()),
            "--sign-identities" => args.sign_identities = true,
            "--bootstrap-cross-signing" => args.bootstrap_cross_signing = true,
            "--allow-http-crl" => args.allow_http_crl = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    if args.password.is_none() {
        args.password = std::env::var("GOVTRUST_CITIZEN_PASSWORD").ok();
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,govtrust_verifier=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = parse_args()?;
    let homeserver = args.homeserver.clone().ok_or(USAGE)?;
    let user = args.user.clone().ok_or(USAGE)?;
    let password = args
        .password
        .clone()
        .ok_or("--password or GOVTRUST_CITIZEN_PASSWORD is required")?;
    let root_path = args.root.clone().ok_or(USAGE)?;
    let store = args
        .store
        .clone()
        .unwrap_or_else(|| PathBuf::from("citizen-store"));
    std::fs::create_dir_all(&store)?;

    // The pinned root first: a bad configuration fails before any login.
    let root_pem =
        std::fs::read(&root_path).map_err(|e| format!("{}: {e}", root_path.display()))?;
    let anchors = TrustAnchors::from_pem(&root_pem)?;

    // 1. Log in (or restore the session of an earlier run).
    let client = login(&homeserver, &user, &password, &store).await?;
    client
        .sync_once(SyncSettings::default().timeout(Duration::ZERO))
        .await?;
    if args.bootstrap_cross_signing {
        bootstrap_cross_signing(&client, &user, &password).await?;
    }

    // 2. The agent: pinned root, where attestations are, what it may do.
    let mut config = AgentConfig::new(anchors, store.join("govtrust-agent.json"));
    config.sign_identities = args.sign_identities;
    config.publishers = args
        .publishers
        .iter()
        .map(|p| OwnedUserId::try_from(p.as_str()))
        .collect::<std::result::Result<_, _>>()?;
    if !args.crl_tls_roots.is_empty() || args.allow_http_crl {
        // TLS roots for the CRL host: the pinned roots plus the given ones.
        let mut roots: Vec<_> = config.anchors.roots().cloned().collect();
        for path in &args.crl_tls_roots {
            roots.extend(pem::certificates(&std::fs::read(path)?)?);
        }
        let fetcher = HttpCrlFetcher::with_tls_roots(&roots)?.allow_http(args.allow_http_crl);
        config.crl_fetcher = Some(Arc::new(fetcher));
    }
    let agent = AutoTrustAgent::start(client.clone(), config).await?;
    let mut decisions = agent.subscribe();
    println!(
        "logged in as {user} (device {})",
        client.device_id().map_or("?".into(), |d| d.to_string())
    );

    // 3. Keep syncing: the agent reacts to what the sync brings.
    let sync_client = client.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = sync_client.sync(SyncSettings::default()).await {
                eprintln!("sync failed, retrying: {e}");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    });
    for other in &args.check {
        let other = OwnedUserId::try_from(other.as_str())?;
        if let Err(e) = agent.check_user(&other).await {
            eprintln!("checking {other}: {e}");
        }
    }

    // 4. Print decisions as they happen.
    loop {
        tokio::select! {
            decision = decisions.recv() => match decision {
                Ok(d) => {
                    match (d.badge(), d.action) {
                        (Some(badge), TrustAction::Trusted | TrustAction::SignedIdentity | TrustAction::ViaSignedIdentity) => {
                            println!("✔ {} {}: {badge}", d.user_id, d.device_id.as_deref().map_or("(identity)".to_owned(), |d| format!("device {d}")));
                        }
                        _ => println!("• {d}"),
                    }
                    if let Some(w) = &d.warning {
                        println!("  ⚠ {w}");
                    }
                }
                Err(RecvError::Lagged(n)) => eprintln!("({n} decisions skipped)"),
                Err(RecvError::Closed) => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    agent.shutdown();
    Ok(())
}

/// Password login with a persistent SQLite store; the session is saved so
/// the next run reuses the device (and its keys).
async fn login(homeserver: &str, user: &str, password: &str, store: &Path) -> Result<Client> {
    let client = Client::builder()
        .homeserver_url(homeserver)
        .sqlite_store(store.join("sdk"), None)
        .build()
        .await?;
    let session_path = store.join("session.json");
    if let Ok(bytes) = std::fs::read(&session_path) {
        let session: MatrixSession = serde_json::from_slice(&bytes)?;
        client.restore_session(session).await?;
        return Ok(client);
    }
    client
        .matrix_auth()
        .login_username(user, password)
        .initial_device_display_name("govtrust citizen example")
        .send()
        .await?;
    if let Some(session) = client.matrix_auth().session() {
        std::fs::write(&session_path, serde_json::to_vec(&session)?)?;
    }
    Ok(client)
}

/// Sets up cross-signing for the citizen (needed for `--sign-identities`),
/// answering the homeserver's password prompt.
async fn bootstrap_cross_signing(client: &Client, user: &str, password: &str) -> Result<()> {
    if client
        .encryption()
        .cross_signing_status()
        .await
        .is_some_and(|s| s.is_complete())
    {
        return Ok(());
    }
    if let Err(e) = client.encryption().bootstrap_cross_signing(None).await {
        let Some(response) = e.as_uiaa_response() else {
            return Err(e.into());
        };
        let mut auth = uiaa::Password::new(
            uiaa::UserIdentifier::Matrix(uiaa::MatrixUserIdentifier::new(user.to_owned())),
            password.to_owned(),
        );
        auth.session = response.session.clone();
        client
            .encryption()
            .bootstrap_cross_signing(Some(uiaa::AuthData::Password(auth)))
            .await?;
    }
    Ok(())
}

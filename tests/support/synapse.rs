//! Test fixture: a throwaway Synapse homeserver on loopback.
//!
//! Usable from any test target:
//!
//! ```ignore
//! #[path = "support/synapse.rs"]
//! mod synapse;
//!
//! let hs = synapse::Synapse::new().await.expect("synapse");
//! let bot = hs.register("bot", "pw", false).await.expect("register");
//! ```
//!
//! Synapse comes from PyPI into a virtualenv that `scripts/synapse-setup.sh`
//! makes on first use (default `target/synapse-venv`, override with
//! `GOVTRUST_SYNAPSE_VENV`; the script locks so parallel test binaries
//! install once). Each [`Synapse`] gets its own temporary directory with
//! SQLite, a fresh signing key and a free port, has every rate limit raised
//! far out of the way, and registers users through the shared-secret admin
//! API (registration is otherwise disabled, as in production).
//!
//! The server is killed when the value is dropped, and also when the test
//! process dies: it runs under a small launcher that exits when its stdin
//! (a pipe held by this process) closes, so no orphan outlives a crashed
//! test binary.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Server name of every fixture homeserver: user IDs are `@name:localhost`.
pub const SERVER_NAME: &str = "localhost";

/// How long to wait for Synapse to answer `/_matrix/client/versions`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts Synapse with the config path as its argument, and exits (taking
/// Synapse with it, as it is the same process) when stdin reaches EOF.
const LAUNCHER: &str = r#"
import os, sys, threading, runpy
def _watch():
    try:
        sys.stdin.buffer.read()
    finally:
        os._exit(0)
threading.Thread(target=_watch, daemon=True).start()
sys.argv = ["synapse.app.homeserver", "--config-path", sys.argv[1]]
runpy.run_module("synapse.app.homeserver", run_name="__main__", alter_sys=True)
"#;

/// A fixture failure, with enough context (and the server log) to debug.
#[derive(Debug)]
pub struct FixtureError(pub String);

impl std::fmt::Display for FixtureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FixtureError {}

type Result<T> = std::result::Result<T, FixtureError>;

fn err(msg: impl Into<String>) -> FixtureError {
    FixtureError(msg.into())
}

/// An access token and device, from [`Synapse::login`].
#[derive(Clone, Debug)]
pub struct LoginSession {
    /// The full user ID.
    pub user_id: String,
    /// The device the login created or re-used.
    pub device_id: String,
    /// Bearer token for raw API calls.
    pub access_token: String,
}

/// A running (or stopped) Synapse.
pub struct Synapse {
    dir: tempfile::TempDir,
    python: PathBuf,
    port: u16,
    shared_secret: String,
    child: Option<Child>,
    http: reqwest::Client,
}

impl Synapse {
    /// Installs Synapse if needed, writes a config into a new temporary
    /// directory, and starts the server.
    pub async fn new() -> Result<Synapse> {
        let python = ensure_venv().await?;
        let dir = tempfile::Builder::new()
            .prefix("govtrust-synapse-")
            .tempdir()
            .map_err(|e| err(format!("temp dir: {e}")))?;
        let port = free_port()?;
        let shared_secret = random_hex(32);
        write_config(dir.path(), port, &shared_secret)?;
        write_signing_key(dir.path())?;
        let mut synapse = Synapse {
            dir,
            python,
            port,
            shared_secret,
            child: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(|e| err(format!("HTTP client: {e}")))?,
        };
        synapse.start().await?;
        Ok(synapse)
    }

    /// Starts the server (again, after [`Synapse::stop`]) on the same port
    /// with the same data, and waits until it answers.
    pub async fn start(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| err(format!("log file: {e}")))?;
        let log2 = log.try_clone().map_err(|e| err(format!("log file: {e}")))?;
        let child = Command::new(&self.python)
            .arg("-c")
            .arg(LAUNCHER)
            .arg(self.dir.path().join("homeserver.yaml"))
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| err(format!("starting synapse: {e}")))?;
        self.child = Some(child);
        self.wait_until_up().await
    }

    /// Stops the server, keeping its data for [`Synapse::start`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Closing stdin makes the launcher exit; kill in case it hangs.
            drop(child.stdin.take());
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the server process is alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Client-server API base URL, `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server name in user IDs.
    pub fn server_name(&self) -> &str {
        SERVER_NAME
    }

    /// The directory with the config, database, signing key and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("synapse.log")
    }

    async fn wait_until_up(&mut self) -> Result<()> {
        let url = format!("{}/_matrix/client/versions", self.base_url());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if !self.is_running() {
                return Err(err(format!(
                    "synapse exited during start-up; log:\n{}",
                    self.log_tail(40)
                )));
            }
            if let Ok(resp) = self.http.get(&url).send().await {
                if resp.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(err(format!(
                    "synapse did not answer within {START_TIMEOUT:?}; log:\n{}",
                    self.log_tail(40)
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Registers a user through the shared-secret admin API and returns
    /// the full user ID.
    pub async fn register(&self, localpart: &str, password: &str, admin: bool) -> Result<String> {
        let url = format!("{}/_synapse/admin/v1/register", self.base_url());
        let nonce: serde_json::Value = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| err(format!("register nonce: {e}")))?
            .json()
            .await
            .map_err(|e| err(format!("register nonce: {e}")))?;
        let nonce = nonce["nonce"]
            .as_str()
            .ok_or_else(|| err("register: no nonce"))?
            .to_owned();
        let mut message = Vec::new();
        for part in [
            nonce.as_bytes(),
            localpart.as_bytes(),
            password.as_bytes(),
            if admin { b"admin" } else { b"notadmin" },
        ] {
            if !message.is_empty() {
                message.push(0);
            }
            message.extend_from_slice(part);
        }
        let key = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            self.shared_secret.as_bytes(),
        );
        let mac = hex(ring::hmac::sign(&key, &message).as_ref());
        let resp = self
            .http
            .post(&url)
            .json(&serde_json::json!({
                "nonce": nonce,
                "username": localpart,
                "password": password,
                "admin": admin,
                "mac": mac,
            }))
            .send()
            .await
            .map_err(|e| err(format!("register {localpart}: {e}")))?;
        let status = resp.status();
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| err(format!("register {localpart}: {e}")))?;
        if !status.is_success() {
            return Err(err(format!("register {localpart}: {status} {body}")));
        }
        body["user_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| err(format!("register {localpart}: no user_id in {body}")))
    }

    /// Password login through the raw API (a new device, or `device_id`).
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        device_id: Option<&str>,
    ) -> Result<LoginSession> {
        let mut body = serde_json::json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
        });
        if let Some(device_id) = device_id {
            body["device_id"] = device_id.into();
        }
        let (status, resp) = self
            .call(
                reqwest::Method::POST,
                "/_matrix/client/v3/login",
                None,
                Some(&body),
            )
            .await?;
        if !status.is_success() {
            return Err(err(format!("login {user}: {status} {resp}")));
        }
        let field = |name: &str| {
            resp[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| err(format!("login {user}: no {name} in {resp}")))
        };
        Ok(LoginSession {
            user_id: field("user_id")?,
            device_id: field("device_id")?,
            access_token: field("access_token")?,
        })
    }

    /// A raw client-server API call: `path` starts with `/_matrix/...`.
    /// Returns the status and the JSON body (`null` if the body is not JSON).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        access_token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<(reqwest::StatusCode, serde_json::Value)> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base_url()));
        if let Some(token) = access_token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let resp = request
            .send()
            .await
            .map_err(|e| err(format!("{method} {path}: {e}")))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| err(format!("{method} {path}: {e}")))?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        ))
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `scripts/synapse-setup.sh` (install once, then reuse) and returns
/// the venv's python.
async fn ensure_venv() -> Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/synapse-setup.sh");
    let out = tokio::process::Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .await
        .map_err(|e| err(format!("running {}: {e}", script.display())))?;
    if !out.status.success() {
        return Err(err(format!(
            "{} failed ({}); Synapse could not be installed",
            script.display(),
            out.status
        )));
    }
    let python = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if python.is_empty() {
        return Err(err("synapse-setup.sh printed no interpreter path"));
    }
    Ok(PathBuf::from(python))
}

/// Writes the server's signing key in Synapse's format (`ed25519 <version>
/// <unpadded base64 seed>`), which is what `--generate-keys` would do in
/// about two seconds of Python start-up.
fn write_signing_key(dir: &Path) -> Result<()> {
    use base64::Engine as _;
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| err("system RNG unavailable"))?;
    let line = format!(
        "ed25519 a_{} {}\n",
        &random_hex(2),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(seed)
    );
    std::fs::write(dir.join("signing.key"), line)
        .map_err(|e| err(format!("writing signing.key: {e}")))
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| err(format!("free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| err(format!("free port: {e}")))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf)
        .unwrap_or_else(|_| panic!("system RNG unavailable"));
    hex(&buf)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Every `rc_*` limiter Synapse has, with a very high rate: tests create
/// rooms, log in and send to-device messages much faster than people.
const RATE_LIMITED: &[&str] = &[
    "rc_message",
    "rc_registration",
    "rc_registration_token_validity",
    "rc_login.address",
    "rc_login.account",
    "rc_login.failed_attempts",
    "rc_admin_redaction",
    "rc_joins.local",
    "rc_joins.remote",
    "rc_joins_per_room",
    "rc_key_requests",
    "rc_3pid_validation",
    "rc_invites.per_room",
    "rc_invites.per_user",
    "rc_invites.per_issuer",
    "rc_third_party_invite",
    "rc_media_create",
    "rc_presence.per_user",
    "rc_delayed_event_mgmt",
    "rc_room_creation",
    "rc_reports",
    "rc_user_directory",
    "rc_profile",
];

fn write_config(dir: &Path, port: u16, shared_secret: &str) -> Result<()> {
    let d = dir.display();
    let mut yaml = format!(
        r#"server_name: "{SERVER_NAME}"
public_baseurl: "http://127.0.0.1:{port}/"
pid_file: "{d}/homeserver.pid"
listeners:
  - port: {port}
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: "{d}/homeserver.db"
media_store_path: "{d}/media"
signing_key_path: "{d}/signing.key"
report_stats: false
enable_metrics: false
enable_registration: false
registration_shared_secret: "{shared_secret}"
macaroon_secret_key: "{macaroon}"
form_secret: "{form}"
trusted_key_servers: []
suppress_key_server_warning: true
url_preview_enabled: false
presence:
  enabled: false
rc_federation:
  window_size: 1000
  sleep_limit: 100000
  sleep_delay: 1
  reject_limit: 100000
  concurrent: 100000
"#,
        macaroon = random_hex(32),
        form = random_hex(32),
    );
    // Nested keys (rc_login.address) become nested YAML maps.
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for key in RATE_LIMITED {
        let (top, sub) = match key.split_once('.') {
            Some((t, s)) => (t, Some(s)),
            None => (*key, None),
        };
        match groups.iter_mut().find(|(t, _)| *t == top) {
            Some((_, subs)) => subs.extend(sub),
            None => groups.push((top, sub.into_iter().collect())),
        }
    }
    for (top, subs) in groups {
        if subs.is_empty() {
            let _ = writeln!(yaml, "{top}:\n  per_second: 100000\n  burst_count: 100000");
        } else {
            let _ = writeln!(yaml, "{top}:");
            for sub in subs {
                let _ = writeln!(
                    yaml,
                    "  {sub}:\n    per_second: 100000\n    burst_count: 100000"
                );
            }
        }
    }
    std::fs::write(dir.join("homeserver.yaml"), yaml)
        .map_err(|e| err(format!("writing homeserver.yaml: {e}")))
}

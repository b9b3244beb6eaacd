//! A local Synapse homeserver for development: the demo, the load bench and
//! the end-to-end tests all need a real homeserver on a fresh machine, and
//! this is the one place that knows how to get and run it.
//!
//! Synapse comes from PyPI into a virtualenv (the embedded
//! `service/scripts/synapse-setup.sh`; installed once, then reused). Each
//! [`Synapse`] gets its own directory with SQLite, a fresh signing key and
//! a free loopback port, has every rate limit raised far out of the way,
//! and registers users through the shared-secret admin API (open
//! registration stays off, as in production).
//!
//! The server dies with its [`Synapse`] value, and also when this process
//! dies: it runs under a small launcher that exits when its stdin (a pipe
//! held by this process) closes, so no orphan outlives a crashed demo or
//! test binary.

use std::fmt::Write as _;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{json, Value};

/// Server name of every local homeserver: user IDs are `@name:localhost`.
pub const SERVER_NAME: &str = "localhost";

/// How long to wait for Synapse to answer `/_matrix/client/versions`.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// The venv installer, embedded so an installed binary can set Synapse up
/// without the source tree.
const SETUP_SCRIPT: &str = include_str!("../scripts/synapse-setup.sh");

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

/// Every `rc_*` limiter Synapse has, with a very high rate: tests and the
/// bench create rooms, log in and send to-device messages much faster than
/// people.
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

/// Why a local homeserver could not be set up, started or used; the
/// message carries the server log's tail where it helps.
#[derive(Debug, thiserror::Error)]
pub enum SynapseError {
    /// The virtualenv could not be made or Synapse not installed into it.
    #[error("installing Synapse: {0}")]
    Install(String),
    /// A file of the server's directory could not be written or read.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The server did not come up.
    #[error("starting Synapse: {0}")]
    Start(String),
    /// An API call failed or was refused.
    #[error("{0}")]
    Api(String),
}

type Result<T> = std::result::Result<T, SynapseError>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SynapseError {
    let what = what.into();
    move |source| SynapseError::Io { what, source }
}

/// How to run a [`Synapse`].
#[derive(Clone, Debug, Default)]
pub struct SynapseOptions {
    /// Directory for the config, database and log; `None`: a temporary
    /// directory removed with the server.
    pub dir: Option<PathBuf>,
    /// A Python that has Synapse installed; `None`: the venv at
    /// [`SynapseOptions::venv`], installed on first use.
    pub python: Option<PathBuf>,
    /// Where the venv lives; `None`: [`default_venv`].
    pub venv: Option<PathBuf>,
    /// Log WARNING and up only (an INFO line per request costs Synapse CPU
    /// a benchmark would attribute to the homeserver).
    pub quiet: bool,
}

/// `$GOVTRUST_SYNAPSE_VENV`, else `target/synapse-venv` of the source tree
/// this binary was built from (shared with the tests), else
/// `~/.cache/govtrust/synapse-venv`.
pub fn default_venv() -> PathBuf {
    if let Some(venv) = std::env::var_os("GOVTRUST_SYNAPSE_VENV") {
        return PathBuf::from(venv);
    }
    // This crate sits one level below the workspace root.
    let source_target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    if source_target.is_dir() {
        return source_target.join("synapse-venv");
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("govtrust").join("synapse-venv")
}

/// Makes sure `venv` has Synapse (installing it from PyPI the first time,
/// about half a minute) and returns its Python.
pub async fn ensure_python(venv: &Path) -> Result<PathBuf> {
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(SETUP_SCRIPT)
        .env("GOVTRUST_SYNAPSE_VENV", venv)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .await
        .map_err(|e| SynapseError::Install(format!("running bash: {e}")))?;
    if !out.status.success() {
        return Err(SynapseError::Install(format!(
            "the setup script failed ({}); see its messages above",
            out.status
        )));
    }
    let python = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if python.is_empty() {
        return Err(SynapseError::Install(
            "the setup script printed no interpreter".into(),
        ));
    }
    Ok(PathBuf::from(python))
}

/// An access token and device, from [`HomeserverApi::login`].
#[derive(Clone, Debug)]
pub struct LoginSession {
    /// The full user ID.
    pub user_id: String,
    /// The device the login created or re-used.
    pub device_id: String,
    /// Bearer token for raw API calls.
    pub access_token: String,
}

/// The few raw client-server and admin calls that setting up users needs,
/// against any homeserver whose registration shared secret is known (a
/// [`Synapse`] started here, or one the operator runs).
#[derive(Clone, Debug)]
pub struct HomeserverApi {
    base: url::Url,
    shared_secret: String,
    http: reqwest::Client,
}

impl HomeserverApi {
    /// A client for the homeserver at `base`.
    pub fn new(base: url::Url, shared_secret: impl Into<String>) -> Result<HomeserverApi> {
        Ok(HomeserverApi {
            base,
            shared_secret: shared_secret.into(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .map_err(|e| SynapseError::Api(format!("HTTP client: {e}")))?,
        })
    }

    /// Client-server API base URL without a trailing slash,
    /// e.g. `http://127.0.0.1:8008`.
    pub fn base_url(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_owned()
    }

    /// The base URL as a [`url::Url`].
    pub fn url(&self) -> &url::Url {
        &self.base
    }

    /// Whether the server answers `/_matrix/client/versions`.
    pub async fn is_up(&self) -> bool {
        let url = format!("{}/_matrix/client/versions", self.base_url());
        matches!(self.http.get(url).send().await, Ok(r) if r.status().is_success())
    }

    /// Registers a user through the shared-secret admin API and returns
    /// the full user ID.
    pub async fn register(&self, localpart: &str, password: &str, admin: bool) -> Result<String> {
        let path = "/_synapse/admin/v1/register";
        let (_, nonce) = self.call(reqwest::Method::GET, path, None, None).await?;
        let nonce = nonce["nonce"]
            .as_str()
            .ok_or_else(|| SynapseError::Api(format!("register {localpart}: no nonce")))?
            .to_owned();
        let message = [
            nonce.as_bytes(),
            localpart.as_bytes(),
            password.as_bytes(),
            if admin { b"admin" } else { b"notadmin" },
        ]
        .join(&0u8);
        let key = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            self.shared_secret.as_bytes(),
        );
        let mac = govtrust_pki::hex(ring::hmac::sign(&key, &message).as_ref());
        let body = json!({
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac,
        });
        let (status, resp) = self
            .call(reqwest::Method::POST, path, None, Some(&body))
            .await?;
        if !status.is_success() {
            return Err(SynapseError::Api(format!(
                "register {localpart}: {status} {resp}"
            )));
        }
        resp["user_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| SynapseError::Api(format!("register {localpart}: no user_id in {resp}")))
    }

    /// Password login through the raw API (a new device, or `device_id`).
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        device_id: Option<&str>,
    ) -> Result<LoginSession> {
        let mut body = json!({
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
            return Err(SynapseError::Api(format!("login {user}: {status} {resp}")));
        }
        let field = |name: &str| {
            resp[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| SynapseError::Api(format!("login {user}: no {name} in {resp}")))
        };
        Ok(LoginSession {
            user_id: field("user_id")?,
            device_id: field("device_id")?,
            access_token: field("access_token")?,
        })
    }

    /// A raw API call: `path` starts with `/_matrix/...` or `/_synapse/...`.
    /// Returns the status and the JSON body (`null` if the body is not JSON).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        access_token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(reqwest::StatusCode, Value)> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base_url()));
        if let Some(token) = access_token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let failed = |e: reqwest::Error| SynapseError::Api(format!("{method} {path}: {e}"));
        let resp = request.send().await.map_err(failed)?;
        let status = resp.status();
        let text = resp.text().await.map_err(failed)?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}

/// Where a [`Synapse`] keeps its files.
#[derive(Debug)]
enum Workdir {
    Temporary(tempfile::TempDir),
    Kept(PathBuf),
}

impl Workdir {
    fn path(&self) -> &Path {
        match self {
            Workdir::Temporary(t) => t.path(),
            Workdir::Kept(p) => p,
        }
    }
}

/// A running (or stopped) local Synapse; derefs to its [`HomeserverApi`].
#[derive(Debug)]
pub struct Synapse {
    dir: Workdir,
    python: PathBuf,
    child: Option<Child>,
    api: HomeserverApi,
}

impl Deref for Synapse {
    type Target = HomeserverApi;

    fn deref(&self) -> &HomeserverApi {
        &self.api
    }
}

impl Synapse {
    /// Installs Synapse if needed and starts a throwaway server in a new
    /// temporary directory.
    pub async fn new() -> Result<Synapse> {
        Synapse::start_with(SynapseOptions::default()).await
    }

    /// Installs Synapse if needed, writes a config and starts the server.
    pub async fn start_with(options: SynapseOptions) -> Result<Synapse> {
        let python = match options.python {
            Some(p) => p,
            None => ensure_python(&options.venv.unwrap_or_else(default_venv)).await?,
        };
        let dir = match options.dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
                Workdir::Kept(dir)
            }
            None => Workdir::Temporary(
                tempfile::Builder::new()
                    .prefix("govtrust-synapse-")
                    .tempdir()
                    .map_err(io("temporary directory"))?,
            ),
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(io("finding a free port"))?
            .port();
        let rng = SystemRandom::new();
        let shared_secret = random_hex(&rng, 32)?;
        let path = dir.path();
        let write = |name: &str, text: String| {
            std::fs::write(path.join(name), text).map_err(io(format!("writing {name}")))
        };
        write("homeserver.yaml", config(path, port, &shared_secret, &rng)?)?;
        write("log.config", log_config(path, options.quiet))?;
        let mut seed = [0u8; 32];
        rng.fill(&mut seed)
            .map_err(|_| SynapseError::Start("system randomness unavailable".into()))?;
        write(
            "signing.key",
            format!(
                "ed25519 a_{} {}\n",
                random_hex(&rng, 2)?,
                STANDARD_NO_PAD.encode(seed)
            ),
        )?;
        let base = url::Url::parse(&format!("http://127.0.0.1:{port}/"))
            .map_err(|e| SynapseError::Start(format!("base URL: {e}")))?;
        let mut synapse = Synapse {
            dir,
            python,
            child: None,
            api: HomeserverApi::new(base, shared_secret)?,
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
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir().join("synapse.out"))
            .map_err(io("opening synapse.out"))?;
        let err = out.try_clone().map_err(io("opening synapse.out"))?;
        let child = Command::new(&self.python)
            .arg("-c")
            .arg(LAUNCHER)
            .arg(self.dir().join("homeserver.yaml"))
            .current_dir(self.dir())
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| SynapseError::Start(format!("running {}: {e}", self.python.display())))?;
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

    /// The server's process ID while it runs (for CPU accounting).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The calls this server answers (also reachable through `Deref`).
    pub fn api(&self) -> &HomeserverApi {
        &self.api
    }

    /// The server name in user IDs.
    pub fn server_name(&self) -> &str {
        SERVER_NAME
    }

    /// The directory with the config, database, signing key and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server log so far (start-up output and the log file).
    pub fn log(&self) -> String {
        let mut text = std::fs::read_to_string(self.dir().join("synapse.out")).unwrap_or_default();
        text.push_str(&std::fs::read_to_string(self.dir().join("synapse.log")).unwrap_or_default());
        text
    }

    /// The last `n` lines of the log (for error messages).
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    async fn wait_until_up(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(SynapseError::Start(format!(
                        "Synapse exited ({status}) during start-up; log:\n{}",
                        self.log_tail(40)
                    )));
                }
            }
            if self.api.is_up().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(SynapseError::Start(format!(
                    "no answer within {START_TIMEOUT:?}; log:\n{}",
                    self.log_tail(40)
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

fn random_hex(rng: &SystemRandom, bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    rng.fill(&mut buf)
        .map_err(|_| SynapseError::Start("system randomness unavailable".into()))?;
    Ok(govtrust_pki::hex(&buf))
}

fn config(dir: &Path, port: u16, shared_secret: &str, rng: &SystemRandom) -> Result<String> {
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
log_config: "{d}/log.config"
media_store_path: "{d}/media"
signing_key_path: "{d}/signing.key"
report_stats: false
enable_metrics: false
enable_registration: false
registration_shared_secret: "{shared_secret}"
macaroon_secret_key: "{macaroon}"
form_secret: "{form}"
bcrypt_rounds: 4
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
        macaroon = random_hex(rng, 32)?,
        form = random_hex(rng, 32)?,
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
    Ok(yaml)
}

fn log_config(dir: &Path, quiet: bool) -> String {
    format!(
        r#"version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: "{}/synapse.log"
root:
  level: {}
  handlers: [file]
disable_existing_loggers: false
"#,
        dir.display(),
        if quiet { "WARNING" } else { "INFO" }
    )
}

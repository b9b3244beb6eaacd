//! Test helper: the `govtrust serve` binary as a child process, for the
//! tests that need what only a real process shows — SIGKILL and SIGTERM,
//! the exit status, a restart on the same data directory, the log on
//! stdout/stderr.
//!
//! ```ignore
//! #[path = "support/fake_device.rs"]
//! mod fake_device;
//! #[path = "support/harness.rs"]
//! mod harness;
//! #[path = "support/process.rs"]
//! mod process;
//!
//! let dir = process::ServiceDir::with_homeserver("govtrust-x-", &hs, "").await;
//! let mut service = dir.spawn();
//! service.wait_healthy().await;
//! let mtls = dir.add_agency(&record, hs.server_name()).await;
//! service.kill_9();
//! let mut service = dir.spawn(); // the same database and CAs
//! service.wait_healthy().await;
//! service.shut_down(Duration::from_secs(20));
//! ```
//!
//! It uses `fake_device` (the HTTPS client every test talks to the
//! service with) and `harness`, so the test crate declares those too.
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use govtrust_service::storage::Store;
use govtrust_service::synapse::Synapse;
use govtrust_verifier::AuthorityRecord;
use serde_json::{json, Value};

use super::fake_device::{https_client, post_json};
use super::harness::enc;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_govtrust");

/// How long a start may take before `/healthz` answers (the first start
/// creates the CA hierarchy; a homeserver may be slow to log in to).
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A TCP port free on loopback right now (the child binds it shortly
/// after; another process could take it in between, which is rare enough
/// on a test machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The password of the service's bot account (`govtrust`) on the
/// homeserver, see [`ServiceDir::with_homeserver`].
pub const BOT_PASSWORD: &str = "bot-password";

/// A temporary data directory with the configuration file of one service,
/// where its log goes and the URL it listens on. It outlives the
/// processes spawned on it, so a restart finds the same database and CAs.
pub struct ServiceDir {
    _tmp: tempfile::TempDir,
    /// The data directory (`data_dir`): database, CA directory, tokens.
    pub data: PathBuf,
    /// The configuration file.
    pub config: PathBuf,
    /// The log file every process spawned here appends to.
    pub log: PathBuf,
    /// Base URL, `https://127.0.0.1:<port>` (no trailing slash).
    pub base: String,
    /// The root certificate (PEM), written on first start.
    pub root: PathBuf,
    /// The bot's password, passed in the environment (the configuration
    /// names only the bot's user); `None` without a homeserver.
    bot_password: Option<&'static str>,
}

impl ServiceDir {
    /// A configuration with `listen`, `data_dir` and `public_url` set,
    /// followed by `top_level` (more top-level keys) and `sections` (TOML
    /// tables such as `[ca]`, `[matrix]`, `[tls]`).
    pub fn new(prefix: &str, top_level: &str, sections: &str) -> ServiceDir {
        let tmp = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("temp dir");
        let data = tmp.path().join("data");
        let port = free_port();
        let base = format!("https://127.0.0.1:{port}");
        let config = tmp.path().join("govtrust.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{data}\"\npublic_url = \"{base}\"\n{top_level}\n{sections}",
                data = data.display(),
            ),
        )
        .expect("write config");
        ServiceDir {
            log: tmp.path().join("service.log"),
            root: data.join("ca/root/cert.pem"),
            data,
            config,
            base,
            bot_password: None,
            _tmp: tmp,
        }
    }

    /// As [`ServiceDir::new`] for a service connected to `hs`: registers
    /// the bot account `govtrust` there (password [`BOT_PASSWORD`]) and
    /// configures `[matrix]` for it and `[ca]` so that the development CA
    /// certifies that server's users; `sections` follow those two.
    pub async fn with_homeserver(prefix: &str, hs: &Synapse, sections: &str) -> ServiceDir {
        let bot_id = hs
            .register("govtrust", BOT_PASSWORD, false)
            .await
            .expect("register bot");
        let mut dir = ServiceDir::new(
            prefix,
            "",
            &format!(
                "[ca]\ndev_servers = [\"{server}\"]\n\n[matrix]\nhomeserver_url = \"{hs_url}\"\nuser_id = \"{bot_id}\"\n\n{sections}",
                server = hs.server_name(),
                hs_url = hs.base_url(),
            ),
        );
        dir.bot_password = Some(BOT_PASSWORD);
        dir
    }

    /// Starts `govtrust serve` on this directory.
    pub fn spawn(&self) -> ServiceProcess {
        ServiceProcess::spawn(self)
    }

    /// The root certificate, PEM.
    pub fn root_pem(&self) -> Vec<u8> {
        std::fs::read(&self.root).expect("root certificate")
    }

    /// The admin operator token the first start wrote.
    pub fn operator_token(&self) -> String {
        std::fs::read_to_string(self.data.join("operator-token"))
            .expect("operator token")
            .trim()
            .to_owned()
    }

    /// The service's own database, opened beside the running process.
    pub async fn open_store(&self) -> Store {
        Store::connect(&format!(
            "sqlite://{}?mode=rwc",
            self.data.join("govtrust.db").display()
        ))
        .await
        .expect("open the service's database")
    }

    /// Registers authority `record` through the operator API (users
    /// `office.*` on `server`) and returns an HTTPS client that presents
    /// an enrollment-client certificate for it, issued by the service's
    /// active issuing CA straight from the CA directory.
    pub async fn add_agency(&self, record: &AuthorityRecord, server: &str) -> reqwest::Client {
        let root_pem = self.root_pem();
        post_json(
            &https_client(&root_pem, None),
            &format!("{}/v1/authorities", self.base),
            Some(&self.operator_token()),
            &json!({"record": record, "servers": [server], "user_patterns": ["office.*"]}),
        )
        .await
        .expect("create authority");
        let key = FileSigner::generate(KeyAlgorithm::EcdsaP256).expect("client key");
        let issued = govtrust_service::cadir::CaDir::open(&self.data.join("ca"))
            .expect("CA dir")
            .issuing_ca("issuing-1")
            .expect("issuing CA")
            .issue_enrollment_client(
                record,
                key.spki_der().to_vec(),
                govtrust_pki::Validity::from_now(Duration::from_secs(3600)),
            )
            .expect("enrollment client");
        let identity = govtrust_service::pemfile::client_identity(
            &govtrust_service::pemfile::chain_pem(&issued.chain),
            &key,
        )
        .expect("client identity");
        https_client(&root_pem, Some(identity.as_bytes()))
    }
}

/// A running `govtrust serve --config FILE`, its output appended to the
/// directory's log file. Dropping it kills the process (SIGKILL), so a
/// failing test leaves none behind.
pub struct ServiceProcess {
    child: Child,
    log: PathBuf,
    base: String,
    root: PathBuf,
}

impl ServiceProcess {
    fn spawn(dir: &ServiceDir) -> ServiceProcess {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&dir.log)
            .expect("log file");
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .arg("--config")
            .arg(&dir.config)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        // The configuration file alone decides, not the caller's
        // environment.
        for (var, _) in govtrust_service::config::ENV_OVERRIDES {
            command.env_remove(var);
        }
        if let Some(password) = dir.bot_password {
            command.env("GOVTRUST_MATRIX_PASSWORD", password);
        }
        let child = command
            .env(
                "RUST_LOG",
                "info,matrix_sdk=warn,matrix_sdk_crypto=warn,sqlx=warn",
            )
            .spawn()
            .expect("starting govtrust serve");
        ServiceProcess {
            child,
            log: dir.log.clone(),
            base: dir.base.clone(),
            root: dir.root.clone(),
        }
    }

    /// The whole log (of every process spawned on the directory so far).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last 40 lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits until `/healthz` answers 200 over TLS (the root it is checked
    /// against appears on first start); panics with the log if the process
    /// exits or does not become healthy in time.
    pub async fn wait_healthy(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "govtrust serve exited ({status}); log:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(pem) = std::fs::read(&self.root) {
                let http = https_client(&pem, None);
                if let Ok(r) = http.get(format!("{}/healthz", self.base)).send().await {
                    if r.status().is_success() {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "govtrust serve not healthy; log:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL (what `Child::kill` sends on Unix) and reap: a crash
    /// without any chance to clean up.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// A graceful shutdown: SIGTERM, then asserts that the process exits
    /// with status 0 within `within` (panics with the log otherwise).
    pub fn shut_down(&mut self, within: Duration) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill -TERM");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + within;
        let exit = loop {
            if let Ok(Some(exit)) = self.child.try_wait() {
                break exit;
            }
            assert!(
                Instant::now() < deadline,
                "govtrust serve still running {within:?} after SIGTERM; log:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            exit.success(),
            "exit status after SIGTERM: {exit}; log:\n{}",
            self.log_tail()
        );
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The service's directory room as any user of the homeserver reads it
/// (a fresh account, not the bot): what a citizen's client would see.
pub struct DirectoryReader {
    access_token: String,
    room_id: String,
}

impl DirectoryReader {
    /// Registers and logs in user `outsider` on `hs` and resolves the
    /// directory room's alias.
    pub async fn new(hs: &Synapse) -> DirectoryReader {
        let user = hs
            .register("outsider", "outsider-pw", false)
            .await
            .expect("register outsider");
        let session = hs
            .login(&user, "outsider-pw", None)
            .await
            .expect("outsider login");
        let alias = format!("#govtrust-directory:{}", hs.server_name());
        let (status, room) = hs
            .call(
                reqwest::Method::GET,
                &format!("/_matrix/client/v3/directory/room/{}", enc(&alias)),
                Some(&session.access_token),
                None,
            )
            .await
            .expect("resolve directory alias");
        assert_eq!(status, reqwest::StatusCode::OK, "{room}");
        DirectoryReader {
            access_token: session.access_token,
            room_id: room["room_id"].as_str().expect("room id").to_owned(),
        }
    }

    /// The content of the `io.govtrust.attestation` state event under
    /// `state_key` (asserts that there is one).
    pub async fn attestation(&self, hs: &Synapse, state_key: &str) -> Value {
        let (status, content) = hs
            .call(
                reqwest::Method::GET,
                &format!(
                    "/_matrix/client/v3/rooms/{}/state/io.govtrust.attestation/{}",
                    enc(&self.room_id),
                    enc(state_key)
                ),
                Some(&self.access_token),
                None,
            )
            .await
            .expect("read state");
        assert_eq!(status, reqwest::StatusCode::OK, "{state_key}: {content}");
        content
    }
}

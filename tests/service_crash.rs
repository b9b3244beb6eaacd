//! Crash safety: `kill -9` of the service binary in the middle of a load
//! run loses no certificate that any client received.
//!
//! The real binary (`govtrust serve --config FILE`) runs with SQLite in a
//! temporary data directory and a real Synapse (tests/support/synapse.rs).
//! Fake devices (tests/support/fake_device.rs) enroll concurrently with
//! `signature` proof; the process gets SIGKILL mid-run and is restarted on
//! the same data directory. Every serial from a successful response must
//! then be in the database and in the audit log, the audit chain must
//! verify (`govtrust audit verify`), and the outbox must drain.

#[path = "support/fake_device.rs"]
mod fake_device;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/synapse.rs"]
mod synapse;

use harness::step;
use std::collections::HashSet;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_device::{https_client, post_json, CallError, FakeDevice};
use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use govtrust_service::storage::Store;
use serde_json::json;
use synapse::Synapse;

const BIN: &str = env!("CARGO_BIN_EXE_govtrust");
const BOT_PW: &str = "bot-password";
const AGENCY_PW: &str = "agency-password";
/// Devices enrolling concurrently.
const DEVICES: usize = 16;
/// Successful enrollments before the kill.
const KILL_AFTER: usize = 40;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The service process and where its log goes.
struct ServiceProcess {
    child: Child,
    log: PathBuf,
}

impl ServiceProcess {
    fn spawn(config: &Path, log: &Path) -> ServiceProcess {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        for (var, _) in govtrust_service::config::ENV_OVERRIDES {
            command.env_remove(var);
        }
        let child = command
            .env("GOVTRUST_MATRIX_PASSWORD", BOT_PW)
            .env(
                "RUST_LOG",
                "info,matrix_sdk=warn,matrix_sdk_crypto=warn,sqlx=warn",
            )
            .spawn()
            .expect("starting govtrust serve");
        ServiceProcess {
            child,
            log: log.to_owned(),
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits until `/healthz` answers over TLS (the root appears on first
    /// start).
    async fn wait_ready(&mut self, base: &str, root: &Path) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "govtrust serve exited ({status}); log:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(pem) = std::fs::read(root) {
                let http = https_client(&pem, None);
                if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
                    if r.status().is_success() {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "govtrust serve not ready; log:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL (what `Child::kill` sends on Unix) and reap.
    fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then SIGKILL if it does not exit within 10 s.
    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill_9();
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the load clients saw.
#[derive(Default)]
struct Tally {
    /// Serials from successful enrollment responses.
    serials: Mutex<Vec<String>>,
    successes: AtomicUsize,
    transport_errors: AtomicUsize,
    api_errors: Mutex<Vec<String>>,
}

/// Each device enrolls again and again until `stop`.
fn spawn_load(
    devices: &[Arc<FakeDevice>],
    mtls: &reqwest::Client,
    base: &str,
    tally: &Arc<Tally>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    devices
        .iter()
        .map(|dev| {
            let (dev, mtls, base) = (dev.clone(), mtls.clone(), base.to_owned());
            let (tally, stop) = (tally.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    match dev.enroll(&mtls, &base, Some(0)).await {
                        Ok(answer) => {
                            let serial = answer["serial"].as_str().expect("serial").to_owned();
                            tally.serials.lock().expect("lock").push(serial);
                            tally.successes.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(CallError::Transport(_)) => {
                            tally.transport_errors.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(e) => {
                            tally.api_errors.lock().expect("lock").push(e.to_string());
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_load_loses_no_issued_certificate() {
    let t0 = Instant::now();
    let hs = Synapse::new().await.expect("start Synapse");
    let bot_id = hs
        .register("govtrust", BOT_PW, false)
        .await
        .expect("register bot");
    let user = hs
        .register("office.load", AGENCY_PW, false)
        .await
        .expect("register agency user");
    step(t0, "Synapse up");

    let tmp = tempfile::Builder::new()
        .prefix("govtrust-crash-")
        .tempdir()
        .expect("temp dir");
    let data = tmp.path().join("data");
    let port = free_port();
    let base = format!("https://127.0.0.1:{port}");
    let config = tmp.path().join("govtrust.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:{port}"
data_dir = "{data}"
public_url = "{base}"

[ca]
dev_servers = ["{server}"]

[matrix]
homeserver_url = "{hs_url}"
user_id = "{bot_id}"

[limits]
agency_requests_per_second = 100000
agency_burst = 100000
"#,
            data = data.display(),
            server = hs.server_name(),
            hs_url = hs.base_url(),
        ),
    )
    .expect("write config");
    let log = tmp.path().join("service.log");
    let root_path = data.join("ca/root/cert.pem");
    let mut service = ServiceProcess::spawn(&config, &log);
    service.wait_ready(&base, &root_path).await;
    step(t0, "service up");

    // The authority (through the operator API) and its enrollment client.
    let root_pem = std::fs::read(&root_path).expect("root");
    let token = std::fs::read_to_string(data.join("operator-token")).expect("operator token");
    let record = govtrust_verifier::AuthorityRecord {
        id: "DE-LOAD-0001".into(),
        name: "Bürgeramt Lastprobe".into(),
        locality: Some("Berlin".into()),
        country: Some("DE".into()),
        ..Default::default()
    };
    post_json(
        &https_client(&root_pem, None),
        &format!("{base}/v1/authorities"),
        Some(token.trim()),
        &json!({"record": record, "servers": [hs.server_name()], "user_patterns": ["office.*"]}),
    )
    .await
    .expect("create authority");
    let key = FileSigner::generate(KeyAlgorithm::EcdsaP256).expect("client key");
    let issued = govtrust_service::cadir::CaDir::open(&data.join("ca"))
        .expect("CA dir")
        .issuing_ca("issuing-1")
        .expect("issuing CA")
        .issue_enrollment_client(
            &record,
            key.spki_der().to_vec(),
            govtrust_pki::Validity::from_now(Duration::from_secs(3600)),
        )
        .expect("enrollment client");
    let identity = govtrust_service::pemfile::client_identity(
        &govtrust_service::pemfile::chain_pem(&issued.chain),
        &key,
    )
    .expect("client identity");
    let mtls = https_client(&root_pem, Some(identity.as_bytes()));

    let http = reqwest::Client::new();
    let hs_url = hs.base_url();
    let devices: Vec<Arc<FakeDevice>> = futures::future::join_all(
        (0..DEVICES).map(|_| FakeDevice::create(&http, &hs_url, &user, AGENCY_PW, None)),
    )
    .await
    .into_iter()
    .map(|d| Arc::new(d.expect("fake device")))
    .collect();
    step(t0, &format!("{DEVICES} fake devices ready"));

    // Load, then SIGKILL while requests are in flight.
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let load = spawn_load(&devices, &mtls, &base, &tally, &stop);
    let deadline = Instant::now() + Duration::from_secs(60);
    while tally.successes.load(Ordering::SeqCst) < KILL_AFTER {
        assert!(
            Instant::now() < deadline,
            "only {} enrollments in 60 s; API errors: {:?}; log:\n{}",
            tally.successes.load(Ordering::SeqCst),
            tally.api_errors.lock().expect("lock"),
            service.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    service.kill_9();
    let at_kill = tally.successes.load(Ordering::SeqCst);
    step(t0, &format!("SIGKILL after {at_kill} enrollments"));
    // Clients keep trying against the dead process for a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.expect("load task");
    }
    let before_restart = tally.successes.load(Ordering::SeqCst);
    assert!(
        tally.transport_errors.load(Ordering::SeqCst) > 0,
        "no request failed: was the process really killed mid-run?"
    );

    // Restart on the same data directory; every device enrolls again.
    let mut service = ServiceProcess::spawn(&config, &log);
    service.wait_ready(&base, &root_path).await;
    step(t0, "service restarted");
    let mut latest = Vec::new();
    for dev in &devices {
        let answer = dev
            .enroll(&mtls, &base, Some(0))
            .await
            .unwrap_or_else(|e| panic!("enrollment after restart: {e}"));
        tally
            .serials
            .lock()
            .expect("lock")
            .push(answer["serial"].as_str().expect("serial").to_owned());
        latest.push(answer);
    }
    let api_errors = tally.api_errors.lock().expect("lock").clone();
    assert!(
        api_errors.is_empty(),
        "API errors under load: {api_errors:?}"
    );
    let serials = tally.serials.lock().expect("lock").clone();
    step(
        t0,
        &format!(
            "{} certificates received ({before_restart} before the restart, {} transport errors)",
            serials.len(),
            tally.transport_errors.load(Ordering::SeqCst)
        ),
    );

    // Every received certificate is stored and audited; the outbox drains
    // (items leased by the killed process come back when the lease ends).
    let store = Store::connect(&format!(
        "sqlite://{}?mode=rwc",
        data.join("govtrust.db").display()
    ))
    .await
    .expect("open the service's database");
    let mut issued_in_audit = HashSet::new();
    let mut after = 0;
    loop {
        let page = store.list_audit(after, 1000).await.expect("audit log");
        let Some(last) = page.last() else { break };
        after = last.seq;
        issued_in_audit.extend(
            page.into_iter()
                .filter(|r| r.action == "certificate.issued")
                .filter_map(|r| r.subject),
        );
    }
    // Issuance and its audit entry are one transaction: the certificates
    // table and the audit log name the same serials, including those whose
    // response the kill cut off.
    let stored: HashSet<String> = sqlx::query("SELECT serial FROM certificates")
        .fetch_all(store.pool())
        .await
        .expect("certificates")
        .iter()
        .map(|row| sqlx::Row::try_get::<String, _>(row, "serial").expect("serial"))
        .collect();
    assert_eq!(
        stored, issued_in_audit,
        "certificates and audit log disagree"
    );
    let unique: HashSet<&String> = serials.iter().collect();
    assert_eq!(unique.len(), serials.len(), "a serial was returned twice");
    for serial in &serials {
        let cert = store
            .get_certificate(serial)
            .await
            .expect("store")
            .unwrap_or_else(|| panic!("certificate {serial} was returned but is not stored"));
        assert_eq!(&cert.serial, serial);
        assert!(
            issued_in_audit.contains(serial),
            "certificate {serial} is not in the audit log"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let depth = store.outbox_depth().await.expect("outbox depth");
        if depth == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "outbox still holds {depth} items 90 s after the restart; log:\n{}",
            service.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    step(
        t0,
        "all received certificates stored and audited; outbox drained",
    );

    // What the directory room holds for each device is its newest
    // certificate: events queued before the kill never overwrite it.
    let outsider = hs
        .register("outsider", "outsider-pw", false)
        .await
        .expect("register outsider");
    let outsider = hs
        .login(&outsider, "outsider-pw", None)
        .await
        .expect("outsider login");
    let enc = |s: &str| -> String { url::form_urlencoded::byte_serialize(s.as_bytes()).collect() };
    let alias = format!("#govtrust-directory:{}", hs.server_name());
    let (status, room) = hs
        .call(
            reqwest::Method::GET,
            &format!("/_matrix/client/v3/directory/room/{}", enc(&alias)),
            Some(&outsider.access_token),
            None,
        )
        .await
        .expect("resolve directory alias");
    assert_eq!(status, reqwest::StatusCode::OK, "{room}");
    let room_id = room["room_id"].as_str().expect("room id").to_owned();
    for answer in &latest {
        let state_key = answer["state_key"].as_str().expect("state key");
        let (status, content) = hs
            .call(
                reqwest::Method::GET,
                &format!(
                    "/_matrix/client/v3/rooms/{}/state/io.govtrust.attestation/{}",
                    enc(&room_id),
                    enc(state_key)
                ),
                Some(&outsider.access_token),
                None,
            )
            .await
            .expect("read state");
        assert_eq!(status, reqwest::StatusCode::OK, "{state_key}: {content}");
        assert_eq!(
            content["chain"], answer["chain"],
            "{state_key}: the directory room does not hold the newest certificate"
        );
    }
    step(t0, "directory room holds each device's newest certificate");
    store.close().await;

    service.terminate();
    let out = Command::new(BIN)
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .env_remove("GOVTRUST_DATABASE_URL")
        .env_remove("GOVTRUST_MATRIX_HOMESERVER_URL")
        .env_remove("GOVTRUST_MATRIX_USER_ID")
        .env_remove("GOVTRUST_MATRIX_PASSWORD")
        .output()
        .expect("govtrust audit verify");
    assert!(
        out.status.success(),
        "audit verify failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    step(
        t0,
        &format!(
            "audit verify: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        ),
    );
}

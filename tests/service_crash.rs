//! Crash safety: `kill -9` of the service binary in the middle of a load
//! run loses no certificate that any client received.
//!
//! The real binary (`govtrust serve --config FILE`, run by
//! tests/support/process.rs) runs with SQLite in a temporary data
//! directory and a real Synapse (tests/support/synapse.rs).
//! Fake devices (tests/support/fake_device.rs) enroll concurrently with
//! `signature` proof; the process gets SIGKILL mid-run and is restarted on
//! the same data directory. Every serial from a successful response must
//! then be in the database and in the audit log, the audit chain must
//! verify (`govtrust audit verify`), and the outbox must drain.

#[path = "support/fake_device.rs"]
mod fake_device;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/process.rs"]
mod process;
#[path = "support/synapse.rs"]
mod synapse;

use harness::step;
use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_device::{CallError, FakeDevice};
use process::{DirectoryReader, ServiceDir, BIN};
use synapse::Synapse;

const AGENCY_PW: &str = "agency-password";
/// Devices enrolling concurrently.
const DEVICES: usize = 16;
/// Successful enrollments before the kill.
const KILL_AFTER: usize = 40;

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
    let user = hs
        .register("office.load", AGENCY_PW, false)
        .await
        .expect("register agency user");
    step(t0, "Synapse up");

    let dir = ServiceDir::with_homeserver(
        "govtrust-crash-",
        &hs,
        "[limits]\nagency_requests_per_second = 100000\nagency_burst = 100000\n",
    )
    .await;
    let mut service = dir.spawn();
    service.wait_healthy().await;
    step(t0, "service up");

    // The authority (through the operator API) and its enrollment client.
    let record = govtrust_verifier::AuthorityRecord {
        id: "DE-LOAD-0001".into(),
        name: "Bürgeramt Lastprobe".into(),
        locality: Some("Berlin".into()),
        country: Some("DE".into()),
        ..Default::default()
    };
    let mtls = dir.add_agency(&record, hs.server_name()).await;

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
    let load = spawn_load(&devices, &mtls, &dir.base, &tally, &stop);
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
    let mut service = dir.spawn();
    service.wait_healthy().await;
    step(t0, "service restarted");
    let mut latest = Vec::new();
    for dev in &devices {
        let answer = dev
            .enroll(&mtls, &dir.base, Some(0))
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
    let store = dir.open_store().await;
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
    let reader = DirectoryReader::new(&hs).await;
    for answer in &latest {
        let state_key = answer["state_key"].as_str().expect("state key");
        let content = reader.attestation(&hs, state_key).await;
        assert_eq!(
            content["chain"], answer["chain"],
            "{state_key}: the directory room does not hold the newest certificate"
        );
    }
    step(t0, "directory room holds each device's newest certificate");
    store.close().await;

    service.shut_down(Duration::from_secs(40));
    let out = Command::new(BIN)
        .args(["audit", "verify", "--data-dir"])
        .arg(&dir.data)
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

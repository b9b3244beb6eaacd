//! Robustness of `govtrust serve` (issue #12 item 4), each against the real
//! binary on loopback (run by tests/support/process.rs):
//!
//! * the homeserver is down at start: the service serves anyway
//!   (`/healthz` 200, `/readyz` 503 with a reason), queues what it must
//!   publish, and catches up when the homeserver comes back;
//! * SIGTERM during load: exit status 0, every request answered 2xx is
//!   persisted, none hangs; the access log names route templates and
//!   callers;
//! * the separate metrics listener with the expiry gauges;
//! * the TLS server certificate renewed while running: new connections get
//!   the new certificate, an established connection lives on.

#[path = "support/fake_device.rs"]
mod fake_device;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/process.rs"]
mod process;
#[path = "support/synapse.rs"]
mod synapse;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_device::{https_client, post_json, CallError, FakeDevice};
use harness::step;
use process::{free_port, DirectoryReader, ServiceDir};
use serde_json::{json, Value};
use synapse::Synapse;

const AGENCY_PW: &str = "agency-password";

/// `GET` answer: status and JSON body (`null` if not JSON).
async fn get_json(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = http.get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

// ----- 1: homeserver down at start -------------------------------------------

/// The service starts while its homeserver is down: `/healthz` 200,
/// `/readyz` 503 naming the homeserver; a revocation made meanwhile is
/// queued; when the homeserver is back the bot connects in the background,
/// `/readyz` turns 200 and the queued revocation notice lands in the
/// directory room. The first run also shows a clean SIGTERM exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_without_homeserver_and_catches_up() {
    let t0 = Instant::now();
    let mut hs = Synapse::new().await.expect("start Synapse");
    let user = hs
        .register("office.one", AGENCY_PW, false)
        .await
        .expect("register agency user");
    step(t0, "Synapse up");
    let setup = ServiceDir::with_homeserver("govtrust-robust-hs-", &hs, "").await;

    // First run, homeserver up: an authority, a client, one enrollment.
    let mut service = setup.spawn();
    service.wait_healthy().await;
    let public = https_client(&setup.root_pem(), None);
    let token = setup.operator_token();
    let record = govtrust_verifier::AuthorityRecord {
        id: "DE-ROBUST-0001".into(),
        name: "Bürgeramt Robustheit".into(),
        country: Some("DE".into()),
        ..Default::default()
    };
    let mtls = setup.add_agency(&record, hs.server_name()).await;
    let device = FakeDevice::create(
        &reqwest::Client::new(),
        &hs.base_url(),
        &user,
        AGENCY_PW,
        None,
    )
    .await
    .expect("fake device");
    let enrolled = device
        .enroll(&mtls, &setup.base, Some(10_000))
        .await
        .expect("enrollment");
    let serial = enrolled["serial"].as_str().expect("serial").to_owned();
    let state_key = enrolled["state_key"]
        .as_str()
        .expect("state key")
        .to_owned();
    let (status, ready) = get_json(&public, &format!("{}/readyz", setup.base)).await;
    assert_eq!(status, 200, "{ready}");
    service.shut_down(Duration::from_secs(40));
    step(t0, "first run: enrolled, SIGTERM exit 0");

    // The homeserver goes away; the service starts anyway.
    hs.stop();
    let mut service = setup.spawn();
    service.wait_healthy().await;
    let (status, ready) = get_json(&public, &format!("{}/readyz", setup.base)).await;
    assert_eq!(status, 503, "readyz with the homeserver down: {ready}");
    assert_eq!(ready["ready"], false, "{ready}");
    assert_eq!(ready["database"], "ok", "{ready}");
    let reason = ready["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("homeserver"),
        "reason names the homeserver: {ready}"
    );
    step(t0, "homeserver down: healthz 200, readyz 503");

    // A revocation while the homeserver is down: stored, its event queued.
    let answer = post_json(
        &public,
        &format!("{}/v1/certificates/{serial}/revoke", setup.base),
        Some(&token),
        &json!({"reason": "key_compromise"}),
    )
    .await
    .expect("revoke while the homeserver is down");
    assert!(answer.is_object(), "{answer}");
    let store = setup.open_store().await;
    assert!(
        store.outbox_depth().await.expect("outbox depth") > 0,
        "the revocation notice is queued"
    );

    // The homeserver returns: readiness follows, the queue drains.
    hs.start().await.expect("restart Synapse");
    step(t0, "Synapse back");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, ready) = get_json(&public, &format!("{}/readyz", setup.base)).await;
        if status == 200 {
            assert_eq!(ready["homeserver"], "ok", "{ready}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readyz still {status} 120 s after the homeserver returned: {ready}; log:\n{}",
            service.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    step(t0, "readyz 200");
    loop {
        if store.outbox_depth().await.expect("outbox depth") == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "outbox not drained; log:\n{}",
            service.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    store.close().await;
    let content = DirectoryReader::new(&hs)
        .await
        .attestation(&hs, &state_key)
        .await;
    assert_eq!(
        content["revoked"]["reason"], "key_compromise",
        "the queued revocation notice landed: {content}"
    );
    step(
        t0,
        "queued revocation published after the homeserver returned",
    );
    service.shut_down(Duration::from_secs(40));
}

// ----- 4 + 5: SIGTERM under load, access log ---------------------------------

/// What the load saw.
#[derive(Default)]
struct Tally {
    /// Authority IDs whose creation was answered 2xx.
    created: Mutex<Vec<String>>,
    /// Requests that got no answer within the client timeout.
    hung: Mutex<Vec<String>>,
    /// Other failures (refused connections after the listener closed).
    failed: Mutex<Vec<String>>,
}

/// SIGTERM while operators create authorities concurrently: the process
/// exits 0 within the grace period, every creation answered 2xx is in the
/// database, no request hangs; the access log has one line per request
/// with the route template, status, latency and caller, but no raw IDs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_load_drains_and_exits_zero() {
    let t0 = Instant::now();
    let setup = ServiceDir::new("govtrust-robust-term-", "shutdown_grace_secs = 10", "");
    let mut service = setup.spawn();
    service.wait_healthy().await;
    let token = Arc::new(setup.operator_token());
    let root_pem = setup.root_pem();

    // One read of a single authority, for the access log's path template.
    let http = https_client(&root_pem, None);
    post_json(
        &http,
        &format!("{}/v1/authorities", setup.base),
        Some(&token),
        &json!({"record": {"id": "DE-PROBE-0001", "name": "Probe"}, "servers": ["localhost"], "user_patterns": ["*"]}),
    )
    .await
    .expect("create probe authority");
    let response = http
        .get(format!("{}/v1/authorities/DE-PROBE-0001", setup.base))
        .bearer_auth(token.as_str())
        .send()
        .await
        .expect("GET authority");
    assert_eq!(response.status(), 200);

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..8)
        .map(|worker| {
            // A client per worker, with a timeout far beyond the grace
            // period: a request that hits it hung.
            let http = reqwest::Client::builder()
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(&root_pem).expect("root"))
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client");
            let (tally, stop, token, base) =
                (tally.clone(), stop.clone(), token.clone(), setup.base.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let id = format!("DE-LOAD-{worker:02}{n:05}");
                    let started = Instant::now();
                    let body = json!({"record": {"id": id, "name": "Lastprobe"}, "servers": ["localhost"], "user_patterns": ["*"]});
                    match post_json(&http, &format!("{base}/v1/authorities"), Some(&token), &body).await {
                        Ok(_) => tally.created.lock().expect("lock").push(id),
                        Err(CallError::Transport(e)) if e.contains("timed out") || started.elapsed() >= Duration::from_secs(29) => {
                            tally.hung.lock().expect("lock").push(format!("{id}: {e}"));
                        }
                        Err(e) => {
                            tally.failed.lock().expect("lock").push(format!("{id}: {e}"));
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            })
        })
        .collect();
    // Load for a moment, then SIGTERM while requests are in flight.
    let deadline = Instant::now() + Duration::from_secs(60);
    while tally.created.lock().expect("lock").len() < 100 {
        assert!(
            Instant::now() < deadline,
            "load too slow; log:\n{}",
            service.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let at_term = tally.created.lock().expect("lock").len();
    service.shut_down(Duration::from_secs(20));
    step(t0, &format!("SIGTERM after {at_term} creations: exit 0"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.expect("load task");
    }
    let hung = tally.hung.lock().expect("lock").clone();
    assert!(hung.is_empty(), "requests hung: {hung:?}");
    let failed = tally.failed.lock().expect("lock").clone();
    assert!(
        failed.iter().all(|f| f.contains("transport")),
        "only transport failures once the listener closed: {failed:?}"
    );
    assert!(
        !failed.is_empty(),
        "no request was refused: was the load still running at SIGTERM?"
    );

    // Everything answered 2xx is stored.
    let store = setup.open_store().await;
    let created = tally.created.lock().expect("lock").clone();
    for id in &created {
        assert!(
            store.get_authority(id).await.expect("store").is_some(),
            "authority {id} was answered 2xx but is not stored"
        );
    }
    store.close().await;
    step(
        t0,
        &format!("{} creations answered 2xx, all stored", created.len()),
    );

    // The access log: route templates, status, latency, caller; no raw IDs.
    let log = strip_ansi(&service.log());
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("govtrust::access"))
        .collect();
    assert!(
        access.len() > created.len(),
        "one access line per request ({} lines, {} creations)",
        access.len(),
        created.len()
    );
    let probe = access
        .iter()
        .find(|l| l.contains("method=GET") && l.contains("path=/v1/authorities/{id}"))
        .unwrap_or_else(|| {
            panic!(
                "no access line for GET /v1/authorities/{{id}}:\n{}",
                access.join("\n")
            )
        });
    assert!(probe.contains("status=200"), "{probe}");
    assert!(probe.contains("latency_ms="), "{probe}");
    assert!(probe.contains("caller=operator:admin"), "{probe}");
    assert!(
        access
            .iter()
            .all(|l| !l.contains("DE-PROBE-0001") && !l.contains("DE-LOAD-")),
        "the access log carries raw IDs"
    );
    assert!(
        access
            .iter()
            .any(|l| l.contains("path=/healthz") && l.contains("status=200")),
        "healthz in the access log"
    );
}

/// The log without terminal colour codes.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ … final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

// ----- 3 + 6 + 7: metrics listener, gauges, TLS renewal ------------------------

/// One Prometheus sample's value.
fn sample(metrics: &str, name_and_labels: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A TLS connection to the service trusting only its root; returns the
/// stream and the serial (hex) of the certificate it was served.
async fn tls_connect(
    addr: &str,
    root_pem: &[u8],
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    String,
) {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(root_pem) {
        roots.add(cert.expect("root PEM")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("server certificate")
        .clone();
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf).expect("parse");
    let serial = parsed
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (tls, serial)
}

/// `GET /healthz` over an established HTTP/1.1 keep-alive connection.
async fn healthz_on(tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("write request");
    let mut buf = vec![0u8; 4096];
    let mut answer = Vec::new();
    while !answer.ends_with(b"ok\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
            .await
            .expect("answer within 10 s")
            .expect("read answer");
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// `metrics_listen`: `/metrics` over plain HTTP there and no longer on the
/// agency port, with the expiry gauges; a 30-second TLS certificate is
/// renewed while running (the served serial changes, an established
/// connection keeps working), and the TLS gauge follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listener_gauges_and_tls_renewal() {
    let t0 = Instant::now();
    let metrics_port = free_port();
    let setup = ServiceDir::new(
        "govtrust-robust-metrics-",
        &format!("metrics_listen = \"127.0.0.1:{metrics_port}\""),
        "[tls]\nvalidity_secs = 30\nrenew_before_secs = 20\n",
    );
    let mut service = setup.spawn();
    service.wait_healthy().await;
    let root_pem = setup.root_pem();
    let addr = setup.base.trim_start_matches("https://").to_owned();

    // The established connection and the first certificate.
    let (mut old_conn, first_serial) = tls_connect(&addr, &root_pem).await;
    assert!(healthz_on(&mut old_conn).await.starts_with("HTTP/1.1 200"));

    // /metrics: not on the agency port, on the metrics listener.
    let https = https_client(&root_pem, None);
    let (status, _) = get_json(&https, &format!("{}/metrics", setup.base)).await;
    assert_eq!(
        status, 404,
        "/metrics must not be served on the agency port"
    );
    let plain = reqwest::Client::new();
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let scrape = || async {
        let r = plain.get(&metrics_url).send().await.expect("scrape");
        assert_eq!(r.status(), 200);
        r.text().await.expect("metrics text")
    };
    // The CRL is signed by the maintenance task shortly after start.
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let m = scrape().await;
        if sample(&m, "govtrust_crl_next_update_seconds{ca=\"issuing-1\"}").is_some() {
            break m;
        }
        assert!(Instant::now() < deadline, "no CRL gauge:\n{m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let root_left = sample(&metrics, "govtrust_ca_expiry_seconds{ca=\"root\"}")
        .unwrap_or_else(|| panic!("root expiry gauge:\n{metrics}"));
    assert!(root_left > 365.0 * 86_400.0, "root expiry {root_left}");
    let issuing_left = sample(&metrics, "govtrust_ca_expiry_seconds{ca=\"issuing-1\"}")
        .unwrap_or_else(|| panic!("issuing expiry gauge:\n{metrics}"));
    assert!(
        issuing_left > 0.0 && issuing_left <= root_left,
        "issuing expiry {issuing_left}"
    );
    let crl_left = sample(
        &metrics,
        "govtrust_crl_next_update_seconds{ca=\"issuing-1\"}",
    )
    .unwrap_or_default();
    assert!(
        crl_left > 3600.0 && crl_left <= 24.0 * 3600.0,
        "CRL nextUpdate in {crl_left}"
    );
    assert!(
        sample(&metrics, "govtrust_crl_next_update_seconds{ca=\"root\"}").is_some_and(|v| v > 0.0),
        "root CRL gauge:\n{metrics}"
    );
    let tls_left = sample(&metrics, "govtrust_tls_certificate_expiry_seconds")
        .unwrap_or_else(|| panic!("TLS expiry gauge:\n{metrics}"));
    assert!(
        tls_left > 0.0 && tls_left <= 30.0,
        "TLS certificate expires in {tls_left}"
    );
    // The CRL (and the operator token) were stored by the writer: audited
    // commits, each carrying at least one change.
    let commits = sample(&metrics, "govtrust_store_commits_total{batch=\"audited\"}")
        .unwrap_or_else(|| panic!("store commits:\n{metrics}"));
    let changes = sample(
        &metrics,
        "govtrust_store_committed_changes_total{batch=\"audited\"}",
    )
    .unwrap_or_default();
    assert!(
        commits >= 1.0 && changes >= commits,
        "{commits} audited commits carrying {changes} changes"
    );
    assert!(
        sample(
            &metrics,
            "govtrust_store_commits_total{batch=\"challenges\"}"
        )
        .is_some(),
        "challenge commits series:\n{metrics}"
    );
    step(t0, "metrics listener and gauges");

    // Renewal without a restart: a new handshake gets a new certificate.
    let deadline = Instant::now() + Duration::from_secs(45);
    let second_serial = loop {
        let (_, serial) = tls_connect(&addr, &root_pem).await;
        if serial != first_serial {
            break serial;
        }
        assert!(
            Instant::now() < deadline,
            "TLS certificate not renewed within 45 s; log:\n{}",
            service.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    step(
        t0,
        &format!("TLS certificate renewed: {first_serial} -> {second_serial}"),
    );
    assert!(
        healthz_on(&mut old_conn).await.starts_with("HTTP/1.1 200"),
        "the connection made before the renewal lives on"
    );
    let metrics = scrape().await;
    assert!(
        sample(&metrics, "govtrust_tls_certificate_renewals_total").is_some_and(|v| v >= 1.0),
        "renewal counter:\n{metrics}"
    );
    let renewed_left = sample(&metrics, "govtrust_tls_certificate_expiry_seconds").unwrap_or(0.0);
    assert!(
        renewed_left > 0.0,
        "TLS expiry gauge after renewal: {renewed_left}"
    );
    assert!(
        service.is_running(),
        "the process did not restart: {}",
        service.log_tail()
    );
    service.shut_down(Duration::from_secs(20));
}

//! Test helper: the enrollment service in-process, on a real TLS listener,
//! connected to a real homeserver.
//!
//! ```ignore
//! #[path = "support/service.rs"]
//! mod service;
//!
//! let svc = service::TestService::start(&hs.base_url(), &bot_id, BOT_PW, "localhost", |_| {}).await;
//! let agency = svc.add_authority(service::record("DE-0001"), &["localhost"], &["office.*"]).await;
//! let client = svc.service_client(&agency);
//! ```
//!
//! Uses `govtrust_service::build` (so the bot logs in and makes the
//! directory room) and `serve_on` on `127.0.0.1:0`; the data directory is
//! a temporary directory with SQLite and a development CA for one Matrix
//! server name.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use govtrust_service::agency::ServiceClient;
use govtrust_service::config::{Config, MatrixConfig};
use govtrust_service::matrix::Bot;
use govtrust_service::state::AppState;
use govtrust_service::storage::{AuditEntry, Authority, AuthorityStatus};
use govtrust_verifier::{AuthorityRecord, Crl, CrlSet};
use reqwest::StatusCode;
use serde_json::Value;

/// A running in-process service.
pub struct TestService {
    /// The service state (store, PKI, bot, config).
    pub svc: AppState,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Base URL, `https://127.0.0.1:<port>` (no trailing slash).
    pub base: String,
    /// The root its TLS certificate (and every attestation) chains to, PEM.
    pub root_pem: String,
    /// The data directory (SQLite, CA, TLS key, Matrix store).
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// An authority registered with the service, with an enrollment-client
/// certificate (EKU ARC.3) and key for it.
#[derive(Clone)]
pub struct Agency {
    /// The authority record (its ID is in the client certificate).
    pub record: AuthorityRecord,
    /// Client certificate chain and PKCS#8 key, PEM (for reqwest).
    pub identity_pem: String,
    /// Serial of the client certificate, hex.
    pub serial: String,
}

/// A minimal valid authority record.
pub fn record(id: &str, name: &str) -> AuthorityRecord {
    AuthorityRecord {
        id: id.to_owned(),
        name: name.to_owned(),
        street: Some("Donaustraße 29".into()),
        postal_code: Some("12043".into()),
        locality: Some("Berlin".into()),
        country: Some("DE".into()),
        ..Default::default()
    }
}

fn now_ms() -> i64 {
    govtrust_service::clock::now_ms()
}

impl TestService {
    /// Builds and starts the service against the homeserver at
    /// `homeserver` with bot account `bot_user`/`bot_password`; the
    /// development issuing CA may certify `server_name`. `tweak` adjusts
    /// the configuration before the service is built.
    pub async fn start(
        homeserver: &str,
        bot_user: &str,
        bot_password: &str,
        server_name: &str,
        tweak: impl FnOnce(&mut Config),
    ) -> TestService {
        let dir = tempfile::Builder::new()
            .prefix("govtrust-service-")
            .tempdir()
            .expect("temp dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let base = format!("https://{addr}");
        let mut config = Config {
            listen: addr,
            data_dir: dir.path().to_owned(),
            public_url: Some(base.clone()),
            matrix: Some(MatrixConfig {
                homeserver_url: homeserver.parse().expect("homeserver URL"),
                user_id: bot_user.to_owned(),
                password: Some(bot_password.to_owned()),
                directory_alias: "govtrust-directory".into(),
            }),
            ..Config::default()
        };
        config.ca.dev_servers = vec![server_name.to_owned()];
        tweak(&mut config);
        config.validate().expect("valid configuration");
        let svc = govtrust_service::build(config)
            .await
            .expect("building the service");
        let root_pem = govtrust_service::pemfile::cert_pem(svc.pki.root());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(govtrust_service::serve_on(
            svc.clone(),
            listener,
            async move {
                let _ = rx.await;
            },
        ));
        let service = TestService {
            svc,
            addr,
            base,
            root_pem,
            dir,
            shutdown: Some(tx),
            task,
        };
        service.wait_healthy().await;
        service
    }

    async fn wait_healthy(&self) {
        let http = self.public_client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{}/healthz", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the service did not answer /healthz"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the accept loop (background tasks keep running until the
    /// runtime ends).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// The service's Matrix bot.
    pub fn bot(&self) -> &Arc<Bot> {
        self.svc.publisher.get().expect("the service has a bot")
    }

    /// The bot's user ID.
    pub fn bot_user_id(&self) -> matrix_sdk::ruma::OwnedUserId {
        self.bot().user_id().to_owned()
    }

    /// The first operator token (created on first call).
    pub async fn operator_token(&self) -> String {
        govtrust_service::ensure_operator_token(&self.svc)
            .await
            .expect("operator token");
        std::fs::read_to_string(self.svc.config.data_dir.join("operator-token"))
            .expect("operator-token file")
            .trim()
            .to_owned()
    }

    /// Stores an active authority and issues an enrollment-client
    /// certificate for it.
    pub async fn add_authority(
        &self,
        record: AuthorityRecord,
        servers: &[&str],
        user_patterns: &[&str],
    ) -> Agency {
        let now = now_ms();
        self.svc
            .store
            .insert_authority(
                Authority {
                    record: record.clone(),
                    servers: servers.iter().map(|s| (*s).to_owned()).collect(),
                    user_patterns: user_patterns.iter().map(|s| (*s).to_owned()).collect(),
                    status: AuthorityStatus::Active,
                    contact: None,
                    created_at: now,
                    updated_at: now,
                },
                AuditEntry::new(
                    "operator:test",
                    "authority.created",
                    record.id.clone(),
                    serde_json::to_value(&record).expect("record JSON"),
                ),
            )
            .await
            .expect("insert authority");
        self.enrollment_client(&record)
    }

    /// An enrollment-client certificate (EKU ARC.3) for `record`, issued
    /// by the service's issuing CA for a fresh P-256 key.
    pub fn enrollment_client(&self, record: &AuthorityRecord) -> Agency {
        let key = FileSigner::generate(KeyAlgorithm::EcdsaP256).expect("client key");
        let issued = self
            .svc
            .pki
            .issue_enrollment_client(record, key.spki_der().to_vec(), Duration::from_secs(3600))
            .expect("enrollment-client certificate");
        let identity_pem = govtrust_service::pemfile::client_identity(
            &govtrust_service::pemfile::chain_pem(&issued.chain),
            &key,
        )
        .expect("client identity")
        .as_str()
        .to_owned();
        Agency {
            record: record.clone(),
            identity_pem,
            serial: issued.serial_hex(),
        }
    }

    /// The agency library's client for `agency`.
    pub fn service_client(&self, agency: &Agency) -> ServiceClient {
        ServiceClient::new(
            format!("{}/", self.base).parse().expect("base URL"),
            self.root_pem.as_bytes(),
            agency.identity_pem.as_bytes(),
        )
        .expect("service client")
    }

    /// A raw HTTPS client presenting `agency`'s certificate.
    pub fn mtls_client(&self, agency: &Agency) -> reqwest::Client {
        self.client_with_identity(Some(agency.identity_pem.as_bytes()))
    }

    /// A raw HTTPS client presenting `identity` (or no certificate).
    pub fn client_with_identity(&self, identity: Option<&[u8]>) -> reqwest::Client {
        super::fake_device::https_client(self.root_pem.as_bytes(), identity)
    }

    /// A raw HTTPS client without a client certificate.
    pub fn public_client(&self) -> reqwest::Client {
        self.client_with_identity(None)
    }

    /// A raw request; returns the status and the JSON body (`null` if the
    /// body is not JSON).
    pub async fn request(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> (StatusCode, Value) {
        let mut request = http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some((content_type, bytes)) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e:#}"));
        let status = response.status();
        let bytes = response.bytes().await.expect("response body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// POSTs JSON; returns the status and the JSON answer.
    pub async fn post(
        &self,
        http: &reqwest::Client,
        path: &str,
        body: &Value,
    ) -> (StatusCode, Value) {
        self.request(
            http,
            reqwest::Method::POST,
            path,
            None,
            Some(("application/json", body.to_string().into_bytes())),
        )
        .await
    }

    /// The CRLs a client would fetch: the issuing CA's and the root's,
    /// from the service's public endpoints.
    pub async fn fetch_crls(&self) -> CrlSet {
        let http = self.public_client();
        let mut crls = CrlSet::new();
        for name in [
            format!("{}.crl", self.svc.pki.issuing_id()),
            "root.crl".into(),
        ] {
            let response = http
                .get(format!("{}/v1/crl/{name}", self.base))
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET /v1/crl/{name}: {e:#}"));
            assert_eq!(response.status(), StatusCode::OK, "GET /v1/crl/{name}");
            let der = response.bytes().await.expect("CRL body");
            crls.push(Crl::from_der(der.to_vec()).unwrap_or_else(|e| panic!("CRL {name}: {e}")));
        }
        crls
    }
}

impl Drop for TestService {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The `errcode` of an error body, or a panic naming what came instead.
pub fn errcode(status: StatusCode, body: &Value) -> String {
    assert!(
        !status.is_success(),
        "expected an error, got {status}: {body}"
    );
    body["errcode"]
        .as_str()
        .unwrap_or_else(|| panic!("error without errcode: {status} {body}"))
        .to_owned()
}

/// Asserts an error answer with `code`, and that its HTTP status is the
/// one the API documents for that code (`ERRCODES`).
pub fn assert_errcode(answer: &(StatusCode, Value), code: &str) {
    let (status, body) = answer;
    assert_eq!(errcode(*status, body), code, "{status} {body}");
    let documented = govtrust_service::error::ERRCODES
        .iter()
        .find(|(c, _)| *c == code)
        .unwrap_or_else(|| panic!("{code} is not in ERRCODES"))
        .1;
    assert_eq!(status.as_u16(), documented, "HTTP status of {code}: {body}");
}

impl TestService {
    /// The service's active issuing CA with its key, loaded from the data
    /// directory (the same key the service signs with): for certificates
    /// the API would not issue, such as one that has already expired, or
    /// CRLs with chosen dates.
    pub fn issuing_ca(&self) -> govtrust_pki::IssuingCa<Box<dyn Signer>> {
        govtrust_service::cadir::CaDir::open(&self.svc.config.ca_dir())
            .expect("CA directory")
            .issuing_ca(self.svc.pki.issuing_id())
            .expect("issuing CA")
    }

    /// URL of the active issuing CA's CRL (the distribution point in every
    /// attestation the service issues).
    pub fn issuing_crl_url(&self) -> String {
        format!("{}/v1/crl/{}.crl", self.base, self.svc.pki.issuing_id())
    }

    /// `POST /v1/certificates/{serial}/revoke` with the operator token;
    /// returns the status and the JSON answer.
    pub async fn revoke_as_operator(&self, serial: &str, reason: &str) -> (StatusCode, Value) {
        let token = self.operator_token().await;
        self.request(
            &self.public_client(),
            reqwest::Method::POST,
            &format!("/v1/certificates/{serial}/revoke"),
            Some(&token),
            Some((
                "application/json",
                serde_json::json!({ "reason": reason })
                    .to_string()
                    .into_bytes(),
            )),
        )
        .await
    }
}

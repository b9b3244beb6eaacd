//! Operator roles and tokens, certificate listing and the audit log,
//! against the real service over HTTPS (service mode: no homeserver).
//!
//! The heart is one table: every operator endpoint with the roles that may
//! call it. Each role (and a two-role token) calls every endpoint; the
//! roles the table admits must get through (2xx), all others must get
//! `403 GT_FORBIDDEN`. The table is also compared with the service's own
//! (`api::OPERATOR_ENDPOINTS`) and with the OpenAPI document it serves
//! (`x-govtrust-roles`). Then: expired, revoked and rotated-away tokens get
//! `401 GT_UNAUTHORIZED`, token changes land in the audit chain, and
//! `GET /v1/certificates` / `GET /v1/audit/log` filter and page correctly.

use std::collections::BTreeSet;
use std::time::Duration;

use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use govtrust_service::clock::now_ms;
use govtrust_service::config::Config;
use govtrust_service::state::AppState;
use govtrust_service::storage::{
    AuditEntry, CertificateKind, NewCertificate, OperatorRole, OperatorToken,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The service under test.
struct Svc {
    state: AppState,
    base: String,
    root_pem: String,
    _dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Svc {
    async fn start() -> Svc {
        let dir = tempfile::Builder::new()
            .prefix("govtrust-roles-")
            .tempdir()
            .expect("temp dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("https://{addr}");
        let mut config = Config {
            listen: addr,
            data_dir: dir.path().to_owned(),
            public_url: Some(base.clone()),
            matrix: None,
            ..Config::default()
        };
        config.ca.dev_servers = vec!["localhost".to_owned()];
        config.validate().expect("config");
        let state = govtrust_service::build(config).await.expect("build");
        govtrust_service::ensure_operator_token(&state)
            .await
            .expect("first token");
        let root_pem = govtrust_service::pemfile::cert_pem(state.pki.root());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(govtrust_service::serve_on(
            state.clone(),
            listener,
            async move {
                let _ = rx.await;
            },
        ));
        let svc = Svc {
            state,
            base,
            root_pem,
            _dir: dir,
            _shutdown: tx,
        };
        for _ in 0..300 {
            if let Ok(r) = svc.http(None).get(svc.url("/healthz")).send().await {
                if r.status().is_success() {
                    return svc;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the service did not come up");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn http(&self, identity: Option<&str>) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.root_pem.as_bytes()).expect("root"),
            )
            .timeout(Duration::from_secs(30));
        if let Some(id) = identity {
            b = b.identity(reqwest::Identity::from_pem(id.as_bytes()).expect("identity"));
        }
        b.build().expect("client")
    }

    fn admin_secret(&self) -> String {
        std::fs::read_to_string(self.state.config.data_dir.join("operator-token"))
            .expect("operator-token")
            .trim()
            .to_owned()
    }

    /// One request; status and JSON body (`null` if none).
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with(&self.http(None), method, path, token, body)
            .await
    }

    async fn call_with(
        &self,
        http: &reqwest::Client,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = http.request(method.clone(), self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A call that must succeed; its body.
    async fn ok(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call(method.clone(), path, Some(token), body).await;
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value
    }

    /// Creates a token through the API; its secret.
    async fn token(&self, admin: &str, name: &str, roles: &[&str]) -> String {
        let v = self
            .ok(
                Method::POST,
                "/v1/tokens",
                admin,
                Some(json!({ "name": name, "roles": roles })),
            )
            .await;
        v["secret"].as_str().expect("secret").to_owned()
    }
}

fn assert_err(answer: &(StatusCode, Value), status: StatusCode, code: &str, what: &str) {
    assert_eq!(answer.0, status, "{what}: {}", answer.1);
    assert_eq!(answer.1["errcode"], code, "{what}: {}", answer.1);
}

fn authority_input(id: &str) -> Value {
    json!({
        "record": {"id": id, "name": "Bürgeramt Test", "locality": "Berlin", "country": "DE"},
        "servers": ["localhost"],
        "user_patterns": ["office.*"],
    })
}

fn public_key_pem() -> String {
    let key = FileSigner::generate(KeyAlgorithm::EcdsaP256).expect("key");
    govtrust_service::pemfile::encode("PUBLIC KEY", key.spki_der())
}

/// One operator endpoint of the test's table: how to call it as `role`
/// (fixtures are per role, so that every admitted call succeeds), and the
/// roles that may.
struct Endpoint {
    method: &'static str,
    /// The path template as in the OpenAPI document.
    template: &'static str,
    roles: &'static [&'static str],
}

/// The expected permission table (written out here on purpose: the
/// service's own table must agree with it).
const TABLE: &[Endpoint] = &[
    Endpoint {
        method: "get",
        template: "/v1/certificates",
        roles: &["admin", "revoker", "auditor"],
    },
    Endpoint {
        method: "get",
        template: "/v1/certificates/{serial}",
        roles: &["admin", "revoker", "auditor"],
    },
    Endpoint {
        method: "post",
        template: "/v1/certificates/{serial}/revoke",
        roles: &["admin", "revoker"],
    },
    Endpoint {
        method: "get",
        template: "/v1/authorities",
        roles: &["admin", "registrar", "auditor"],
    },
    Endpoint {
        method: "post",
        template: "/v1/authorities",
        roles: &["admin", "registrar"],
    },
    Endpoint {
        method: "get",
        template: "/v1/authorities/{id}",
        roles: &["admin", "registrar", "auditor"],
    },
    Endpoint {
        method: "put",
        template: "/v1/authorities/{id}",
        roles: &["admin", "registrar"],
    },
    Endpoint {
        method: "post",
        template: "/v1/authorities/{id}/suspend",
        roles: &["admin", "registrar"],
    },
    Endpoint {
        method: "post",
        template: "/v1/authorities/{id}/activate",
        roles: &["admin", "registrar"],
    },
    Endpoint {
        method: "post",
        template: "/v1/authorities/{id}/enrollment-clients",
        roles: &["admin", "registrar"],
    },
    Endpoint {
        method: "get",
        template: "/v1/tokens",
        roles: &["admin"],
    },
    Endpoint {
        method: "post",
        template: "/v1/tokens",
        roles: &["admin"],
    },
    Endpoint {
        method: "post",
        template: "/v1/tokens/{name}/rotate",
        roles: &["admin"],
    },
    Endpoint {
        method: "post",
        template: "/v1/tokens/{name}/revoke",
        roles: &["admin"],
    },
    Endpoint {
        method: "get",
        template: "/v1/audit/log",
        roles: &["admin", "auditor"],
    },
    Endpoint {
        method: "get",
        template: "/v1/audit/verify",
        roles: &["admin", "auditor"],
    },
];

/// The concrete request for `e` made by the token `who`.
fn request_for(e: &Endpoint, who: &str, serial: &str) -> (Method, String, Option<Value>) {
    let authority = format!("DE-ROLE-{}", who.to_ascii_uppercase());
    let method = Method::from_bytes(e.method.to_ascii_uppercase().as_bytes()).expect("method");
    let path = e
        .template
        .replace("{serial}", serial)
        .replace("{id}", &authority)
        .replace("{name}", &format!("victim-{who}"));
    let body = match (e.method, e.template) {
        ("post", "/v1/certificates/{serial}/revoke") => Some(json!({"reason": "superseded"})),
        ("post", "/v1/authorities") => Some(authority_input(&format!(
            "DE-NEW-{}",
            who.to_ascii_uppercase()
        ))),
        ("put", "/v1/authorities/{id}") => Some(authority_input(&authority)),
        ("post", "/v1/authorities/{id}/enrollment-clients") => {
            Some(json!({"public_key_pem": public_key_pem(), "lifetime_days": 30}))
        }
        ("post", "/v1/tokens") => {
            Some(json!({"name": format!("made-by-{who}"), "roles": ["auditor"]}))
        }
        _ => None,
    };
    (method, path, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_is_admitted_exactly_where_the_table_says() {
    let svc = Svc::start().await;
    let admin = svc.admin_secret();

    // The service's table and its OpenAPI document agree with ours.
    let ours: BTreeSet<(String, String, Vec<String>)> = TABLE
        .iter()
        .map(|e| {
            (
                e.method.to_owned(),
                e.template.to_owned(),
                e.roles.iter().map(|r| (*r).to_owned()).collect(),
            )
        })
        .collect();
    let theirs: BTreeSet<(String, String, Vec<String>)> = govtrust_service::api::OPERATOR_ENDPOINTS
        .iter()
        .map(|(m, p, perm, _)| {
            (
                (*m).to_owned(),
                (*p).to_owned(),
                perm.roles().iter().map(|r| r.as_str().to_owned()).collect(),
            )
        })
        .collect();
    assert_eq!(ours, theirs, "the permission table changed");
    let (status, doc) = svc.call(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    for e in TABLE {
        let op = &doc["paths"][e.template][e.method];
        assert_eq!(
            op["x-govtrust-roles"],
            json!(e.roles),
            "{} {}",
            e.method,
            e.template
        );
        let bearer = op["security"]
            .as_array()
            .and_then(|s| s.iter().find_map(|r| r.get("bearer")))
            .unwrap_or_else(|| panic!("{} {} has no bearer requirement", e.method, e.template));
        assert_eq!(bearer, &json!(e.roles), "{} {}", e.method, e.template);
    }

    // One token per role, plus one with two roles.
    let mut tokens: Vec<(String, Vec<&str>, String)> = Vec::new();
    for role in ["admin", "registrar", "revoker", "auditor"] {
        let name = format!("{role}-token");
        let secret = if role == "admin" {
            svc.token(&admin, "second-admin", &["admin"]).await
        } else {
            svc.token(&admin, &name, &[role]).await
        };
        tokens.push((role.to_owned(), vec![role], secret));
    }
    let both = svc
        .token(&admin, "registrar-revoker", &["revoker", "registrar"])
        .await;
    tokens.push(("both".to_owned(), vec!["registrar", "revoker"], both));

    // Fixtures every caller needs: an authority with a certificate, and
    // for each caller its own authority (to create) and token (to rotate
    // and revoke).
    svc.ok(
        Method::POST,
        "/v1/authorities",
        &admin,
        Some(authority_input("DE-ROLE-BASE")),
    )
    .await;
    let issued = svc
        .ok(
            Method::POST,
            "/v1/authorities/DE-ROLE-BASE/enrollment-clients",
            &admin,
            Some(json!({"public_key_pem": public_key_pem()})),
        )
        .await;
    let serial = issued["serial"].as_str().expect("serial").to_owned();
    for (who, _, _) in &tokens {
        svc.token(&admin, &format!("victim-{who}"), &["auditor"])
            .await;
        let id = format!("DE-ROLE-{}", who.to_ascii_uppercase());
        svc.ok(
            Method::POST,
            "/v1/authorities",
            &admin,
            Some(authority_input(&id)),
        )
        .await;
    }

    let mut checked = 0;
    for (who, roles, secret) in &tokens {
        for e in TABLE {
            let (method, path, body) = request_for(e, who, &serial);
            let answer = svc.call(method.clone(), &path, Some(secret), body).await;
            let admitted = roles.iter().any(|r| e.roles.contains(r));
            if admitted {
                assert!(
                    answer.0.is_success(),
                    "{who} must be admitted to {method} {path}: {} {}",
                    answer.0,
                    answer.1
                );
            } else {
                assert_err(
                    &answer,
                    StatusCode::FORBIDDEN,
                    "GT_FORBIDDEN",
                    &format!("{who} on {method} {path}"),
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, TABLE.len() * tokens.len());

    // Without a token, every operator-only endpoint is 401, not 403.
    for e in TABLE
        .iter()
        .filter(|e| !e.template.starts_with("/v1/certificates"))
    {
        let (method, path, body) = request_for(e, "nobody", &serial);
        let answer = svc.call(method.clone(), &path, None, body).await;
        assert_err(
            &answer,
            StatusCode::UNAUTHORIZED,
            "GT_UNAUTHORIZED",
            &format!("{method} {path}"),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_revoked_and_rotated_away_tokens_are_refused() {
    let svc = Svc::start().await;
    let admin = svc.admin_secret();
    let probe = |secret: String| {
        let svc = &svc;
        async move {
            svc.call(Method::GET, "/v1/audit/verify", Some(&secret), None)
                .await
        }
    };

    // The first-run token was migrated/created as admin.
    let list = svc.ok(Method::GET, "/v1/tokens", &admin, None).await;
    assert_eq!(list[0]["name"], "admin");
    assert_eq!(list[0]["roles"], json!(["admin"]));
    assert_eq!(list[0]["state"], "active");

    // Unknown, malformed, missing.
    assert_err(
        &probe("nonsense".into()).await,
        StatusCode::UNAUTHORIZED,
        "GT_UNAUTHORIZED",
        "unknown",
    );
    let missing = svc.call(Method::GET, "/v1/audit/verify", None, None).await;
    assert_err(
        &missing,
        StatusCode::UNAUTHORIZED,
        "GT_UNAUTHORIZED",
        "missing",
    );

    // Expired: stored with an expiry in the past (the API refuses to make one).
    let expired_secret = "expired-secret-for-the-test";
    let mut expired = OperatorToken::new(
        "old-auditor",
        govtrust_service::auth::token_hash(expired_secret),
        vec![OperatorRole::Auditor],
        now_ms() - 10_000,
    );
    expired.expires_at = Some(now_ms() - 1);
    svc.state
        .store
        .insert_operator_token(
            expired,
            AuditEntry::new("system", "operator.token_created", "old-auditor", json!({})),
        )
        .await
        .expect("insert expired");
    let answer = probe(expired_secret.into()).await;
    assert_err(
        &answer,
        StatusCode::UNAUTHORIZED,
        "GT_UNAUTHORIZED",
        "expired",
    );
    assert!(
        answer.1["error"].as_str().unwrap_or("").contains("expired"),
        "{}",
        answer.1
    );

    // A future expiry works until then; one in the past is refused at creation.
    let (status, created) = svc
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&admin),
            Some(
                json!({"name": "later", "roles": ["auditor"], "expires_at": now_ms() + 3_600_000}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(
        probe(created["secret"].as_str().expect("secret").into())
            .await
            .0,
        StatusCode::OK
    );
    let past = svc
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&admin),
            Some(json!({"name": "past", "roles": ["auditor"], "expires_at": now_ms() - 1})),
        )
        .await;
    assert_err(
        &past,
        StatusCode::BAD_REQUEST,
        "GT_INVALID_PARAM",
        "past expiry",
    );

    // Input validation.
    for (body, what) in [
        (json!({"name": "Bad Name", "roles": ["auditor"]}), "name"),
        (json!({"name": "x", "roles": []}), "no roles"),
        (json!({"name": "x", "roles": ["root"]}), "unknown role"),
        (
            json!({"name": "x", "roles": ["auditor"], "extra": 1}),
            "unknown field",
        ),
    ] {
        let answer = svc
            .call(Method::POST, "/v1/tokens", Some(&admin), Some(body))
            .await;
        assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{what}: {}", answer.1);
    }
    let dup = svc
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&admin),
            Some(json!({"name": "later", "roles": ["auditor"]})),
        )
        .await;
    assert_err(&dup, StatusCode::CONFLICT, "GT_CONFLICT", "duplicate name");

    // Rotated away: the old secret is refused at once, the new one works.
    let old = svc.token(&admin, "rotating", &["auditor"]).await;
    assert_eq!(probe(old.clone()).await.0, StatusCode::OK);
    let rotated = svc
        .ok(Method::POST, "/v1/tokens/rotating/rotate", &admin, None)
        .await;
    let new = rotated["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new, old);
    assert!(rotated["token"]["rotated_at"].is_i64(), "{rotated}");
    assert_err(
        &probe(old).await,
        StatusCode::UNAUTHORIZED,
        "GT_UNAUTHORIZED",
        "rotated away",
    );
    assert_eq!(probe(new.clone()).await.0, StatusCode::OK);

    // Revoked: refused, listed as revoked, cannot be rotated back.
    let revoked = svc
        .ok(Method::POST, "/v1/tokens/rotating/revoke", &admin, None)
        .await;
    assert_eq!(revoked["state"], "revoked");
    let answer = probe(new).await;
    assert_err(
        &answer,
        StatusCode::UNAUTHORIZED,
        "GT_UNAUTHORIZED",
        "revoked",
    );
    assert!(
        answer.1["error"].as_str().unwrap_or("").contains("revoked"),
        "{}",
        answer.1
    );
    let again = svc
        .call(
            Method::POST,
            "/v1/tokens/rotating/rotate",
            Some(&admin),
            None,
        )
        .await;
    assert_err(
        &again,
        StatusCode::NOT_FOUND,
        "GT_NOT_FOUND",
        "rotate revoked",
    );
    let none = svc
        .call(Method::POST, "/v1/tokens/nobody/revoke", Some(&admin), None)
        .await;
    assert_err(
        &none,
        StatusCode::NOT_FOUND,
        "GT_NOT_FOUND",
        "revoke unknown",
    );

    // The last active admin token cannot be revoked.
    let last = svc
        .call(Method::POST, "/v1/tokens/admin/revoke", Some(&admin), None)
        .await;
    assert_err(&last, StatusCode::CONFLICT, "GT_CONFLICT", "last admin");

    // Every token change is in the audit chain, without the secrets, and
    // the chain verifies.
    let log = svc
        .ok(Method::GET, "/v1/audit/log?limit=1000", &admin, None)
        .await;
    let entries = log["entries"].as_array().expect("entries");
    let actions: Vec<(String, String)> = entries
        .iter()
        .filter(|e| e["subject"] == "rotating")
        .map(|e| {
            (
                e["action"].as_str().unwrap_or("").to_owned(),
                e["actor"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            (
                "operator.token_created".to_owned(),
                "operator:admin".to_owned()
            ),
            (
                "operator.token_rotated".to_owned(),
                "operator:admin".to_owned()
            ),
            (
                "operator.token_revoked".to_owned(),
                "operator:admin".to_owned()
            ),
        ]
    );
    let text = log.to_string();
    assert!(!text.contains(&admin), "a secret leaked into the audit log");
    let verify = svc.ok(Method::GET, "/v1/audit/verify", &admin, None).await;
    assert_eq!(verify["first_broken"], Value::Null, "{verify}");
}

fn fake_cert(
    serial: &str,
    authority: &str,
    user: &str,
    created_at: i64,
    not_after: i64,
) -> NewCertificate {
    NewCertificate {
        serial: serial.to_owned(),
        issuing_ca: "issuing-1".to_owned(),
        kind: CertificateKind::Device,
        user_id: Some(user.to_owned()),
        device_id: Some(format!("DEV{serial}")),
        key: "AAAA".to_owned(),
        authority_id: authority.to_owned(),
        not_before: created_at,
        not_after,
        der: vec![0x30, 0x00],
        renewed_from: None,
        created_at,
    }
}

/// Follows `next_cursor` to the end; the serials in order.
async fn all_pages(svc: &Svc, token: &str, query: &str) -> Vec<String> {
    let mut serials = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/certificates?limit=2{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = svc.ok(Method::GET, &path, token, None).await;
        for item in page["items"].as_array().expect("items") {
            serials.push(item["serial"].as_str().expect("serial").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return serials,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_and_audit_log_filter_and_page() {
    let svc = Svc::start().await;
    let admin = svc.admin_secret();
    let auditor = svc.token(&admin, "auditor", &["auditor"]).await;
    for id in ["DE-LIST-A", "DE-LIST-B"] {
        svc.ok(
            Method::POST,
            "/v1/authorities",
            &admin,
            Some(authority_input(id)),
        )
        .await;
    }
    let now = now_ms();
    let day = 86_400_000;
    let store = &svc.state.store;
    let audit = |s: &str| AuditEntry::new("system", "certificate.issued", s, json!({}));
    // (serial, authority, user, created, not_after)
    let rows = [
        (
            "0a01",
            "DE-LIST-A",
            "@office.a:localhost",
            now - 50 * day,
            now - 20 * day,
        ), // expired
        (
            "0a02",
            "DE-LIST-A",
            "@office.a:localhost",
            now - 40 * day,
            now + 10 * day,
        ), // live
        (
            "0b01",
            "DE-LIST-B",
            "@office.b:localhost",
            now - 40 * day,
            now + 30 * day,
        ), // live, same time as 0a02
        (
            "0b02",
            "DE-LIST-B",
            "@office.b:localhost",
            now - 30 * day,
            now + 5 * day,
        ), // revoked below
        (
            "0a03",
            "DE-LIST-A",
            "@office.c:localhost",
            now - 20 * day,
            now + 60 * day,
        ), // superseded below
    ];
    for (serial, authority, user, created, not_after) in rows {
        store
            .insert_certificate(
                fake_cert(serial, authority, user, created, not_after),
                None,
                audit(serial),
            )
            .await
            .expect("insert");
    }
    let mut renewal = fake_cert(
        "0a04",
        "DE-LIST-A",
        "@office.c:localhost",
        now - 10 * day,
        now + 90 * day,
    );
    renewal.renewed_from = Some("0a03".into());
    store
        .insert_certificate(renewal, None, audit("0a04"))
        .await
        .expect("renewal");
    svc.ok(
        Method::POST,
        "/v1/certificates/0b02/revoke",
        &admin,
        Some(json!({"reason": "key_compromise"})),
    )
    .await;

    // Issuance order, across pages of two, (created_at, serial) breaking ties.
    let all = all_pages(&svc, &auditor, "").await;
    assert_eq!(all, ["0a01", "0a02", "0b01", "0b02", "0a03", "0a04"]);

    // Filters.
    let cases = [
        ("&authority=DE-LIST-A", vec!["0a01", "0a02", "0a03", "0a04"]),
        ("&user=%40office.b%3Alocalhost", vec!["0b01", "0b02"]),
        ("&status=live", vec!["0a02", "0b01", "0a04"]),
        ("&status=revoked", vec!["0b02"]),
        ("&status=expired", vec!["0a01"]),
        ("&status=superseded", vec!["0a03"]),
        (
            &*format!("&expiring_before={}", now + 20 * day),
            vec!["0a01", "0a02", "0b02"],
        ),
        (
            &*format!(
                "&authority=DE-LIST-A&status=live&expiring_before={}",
                now + 100 * day
            ),
            vec!["0a02", "0a04"],
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(all_pages(&svc, &auditor, query).await, expected, "{query}");
    }
    let one = svc
        .ok(
            Method::GET,
            "/v1/certificates?status=revoked",
            &auditor,
            None,
        )
        .await;
    assert_eq!(one["items"][0]["state"], "revoked");
    assert_eq!(one["items"][0]["authority_id"], "DE-LIST-B");

    // Stable under inserts: a certificate issued while paging shows up at
    // the end, nothing is skipped or repeated.
    let first = svc
        .ok(Method::GET, "/v1/certificates?limit=3", &auditor, None)
        .await;
    store
        .insert_certificate(
            fake_cert(
                "0c01",
                "DE-LIST-B",
                "@office.b:localhost",
                now_ms(),
                now + day,
            ),
            None,
            audit("0c01"),
        )
        .await
        .expect("insert while paging");
    let cursor = first["next_cursor"].as_str().expect("cursor");
    let rest = svc
        .ok(
            Method::GET,
            &format!("/v1/certificates?limit=10&cursor={cursor}"),
            &auditor,
            None,
        )
        .await;
    let serials: Vec<&str> = first["items"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(rest["items"].as_array().into_iter().flatten())
        .filter_map(|i| i["serial"].as_str())
        .collect();
    assert_eq!(
        serials,
        ["0a01", "0a02", "0b01", "0b02", "0a03", "0a04", "0c01"]
    );
    assert_eq!(rest["next_cursor"], Value::Null);

    // Bad parameters are GT_INVALID_PARAM.
    for query in [
        "status=bogus",
        "limit=0",
        "limit=1001",
        "limit=abc",
        "cursor=%21%21",
        "cursor=bm9wZQ",
        "user=office",
        "colour=red",
    ] {
        let answer = svc
            .call(
                Method::GET,
                &format!("/v1/certificates?{query}"),
                Some(&auditor),
                None,
            )
            .await;
        assert_err(&answer, StatusCode::BAD_REQUEST, "GT_INVALID_PARAM", query);
    }

    // An agency lists only its own certificates (mTLS, no token).
    let key = FileSigner::generate(KeyAlgorithm::EcdsaP256).expect("key");
    let issued = svc
        .ok(
            Method::POST,
            "/v1/authorities/DE-LIST-B/enrollment-clients",
            &admin,
            Some(json!({"public_key_pem": govtrust_service::pemfile::encode("PUBLIC KEY", key.spki_der())})),
        )
        .await;
    let identity = govtrust_service::pemfile::client_identity(
        issued["chain_pem"].as_str().expect("chain"),
        &key,
    )
    .expect("identity");
    let agency = svc.http(Some(identity.as_str()));
    let (status, own) = svc
        .call_with(
            &agency,
            Method::GET,
            "/v1/certificates?limit=100",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{own}");
    let own: BTreeSet<&str> = own["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["authority_id"].as_str())
        .collect();
    assert_eq!(own, BTreeSet::from(["DE-LIST-B"]));
    let other = svc
        .call_with(
            &agency,
            Method::GET,
            "/v1/certificates?authority=DE-LIST-A",
            None,
            None,
        )
        .await;
    assert_err(
        &other,
        StatusCode::FORBIDDEN,
        "GT_FORBIDDEN",
        "agency lists another authority",
    );

    // The audit log: pages by seq, `since` by time, without gaps.
    let mut seqs = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/audit/log?limit=3&cursor={c}"),
            None => "/v1/audit/log?limit=3".to_owned(),
        };
        let page = svc.ok(Method::GET, &path, &auditor, None).await;
        for e in page["entries"].as_array().expect("entries") {
            seqs.push(e["seq"].as_u64().expect("seq"));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert!(seqs.len() >= 10, "{seqs:?}");
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let recent = svc
        .ok(
            Method::GET,
            &format!("/v1/audit/log?since={}", now_ms() + 60_000),
            &auditor,
            None,
        )
        .await;
    assert_eq!(recent["entries"], json!([]));
    let since = svc
        .ok(
            Method::GET,
            &format!("/v1/audit/log?since={now}"),
            &auditor,
            None,
        )
        .await;
    let first = since["entries"][0]["at"].as_i64().expect("at");
    assert!(first >= now);
    for query in ["limit=0", "cursor=xyz", "since=yesterday"] {
        let answer = svc
            .call(
                Method::GET,
                &format!("/v1/audit/log?{query}"),
                Some(&auditor),
                None,
            )
            .await;
        assert_err(&answer, StatusCode::BAD_REQUEST, "GT_INVALID_PARAM", query);
    }
}

/// Runs the `govtrust` binary with `args` against `svc` (connection from
/// the environment variables); exit status and standard output.
async fn govtrust(svc: &Svc, token_file: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let dir = svc._dir.path().to_owned();
    let ca = dir.join("root.pem");
    std::fs::write(&ca, &svc.root_pem).expect("root.pem");
    let base = svc.base.clone();
    let token_file = token_file.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_govtrust"))
            .args(&args)
            .env("GOVTRUST_SERVER", base)
            .env("GOVTRUST_TOKEN_FILE", token_file)
            .env("GOVTRUST_CA_FILE", ca)
            .output()
            .expect("run govtrust");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_cli_drives_every_operator_endpoint() {
    let svc = Svc::start().await;
    let dir = svc._dir.path().to_owned();
    let admin = dir.join("operator-token");
    let ok = |r: (i32, String, String), what: &str| {
        assert_eq!(r.0, 0, "{what}: {}{}", r.1, r.2);
        r.1
    };

    // Tokens: create (secret to a 0600 file), list, rotate, revoke.
    let auditor_file = dir.join("auditor.token");
    let auditor_path = auditor_file.to_str().expect("path");
    ok(
        govtrust(
            &svc,
            &admin,
            &[
                "token",
                "create",
                "cli-auditor",
                "--role",
                "auditor",
                "--expires-in-days",
                "1",
                "--out",
                auditor_path,
            ],
        )
        .await,
        "token create",
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&auditor_file)
            .expect("token file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let list = ok(
        govtrust(&svc, &admin, &["token", "list"]).await,
        "token list",
    );
    assert!(
        list.contains("cli-auditor") && list.contains("auditor") && list.contains("active"),
        "{list}"
    );
    let json: Value = serde_json::from_str(&ok(
        govtrust(&svc, &admin, &["--json", "token", "list"]).await,
        "token list --json",
    ))
    .expect("JSON");
    assert_eq!(json.as_array().map(Vec::len), Some(2));

    // Authorities: create, show, update, list (API), suspend, activate.
    let input = dir.join("authority.json");
    std::fs::write(&input, authority_input("DE-CLI-1").to_string()).expect("input");
    let input = input.to_str().expect("path");
    ok(
        govtrust(&svc, &admin, &["authority", "create", input]).await,
        "authority create",
    );
    let shown = ok(
        govtrust(&svc, &auditor_file, &["authority", "show", "DE-CLI-1"]).await,
        "show",
    );
    assert!(
        shown.contains("Bürgeramt Test") && shown.contains("active"),
        "{shown}"
    );
    ok(
        govtrust(&svc, &admin, &["authority", "update", "DE-CLI-1", input]).await,
        "update",
    );
    let listed = ok(
        govtrust(&svc, &auditor_file, &["authority", "list"]).await,
        "list",
    );
    assert!(
        listed.starts_with("ID") && listed.contains("DE-CLI-1"),
        "{listed}"
    );

    // The auditor may not change the registry: exit 1 with the errcode.
    let refused = govtrust(&svc, &auditor_file, &["authority", "suspend", "DE-CLI-1"]).await;
    assert_eq!(refused.0, 1);
    assert!(refused.2.contains("GT_FORBIDDEN"), "{}", refused.2);

    // Enrollment client: issue, list, show, revoke.
    let key = dir.join("agency.pub.pem");
    std::fs::write(&key, public_key_pem()).expect("key");
    let chain = dir.join("agency.chain.pem");
    let issued = ok(
        govtrust(
            &svc,
            &admin,
            &[
                "--json",
                "enrollment-client",
                "issue",
                "DE-CLI-1",
                "--public-key",
                key.to_str().expect("p"),
                "--days",
                "30",
                "--out",
                chain.to_str().expect("p"),
            ],
        )
        .await,
        "enrollment-client issue",
    );
    let serial = serde_json::from_str::<Value>(&issued).expect("JSON")["serial"]
        .as_str()
        .expect("serial")
        .to_owned();
    assert!(std::fs::read_to_string(&chain)
        .expect("chain")
        .contains("BEGIN CERTIFICATE"));
    let certs = ok(
        govtrust(
            &svc,
            &auditor_file,
            &[
                "cert",
                "list",
                "--authority",
                "DE-CLI-1",
                "--status",
                "live",
            ],
        )
        .await,
        "cert list",
    );
    assert!(
        certs.contains(&serial) && certs.contains("enrollment_client"),
        "{certs}"
    );
    let pem = ok(
        govtrust(&svc, &auditor_file, &["cert", "show", &serial, "--pem"]).await,
        "cert show --pem",
    );
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let revoked = ok(
        govtrust(
            &svc,
            &admin,
            &[
                "enrollment-client",
                "revoke",
                &serial,
                "--reason",
                "key_compromise",
            ],
        )
        .await,
        "revoke",
    );
    assert!(revoked.contains("revoked"), "{revoked}");
    let again = ok(
        govtrust(&svc, &admin, &["cert", "revoke", &serial]).await,
        "cert revoke again",
    );
    assert!(again.contains("already revoked"), "{again}");
    ok(
        govtrust(&svc, &admin, &["authority", "suspend", "DE-CLI-1"]).await,
        "suspend",
    );
    ok(
        govtrust(&svc, &admin, &["authority", "activate", "DE-CLI-1"]).await,
        "activate",
    );

    // Import over the API: one new row, one existing (updated).
    let import = dir.join("import.json");
    std::fs::write(
        &import,
        json!([authority_input("DE-CLI-1"), authority_input("DE-CLI-2")]).to_string(),
    )
    .expect("import");
    let imported = ok(
        govtrust(
            &svc,
            &admin,
            &["authority", "import", import.to_str().expect("p")],
        )
        .await,
        "import",
    );
    assert!(
        imported.contains("1 created, 1 updated, 0 rejected"),
        "{imported}"
    );

    // Audit: log (the CLI's own changes are there) and verify.
    let log = ok(
        govtrust(
            &svc,
            &auditor_file,
            &["audit", "log", "--since", "now-1h", "--all"],
        )
        .await,
        "audit log",
    );
    for action in [
        "operator.token_created",
        "authority.created",
        "enrollment_client.issued",
        "certificate.revoked",
        "authority.suspended",
    ] {
        assert!(log.contains(action), "{action} missing:\n{log}");
    }
    let verified = ok(
        govtrust(&svc, &auditor_file, &["audit", "verify"]).await,
        "audit verify",
    );
    assert!(verified.contains("intact"), "{verified}");

    // Rotate and revoke the auditor's token; the old file stops working.
    let rotated = dir.join("auditor2.token");
    ok(
        govtrust(
            &svc,
            &admin,
            &[
                "token",
                "rotate",
                "cli-auditor",
                "--out",
                rotated.to_str().expect("p"),
            ],
        )
        .await,
        "rotate",
    );
    let stale = govtrust(&svc, &auditor_file, &["audit", "verify"]).await;
    assert_eq!(stale.0, 1);
    assert!(stale.2.contains("GT_UNAUTHORIZED"), "{}", stale.2);
    ok(
        govtrust(&svc, &rotated, &["audit", "verify"]).await,
        "rotated secret works",
    );
    ok(
        govtrust(&svc, &admin, &["token", "revoke", "cli-auditor"]).await,
        "token revoke",
    );
    assert_eq!(govtrust(&svc, &rotated, &["audit", "verify"]).await.0, 1);

    // Input errors are caught before any request.
    let bad = govtrust(&svc, &admin, &["cert", "list", "--status", "bogus"]).await;
    assert_eq!(bad.0, 1);
    assert!(bad.2.contains("--status"), "{}", bad.2);

    // Completions and man pages.
    let bash = ok(
        govtrust(&svc, &admin, &["completions", "bash"]).await,
        "completions",
    );
    assert!(bash.contains("enrollment-client") && bash.contains("--token-file"));
    let man = dir.join("man");
    ok(
        govtrust(&svc, &admin, &["man", man.to_str().expect("p")]).await,
        "man",
    );
    for page in [
        "govtrust.1",
        "govtrust-cert-list.1",
        "govtrust-token-create.1",
    ] {
        assert!(man.join(page).is_file(), "{page} missing");
    }
}

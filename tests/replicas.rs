//! Two service replicas on one database: each a [`Store`] of its own (its
//! own pool and writer tasks) on the same PostgreSQL schema, enrolling
//! concurrently with every challenge claimed from both replicas at once.
//!
//! Runs against PostgreSQL when `GOVTRUST_TEST_POSTGRES_URL` is set (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`; each run uses a fresh schema
//! and drops it afterwards), and always against one SQLite file shared by
//! two stores.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures::FutureExt as _;
use govtrust_service::storage::{
    sha256_hex, AuditEntry, Authority, AuthorityStatus, CertificateKind, Challenge, ChallengeClaim,
    ChallengeOutcome, NewCertificate, NewOutboxItem, Store, StoreOptions,
};
use govtrust_verifier::AuthorityRecord;
use rand::Rng as _;
use serde_json::json;
use sqlx::{Connection as _, Executor as _, Row as _};

const PG_ENV: &str = "GOVTRUST_TEST_POSTGRES_URL";
const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const AUTH: &str = "DE-BE-11000000-BA-NK";
const CA: &str = "issuing-ca-1";
const KEY: &str = "c29tZSBlZDI1NTE5IGtleSBieXRlcyBoZXJlIQ";

/// Concurrent clients; each runs [`PER_CLIENT`] enrollments.
const CLIENTS: usize = 24;
const PER_CLIENT: usize = 40;
/// Users and devices the clients share, so that many enrollments race on
/// one outbox state key (`device|user|device`) from both replicas.
const USERS: usize = 3;
const DEVICES: usize = 4;

// ---------------------------------------------------------------------------
// Harness

#[derive(Clone, Debug)]
struct Db {
    url: String,
    schema: Option<String>,
}

impl Db {
    async fn open(&self) -> Store {
        let options = StoreOptions {
            max_connections: 10,
            pg_schema: self.schema.clone(),
            ..Default::default()
        };
        match Store::connect_with(&self.url, options).await {
            Ok(s) => s,
            Err(e) => panic!("connect {}: {e}", self.url),
        }
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn drop_schema(url: &str, schema: &str) {
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    if let Err(e) = conn.execute(sqlx::AssertSqlSafe(sql)).await {
        eprintln!("could not drop schema {schema}: {e}");
    }
    let _ = conn.close().await;
}

async fn run_postgres<F, Fut>(test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    sqlx::any::install_default_drivers();
    let url = match std::env::var(PG_ENV) {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI is set but {PG_ENV} is not: the replica test must run in CI")
        }
        _ => {
            eprintln!("notice: {PG_ENV} is not set; skipping the PostgreSQL variant");
            return;
        }
    };
    // The storage tests' prefix: their harness drops stale ones.
    let schema = format!(
        "govtrust_storage_test_{}_{:016x}",
        unix_secs(),
        rand::thread_rng().gen::<u64>()
    );
    let db = Db {
        url: url.clone(),
        schema: Some(schema.clone()),
    };
    let result = AssertUnwindSafe(test(db)).catch_unwind().await;
    drop_schema(&url, &schema).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

async fn run_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("govtrust.db").display()
    );
    test(Db { url, schema: None }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_postgres() {
    run_postgres(two_replicas).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_sqlite() {
    run_sqlite(two_replicas).await;
}

// ---------------------------------------------------------------------------
// Fixtures

fn authority() -> Authority {
    Authority {
        record: AuthorityRecord {
            id: AUTH.to_owned(),
            name: "Registration Office Berlin".to_owned(),
            unit: None,
            street: None,
            postal_code: None,
            locality: Some("Berlin".to_owned()),
            state: None,
            country: Some("DE".to_owned()),
        },
        servers: vec!["id.bund.example".to_owned()],
        user_patterns: vec!["office.*".to_owned()],
        status: AuthorityStatus::Active,
        contact: None,
        created_at: T0,
        updated_at: T0,
    }
}

fn random_serial() -> String {
    let bytes: [u8; 16] = rand::thread_rng().gen();
    let mut s = sha256_hex(&bytes);
    s.truncate(32);
    s.replace_range(0..1, "4");
    s
}

/// One enrollment of client `c`, number `i`: its challenge and where it
/// binds.
struct Enrollment {
    challenge: Challenge,
    user: String,
    device: String,
}

fn enrollment(c: usize, i: usize) -> Enrollment {
    let user = format!("@office.u{}:id.bund.example", (c + i) % USERS);
    let device = format!("DEV{}", (c * 7 + i) % DEVICES);
    Enrollment {
        challenge: Challenge {
            id: format!("ch-{c}-{i}"),
            authority_id: AUTH.to_owned(),
            user_id: user.clone(),
            device_id: device.clone(),
            kind: CertificateKind::Device,
            proof: "to_device".to_owned(),
            key: KEY.to_owned(),
            device_key: KEY.to_owned(),
            created_at: T0,
            expires_at: T0 + 600_000,
            used_at: None,
        },
        user,
        device,
    }
}

/// Claims `e`'s challenge on `store` and issues a fresh serial for it.
async fn enroll(store: &Store, e: &Enrollment) -> (String, Result<u64, ChallengeOutcome>) {
    let serial = random_serial();
    let claim = ChallengeClaim {
        id: e.challenge.id.clone(),
        authority_id: AUTH.to_owned(),
        user_id: e.user.clone(),
        device_id: e.device.clone(),
        key: KEY.to_owned(),
        now: T0 + 1,
    };
    let cert = NewCertificate {
        serial: serial.clone(),
        issuing_ca: CA.to_owned(),
        kind: CertificateKind::Device,
        user_id: Some(e.user.clone()),
        device_id: Some(e.device.clone()),
        key: KEY.to_owned(),
        authority_id: AUTH.to_owned(),
        not_before: T0,
        not_after: T0 + 86_400_000,
        der: vec![0x30, 0x03, 0x02, 0x01, 0x01],
        renewed_from: None,
        created_at: T0,
    };
    let outbox = NewOutboxItem {
        kind: "attestation".to_owned(),
        state_key: format!("device|{}|{}", e.user, e.device),
        content: json!({ "serial": serial, "user_id": e.user, "device_id": e.device }),
    };
    let audit = AuditEntry::new(
        format!("agency:{AUTH}"),
        "certificate.issued",
        &serial,
        json!({ "user_id": e.user, "device_id": e.device }),
    );
    let outcome = store
        .enroll_certificate(claim, cert, Some(outbox), audit)
        .await
        .expect("enroll");
    (serial, outcome)
}

// ---------------------------------------------------------------------------
// The test

/// Two replicas share the load: every client stores its challenge through
/// one replica and then claims it from both at once (a retried request
/// landing on the other replica). Afterwards: exactly one claim per
/// challenge won and every challenge is used; no serial is stored twice
/// and each winner's serial is stored; the audit chain verifies with one
/// entry per issuance; and each outbox state key has exactly one pending
/// item, the one of its latest issuance in chain order, with every older
/// item superseded by an item of the same key.
async fn two_replicas(db: Db) {
    let a = db.open().await;
    a.insert_authority(
        authority(),
        AuditEntry::new("system", "authority.created", AUTH, json!({})),
    )
    .await
    .expect("authority");
    let b = db.open().await;
    let started = Instant::now();
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (a, b) = (a.clone(), b.clone());
        clients.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for i in 0..PER_CLIENT {
                let e = enrollment(c, i);
                let (first, second) = if (c + i) % 2 == 0 { (&a, &b) } else { (&b, &a) };
                first
                    .insert_challenge(&e.challenge)
                    .await
                    .expect("challenge");
                let (x, y) = tokio::join!(enroll(first, &e), enroll(second, &e));
                let mut ok = 0;
                for (serial, outcome) in [x, y] {
                    match outcome {
                        Ok(_) => {
                            ok += 1;
                            won.push(serial);
                        }
                        Err(o) => {
                            assert_eq!(o, ChallengeOutcome::AlreadyUsed, "{}", e.challenge.id)
                        }
                    }
                }
                assert_eq!(ok, 1, "claims on {} that won", e.challenge.id);
            }
            won
        }));
    }
    let mut issued = Vec::new();
    for c in clients {
        issued.extend(c.await.expect("client"));
    }
    let total = CLIENTS * PER_CLIENT;
    eprintln!(
        "{:?}: {total} enrollments (two claims each) through 2 replicas in {:.2?}",
        a.backend(),
        started.elapsed()
    );
    assert_eq!(issued.len(), total);
    let issued_set: HashSet<&String> = issued.iter().collect();
    assert_eq!(issued_set.len(), total, "a serial was issued twice");

    // Serials: each winner's, once; nothing else.
    let rows = sqlx::query("SELECT serial FROM certificates")
        .fetch_all(b.pool())
        .await
        .expect("serials");
    let stored: Vec<String> = rows.iter().map(|r| r.get("serial")).collect();
    assert_eq!(stored.len(), total, "certificates stored");
    assert_eq!(stored.iter().collect::<HashSet<_>>(), issued_set);

    // Challenges: every one used.
    let row = sqlx::query("SELECT COUNT(*) AS n, COUNT(used_at) AS used FROM challenges")
        .fetch_one(a.pool())
        .await
        .expect("challenges");
    assert_eq!(row.get::<i64, _>("n"), i64::try_from(total).unwrap_or(-1));
    assert_eq!(
        row.get::<i64, _>("used"),
        i64::try_from(total).unwrap_or(-1)
    );

    // The audit chain: intact, one entry per issuance after the authority's.
    for store in [&a, &b] {
        let report = store.verify_audit_chain().await.expect("verify");
        assert!(report.is_ok(), "audit chain broken: {report:?}");
        assert_eq!(report.entries, total as u64 + 1);
    }
    // Latest issuance per state key, in chain order.
    let rows = sqlx::query(
        "SELECT seq, subject, details FROM audit_log WHERE action = 'certificate.issued' \
         ORDER BY seq",
    )
    .fetch_all(a.pool())
    .await
    .expect("audit");
    let mut latest: HashMap<String, String> = HashMap::new();
    for row in &rows {
        let details: serde_json::Value =
            serde_json::from_str(&row.get::<String, _>("details")).expect("details");
        let key = format!(
            "device|{}|{}",
            details["user_id"].as_str().unwrap_or_default(),
            details["device_id"].as_str().unwrap_or_default()
        );
        latest.insert(key, row.get("subject"));
    }
    assert_eq!(rows.len(), total);

    // The outbox: one item per issuance; per state key exactly one pending,
    // the latest issuance's; every other superseded by one of its key.
    let rows = sqlx::query("SELECT id, state_key, content, state, superseded_by FROM outbox")
        .fetch_all(a.pool())
        .await
        .expect("outbox");
    assert_eq!(rows.len(), total, "outbox items");
    let key_of: HashMap<i64, String> = rows
        .iter()
        .map(|r| (r.get::<i64, _>("id"), r.get::<String, _>("state_key")))
        .collect();
    let mut pending: HashMap<String, Vec<String>> = HashMap::new();
    for row in &rows {
        let key: String = row.get("state_key");
        let state: String = row.get("state");
        match state.as_str() {
            "pending" => {
                let content: serde_json::Value =
                    serde_json::from_str(&row.get::<String, _>("content")).expect("content");
                pending
                    .entry(key)
                    .or_default()
                    .push(content["serial"].as_str().unwrap_or_default().to_owned());
            }
            "superseded" => {
                let by: Option<i64> = row.get("superseded_by");
                let by_key = by.and_then(|id| key_of.get(&id));
                assert_eq!(
                    by_key,
                    Some(&key),
                    "superseded_by of item {}",
                    row.get::<i64, _>("id")
                );
            }
            other => panic!("unexpected outbox state {other}"),
        }
    }
    assert_eq!(
        pending.len(),
        latest.len(),
        "state keys with a pending item"
    );
    for (key, serials) in &pending {
        assert_eq!(serials.len(), 1, "pending items for {key}: {serials:?}");
        assert_eq!(
            Some(&serials[0]),
            latest.get(key),
            "the pending item of {key} is not its latest issuance in chain order"
        );
    }
}

//! The storage layer (`govtrust_service::storage`) against both backends.
//!
//! Every test runs twice: on SQLite (a file in a temporary directory) and on
//! PostgreSQL. The PostgreSQL variant takes its URL from
//! `GOVTRUST_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`)
//! and works in a fresh schema `govtrust_storage_test_<time>_<random>` that is
//! dropped afterwards, so tests run in parallel without colliding. Without
//! the variable the PostgreSQL variants print a notice and pass, unless `CI`
//! is set: then they fail.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures::FutureExt as _;
use govtrust_service::storage::{
    sha256_hex, AuditEntry, Authority, AuthorityStatus, Backend, CertificateKind, CertificateQuery,
    CertificateStatus, Challenge, ChallengeClaim, ChallengeOutcome, ListedStatus, NewCertificate,
    NewOutboxItem, OperatorRole, OperatorToken, OutboxState, RevokeOutcome, Store, StoreError,
    StoreOptions, StoredCrl, TokenRevocation,
};
use govtrust_verifier::AuthorityRecord;
use rand::Rng as _;
use serde_json::json;
use sqlx::{Connection as _, Executor as _, Row as _};

const PG_ENV: &str = "GOVTRUST_TEST_POSTGRES_URL";
const SCHEMA_PREFIX: &str = "govtrust_storage_test_";
const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const DAY: i64 = 86_400_000;
const CA: &str = "issuing-ca-1";
const AUTH: &str = "DE-BE-11000000-BA-NK";
/// The Ed25519 key (base64) the fixtures' challenges and certificates bind.
const KEY: &str = "c29tZSBlZDI1NTE5IGtleSBieXRlcyBoZXJlIQ";

// ---------------------------------------------------------------------------
// Harness

/// Where a test's database lives; open as many stores on it as needed.
#[derive(Clone, Debug)]
struct Db {
    url: String,
    schema: Option<String>,
}

impl Db {
    async fn open(&self) -> Store {
        let options = StoreOptions {
            max_connections: 8,
            pg_schema: self.schema.clone(),
            ..Default::default()
        };
        match Store::connect_with(&self.url, options).await {
            Ok(s) => s,
            Err(e) => panic!("connect {}: {e}", self.url),
        }
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

fn postgres_url() -> Option<String> {
    match std::env::var(PG_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI is set but {PG_ENV} is not: the PostgreSQL storage tests must run in CI")
        }
        _ => {
            eprintln!("notice: {PG_ENV} is not set; skipping the PostgreSQL variant");
            None
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

/// Drops schemas that crashed test runs left behind (older than an hour).
async fn drop_stale_schemas(url: &str) {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::SeqCst) {
        return;
    }
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    let rows = sqlx::query(
        "SELECT nspname::text AS nspname FROM pg_namespace WHERE nspname LIKE 'govtrust_storage_test_%'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("list schemas");
    let _ = conn.close().await;
    let cutoff = unix_secs().saturating_sub(3600);
    for row in rows {
        let name: String = row.get("nspname");
        let created = name
            .strip_prefix(SCHEMA_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|t| t.parse::<u64>().ok());
        if matches!(created, Some(t) if t < cutoff) {
            drop_schema(url, &name).await;
        }
    }
}

async fn run_postgres<F, Fut>(test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    sqlx::any::install_default_drivers();
    let Some(url) = postgres_url() else { return };
    drop_stale_schemas(&url).await;
    let schema = format!(
        "{SCHEMA_PREFIX}{}_{:016x}",
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

/// Runs a test function against both backends.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::run_sqlite(super::$name).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::run_postgres(super::$name).await;
            }
        }
    )*};
}

both_backends!(
    concurrent_startup,
    authority_crud,
    challenge_consume,
    challenge_consume_races,
    concurrent_challenge_inserts,
    enrollment_consumes_its_challenge,
    enrollment_races_on_one_challenge,
    concurrent_enrollments_of_one_binding,
    refused_claims_amid_a_batch,
    large_audit_batches_keep_the_chain,
    enrollment_supersedes_the_live_certificate,
    agency_standing,
    concurrent_standing_lookups,
    issuance_is_atomic,
    failing_change_does_not_disturb_its_batch,
    renewal_claims,
    revocation,
    crl_numbers_and_storage,
    crl_entries_and_revocation_count,
    outbox_claim_lease_publish_supersede,
    audit_chain_detects_tampering,
    operator_tokens,
    certificate_listing,
    concurrent_issuance_two_stores,
);

// ---------------------------------------------------------------------------
// Fixtures

fn audit(action: &str, subject: &str) -> AuditEntry {
    AuditEntry::new("system", action, subject, json!({ "test": true }))
}

fn authority(id: &str) -> Authority {
    Authority {
        record: AuthorityRecord {
            id: id.to_owned(),
            name: "Registration Office Berlin".to_owned(),
            unit: Some("Bürgeramt Neukölln".to_owned()),
            street: Some("Donaustraße 29".to_owned()),
            postal_code: Some("12043".to_owned()),
            locality: Some("Berlin".to_owned()),
            state: Some("Berlin".to_owned()),
            country: Some("DE".to_owned()),
        },
        servers: vec!["id.bund.example".to_owned()],
        user_patterns: vec!["office.*".to_owned()],
        status: AuthorityStatus::Active,
        contact: Some("it@bezirksamt.example".to_owned()),
        created_at: T0,
        updated_at: T0,
    }
}

async fn with_authority(db: &Db) -> Store {
    let store = db.open().await;
    store
        .insert_authority(authority(AUTH), audit("authority.created", AUTH))
        .await
        .expect("insert authority");
    store
}

fn random_serial() -> String {
    let bytes: [u8; 16] = rand::thread_rng().gen();
    // Positive, 127 bits: a realistic X.509 serial.
    let mut s = sha256_hex(&bytes);
    s.truncate(32);
    s.replace_range(0..1, "4");
    s
}

fn device_cert(serial: &str, user: &str, device: &str, not_after: i64) -> NewCertificate {
    NewCertificate {
        serial: serial.to_owned(),
        issuing_ca: CA.to_owned(),
        kind: CertificateKind::Device,
        user_id: Some(user.to_owned()),
        device_id: Some(device.to_owned()),
        key: KEY.to_owned(),
        authority_id: AUTH.to_owned(),
        not_before: T0,
        not_after,
        der: vec![0x30, 0x82, 0x01, 0x00, 0xde, 0xad, 0xbe, 0xef],
        renewed_from: None,
        created_at: T0,
    }
}

fn attestation(user: &str, device: &str, serial: &str) -> NewOutboxItem {
    NewOutboxItem {
        kind: "attestation".to_owned(),
        state_key: format!("device|{user}|{device}"),
        content: json!({ "version": 1, "kind": "device", "user_id": user,
                         "device_id": device, "serial": serial }),
    }
}

async fn count(store: &Store, sql: &'static str) -> i64 {
    let row = sqlx::query(sql)
        .fetch_one(store.pool())
        .await
        .expect("count query");
    row.try_get::<i64, _>(0).expect("count")
}

async fn assert_chain_ok(store: &Store) -> u64 {
    let report = store.verify_audit_chain().await.expect("verify");
    assert!(report.is_ok(), "audit chain broken: {report:?}");
    report.entries
}

// ---------------------------------------------------------------------------
// Tests

/// Replicas that start at once all migrate the same database safely.
async fn concurrent_startup(db: Db) {
    let (a, b, c, d) = tokio::join!(db.open(), db.open(), db.open(), db.open());
    for store in [&a, &b, &c, &d] {
        assert_eq!(store.verify_audit_chain().await.expect("verify").entries, 0);
    }
    // Each migration applied exactly once.
    let dir = match a.backend() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let files = std::fs::read_dir(format!(
        "{}/service/migrations/{dir}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("migrations dir")
    .count();
    assert_eq!(
        count(&a, "SELECT COUNT(*) FROM _sqlx_migrations WHERE success").await,
        i64::try_from(files).unwrap_or(0)
    );
    if a.backend() == Backend::Sqlite {
        let row = sqlx::query("PRAGMA journal_mode")
            .fetch_one(a.pool())
            .await
            .expect("pragma");
        assert_eq!(row.get::<String, _>(0), "wal");
        let row = sqlx::query("PRAGMA foreign_keys")
            .fetch_one(a.pool())
            .await
            .expect("pragma");
        assert_eq!(row.get::<i64, _>(0), 1);
    }
}

async fn authority_crud(db: Db) {
    let store = db.open().await;
    let mut a = authority(AUTH);
    store
        .insert_authority(a.clone(), audit("authority.created", AUTH))
        .await
        .expect("insert");
    assert_eq!(
        store.get_authority(AUTH).await.expect("get"),
        Some(a.clone())
    );
    assert_eq!(store.get_authority("nope").await.expect("get"), None);

    let dup = store
        .insert_authority(a.clone(), audit("authority.created", AUTH))
        .await;
    assert!(
        matches!(
            dup,
            Err(StoreError::Duplicate {
                entity: "authority",
                ..
            })
        ),
        "{dup:?}"
    );

    a.record.street = Some("Karl-Marx-Straße 83".to_owned());
    a.servers.push("berlin.example".to_owned());
    a.contact = None;
    a.updated_at = T0 + 1;
    store
        .update_authority(a.clone(), audit("authority.updated", AUTH))
        .await
        .expect("update");
    assert_eq!(
        store.get_authority(AUTH).await.expect("get"),
        Some(a.clone())
    );

    let missing = store
        .update_authority(authority("XX-1"), audit("authority.updated", "XX-1"))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );

    store
        .set_authority_status(
            AUTH,
            AuthorityStatus::Suspended,
            T0 + 2,
            audit("authority.suspended", AUTH),
        )
        .await
        .expect("suspend");
    let got = store
        .get_authority(AUTH)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got.status, AuthorityStatus::Suspended);
    assert_eq!(got.updated_at, T0 + 2);
    assert_eq!(got.created_at, T0);

    for id in ["DE-A", "DE-B", "DE-C"] {
        store
            .insert_authority(authority(id), audit("authority.created", id))
            .await
            .expect("insert");
    }
    let page1 = store.list_authorities(None, 2).await.expect("list");
    let page2 = store
        .list_authorities(Some(&page1[1].record.id), 10)
        .await
        .expect("list");
    let ids: Vec<_> = page1
        .iter()
        .chain(&page2)
        .map(|a| a.record.id.as_str())
        .collect();
    assert_eq!(ids, ["DE-A", "DE-B", "DE-BE-11000000-BA-NK", "DE-C"]);

    // Failed changes (duplicate, not found) wrote no audit entries.
    assert_eq!(assert_chain_ok(&store).await, 6);
}

fn challenge(id: &str, expires_at: i64) -> Challenge {
    Challenge {
        id: id.to_owned(),
        authority_id: AUTH.to_owned(),
        user_id: "@office.one:id.bund.example".to_owned(),
        device_id: "DEVICE1".to_owned(),
        kind: CertificateKind::Device,
        proof: "to_device".to_owned(),
        key: KEY.to_owned(),
        device_key: KEY.to_owned(),
        created_at: T0,
        expires_at,
        used_at: None,
    }
}

async fn challenge_consume(db: Db) {
    let store = with_authority(&db).await;
    let user = "@office.one:id.bund.example";
    store
        .insert_challenge(&challenge("c1", T0 + 60_000))
        .await
        .expect("insert");
    store
        .insert_challenge(&challenge("c2", T0 + 60_000))
        .await
        .expect("insert");
    store
        .insert_challenge(&challenge("c3", T0 + 60_000))
        .await
        .expect("insert");
    let dup = store.insert_challenge(&challenge("c1", T0 + 60_000)).await;
    assert!(matches!(dup, Err(StoreError::Duplicate { .. })), "{dup:?}");

    let consume =
        |id: &'static str, auth: &'static str, u: &'static str, dev: &'static str, now| {
            let store = store.clone();
            async move {
                store
                    .consume_challenge(ChallengeClaim {
                        id: id.to_owned(),
                        authority_id: auth.to_owned(),
                        user_id: u.to_owned(),
                        device_id: dev.to_owned(),
                        key: KEY.to_owned(),
                        now,
                    })
                    .await
                    .expect("consume")
            }
        };
    assert_eq!(
        consume("c1", AUTH, user, "DEVICE1", T0 + 1).await,
        ChallengeOutcome::Ok
    );
    assert_eq!(
        consume("c1", AUTH, user, "DEVICE1", T0 + 2).await,
        ChallengeOutcome::AlreadyUsed
    );
    assert_eq!(
        consume("c2", AUTH, user, "DEVICE1", T0 + 60_000).await,
        ChallengeOutcome::Expired
    );
    assert_eq!(
        consume("c3", AUTH, user, "DEVICE2", T0 + 1).await,
        ChallengeOutcome::WrongBinding
    );
    assert_eq!(
        consume("c3", AUTH, "@office.two:id.bund.example", "DEVICE1", T0 + 1).await,
        ChallengeOutcome::WrongBinding
    );
    assert_eq!(
        consume("c3", "DE-OTHER", user, "DEVICE1", T0 + 1).await,
        ChallengeOutcome::WrongBinding
    );
    // A wrong binding does not burn it.
    assert_eq!(
        consume("c3", AUTH, user, "DEVICE1", T0 + 1).await,
        ChallengeOutcome::Ok
    );
    assert_eq!(
        consume("nope", AUTH, user, "DEVICE1", T0 + 1).await,
        ChallengeOutcome::Unknown
    );

    let used = store
        .get_challenge("c1")
        .await
        .expect("get")
        .expect("exists");
    let mut expected = challenge("c1", T0 + 60_000);
    expected.used_at = Some(T0 + 1);
    assert_eq!(used, expected);

    // Unknown authority: the foreign key refuses it.
    let mut bad = challenge("c4", T0 + 60_000);
    bad.authority_id = "DE-NONE".to_owned();
    let err = store.insert_challenge(&bad).await;
    assert!(matches!(err, Err(StoreError::Constraint(_))), "{err:?}");

    assert_eq!(
        store
            .purge_expired_challenges(T0 + 60_001)
            .await
            .expect("purge"),
        3
    );
    assert_eq!(
        consume("c1", AUTH, user, "DEVICE1", T0 + 1).await,
        ChallengeOutcome::Unknown
    );
}

/// Inserts the challenges `race0` .. `race{n-1}` and lets `callers` tasks,
/// alternating between two stores on the database, each make `attempt` on
/// every one of them; returns the indices of the attempts that won, sorted,
/// and the first store.
async fn race_on_challenges<F, Fut>(
    db: &Db,
    n: usize,
    callers: usize,
    attempt: F,
) -> (Store, Vec<usize>)
where
    F: Fn(Store, String) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let a = with_authority(db).await;
    let b = db.open().await;
    for i in 0..n {
        a.insert_challenge(&challenge(&format!("race{i}"), T0 + 60_000))
            .await
            .expect("insert");
    }
    let mut tasks = Vec::new();
    for t in 0..callers {
        let store = if t % 2 == 0 { a.clone() } else { b.clone() };
        let attempt = attempt.clone();
        tasks.push(tokio::spawn(async move {
            let mut wins = Vec::new();
            for i in 0..n {
                if attempt(store.clone(), format!("race{i}")).await {
                    wins.push(i);
                }
            }
            wins
        }));
    }
    let mut wins = Vec::new();
    for t in tasks {
        wins.extend(t.await.expect("task"));
    }
    wins.sort_unstable();
    (a, wins)
}

async fn challenge_consume_races(db: Db) {
    let (_, wins) = race_on_challenges(&db, 20, 16, |store, id| async move {
        match store
            .consume_challenge(claim(&id, "DEVICE1", T0 + 1))
            .await
            .expect("consume")
        {
            ChallengeOutcome::Ok => true,
            ChallengeOutcome::AlreadyUsed => false,
            other => panic!("unexpected {other:?}"),
        }
    })
    .await;
    assert_eq!(
        wins,
        (0..20).collect::<Vec<_>>(),
        "each challenge consumed exactly once"
    );
}

/// Challenges inserted at once share the writer's batches (one multi-row
/// insert): each still gets its own answer, an id given twice is stored
/// once and the second caller hears `Duplicate`, and a bad row fails alone.
async fn concurrent_challenge_inserts(db: Db) {
    let store = with_authority(&db).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = challenge(&format!("bulk{}", i % 20), T0 + 60_000);
            if i == 7 {
                c.id = "bulk-bad".to_owned();
                c.authority_id = "DE-NONE".to_owned();
            }
            (c.id.clone(), store.insert_challenge(&c).await)
        }));
    }
    let mut stored = HashSet::new();
    let mut duplicates = 0;
    for t in tasks {
        match t.await.expect("task") {
            (id, Ok(())) => assert!(stored.insert(id.clone()), "{id} stored twice"),
            (_, Err(StoreError::Duplicate { .. })) => duplicates += 1,
            (id, Err(StoreError::Constraint(_))) => assert_eq!(id, "bulk-bad"),
            (id, Err(e)) => panic!("{id}: {e}"),
        }
    }
    assert_eq!(stored.len(), 20, "every distinct good id once");
    assert_eq!(
        duplicates, 19,
        "every repeat but the one replaced by the bad row"
    );
    assert_eq!(count(&store, "SELECT COUNT(*) FROM challenges").await, 20);
    let writes = store.write_stats().challenges;
    assert_eq!(
        writes.changes, 39,
        "every challenge but the refused one committed once: {writes:?}"
    );
    assert!(
        (1..=39).contains(&writes.commits) && writes.largest >= writes.changes / writes.commits,
        "{writes:?}"
    );
}

fn claim(id: &str, device: &str, now: i64) -> ChallengeClaim {
    ChallengeClaim {
        id: id.to_owned(),
        authority_id: AUTH.to_owned(),
        user_id: "@office.one:id.bund.example".to_owned(),
        device_id: device.to_owned(),
        key: KEY.to_owned(),
        now,
    }
}

/// An enrollment stores its certificate only by consuming its challenge,
/// in one transaction: a refused claim writes nothing (no certificate, no
/// audit entry, no outbox item, challenge untouched), and a certificate
/// that cannot be stored gives the challenge back.
async fn enrollment_consumes_its_challenge(db: Db) {
    let store = with_authority(&db).await;
    let user = "@office.one:id.bund.example";
    for id in ["e1", "e2", "e3"] {
        store
            .insert_challenge(&challenge(id, T0 + 60_000))
            .await
            .expect("insert");
    }
    let enroll = |claim: ChallengeClaim, serial: String| {
        let store = store.clone();
        async move {
            store
                .enroll_certificate(
                    claim,
                    device_cert(&serial, user, "DEVICE1", T0 + DAY),
                    Some(attestation(user, "DEVICE1", &serial)),
                    audit("certificate.issued", &serial),
                )
                .await
        }
    };
    let traces = || async {
        (
            count(&store, "SELECT COUNT(*) FROM certificates").await,
            count(&store, "SELECT COUNT(*) FROM audit_log").await,
            count(&store, "SELECT COUNT(*) FROM outbox").await,
        )
    };

    let first = random_serial();
    let seq = enroll(claim("e1", "DEVICE1", T0 + 1), first.clone())
        .await
        .expect("store")
        .expect("challenge accepted");
    assert_eq!(seq, 2, "after the authority's entry");
    let used = store.get_challenge("e1").await.expect("get").expect("e1");
    assert_eq!(used.used_at, Some(T0 + 1), "consumed with the issuance");
    let before = traces().await;

    for (claim, refused) in [
        (
            claim("e1", "DEVICE1", T0 + 2),
            ChallengeOutcome::AlreadyUsed,
        ),
        (
            claim("e2", "DEVICE2", T0 + 2),
            ChallengeOutcome::WrongBinding,
        ),
        (
            claim("e3", "DEVICE1", T0 + 60_000),
            ChallengeOutcome::Expired,
        ),
        (claim("none", "DEVICE1", T0 + 2), ChallengeOutcome::Unknown),
        (
            ChallengeClaim {
                key: "another key".to_owned(),
                ..claim("e2", "DEVICE1", T0 + 2)
            },
            ChallengeOutcome::KeyMismatch,
        ),
    ] {
        let id = claim.id.clone();
        let outcome = enroll(claim, random_serial()).await.expect("store");
        assert_eq!(outcome, Err(refused), "claim on {id}");
        assert_eq!(
            traces().await,
            before,
            "a refused claim on {id} wrote something"
        );
    }
    for id in ["e2", "e3"] {
        let c = store.get_challenge(id).await.expect("get").expect(id);
        assert_eq!(c.used_at, None, "a refused claim consumed {id}");
    }

    // The serial exists: the certificate is refused and e2 stays usable.
    let dup = enroll(claim("e2", "DEVICE1", T0 + 2), first).await;
    assert!(matches!(dup, Err(StoreError::Duplicate { .. })), "{dup:?}");
    assert_eq!(traces().await, before);
    let e2 = store.get_challenge("e2").await.expect("get").expect("e2");
    assert_eq!(e2.used_at, None, "the challenge was not given back");
    let outcome = enroll(claim("e2", "DEVICE1", T0 + 3), random_serial())
        .await
        .expect("store");
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(assert_chain_ok(&store).await, 3);
}

/// Many enrollments racing on one challenge through two stores: exactly
/// one certificate is stored, every other caller hears `AlreadyUsed`.
async fn enrollment_races_on_one_challenge(db: Db) {
    let (store, wins) = race_on_challenges(&db, 10, 8, |store, id| async move {
        let serial = random_serial();
        let user = "@office.one:id.bund.example";
        match store
            .enroll_certificate(
                claim(&id, "DEVICE1", T0 + 1),
                device_cert(&serial, user, "DEVICE1", T0 + DAY),
                None,
                audit("certificate.issued", &serial),
            )
            .await
            .expect("store")
        {
            Ok(_) => true,
            Err(ChallengeOutcome::AlreadyUsed) => false,
            Err(other) => panic!("unexpected {other:?}"),
        }
    })
    .await;
    assert_eq!(
        wins,
        (0..10).collect::<Vec<_>>(),
        "one certificate per challenge"
    );
    assert_eq!(count(&store, "SELECT COUNT(*) FROM certificates").await, 10);
    assert_eq!(assert_chain_ok(&store).await, 11);
}

/// Concurrent enrollments of one device, which the writer applies in one
/// batch transaction, one of them with a serial another already uses: each
/// gets its own outcome, as if applied one by one. Every stored certificate but the last is superseded by the
/// next (each sees the ones before it), the refused one writes nothing and
/// its challenge is given back.
async fn concurrent_enrollments_of_one_binding(db: Db) {
    let store = with_authority(&db).await;
    let user = "@office.one:id.bund.example";
    let serials: Vec<String> = (0..6).map(|_| random_serial()).collect();
    let mut planned: Vec<(String, String)> = Vec::new();
    for (n, serial) in serials.iter().enumerate() {
        let id = format!("run{n}");
        store
            .insert_challenge(&challenge(&id, T0 + 60_000))
            .await
            .expect("challenge");
        planned.push((id, serial.clone()));
    }
    // The seventh reuses the first serial.
    store
        .insert_challenge(&challenge("run6", T0 + 60_000))
        .await
        .expect("challenge");
    planned.push(("run6".to_owned(), serials[0].clone()));

    let outcomes = futures::future::join_all(planned.iter().map(|(id, serial)| {
        let store = store.clone();
        async move {
            let outcome = store
                .enroll_certificate(
                    claim(id, "DEVICE1", T0 + 1),
                    device_cert(serial, user, "DEVICE1", T0 + DAY),
                    Some(attestation(user, "DEVICE1", serial)),
                    audit("certificate.issued", serial),
                )
                .await;
            (id.clone(), outcome)
        }
    }))
    .await;
    let mut refused = Vec::new();
    for (id, outcome) in &outcomes {
        match outcome {
            Ok(Ok(_)) => {}
            Err(StoreError::Duplicate { .. }) => refused.push(id.clone()),
            other => panic!("{id}: unexpected {other:?}"),
        }
    }
    assert_eq!(
        refused.len(),
        1,
        "one of run0 and run6 is refused: {refused:?}"
    );
    assert!(["run0", "run6"].contains(&refused[0].as_str()));
    let given_back = store.get_challenge(&refused[0]).await.expect("get");
    assert_eq!(
        given_back.and_then(|c| c.used_at),
        None,
        "challenge given back"
    );
    assert_eq!(count(&store, "SELECT COUNT(*) FROM certificates").await, 6);
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM certificates WHERE status = 'valid'"
        )
        .await,
        1,
        "each enrollment superseded the one before"
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM certificates WHERE status = 'superseded' \
             AND serial IN (SELECT renewed_from FROM certificates)"
        )
        .await,
        5,
        "a chain of renewals"
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM outbox WHERE state = 'pending'"
        )
        .await,
        1,
        "one pending event for the device"
    );
    assert_eq!(assert_chain_ok(&store).await, 7);
}

/// Enrollments submitted at once, so that the writer applies them in few
/// batches (on PostgreSQL one call of `govtrust_issue_batch` each), among
/// them claims refused for every reason there is: each refused one hears
/// its own reason and writes nothing, its challenge untouched, and the
/// others are stored with one audit entry each.
async fn refused_claims_amid_a_batch(db: Db) {
    let store = with_authority(&db).await;
    let user = "@office.one:id.bund.example";
    for n in 0..8 {
        store
            .insert_challenge(&challenge(&format!("ok{n}"), T0 + 60_000))
            .await
            .expect("challenge");
    }
    for id in ["used", "other-device", "expired", "other-key"] {
        store
            .insert_challenge(&challenge(id, T0 + 60_000))
            .await
            .expect("challenge");
    }
    // Consumed before the batch.
    let serial = random_serial();
    store
        .enroll_certificate(
            claim("used", "DEVICE1", T0 + 1),
            device_cert(&serial, user, "DEVICE1", T0 + DAY),
            None,
            audit("certificate.issued", &serial),
        )
        .await
        .expect("store")
        .expect("first use");
    let mut planned: Vec<(ChallengeClaim, Option<ChallengeOutcome>)> = (0..8)
        .map(|n| (claim(&format!("ok{n}"), "DEVICE1", T0 + 2), None))
        .collect();
    planned.extend([
        (
            claim("used", "DEVICE1", T0 + 2),
            Some(ChallengeOutcome::AlreadyUsed),
        ),
        (
            claim("other-device", "DEVICE2", T0 + 2),
            Some(ChallengeOutcome::WrongBinding),
        ),
        (
            claim("expired", "DEVICE1", T0 + 60_000),
            Some(ChallengeOutcome::Expired),
        ),
        (
            ChallengeClaim {
                key: "another key".to_owned(),
                ..claim("other-key", "DEVICE1", T0 + 2)
            },
            Some(ChallengeOutcome::KeyMismatch),
        ),
        (
            claim("none", "DEVICE1", T0 + 2),
            Some(ChallengeOutcome::Unknown),
        ),
    ]);
    // Interleave the refused claims with the good ones.
    planned.swap(1, 8);
    planned.swap(3, 9);
    planned.swap(5, 10);
    let outcomes = futures::future::join_all(planned.iter().map(|(claim, _)| {
        let store = store.clone();
        let claim = claim.clone();
        async move {
            let serial = random_serial();
            let device = claim.device_id.clone();
            store
                .enroll_certificate(
                    claim,
                    device_cert(&serial, user, &device, T0 + DAY),
                    Some(attestation(user, &device, &serial)),
                    audit("certificate.issued", &serial),
                )
                .await
                .expect("store")
        }
    }))
    .await;
    let mut seqs = Vec::new();
    for ((claim, refused), outcome) in planned.iter().zip(outcomes) {
        match (refused, outcome) {
            (None, Ok(seq)) => seqs.push(seq),
            (Some(reason), Err(got)) => assert_eq!(got, *reason, "claim on {}", claim.id),
            (expected, got) => panic!("claim on {}: {got:?}, expected {expected:?}", claim.id),
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (3..=10).collect::<Vec<u64>>(), "one entry per stored");
    assert_eq!(count(&store, "SELECT COUNT(*) FROM certificates").await, 9);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM outbox").await, 8);
    for id in ["other-device", "expired", "other-key"] {
        let c = store.get_challenge(id).await.expect("get").expect(id);
        assert_eq!(c.used_at, None, "a refused claim consumed {id}");
    }
    assert_eq!(assert_chain_ok(&store).await, 10);
}

/// A hundred issuances at once with 64 KiB of audit details each: a batch
/// of more than 15 does not fit in one 1 MiB message (on PostgreSQL the
/// issuances go in several calls, each its own transaction continuing the
/// chain), and the chain holds.
async fn large_audit_batches_keep_the_chain(db: Db) {
    let store = with_authority(&db).await;
    let results = futures::future::join_all((0..100).map(|n| {
        let store = store.clone();
        async move {
            let serial = random_serial();
            let user = "@office.one:id.bund.example";
            let device = format!("BULK{n}");
            let entry = AuditEntry::new(
                "system",
                "certificate.issued",
                serial.clone(),
                json!({ "n": n, "pad": "p".repeat(64 * 1024) }),
            );
            store
                .insert_certificate(
                    device_cert(&serial, user, &device, T0 + DAY),
                    Some(attestation(user, &device, &serial)),
                    entry,
                )
                .await
        }
    }))
    .await;
    let mut seqs: Vec<u64> = results.into_iter().map(|r| r.expect("issued")).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (2..=101).collect::<Vec<u64>>(),
        "one seq each, no gaps"
    );
    assert_eq!(assert_chain_ok(&store).await, 101);
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM outbox WHERE state = 'pending'"
        )
        .await,
        100
    );
    let writes = store.write_stats().audited;
    assert_eq!(
        writes.changes, 101,
        "the authority and the hundred issuances: {writes:?}"
    );
    if store.backend() == Backend::Postgres {
        assert!(
            writes.commits >= 8 && writes.largest <= 15,
            "6.4 MB of audit details take seven 1 MiB messages or more: {writes:?}"
        );
    }
}

/// An enrollment renews the binding's live certificate, which the store
/// finds in the enrollment's own transaction: the one of the same user,
/// kind and device (or no device) that is valid and unexpired, the longest
/// lasting if several. Other devices, other kinds and expired or revoked
/// certificates of the binding are left alone; an explicit
/// `renewed_from` wins.
async fn enrollment_supersedes_the_live_certificate(db: Db) {
    let store = with_authority(&db).await;
    let user = "@office.one:id.bund.example";
    let insert = |cert: NewCertificate| {
        let store = store.clone();
        async move {
            let serial = cert.serial.clone();
            store
                .insert_certificate(cert, None, audit("certificate.issued", &serial))
                .await
                .expect("insert");
            serial
        }
    };
    let identity = |serial: &str, not_after: i64| NewCertificate {
        kind: CertificateKind::Identity,
        device_id: None,
        ..device_cert(serial, user, "unused", not_after)
    };
    let shorter = insert(device_cert(&random_serial(), user, "DEVICE1", T0 + DAY)).await;
    let live = insert(device_cert(&random_serial(), user, "DEVICE1", T0 + 2 * DAY)).await;
    let expired = insert(device_cert(&random_serial(), user, "DEVICE1", T0 - 1)).await;
    let other_device = insert(device_cert(&random_serial(), user, "DEVICE2", T0 + DAY)).await;
    let id_live = insert(identity(&random_serial(), T0 + DAY)).await;
    let status = |serial: String| {
        let store = store.clone();
        async move {
            let c = store.get_certificate(&serial).await.expect("get");
            let c = c.expect("stored");
            (c.status, c.renewed_from)
        }
    };
    for (i, kind) in [CertificateKind::Device, CertificateKind::Identity]
        .into_iter()
        .enumerate()
    {
        let id = format!("s{i}");
        store
            .insert_challenge(&challenge(&id, T0 + 60_000))
            .await
            .expect("challenge");
        let serial = random_serial();
        let cert = match kind {
            CertificateKind::Identity => identity(&serial, T0 + 3 * DAY),
            _ => device_cert(&serial, user, "DEVICE1", T0 + 3 * DAY),
        };
        let outcome = store
            .enroll_certificate(
                claim(&id, "DEVICE1", T0 + 1),
                cert,
                None,
                audit("certificate.issued", &serial),
            )
            .await
            .expect("store");
        assert!(outcome.is_ok(), "{outcome:?}");
        let renewed = match kind {
            CertificateKind::Identity => &id_live,
            _ => &live,
        };
        assert_eq!(
            status(serial).await,
            (CertificateStatus::Valid, Some(renewed.clone())),
            "{kind:?} enrollment renews the live certificate"
        );
        assert_eq!(
            status(renewed.clone()).await.0,
            CertificateStatus::Superseded
        );
    }
    for untouched in [shorter, expired, other_device] {
        assert_eq!(
            status(untouched.clone()).await,
            (CertificateStatus::Valid, None),
            "{untouched} is not the binding's live certificate"
        );
    }

    // Given explicitly, renewed_from is the one renewed.
    store
        .insert_challenge(&challenge("s2", T0 + 60_000))
        .await
        .expect("challenge");
    let target = insert(device_cert(&random_serial(), user, "DEVICE2", T0 + DAY)).await;
    let serial = random_serial();
    let outcome = store
        .enroll_certificate(
            claim("s2", "DEVICE1", T0 + 1),
            NewCertificate {
                renewed_from: Some(target.clone()),
                ..device_cert(&serial, user, "DEVICE1", T0 + 3 * DAY)
            },
            None,
            audit("certificate.issued", &serial),
        )
        .await
        .expect("store");
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(status(serial).await.1, Some(target.clone()));
    assert_eq!(status(target).await.0, CertificateStatus::Superseded);
    assert_chain_ok(&store).await;
}

/// The one query every agency request makes: its authority as stored now,
/// and its client certificate's status.
async fn agency_standing(db: Db) {
    let store = with_authority(&db).await;
    let serial = random_serial();
    let standing = store
        .agency_standing(AUTH, &serial, None)
        .await
        .expect("standing");
    assert_eq!(standing.authority, Some(authority(AUTH)));
    assert_eq!(standing.client_status, None, "not issued here");

    let none = store
        .agency_standing("DE-NONE", &serial, None)
        .await
        .expect("standing");
    assert_eq!(none.authority, None);

    store
        .insert_certificate(
            device_cert(&serial, "@office.one:id.bund.example", "D1", T0 + DAY),
            None,
            audit("certificate.issued", &serial),
        )
        .await
        .expect("issue");
    let valid = store
        .agency_standing("DE-NONE", &serial, None)
        .await
        .expect("standing");
    assert_eq!(valid.client_status, Some(CertificateStatus::Valid));
    store
        .revoke(
            &serial,
            "keyCompromise",
            T0 + 1,
            None,
            audit("certificate.revoked", &serial),
        )
        .await
        .expect("revoke");
    store
        .set_authority_status(
            AUTH,
            AuthorityStatus::Suspended,
            T0 + 2,
            audit("authority.suspended", AUTH),
        )
        .await
        .expect("suspend");
    let after = store
        .agency_standing(AUTH, &serial, None)
        .await
        .expect("standing");
    assert_eq!(after.client_status, Some(CertificateStatus::Revoked));
    assert_eq!(
        after.authority.map(|a| a.status),
        Some(AuthorityStatus::Suspended)
    );
}

/// Many agency requests at once: each caller gets its own authority, client status
/// and challenge, never another's, and an unknown one gets `None`s.
async fn concurrent_standing_lookups(db: Db) {
    let store = with_authority(&db).await;
    let user = "@office.one:id.bund.example";
    let issued = random_serial();
    store
        .insert_certificate(
            device_cert(&issued, user, "DEVICE1", T0 + DAY),
            None,
            audit("certificate.issued", &issued),
        )
        .await
        .expect("insert");
    for i in 0..50 {
        store
            .insert_challenge(&challenge(&format!("ch{i}"), T0 + 60_000 + i))
            .await
            .expect("challenge");
    }
    let lookups = (0..200i64).map(|i| {
        let store = store.clone();
        let issued = issued.clone();
        async move {
            // Every fourth caller is unknown in every respect.
            let known = i % 4 != 0;
            let authority = if known { AUTH } else { "unknown-authority" };
            let client = if known { issued } else { random_serial() };
            let challenge = format!("{}{}", if known { "ch" } else { "none" }, i % 50);
            let standing = store
                .agency_standing(authority, &client, Some(&challenge))
                .await
                .expect("standing");
            (i, known, standing)
        }
    });
    for (i, known, standing) in futures::future::join_all(lookups).await {
        if known {
            assert_eq!(standing.authority, Some(authority(AUTH)), "caller {i}");
            assert_eq!(standing.client_status, Some(CertificateStatus::Valid));
            let ch = standing.challenge.expect("challenge");
            assert_eq!(ch.id, format!("ch{}", i % 50), "caller {i}");
            assert_eq!(ch.expires_at, T0 + 60_000 + i % 50, "caller {i}");
        } else {
            assert_eq!(standing.authority, None, "caller {i}");
            assert_eq!(standing.client_status, None, "caller {i}");
            assert_eq!(standing.challenge, None, "caller {i}");
        }
    }
}

async fn issuance_is_atomic(db: Db) {
    let store = with_authority(&db).await;
    let user = "@office.one:id.bund.example";
    let serial = random_serial();
    let seq = store
        .insert_certificate(
            device_cert(&serial, user, "DEVICE1", T0 + 30 * DAY),
            Some(attestation(user, "DEVICE1", &serial)),
            AuditEntry::new(
                format!("agency:{AUTH}"),
                "certificate.issued",
                &serial,
                json!({"kind": "device"}),
            ),
        )
        .await
        .expect("issue");
    assert_eq!(seq, 2);
    let cert = store
        .get_certificate(&serial)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(cert.status, CertificateStatus::Valid);
    assert_eq!(
        cert.der,
        vec![0x30, 0x82, 0x01, 0x00, 0xde, 0xad, 0xbe, 0xef]
    );
    assert_eq!(cert.device_id.as_deref(), Some("DEVICE1"));
    let live = store
        .find_live_certificate(user, CertificateKind::Device, Some("DEVICE1"), T0 + DAY)
        .await
        .expect("find");
    assert_eq!(
        live.as_ref().map(|c| c.serial.as_str()),
        Some(serial.as_str())
    );
    assert!(store
        .find_live_certificate(
            user,
            CertificateKind::Device,
            Some("DEVICE1"),
            T0 + 31 * DAY
        )
        .await
        .expect("find")
        .is_none());
    assert!(store
        .find_live_certificate(user, CertificateKind::Identity, None, T0 + DAY)
        .await
        .expect("find")
        .is_none());
    assert_eq!(store.outbox_depth().await.expect("depth"), 1);
    let entries = store.list_audit(0, 10).await.expect("audit");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].action, "certificate.issued");
    assert_eq!(entries[1].subject.as_deref(), Some(serial.as_str()));

    // Forced failure 1: the same serial again (with a different outbox item).
    let again = store
        .insert_certificate(
            device_cert(&serial, user, "DEVICE9", T0 + 30 * DAY),
            Some(attestation(user, "DEVICE9", &serial)),
            audit("certificate.issued", &serial),
        )
        .await;
    assert!(
        matches!(
            again,
            Err(StoreError::Duplicate {
                entity: "certificate",
                ..
            })
        ),
        "{again:?}"
    );
    // Forced failure 2: an unknown authority (a hard failure inside the
    // transaction after nothing else was written).
    let mut orphan = device_cert(&random_serial(), user, "DEVICE8", T0 + 30 * DAY);
    orphan.authority_id = "DE-NONE".to_owned();
    let orphan_serial = orphan.serial.clone();
    let err = store
        .insert_certificate(
            orphan,
            Some(attestation(user, "DEVICE8", &orphan_serial)),
            audit("certificate.issued", &orphan_serial),
        )
        .await;
    assert!(matches!(err, Err(StoreError::Constraint(_))), "{err:?}");

    // Nothing of either persisted.
    assert_eq!(count(&store, "SELECT COUNT(*) FROM certificates").await, 1);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM outbox").await, 1);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM audit_log").await, 2);
    let cert = store
        .get_certificate(&serial)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(cert.device_id.as_deref(), Some("DEVICE1"));
    assert_eq!(assert_chain_ok(&store).await, 2);

    // The next issuance continues the chain.
    let s2 = random_serial();
    let seq = store
        .insert_certificate(
            device_cert(&s2, user, "DEVICE2", T0 + DAY),
            None,
            audit("certificate.issued", &s2),
        )
        .await
        .expect("issue");
    assert_eq!(seq, 3);
    let page = store
        .list_live_by_authority(AUTH, T0, None, 100)
        .await
        .expect("list");
    assert_eq!(page.len(), 2);
    assert!(page[0].serial < page[1].serial);
    assert_eq!(assert_chain_ok(&store).await, 3);
}

async fn failing_change_does_not_disturb_its_batch(db: Db) {
    let store = with_authority(&db).await;
    // Many issuances submitted at once end up in few batches; some of them
    // fail hard (unknown authority), which rolls their batch back and
    // retries its members one by one.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let user = format!("@office.{i}:id.bund.example");
            let mut cert = device_cert(&random_serial(), &user, "DEV", T0 + DAY);
            let bad = i % 25 == 7;
            if bad {
                cert.authority_id = "DE-NONE".to_owned();
            }
            let serial = cert.serial.clone();
            let res = store
                .insert_certificate(
                    cert,
                    Some(attestation(&user, "DEV", &serial)),
                    audit("certificate.issued", &serial),
                )
                .await;
            (bad, res.is_ok())
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let (bad, succeeded) = t.await.expect("task");
        assert_eq!(succeeded, !bad);
        ok += usize::from(succeeded);
    }
    assert_eq!(ok, 192);
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM certificates").await,
        192
    );
    assert_eq!(count(&store, "SELECT COUNT(*) FROM outbox").await, 192);
    assert_eq!(assert_chain_ok(&store).await, 193);
}

async fn renewal_claims(db: Db) {
    let a = with_authority(&db).await;
    let b = db.open().await;
    let user = "@office.one:id.bund.example";
    let mut due = HashSet::new();
    for i in 0..30 {
        let serial = random_serial();
        // 20 due within 5 days, 10 later.
        let not_after = if i < 20 { T0 + DAY + i } else { T0 + 20 * DAY };
        if i < 20 {
            due.insert(serial.clone());
        }
        a.insert_certificate(
            device_cert(&serial, user, &format!("D{i}"), not_after),
            None,
            audit("certificate.issued", &serial),
        )
        .await
        .expect("issue");
    }
    let mut enroll = device_cert(&random_serial(), user, "X", T0 + DAY);
    enroll.kind = CertificateKind::EnrollmentClient;
    enroll.user_id = None;
    enroll.device_id = None;
    let enroll_serial = enroll.serial.clone();
    a.insert_certificate(enroll, None, audit("certificate.issued", &enroll_serial))
        .await
        .expect("issue");

    // Two replicas claim concurrently in small bites.
    let now = T0;
    let lease = 60_000;
    let claim = |store: Store| async move {
        let mut got = Vec::new();
        loop {
            let batch = store
                .claim_due_renewals(now + 5 * DAY, now, lease, 3)
                .await
                .expect("claim");
            if batch.is_empty() {
                break got;
            }
            got.extend(batch.into_iter().map(|c| c.serial));
        }
    };
    let (x, y) = tokio::join!(
        tokio::spawn(claim(a.clone())),
        tokio::spawn(claim(b.clone()))
    );
    let (x, y) = (x.expect("task"), y.expect("task"));
    let all: Vec<_> = x.iter().chain(&y).cloned().collect();
    let unique: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 20, "claimed twice: {x:?} {y:?}");
    assert_eq!(unique, due);
    assert!(!unique.contains(&enroll_serial));

    // Nothing more while leased; everything again after the lease ran out.
    assert!(a
        .claim_due_renewals(now + 5 * DAY, now + 1, lease, 100)
        .await
        .expect("claim")
        .is_empty());
    let again = a
        .claim_due_renewals(now + 5 * DAY, now + lease + 1, lease, 100)
        .await
        .expect("claim");
    assert_eq!(again.len(), 20);
    assert!(again.windows(2).all(|w| w[0].not_after <= w[1].not_after));

    // Renewing supersedes the old certificate in the same transaction.
    let old = &again[0];
    a.release_renewal_claim(&again[1].serial)
        .await
        .expect("release");
    let mut renewed = device_cert(
        &random_serial(),
        user,
        old.device_id.as_deref().unwrap_or(""),
        T0 + 31 * DAY,
    );
    renewed.renewed_from = Some(old.serial.clone());
    let new_serial = renewed.serial.clone();
    a.insert_certificate(renewed, None, audit("certificate.renewed", &new_serial))
        .await
        .expect("renew");
    let old_now = a
        .get_certificate(&old.serial)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(old_now.status, CertificateStatus::Superseded);
    let live = a
        .find_live_certificate(user, CertificateKind::Device, old.device_id.as_deref(), T0)
        .await
        .expect("find")
        .expect("live");
    assert_eq!(live.serial, new_serial);
    assert_eq!(live.renewed_from.as_deref(), Some(old.serial.as_str()));
    // The superseded one is still accepted by verifiers until it expires.
    let unrevoked = a
        .list_unrevoked_for_binding(user, CertificateKind::Device, old.device_id.as_deref(), T0)
        .await
        .expect("list");
    assert_eq!(unrevoked.len(), 2);
    // The released one is claimable at once; the renewed one never again.
    let c = a
        .claim_due_renewals(now + 5 * DAY, now + lease + 2, lease, 100)
        .await
        .expect("claim");
    assert_eq!(
        c.iter().map(|c| c.serial.as_str()).collect::<Vec<_>>(),
        [again[1].serial.as_str()]
    );

    assert!(!a
        .mark_superseded(
            &old.serial,
            T0,
            audit("certificate.superseded", &old.serial)
        )
        .await
        .expect("mark"));
    assert!(a
        .mark_superseded(
            &again[2].serial,
            T0,
            audit("certificate.superseded", &again[2].serial)
        )
        .await
        .expect("mark"));
    assert!(matches!(
        a.mark_superseded("ff", T0, audit("certificate.superseded", "ff"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert_chain_ok(&a).await;
}

async fn revocation(db: Db) {
    let store = with_authority(&db).await;
    let user = "@office.one:id.bund.example";
    let s1 = random_serial();
    let s2 = random_serial();
    let s3 = random_serial();
    for (s, dev, not_after) in [
        (&s1, "D1", T0 + DAY),
        (&s2, "D2", T0 + 30 * DAY),
        (&s3, "D3", T0 + 30 * DAY),
    ] {
        store
            .insert_certificate(
                device_cert(s, user, dev, not_after),
                Some(attestation(user, dev, s)),
                audit("certificate.issued", s),
            )
            .await
            .expect("issue");
    }
    store
        .mark_superseded(&s3, T0, audit("certificate.superseded", &s3))
        .await
        .expect("supersede");
    let depth = store.outbox_depth().await.expect("depth");

    let revoke = |serial: String, at: i64| {
        let store = store.clone();
        async move {
            let item = NewOutboxItem {
                kind: "attestation".to_owned(),
                state_key: format!("device|{user}|{serial}"),
                content: json!({ "revoked": { "at": at } }),
            };
            store
                .revoke(
                    &serial,
                    "keyCompromise",
                    at,
                    Some(item),
                    audit("certificate.revoked", &serial),
                )
                .await
                .expect("revoke")
        }
    };
    assert_eq!(revoke(s1.clone(), T0 + 10).await, RevokeOutcome::Revoked);
    assert_eq!(
        revoke(s1.clone(), T0 + 11).await,
        RevokeOutcome::AlreadyRevoked
    );
    assert_eq!(
        revoke("00ff".to_owned(), T0 + 12).await,
        RevokeOutcome::Unknown
    );
    // A superseded certificate is still valid cryptographically: revocable.
    assert_eq!(revoke(s3.clone(), T0 + 13).await, RevokeOutcome::Revoked);
    assert_eq!(store.outbox_depth().await.expect("depth"), depth + 2);

    let got = store
        .get_certificate(&s1)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got.status, CertificateStatus::Revoked);
    let mut expected = vec![(s1.clone(), T0 + 10), (s3.clone(), T0 + 13)];
    expected.sort();
    let listed: Vec<_> = store
        .crl_entries(CA, None)
        .await
        .expect("list")
        .0
        .into_iter()
        .map(|r| {
            assert_eq!(r.reason, "keyCompromise");
            (r.serial, r.revoked_at)
        })
        .collect();
    assert_eq!(listed, expected);
    // s1 expired at T0 + DAY: a CRL after that may leave it out.
    let later = store
        .crl_entries(CA, Some(T0 + 2 * DAY))
        .await
        .expect("list")
        .0;
    assert_eq!(
        later.iter().map(|r| r.serial.as_str()).collect::<Vec<_>>(),
        [s3.as_str()]
    );
    assert!(store
        .crl_entries("other-ca", None)
        .await
        .expect("list")
        .0
        .is_empty());
    assert!(store
        .find_live_certificate(user, CertificateKind::Device, Some("D1"), T0)
        .await
        .expect("find")
        .is_none());
    // Only the changes that happened were audited: 1 + 3 + 1 + 2.
    assert_eq!(assert_chain_ok(&store).await, 7);
}

async fn crl_numbers_and_storage(db: Db) {
    let a = db.open().await;
    let b = db.open().await;
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = if t % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..25 {
                mine.push(store.allocate_crl_number(CA).await.expect("allocate"));
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let mine = t.await.expect("task");
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "not increasing: {mine:?}"
        );
        all.extend(mine);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=400).collect::<Vec<u64>>());
    assert_eq!(
        a.allocate_crl_number("other-ca").await.expect("allocate"),
        1
    );

    assert_eq!(a.latest_crl(CA).await.expect("latest"), None);
    let crl = |number: u64| StoredCrl {
        issuing_ca: CA.to_owned(),
        number,
        der: vec![
            0x30,
            0x03,
            0x02,
            0x01,
            u8::try_from(number % 256).unwrap_or(0),
        ],
        this_update: T0 + i64::try_from(number).unwrap_or(0),
        next_update: T0 + DAY,
        revocation_count: Some(number % 7),
    };
    assert!(a
        .store_crl(crl(401), audit("crl.published", CA))
        .await
        .expect("store"));
    // An older CRL (a slow replica) never replaces a newer one.
    assert!(!b
        .store_crl(crl(399), audit("crl.published", CA))
        .await
        .expect("store"));
    assert!(!b
        .store_crl(crl(401), audit("crl.published", CA))
        .await
        .expect("store"));
    assert_eq!(b.latest_crl(CA).await.expect("latest"), Some(crl(401)));
    // Allocation continues above the stored number.
    assert_eq!(a.allocate_crl_number(CA).await.expect("allocate"), 402);

    // Generation claims: one replica at a time, until the lease ends.
    assert!(a.claim_crl_generation(CA, T0, 1000).await.expect("claim"));
    assert!(!b
        .claim_crl_generation(CA, T0 + 10, 1000)
        .await
        .expect("claim"));
    assert!(b
        .claim_crl_generation("fresh-ca", T0 + 10, 1000)
        .await
        .expect("claim"));
    assert!(b
        .claim_crl_generation(CA, T0 + 1001, 1000)
        .await
        .expect("claim"));
    b.release_crl_claim(CA).await.expect("release");
    assert!(a
        .claim_crl_generation(CA, T0 + 1002, 1000)
        .await
        .expect("claim"));
    assert_eq!(assert_chain_ok(&a).await, 1);
}

/// What a CRL is built from comes with the count of its CA's revocation
/// rows (expired certificates' included) from the same snapshot: while
/// revocations are being recorded, every read lists exactly as many
/// revocations as it counts. A stored CRL keeps its count, and a CRL
/// without one (stored before the count was kept) reads back without.
async fn crl_entries_and_revocation_count(db: Db) {
    let store = with_authority(&db).await;
    let user = "@office.one:id.bund.example";
    assert_eq!(
        store.crl_entries(CA, None).await.expect("entries"),
        (Vec::new(), 0),
        "no revocations: an empty list and a count of 0"
    );
    assert_eq!(store.revocation_count(CA).await.expect("count"), 0);

    let expiring = random_serial();
    let mut other = device_cert(&random_serial(), user, "OTHER", T0 + 30 * DAY);
    other.issuing_ca = "other-ca".to_owned();
    let mut certs = vec![
        device_cert(&expiring, user, "EXPIRING", T0 + DAY),
        other.clone(),
    ];
    for n in 0..40 {
        certs.push(device_cert(
            &random_serial(),
            user,
            &format!("D{n}"),
            T0 + 30 * DAY,
        ));
    }
    for cert in &certs {
        let serial = cert.serial.clone();
        store
            .insert_certificate(cert.clone(), None, audit("certificate.issued", &serial))
            .await
            .expect("issue");
    }
    let revoke = {
        let store = store.clone();
        move |serial: String| {
            let store = store.clone();
            async move {
                let outcome = store
                    .revoke(
                        &serial,
                        "keyCompromise",
                        T0 + 10,
                        None,
                        audit("certificate.revoked", &serial),
                    )
                    .await
                    .expect("revoke");
                assert_eq!(outcome, RevokeOutcome::Revoked);
            }
        }
    };
    revoke(expiring.clone()).await;
    revoke(other.serial.clone()).await;

    // Revocations commit one after another while a reader builds CRLs.
    let writer = {
        let serials: Vec<String> = certs[2..].iter().map(|c| c.serial.clone()).collect();
        let revoke = revoke.clone();
        tokio::spawn(async move {
            for serial in serials {
                revoke(serial).await;
            }
        })
    };
    let mut reads = 0;
    loop {
        let done = writer.is_finished();
        let (listed, count) = store.crl_entries(CA, None).await.expect("entries");
        assert_eq!(
            u64::try_from(listed.len()).ok(),
            Some(count),
            "a read lists as many revocations as it counts"
        );
        reads += 1;
        if done {
            break;
        }
    }
    writer.await.expect("writer");
    assert!(reads > 1, "the reader ran alongside the revocations");

    // Expired certificates drop off the list but stay counted: the count
    // is of the revocation rows, which are never deleted.
    let (unexpired, count) = store
        .crl_entries(CA, Some(T0 + 2 * DAY))
        .await
        .expect("entries");
    assert_eq!(count, 41);
    assert_eq!(unexpired.len(), 40);
    assert!(unexpired.iter().all(|r| r.serial != expiring));
    assert!(
        unexpired.windows(2).all(|w| w[0].serial < w[1].serial),
        "by serial"
    );
    assert_eq!(store.revocation_count(CA).await.expect("count"), 41);
    assert_eq!(store.revocation_count("other-ca").await.expect("count"), 1);
    assert_eq!(
        store
            .crl_entries("other-ca", None)
            .await
            .expect("entries")
            .1,
        1
    );

    let crl = |number: u64, revocation_count: Option<u64>| StoredCrl {
        issuing_ca: CA.to_owned(),
        number,
        der: vec![0x30, 0x00],
        this_update: T0,
        next_update: T0 + DAY,
        revocation_count,
    };
    assert!(store
        .store_crl(crl(1, None), audit("crl.signed", CA))
        .await
        .expect("store"));
    assert_eq!(
        store.latest_crl(CA).await.expect("latest"),
        Some(crl(1, None))
    );
    assert!(store
        .store_crl(crl(2, Some(41)), audit("crl.signed", CA))
        .await
        .expect("store"));
    assert_eq!(
        store.latest_crl(CA).await.expect("latest"),
        Some(crl(2, Some(41)))
    );
    assert_chain_ok(&store).await;
}

fn item(key: &str, n: u32) -> NewOutboxItem {
    NewOutboxItem {
        kind: "attestation".to_owned(),
        state_key: key.to_owned(),
        content: json!({ "n": n }),
    }
}

async fn outbox_claim_lease_publish_supersede(db: Db) {
    let a = db.open().await;
    let b = db.open().await;
    let lease = 30_000;
    let now = T0;

    // Superseded before publication: only the latest is published.
    a.enqueue_outbox(item("k1", 1), now, None)
        .await
        .expect("enqueue");
    a.enqueue_outbox(item("k1", 2), now, None)
        .await
        .expect("enqueue");
    a.enqueue_outbox(
        item("k2", 1),
        now,
        Some(audit("attestation.republished", "k2")),
    )
    .await
    .expect("enqueue");
    assert_eq!(a.outbox_depth().await.expect("depth"), 2);

    let claimed = a.claim_outbox(now, 10, lease).await.expect("claim");
    let got: Vec<_> = claimed
        .iter()
        .map(|i| (i.state_key.as_str(), i.content["n"].as_u64()))
        .collect();
    assert_eq!(got, [("k1", Some(2)), ("k2", Some(1))]);
    assert!(claimed
        .iter()
        .all(|i| i.attempts == 1 && i.claimed_until == Some(now + lease)));
    // Another replica gets nothing while they are leased.
    assert!(b
        .claim_outbox(now + 1, 10, lease)
        .await
        .expect("claim")
        .is_empty());

    let (k1, k2) = (&claimed[0], &claimed[1]);
    // New content for k1 while its predecessor is being published: it
    // supersedes the in-flight one but waits until that one is done, so
    // the newest content is published last.
    b.enqueue_outbox(item("k1", 3), now + 2, None)
        .await
        .expect("enqueue");
    assert!(b
        .claim_outbox(now + 3, 10, lease)
        .await
        .expect("claim")
        .is_empty());
    a.mark_published(k1.id, "$event1", now + 4)
        .await
        .expect("published");
    let next = b.claim_outbox(now + 5, 10, lease).await.expect("claim");
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].content["n"].as_u64(), Some(3));
    let first = a
        .get_outbox_item(k1.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(first.state, OutboxState::Superseded);
    assert_eq!(first.event_id.as_deref(), Some("$event1"));
    b.mark_published(next[0].id, "$event3", now + 6)
        .await
        .expect("published");
    let third = a
        .get_outbox_item(next[0].id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(third.state, OutboxState::Published);
    assert_eq!(third.published_at, Some(now + 6));

    // Failure: retried no earlier than asked, attempts counted.
    a.mark_failed(k2.id, "homeserver said 502", now + 60_000)
        .await
        .expect("failed");
    assert!(a
        .claim_outbox(now + 59_999, 10, lease)
        .await
        .expect("claim")
        .is_empty());
    let retry = b
        .claim_outbox(now + 60_000, 10, lease)
        .await
        .expect("claim");
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].attempts, 2);
    assert_eq!(retry[0].last_error.as_deref(), Some("homeserver said 502"));
    // A publisher that dies: the lease runs out and another one takes over.
    assert!(a
        .claim_outbox(now + 60_000 + lease - 1, 10, lease)
        .await
        .expect("claim")
        .is_empty());
    let taken = a
        .claim_outbox(now + 60_001 + lease, 10, lease)
        .await
        .expect("claim");
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].attempts, 3);
    a.mark_published(taken[0].id, "$event2", now + 70_000 + lease)
        .await
        .expect("published");
    assert_eq!(a.outbox_depth().await.expect("depth"), 0);
    assert!(matches!(
        a.mark_published(999_999, "$x", now).await,
        Err(StoreError::NotFound { .. })
    ));

    // Concurrent claimers never get the same item.
    for i in 0..100 {
        a.enqueue_outbox(item(&format!("bulk{i}"), i), now, None)
            .await
            .expect("enqueue");
    }
    let claim_all = |store: Store| async move {
        let mut ids = Vec::new();
        loop {
            let got = store
                .claim_outbox(now + 200_000, 7, lease)
                .await
                .expect("claim");
            if got.is_empty() {
                break ids;
            }
            ids.extend(got.iter().map(|i| i.id));
        }
    };
    let (x, y) = tokio::join!(
        tokio::spawn(claim_all(a.clone())),
        tokio::spawn(claim_all(b.clone()))
    );
    let mut ids: Vec<i64> = x
        .expect("task")
        .into_iter()
        .chain(y.expect("task"))
        .collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((n, ids.len()), (100, 100));

    assert!(a.purge_outbox(now + 1_000_000).await.expect("purge") >= 3);
    assert_eq!(assert_chain_ok(&a).await, 1);
}

async fn audit_chain_detects_tampering(db: Db) {
    let store = db.open().await;
    let report = store.verify_audit_chain().await.expect("verify");
    assert!(report.is_ok());
    assert_eq!(report.entries, 0);
    for i in 0..7 {
        let seq = store
            .append_audit(
                AuditEntry {
                    actor: "operator:alice".to_owned(),
                    action: "enrollment.refused".to_owned(),
                    subject: if i % 2 == 0 {
                        Some(format!("@u{i}:x"))
                    } else {
                        None
                    },
                    details: json!({ "reason": "user not allowed", "i": i }),
                },
                T0 + i,
            )
            .await
            .expect("append");
        assert_eq!(seq, u64::try_from(i + 1).unwrap_or(0));
    }
    let report = store.verify_audit_chain().await.expect("verify");
    assert!(report.is_ok(), "{report:?}");
    assert_eq!((report.entries, report.head_seq), (7, 7));
    let entries = store.list_audit(0, 100).await.expect("list");
    assert_eq!(report.head_hash, entries[6].hash);
    assert!(entries.iter().all(|e| e.compute_hash() == e.hash));

    // The database itself refuses edits of the log...
    let edit = "UPDATE audit_log SET details = '{\"reason\":\"nothing to see\"}' WHERE seq = 3";
    let refused = sqlx::query(edit).execute(store.pool()).await;
    assert!(refused.is_err(), "append-only trigger missing");
    let refused = sqlx::query("DELETE FROM audit_log WHERE seq = 7")
        .execute(store.pool())
        .await;
    assert!(refused.is_err(), "append-only trigger missing");

    // ...but someone with DDL rights can drop the guard; the chain notices.
    let drop_guard = match store.backend() {
        Backend::Sqlite => "DROP TRIGGER audit_log_no_update",
        Backend::Postgres => "DROP TRIGGER audit_log_append_only ON audit_log",
    };
    sqlx::query(drop_guard)
        .execute(store.pool())
        .await
        .expect("drop trigger");
    sqlx::query(edit)
        .execute(store.pool())
        .await
        .expect("tamper");
    let report = store.verify_audit_chain().await.expect("verify");
    assert_eq!(report.first_broken, Some(3), "{report:?}");
    assert_eq!(report.entries, 3);
    assert!(report
        .reason
        .as_deref()
        .unwrap_or("")
        .contains("does not match"));
}

async fn operator_tokens(db: Db) {
    let store = db.open().await;
    let hash = sha256_hex(b"secret-token-1");
    let mut token = OperatorToken::new(
        "alice",
        hash.clone(),
        vec![OperatorRole::Registrar, OperatorRole::Revoker],
        T0,
    );
    token.expires_at = Some(T0 + 1_000_000);
    store
        .insert_operator_token(token.clone(), audit("operator.created", "alice"))
        .await
        .expect("insert");
    assert_eq!(
        store
            .find_operator_by_token_hash(&hash)
            .await
            .expect("find"),
        Some(token.clone())
    );
    assert!(token.is_active(T0) && !token.is_active(T0 + 1_000_000));
    assert_eq!(
        store
            .find_operator_by_token_hash(&sha256_hex(b"other"))
            .await
            .expect("find"),
        None
    );
    let mut same_hash = token.clone();
    same_hash.name = "bob".to_owned();
    let dup = store
        .insert_operator_token(same_hash, audit("operator.created", "bob"))
        .await;
    assert!(matches!(dup, Err(StoreError::Duplicate { .. })), "{dup:?}");

    // Rotation: the old hash no longer finds it, the new one does.
    let rotated = sha256_hex(b"secret-token-2");
    store
        .rotate_operator_token(
            "alice",
            &rotated,
            T0 + 5,
            audit("operator.rotated", "alice"),
        )
        .await
        .expect("rotate");
    assert_eq!(
        store
            .find_operator_by_token_hash(&hash)
            .await
            .expect("find"),
        None
    );
    let found = store
        .find_operator_by_token_hash(&rotated)
        .await
        .expect("find")
        .expect("rotated token");
    assert_eq!(found.rotated_at, Some(T0 + 5));
    assert_eq!(
        found.roles,
        [OperatorRole::Registrar, OperatorRole::Revoker]
    );
    assert!(matches!(
        store
            .rotate_operator_token(
                "nobody",
                &sha256_hex(b"x"),
                T0 + 6,
                audit("operator.rotated", "nobody")
            )
            .await,
        Err(StoreError::NotFound { .. })
    ));

    // Revocation keeps the row, marks it, and is idempotent; a revoked
    // token cannot be rotated.
    assert_eq!(
        store
            .revoke_operator_token("alice", T0 + 7, audit("operator.revoked", "alice"))
            .await
            .expect("revoke"),
        TokenRevocation::Revoked
    );
    assert_eq!(
        store
            .revoke_operator_token("alice", T0 + 8, audit("operator.revoked", "alice"))
            .await
            .expect("revoke again"),
        TokenRevocation::AlreadyRevoked
    );
    let listed = store.list_operator_tokens().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].revoked_at, Some(T0 + 7));
    assert!(!listed[0].is_active(T0 + 7));
    assert!(matches!(
        store
            .rotate_operator_token(
                "alice",
                &sha256_hex(b"y"),
                T0 + 9,
                audit("operator.rotated", "alice")
            )
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .revoke_operator_token("nobody", T0 + 9, audit("operator.revoked", "nobody"))
            .await,
        Err(StoreError::NotFound { .. })
    ));

    store
        .delete_operator_token("alice", T0 + 10, audit("operator.deleted", "alice"))
        .await
        .expect("delete");
    assert_eq!(
        store
            .find_operator_by_token_hash(&rotated)
            .await
            .expect("find"),
        None
    );
    assert!(matches!(
        store
            .delete_operator_token("alice", T0 + 11, audit("operator.deleted", "alice"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    // Only the changes that happened were audited, and the chain holds.
    assert!(store.verify_audit_chain().await.expect("verify").is_ok());
}

/// `list_certificates`: filters, (created_at, serial) order and keyset
/// paging, on both backends (the statement is assembled at run time).
async fn certificate_listing(db: Db) {
    let store = db.open().await;
    store
        .insert_authority(authority(AUTH), audit("authority.created", AUTH))
        .await
        .expect("authority");
    let day = 86_400_000;
    let now = T0 + 100 * day;
    // (serial, user, created_at, not_after)
    let rows = [
        ("01", "@a:localhost", T0, T0 + day),            // expired
        ("02", "@a:localhost", T0 + day, now + day),     // live
        ("03", "@b:localhost", T0 + day, now + 9 * day), // live, tie on created_at
        ("04", "@b:localhost", T0 + 2 * day, now + day), // revoked below
    ];
    for (serial, user, created, not_after) in rows {
        let mut cert = device_cert(serial, user, &format!("D{serial}"), not_after);
        cert.created_at = created;
        store
            .insert_certificate(cert, None, audit("certificate.issued", serial))
            .await
            .expect("insert");
    }
    let mut renewal = device_cert("05", "@b:localhost", "D03", now + 30 * day);
    renewal.created_at = T0 + 3 * day;
    renewal.renewed_from = Some("03".into());
    store
        .insert_certificate(renewal, None, audit("certificate.issued", "05"))
        .await
        .expect("renewal");
    store
        .revoke(
            "04",
            "keyCompromise",
            T0 + 4 * day,
            None,
            audit("certificate.revoked", "04"),
        )
        .await
        .expect("revoke");

    let list = |q: CertificateQuery| {
        let store = store.clone();
        async move {
            store
                .list_certificates(&q)
                .await
                .expect("list")
                .into_iter()
                .map(|c| c.serial)
                .collect::<Vec<_>>()
        }
    };
    let base = CertificateQuery {
        now,
        limit: 100,
        ..Default::default()
    };
    assert_eq!(list(base.clone()).await, ["01", "02", "03", "04", "05"]);
    // Paging by the last (created_at, serial), across the created_at tie.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_certificates(&CertificateQuery {
                after: after.clone(),
                limit: 2,
                ..base.clone()
            })
            .await
            .expect("page");
        let Some(last) = page.last() else { break };
        after = Some((last.created_at, last.serial.clone()));
        seen.extend(page.iter().map(|c| c.serial.clone()));
    }
    assert_eq!(seen, ["01", "02", "03", "04", "05"]);
    for (status, expected) in [
        (ListedStatus::Live, vec!["02", "05"]),
        (ListedStatus::Expired, vec!["01"]),
        (ListedStatus::Revoked, vec!["04"]),
        (ListedStatus::Superseded, vec!["03"]),
    ] {
        let got = list(CertificateQuery {
            status: Some(status),
            ..base.clone()
        })
        .await;
        assert_eq!(got, expected, "{status:?}");
    }
    let by_user = list(CertificateQuery {
        user_id: Some("@b:localhost".into()),
        expiring_before: Some(now + 10 * day),
        ..base.clone()
    })
    .await;
    assert_eq!(by_user, ["03", "04"]);
    let by_authority = list(CertificateQuery {
        authority_id: Some(AUTH.into()),
        status: Some(ListedStatus::Live),
        after: Some((T0 + day, "02".into())),
        ..base.clone()
    })
    .await;
    assert_eq!(by_authority, ["05"]);
    let nobody = list(CertificateQuery {
        authority_id: Some("DE-NOBODY".into()),
        ..base
    })
    .await;
    assert!(nobody.is_empty());
}

/// Two service instances on one database issue 2,000 certificates from many
/// tasks: every serial is stored exactly once, nothing is lost, the audit
/// chain verifies.
async fn concurrent_issuance_two_stores(db: Db) {
    const TASKS: usize = 40;
    const PER_TASK: usize = 50;
    let a = with_authority(&db).await;
    let b = db.open().await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = if t % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut serials = Vec::with_capacity(PER_TASK);
            for i in 0..PER_TASK {
                let user = format!("@office.t{t}:id.bund.example");
                let device = format!("DEV{i}");
                let serial = random_serial();
                store
                    .insert_certificate(
                        device_cert(&serial, &user, &device, T0 + 30 * DAY),
                        Some(attestation(&user, &device, &serial)),
                        AuditEntry::new(
                            format!("agency:{AUTH}"),
                            "certificate.issued",
                            &serial,
                            json!({ "user_id": user, "device_id": device }),
                        ),
                    )
                    .await
                    .expect("issue");
                serials.push(serial);
            }
            serials
        }));
    }
    let mut issued = Vec::new();
    for t in tasks {
        issued.extend(t.await.expect("task"));
    }
    let elapsed = started.elapsed();
    let total = TASKS * PER_TASK;
    eprintln!(
        "{:?}: {total} issuances through 2 stores in {elapsed:.2?} ({:.0}/s)",
        a.backend(),
        total as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(issued.len(), total);
    let unique: HashSet<_> = issued.iter().collect();
    assert_eq!(unique.len(), total);

    let rows = sqlx::query("SELECT serial FROM certificates")
        .fetch_all(a.pool())
        .await
        .expect("serials");
    let stored: Vec<String> = rows.iter().map(|r| r.get("serial")).collect();
    assert_eq!(stored.len(), total);
    assert_eq!(stored.iter().collect::<HashSet<_>>(), unique);
    assert_eq!(a.outbox_depth().await.expect("depth"), total as u64);
    let entries = assert_chain_ok(&b).await;
    assert_eq!(entries, total as u64 + 1);
    // Every issuance has exactly one audit entry naming its serial.
    assert_eq!(
        count(
            &a,
            "SELECT COUNT(DISTINCT subject) FROM audit_log WHERE action = 'certificate.issued'"
        )
        .await,
        i64::try_from(total).unwrap_or(0)
    );
}

/// Issuance throughput through two stores with many concurrent callers
/// (like a busy HTTP API). Not part of the normal run; e.g.
/// `cargo test --release --test storage throughput -- --ignored --nocapture`.
/// `GOVTRUST_STORAGE_BENCH_TASKS` (default 200) callers issue
/// `GOVTRUST_STORAGE_BENCH_TOTAL` (default 10000) certificates in all.
async fn throughput(db: Db) {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    // RUST_LOG=govtrust_service::storage=debug shows every batch.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let tasks_n = env("GOVTRUST_STORAGE_BENCH_TASKS", 200).max(1);
    let total = env("GOVTRUST_STORAGE_BENCH_TOTAL", 10_000);
    let per_task = total / tasks_n;
    let a = with_authority(&db).await;
    let b = db.open().await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..tasks_n {
        let store = if t % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            for i in 0..per_task {
                let user = format!("@office.t{t}:id.bund.example");
                let device = format!("DEV{i}");
                let serial = random_serial();
                store
                    .insert_certificate(
                        device_cert(&serial, &user, &device, T0 + 30 * DAY),
                        Some(attestation(&user, &device, &serial)),
                        AuditEntry::new(
                            format!("agency:{AUTH}"),
                            "certificate.issued",
                            &serial,
                            json!({ "user_id": user, "device_id": device }),
                        ),
                    )
                    .await
                    .expect("issue");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let elapsed = started.elapsed();
    let n = per_task * tasks_n;
    eprintln!(
        "{:?}: {n} issuances, {tasks_n} callers, 2 stores: {elapsed:.2?} ({:.0}/s)",
        a.backend(),
        n as f64 / elapsed.as_secs_f64()
    );
    let verify = Instant::now();
    let entries = assert_chain_ok(&a).await;
    eprintln!(
        "{:?}: verified {entries} audit entries in {:.2?}",
        a.backend(),
        verify.elapsed()
    );
}

mod throughput {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark; run with --release --ignored"]
    async fn sqlite() {
        super::run_sqlite(super::throughput).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark; run with --release --ignored"]
    async fn postgres() {
        super::run_postgres(super::throughput).await;
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL over TLS

/// Whether a store's own connection to PostgreSQL is encrypted.
/// A store opened the way the service opens it from `config` (validated,
/// its URL and pool options), in `db`'s schema.
async fn open_configured(
    db: &Db,
    config: govtrust_service::config::Config,
) -> Result<Store, StoreError> {
    config.validate().expect("a valid [database] configuration");
    let options = StoreOptions {
        pg_schema: db.schema.clone(),
        ..config.store_options()
    };
    Store::connect_with(&config.database_url(), options).await
}

async fn connection_is_tls(store: &Store) -> bool {
    sqlx::query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .expect("pg_stat_ssl")
        .get::<bool, _>("ssl")
}

/// The `[database]` TLS settings reach the connection: `verify-ca` against
/// the server certificate's own issuer connects over TLS, `verify-ca`
/// against another CA is refused (the server is not who the operator
/// pinned), `disable` connects in the clear. Uses the server's own
/// certificate as the pinned CA (read from `ssl_cert_file`, as a test on
/// the database host can).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls() {
    run_postgres(over_tls).await;
}

async fn over_tls(db: Db) {
    let url = db.url.clone();
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
    let ssl: String = sqlx::query("SELECT current_setting('ssl') AS v")
        .fetch_one(&mut conn)
        .await
        .expect("ssl")
        .get("v");
    let cert_file: String = sqlx::query("SELECT current_setting('ssl_cert_file') AS v")
        .fetch_one(&mut conn)
        .await
        .expect("ssl_cert_file")
        .get("v");
    let _ = conn.close().await;
    let server_cert = match (ssl.as_str(), std::fs::read(&cert_file)) {
        ("on", Ok(pem)) => pem,
        (ssl, read) => {
            let why = format!(
                "the server at {PG_ENV} offers no TLS certificate this test can read \
                 (ssl = {ssl}, {cert_file}: {:?})",
                read.err()
            );
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("notice: {why}; skipping");
            return;
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let pinned = dir.path().join("server-ca.pem");
    std::fs::write(&pinned, server_cert).expect("write");
    let open = |mode: &str, root: Option<std::path::PathBuf>| {
        let mut config = govtrust_service::config::Config::default();
        config.database.url = Some(url.clone());
        config.database.ssl_mode = Some(mode.to_owned());
        config.database.ssl_root_cert = root;
        open_configured(&db, config)
    };

    let store = open("verify-ca", Some(pinned)).await.expect("verify-ca");
    assert!(
        connection_is_tls(&store).await,
        "verify-ca connected in the clear"
    );
    store.close().await;

    let other_ca =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("certs-example/ca/root/cert.pem");
    let refused = match open("verify-ca", Some(other_ca)).await {
        Ok(_) => panic!("a server whose certificate another CA signed was accepted"),
        Err(e) => e.to_string(),
    };
    eprintln!("verify-ca against another CA: {refused}");
    assert!(
        refused.contains("certificate") || refused.contains("UnknownIssuer"),
        "refused for another reason: {refused}"
    );

    let store = open("disable", None).await.expect("disable");
    assert!(!connection_is_tls(&store).await, "disable used TLS");
    store.close().await;
}

/// A database on the same host over its Unix socket
/// (`postgres://USER@localhost/DB?host=DIR`): the configuration accepts the
/// URL, the store connects without TCP (the server sees no client address)
/// and issues through its writer as over TCP. The socket directory is the
/// server's own `unix_socket_directories`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_unix_socket() {
    run_postgres(over_unix_socket).await;
}

async fn over_unix_socket(db: Db) {
    let mut conn = sqlx::AnyConnection::connect(&db.url)
        .await
        .expect("connect");
    let row = sqlx::query(
        "SELECT current_user::text AS usr, current_database()::text AS db, \
         current_setting('port') AS port, current_setting('unix_socket_directories') AS dirs",
    )
    .fetch_one(&mut conn)
    .await
    .expect("settings");
    let _ = conn.close().await;
    let (user, database, port, dirs): (String, String, String, String) = (
        row.get("usr"),
        row.get("db"),
        row.get("port"),
        row.get("dirs"),
    );
    let socket = format!(".s.PGSQL.{port}");
    let Some(dir) = dirs
        .split(',')
        .map(str::trim)
        .find(|d| std::path::Path::new(d).join(&socket).exists())
    else {
        let why = format!("the server at {PG_ENV} has no Unix socket here (directories {dirs:?})");
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("notice: {why}; skipping");
        return;
    };
    let mut config = govtrust_service::config::Config::default();
    config.database.url = Some(format!(
        "postgres://{user}@localhost:{port}/{database}?host={dir}"
    ));
    let store = open_configured(&db, config)
        .await
        .expect("connect over the socket");
    let over_socket: bool = sqlx::query("SELECT inet_client_addr() IS NULL AS local")
        .fetch_one(store.pool())
        .await
        .expect("client address")
        .get("local");
    assert!(over_socket, "the store connected over TCP");
    store
        .insert_authority(authority(AUTH), audit("authority.created", AUTH))
        .await
        .expect("insert authority");
    let serial = random_serial();
    let user_id = "@office.one:id.bund.example";
    store
        .insert_certificate(
            device_cert(&serial, user_id, "SOCKET1", T0 + DAY),
            Some(attestation(user_id, "SOCKET1", &serial)),
            audit("certificate.issued", &serial),
        )
        .await
        .expect("issued over the socket");
    assert_eq!(assert_chain_ok(&store).await, 2);
    store.close().await;
}

/// A store on `db` whose connections use generic plans from the first run
/// of each statement (what every connection settles on after five), made
/// while `certificates` holds 300 valid certificates of 16 other users and
/// no statistics: a fresh deployment, or autovacuum off. The certificates
/// are written directly, so that no connection has planned anything yet.
async fn store_with_generic_plans(db: &Db) -> Store {
    let store = with_authority(db).await;
    sqlx::query(
        "INSERT INTO certificates (serial, issuing_ca, kind, user_id, device_id, key, \
         authority_id, not_before, not_after, der, status, created_at) \
         SELECT md5(i::text), $1, 'device', '@fill' || (i % 16) || ':id.bund.example', \
         'FILL' || i, $2, $3, $4, $5 + i, '\\x00'::bytea, 'valid', $4 \
         FROM generate_series(1, 300) AS i",
    )
    .bind(CA)
    .bind(KEY)
    .bind(AUTH)
    .bind(T0)
    .bind(T0 + DAY)
    .execute(store.pool())
    .await
    .expect("fill");
    store.close().await;

    let separator = if db.url.contains('?') { '&' } else { '?' };
    let generic = Db {
        url: format!(
            "{}{separator}options=-c%20plan_cache_mode%3Dforce_generic_plan",
            db.url
        ),
        schema: db.schema.clone(),
    };
    let store = generic.open().await;
    let mode: String = sqlx::query("SELECT current_setting('plan_cache_mode') AS v")
        .fetch_one(store.pool())
        .await
        .expect("plan_cache_mode")
        .get("v");
    assert_eq!(
        mode, "force_generic_plan",
        "the connection option was not applied"
    );
    store
}

/// Closes `store` (its server processes report their index scans as they
/// end) and returns the scans of each index on `certificates` in `db`'s
/// schema, once at least `expected` have been reported.
async fn certificate_index_scans(store: Store, db: &Db, expected: i64) -> HashMap<String, i64> {
    store.close().await;
    let schema = db.schema.clone().unwrap_or_default();
    let mut conn = sqlx::AnyConnection::connect(&db.url)
        .await
        .expect("connect");
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let rows = sqlx::query(
            "SELECT indexrelname::text AS name, idx_scan FROM pg_stat_user_indexes \
             WHERE schemaname = $1 AND relname = 'certificates' AND idx_scan > 0",
        )
        .bind(schema.clone())
        .fetch_all(&mut conn)
        .await
        .expect("stats");
        let scans: HashMap<String, i64> = rows
            .iter()
            .map(|r| (r.get::<String, _>("name"), r.get::<i64, _>("idx_scan")))
            .collect();
        if scans.values().sum::<i64>() >= expected || Instant::now() > deadline {
            let _ = conn.close().await;
            assert!(
                scans.values().sum::<i64>() >= expected,
                "the scans never reached the statistics: {scans:?}"
            );
            return scans;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// An enrollment's live-binding lookup keeps to `certificates_live_binding`
/// under generic plans made on a small table without statistics: migration
/// 0010 leaves the renewal index, which also covers "valid, ordered by
/// notAfter", nothing the lookup can use. With the old renewal index this
/// plan walked every valid certificate per enrollment (govtrust-bench:
/// 667 buffer reads per enrollment at 20,000 certificates).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_enrollment_keeps_to_the_binding_index() {
    run_postgres(enrollment_keeps_to_the_binding_index).await;
}

async fn enrollment_keeps_to_the_binding_index(db: Db) {
    let store = store_with_generic_plans(&db).await;
    let user = "@office.one:id.bund.example";
    for n in 0..4 {
        let id = format!("plan{n}");
        let device = format!("DEVICE{n}");
        store
            .insert_challenge(&Challenge {
                device_id: device.clone(),
                ..challenge(&id, T0 + 60_000)
            })
            .await
            .expect("challenge");
        let serial = random_serial();
        store
            .enroll_certificate(
                claim(&id, &device, T0 + 1),
                device_cert(&serial, user, &device, T0 + DAY),
                None,
                audit("certificate.issued", &serial),
            )
            .await
            .expect("store")
            .expect("challenge accepted");
    }
    let scans = certificate_index_scans(store, &db, 4).await;
    assert_eq!(
        scans.get("certificates_renewal_due"),
        None,
        "enrollments walked the renewal index: {scans:?}"
    );
    assert_eq!(
        scans.get("certificates_live_binding"),
        Some(&4),
        "{scans:?}"
    );
}

/// The renewal claim selects through the renewal index and updates what it
/// selected by primary key, under generic plans made on a small table
/// without statistics. Its former spelling (`serial IN (...) AND status =
/// 'valid'`) got a plan that walked a partial index of every valid
/// certificate and ran the selection again for each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_renewal_claim_keeps_to_its_indexes() {
    run_postgres(renewal_claim_keeps_to_its_indexes).await;
}

async fn renewal_claim_keeps_to_its_indexes(db: Db) {
    let store = store_with_generic_plans(&db).await;
    let claimed = store
        .claim_due_renewals(T0 + 2 * DAY, T0 + 1, 60_000, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 10, "the ten that end first");
    let scans = certificate_index_scans(store, &db, 2).await;
    let unexpected: Vec<&String> = scans
        .keys()
        .filter(|name| !["certificates_renewal_due", "certificates_pkey"].contains(&name.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "the claim walked {unexpected:?}: {scans:?}"
    );
    assert_eq!(scans.get("certificates_renewal_due"), Some(&1), "{scans:?}");
}

// ---------------------------------------------------------------------------
// A connection lost during a one-statement call

/// A TCP proxy in front of PostgreSQL that, once the client has sent bytes
/// containing `marker`, keeps forwarding what the client sends, drops the
/// server's answer and closes the client's connection as that answer
/// arrives: the server has run (and committed) the call, and the client
/// never hears of it. Other connections, and everything before the marker,
/// pass untouched. Returns the proxy's port.
async fn cutting_proxy(server: String, marker: Vec<u8>) -> u16 {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let port = listener.local_addr().expect("proxy address").port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(upstream) = tokio::net::TcpStream::connect(&server).await else {
                continue;
            };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = upstream.into_split();
            let cut = Arc::new(AtomicBool::new(false));
            let answered = Arc::new(tokio::sync::Notify::new());
            let marker = marker.clone();
            let (cut_up, answered_up) = (cut.clone(), answered.clone());
            tokio::spawn(async move {
                // The last bytes seen, so that a marker split across reads
                // is still found.
                let mut window: Vec<u8> = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = tokio::select! {
                        _ = answered_up.notified() => break,
                        read = client_read.read(&mut buf) => match read {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        },
                    };
                    window.extend_from_slice(&buf[..n]);
                    if window.windows(marker.len()).any(|w| w == marker.as_slice()) {
                        // Set before the server can answer.
                        cut_up.store(true, Ordering::SeqCst);
                    }
                    let keep = window.len().saturating_sub(marker.len() - 1);
                    window.drain(..keep);
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = server_read.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if cut.load(Ordering::SeqCst) {
                        // PostgreSQL answers a call after its Sync, that is
                        // after the commit: drop the answer, close both ways.
                        answered.notify_one();
                        break;
                    }
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// A store on `db` whose connections go through [`cutting_proxy`], cut
/// once they carry `marker`.
async fn store_cut_at(db: &Db, marker: &str) -> Store {
    let mut url = reqwest::Url::parse(&db.url).expect("database URL");
    let server = format!(
        "{}:{}",
        url.host_str().expect("database host"),
        url.port().unwrap_or(5432)
    );
    let port = cutting_proxy(server, marker.as_bytes().to_vec()).await;
    url.set_port(Some(port)).expect("proxy port");
    // In the clear, so that the proxy can see the marker.
    url.query_pairs_mut().append_pair("sslmode", "disable");
    Db {
        url: url.to_string(),
        schema: db.schema.clone(),
    }
    .open()
    .await
}

/// When the connection is lost after a one-statement batch was sent, the
/// writer cannot know whether it committed: it must say so
/// (`CommitFailed`), not report a refusal or redo the change (which would
/// find its own committed row and call it a duplicate). Here the server did
/// commit, which is why "unknown" is the only truthful answer; the store
/// carries on over new connections with its audit chain intact. Both
/// one-statement forms are covered: a challenge and an issuance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lost_connection_during_one_statement() {
    run_postgres(lost_connection_during_one_statement).await;
}

async fn lost_connection_during_one_statement(db: Db) {
    let direct = with_authority(&db).await;
    let user = "@office.one:id.bund.example";

    let challenge_id = format!("lost-{}", random_serial());
    let cut = store_cut_at(&db, &challenge_id).await;
    let result = cut
        .insert_challenge(&challenge(&challenge_id, T0 + 60_000))
        .await;
    assert!(
        matches!(result, Err(StoreError::CommitFailed(_))),
        "challenge on a lost connection: {result:?}"
    );
    cut.close().await;

    let serial = random_serial();
    let cut = store_cut_at(&db, &serial).await;
    let result = cut
        .insert_certificate(
            device_cert(&serial, user, "DEVICE1", T0 + 30 * DAY),
            Some(attestation(user, "DEVICE1", &serial)),
            audit("certificate.issued", &serial),
        )
        .await;
    assert!(
        matches!(result, Err(StoreError::CommitFailed(_))),
        "issuance on a lost connection: {result:?}"
    );
    cut.close().await;

    // Both did commit.
    assert!(direct
        .get_challenge(&challenge_id)
        .await
        .expect("get challenge")
        .is_some());
    assert!(direct
        .get_certificate(&serial)
        .await
        .expect("get certificate")
        .is_some());
    assert_eq!(assert_chain_ok(&direct).await, 2);
    // And the store goes on.
    let next = random_serial();
    let seq = direct
        .insert_certificate(
            device_cert(&next, user, "DEVICE2", T0 + 30 * DAY),
            None,
            audit("certificate.issued", &next),
        )
        .await
        .expect("issue after the lost connection");
    assert_eq!(seq, 3);
    assert_eq!(assert_chain_ok(&direct).await, 3);
}

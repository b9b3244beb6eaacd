//! The writer's statements on `certificates`: issuance (one function call
//! on PostgreSQL, for one issuance or a batch of them; step by step on
//! SQLite; an enrollment consumes its challenge in the same transaction)
//! and superseding.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use sqlx::AnyConnection;
use sqlx::Row;

use super::challenges::{refusal, refusal_of, try_consume, BoundChallenge};
use super::outbox::enqueue;
use super::{Outcome, PreparedOutbox};
use crate::storage::certificates::{binding_query, cert_from_row};
use crate::storage::model::{ChallengeClaim, NewCertificate};
use crate::storage::{Backend, StoreError, StoreResult};

/// Stores an issued certificate with its outbox item (superseding older
/// pending items for the state key, see `outbox::enqueue`), supersedes the
/// certificate it renews, and, for an enrollment, consumes the claimed
/// challenge: all or nothing. Returns the outcome and the id of the queued
/// outbox item, if one was queued (on PostgreSQL the batch supersedes the
/// key's older pending items under the audit head lock, see
/// `outbox::enqueue`).
///
/// The certificate renewed is `renewed_from` if given; for an enrollment
/// (with a claim) without one, it is the binding's live certificate (valid,
/// unexpired, the one that lasts longest), found here rather than read
/// beforehand: one round trip less per enrollment, and the certificate
/// superseded is the one live when the new one is stored.
///
/// On PostgreSQL all of it is one call of `govtrust_issue_batch`
/// (migration 0011), the function a batch of only issuances runs in one
/// round trip ([`issue_postgres`]); SQLite, in process, runs the same steps
/// one by one.
pub(super) async fn issue_certificate(
    conn: &mut AnyConnection,
    backend: Backend,
    issuance: &Issuance<'_>,
    at: i64,
) -> StoreResult<(Outcome, Option<i64>)> {
    if backend == Backend::Postgres {
        let array = format!("[{}]", issuance.json(None));
        let batch = issue_postgres(conn, &array, false).await?;
        let [issued] = batch.results.as_slice() else {
            return Err(StoreError::Corrupt(format!(
                "govtrust_issue_batch answered {} results for one issuance",
                batch.results.len()
            )));
        };
        return Ok((issued.outcome(issuance.claim), issued.outbox_id));
    }
    let Issuance {
        cert: c,
        outbox,
        claim,
    } = *issuance;
    if let Some(claim) = claim {
        if !try_consume(conn, claim).await? {
            return Ok((Outcome::Challenge(refusal(conn, claim).await?), None));
        }
    }
    let renewed = match &c.renewed_from {
        Some(serial) => Some(serial.clone()),
        None if issuance.find_live() => live_serial_sqlite(conn, c).await?,
        None => None,
    };
    let (outbox_id, inserted) =
        insert_certificate_sqlite(conn, c, renewed.as_deref(), outbox, at).await?;
    if !inserted {
        if let Some(claim) = claim {
            // Nothing of a refused op may remain: give the challenge back.
            sqlx::query("UPDATE challenges SET used_at = NULL WHERE id = $1")
                .bind(claim.id.as_str())
                .execute(&mut *conn)
                .await?;
        }
        return Ok((Outcome::Duplicate, None));
    }
    Ok((Outcome::Done, outbox_id))
}

/// One issuance as the writer applies it: the certificate, the outbox item
/// that publishes it, and for an enrollment the claim on its challenge.
#[derive(Clone, Copy)]
pub(super) struct Issuance<'a> {
    pub cert: &'a NewCertificate,
    pub outbox: Option<&'a PreparedOutbox>,
    pub claim: Option<&'a ChallengeClaim>,
}

impl Issuance<'_> {
    /// Whether the certificate renewed is the binding's live one, looked up
    /// at issuance (an enrollment that names none).
    fn find_live(&self) -> bool {
        self.claim.is_some() && self.cert.renewed_from.is_none()
    }

    /// The issuance as `govtrust_issue_batch` reads it, with the audit
    /// entry to append if the certificate is stored.
    pub fn json(&self, audit: Option<serde_json::Value>) -> serde_json::Value {
        let c = self.cert;
        serde_json::json!({
            "serial": c.serial,
            "issuing_ca": c.issuing_ca,
            "kind": c.kind.as_str(),
            "user_id": c.user_id,
            "device_id": c.device_id,
            "key": c.key,
            "authority_id": c.authority_id,
            "not_before": c.not_before,
            "not_after": c.not_after,
            "der": STANDARD.encode(&c.der),
            "renewed_from": c.renewed_from,
            "created_at": c.created_at,
            "find_live": self.find_live(),
            "outbox_kind": self.outbox.map(|o| &o.kind),
            "outbox_state_key": self.outbox.map(|o| &o.state_key),
            "outbox_content": self.outbox.map(|o| &o.content),
            "claim_id": self.claim.map(|k| &k.id),
            "claim_authority": self.claim.map(|k| &k.authority_id),
            "claim_user": self.claim.map(|k| &k.user_id),
            "claim_device": self.claim.map(|k| &k.device_id),
            "claim_key": self.claim.map(|k| &k.key),
            "claim_now": self.claim.map(|k| k.now),
            "audit": audit,
        })
    }
}

/// What `govtrust_issue_batch` answered.
#[derive(Deserialize)]
pub(super) struct IssuedBatch {
    /// The audit head's seq before the batch's entries, if it appended.
    pub first: Option<i64>,
    /// One per issuance, in order.
    pub results: Vec<Issued>,
}

/// What became of one issuance.
#[derive(Deserialize)]
pub(super) struct Issued {
    consumed: bool,
    inserted: bool,
    pub outbox_id: Option<i64>,
    /// The claimed challenge as stored, when the claim was refused.
    challenge: Option<BoundChallenge>,
}

impl Issued {
    /// The op's outcome: a refused claim says why, a serial taken is a
    /// duplicate.
    pub fn outcome(&self, claim: Option<&ChallengeClaim>) -> Outcome {
        match claim {
            Some(claim) if !self.consumed => {
                Outcome::Challenge(refusal_of(claim, self.challenge.as_ref()))
            }
            _ if !self.inserted => Outcome::Duplicate,
            _ => Outcome::Done,
        }
    }
}

/// PostgreSQL: runs the issuances of `array` (a JSON array of
/// [`Issuance::json`]) in order in one call of `govtrust_issue_batch`
/// (migration 0011); with `append`, the call also appends the audit
/// entries of the certificates stored and supersedes the outbox items the
/// batch's items replace (`govtrust_audit_append`, which takes the audit
/// chain head last). Called outside a transaction, that is the whole
/// batch, committed, in one round trip.
pub(super) async fn issue_postgres(
    conn: &mut AnyConnection,
    array: &str,
    append: bool,
) -> StoreResult<IssuedBatch> {
    let row = sqlx::query("SELECT govtrust_issue_batch($1::json, $2)::text AS issued")
        .bind(array)
        .bind(append)
        .fetch_one(&mut *conn)
        .await?;
    let issued: String = row.try_get("issued")?;
    serde_json::from_str(&issued)
        .map_err(|e| StoreError::Corrupt(format!("govtrust_issue_batch answered {e}")))
}

/// SQLite: the binding's live certificate, by the query
/// `Store::find_live_certificate` runs (PostgreSQL's `govtrust_issue_batch`
/// spells the same rule).
async fn live_serial_sqlite(
    conn: &mut AnyConnection,
    c: &NewCertificate,
) -> StoreResult<Option<String>> {
    let query = binding_query!(
        "status = 'valid'",
        "ORDER BY not_after DESC LIMIT 1",
        c.user_id.as_deref(),
        c.kind,
        c.device_id.as_deref(),
        c.created_at
    );
    let row = query.fetch_optional(&mut *conn).await?;
    Ok(row
        .as_ref()
        .map(cert_from_row)
        .transpose()?
        .map(|c| c.serial))
}

/// SQLite's steps of [`issue_certificate`] after the claim: the
/// certificate, its outbox item, the certificate it renews. The outbox
/// item's id and whether the certificate was new.
async fn insert_certificate_sqlite(
    conn: &mut AnyConnection,
    c: &NewCertificate,
    renewed_from: Option<&str>,
    outbox: Option<&PreparedOutbox>,
    at: i64,
) -> StoreResult<(Option<i64>, bool)> {
    let res = bind_certificate(
        sqlx::query(
            "INSERT INTO certificates (serial, issuing_ca, kind, user_id, device_id, key, \
             authority_id, not_before, not_after, der, status, renewed_from, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'valid', $11, $12) \
             ON CONFLICT (serial) DO NOTHING",
        ),
        c,
        renewed_from,
    )
    .execute(&mut *conn)
    .await?;
    if res.rows_affected() == 0 {
        return Ok((None, false));
    }
    let outbox_id = match outbox {
        Some(item) => Some(enqueue(conn, Backend::Sqlite, item, at).await?),
        None => None,
    };
    if let Some(old) = renewed_from {
        supersede_renewed(conn, old).await?;
    }
    Ok((outbox_id, true))
}

/// Binds $1–$12 of SQLite's insert into `certificates` ($11 the
/// certificate renewed).
fn bind_certificate<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    c: &'q NewCertificate,
    renewed_from: Option<&'q str>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(c.serial.as_str())
        .bind(c.issuing_ca.as_str())
        .bind(c.kind.as_str())
        .bind(c.user_id.as_deref())
        .bind(c.device_id.as_deref())
        .bind(c.key.as_str())
        .bind(c.authority_id.as_str())
        .bind(c.not_before)
        .bind(c.not_after)
        .bind(c.der.as_slice())
        .bind(renewed_from)
        .bind(c.created_at)
}

/// Marks a valid certificate superseded. The status test is spelt "neither
/// revoked nor superseded" (the same as "valid", given the CHECK) on
/// purpose: `status = 'valid'` would let PostgreSQL pick a partial index on
/// valid certificates (walking all of them) over the primary key in a plan
/// cached while the table was small.
const SUPERSEDE_SQL: &str = "UPDATE certificates SET status = 'superseded' \
     WHERE serial = $1 AND status NOT IN ('revoked', 'superseded')";

/// Marks the certificate a renewal replaces as superseded (if still valid).
async fn supersede_renewed(conn: &mut AnyConnection, serial: &str) -> StoreResult<()> {
    sqlx::query(SUPERSEDE_SQL)
        .bind(serial)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Marks a valid certificate superseded without a successor;
/// [`Outcome::Unchanged`] if it was not valid (or is unknown).
pub(super) async fn supersede(conn: &mut AnyConnection, serial: &str) -> StoreResult<Outcome> {
    let res = sqlx::query(SUPERSEDE_SQL)
        .bind(serial)
        .execute(&mut *conn)
        .await?;
    Ok(if res.rows_affected() == 0 {
        Outcome::Unchanged
    } else {
        Outcome::Done
    })
}

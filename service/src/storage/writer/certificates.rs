//! The writer's statements on `certificates`: issuance (all in one
//! statement on PostgreSQL, step by step on SQLite; an enrollment consumes
//! its challenge in the same transaction) and superseding.

use sqlx::AnyConnection;
use sqlx::Row;

use super::challenges::{refusal, try_consume};
use super::outbox::enqueue;
use super::{Outcome, PreparedOutbox};
use crate::storage::certificates::{binding_query, cert_from_row};
use crate::storage::model::{ChallengeClaim, NewCertificate};
use crate::storage::{Backend, StoreResult};

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
/// On PostgreSQL all of it is one statement (one round trip on the
/// serialised path, where round trips are what limits throughput under
/// load); SQLite, in process, runs the steps one by one to the same effect.
pub(super) async fn issue_certificate(
    conn: &mut AnyConnection,
    backend: Backend,
    c: &NewCertificate,
    outbox: Option<&PreparedOutbox>,
    claim: Option<&ChallengeClaim>,
    at: i64,
) -> StoreResult<(Outcome, Option<i64>)> {
    let find_live = claim.is_some() && c.renewed_from.is_none();
    let (consumed, outbox_id, inserted) = match backend {
        Backend::Postgres => {
            let sql = if c.device_id.is_some() {
                issue_sql!("device_id = $5")
            } else {
                issue_sql!("device_id IS NULL")
            };
            let row = bind_certificate(sqlx::query(sql), c, c.renewed_from.as_deref())
                .bind(outbox.map(|o| o.kind.as_str()))
                .bind(outbox.map(|o| o.state_key.as_str()))
                .bind(outbox.map(|o| o.content.as_str()))
                .bind(claim.map(|k| k.now))
                .bind(claim.map(|k| k.id.as_str()))
                .bind(claim.map(|k| k.authority_id.as_str()))
                .bind(claim.map(|k| k.user_id.as_str()))
                .bind(claim.map(|k| k.device_id.as_str()))
                .bind(claim.map(|k| k.key.as_str()))
                .bind(find_live)
                .fetch_one(&mut *conn)
                .await?;
            (
                row.try_get::<i64, _>("consumed")? > 0,
                row.try_get::<Option<i64>, _>("outbox_id")?,
                row.try_get::<i64, _>("inserted")? > 0,
            )
        }
        Backend::Sqlite => {
            let consumed = match claim {
                Some(claim) => try_consume(conn, claim).await?,
                None => false,
            };
            let (outbox_id, inserted) = if claim.is_some() && !consumed {
                (None, false)
            } else {
                let renewed = match &c.renewed_from {
                    Some(serial) => Some(serial.clone()),
                    None if find_live => live_serial_sqlite(conn, c).await?,
                    None => None,
                };
                insert_certificate_sqlite(conn, c, renewed.as_deref(), outbox, at).await?
            };
            (consumed, outbox_id, inserted)
        }
    };
    if let Some(claim) = claim {
        if !consumed {
            return Ok((Outcome::Challenge(refusal(conn, claim).await?), None));
        }
    }
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

/// PostgreSQL's issuance statement (see [`issue_certificate`]). `prev` is
/// the certificate renewed: $11, or with $22 the binding's live one as
/// `find_live_certificate` defines it (status valid, not expired at $12,
/// the one that lasts longest); `$device` is the binding's device
/// condition, spelt per case so that `certificates_live_binding` answers
/// the lookup exactly (migration 0004), and the only index that can
/// (migration 0010 keeps `certificates_renewal_due` out of it).
macro_rules! issue_sql {
    ($device:literal) => {
        concat!(
            "WITH ch AS (UPDATE challenges SET used_at = $16::bigint WHERE id = $17::text \
             AND authority_id = $18 AND user_id = $19 AND device_id = $20 AND key = $21 \
             AND used_at IS NULL AND expires_at > $16::bigint RETURNING id), \
             prev AS (SELECT COALESCE($11::text, CASE WHEN $22 THEN (\
             SELECT serial FROM certificates WHERE user_id = $4 AND kind = $3 AND ",
            $device,
            " AND status = 'valid' AND not_after > $12 ORDER BY not_after DESC LIMIT 1\
             ) END) AS serial), \
             c AS (INSERT INTO certificates (serial, issuing_ca, kind, user_id, \
             device_id, key, authority_id, not_before, not_after, der, status, \
             renewed_from, created_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'valid', prev.serial, $12 \
             FROM prev WHERE $17::text IS NULL OR EXISTS (SELECT 1 FROM ch) \
             ON CONFLICT (serial) DO NOTHING RETURNING serial), \
             o AS (INSERT INTO outbox (kind, state_key, content, state, created_at, \
             attempts, next_attempt_at) SELECT $13, $14, $15, 'pending', $12, 0, $12 \
             FROM c WHERE $13::text IS NOT NULL RETURNING id), \
             r AS (UPDATE certificates SET status = 'superseded' \
             WHERE serial = (SELECT serial FROM prev) \
             AND status NOT IN ('revoked', 'superseded') AND EXISTS (SELECT 1 FROM c)) \
             SELECT (SELECT COUNT(*) FROM ch) AS consumed, \
             (SELECT COUNT(*) FROM c) AS inserted, (SELECT id FROM o) AS outbox_id"
        )
    };
}
use issue_sql;

/// SQLite: the binding's live certificate, by the query
/// `Store::find_live_certificate` runs (PostgreSQL's [`issue_sql!`] spells
/// the same rule inside its one statement).
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

/// Binds $1–$12 of an insert into `certificates`, in the column order both
/// backends' statements use ($11 the certificate renewed).
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

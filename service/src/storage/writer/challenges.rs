//! The writer's statements on `challenges`: storing fresh challenges in
//! bulk, consuming one with a single conditional `UPDATE` (so across all
//! replicas at most one caller succeeds), and classifying a refused claim.

use std::collections::HashSet;
use std::sync::OnceLock;

use sqlx::AnyConnection;
use sqlx::Row;

use super::messages::json_arrays;
use super::multi_row::{multi_row_sql, pow2_chunks};
use super::Outcome;
use crate::storage::model::{Challenge, ChallengeClaim, ChallengeOutcome};
use crate::storage::{Backend, StoreResult};

/// Stores one challenge (a bulk of one); [`Outcome::Duplicate`] if the id
/// exists.
pub(super) async fn insert_one(
    conn: &mut AnyConnection,
    backend: Backend,
    c: &Challenge,
) -> StoreResult<Outcome> {
    let inserted = insert_challenges(conn, backend, &[c]).await?;
    Ok(if inserted.is_empty() {
        Outcome::Duplicate
    } else {
        Outcome::Done
    })
}

/// Consumes a challenge without issuing anything (burning it):
/// [`Outcome::Done`], or why the claim was refused.
pub(super) async fn consume(
    conn: &mut AnyConnection,
    claim: &ChallengeClaim,
) -> StoreResult<Outcome> {
    Ok(if try_consume(conn, claim).await? {
        Outcome::Done
    } else {
        Outcome::Challenge(refusal(conn, claim).await?)
    })
}

/// Consumes the claimed challenge if it is unused, unexpired and bound to
/// exactly the claimed authority, user, device and key: one conditional
/// `UPDATE`, so across all replicas at most one caller ever succeeds.
pub(super) async fn try_consume(
    conn: &mut AnyConnection,
    claim: &ChallengeClaim,
) -> StoreResult<bool> {
    let res = sqlx::query(
        "UPDATE challenges SET used_at = $5 WHERE id = $1 AND authority_id = $2 \
         AND user_id = $3 AND device_id = $4 AND key = $6 AND used_at IS NULL \
         AND expires_at > $5",
    )
    .bind(claim.id.as_str())
    .bind(claim.authority_id.as_str())
    .bind(claim.user_id.as_str())
    .bind(claim.device_id.as_str())
    .bind(claim.now)
    .bind(claim.key.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Why a claim could not consume its challenge (after the conditional
/// `UPDATE` matched nothing).
pub(super) async fn refusal(
    conn: &mut AnyConnection,
    claim: &ChallengeClaim,
) -> StoreResult<ChallengeOutcome> {
    let row = sqlx::query(
        "SELECT authority_id, user_id, device_id, key, expires_at, used_at FROM challenges \
         WHERE id = $1",
    )
    .bind(claim.id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let bound = row
        .map(|row| -> StoreResult<BoundChallenge> {
            Ok(BoundChallenge {
                authority_id: row.try_get("authority_id")?,
                user_id: row.try_get("user_id")?,
                device_id: row.try_get("device_id")?,
                key: row.try_get("key")?,
                expires_at: row.try_get("expires_at")?,
                used_at: row.try_get("used_at")?,
            })
        })
        .transpose()?;
    Ok(refusal_of(claim, bound.as_ref()))
}

/// What a stored challenge is bound to, and its state: what decides why a
/// claim on it was refused.
#[derive(serde::Deserialize)]
pub(super) struct BoundChallenge {
    authority_id: String,
    user_id: String,
    device_id: String,
    key: String,
    expires_at: i64,
    used_at: Option<i64>,
}

/// Why `claim` could not consume the challenge `bound` (`None`: there is
/// no challenge with the claimed id).
pub(super) fn refusal_of(
    claim: &ChallengeClaim,
    bound: Option<&BoundChallenge>,
) -> ChallengeOutcome {
    let Some(bound) = bound else {
        return ChallengeOutcome::Unknown;
    };
    if bound.authority_id != claim.authority_id
        || bound.user_id != claim.user_id
        || bound.device_id != claim.device_id
    {
        ChallengeOutcome::WrongBinding
    } else if bound.used_at.is_some() {
        ChallengeOutcome::AlreadyUsed
    } else if bound.expires_at <= claim.now {
        ChallengeOutcome::Expired
    } else if bound.key != claim.key {
        ChallengeOutcome::KeyMismatch
    } else {
        // Unreachable unless the row changed between the statements
        // (e.g. purged and recreated); report it as used.
        ChallengeOutcome::AlreadyUsed
    }
}

/// Stores fresh challenges with as few statements as possible; returns the
/// ids actually inserted (an existing id is skipped, also one repeated
/// within `challenges`). On PostgreSQL that is one statement per
/// [`MESSAGE_BYTES`] of challenges ([`insert_json`]); on SQLite, multi-row
/// inserts.
///
/// [`MESSAGE_BYTES`]: super::messages::MESSAGE_BYTES
pub(super) async fn insert_challenges(
    conn: &mut AnyConnection,
    backend: Backend,
    challenges: &[&Challenge],
) -> StoreResult<HashSet<String>> {
    if backend == Backend::Postgres {
        let items = challenges.iter().map(|c| challenge_json(c)).collect();
        let mut inserted = HashSet::new();
        for array in json_arrays(items) {
            inserted.extend(insert_json(conn, &array).await?);
        }
        return Ok(inserted);
    }
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let mut inserted = HashSet::new();
    for chunk in pow2_chunks(challenges) {
        let sql = multi_row_sql(
            &SQL,
            "INSERT INTO challenges (id, authority_id, user_id, device_id, created_at, \
             expires_at, used_at, kind, proof, key, device_key) VALUES ",
            11,
            |_| " ON CONFLICT (id) DO NOTHING RETURNING id".to_owned(),
            chunk.len(),
        );
        let mut query = sqlx::query(sql);
        for c in chunk {
            query = query
                .bind(c.id.as_str())
                .bind(c.authority_id.as_str())
                .bind(c.user_id.as_str())
                .bind(c.device_id.as_str())
                .bind(c.created_at)
                .bind(c.expires_at)
                .bind(c.used_at)
                .bind(c.kind.as_str())
                .bind(c.proof.as_str())
                .bind(c.key.as_str())
                .bind(c.device_key.as_str());
        }
        for row in query.fetch_all(&mut *conn).await? {
            inserted.insert(row.try_get::<String, _>("id")?);
        }
    }
    Ok(inserted)
}

/// PostgreSQL: stores the challenges of `array` (a JSON array of
/// [`challenge_json`]) in one statement; returns the ids actually inserted.
pub(super) async fn insert_json(
    conn: &mut AnyConnection,
    array: &str,
) -> StoreResult<HashSet<String>> {
    let rows = sqlx::query(
        "INSERT INTO challenges (id, authority_id, user_id, device_id, created_at, \
         expires_at, used_at, kind, proof, key, device_key) \
         SELECT id, authority_id, user_id, device_id, created_at, expires_at, used_at, \
         kind, proof, key, device_key \
         FROM json_to_recordset($1::json) AS c(id text, authority_id text, user_id text, \
         device_id text, created_at bigint, expires_at bigint, used_at bigint, kind text, \
         proof text, key text, device_key text) \
         ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .bind(array)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| Ok(row.try_get::<String, _>("id")?))
        .collect()
}

/// A challenge as PostgreSQL's insert reads it, an item of the JSON arrays
/// of at most [`MESSAGE_BYTES`](super::messages::MESSAGE_BYTES) it takes.
pub(super) fn challenge_json(c: &Challenge) -> String {
    serde_json::json!({
        "id": c.id,
        "authority_id": c.authority_id,
        "user_id": c.user_id,
        "device_id": c.device_id,
        "created_at": c.created_at,
        "expires_at": c.expires_at,
        "used_at": c.used_at,
        "kind": c.kind.as_str(),
        "proof": c.proof,
        "key": c.key,
        "device_key": c.device_key,
    })
    .to_string()
}

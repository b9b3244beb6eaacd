//! The writer's statements on `operator_tokens`: storing, rotating,
//! revoking and deleting a token.

use sqlx::AnyConnection;

use super::{found, Outcome};
use crate::storage::model::{OperatorRole, OperatorToken};
use crate::storage::StoreResult;

/// Stores a token; [`Outcome::Duplicate`] if its name or hash exists.
pub(super) async fn insert(conn: &mut AnyConnection, t: &OperatorToken) -> StoreResult<Outcome> {
    // No conflict target: covers the name and the token hash.
    let res = sqlx::query(
        "INSERT INTO operator_tokens \
         (name, token_hash, roles, created_at, expires_at, revoked_at, rotated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(t.name.as_str())
    .bind(t.token_hash.as_str())
    .bind(OperatorRole::join(&t.roles))
    .bind(t.created_at)
    .bind(t.expires_at)
    .bind(t.revoked_at)
    .bind(t.rotated_at)
    .execute(&mut *conn)
    .await?;
    Ok(if res.rows_affected() == 0 {
        Outcome::Duplicate
    } else {
        Outcome::Done
    })
}

/// Replaces an unrevoked token's hash; [`Outcome::NotFound`] if there is
/// no such token, [`Outcome::Duplicate`] if another token has the hash.
pub(super) async fn rotate(
    conn: &mut AnyConnection,
    name: &str,
    token_hash: &str,
    at: i64,
) -> StoreResult<Outcome> {
    // Checked first, so that the UPDATE cannot fail on the unique index
    // and abort the batch.
    let taken: Option<(String,)> =
        sqlx::query_as("SELECT name FROM operator_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&mut *conn)
            .await?;
    if taken.is_some() {
        return Ok(Outcome::Duplicate);
    }
    let res = sqlx::query(
        "UPDATE operator_tokens SET token_hash = $2, rotated_at = $3 \
         WHERE name = $1 AND revoked_at IS NULL",
    )
    .bind(name)
    .bind(token_hash)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(found(res.rows_affected()))
}

/// Marks a token revoked; [`Outcome::Unchanged`] if it was already,
/// [`Outcome::NotFound`] if there is no such token.
pub(super) async fn revoke(conn: &mut AnyConnection, name: &str, at: i64) -> StoreResult<Outcome> {
    let res = sqlx::query(
        "UPDATE operator_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
    )
    .bind(name)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    if res.rows_affected() > 0 {
        return Ok(Outcome::Done);
    }
    let exists: Option<(String,)> =
        sqlx::query_as("SELECT name FROM operator_tokens WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(if exists.is_some() {
        Outcome::Unchanged
    } else {
        Outcome::NotFound
    })
}

/// Deletes an operator's token; [`Outcome::NotFound`] if none.
pub(super) async fn delete(conn: &mut AnyConnection, name: &str) -> StoreResult<Outcome> {
    let res = sqlx::query("DELETE FROM operator_tokens WHERE name = $1")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(found(res.rows_affected()))
}

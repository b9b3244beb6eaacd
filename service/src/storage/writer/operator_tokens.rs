//! The writer's statements on `operator_tokens`: storing and deleting a
//! token.

use sqlx::AnyConnection;

use super::{found, Outcome};
use crate::storage::model::OperatorToken;
use crate::storage::StoreResult;

/// Stores a token; [`Outcome::Duplicate`] if its name or hash exists.
pub(super) async fn insert(conn: &mut AnyConnection, t: &OperatorToken) -> StoreResult<Outcome> {
    // No conflict target: covers the name and the token hash.
    let res = sqlx::query(
        "INSERT INTO operator_tokens (name, token_hash, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(t.name.as_str())
    .bind(t.token_hash.as_str())
    .bind(t.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(if res.rows_affected() == 0 {
        Outcome::Duplicate
    } else {
        Outcome::Done
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

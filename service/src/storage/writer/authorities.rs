//! The writer's statements on `authorities`: create, replace and change the
//! status of an authority, each reporting whether it applied.

use sqlx::AnyConnection;

use super::{found, Outcome, PreparedAuthority};
use crate::storage::model::AuthorityStatus;
use crate::storage::StoreResult;

/// Inserts an authority; [`Outcome::Duplicate`] if the id exists.
pub(super) async fn insert(
    conn: &mut AnyConnection,
    p: &PreparedAuthority,
) -> StoreResult<Outcome> {
    let a = &p.authority;
    let r = &a.record;
    let res = sqlx::query(
        "INSERT INTO authorities (id, name, unit, street, postal_code, locality, state, \
         country, servers, user_patterns, status, contact, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(r.id.as_str())
    .bind(r.name.as_str())
    .bind(r.unit.as_deref())
    .bind(r.street.as_deref())
    .bind(r.postal_code.as_deref())
    .bind(r.locality.as_deref())
    .bind(r.state.as_deref())
    .bind(r.country.as_deref())
    .bind(p.servers.as_str())
    .bind(p.user_patterns.as_str())
    .bind(a.status.as_str())
    .bind(a.contact.as_deref())
    .bind(a.created_at)
    .bind(a.updated_at)
    .execute(&mut *conn)
    .await?;
    Ok(if res.rows_affected() == 0 {
        Outcome::Duplicate
    } else {
        Outcome::Done
    })
}

/// Replaces an authority's fields (all but `id` and `created_at`).
pub(super) async fn update(
    conn: &mut AnyConnection,
    p: &PreparedAuthority,
) -> StoreResult<Outcome> {
    let a = &p.authority;
    let r = &a.record;
    let res = sqlx::query(
        "UPDATE authorities SET name = $2, unit = $3, street = $4, postal_code = $5, \
         locality = $6, state = $7, country = $8, servers = $9, user_patterns = $10, \
         status = $11, contact = $12, updated_at = $13 WHERE id = $1",
    )
    .bind(r.id.as_str())
    .bind(r.name.as_str())
    .bind(r.unit.as_deref())
    .bind(r.street.as_deref())
    .bind(r.postal_code.as_deref())
    .bind(r.locality.as_deref())
    .bind(r.state.as_deref())
    .bind(r.country.as_deref())
    .bind(p.servers.as_str())
    .bind(p.user_patterns.as_str())
    .bind(a.status.as_str())
    .bind(a.contact.as_deref())
    .bind(a.updated_at)
    .execute(&mut *conn)
    .await?;
    Ok(found(res.rows_affected()))
}

/// Sets an authority's status as of `at`.
pub(super) async fn set_status(
    conn: &mut AnyConnection,
    id: &str,
    status: &AuthorityStatus,
    at: i64,
) -> StoreResult<Outcome> {
    let res = sqlx::query("UPDATE authorities SET status = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(status.as_str())
        .bind(at)
        .execute(&mut *conn)
        .await?;
    Ok(found(res.rows_affected()))
}

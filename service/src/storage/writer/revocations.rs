//! The writer's revocation: marks the certificate revoked, records the
//! revocation for the CRL and queues its state event, or reports why
//! nothing was revoked.

use sqlx::AnyConnection;
use sqlx::Row;

use super::outbox::enqueue;
use super::{Outcome, PreparedOutbox};
use crate::storage::model::RevokeOutcome;
use crate::storage::{Backend, StoreResult};

/// Revokes a valid or superseded certificate as of `at`; with the id of
/// the queued outbox item, if one was queued.
pub(super) async fn revoke(
    conn: &mut AnyConnection,
    backend: Backend,
    serial: &str,
    reason: &str,
    outbox: Option<&PreparedOutbox>,
    at: i64,
) -> StoreResult<(Outcome, Option<i64>)> {
    let row = sqlx::query(
        "UPDATE certificates SET status = 'revoked' \
         WHERE serial = $1 AND status <> 'revoked' RETURNING issuing_ca",
    )
    .bind(serial)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        let exists = sqlx::query("SELECT status FROM certificates WHERE serial = $1")
            .bind(serial)
            .fetch_optional(&mut *conn)
            .await?
            .is_some();
        let outcome = if exists {
            RevokeOutcome::AlreadyRevoked
        } else {
            RevokeOutcome::Unknown
        };
        return Ok((Outcome::Revoke(outcome), None));
    };
    let issuing_ca: String = row.try_get("issuing_ca")?;
    sqlx::query(
        "INSERT INTO revocations (serial, issuing_ca, revoked_at, reason) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(serial)
    .bind(issuing_ca.as_str())
    .bind(at)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    let outbox_id = match outbox {
        Some(item) => Some(enqueue(conn, backend, item, at).await?),
        None => None,
    };
    Ok((Outcome::Revoke(RevokeOutcome::Revoked), outbox_id))
}

//! The writer's outbox statement: queueing an item and superseding the
//! older pending items of its state key, per backend.

use sqlx::AnyConnection;
use sqlx::Row;

use super::PreparedOutbox;
use crate::storage::{Backend, StoreResult};

/// Queues an outbox item and supersedes older pending items for the same
/// state key. Runs only in writer transactions, which are serialised, so
/// afterwards each state key has at most one pending item. On PostgreSQL
/// both happen in one statement (one round trip on the serialised path).
pub(super) async fn enqueue(
    conn: &mut AnyConnection,
    backend: Backend,
    item: &PreparedOutbox,
    at: i64,
) -> StoreResult<()> {
    match backend {
        Backend::Postgres => {
            // The UPDATE does not see the row the INSERT adds (one snapshot
            // per statement), and would spare it anyway (`id <`).
            sqlx::query(
                "WITH ins AS (INSERT INTO outbox (kind, state_key, content, state, created_at, \
                 attempts, next_attempt_at) VALUES ($1, $2, $3, 'pending', $4, 0, $4) RETURNING id) \
                 UPDATE outbox SET state = 'superseded', superseded_by = (SELECT id FROM ins) \
                 WHERE state_key = $2 AND state = 'pending' AND id < (SELECT id FROM ins)",
            )
            .bind(item.kind.as_str())
            .bind(item.state_key.as_str())
            .bind(item.content.as_str())
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        Backend::Sqlite => {
            let row = sqlx::query(
                "INSERT INTO outbox (kind, state_key, content, state, created_at, attempts, \
                 next_attempt_at) VALUES ($1, $2, $3, 'pending', $4, 0, $4) RETURNING id",
            )
            .bind(item.kind.as_str())
            .bind(item.state_key.as_str())
            .bind(item.content.as_str())
            .bind(at)
            .fetch_one(&mut *conn)
            .await?;
            let id: i64 = row.try_get("id")?;
            sqlx::query(
                "UPDATE outbox SET state = 'superseded', superseded_by = $2 \
                 WHERE state_key = $1 AND state = 'pending' AND id < $2",
            )
            .bind(item.state_key.as_str())
            .bind(id)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

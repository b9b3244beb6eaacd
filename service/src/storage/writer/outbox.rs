//! The writer's outbox statements: queueing an item, and superseding the
//! older pending items of its state key (on SQLite right away; on
//! PostgreSQL once the batch holds the audit chain head, see
//! [`super::audit::append_postgres`]).

use sqlx::AnyConnection;
use sqlx::Row;

use super::PreparedOutbox;
use crate::storage::{Backend, StoreResult};

/// Queues an outbox item and returns its id.
///
/// SQLite supersedes the older pending items of the state key right away:
/// its writers hold the database write lock for the whole transaction, so
/// they are serialised anyway. PostgreSQL runs several writer transactions
/// at once (per replica and across replicas), which cannot see each
/// other's uncommitted items; there the batch supersedes them under the
/// audit chain head lock, just before it commits ([`super::audit::append_postgres`]).
pub(super) async fn enqueue(
    conn: &mut AnyConnection,
    backend: Backend,
    item: &PreparedOutbox,
    at: i64,
) -> StoreResult<i64> {
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
    if backend == Backend::Sqlite {
        sqlx::query(
            "UPDATE outbox SET state = 'superseded', superseded_by = $2 \
             WHERE state_key = $1 AND state = 'pending' AND id < $2",
        )
        .bind(item.state_key.as_str())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(id)
}

/// The PostgreSQL batch's outbox items, by state key: the item that
/// survives (the batch's last for the key), each as the JSON object
/// `{"k": state key, "id": id}` of the array `govtrust_audit_append`
/// (migration 0008) reads.
///
/// Why this keeps "at most one pending item per state key": the batch runs
/// it while holding the chain head row lock, which every transaction that
/// queues an item takes before it commits and keeps until then. So these
/// transactions commit one after the other, and each one's statement (READ
/// COMMITTED: a fresh snapshot per statement, taken after the lock was
/// granted) sees every item committed before it. It supersedes all of
/// them for its keys, whatever their ids (an older transaction may have
/// drawn a higher id), so the survivor is the item of the latest commit:
/// the same order as the audit chain.
pub(super) fn survivors_json(items: &[(&str, i64)]) -> Vec<String> {
    let mut last: Vec<(&str, i64)> = Vec::with_capacity(items.len());
    for &(key, id) in items {
        match last.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = id,
            None => last.push((key, id)),
        }
    }
    last.into_iter()
        .map(|(k, id)| serde_json::json!({ "k": k, "id": id }).to_string())
        .collect()
}

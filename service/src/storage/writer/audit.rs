//! The writer's audit appends: a batch's entries and the move of the chain
//! head, under the head lock. On PostgreSQL that is one call of a
//! function that locks, chains, appends and also supersedes the outbox
//! items the batch's items replace; SQLite (whose writer holds the write
//! lock anyway) computes the chain here and uses multi-row inserts.

use std::sync::OnceLock;

use sqlx::AnyConnection;
use sqlx::Row;

use super::messages::json_arrays;
use super::multi_row::{multi_row_sql, pow2_chunks};
use super::PreparedAudit;
use crate::storage::StoreResult;

/// An audit entry ready to insert.
pub(super) struct AuditRow<'a> {
    pub(super) seq: i64,
    pub(super) at: i64,
    pub(super) audit: &'a PreparedAudit,
    pub(super) prev_hash: String,
    pub(super) hash: String,
}

/// SQLite: appends the batch's audit entries in multi-row inserts and
/// moves the chain head to `seq` / `hash`.
pub(super) async fn append_sqlite(
    conn: &mut AnyConnection,
    rows: &[AuditRow<'_>],
    seq: i64,
    hash: &str,
) -> StoreResult<()> {
    const COLUMNS: &str =
        "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash) VALUES ";
    static PLAIN: OnceLock<Vec<String>> = OnceLock::new();
    for chunk in pow2_chunks(rows) {
        let sql = multi_row_sql(&PLAIN, COLUMNS, 8, |_| String::new(), chunk.len());
        let mut query = sqlx::query(sql);
        for r in chunk {
            query = query
                .bind(r.seq)
                .bind(r.at)
                .bind(r.audit.actor.as_str())
                .bind(r.audit.action.as_str())
                .bind(r.audit.subject.as_deref())
                .bind(r.audit.details.as_str())
                .bind(r.prev_hash.as_str())
                .bind(r.hash.as_str());
        }
        query.execute(&mut *conn).await?;
    }
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(hash)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// PostgreSQL: locks the chain head, appends `entries` (the batch's, in
/// chain order), supersedes what the batch's outbox items replace
/// (`survivors`, see [`super::outbox::survivors_json`]) and moves the head:
/// `govtrust_audit_append` (migration 0008) computes the same hash chain as
/// [`crate::storage::audit::audit_hash`]. The lock is held from the first
/// call to the commit. One call takes the batch when it fits in
/// [`MESSAGE_BYTES`], so the lock is held for two round trips, this call
/// and the commit. A larger batch takes one call per [`MESSAGE_BYTES`], each
/// call continuing the chain where the one before left it. Returns
/// the head's seq before the batch; the entries got the next ones.
///
/// [`MESSAGE_BYTES`]: super::messages::MESSAGE_BYTES
pub(super) async fn append_postgres(
    conn: &mut AnyConnection,
    entries: &[PreparedEntry<'_>],
    survivors: Vec<String>,
) -> StoreResult<i64> {
    let entries: Vec<String> = entries
        .iter()
        .map(|e| e.audit.json(e.at).to_string())
        .collect();
    let entries = json_arrays(entries);
    let survivors = json_arrays(survivors);
    let calls = entries.len().max(survivors.len()).max(1);
    let mut first = 0;
    for call in 0..calls {
        let row = sqlx::query("SELECT govtrust_audit_append($1::json, $2::json) AS first")
            .bind(entries.get(call).map_or("[]", String::as_str))
            .bind(survivors.get(call).map_or("[]", String::as_str))
            .fetch_one(&mut *conn)
            .await?;
        if call == 0 {
            first = row.try_get("first")?;
        }
    }
    Ok(first)
}

/// An audit entry to append on PostgreSQL (which computes its hash).
pub(super) struct PreparedEntry<'a> {
    pub(super) at: i64,
    pub(super) audit: &'a PreparedAudit,
}

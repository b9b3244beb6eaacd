//! The writer's audit appends: a batch's entries and the move of the chain
//! head, under the head lock. On PostgreSQL that is one call of a
//! function that locks, chains, appends and also supersedes the outbox
//! items the batch's items replace; SQLite (whose writer holds the write
//! lock anyway) computes the chain here and uses multi-row inserts.

use std::sync::OnceLock;

use sqlx::AnyConnection;
use sqlx::Row;

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
/// call continuing the chain where the one before left it (see
/// [`MESSAGE_BYTES`] for why). Returns the head's seq before the batch; the
/// entries got the next ones.
pub(super) async fn append_postgres(
    conn: &mut AnyConnection,
    entries: &[PreparedEntry<'_>],
    survivors: Vec<String>,
) -> StoreResult<i64> {
    let entries: Vec<String> = entries
        .iter()
        .map(|e| {
            serde_json::json!({
                "at": e.at,
                "actor": e.audit.actor,
                "action": e.audit.action,
                "subject": e.audit.subject,
                "details": e.audit.details,
            })
            .to_string()
        })
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

/// Largest message the audit append sends in one call (a soft limit: one
/// entry larger than this still goes alone). sqlx 0.9.0 leaves Nagle's
/// algorithm on (transact-rs/sqlx#4335), so a message the socket does not
/// take in one write has its tail wait for the server's delayed ACK: 40 ms,
/// with the chain head locked. govtrust-bench with 64 clients measured
/// batches of 24 entries on average and 44.8 ms at the 99th percentile
/// under the head lock, against 1.4 ms at the median.
const MESSAGE_BYTES: usize = 8 * 1024;

/// `items` (JSON values) as JSON arrays of at most [`MESSAGE_BYTES`] each,
/// in order.
fn json_arrays(items: Vec<String>) -> Vec<String> {
    let mut arrays: Vec<String> = Vec::new();
    let mut current = String::new();
    for item in items {
        if !current.is_empty() && current.len() + item.len() + 2 > MESSAGE_BYTES {
            current.push(']');
            arrays.push(std::mem::take(&mut current));
        }
        current.push(if current.is_empty() { '[' } else { ',' });
        current.push_str(&item);
    }
    if !current.is_empty() {
        current.push(']');
        arrays.push(current);
    }
    arrays
}

/// An audit entry to append on PostgreSQL (which computes its hash).
pub(super) struct PreparedEntry<'a> {
    pub(super) at: i64,
    pub(super) audit: &'a PreparedAudit,
}

#[cfg(test)]
mod tests {
    use super::{json_arrays, MESSAGE_BYTES};

    #[test]
    fn json_arrays_keep_order_and_size() {
        let items: Vec<String> = (0..200)
            .map(|i| serde_json::json!({ "n": i, "pad": "x".repeat(i * 7) }).to_string())
            .collect();
        let arrays = json_arrays(items.clone());
        assert!(
            arrays.len() > 1,
            "200 entries of up to 1.4 KB need several messages"
        );
        let mut back = Vec::new();
        for array in &arrays {
            let parsed: Vec<serde_json::Value> = serde_json::from_str(array).expect("a JSON array");
            assert!(
                array.len() <= MESSAGE_BYTES || parsed.len() == 1,
                "{} bytes with {} entries",
                array.len(),
                parsed.len()
            );
            back.extend(parsed.into_iter().map(|v| v.to_string()));
        }
        assert_eq!(back, items, "every entry once, in order");
        let big = "y".repeat(MESSAGE_BYTES * 2);
        assert_eq!(
            json_arrays(vec![format!("\"{big}\"")]).len(),
            1,
            "an oversized entry alone"
        );
        assert!(json_arrays(Vec::new()).is_empty());
    }
}

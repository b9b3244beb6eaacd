//! The writer's audit appends: a batch's entries in multi-row inserts, and
//! the chain head moved to the last of them (on PostgreSQL in the same
//! statement).

use std::sync::OnceLock;

use sqlx::AnyConnection;

use super::multi_row::{multi_row_sql, pow2_chunks};
use super::PreparedAudit;
use crate::storage::{Backend, StoreResult};

/// An audit entry ready to insert.
pub(super) struct AuditRow<'a> {
    pub(super) seq: i64,
    pub(super) at: i64,
    pub(super) audit: &'a PreparedAudit,
    pub(super) prev_hash: String,
    pub(super) hash: String,
}

/// Appends the batch's audit entries and moves the chain head to `seq` /
/// `hash`, in as few statements as possible: on PostgreSQL the head moves
/// in the statement that inserts the last rows (one round trip less on the
/// serialised path).
pub(super) async fn append_audit(
    conn: &mut AnyConnection,
    backend: Backend,
    rows: &[AuditRow<'_>],
    seq: i64,
    hash: &str,
) -> StoreResult<()> {
    const COLUMNS: &str =
        "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash) VALUES ";
    static PLAIN: OnceLock<Vec<String>> = OnceLock::new();
    static WITH_HEAD: OnceLock<Vec<String>> = OnceLock::new();
    let chunks: Vec<&[AuditRow<'_>]> = pow2_chunks(rows).collect();
    let last = chunks.len().saturating_sub(1);
    let head_in_last = backend == Backend::Postgres && !chunks.is_empty();
    for (i, chunk) in chunks.into_iter().enumerate() {
        let sql = if head_in_last && i == last {
            multi_row_sql(
                &WITH_HEAD,
                &format!("WITH a AS ({COLUMNS}"),
                8,
                |used| {
                    format!(
                        ") UPDATE audit_head SET seq = ${}, hash = ${} WHERE id = 1",
                        used + 1,
                        used + 2
                    )
                },
                chunk.len(),
            )
        } else {
            multi_row_sql(&PLAIN, COLUMNS, 8, |_| String::new(), chunk.len())
        };
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
        if head_in_last && i == last {
            query = query.bind(seq).bind(hash);
        }
        query.execute(&mut *conn).await?;
    }
    if !head_in_last {
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(seq)
            .bind(hash)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

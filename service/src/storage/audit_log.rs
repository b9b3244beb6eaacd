//! The stored audit log: appending an entry that goes with no other
//! change, listing entries, and verifying the stored chain page by page.
//! The hash and the chain checks are pure and live in [`super::audit`];
//! the batched appends are in `writer::audit`.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::audit::{AuditEntry, AuditRecord, AuditReport, ChainVerifier};
use super::writer::Op;
use super::{limit_i64, to_i64, Store, StoreError, StoreResult};

/// Entries read per query while verifying the audit chain.
const AUDIT_PAGE: i64 = 5_000;

/// Decodes a row of `audit_log`.
fn audit_from_row(row: &AnyRow) -> StoreResult<AuditRecord> {
    let seq: i64 = row.try_get("seq")?;
    Ok(AuditRecord {
        seq: u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("audit seq {seq}")))?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        subject: row.try_get("subject")?,
        details: row.try_get("details")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

impl Store {
    /// Appends an entry that goes with no other change (a refused
    /// enrollment, an operator login, ...). Returns its seq.
    pub async fn append_audit(&self, entry: AuditEntry, at: i64) -> StoreResult<u64> {
        let reply = self.submit(Op::AuditOnly, Some(entry), at).await?;
        reply
            .audit_seq
            .ok_or_else(|| StoreError::Corrupt("audit entry was not appended".into()))
    }

    /// Up to `limit` entries after `after_seq`, in order.
    pub async fn list_audit(&self, after_seq: u64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM audit_log \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(to_i64(after_seq)?)
        .bind(limit_i64(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(audit_from_row).collect()
    }

    /// Up to `limit` entries in chain order (seq ascending) after
    /// `after_seq`, only those logged at or after `since` (unix ms) if
    /// given. The first entry at or after `since` is found through the
    /// index `audit_log_at`, so a query for recent entries does not walk the
    /// whole log.
    pub async fn list_audit_since(
        &self,
        since: Option<i64>,
        after_seq: u64,
        limit: u32,
    ) -> StoreResult<Vec<AuditRecord>> {
        let Some(since) = since else {
            return self.list_audit(after_seq, limit).await;
        };
        let first: Option<(i64,)> =
            sqlx::query_as("SELECT seq FROM audit_log WHERE at >= $1 ORDER BY at, seq LIMIT 1")
                .bind(since)
                .fetch_optional(self.pool())
                .await?;
        let Some((first,)) = first else {
            return Ok(Vec::new());
        };
        // Entries of replicas with skewed clocks may carry an `at` slightly
        // out of seq order: start at the earliest one in time and filter.
        let start = to_i64(after_seq)?.max(first - 1);
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM audit_log \
             WHERE seq > $1 AND at >= $2 ORDER BY seq LIMIT $3",
        )
        .bind(start)
        .bind(since)
        .bind(limit_i64(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(audit_from_row).collect()
    }

    /// Checks the whole audit chain up to the head recorded when the check
    /// starts (entries appended meanwhile are not examined), reading it in
    /// pages of a few thousand entries, and names the first broken entry.
    pub async fn verify_audit_chain(&self) -> StoreResult<AuditReport> {
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(self.pool())
            .await?;
        let head_seq: i64 = head.try_get("seq")?;
        let head_hash: String = head.try_get("hash")?;
        let head_seq_u = u64::try_from(head_seq)
            .map_err(|_| StoreError::Corrupt(format!("audit head seq {head_seq}")))?;

        let mut verifier = ChainVerifier::new();
        let mut after: i64 = 0;
        loop {
            let rows = sqlx::query(
                "SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM audit_log \
                 WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
            )
            .bind(after)
            .bind(head_seq)
            .bind(AUDIT_PAGE)
            .fetch_all(self.pool())
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get("seq")?;
            for row in &rows {
                if !verifier.push(&audit_from_row(row)?) {
                    break;
                }
            }
            if verifier.is_broken() || rows.len() < AUDIT_PAGE as usize {
                break;
            }
        }
        Ok(verifier.finish(head_seq_u, &head_hash))
    }
}

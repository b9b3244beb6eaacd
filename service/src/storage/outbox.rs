//! The outbox: state events waiting to be published to Matrix. Items are
//! usually queued by the change they announce (in its writer transaction,
//! see `writer::outbox`); this module queues one on its own, claims due
//! items for publication under a lease, records the result, and reads and
//! purges items.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::audit::AuditEntry;
use super::model::{NewOutboxItem, OutboxRecord, OutboxState};
use super::writer::{prepare_outbox, Op};
use super::{limit_i64, not_found, Backend, Store, StoreError, StoreResult};

/// Columns of `outbox` in the order [`outbox_from_row`] reads them.
macro_rules! outbox_cols {
    () => {
        "id, kind, state_key, content, state, created_at, attempts, next_attempt_at, \
         claimed_until, last_error, published_at, event_id"
    };
}

/// Decodes the columns of [`outbox_cols!`].
fn outbox_from_row(row: &AnyRow) -> StoreResult<OutboxRecord> {
    let content: String = row.try_get("content")?;
    let state: String = row.try_get("state")?;
    Ok(OutboxRecord {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        state_key: row.try_get("state_key")?,
        content: serde_json::from_str(&content)
            .map_err(|e| StoreError::Corrupt(format!("outbox content: {e}")))?,
        state: OutboxState::parse(&state)?,
        created_at: row.try_get("created_at")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        claimed_until: row.try_get("claimed_until")?,
        last_error: row.try_get("last_error")?,
        published_at: row.try_get("published_at")?,
        event_id: row.try_get("event_id")?,
    })
}

impl Store {
    /// Queues an outbox item on its own (e.g. re-publishing after a room
    /// was added), superseding older pending items for its state key.
    /// Returns the audit seq if `audit` was given.
    pub async fn enqueue_outbox(
        &self,
        item: NewOutboxItem,
        at: i64,
        audit: Option<AuditEntry>,
    ) -> StoreResult<Option<u64>> {
        let op = Op::Enqueue(prepare_outbox(item)?);
        Ok(self.submit(op, audit, at).await?.audit_seq)
    }

    /// Claims up to `limit` pending items due at `now` for publication,
    /// leased until `now + lease_ms`, oldest first, and counts the attempt.
    /// An item is not claimed while an older item with the same state key is
    /// still leased (being published), so the newest content is always
    /// published last.
    pub async fn claim_outbox(
        &self,
        now: i64,
        limit: u32,
        lease_ms: i64,
    ) -> StoreResult<Vec<OutboxRecord>> {
        let sql = match self.backend() {
            Backend::Sqlite => concat!(
                "UPDATE outbox SET claimed_until = $1, attempts = attempts + 1 WHERE id IN (",
                "SELECT o.id FROM outbox o WHERE o.state = 'pending' AND o.next_attempt_at <= $2 ",
                "AND (o.claimed_until IS NULL OR o.claimed_until < $2) ",
                "AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.state_key = o.state_key ",
                "AND p.id <> o.id AND p.claimed_until >= $2) ",
                "ORDER BY o.id LIMIT $3) ",
                "RETURNING ",
                outbox_cols!()
            ),
            Backend::Postgres => concat!(
                "UPDATE outbox SET claimed_until = $1, attempts = attempts + 1 WHERE id IN (",
                "SELECT o.id FROM outbox o WHERE o.state = 'pending' AND o.next_attempt_at <= $2 ",
                "AND (o.claimed_until IS NULL OR o.claimed_until < $2) ",
                "AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.state_key = o.state_key ",
                "AND p.id <> o.id AND p.claimed_until >= $2) ",
                "ORDER BY o.id LIMIT $3 FOR UPDATE OF o SKIP LOCKED) ",
                "AND state = 'pending' AND (claimed_until IS NULL OR claimed_until < $2) ",
                "RETURNING ",
                outbox_cols!()
            ),
        };
        let _gate = self.write_gate().await;
        let rows = sqlx::query(sql)
            .bind(now.saturating_add(lease_ms))
            .bind(now)
            .bind(limit_i64(limit))
            .fetch_all(self.pool())
            .await?;
        let mut items = rows
            .iter()
            .map(outbox_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    /// Records a successful publication and ends the claim.
    pub async fn mark_published(&self, id: i64, event_id: &str, now: i64) -> StoreResult<()> {
        let _gate = self.write_gate().await;
        let res = sqlx::query(
            "UPDATE outbox SET state = CASE WHEN state = 'pending' THEN 'published' ELSE state END, \
             published_at = $2, event_id = $3, claimed_until = NULL, last_error = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .bind(event_id)
        .execute(self.pool())
        .await?;
        if res.rows_affected() == 0 {
            return Err(not_found("outbox item", &id.to_string()));
        }
        Ok(())
    }

    /// Records a failed publication, ends the claim and makes the item due
    /// again at `retry_at` (unless a newer item superseded it meanwhile).
    pub async fn mark_failed(&self, id: i64, error: &str, retry_at: i64) -> StoreResult<()> {
        let _gate = self.write_gate().await;
        let res = sqlx::query(
            "UPDATE outbox SET last_error = $2, next_attempt_at = $3, claimed_until = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(error)
        .bind(retry_at)
        .execute(self.pool())
        .await?;
        if res.rows_affected() == 0 {
            return Err(not_found("outbox item", &id.to_string()));
        }
        Ok(())
    }

    /// Number of items waiting for publication (a health metric).
    pub async fn outbox_depth(&self) -> StoreResult<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE state = 'pending'")
            .fetch_one(self.pool())
            .await?;
        let n: i64 = row.try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The outbox item with that id.
    pub async fn get_outbox_item(&self, id: i64) -> StoreResult<Option<OutboxRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            outbox_cols!(),
            " FROM outbox WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(outbox_from_row).transpose()
    }

    /// Deletes published and superseded items created before `before`;
    /// returns how many.
    pub async fn purge_outbox(&self, before: i64) -> StoreResult<u64> {
        let _gate = self.write_gate().await;
        let res = sqlx::query(
            "DELETE FROM outbox WHERE state <> 'pending' AND created_at < $1 \
             AND (claimed_until IS NULL OR claimed_until < $1)",
        )
        .bind(before)
        .execute(self.pool())
        .await?;
        Ok(res.rows_affected())
    }

    /// The event ID of the newest outbox item for `state_key`, if that item
    /// has been published.
    pub async fn published_event_id(&self, state_key: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query(
            "SELECT state, event_id FROM outbox WHERE state_key = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(state_key)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(row) if row.try_get::<String, _>("state")? == "published" => {
                row.try_get("event_id")?
            }
            _ => None,
        })
    }
}

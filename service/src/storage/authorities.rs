//! Authorities (the registered agencies): the columns and row decoding of
//! `authorities`, and the [`Store`] operations that create, change and
//! read them. Changes go through the writer (audited); reads run on the
//! pool. Their statements in the writer are in `writer::authorities`.

use govtrust_verifier::AuthorityRecord;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::audit::AuditEntry;
use super::model::{Authority, AuthorityStatus};
use super::writer::{prepare_authority, Op, Outcome};
use super::{duplicate, limit_i64, not_found, Store, StoreError, StoreResult};

/// Columns of `authorities` in the order [`authority_from_row`] reads them.
macro_rules! authority_cols {
    () => {
        "id, name, unit, street, postal_code, locality, state, country, servers, \
         user_patterns, status, contact, created_at, updated_at"
    };
}
pub(super) use authority_cols;

/// Decodes the columns of [`authority_cols!`].
pub(super) fn authority_from_row(row: &AnyRow) -> StoreResult<Authority> {
    let servers: String = row.try_get("servers")?;
    let patterns: String = row.try_get("user_patterns")?;
    let status: String = row.try_get("status")?;
    Ok(Authority {
        record: AuthorityRecord {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            unit: row.try_get("unit")?,
            street: row.try_get("street")?,
            postal_code: row.try_get("postal_code")?,
            locality: row.try_get("locality")?,
            state: row.try_get("state")?,
            country: row.try_get("country")?,
        },
        servers: serde_json::from_str(&servers)
            .map_err(|e| StoreError::Corrupt(format!("authority servers: {e}")))?,
        user_patterns: serde_json::from_str(&patterns)
            .map_err(|e| StoreError::Corrupt(format!("authority user_patterns: {e}")))?,
        status: AuthorityStatus::parse(&status).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        contact: row.try_get("contact")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Stores a new authority. [`StoreError::Duplicate`] if the id exists.
    pub async fn insert_authority(
        &self,
        authority: Authority,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        let id = authority.record.id.clone();
        let at = authority.created_at;
        let op = Op::InsertAuthority(prepare_authority(authority)?);
        match self.submit(op, Some(audit), at).await?.outcome {
            Outcome::Duplicate => Err(duplicate("authority", &id)),
            _ => Ok(()),
        }
    }

    /// Replaces an authority's fields (all but `id` and `created_at`).
    /// [`StoreError::NotFound`] if it does not exist.
    pub async fn update_authority(
        &self,
        authority: Authority,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        let id = authority.record.id.clone();
        let at = authority.updated_at;
        let op = Op::UpdateAuthority(prepare_authority(authority)?);
        match self.submit(op, Some(audit), at).await?.outcome {
            Outcome::NotFound => Err(not_found("authority", &id)),
            _ => Ok(()),
        }
    }

    /// Suspends or reactivates an authority.
    pub async fn set_authority_status(
        &self,
        id: &str,
        status: AuthorityStatus,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        let op = Op::SetAuthorityStatus {
            id: id.to_owned(),
            status,
        };
        match self.submit(op, Some(audit), at).await?.outcome {
            Outcome::NotFound => Err(not_found("authority", id)),
            _ => Ok(()),
        }
    }

    /// The authority with that id.
    pub async fn get_authority(&self, id: &str) -> StoreResult<Option<Authority>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            authority_cols!(),
            " FROM authorities WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(authority_from_row).transpose()
    }

    /// Up to `limit` authorities ordered by id, starting after `after_id`
    /// (keyset paging: pass the last id of the previous page).
    pub async fn list_authorities(
        &self,
        after_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Authority>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            authority_cols!(),
            " FROM authorities WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after_id.unwrap_or(""))
        .bind(limit_i64(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(authority_from_row).collect()
    }
}

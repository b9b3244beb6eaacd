//! Operator tokens: storing, rotating, revoking and deleting them (audited,
//! through the writer), listing them, and finding the token a presented
//! secret belongs to by its hash.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::audit::AuditEntry;
use super::model::{OperatorRole, OperatorToken};
use super::writer::{Op, Outcome};
use super::{duplicate, not_found, Store, StoreResult};

/// Columns of `operator_tokens` in the order [`token_from_row`] reads them.
macro_rules! token_cols {
    () => {
        "name, token_hash, roles, created_at, expires_at, revoked_at, rotated_at"
    };
}

/// Decodes a row of `operator_tokens`.
fn token_from_row(row: &AnyRow) -> StoreResult<OperatorToken> {
    let roles: String = row.try_get("roles")?;
    Ok(OperatorToken {
        name: row.try_get("name")?,
        token_hash: row.try_get("token_hash")?,
        roles: OperatorRole::split(&roles)?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        rotated_at: row.try_get("rotated_at")?,
    })
}

/// Whether revoking a token changed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenRevocation {
    /// Revoked now.
    Revoked,
    /// It had been revoked before; nothing was written.
    AlreadyRevoked,
}

impl Store {
    /// Stores an operator token (its SHA-256 hex, see
    /// [`sha256_hex`](super::sha256_hex)). [`StoreError::Duplicate`] if the
    /// name or the hash exists.
    ///
    /// [`StoreError::Duplicate`]: super::StoreError::Duplicate
    pub async fn insert_operator_token(
        &self,
        token: OperatorToken,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        let name = token.name.clone();
        let at = token.created_at;
        match self
            .submit(Op::InsertOperatorToken(Box::new(token)), Some(audit), at)
            .await?
            .outcome
        {
            Outcome::Duplicate => Err(duplicate("operator token", &name)),
            _ => Ok(()),
        }
    }

    /// Replaces the secret of an unrevoked token: from the commit on, only
    /// `new_hash` authenticates as `name`. [`StoreError::NotFound`] if no
    /// unrevoked token has that name; [`StoreError::Duplicate`] if the hash
    /// is taken.
    ///
    /// [`StoreError::NotFound`]: super::StoreError::NotFound
    /// [`StoreError::Duplicate`]: super::StoreError::Duplicate
    pub async fn rotate_operator_token(
        &self,
        name: &str,
        new_hash: &str,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        let op = Op::RotateOperatorToken {
            name: name.to_owned(),
            token_hash: new_hash.to_owned(),
        };
        match self.submit(op, Some(audit), at).await?.outcome {
            Outcome::NotFound => Err(not_found("operator token", name)),
            Outcome::Duplicate => Err(duplicate("operator token hash", name)),
            _ => Ok(()),
        }
    }

    /// Revokes a token (kept, marked revoked at `at`).
    /// [`StoreError::NotFound`] if there is no token of that name.
    ///
    /// [`StoreError::NotFound`]: super::StoreError::NotFound
    pub async fn revoke_operator_token(
        &self,
        name: &str,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<TokenRevocation> {
        let op = Op::RevokeOperatorToken {
            name: name.to_owned(),
        };
        match self.submit(op, Some(audit), at).await?.outcome {
            Outcome::NotFound => Err(not_found("operator token", name)),
            Outcome::Unchanged => Ok(TokenRevocation::AlreadyRevoked),
            _ => Ok(TokenRevocation::Revoked),
        }
    }

    /// Deletes an operator's token. [`StoreError::NotFound`] if none.
    /// The API revokes instead, keeping the name; this is for tests and
    /// maintenance.
    ///
    /// [`StoreError::NotFound`]: super::StoreError::NotFound
    pub async fn delete_operator_token(
        &self,
        name: &str,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        let op = Op::DeleteOperatorToken {
            name: name.to_owned(),
        };
        match self.submit(op, Some(audit), at).await?.outcome {
            Outcome::NotFound => Err(not_found("operator token", name)),
            _ => Ok(()),
        }
    }

    /// The token whose secret hashes to `token_hash` (lower-case hex),
    /// revoked and expired ones included: the caller decides.
    pub async fn find_operator_by_token_hash(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<OperatorToken>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            token_cols!(),
            " FROM operator_tokens WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// The token named `name`.
    pub async fn get_operator_token(&self, name: &str) -> StoreResult<Option<OperatorToken>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            token_cols!(),
            " FROM operator_tokens WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// Every token (revoked ones included), by name. The table holds one
    /// row per operator or automation, so it is read whole.
    pub async fn list_operator_tokens(&self) -> StoreResult<Vec<OperatorToken>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            token_cols!(),
            " FROM operator_tokens ORDER BY name"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(token_from_row).collect()
    }
}

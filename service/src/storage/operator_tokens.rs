//! Operator tokens: storing and deleting them (audited, through the
//! writer) and finding the operator a presented token belongs to by its
//! hash.

use sqlx::Row;

use super::audit::AuditEntry;
use super::model::OperatorToken;
use super::writer::{Op, Outcome};
use super::{duplicate, not_found, Store, StoreResult};

impl Store {
    /// Stores an operator token (its SHA-256 hex, see
    /// [`sha256_hex`](super::sha256_hex)). [`StoreError::Duplicate`] if the
    /// name or the hash exists.
    pub async fn insert_operator_token(
        &self,
        token: OperatorToken,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        let name = token.name.clone();
        let at = token.created_at;
        match self
            .submit(Op::InsertOperatorToken(token), Some(audit), at)
            .await?
            .outcome
        {
            Outcome::Duplicate => Err(duplicate("operator token", &name)),
            _ => Ok(()),
        }
    }

    /// Deletes an operator's token. [`StoreError::NotFound`] if none.
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

    /// The operator whose token hashes to `token_hash` (lower-case hex).
    pub async fn find_operator_by_token_hash(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<OperatorToken>> {
        let row = sqlx::query(
            "SELECT name, token_hash, created_at FROM operator_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(OperatorToken {
                name: row.try_get("name")?,
                token_hash: row.try_get("token_hash")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }
}

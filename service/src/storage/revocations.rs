//! Revocations: revoking a certificate together with its state event and
//! audit entry, and the reads a CRL is built from. The revoking statements
//! are in `writer::revocations`.

use sqlx::Row;

use super::audit::AuditEntry;
use super::model::{NewOutboxItem, Revocation, RevokeOutcome};
use super::writer::{prepare_outbox, Op, Outcome};
use super::{Store, StoreError, StoreResult};

impl Store {
    /// Revokes a certificate (valid or superseded): sets its status, records
    /// the revocation, queues `outbox` (the updated state event) and appends
    /// `audit`, all in one transaction. Nothing is written unless the
    /// outcome is [`RevokeOutcome::Revoked`].
    pub async fn revoke(
        &self,
        serial: &str,
        reason: &str,
        at: i64,
        outbox: Option<NewOutboxItem>,
        audit: AuditEntry,
    ) -> StoreResult<RevokeOutcome> {
        let op = Op::Revoke {
            serial: serial.to_owned(),
            reason: reason.to_owned(),
            outbox: outbox.map(prepare_outbox).transpose()?,
        };
        match self.submit(op, Some(audit), at).await?.outcome {
            Outcome::Revoke(r) => Ok(r),
            other => Err(StoreError::Corrupt(format!(
                "unexpected revoke outcome {other:?}"
            ))),
        }
    }

    /// Revoked certificates of an issuing CA, by serial. With
    /// `unexpired_at`, certificates that expired before then are left out
    /// (a CRL may drop them), which keeps CRLs small.
    pub async fn revoked_for_ca(
        &self,
        issuing_ca: &str,
        unexpired_at: Option<i64>,
    ) -> StoreResult<Vec<Revocation>> {
        let rows = sqlx::query(
            "SELECT r.serial, r.revoked_at, r.reason FROM revocations r \
             JOIN certificates c ON c.serial = r.serial \
             WHERE r.issuing_ca = $1 AND c.not_after >= $2 ORDER BY r.serial",
        )
        .bind(issuing_ca)
        .bind(unexpired_at.unwrap_or(i64::MIN))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Revocation {
                    serial: row.try_get("serial")?,
                    revoked_at: row.try_get("revoked_at")?,
                    reason: row.try_get("reason")?,
                })
            })
            .collect()
    }

    /// Time (unix ms) of the newest revocation of an issuing CA, to tell
    /// whether the latest CRL already lists it.
    pub async fn newest_revocation_at(&self, issuing_ca: &str) -> StoreResult<Option<i64>> {
        let row =
            sqlx::query("SELECT MAX(revoked_at) AS at FROM revocations WHERE issuing_ca = $1")
                .bind(issuing_ca)
                .fetch_one(self.pool())
                .await?;
        Ok(row.try_get::<Option<i64>, _>("at")?)
    }
}

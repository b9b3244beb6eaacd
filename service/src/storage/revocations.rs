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

    /// What a CRL of an issuing CA is built from: its revoked certificates,
    /// by serial (with `unexpired_at`, those that expired before then are
    /// left out: a CRL may drop them, which keeps CRLs small), and the number of all its
    /// revocation rows (those of expired certificates included), read in
    /// one statement and so from one snapshot. Record the count with the
    /// CRL ([`StoredCrl::revocation_count`](super::model::StoredCrl::revocation_count)):
    /// revocations are only ever inserted, so while
    /// [`Store::revocation_count`] still equals it, no revocation has been
    /// recorded that the CRL could miss. Reading the count in a second
    /// statement would not do: a revocation committed between the two
    /// would be counted but not listed.
    pub async fn crl_entries(
        &self,
        issuing_ca: &str,
        unexpired_at: Option<i64>,
    ) -> StoreResult<(Vec<Revocation>, u64)> {
        // The count is the left side of the join, so an empty list still
        // yields one row with it (and NULL entry columns).
        let rows = sqlx::query(
            "SELECT n.total, e.serial, e.revoked_at, e.reason \
             FROM (SELECT COUNT(*) AS total FROM revocations WHERE issuing_ca = $1) n \
             LEFT JOIN (SELECT r.serial, r.revoked_at, r.reason FROM revocations r \
                        JOIN certificates c ON c.serial = r.serial \
                        WHERE r.issuing_ca = $1 AND c.not_after >= $2) e ON 1 = 1 \
             ORDER BY e.serial",
        )
        .bind(issuing_ca)
        .bind(unexpired_at.unwrap_or(i64::MIN))
        .fetch_all(self.pool())
        .await?;
        let total = match rows.first() {
            Some(row) => count(row.try_get("total")?)?,
            None => {
                return Err(StoreError::Corrupt(format!(
                    "no revocation count for {issuing_ca}"
                )))
            }
        };
        let mut revocations = Vec::with_capacity(rows.len());
        for row in &rows {
            let serial: Option<String> = row.try_get("serial")?;
            let Some(serial) = serial else {
                continue;
            };
            revocations.push(Revocation {
                serial,
                revoked_at: row.try_get("revoked_at")?,
                reason: row.try_get("reason")?,
            });
        }
        Ok((revocations, total))
    }

    /// The number of revocations recorded for an issuing CA: compared with
    /// the count a stored CRL was built from, it tells whether that CRL
    /// still lists every revocation (see [`Store::crl_entries`]).
    pub async fn revocation_count(&self, issuing_ca: &str) -> StoreResult<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS total FROM revocations WHERE issuing_ca = $1")
            .bind(issuing_ca)
            .fetch_one(self.pool())
            .await?;
        count(row.try_get("total")?)
    }
}

/// A `COUNT(*)` as the unsigned number it is.
fn count(n: i64) -> StoreResult<u64> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("revocation count {n}")))
}

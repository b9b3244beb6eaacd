//! Renewal bookkeeping across replicas: claiming the certificates due for
//! renewal under a lease (one conditional `UPDATE`, so no two replicas
//! renew the same one), giving a claim back, and superseding a certificate
//! without a successor.

use super::audit::AuditEntry;
use super::certificates::{cert_cols, cert_from_row};
use super::model::Certificate;
use super::writer::{Op, Outcome};
use super::{limit_i64, not_found, Backend, Store, StoreResult};

/// SQLite's renewal claim (see [`Store::claim_due_renewals`]): the
/// selection searches `certificates_renewal_due`, the update the primary
/// key (`sqlite_renewal_claim_keeps_to_its_indexes`).
const CLAIM_SQLITE: &str = concat!(
    "UPDATE certificates SET renewal_claimed_until = $1 WHERE serial IN (",
    "SELECT serial FROM certificates WHERE status = 'valid' AND not_after < $2 AND not_after > $3 ",
    "AND kind IN ('device', 'identity') ",
    "AND (renewal_claimed_until IS NULL OR renewal_claimed_until < $3) ",
    "ORDER BY not_after LIMIT $4) ",
    "RETURNING ",
    cert_cols!()
);

/// PostgreSQL's renewal claim (see [`Store::claim_due_renewals`]). SKIP
/// LOCKED keeps replicas from queueing behind each other; the rows are
/// locked from the selection to the update, and the conditions are checked
/// again on them, so a row claimed concurrently is not claimed twice. The
/// selection is a materialised CTE joined on the primary key, and the
/// status test is spelt "neither revoked nor superseded": as `serial IN
/// (...) AND status = 'valid'`, a generic plan cached while the table was
/// small walked a partial index of every valid certificate and ran the
/// selection again for each (`postgres_renewal_claim_keeps_to_its_indexes`).
const CLAIM_POSTGRES: &str = concat!(
    "WITH due AS MATERIALIZED (",
    "SELECT serial AS due_serial FROM certificates WHERE status = 'valid' AND not_after < $2 AND not_after > $3 ",
    "AND kind IN ('device', 'identity') ",
    "AND (renewal_claimed_until IS NULL OR renewal_claimed_until < $3) ",
    "ORDER BY not_after LIMIT $4 FOR UPDATE SKIP LOCKED) ",
    "UPDATE certificates SET renewal_claimed_until = $1 FROM due ",
    "WHERE certificates.serial = due.due_serial ",
    "AND certificates.status NOT IN ('revoked', 'superseded') ",
    "AND (certificates.renewal_claimed_until IS NULL ",
    "OR certificates.renewal_claimed_until < $3) ",
    "RETURNING ",
    cert_cols!()
);

impl Store {
    /// Claims up to `limit` device and identity certificates that are valid
    /// and end before `due_before`, for renewal by this replica: each
    /// returned certificate is leased until `now + lease_ms`, and no other
    /// claim returns it before the lease ends (enrollment-client
    /// certificates are never returned: the service has no key to renew
    /// them with). Renewing supersedes the old certificate, which ends the
    /// claim for good; [`Store::release_renewal_claim`] gives it back early.
    // Expired certificates are never renewed: trust that lapsed needs a new
    // enrollment with a fresh proof of possession. The kind condition is
    // spelt as the predicate of `certificates_renewal_due` (migration 0010),
    // which is what lets this query use that index.
    pub async fn claim_due_renewals(
        &self,
        due_before: i64,
        now: i64,
        lease_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<Certificate>> {
        let sql = match self.backend() {
            Backend::Sqlite => CLAIM_SQLITE,
            Backend::Postgres => CLAIM_POSTGRES,
        };
        let _gate = self.write_gate().await;
        let rows = sqlx::query(sql)
            .bind(now.saturating_add(lease_ms))
            .bind(due_before)
            .bind(now)
            .bind(limit_i64(limit))
            .fetch_all(self.pool())
            .await?;
        let mut certs = rows
            .iter()
            .map(cert_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        certs.sort_by_key(|c| c.not_after);
        Ok(certs)
    }

    /// Ends a renewal claim early (e.g. the renewal failed and should be
    /// retried by any replica).
    pub async fn release_renewal_claim(&self, serial: &str) -> StoreResult<()> {
        let _gate = self.write_gate().await;
        sqlx::query("UPDATE certificates SET renewal_claimed_until = NULL WHERE serial = $1")
            .bind(serial)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Marks a valid certificate superseded (without issuing a successor).
    /// Returns false if it was not valid; [`super::StoreError::NotFound`] if unknown.
    pub async fn mark_superseded(
        &self,
        serial: &str,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<bool> {
        let op = Op::Supersede {
            serial: serial.to_owned(),
        };
        match self.submit(op, Some(audit), at).await?.outcome {
            Outcome::Done => Ok(true),
            _ => match self.get_certificate(serial).await? {
                Some(_) => Ok(false),
                None => Err(not_found("certificate", serial)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{AssertSqlSafe, Row};

    use super::CLAIM_SQLITE;
    use crate::storage::Store;

    /// The claim runs on the serialised write path: a plan that scanned
    /// `certificates` would hold the write lock for a walk of every
    /// certificate. SQLite plans without statistics by fixed rules, so the
    /// plan of a fresh database is the plan a deployment gets until it runs
    /// `ANALYZE`.
    #[tokio::test]
    async fn sqlite_renewal_claim_keeps_to_its_indexes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("plan.db").display());
        let store = Store::connect(&url).await.expect("store");
        let rows = sqlx::query(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {CLAIM_SQLITE}")))
            .fetch_all(store.pool())
            .await
            .expect("plan");
        let plan: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<String, _>("detail").expect("detail"))
            .collect();
        assert!(
            plan.iter()
                .any(|d| d.contains("USING INDEX certificates_renewal_due")),
            "{plan:?}"
        );
        assert!(
            plan.iter()
                .any(|d| d.contains("USING COVERING INDEX sqlite_autoindex_certificates_1")),
            "the update by primary key: {plan:?}"
        );
        assert!(
            !plan.iter().any(|d| d.starts_with("SCAN certificates")),
            "{plan:?}"
        );
        store.close().await;
    }
}

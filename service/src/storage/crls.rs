//! CRLs: allocating CRL numbers, claiming a CA's CRL generation across
//! replicas, keeping the latest CRL of each issuing CA and reading it
//! back. Storing goes through the writer (audited, see `writer::crls`).

use sqlx::Row;

use super::audit::AuditEntry;
use super::model::StoredCrl;
use super::writer::{Op, Outcome};
use super::{Store, StoreError, StoreResult};

impl Store {
    /// The next CRL number of an issuing CA (1, 2, 3, ...): one atomic
    /// upsert, so numbers are unique and increasing across replicas.
    ///
    /// [`Store::store_crl`] keeps the highest-numbered CRL, but two signers
    /// racing (say, one whose generation lease ran out) may read their
    /// entries in either order, so the CRL kept need not be the one read
    /// last. Whether it still lists every revocation is what its
    /// [`StoredCrl::revocation_count`] tells, not its number.
    pub async fn allocate_crl_number(&self, issuing_ca: &str) -> StoreResult<u64> {
        let _gate = self.write_gate().await;
        let row = sqlx::query(
            "INSERT INTO crls (issuing_ca, last_number) VALUES ($1, 1) \
             ON CONFLICT (issuing_ca) DO UPDATE SET last_number = crls.last_number + 1 \
             RETURNING last_number",
        )
        .bind(issuing_ca)
        .fetch_one(self.pool())
        .await?;
        let n: i64 = row.try_get("last_number")?;
        u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("CRL number {n}")))
    }

    /// Claims the generation of the next CRL of an issuing CA for
    /// `lease_ms`; false if another replica holds an unexpired claim.
    /// Storing a CRL does not end the claim: call
    /// [`Store::release_crl_claim`] when done (or let the lease run out).
    pub async fn claim_crl_generation(
        &self,
        issuing_ca: &str,
        now: i64,
        lease_ms: i64,
    ) -> StoreResult<bool> {
        let _gate = self.write_gate().await;
        let res = sqlx::query(
            "INSERT INTO crls (issuing_ca, last_number, claimed_until) VALUES ($1, 0, $2) \
             ON CONFLICT (issuing_ca) DO UPDATE SET claimed_until = $2 \
             WHERE crls.claimed_until IS NULL OR crls.claimed_until < $3",
        )
        .bind(issuing_ca)
        .bind(now.saturating_add(lease_ms))
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Gives up a CRL generation claim.
    pub async fn release_crl_claim(&self, issuing_ca: &str) -> StoreResult<()> {
        let _gate = self.write_gate().await;
        sqlx::query("UPDATE crls SET claimed_until = NULL WHERE issuing_ca = $1")
            .bind(issuing_ca)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Keeps `crl` as the latest CRL of its CA, with its audit entry, unless
    /// a CRL with the same or a higher number is stored already (then
    /// nothing is written and the result is false).
    pub async fn store_crl(&self, crl: StoredCrl, audit: AuditEntry) -> StoreResult<bool> {
        let at = crl.this_update;
        let reply = self
            .submit(Op::StoreCrl(Box::new(crl)), Some(audit), at)
            .await?;
        Ok(reply.outcome == Outcome::Done)
    }

    /// The latest stored CRL of an issuing CA.
    pub async fn latest_crl(&self, issuing_ca: &str) -> StoreResult<Option<StoredCrl>> {
        let row = sqlx::query(
            "SELECT crl_number, der, this_update, next_update, revocation_count FROM crls \
             WHERE issuing_ca = $1 AND der IS NOT NULL",
        )
        .bind(issuing_ca)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let number: Option<i64> = row.try_get("crl_number")?;
        let der: Option<Vec<u8>> = row.try_get("der")?;
        let this_update: Option<i64> = row.try_get("this_update")?;
        let next_update: Option<i64> = row.try_get("next_update")?;
        let revocation_count = row
            .try_get::<Option<i64>, _>("revocation_count")?
            .map(|n| {
                u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("revocation count {n}")))
            })
            .transpose()?;
        match (number, der, this_update, next_update) {
            (Some(n), Some(der), Some(this_update), Some(next_update)) => Ok(Some(StoredCrl {
                issuing_ca: issuing_ca.to_owned(),
                number: u64::try_from(n)
                    .map_err(|_| StoreError::Corrupt(format!("CRL number {n}")))?,
                der,
                this_update,
                next_update,
                revocation_count,
            })),
            _ => Err(StoreError::Corrupt(format!(
                "incomplete CRL row for {issuing_ca}"
            ))),
        }
    }
}

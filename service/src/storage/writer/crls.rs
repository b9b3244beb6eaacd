//! The writer's CRL statement: keeps a CRL as its CA's latest unless a
//! CRL with the same or a higher number is stored already.

use sqlx::AnyConnection;

use super::Outcome;
use crate::storage::model::StoredCrl;
use crate::storage::{to_i64, StoreResult};

/// Stores `crl`; [`Outcome::Unchanged`] if it is not newer.
pub(super) async fn store(conn: &mut AnyConnection, crl: &StoredCrl) -> StoreResult<Outcome> {
    let number = to_i64(crl.number)?;
    let revocation_count = crl.revocation_count.map(to_i64).transpose()?;
    sqlx::query(
        "INSERT INTO crls (issuing_ca, last_number) VALUES ($1, 0) \
         ON CONFLICT (issuing_ca) DO NOTHING",
    )
    .bind(crl.issuing_ca.as_str())
    .execute(&mut *conn)
    .await?;
    // Only a newer CRL replaces the stored one, so a slow replica
    // cannot roll the published CRL back.
    let res = sqlx::query(
        "UPDATE crls SET crl_number = $2, der = $3, this_update = $4, next_update = $5, \
         revocation_count = $6, \
         last_number = CASE WHEN last_number < $2 THEN $2 ELSE last_number END \
         WHERE issuing_ca = $1 AND (crl_number IS NULL OR crl_number < $2)",
    )
    .bind(crl.issuing_ca.as_str())
    .bind(number)
    .bind(crl.der.as_slice())
    .bind(crl.this_update)
    .bind(crl.next_update)
    .bind(revocation_count)
    .execute(&mut *conn)
    .await?;
    Ok(if res.rows_affected() == 0 {
        Outcome::Unchanged
    } else {
        Outcome::Done
    })
}

//! Enrollment challenges: the columns and row decoding of `challenges`,
//! and the [`Store`] operations that store, consume, read and purge them.
//! Storing and consuming go through the writer, unaudited (on PostgreSQL a
//! writer of their own); their statements are in `writer::challenges`.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::model::{CertificateKind, Challenge, ChallengeClaim, ChallengeOutcome};
use super::writer::{Op, Outcome};
use super::{duplicate, Store, StoreResult};

/// Columns of `challenges`, named `ch_*` so that they can sit beside
/// another table's in one row, in the order [`challenge_from_row`] reads
/// them.
macro_rules! challenge_cols {
    () => {
        "id AS ch_id, authority_id AS ch_authority_id, user_id AS ch_user_id, \
         device_id AS ch_device_id, created_at AS ch_created_at, expires_at AS ch_expires_at, \
         used_at AS ch_used_at, kind AS ch_kind, proof AS ch_proof, key AS ch_key, \
         device_key AS ch_device_key"
    };
}
pub(super) use challenge_cols;

/// Decodes the columns of [`challenge_cols!`].
pub(super) fn challenge_from_row(row: &AnyRow) -> StoreResult<Challenge> {
    Ok(Challenge {
        id: row.try_get("ch_id")?,
        authority_id: row.try_get("ch_authority_id")?,
        user_id: row.try_get("ch_user_id")?,
        device_id: row.try_get("ch_device_id")?,
        kind: CertificateKind::parse(&row.try_get::<String, _>("ch_kind")?)?,
        proof: row.try_get("ch_proof")?,
        key: row.try_get("ch_key")?,
        device_key: row.try_get("ch_device_key")?,
        created_at: row.try_get("ch_created_at")?,
        expires_at: row.try_get("ch_expires_at")?,
        used_at: row.try_get("ch_used_at")?,
    })
}

impl Store {
    /// Stores a fresh challenge. Not audited: issuing a challenge grants
    /// nothing; the enrollment that consumes it is audited. Goes through the
    /// writer like every change, so challenges share its batched commits.
    /// [`super::StoreError::Duplicate`] if the id exists.
    pub async fn insert_challenge(&self, challenge: &Challenge) -> StoreResult<()> {
        let op = Op::InsertChallenge(Box::new(challenge.clone()));
        match self.submit(op, None, challenge.created_at).await?.outcome {
            Outcome::Duplicate => Err(duplicate("challenge", &challenge.id)),
            _ => Ok(()),
        }
    }

    /// Consumes a challenge if it is unused, unexpired at `claim.now` and
    /// bound to exactly the claimed authority, user, device and key, without
    /// issuing anything (burning a challenge whose delivery went wrong). One
    /// conditional `UPDATE` decides, so across all replicas at most one
    /// caller ever gets [`ChallengeOutcome::Ok`]; other outcomes are
    /// classified afterwards.
    pub async fn consume_challenge(&self, claim: ChallengeClaim) -> StoreResult<ChallengeOutcome> {
        let now = claim.now;
        Ok(
            match self
                .submit(Op::ConsumeChallenge(claim), None, now)
                .await?
                .outcome
            {
                Outcome::Challenge(refused) => refused,
                _ => ChallengeOutcome::Ok,
            },
        )
    }

    /// The challenge with that id (for diagnostics).
    pub async fn get_challenge(&self, id: &str) -> StoreResult<Option<Challenge>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            challenge_cols!(),
            " FROM challenges WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(challenge_from_row).transpose()
    }

    /// Deletes challenges that expired before `before`; returns how many.
    pub async fn purge_expired_challenges(&self, before: i64) -> StoreResult<u64> {
        let _gate = self.write_gate().await;
        let res = sqlx::query("DELETE FROM challenges WHERE expires_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(res.rows_affected())
    }
}

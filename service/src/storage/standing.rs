//! The standing of an agency's caller: its authority, the status of the
//! client certificate it authenticated with and the challenge it answers.
//! Every agency request needs it first, so it is one query joining the
//! three tables rather than three round trips.
//!
//! Lookups are not coalesced across concurrent requests: one statement
//! answering several (a numbered `VALUES` list joined with the three
//! tables) was measured on PostgreSQL under load at 1.18 ms for 8 lookups
//! against 0.05 ms for one, more per lookup than the round trips it saved.

use sqlx::Row;

use super::authorities::{authority_cols, authority_from_row};
use super::challenges::{challenge_cols, challenge_from_row};
use super::model::{AgencyStanding, CertificateStatus};
use super::{Store, StoreResult};

impl Store {
    /// Everything an agency request needs to know about its caller, in one
    /// round trip (every agency request pays it): the authority record
    /// (`None` if not registered), the status of the client certificate it
    /// authenticated with (`None` if this service did not issue it), and,
    /// for an enrollment, the challenge it answers (`None` if unknown).
    pub async fn agency_standing(
        &self,
        authority_id: &str,
        client_serial: &str,
        challenge_id: Option<&str>,
    ) -> StoreResult<AgencyStanding> {
        let row = sqlx::query(concat!(
            "SELECT client_status, ",
            authority_cols!(),
            ", ch.* FROM (SELECT (SELECT status FROM certificates WHERE serial = $2) \
             AS client_status) AS s \
             LEFT JOIN authorities ON authorities.id = $1 \
             LEFT JOIN (SELECT ",
            challenge_cols!(),
            " FROM challenges WHERE id = $3) AS ch ON TRUE"
        ))
        .bind(authority_id)
        .bind(client_serial)
        .bind(challenge_id)
        .fetch_one(self.pool())
        .await?;
        let client_status = row
            .try_get::<Option<String>, _>("client_status")?
            .map(|s| CertificateStatus::parse(&s))
            .transpose()?;
        let authority = match row.try_get::<Option<String>, _>("id")? {
            Some(_) => Some(authority_from_row(&row)?),
            None => None,
        };
        let challenge = match row.try_get::<Option<String>, _>("ch_id")? {
            Some(_) => Some(challenge_from_row(&row)?),
            None => None,
        };
        Ok(AgencyStanding {
            authority,
            client_status,
            challenge,
        })
    }
}

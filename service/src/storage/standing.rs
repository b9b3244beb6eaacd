//! The standing of an agency's caller: its authority, the status of the
//! client certificate it authenticated with and the challenge it answers.
//! Every agency request needs it first (an enrollment twice: challenge and
//! answer), so it is one query joining the three tables rather than three
//! round trips.
//!
//! # Coalescing on PostgreSQL
//!
//! Under load these lookups are most of the statements the database runs
//! per enrollment, and on a busy host each costs PostgreSQL far more in
//! waking a backend and running the protocol than in the index lookups
//! themselves. So on PostgreSQL one reader task per store answers them
//! together: it takes every lookup queued (up to [`MAX_LOOKUPS`]), asks
//! for all of them in one statement, hands each caller its own row, and
//! meanwhile the next lookups queue. An idle service sends a lookup at
//! once, so coalescing adds at most one query's time to a lookup, only
//! when another is running. SQLite, in process and with concurrent
//! readers, runs each lookup on its own: the same statement for one row.
//!
//! Every lookup reads committed state as of its statement, as before; a
//! batch is one statement, so its lookups share one snapshot.

use std::collections::HashMap;
use std::sync::OnceLock;

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use super::authorities::{authority_cols, authority_from_row};
use super::challenges::{challenge_cols, challenge_from_row};
use super::model::{AgencyStanding, CertificateStatus};
use super::{Backend, Store, StoreError, StoreResult};

/// Most lookups answered by one statement (a power of two: a batch is
/// padded to the next one, so only a few statement texts exist).
pub(super) const MAX_LOOKUPS: usize = 64;

/// One caller's lookup.
#[derive(Clone)]
struct Lookup {
    authority_id: String,
    client_serial: String,
    challenge_id: Option<String>,
}

/// A queued lookup and where its answer goes.
pub(super) struct Queued {
    lookup: Lookup,
    reply: oneshot::Sender<StoreResult<AgencyStanding>>,
}

/// Where a store's standing lookups go: to the coalescing reader task
/// (PostgreSQL), or straight to the pool (SQLite).
pub(super) enum Readers {
    Coalesced(mpsc::Sender<Queued>),
    Direct,
}

/// Starts the reader task of a PostgreSQL store on the current runtime; it
/// ends when the store (every sender) is dropped.
pub(super) fn spawn(pool: AnyPool, backend: Backend) -> Readers {
    if backend != Backend::Postgres {
        return Readers::Direct;
    }
    let (tx, mut rx) = mpsc::channel::<Queued>(MAX_LOOKUPS * 16);
    tokio::spawn(async move {
        let mut queued = Vec::with_capacity(MAX_LOOKUPS);
        while rx.recv_many(&mut queued, MAX_LOOKUPS).await > 0 {
            let (lookups, replies): (Vec<Lookup>, Vec<_>) =
                queued.drain(..).map(|q| (q.lookup, q.reply)).unzip();
            match look_up(&pool, &lookups).await {
                Ok(standings) => {
                    for (standing, reply) in standings.into_iter().zip(replies) {
                        // The caller may have gone away.
                        let _ = reply.send(Ok(standing));
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    for reply in replies {
                        let _ = reply.send(Err(StoreError::Unavailable(msg.clone())));
                    }
                }
            }
        }
    });
    Readers::Coalesced(tx)
}

impl Store {
    /// Everything an agency request needs to know about its caller, in one
    /// round trip (every agency request pays it; on PostgreSQL concurrent
    /// callers share it, see the module docs): the authority record
    /// (`None` if not registered), the status of the client certificate it
    /// authenticated with (`None` if this service did not issue it), and,
    /// for an enrollment, the challenge it answers (`None` if unknown).
    pub async fn agency_standing(
        &self,
        authority_id: &str,
        client_serial: &str,
        challenge_id: Option<&str>,
    ) -> StoreResult<AgencyStanding> {
        let lookup = Lookup {
            authority_id: authority_id.to_owned(),
            client_serial: client_serial.to_owned(),
            challenge_id: challenge_id.map(str::to_owned),
        };
        match &self.inner.readers {
            Readers::Direct => look_up(self.pool(), std::slice::from_ref(&lookup))
                .await?
                .pop()
                .ok_or_else(|| StoreError::Corrupt("no row for a standing lookup".into())),
            Readers::Coalesced(tx) => {
                let (reply, answer) = oneshot::channel();
                tx.send(Queued { lookup, reply })
                    .await
                    .map_err(|_| StoreError::WriterClosed)?;
                answer.await.map_err(|_| StoreError::WriterClosed)?
            }
        }
    }
}

/// Answers `lookups` (at most [`MAX_LOOKUPS`]) with one statement, in
/// their order.
async fn look_up(pool: &AnyPool, lookups: &[Lookup]) -> StoreResult<Vec<AgencyStanding>> {
    let Some(last) = lookups.last() else {
        return Ok(Vec::new());
    };
    if lookups.len() > MAX_LOOKUPS {
        return Err(StoreError::InvalidInput(format!(
            "{} standing lookups in one statement (at most {MAX_LOOKUPS})",
            lookups.len()
        )));
    }
    // Padded with copies of the last lookup to a size a statement exists
    // for; the copies' rows are ignored.
    let rows = lookups.len().next_power_of_two();
    let mut query = sqlx::query(standing_sql(rows));
    for (n, lookup) in lookups
        .iter()
        .chain(std::iter::repeat(last))
        .take(rows)
        .enumerate()
    {
        query = query
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .bind(lookup.authority_id.as_str())
            .bind(lookup.client_serial.as_str())
            .bind(lookup.challenge_id.as_deref());
    }
    let mut by_n: HashMap<i64, AgencyStanding> = HashMap::with_capacity(rows);
    for row in query.fetch_all(pool).await? {
        let n: i64 = row.try_get("q_n")?;
        by_n.insert(n, standing_from_row(&row)?);
    }
    (0..lookups.len())
        .map(|n| {
            i64::try_from(n)
                .ok()
                .and_then(|n| by_n.remove(&n))
                .ok_or_else(|| StoreError::Corrupt(format!("no row for standing lookup {n}")))
        })
        .collect()
}

/// The statement for `rows` lookups (a power of two up to
/// [`MAX_LOOKUPS`]), built once per size. One row per lookup: the
/// lookups as a `VALUES` list (numbered, so that rows find their caller
/// whatever order they come in), each joined with its authority and
/// challenge, the client certificate's status as a scalar subquery.
fn standing_sql(rows: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        (0..=MAX_LOOKUPS.trailing_zeros())
            .map(|k| {
                let values: Vec<String> = (0..1usize << k)
                    .map(|r| {
                        let p = 4 * r;
                        format!(
                            "(CAST(${} AS BIGINT), ${}, ${}, ${})",
                            p + 1,
                            p + 2,
                            p + 3,
                            p + 4
                        )
                    })
                    .collect();
                format!(
                    concat!(
                        "WITH q (n, authority_id, client_serial, challenge_id) AS (VALUES {}) \
                         SELECT q.n AS q_n, (SELECT status FROM certificates \
                         WHERE serial = q.client_serial) AS client_status, ",
                        authority_cols!(),
                        ", ch.* FROM q LEFT JOIN authorities ON authorities.id = q.authority_id \
                         LEFT JOIN (SELECT ",
                        challenge_cols!(),
                        " FROM challenges) AS ch ON ch.ch_id = q.challenge_id"
                    ),
                    values.join(", ")
                )
            })
            .collect()
    });
    all.get(rows.trailing_zeros() as usize)
        .map_or("", String::as_str)
}

/// Decodes one lookup's row.
fn standing_from_row(row: &AnyRow) -> StoreResult<AgencyStanding> {
    let client_status = row
        .try_get::<Option<String>, _>("client_status")?
        .map(|s| CertificateStatus::parse(&s))
        .transpose()?;
    let authority = match row.try_get::<Option<String>, _>("id")? {
        Some(_) => Some(authority_from_row(row)?),
        None => None,
    };
    let challenge = match row.try_get::<Option<String>, _>("ch_id")? {
        Some(_) => Some(challenge_from_row(row)?),
        None => None,
    };
    Ok(AgencyStanding {
        authority,
        client_status,
        challenge,
    })
}

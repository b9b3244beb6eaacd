//! Dispatch of one change to its statements: [`apply`] runs an [`Op`]
//! inside the batch's transaction and reports its [`Outcome`]. The
//! statements themselves are in the module of each table.

use sqlx::AnyConnection;

use super::certificates::Issuance;
use super::{
    authorities, certificates, challenges, crls, operator_tokens, outbox, revocations, Op, Outcome,
    Work,
};
use crate::storage::{Backend, StoreError};

/// What applying one op did: its outcome, and the id of the outbox item it
/// queued, if any (the batch supersedes older pending items of its state
/// key before it commits, see `outbox::enqueue`).
pub(super) struct Applied {
    pub outcome: Outcome,
    pub outbox_id: Option<i64>,
}

impl From<Outcome> for Applied {
    fn from(outcome: Outcome) -> Self {
        Self {
            outcome,
            outbox_id: None,
        }
    }
}

impl From<(Outcome, Option<i64>)> for Applied {
    fn from((outcome, outbox_id): (Outcome, Option<i64>)) -> Self {
        Self { outcome, outbox_id }
    }
}

/// Applies one op inside the batch transaction. Ops check their
/// preconditions before writing anything, so a non-`Done` outcome leaves
/// no trace; a returned error aborts the whole batch.
pub(super) async fn apply(
    conn: &mut AnyConnection,
    backend: Backend,
    work: &Work,
) -> Result<Applied, StoreError> {
    let at = work.at;
    Ok(match &work.op {
        Op::InsertAuthority(p) => authorities::insert(conn, p).await?.into(),
        Op::UpdateAuthority(p) => authorities::update(conn, p).await?.into(),
        Op::SetAuthorityStatus { id, status } => {
            authorities::set_status(conn, id, status, at).await?.into()
        }
        // `run_batch` applies these in bulk (`bulk_insert_challenges`)
        // before the batch's other ops; alone, one is a bulk of one.
        Op::InsertChallenge(c) => challenges::insert_one(conn, backend, c).await?.into(),
        Op::ConsumeChallenge(claim) => challenges::consume(conn, claim).await?.into(),
        Op::IssueCertificate {
            cert,
            outbox,
            claim,
        } => {
            let issuance = Issuance {
                cert,
                outbox: outbox.as_ref(),
                claim: claim.as_ref(),
            };
            certificates::issue_certificate(conn, backend, &issuance, at)
                .await?
                .into()
        }
        Op::Supersede { serial } => certificates::supersede(conn, serial).await?.into(),
        Op::Revoke {
            serial,
            reason,
            outbox,
        } => revocations::revoke(conn, backend, serial, reason, outbox.as_ref(), at)
            .await?
            .into(),
        Op::StoreCrl(crl) => crls::store(conn, crl).await?.into(),
        Op::InsertOperatorToken(t) => operator_tokens::insert(conn, t).await?.into(),
        Op::RotateOperatorToken { name, token_hash } => {
            operator_tokens::rotate(conn, name, token_hash, at)
                .await?
                .into()
        }
        Op::RevokeOperatorToken { name } => operator_tokens::revoke(conn, name, at).await?.into(),
        Op::DeleteOperatorToken { name } => operator_tokens::delete(conn, name).await?.into(),
        Op::Enqueue(item) => {
            let id = outbox::enqueue(conn, backend, item, at).await?;
            (Outcome::Done, Some(id)).into()
        }
        Op::AuditOnly => Outcome::Done.into(),
    })
}

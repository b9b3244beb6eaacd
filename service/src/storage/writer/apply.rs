//! Dispatch of one change to its statements: [`apply`] runs an [`Op`]
//! inside the batch's transaction and reports its [`Outcome`]. The
//! statements themselves are in the module of each table.

use sqlx::AnyConnection;

use super::{
    authorities, certificates, challenges, crls, operator_tokens, outbox, revocations, Op, Outcome,
    Work,
};
use crate::storage::{Backend, StoreError};

/// Applies one op inside the batch transaction. Ops check their
/// preconditions before writing anything, so a non-`Done` outcome leaves
/// no trace; a returned error aborts the whole batch.
pub(super) async fn apply(
    conn: &mut AnyConnection,
    backend: Backend,
    work: &Work,
) -> Result<Outcome, StoreError> {
    let at = work.at;
    match &work.op {
        Op::InsertAuthority(p) => authorities::insert(conn, p).await,
        Op::UpdateAuthority(p) => authorities::update(conn, p).await,
        Op::SetAuthorityStatus { id, status } => {
            authorities::set_status(conn, id, status, at).await
        }
        // `run_batch` applies these in bulk (`bulk_insert_challenges`)
        // before the batch's other ops; alone, one is a bulk of one.
        Op::InsertChallenge(c) => challenges::insert_one(conn, c).await,
        Op::ConsumeChallenge(claim) => challenges::consume(conn, claim).await,
        Op::IssueCertificate {
            cert,
            outbox,
            claim,
        } => {
            certificates::issue_certificate(
                conn,
                backend,
                cert,
                outbox.as_ref(),
                claim.as_ref(),
                at,
            )
            .await
        }
        Op::Supersede { serial } => certificates::supersede(conn, serial).await,
        Op::Revoke {
            serial,
            reason,
            outbox,
        } => revocations::revoke(conn, backend, serial, reason, outbox.as_ref(), at).await,
        Op::StoreCrl(crl) => crls::store(conn, crl).await,
        Op::InsertOperatorToken(t) => operator_tokens::insert(conn, t).await,
        Op::RotateOperatorToken { name, token_hash } => {
            operator_tokens::rotate(conn, name, token_hash, at).await
        }
        Op::RevokeOperatorToken { name } => operator_tokens::revoke(conn, name, at).await,
        Op::DeleteOperatorToken { name } => operator_tokens::delete(conn, name).await,
        Op::Enqueue(item) => {
            outbox::enqueue(conn, backend, item, at).await?;
            Ok(Outcome::Done)
        }
        Op::AuditOnly => Ok(Outcome::Done),
    }
}

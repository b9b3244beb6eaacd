//! The audit log (operators with `ReadAudit`): reading its entries page by
//! page, and checking its hash chain. Entries are returned as stored: the
//! log holds actors (`operator:<name>`, `agency:<authority>`, `system`),
//! actions, subjects (serials, authority IDs, token names) and details,
//! and nothing else is added.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::json::ApiQuery;
use super::{decode_cursor, encode_cursor, page_limit};
use crate::caller::{perm, Require};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::storage::AuditRecord;

/// Default page size of `GET /v1/audit/log`.
const DEFAULT_PAGE: u32 = 100;
/// Largest page size of `GET /v1/audit/log`.
const MAX_PAGE: u32 = 1000;

/// The query of `GET /v1/audit/log`.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditLogQuery {
    /// Only entries logged at or after this time (ms).
    pub since: Option<i64>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One audit entry as stored.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditRecordView {
    /// Position in the chain (from 1, no gaps).
    pub seq: u64,
    /// Time of the change (ms).
    pub at: i64,
    /// Who: `operator:<token name>`, `agency:<authority ID>` or `system`.
    pub actor: String,
    /// What, e.g. `certificate.issued`, `operator.token_rotated`.
    pub action: String,
    /// To what (serial, authority ID, token name), if anything.
    pub subject: Option<String>,
    /// Structured details, as stored.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

impl From<AuditRecord> for AuditRecordView {
    fn from(r: AuditRecord) -> Self {
        let details = serde_json::from_str(&r.details)
            .unwrap_or_else(|_| serde_json::Value::String(r.details.clone()));
        AuditRecordView {
            seq: r.seq,
            at: r.at,
            actor: r.actor,
            action: r.action,
            subject: r.subject,
            details,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// One page of `GET /v1/audit/log`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditLogPage {
    /// Entries in chain order.
    pub entries: Vec<AuditRecordView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/audit/log", params(AuditLogQuery),
    description = "Reads the audit log in chain order with keyset paging.",
    responses((status = 200, body = AuditLogPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn audit_log(
    State(svc): State<AppState>,
    _op: Require<perm::ReadAudit>,
    ApiQuery(q): ApiQuery<AuditLogQuery>,
) -> Result<Json<AuditLogPage>, ApiError> {
    let limit = page_limit(q.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let after = match q.cursor.as_deref() {
        None => 0,
        Some(c) => decode_cursor(c)?
            .parse::<u64>()
            .map_err(|_| ApiError::invalid_param("cursor: not a cursor this service returned"))?,
    };
    let entries = svc.store.list_audit_since(q.since, after, limit).await?;
    let next_cursor = match entries.last() {
        Some(last) if entries.len() == limit as usize => Some(encode_cursor(&last.seq.to_string())),
        _ => None,
    };
    Ok(Json(AuditLogPage {
        entries: entries.into_iter().map(AuditRecordView::from).collect(),
        next_cursor,
    }))
}

/// The result of checking the audit chain.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditVerifyReport {
    /// Entries checked (up to and including the first broken one).
    pub entries: u64,
    /// The first entry that does not verify, if any.
    pub first_broken: Option<u64>,
    /// Why it does not verify.
    pub reason: Option<String>,
    /// The chain head checked against.
    pub head_seq: u64,
    /// The head's hash.
    pub head_hash: String,
}

#[utoipa::path(get, path = "/v1/audit/verify",
    responses((status = 200, body = AuditVerifyReport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn audit_verify(
    State(svc): State<AppState>,
    _op: Require<perm::ReadAudit>,
) -> Result<Json<AuditVerifyReport>, ApiError> {
    let r = svc.store.verify_audit_chain().await?;
    Ok(Json(AuditVerifyReport {
        entries: r.entries,
        first_broken: r.first_broken,
        reason: r.reason,
        head_seq: r.head_seq,
        head_hash: r.head_hash,
    }))
}

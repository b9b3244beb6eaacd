//! The authority registry (operators): list, read, create, update,
//! suspend (revoking the authority's live certificates) and activate.

use axum::extract::{Path, State};
use axum::Json;
use govtrust_api::authority::AuthorityInput;
use govtrust_pki::RevocationReason;
use govtrust_verifier::AuthorityRecord;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::json::{ApiJson, ApiQuery};
use crate::caller::{perm, Require};
use crate::clock::now_ms;
use crate::error::{ApiError, ErrorBody};
use crate::state::{AppState, Service};
use crate::storage::{AuditEntry, Authority, AuthorityStatus, Store, StoreError};
use crate::tasks;

/// The stored authority `id`, or 404.
async fn existing_authority(store: &Store, id: &str) -> Result<Authority, ApiError> {
    store
        .get_authority(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no authority {id}")))
}

/// An authority with its status.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuthorityView {
    /// The official record (subject DN of its certificates).
    #[schema(value_type = Object)]
    pub record: AuthorityRecord,
    /// Matrix server names of its users.
    pub servers: Vec<String>,
    /// Localpart patterns of its users.
    pub user_patterns: Vec<String>,
    /// `active` or `suspended`.
    pub status: String,
    /// Operational contact.
    pub contact: Option<String>,
}

impl From<Authority> for AuthorityView {
    fn from(a: Authority) -> Self {
        AuthorityView {
            record: a.record,
            servers: a.servers,
            user_patterns: a.user_patterns,
            status: a.status.as_str().to_owned(),
            contact: a.contact,
        }
    }
}

/// The query of `GET /v1/authorities`.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuthorityPage {
    /// The last authority ID of the previous page.
    pub after: Option<String>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/authorities", params(AuthorityPage), responses((status = 200, body = Vec<AuthorityView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn list_authorities(
    State(svc): State<AppState>,
    _op: Require<perm::ReadAuthorities>,
    ApiQuery(page): ApiQuery<AuthorityPage>,
) -> Result<Json<Vec<AuthorityView>>, ApiError> {
    let list = svc
        .store
        .list_authorities(page.after.as_deref(), page.limit.unwrap_or(100).min(1000))
        .await?;
    Ok(Json(list.into_iter().map(AuthorityView::from).collect()))
}

#[utoipa::path(get, path = "/v1/authorities/{id}", params(("id" = String, Path)), responses((status = 200, body = AuthorityView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn get_authority(
    State(svc): State<AppState>,
    _op: Require<perm::ReadAuthorities>,
    Path(id): Path<String>,
) -> Result<Json<AuthorityView>, ApiError> {
    let a = existing_authority(&svc.store, &id).await?;
    Ok(Json(a.into()))
}

#[utoipa::path(post, path = "/v1/authorities", request_body = AuthorityInput, responses((status = 200, body = AuthorityView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn create_authority(
    State(svc): State<AppState>,
    Require(op, _): Require<perm::ManageAuthorities>,
    ApiJson(input): ApiJson<AuthorityInput>,
) -> Result<Json<AuthorityView>, ApiError> {
    let now = now_ms();
    let authority = input.into_authority(AuthorityStatus::Active, now, now)?;
    let id = authority.record.id.clone();
    svc.store
        .insert_authority(
            authority.clone(),
            AuditEntry::new(
                op.actor(),
                "authority.created",
                id.clone(),
                serde_json::to_value(&authority.record).unwrap_or_default(),
            ),
        )
        .await
        .map_err(|e| match e {
            StoreError::Duplicate { .. } => {
                ApiError::conflict(format!("authority {id} exists; use PUT to change it"))
            }
            other => other.into(),
        })?;
    Ok(Json(authority.into()))
}

#[utoipa::path(put, path = "/v1/authorities/{id}", params(("id" = String, Path)), request_body = AuthorityInput, responses((status = 200, body = AuthorityView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn update_authority(
    State(svc): State<AppState>,
    Require(op, _): Require<perm::ManageAuthorities>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<AuthorityInput>,
) -> Result<Json<AuthorityView>, ApiError> {
    if input.record.id != id {
        return Err(ApiError::invalid_param(
            "the record's id must match the URL",
        ));
    }
    let existing = existing_authority(&svc.store, &id).await?;
    let authority = input.into_authority(existing.status, existing.created_at, now_ms())?;
    svc.store
        .update_authority(
            authority.clone(),
            AuditEntry::new(
                op.actor(),
                "authority.updated",
                id,
                serde_json::to_value(&authority.record).unwrap_or_default(),
            ),
        )
        .await?;
    Ok(Json(authority.into()))
}

/// Outcome of suspending an authority.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SuspendResponse {
    /// The authority.
    pub id: String,
    /// Certificates revoked because of the suspension.
    pub revoked: Vec<String>,
}

#[utoipa::path(post, path = "/v1/authorities/{id}/suspend", params(("id" = String, Path)), responses((status = 200, body = SuspendResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn suspend_authority(
    State(svc): State<AppState>,
    Require(op, _): Require<perm::ManageAuthorities>,
    Path(id): Path<String>,
) -> Result<Json<SuspendResponse>, ApiError> {
    let revoked = suspend(&svc, &id, &op.actor()).await?;
    Ok(Json(SuspendResponse { id, revoked }))
}

/// Suspends an authority and revokes its live certificates (each revocation
/// also queues the updated attestation event).
pub async fn suspend(svc: &Service, id: &str, actor: &str) -> Result<Vec<String>, ApiError> {
    svc.store
        .get_authority(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no authority {id}")))?;
    svc.store
        .set_authority_status(
            id,
            AuthorityStatus::Suspended,
            now_ms(),
            AuditEntry::new(actor, "authority.suspended", id, serde_json::json!({})),
        )
        .await?;
    let mut revoked = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = svc
            .store
            .list_live_by_authority(id, now_ms(), after.as_deref(), 500)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.serial.clone());
        for cert in &page {
            if tasks::revoke(svc, cert, RevocationReason::PrivilegeWithdrawn, actor).await? {
                revoked.push(cert.serial.clone());
            }
        }
    }
    Ok(revoked)
}

#[utoipa::path(post, path = "/v1/authorities/{id}/activate", params(("id" = String, Path)), responses((status = 200, body = AuthorityView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn activate_authority(
    State(svc): State<AppState>,
    Require(op, _): Require<perm::ManageAuthorities>,
    Path(id): Path<String>,
) -> Result<Json<AuthorityView>, ApiError> {
    existing_authority(&svc.store, &id).await?;
    svc.store
        .set_authority_status(
            &id,
            AuthorityStatus::Active,
            now_ms(),
            AuditEntry::new(
                op.actor(),
                "authority.activated",
                id.clone(),
                serde_json::json!({}),
            ),
        )
        .await?;
    let a = existing_authority(&svc.store, &id).await?;
    Ok(Json(a.into()))
}

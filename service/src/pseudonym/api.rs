//! `POST /v1/pseudonyms`: a citizen, authenticated by an identity-provider
//! assertion, gets (or gets again) the pseudonymous account for one
//! authority.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use govtrust_verifier::profile::AssuranceLevel;
use serde::{Deserialize, Serialize};

use super::{derive, Pseudonyms};
use crate::api::ApiJson;
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::{AuditEntry, AuthorityStatus};
use crate::tasks::now_ms;

/// The request body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PseudonymRequest {
    /// The identity provider's signed assertion about the citizen.
    pub assertion: String,
    /// The authority the citizen wants to talk to.
    pub authority_id: String,
}

/// The response: the pseudonymous account for that authority.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PseudonymResponse {
    /// `@p-…:server`.
    pub user_id: String,
    /// The level of assurance the identity provider asserted.
    #[schema(value_type = String)]
    pub assurance_level: AssuranceLevel,
    /// Whether the account was created by this request.
    pub created: bool,
}

/// Verifies the assertion, derives the pseudonym for the authority,
/// ensures the account on the homeserver, audits (pseudonym and authority
/// only) and answers.
pub async fn create_pseudonym(
    State(svc): State<AppState>,
    Extension(feature): Extension<Arc<Pseudonyms>>,
    ApiJson(request): ApiJson<PseudonymRequest>,
) -> Result<Json<PseudonymResponse>, ApiError> {
    let identified = feature
        .idp
        .verify(&request.assertion, now_ms() / 1000)
        .map_err(|e| ApiError::unauthorized(e.to_string()))?;
    let authority = svc
        .store
        .get_authority(&request.authority_id)
        .await?
        .ok_or_else(|| ApiError::unknown_authority("no such authority"))?;
    if authority.status != AuthorityStatus::Active {
        return Err(ApiError::authority_suspended("the authority is suspended"));
    }
    let pseudonym = derive(
        feature.key.as_ref(),
        &identified.citizen,
        &authority.record.id,
    )
    .map_err(|e| match e {
        derive::PseudonymError::InvalidInput(what) => ApiError::invalid_param(what),
        other => ApiError::internal(other.to_string()),
    })?;
    drop(identified.citizen);
    let user = pseudonym
        .user_id(&feature.server_name)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let created = feature.homeserver.ensure_user(&user).await?;
    svc.store
        .append_audit(
            AuditEntry::new(
                "citizen",
                "pseudonym.ensured",
                user.to_string(),
                serde_json::json!({
                    "authority_id": authority.record.id,
                    "assurance_level": identified.level,
                    "created": created,
                }),
            ),
            now_ms(),
        )
        .await?;
    tracing::info!(user = %user, authority = %authority.record.id, created, "pseudonymous account ensured");
    Ok(Json(PseudonymResponse {
        user_id: user.to_string(),
        assurance_level: identified.level,
        created,
    }))
}

/// The route when the feature is enabled but could not start.
pub async fn unavailable() -> ApiError {
    ApiError::homeserver_unavailable("pseudonyms are enabled but unavailable (see the service log)")
}

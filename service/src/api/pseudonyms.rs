//! The citizen's endpoints, each authenticated by a fresh
//! identity-provider assertion (no mTLS, no token):
//!
//! * `POST /v1/pseudonyms`: the citizen gets (or gets again) the
//!   pseudonymous account for one authority;
//! * `POST /v1/pseudonyms/enrollment/challenge` and
//!   `POST /v1/pseudonyms/enrollment`: the citizen enrolls the device of
//!   that account for a citizen attestation (kind `citizen`) through the
//!   enrollment flow of [`crate::enroll`] — the same proof of possession
//!   and `/keys/query` cross-check as an agency's device, for exactly the
//!   pseudonym the assertion and the authority give.
//!
//! Each request verifies the assertion anew, derives the pseudonym and
//! drops the stable ID before anything is looked up, logged or stored.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Extension, Json, Router};
use govtrust_api::enrollment::{
    ChallengeResponse, CitizenChallengeRequest, CitizenEnrollRequest, EnrollResponse,
};
use govtrust_verifier::UserId;

use super::ApiJson;
use crate::clock::now_ms;
use crate::enroll::{self, Citizen, Enrollee};
use crate::error::{ApiError, ErrorBody};
use crate::pseudonym::{derive, Pseudonyms};
use crate::state::AppState;
use crate::storage::{AuditEntry, AuthorityStatus};
pub use govtrust_api::pseudonym::{PseudonymRequest, PseudonymResponse};

/// Who the assertion says the citizen is, for `authority_id`: verifies
/// the assertion (`GT_UNAUTHORIZED`), requires the authority registered
/// (`GT_UNKNOWN_AUTHORITY`), derives the pseudonym and drops the stable
/// ID. Whether the authority is active is the caller's check (account
/// creation here, the enrollment flow for attestations).
async fn identify(
    svc: &AppState,
    feature: &Pseudonyms,
    assertion: &str,
    authority_id: &str,
) -> Result<Citizen, ApiError> {
    let identified = feature
        .idp
        .verify(assertion, now_ms() / 1000)
        .map_err(|e| ApiError::unauthorized(e.to_string()))?;
    let authority = svc
        .store
        .get_authority(authority_id)
        .await?
        .ok_or_else(|| ApiError::unknown_authority("no such authority"))?;
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
    let pseudonym: UserId = pseudonym
        .user_id(&feature.server_name)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Citizen {
        authority,
        pseudonym,
        level: identified.level,
    })
}

/// Verifies the assertion, derives the pseudonym for the authority,
/// ensures the account on the homeserver, audits (pseudonym and authority
/// only) and answers.
#[utoipa::path(post, path = "/v1/pseudonyms", request_body = PseudonymRequest,
    responses((status = 200, body = PseudonymResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create_pseudonym(
    State(svc): State<AppState>,
    Extension(feature): Extension<Arc<Pseudonyms>>,
    ApiJson(request): ApiJson<PseudonymRequest>,
) -> Result<Json<PseudonymResponse>, ApiError> {
    let Citizen {
        authority,
        pseudonym: user,
        level,
    } = identify(&svc, &feature, &request.assertion, &request.authority_id).await?;
    if authority.status != AuthorityStatus::Active {
        return Err(ApiError::authority_suspended("the authority is suspended"));
    }
    let created = feature.homeserver.ensure_user(&user).await?;
    svc.store
        .append_audit(
            AuditEntry::new(
                "citizen",
                "pseudonym.ensured",
                user.to_string(),
                serde_json::json!({
                    "authority_id": authority.record.id,
                    "assurance_level": level,
                    "created": created,
                }),
            ),
            now_ms(),
        )
        .await?;
    tracing::info!(user = %user, authority = %authority.record.id, created, "pseudonymous account ensured");
    Ok(Json(PseudonymResponse {
        user_id: user.to_string(),
        assurance_level: level,
        created,
    }))
}

/// Step 1 of a citizen's enrollment (kind `citizen`): the assertion and
/// the authority give the pseudonym, which must be the request's user;
/// then the enrollment flow's challenge for the pseudonym's device.
#[utoipa::path(post, path = "/v1/pseudonyms/enrollment/challenge",
    request_body = CitizenChallengeRequest,
    responses((status = 200, body = ChallengeResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn citizen_challenge(
    State(svc): State<AppState>,
    Extension(feature): Extension<Arc<Pseudonyms>>,
    ApiJson(request): ApiJson<CitizenChallengeRequest>,
) -> Result<Json<ChallengeResponse>, ApiError> {
    let citizen = identify(&svc, &feature, &request.assertion, &request.authority_id).await?;
    enroll::challenge_for(
        &svc,
        Enrollee::Citizen(&citizen),
        request.challenge_request(),
    )
    .await
    .map(Json)
}

/// Step 2 of a citizen's enrollment: a fresh assertion, the answer to the
/// challenge; issues the citizen attestation at the assertion's level,
/// stores and audits it, publishes nothing and returns the chain.
#[utoipa::path(post, path = "/v1/pseudonyms/enrollment",
    request_body = CitizenEnrollRequest,
    responses((status = 200, body = EnrollResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn citizen_enrollment(
    State(svc): State<AppState>,
    Extension(feature): Extension<Arc<Pseudonyms>>,
    ApiJson(request): ApiJson<CitizenEnrollRequest>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let citizen = identify(&svc, &feature, &request.assertion, &request.authority_id).await?;
    let response = enroll::enroll_citizen(&svc, &citizen, request.enroll_request()).await?;
    tracing::info!(user = %citizen.pseudonym, authority = %citizen.authority.record.id,
        level = %citizen.level, serial = %response.serial, "citizen attestation issued");
    Ok(Json(response))
}

/// The citizen's routes (`/v1/pseudonyms…`) when enabled (the feature
/// state travels as an extension), nothing otherwise (the router's
/// fallback answers 404). If the feature is enabled but cannot start (key
/// unreadable, token missing), the routes answer 503 and the reason is
/// logged once.
pub fn router(state: &AppState) -> Router<AppState> {
    let routes = Router::new()
        .route("/v1/pseudonyms", post(create_pseudonym))
        .route(
            "/v1/pseudonyms/enrollment/challenge",
            post(citizen_challenge),
        )
        .route("/v1/pseudonyms/enrollment", post(citizen_enrollment));
    match Pseudonyms::from_config(&state.config) {
        Ok(None) => Router::new(),
        Ok(Some(feature)) => routes.layer(Extension(Arc::new(feature))),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "pseudonyms: enabled but unavailable");
            routes.route_layer(axum::middleware::from_fn(unavailable))
        }
    }
}

/// Answers every citizen route with 503 when the feature is enabled but
/// could not start: the handlers behind it never run.
async fn unavailable(
    _request: axum::extract::Request,
    _next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    ApiError::homeserver_unavailable("pseudonyms are enabled but unavailable (see the service log)")
        .into_response()
}

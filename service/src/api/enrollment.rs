//! The agency's two enrollment steps (mTLS): the challenge and the answer.
//! The flow itself is [`crate::enroll`].

use axum::extract::State;
use axum::Json;
use govtrust_api::enrollment::{
    ChallengeRequest, ChallengeResponse, EnrollRequest, EnrollResponse,
};

use super::json::ApiJson;
use crate::caller::{Agency, AgencyIdentity};
use crate::enroll;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[utoipa::path(post, path = "/v1/enrollment/challenge", request_body = ChallengeRequest,
    responses((status = 200, body = ChallengeResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("mtls" = [])))]
pub(super) async fn challenge(
    State(svc): State<AppState>,
    agency: Agency,
    ApiJson(request): ApiJson<ChallengeRequest>,
) -> Result<Json<ChallengeResponse>, ApiError> {
    enroll::challenge(&svc, &agency, request).await.map(Json)
}

#[utoipa::path(post, path = "/v1/enrollment", request_body = EnrollRequest,
    responses((status = 200, body = EnrollResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("mtls" = [])))]
pub(super) async fn enrollment(
    State(svc): State<AppState>,
    AgencyIdentity(agency): AgencyIdentity,
    ApiJson(request): ApiJson<EnrollRequest>,
) -> Result<Json<EnrollResponse>, ApiError> {
    enroll::enroll(&svc, agency, request).await.map(Json)
}

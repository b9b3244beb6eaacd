//! The HTTP API under `/v1`: the router and its middleware. Handlers are
//! thin and grouped by concept: [`public`] (health, readiness, metrics,
//! roots, CRLs), [`enrollment`] (the agency's two steps),
//! [`certificates`] (list, read, revoke), [`authorities`] (the registry),
//! [`enrollment_clients`] (agency mTLS certificates), [`tokens`] (operator
//! tokens), [`audit`] (the log and its check); [`json`] holds the body and
//! query extractors, [`openapi`] the OpenAPI document. The citizen's
//! routes (`/v1/pseudonyms`, and the citizen attestation's enrollment
//! under `/v1/pseudonyms/enrollment…`) are [`pseudonyms::router`],
//! merged here and mounted only when `[pseudonyms]` is enabled.
//!
//! Who is calling is decided in [`crate::caller`]: every operator endpoint
//! extracts `Require<P>` (or `AgencyOr<P>`) naming the permission it needs,
//! and [`crate::caller::Permission::roles`] is the table of which roles
//! hold it. The enrollment logic lives in [`crate::enroll`], background
//! work in [`crate::tasks`].

pub mod audit;
pub mod authorities;
pub mod certificates;
pub mod enrollment;
pub mod enrollment_clients;
pub mod json;
pub mod openapi;
pub mod pseudonyms;
pub mod public;
pub mod tokens;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use crate::error::ApiError;
use crate::state::AppState;

pub use audit::{AuditLogPage, AuditLogQuery, AuditRecordView, AuditVerifyReport};
pub use authorities::{suspend, AuthorityView, SuspendResponse};
pub use certificates::{
    CertificateList, CertificateListQuery, CertificateSummary, CertificateView, RevokeRequest,
    RevokeResponse,
};
pub use enrollment_clients::{EnrollmentClientRequest, EnrollmentClientResponse};
pub use json::{ApiJson, ApiQuery};
pub use openapi::{ApiDoc, OPERATOR_ENDPOINTS};
pub use tokens::{CreateTokenRequest, IssuedToken, TokenView};

/// The router with every route and the JSON-error layers.
pub fn router(state: AppState) -> Router {
    let limit = state.config.limits.max_body_bytes;
    Router::new()
        .route("/healthz", get(public::healthz))
        .route("/readyz", get(public::readyz))
        .route("/metrics", get(public::metrics))
        .route("/v1/openapi.json", get(openapi::openapi))
        .route("/v1/roots", get(public::roots))
        .route("/v1/crl/{name}", get(public::crl))
        .route("/v1/enrollment/challenge", post(enrollment::challenge))
        .route("/v1/enrollment", post(enrollment::enrollment))
        .route("/v1/certificates", get(certificates::list_certificates))
        .route("/v1/certificates/{serial}", get(certificates::certificate))
        .route(
            "/v1/certificates/{serial}/revoke",
            post(certificates::revoke),
        )
        .route(
            "/v1/authorities",
            get(authorities::list_authorities).post(authorities::create_authority),
        )
        .route(
            "/v1/authorities/{id}",
            get(authorities::get_authority).put(authorities::update_authority),
        )
        .route(
            "/v1/authorities/{id}/suspend",
            post(authorities::suspend_authority),
        )
        .route(
            "/v1/authorities/{id}/activate",
            post(authorities::activate_authority),
        )
        .route(
            "/v1/authorities/{id}/enrollment-clients",
            post(enrollment_clients::issue_enrollment_client),
        )
        .route(
            "/v1/tokens",
            get(tokens::list_tokens).post(tokens::create_token),
        )
        .route("/v1/tokens/{name}/rotate", post(tokens::rotate_token))
        .route("/v1/tokens/{name}/revoke", post(tokens::revoke_token))
        .route("/v1/audit/log", get(audit::audit_log))
        .route("/v1/audit/verify", get(audit::audit_verify))
        // POST /v1/pseudonyms, /v1/pseudonyms/enrollment/challenge and
        // /v1/pseudonyms/enrollment.
        .merge(pseudonyms::router(&state))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_rejections,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Counts every error response by errcode (the errcode travels in a
/// response extension set by `ApiError::into_response`).
async fn count_rejections(State(svc): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(code) = response.extensions().get::<crate::error::ErrCode>() {
        svc.metrics.reject(code.0);
    }
    response
}

/// Encodes a keyset cursor (opaque to clients: URL-safe base64 of text).
pub(crate) fn encode_cursor(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

/// Decodes a cursor made by [`encode_cursor`]; `GT_INVALID_PARAM` if it is
/// not one.
pub(crate) fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    use base64::Engine;
    let bad = || ApiError::invalid_param("cursor: not a cursor this service returned");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    String::from_utf8(bytes).map_err(|_| bad())
}

/// A page size: `default` when absent, 1..=`max` otherwise.
pub(crate) fn page_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::invalid_param(format!(
            "limit must be 1 to {max}, not {n}"
        ))),
    }
}

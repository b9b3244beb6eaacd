//! Public endpoints, no authentication: liveness, readiness, metrics, the
//! root certificate and the CRLs.

use crate::clock::now_ms;
use crate::error::{ApiError, ErrorBody};
use crate::state::{AppState, Readiness};
use crate::tasks;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "The process is up")))]
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

#[utoipa::path(get, path = "/readyz", responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub(super) async fn readyz(State(svc): State<AppState>) -> Response {
    let readiness = svc.readiness().await;
    let status = if readiness.ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
pub(super) async fn metrics(State(svc): State<AppState>) -> Response {
    // With a separate metrics listener, the agency port does not serve them.
    if svc.config.metrics_listen.is_some() {
        return ApiError::not_found("no such endpoint").into_response();
    }
    crate::gauges::scrape(&svc).await
}

#[utoipa::path(get, path = "/v1/roots", responses((status = 200, description = "The pinned root certificate(s), PEM")))]
pub(super) async fn roots(State(svc): State<AppState>) -> Response {
    (
        [(CONTENT_TYPE, "application/x-pem-file")],
        crate::pemfile::cert_pem(svc.pki.root()),
    )
        .into_response()
}

#[utoipa::path(get, path = "/v1/crl/{name}",
    params(("name" = String, Path, description = "`<issuing CA ID>.crl` or `root.crl`")),
    responses((status = 200, description = "DER CRL (application/pkix-crl), cacheable until half its lifetime"),
              (status = 404, body = ErrorBody)))]
pub(super) async fn crl(
    State(svc): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let Some(ca) = name.strip_suffix(".crl") else {
        return Err(ApiError::not_found("CRLs are named <ca>.crl"));
    };
    let (der, next_update) = if ca == "root" {
        let der = svc.pki.root_crl().map_err(ApiError::from)?.ok_or_else(|| {
            ApiError::not_found("the root CRL has not been published to this service")
        })?;
        let next = govtrust_verifier::Crl::from_der(&der)
            .ok()
            .and_then(|c| c.next_update())
            .unwrap_or(0)
            * 1000;
        (der, next)
    } else if svc.pki.ca_der(ca).is_some() {
        let crl = tasks::current_crl(&svc, ca).await?;
        (crl.der, crl.next_update)
    } else {
        return Err(ApiError::not_found(format!("no issuing CA {ca:?}")));
    };
    let max_age = ((next_update - now_ms()) / 2000).clamp(0, 3600);
    Ok((
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("application/pkix-crl"),
            ),
            (
                CACHE_CONTROL,
                HeaderValue::from_str(&format!("public, max-age={max_age}"))
                    .unwrap_or(HeaderValue::from_static("no-cache")),
            ),
        ],
        der,
    )
        .into_response())
}

//! The HTTP API under `/v1`: routes, the JSON body extractor, handlers and
//! the OpenAPI document (`GET /v1/openapi.json`). Handlers are thin: who is
//! calling is decided in [`crate::caller`], the enrollment logic lives in
//! [`crate::enroll`], background work in [`crate::tasks`].

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use govtrust_pki::RevocationReason;
use govtrust_verifier::AuthorityRecord;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::caller::{Agency, AgencyIdentity, Caller, Operator};
use crate::enroll;
use crate::error::{ApiError, ErrorBody};
use crate::state::{AppState, Service};
use crate::tasks::{self, now_ms};
use govtrust_api::authority::AuthorityInput;
use govtrust_api::enrollment::{
    ChallengeRequest, ChallengeResponse, EnrollRequest, EnrollResponse,
};

use crate::storage::{
    AuditEntry, Authority, AuthorityStatus, Certificate, CertificateKind, NewCertificate,
    StoreError,
};

/// The router with every route and the JSON-error layers.
pub fn router(state: AppState) -> Router {
    let limit = state.config.limits.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/roots", get(roots))
        .route("/v1/crl/{name}", get(crl))
        .route("/v1/enrollment/challenge", post(challenge))
        .route("/v1/enrollment", post(enrollment))
        .route("/v1/certificates/{serial}", get(certificate))
        .route("/v1/certificates/{serial}/revoke", post(revoke))
        .route(
            "/v1/authorities",
            get(list_authorities).post(create_authority),
        )
        .route(
            "/v1/authorities/{id}",
            get(get_authority).put(update_authority),
        )
        .route("/v1/authorities/{id}/suspend", post(suspend_authority))
        .route("/v1/authorities/{id}/activate", post(activate_authority))
        .route(
            "/v1/authorities/{id}/enrollment-clients",
            post(issue_enrollment_client),
        )
        .route("/v1/audit/verify", get(audit_verify))
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

// ----- extractors ----------------------------------------------------------

/// A JSON body whose rejection is a `GT_BAD_JSON` / `GT_TOO_LARGE` error.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::too_large(e.body_text()))
            }
            Err(e) => Err(ApiError::bad_json(e.body_text())),
        }
    }
}

// ----- public --------------------------------------------------------------

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "The process is up")))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness of the parts a request needs.
#[derive(Serialize, ToSchema)]
struct Readiness {
    database: String,
    homeserver: String,
}

#[utoipa::path(get, path = "/readyz", responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
async fn readyz(State(svc): State<AppState>) -> Response {
    let database = match svc.store.ping().await {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("error: {e}"),
    };
    let homeserver = match &svc.publisher {
        None => "not configured".to_owned(),
        Some(bot) => match bot.client().whoami().await {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("error: {e}"),
        },
    };
    let ready =
        database == "ok" && homeserver != "not configured" && !homeserver.starts_with("error")
            || database == "ok" && svc.publisher.is_none();
    let status = if ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            database,
            homeserver,
        }),
    )
        .into_response()
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
async fn metrics(State(svc): State<AppState>) -> Response {
    if let Ok(depth) = svc.store.outbox_depth().await {
        svc.metrics
            .outbox_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }
    if let Ok(Some(crl)) = svc.store.latest_crl(svc.pki.issuing_id()).await {
        svc.metrics
            .crl_age
            .get_or_create(&crate::metrics::CaLabel {
                ca: svc.pki.issuing_id().to_owned(),
            })
            .set((now_ms() - crl.this_update) as f64 / 1000.0);
    }
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        svc.metrics.render(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/v1/openapi.json", responses((status = 200, description = "This document")))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[utoipa::path(get, path = "/v1/roots", responses((status = 200, description = "The pinned root certificate(s), PEM")))]
async fn roots(State(svc): State<AppState>) -> Response {
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
async fn crl(State(svc): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
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

// ----- agency --------------------------------------------------------------

#[utoipa::path(post, path = "/v1/enrollment/challenge", request_body = ChallengeRequest,
    responses((status = 200, body = ChallengeResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("mtls" = [])))]
async fn challenge(
    State(svc): State<AppState>,
    agency: Agency,
    ApiJson(request): ApiJson<ChallengeRequest>,
) -> Result<Json<ChallengeResponse>, ApiError> {
    enroll::challenge(&svc, &agency, request).await.map(Json)
}

#[utoipa::path(post, path = "/v1/enrollment", request_body = EnrollRequest,
    responses((status = 200, body = EnrollResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("mtls" = [])))]
async fn enrollment(
    State(svc): State<AppState>,
    AgencyIdentity(agency): AgencyIdentity,
    ApiJson(request): ApiJson<EnrollRequest>,
) -> Result<Json<EnrollResponse>, ApiError> {
    enroll::enroll(&svc, agency, request).await.map(Json)
}

/// A stored certificate as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct CertificateView {
    serial: String,
    kind: String,
    status: String,
    user_id: Option<String>,
    device_id: Option<String>,
    key: String,
    authority_id: String,
    not_before: i64,
    not_after: i64,
    chain_pem: String,
}

impl CertificateView {
    fn new(svc: &Service, cert: &Certificate) -> Self {
        CertificateView {
            serial: cert.serial.clone(),
            kind: cert.kind.as_str().to_owned(),
            status: cert.status.as_str().to_owned(),
            user_id: cert.user_id.clone(),
            device_id: cert.device_id.clone(),
            key: cert.key.clone(),
            authority_id: cert.authority_id.clone(),
            not_before: cert.not_before,
            not_after: cert.not_after,
            chain_pem: format!(
                "{}{}",
                crate::pemfile::encode("CERTIFICATE", &cert.der),
                svc.pki
                    .ca_der(&cert.issuing_ca)
                    .map(crate::pemfile::cert_pem)
                    .unwrap_or_default()
            ),
        }
    }
}

async fn visible_certificate(
    svc: &Service,
    caller: &Caller,
    serial: &str,
) -> Result<Certificate, ApiError> {
    let cert = svc
        .store
        .get_certificate(&serial.to_ascii_lowercase())
        .await?
        .filter(|c| caller.may_see(c))
        .ok_or_else(|| ApiError::not_found(format!("no certificate {serial} visible to you")))?;
    Ok(cert)
}

#[utoipa::path(get, path = "/v1/certificates/{serial}", params(("serial" = String, Path)),
    responses((status = 200, body = CertificateView), (status = 404, body = ErrorBody)),
    security(("mtls" = []), ("bearer" = [])))]
async fn certificate(
    State(svc): State<AppState>,
    caller: Caller,
    Path(serial): Path<String>,
) -> Result<Json<CertificateView>, ApiError> {
    let cert = visible_certificate(&svc, &caller, &serial).await?;
    Ok(Json(CertificateView::new(&svc, &cert)))
}

/// `POST /v1/certificates/{serial}/revoke`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    /// RFC 5280 reason name, e.g. `key_compromise` (default `unspecified`).
    #[serde(default)]
    reason: Option<String>,
}

/// Outcome of a revocation.
#[derive(Serialize, ToSchema)]
struct RevokeResponse {
    serial: String,
    /// False if it was already revoked.
    revoked_now: bool,
}

#[utoipa::path(post, path = "/v1/certificates/{serial}/revoke", params(("serial" = String, Path)), request_body = RevokeRequest,
    responses((status = 200, body = RevokeResponse), (status = 404, body = ErrorBody)),
    security(("mtls" = []), ("bearer" = [])))]
async fn revoke(
    State(svc): State<AppState>,
    caller: Caller,
    Path(serial): Path<String>,
    ApiJson(request): ApiJson<RevokeRequest>,
) -> Result<Json<RevokeResponse>, ApiError> {
    let reason = RevocationReason::parse(request.reason.as_deref().unwrap_or("unspecified"))
        .map_err(|e| ApiError::invalid_param(e.to_string()))?;
    let cert = visible_certificate(&svc, &caller, &serial).await?;
    let revoked_now = tasks::revoke(&svc, &cert, reason, &caller.actor()).await?;
    Ok(Json(RevokeResponse {
        serial: cert.serial,
        revoked_now,
    }))
}

// ----- operator: authority registry ---------------------------------------

/// An authority with its status.
#[derive(Serialize, ToSchema)]
pub struct AuthorityView {
    #[schema(value_type = Object)]
    record: AuthorityRecord,
    servers: Vec<String>,
    user_patterns: Vec<String>,
    status: String,
    contact: Option<String>,
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

#[derive(Deserialize)]
struct Page {
    after: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/authorities", responses((status = 200, body = Vec<AuthorityView>)), security(("bearer" = [])))]
async fn list_authorities(
    State(svc): State<AppState>,
    _op: Operator,
    Query(page): Query<Page>,
) -> Result<Json<Vec<AuthorityView>>, ApiError> {
    let list = svc
        .store
        .list_authorities(page.after.as_deref(), page.limit.unwrap_or(100).min(1000))
        .await?;
    Ok(Json(list.into_iter().map(AuthorityView::from).collect()))
}

#[utoipa::path(get, path = "/v1/authorities/{id}", params(("id" = String, Path)), responses((status = 200, body = AuthorityView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_authority(
    State(svc): State<AppState>,
    _op: Operator,
    Path(id): Path<String>,
) -> Result<Json<AuthorityView>, ApiError> {
    let a = svc
        .store
        .get_authority(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no authority {id}")))?;
    Ok(Json(a.into()))
}

#[utoipa::path(post, path = "/v1/authorities", request_body = AuthorityInput, responses((status = 200, body = AuthorityView), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn create_authority(
    State(svc): State<AppState>,
    Operator(op): Operator,
    ApiJson(input): ApiJson<AuthorityInput>,
) -> Result<Json<AuthorityView>, ApiError> {
    let now = now_ms();
    let authority = input.into_authority(AuthorityStatus::Active, now, now)?;
    let id = authority.record.id.clone();
    svc.store
        .insert_authority(
            authority.clone(),
            AuditEntry::new(
                format!("operator:{op}"),
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

#[utoipa::path(put, path = "/v1/authorities/{id}", params(("id" = String, Path)), request_body = AuthorityInput, responses((status = 200, body = AuthorityView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn update_authority(
    State(svc): State<AppState>,
    Operator(op): Operator,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<AuthorityInput>,
) -> Result<Json<AuthorityView>, ApiError> {
    if input.record.id != id {
        return Err(ApiError::invalid_param(
            "the record's id must match the URL",
        ));
    }
    let existing = svc
        .store
        .get_authority(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no authority {id}")))?;
    let authority = input.into_authority(existing.status, existing.created_at, now_ms())?;
    svc.store
        .update_authority(
            authority.clone(),
            AuditEntry::new(
                format!("operator:{op}"),
                "authority.updated",
                id,
                serde_json::to_value(&authority.record).unwrap_or_default(),
            ),
        )
        .await?;
    Ok(Json(authority.into()))
}

/// Outcome of suspending an authority.
#[derive(Serialize, ToSchema)]
struct SuspendResponse {
    id: String,
    /// Certificates revoked because of the suspension.
    revoked: Vec<String>,
}

#[utoipa::path(post, path = "/v1/authorities/{id}/suspend", params(("id" = String, Path)), responses((status = 200, body = SuspendResponse), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn suspend_authority(
    State(svc): State<AppState>,
    Operator(op): Operator,
    Path(id): Path<String>,
) -> Result<Json<SuspendResponse>, ApiError> {
    let revoked = suspend(&svc, &id, &format!("operator:{op}")).await?;
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

#[utoipa::path(post, path = "/v1/authorities/{id}/activate", params(("id" = String, Path)), responses((status = 200, body = AuthorityView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn activate_authority(
    State(svc): State<AppState>,
    Operator(op): Operator,
    Path(id): Path<String>,
) -> Result<Json<AuthorityView>, ApiError> {
    svc.store
        .get_authority(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no authority {id}")))?;
    svc.store
        .set_authority_status(
            &id,
            AuthorityStatus::Active,
            now_ms(),
            AuditEntry::new(
                format!("operator:{op}"),
                "authority.activated",
                id.clone(),
                serde_json::json!({}),
            ),
        )
        .await?;
    let a = svc
        .store
        .get_authority(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no authority {id}")))?;
    Ok(Json(a.into()))
}

/// Longest enrollment-client certificate the API issues: an agency's
/// credential should be rotated at least yearly-ish, as with TLS.
const MAX_ENROLLMENT_CLIENT_DAYS: u32 = 398;

/// Request for an agency's enrollment-client certificate. The agency makes
/// its key pair and sends only the public key: the private key never
/// leaves the agency.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentClientRequest {
    /// The agency's public key, PEM `PUBLIC KEY` (SubjectPublicKeyInfo):
    /// ECDSA P-256, P-384 or Ed25519.
    pub public_key_pem: String,
    /// Validity in days (1–398, default 365).
    #[serde(default)]
    pub lifetime_days: Option<u32>,
}

/// An issued enrollment-client certificate. It is recorded like every
/// other certificate, so `POST /v1/certificates/{serial}/revoke` takes the
/// agency's access away at once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnrollmentClientResponse {
    /// Serial, lower-case hex.
    pub serial: String,
    /// The certificate followed by its issuing CA, PEM: what the agency
    /// presents in the TLS handshake together with its key.
    pub chain_pem: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
}

#[utoipa::path(post, path = "/v1/authorities/{id}/enrollment-clients", params(("id" = String, Path)), request_body = EnrollmentClientRequest, responses((status = 200, body = EnrollmentClientResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn issue_enrollment_client(
    State(svc): State<AppState>,
    Operator(op): Operator,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<EnrollmentClientRequest>,
) -> Result<Json<EnrollmentClientResponse>, ApiError> {
    let authority = svc
        .store
        .get_authority(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no authority {id}")))?;
    if authority.status != AuthorityStatus::Active {
        return Err(ApiError::authority_suspended(format!(
            "authority {id} is suspended; activate it first"
        )));
    }
    let days = request.lifetime_days.unwrap_or(365);
    if !(1..=MAX_ENROLLMENT_CLIENT_DAYS).contains(&days) {
        return Err(ApiError::invalid_param(format!(
            "lifetime_days must be 1–{MAX_ENROLLMENT_CLIENT_DAYS}"
        )));
    }
    let spki = rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_slice(
        request.public_key_pem.as_bytes(),
    )
    .map_err(|e| ApiError::invalid_param(format!("public_key_pem: {e}")))?;
    let issued = svc.pki.issue_enrollment_client(
        &authority.record,
        spki.as_ref().to_vec(),
        std::time::Duration::from_secs(u64::from(days) * 86_400),
    )?;
    let serial = issued.serial_hex();
    let now = now_ms();
    svc.store
        .insert_certificate(
            NewCertificate {
                serial: serial.clone(),
                issuing_ca: svc.pki.issuing_id().to_owned(),
                kind: CertificateKind::EnrollmentClient,
                user_id: None,
                device_id: None,
                key: base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    spki.as_ref(),
                ),
                authority_id: id.clone(),
                not_before: issued.not_before.unix_timestamp() * 1000,
                not_after: issued.not_after.unix_timestamp() * 1000,
                der: issued.certificate().to_vec(),
                renewed_from: None,
                created_at: now,
            },
            None,
            AuditEntry::new(
                format!("operator:{op}"),
                "enrollment_client.issued",
                serial.clone(),
                serde_json::json!({ "authority_id": id, "lifetime_days": days }),
            ),
        )
        .await?;
    Ok(Json(EnrollmentClientResponse {
        serial,
        chain_pem: crate::pemfile::chain_pem(&issued.chain),
        not_after: issued
            .not_after
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    }))
}

#[utoipa::path(get, path = "/v1/audit/verify", responses((status = 200, description = "Audit chain report")), security(("bearer" = [])))]
async fn audit_verify(
    State(svc): State<AppState>,
    _op: Operator,
) -> Result<Json<serde_json::Value>, ApiError> {
    let report = svc.store.verify_audit_chain().await?;
    Ok(Json(serde_json::to_value(&report).unwrap_or_default()))
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "govtrust", description = "Enrollment and attestation service of the govtrust PKI for Matrix. Agency endpoints need an enrollment-client certificate (mTLS, EKU ARC.3); operator endpoints a bearer token. Errors are {\"errcode\", \"error\"}."),
    paths(healthz, readyz, metrics, openapi, roots, crl, challenge, enrollment, certificate, revoke,
          list_authorities, get_authority, create_authority, update_authority, suspend_authority, activate_authority, issue_enrollment_client, audit_verify),
    components(schemas(ErrorBody, ChallengeRequest, ChallengeResponse, EnrollRequest, EnrollResponse,
                       CertificateView, RevokeRequest, RevokeResponse, AuthorityInput, AuthorityView, SuspendResponse, EnrollmentClientRequest, EnrollmentClientResponse, Readiness)),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "mtls",
            SecurityScheme::MutualTls {
                description: Some("enrollment-client certificate (EKU ARC.3)".into()),
                extensions: None,
            },
        );
    }
}

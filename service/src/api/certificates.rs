//! Certificates: list (filters, keyset paging), read and revoke. Agencies
//! (mTLS) see and revoke only their own authority's certificates;
//! operators need the role the permission table gives
//! [`Permission::ReadCertificates`](crate::caller::Permission) or
//! `RevokeCertificates`.

use axum::extract::{Path, State};
use axum::Json;
use govtrust_pki::RevocationReason;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::json::{ApiJson, ApiQuery};
use super::{decode_cursor, encode_cursor, page_limit};
use crate::caller::{perm, AgencyOr, Caller};
use crate::clock::now_ms;
use crate::error::{ApiError, ErrorBody};
use crate::state::{AppState, Service};
use crate::storage::{Certificate, CertificateQuery, ListedStatus};
use crate::tasks;

/// Default page size of `GET /v1/certificates`.
const DEFAULT_PAGE: u32 = 100;
/// Largest page size of `GET /v1/certificates`.
const MAX_PAGE: u32 = 1000;

/// A stored certificate as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CertificateView {
    /// Serial, lower-case hex.
    pub serial: String,
    /// `device`, `identity` or `enrollment_client`.
    pub kind: String,
    /// Stored status: `valid`, `revoked` or `superseded` (stays `valid`
    /// after `not_after`; see `state`).
    pub status: String,
    /// `live`, `revoked`, `expired` or `superseded` at the time of the
    /// answer (the values `GET /v1/certificates?status=` filters on).
    #[serde(default)]
    pub state: Option<String>,
    /// The attested Matrix user (none for enrollment clients).
    pub user_id: Option<String>,
    /// The attested device (device certificates).
    pub device_id: Option<String>,
    /// The certified key.
    pub key: String,
    /// The authority in the subject.
    pub authority_id: String,
    /// The issuing CA's identifier.
    #[serde(default)]
    pub issuing_ca: Option<String>,
    /// Issuance time (ms).
    #[serde(default)]
    pub issued_at: Option<i64>,
    /// Start of validity (ms).
    pub not_before: i64,
    /// End of validity (ms).
    pub not_after: i64,
    /// The certificate and its issuing CA, PEM.
    pub chain_pem: String,
}

impl CertificateView {
    /// The view of `cert`, with the chain from the CAs `svc` holds.
    pub fn new(svc: &Service, cert: &Certificate) -> Self {
        CertificateView {
            serial: cert.serial.clone(),
            kind: cert.kind.as_str().to_owned(),
            status: cert.status.as_str().to_owned(),
            state: Some(ListedStatus::of(cert, now_ms()).as_str().to_owned()),
            user_id: cert.user_id.clone(),
            device_id: cert.device_id.clone(),
            key: cert.key.clone(),
            authority_id: cert.authority_id.clone(),
            issuing_ca: Some(cert.issuing_ca.clone()),
            issued_at: Some(cert.created_at),
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

/// A certificate in a listing: the view without the chain.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CertificateSummary {
    /// Serial, lower-case hex.
    pub serial: String,
    /// `device`, `identity` or `enrollment_client`.
    pub kind: String,
    /// `live`, `revoked`, `expired` or `superseded` now.
    pub state: String,
    /// Stored status: `valid`, `revoked` or `superseded`.
    pub status: String,
    /// The attested Matrix user (none for enrollment clients).
    pub user_id: Option<String>,
    /// The attested device.
    pub device_id: Option<String>,
    /// The authority in the subject.
    pub authority_id: String,
    /// The issuing CA's identifier.
    pub issuing_ca: String,
    /// Issuance time (ms); with the serial, the listing's order.
    pub issued_at: i64,
    /// Start of validity (ms).
    pub not_before: i64,
    /// End of validity (ms).
    pub not_after: i64,
}

impl CertificateSummary {
    fn new(cert: &Certificate, now: i64) -> Self {
        CertificateSummary {
            serial: cert.serial.clone(),
            kind: cert.kind.as_str().to_owned(),
            state: ListedStatus::of(cert, now).as_str().to_owned(),
            status: cert.status.as_str().to_owned(),
            user_id: cert.user_id.clone(),
            device_id: cert.device_id.clone(),
            authority_id: cert.authority_id.clone(),
            issuing_ca: cert.issuing_ca.clone(),
            issued_at: cert.created_at,
            not_before: cert.not_before,
            not_after: cert.not_after,
        }
    }
}

/// The query of `GET /v1/certificates`.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CertificateListQuery {
    /// Only this authority's certificates.
    pub authority: Option<String>,
    /// Only this Matrix user's certificates (`@local:server`).
    pub user: Option<String>,
    /// `live` (valid, unexpired), `revoked`, `expired` (not revoked, past
    /// `not_after`) or `superseded` (replaced, unexpired).
    pub status: Option<String>,
    /// Only certificates whose `not_after` is before this time (ms).
    pub expiring_before: Option<i64>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of `GET /v1/certificates`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CertificateList {
    /// Certificates in issuance order (issued_at, serial).
    pub items: Vec<CertificateSummary>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Parses a certificate cursor: `<issued_at>:<serial>`.
fn parse_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    let text = decode_cursor(cursor)?;
    let bad = || ApiError::invalid_param("cursor: not a cursor this service returned");
    let (at, serial) = text.split_once(':').ok_or_else(bad)?;
    let at = at.parse::<i64>().map_err(|_| bad())?;
    if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok((at, serial.to_owned()))
}

#[utoipa::path(get, path = "/v1/certificates", params(CertificateListQuery),
    description = "Lists certificates in issuance order with keyset paging. An agency sees only its own authority's certificates.",
    responses((status = 200, body = CertificateList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("mtls" = []), ("bearer" = [])))]
pub(super) async fn list_certificates(
    State(svc): State<AppState>,
    AgencyOr(caller, _): AgencyOr<perm::ReadCertificates>,
    ApiQuery(q): ApiQuery<CertificateListQuery>,
) -> Result<Json<CertificateList>, ApiError> {
    let limit = page_limit(q.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            ListedStatus::parse(s).ok_or_else(|| {
                ApiError::invalid_param(format!(
                    "status must be one of live, revoked, expired, superseded, not {s:?}"
                ))
            })
        })
        .transpose()?;
    if let Some(user) = &q.user {
        govtrust_verifier::UserId::parse(user)
            .map_err(|e| ApiError::invalid_param(format!("user: {e}")))?;
    }
    if let Some(authority) = &q.authority {
        if authority.is_empty() || authority.len() > 255 {
            return Err(ApiError::invalid_param(
                "authority must be 1 to 255 characters",
            ));
        }
    }
    let authority_id = match &caller {
        Caller::Agency(agency) => {
            if q.authority
                .as_ref()
                .is_some_and(|a| *a != agency.authority_id)
            {
                return Err(ApiError::forbidden(
                    "an agency lists only its own authority's certificates",
                ));
            }
            Some(agency.authority_id.clone())
        }
        Caller::Operator(_) => q.authority.clone(),
    };
    let now = now_ms();
    let query = CertificateQuery {
        authority_id,
        user_id: q.user.clone(),
        status,
        expiring_before: q.expiring_before,
        now,
        after: q.cursor.as_deref().map(parse_cursor).transpose()?,
        limit,
    };
    let page = svc.store.list_certificates(&query).await?;
    let next_cursor = match page.last() {
        Some(last) if page.len() == limit as usize => Some(encode_cursor(&format!(
            "{}:{}",
            last.created_at, last.serial
        ))),
        _ => None,
    };
    Ok(Json(CertificateList {
        items: page
            .iter()
            .map(|c| CertificateSummary::new(c, now))
            .collect(),
        next_cursor,
    }))
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
    responses((status = 200, body = CertificateView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("mtls" = []), ("bearer" = [])))]
pub(super) async fn certificate(
    State(svc): State<AppState>,
    AgencyOr(caller, _): AgencyOr<perm::ReadCertificates>,
    Path(serial): Path<String>,
) -> Result<Json<CertificateView>, ApiError> {
    let cert = visible_certificate(&svc, &caller, &serial).await?;
    Ok(Json(CertificateView::new(&svc, &cert)))
}

/// `POST /v1/certificates/{serial}/revoke`
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// RFC 5280 reason name, e.g. `key_compromise` (default `unspecified`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Outcome of a revocation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RevokeResponse {
    /// The certificate.
    pub serial: String,
    /// False if it was already revoked.
    pub revoked_now: bool,
}

#[utoipa::path(post, path = "/v1/certificates/{serial}/revoke", params(("serial" = String, Path)), request_body = RevokeRequest,
    responses((status = 200, body = RevokeResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("mtls" = []), ("bearer" = [])))]
pub(super) async fn revoke(
    State(svc): State<AppState>,
    AgencyOr(caller, _): AgencyOr<perm::RevokeCertificates>,
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

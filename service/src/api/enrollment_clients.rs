//! Enrollment-client certificates (operators): an agency's mTLS
//! credential for a public key the agency made. Revoking one is
//! `POST /v1/certificates/{serial}/revoke`.

use axum::extract::{Path, State};
use axum::Json;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::json::ApiJson;
use crate::caller::{perm, Require};
use crate::clock::now_ms;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::storage::{AuditEntry, AuthorityStatus, CertificateKind, NewCertificate};

/// Longest enrollment-client certificate the API issues: an agency's
/// credential should be rotated at least yearly-ish, as with TLS.
const MAX_ENROLLMENT_CLIENT_DAYS: u32 = 398;

/// Request for an agency's enrollment-client certificate. The agency makes
/// its key pair and sends only the public key: the private key never
/// leaves the agency.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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

#[utoipa::path(post, path = "/v1/authorities/{id}/enrollment-clients", params(("id" = String, Path)), request_body = EnrollmentClientRequest, responses((status = 200, body = EnrollmentClientResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn issue_enrollment_client(
    State(svc): State<AppState>,
    Require(op, _): Require<perm::ManageAuthorities>,
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
                op.actor(),
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

//! The OpenAPI document (`GET /v1/openapi.json`), generated with utoipa
//! from the handlers, plus the security schemes and, for each operator
//! endpoint, the roles that may call it (from [`Permission::roles`], the
//! same table the extractors enforce).

use axum::Json;
use utoipa::OpenApi;

use super::pseudonyms;
use super::{audit, authorities, certificates, enrollment, enrollment_clients, public, tokens};
use crate::caller::Permission;
use crate::error::ErrorBody;
use govtrust_api::authority::AuthorityInput;
use govtrust_api::enrollment::{
    ChallengeRequest, ChallengeResponse, CitizenChallengeRequest, CitizenEnrollRequest,
    EnrollRequest, EnrollResponse,
};

/// Every endpoint an operator token can call: method, path (as in the
/// OpenAPI document) and the permission its handler demands. `agency` marks
/// the endpoints an agency may also call with its client certificate (for
/// its own certificates). The tests hold the running service to this
/// table.
pub const OPERATOR_ENDPOINTS: &[(&str, &str, Permission, bool)] = &[
    (
        "get",
        "/v1/certificates",
        Permission::ReadCertificates,
        true,
    ),
    (
        "get",
        "/v1/certificates/{serial}",
        Permission::ReadCertificates,
        true,
    ),
    (
        "post",
        "/v1/certificates/{serial}/revoke",
        Permission::RevokeCertificates,
        true,
    ),
    ("get", "/v1/authorities", Permission::ReadAuthorities, false),
    (
        "post",
        "/v1/authorities",
        Permission::ManageAuthorities,
        false,
    ),
    (
        "get",
        "/v1/authorities/{id}",
        Permission::ReadAuthorities,
        false,
    ),
    (
        "put",
        "/v1/authorities/{id}",
        Permission::ManageAuthorities,
        false,
    ),
    (
        "post",
        "/v1/authorities/{id}/suspend",
        Permission::ManageAuthorities,
        false,
    ),
    (
        "post",
        "/v1/authorities/{id}/activate",
        Permission::ManageAuthorities,
        false,
    ),
    (
        "post",
        "/v1/authorities/{id}/enrollment-clients",
        Permission::ManageAuthorities,
        false,
    ),
    ("get", "/v1/tokens", Permission::ManageTokens, false),
    ("post", "/v1/tokens", Permission::ManageTokens, false),
    (
        "post",
        "/v1/tokens/{name}/rotate",
        Permission::ManageTokens,
        false,
    ),
    (
        "post",
        "/v1/tokens/{name}/revoke",
        Permission::ManageTokens,
        false,
    ),
    ("get", "/v1/audit/log", Permission::ReadAudit, false),
    ("get", "/v1/audit/verify", Permission::ReadAudit, false),
];

#[utoipa::path(get, path = "/v1/openapi.json", responses((status = 200, description = "This document")))]
pub(super) async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "govtrust", description = "Enrollment and attestation service of the govtrust PKI for Matrix. Agency endpoints need an enrollment-client certificate (mTLS, EKU ARC.3); operator endpoints a bearer token whose roles admit the endpoint: each operation lists them in `x-govtrust-roles` and as the role names of its `bearer` requirement (401 GT_UNAUTHORIZED without an active token, 403 GT_FORBIDDEN when the roles do not admit it). The citizen endpoints under /v1/pseudonyms are authenticated by the identity-provider assertion in their body and exist only when the operator enabled pseudonyms (otherwise 404 GT_NOT_FOUND; 503 when enabled but unavailable). Errors are {\"errcode\", \"error\"}."),
    paths(public::healthz, public::readyz, public::metrics, openapi, public::roots, public::crl,
          enrollment::challenge, enrollment::enrollment,
          certificates::list_certificates, certificates::certificate, certificates::revoke,
          authorities::list_authorities, authorities::get_authority, authorities::create_authority,
          authorities::update_authority, authorities::suspend_authority, authorities::activate_authority,
          enrollment_clients::issue_enrollment_client,
          tokens::create_token, tokens::list_tokens, tokens::rotate_token, tokens::revoke_token,
          audit::audit_log, audit::audit_verify,
          pseudonyms::create_pseudonym, pseudonyms::citizen_challenge, pseudonyms::citizen_enrollment),
    components(schemas(ErrorBody, ChallengeRequest, ChallengeResponse, EnrollRequest, EnrollResponse,
                       certificates::CertificateView, certificates::CertificateSummary, certificates::CertificateList,
                       certificates::RevokeRequest, certificates::RevokeResponse,
                       AuthorityInput, authorities::AuthorityView, authorities::SuspendResponse,
                       enrollment_clients::EnrollmentClientRequest, enrollment_clients::EnrollmentClientResponse,
                       tokens::CreateTokenRequest, tokens::TokenView, tokens::IssuedToken,
                       audit::AuditRecordView, audit::AuditLogPage, audit::AuditVerifyReport,
                       crate::state::Readiness,
                       pseudonyms::PseudonymRequest, pseudonyms::PseudonymResponse,
                       CitizenChallengeRequest, CitizenEnrollRequest)),
    modifiers(&SecuritySchemes, &Roles)
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "operator token; the requirement of each operation lists the roles that admit it",
                    ))
                    .build(),
            ),
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

/// Writes each operator endpoint's roles into its operation: the bearer
/// requirement's role names (OpenAPI 3.1 allows role names for non-OAuth
/// schemes), `x-govtrust-roles`, and a sentence in the description.
struct Roles;

impl utoipa::Modify for Roles {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::SecurityRequirement;
        for (method, path, permission, agency) in OPERATOR_ENDPOINTS {
            let Some(item) = openapi.paths.paths.get_mut(*path) else {
                continue;
            };
            let operation = match *method {
                "get" => item.get.as_mut(),
                "post" => item.post.as_mut(),
                "put" => item.put.as_mut(),
                "delete" => item.delete.as_mut(),
                _ => None,
            };
            let Some(operation) = operation else { continue };
            let roles: Vec<&str> = permission.roles().iter().map(|r| r.as_str()).collect();
            let mut security = Vec::new();
            if *agency {
                security.push(SecurityRequirement::new("mtls", Vec::<String>::new()));
            }
            security.push(SecurityRequirement::new("bearer", roles.clone()));
            operation.security = Some(security);
            let extensions = operation.extensions.get_or_insert_with(Default::default);
            extensions.insert("x-govtrust-roles".to_owned(), serde_json::json!(roles));
            let note = format!(
                "Operator roles: {} (permission: {}).{}",
                roles.join(", "),
                permission.describe(),
                if *agency {
                    " An agency may call it for its own authority's certificates."
                } else {
                    ""
                }
            );
            operation.description = Some(match operation.description.take() {
                Some(d) if !d.is_empty() => format!("{d}\n\n{note}"),
                _ => note,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operator endpoint of the table is in the document with its
    /// roles, and every operation with a bearer requirement is in the
    /// table.
    #[test]
    fn the_document_lists_the_roles_of_every_operator_endpoint() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("document");
        for (method, path, permission, _) in OPERATOR_ENDPOINTS {
            let op = &doc["paths"][*path][*method];
            let roles: Vec<&str> = permission.roles().iter().map(|r| r.as_str()).collect();
            assert_eq!(
                op["x-govtrust-roles"],
                serde_json::json!(roles),
                "{method} {path}"
            );
        }
        let paths = doc["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("path item") {
                let bearer = op["security"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
                if bearer {
                    assert!(
                        OPERATOR_ENDPOINTS
                            .iter()
                            .any(|(m, p, _, _)| m == method && p == path),
                        "{method} {path} takes a bearer token but is not in OPERATOR_ENDPOINTS"
                    );
                }
            }
        }
    }

    /// The citizen endpoints are documented, with no mTLS or bearer
    /// requirement (the assertion in the body authenticates).
    #[test]
    fn the_document_lists_the_citizen_endpoints() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("document");
        for path in [
            "/v1/pseudonyms",
            "/v1/pseudonyms/enrollment/challenge",
            "/v1/pseudonyms/enrollment",
        ] {
            let op = &doc["paths"][path]["post"];
            assert!(op.is_object(), "POST {path} is not documented");
            assert!(op.get("security").is_none(), "POST {path}: {op}");
        }
        for schema in [
            "PseudonymRequest",
            "CitizenChallengeRequest",
            "CitizenEnrollRequest",
        ] {
            assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
        }
    }
}

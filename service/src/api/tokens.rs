//! Operator tokens (admin only): create (the secret is shown once), list,
//! rotate (a new secret; the old one stops working at once) and revoke.
//! Only a token's SHA-256 is stored; every change is an audit entry
//! (`operator.token_created`, `operator.token_rotated`,
//! `operator.token_revoked`) that never contains the secret or its hash.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::json::ApiJson;
use crate::auth::{new_token, token_hash};
use crate::caller::{perm, Require};
use crate::clock::now_ms;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::storage::{AuditEntry, OperatorRole, OperatorToken, StoreError, TokenRevocation};

/// `POST /v1/tokens`
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// Unique name, 1–64 characters of `a-z 0-9 . _ -`, starting with a
    /// letter or digit. It names the operator in the audit log
    /// (`operator:<name>`) and is never reused, even after revocation.
    pub name: String,
    /// One or more of `admin`, `registrar`, `revoker`, `auditor`.
    pub roles: Vec<String>,
    /// The token is refused from this time on (ms); it must lie in the
    /// future. Absent: no expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// A token as listed (never its secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// The token's name.
    pub name: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// `active`, `expired` or `revoked` at the time of the answer.
    pub state: String,
    /// Creation time (ms).
    pub created_at: i64,
    /// Expiry (ms), if any.
    pub expires_at: Option<i64>,
    /// Revocation time (ms), if revoked.
    pub revoked_at: Option<i64>,
    /// Last rotation (ms), if ever rotated.
    pub rotated_at: Option<i64>,
}

impl TokenView {
    /// The view of a stored token at `now`.
    pub fn new(t: &OperatorToken, now: i64) -> Self {
        let state = if t.revoked_at.is_some() {
            "revoked"
        } else if t.is_active(now) {
            "active"
        } else {
            "expired"
        };
        TokenView {
            name: t.name.clone(),
            roles: t.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            state: state.to_owned(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            rotated_at: t.rotated_at,
        }
    }
}

/// A token with its secret: the answer of create and rotate, the only time
/// the secret is shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IssuedToken {
    /// The bearer secret (`Authorization: Bearer <secret>`). Store it now:
    /// the service keeps only its hash.
    pub secret: String,
    /// The token.
    pub token: TokenView,
}

/// Checks a token name: 1–64 of `a-z 0-9 . _ -`, starting alphanumeric.
pub fn validate_token_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_param(format!(
            "token name {name:?}: use 1 to 64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
        )))
    }
}

/// Parses role names: at least one, each known; duplicates collapse.
pub fn parse_roles(names: &[String]) -> Result<Vec<OperatorRole>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::invalid_param(
            "roles must name at least one of admin, registrar, revoker, auditor",
        ));
    }
    let mut roles = names
        .iter()
        .map(|n| {
            OperatorRole::parse(n).ok_or_else(|| {
                ApiError::invalid_param(format!(
                    "unknown role {n:?}; the roles are admin, registrar, revoker, auditor"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    roles.sort();
    roles.dedup();
    Ok(roles)
}

#[utoipa::path(post, path = "/v1/tokens", request_body = CreateTokenRequest,
    description = "Creates an operator token. The answer carries the secret, shown only this once.",
    responses((status = 200, body = IssuedToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn create_token(
    State(svc): State<AppState>,
    Require(op, _): Require<perm::ManageTokens>,
    ApiJson(request): ApiJson<CreateTokenRequest>,
) -> Result<Json<IssuedToken>, ApiError> {
    validate_token_name(&request.name)?;
    let roles = parse_roles(&request.roles)?;
    let now = now_ms();
    if let Some(expires_at) = request.expires_at {
        if expires_at <= now {
            return Err(ApiError::invalid_param(
                "expires_at must lie in the future (milliseconds since the epoch)",
            ));
        }
    }
    let secret = new_token()?;
    let mut token = OperatorToken::new(request.name.clone(), token_hash(&secret), roles, now);
    token.expires_at = request.expires_at;
    svc.store
        .insert_operator_token(
            token.clone(),
            AuditEntry::new(
                op.actor(),
                "operator.token_created",
                token.name.clone(),
                serde_json::json!({
                    "roles": OperatorRole::join(&token.roles),
                    "expires_at": token.expires_at,
                }),
            ),
        )
        .await
        .map_err(|e| match e {
            StoreError::Duplicate { .. } => ApiError::conflict(format!(
                "a token named {} exists (names are never reused)",
                request.name
            )),
            other => other.into(),
        })?;
    Ok(Json(IssuedToken {
        secret,
        token: TokenView::new(&token, now),
    }))
}

#[utoipa::path(get, path = "/v1/tokens",
    description = "Lists every operator token, revoked and expired ones included, by name. Secrets are never shown.",
    responses((status = 200, body = Vec<TokenView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn list_tokens(
    State(svc): State<AppState>,
    _op: Require<perm::ManageTokens>,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    let now = now_ms();
    let tokens = svc.store.list_operator_tokens().await?;
    Ok(Json(
        tokens.iter().map(|t| TokenView::new(t, now)).collect(),
    ))
}

#[utoipa::path(post, path = "/v1/tokens/{name}/rotate", params(("name" = String, Path)),
    description = "Gives the token a new secret; the old one is refused from now on. Roles and expiry stay.",
    responses((status = 200, body = IssuedToken), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn rotate_token(
    State(svc): State<AppState>,
    Require(op, _): Require<perm::ManageTokens>,
    Path(name): Path<String>,
) -> Result<Json<IssuedToken>, ApiError> {
    let secret = new_token()?;
    let now = now_ms();
    let missing = || ApiError::not_found(format!("no unrevoked token {name}"));
    let existing = svc
        .store
        .get_operator_token(&name)
        .await?
        .filter(|t| t.revoked_at.is_none())
        .ok_or_else(missing)?;
    svc.store
        .rotate_operator_token(
            &name,
            &token_hash(&secret),
            now,
            AuditEntry::new(
                op.actor(),
                "operator.token_rotated",
                name.clone(),
                serde_json::json!({ "roles": OperatorRole::join(&existing.roles) }),
            ),
        )
        .await
        .map_err(|e| match e {
            StoreError::NotFound { .. } => missing(),
            other => other.into(),
        })?;
    let token = svc
        .store
        .get_operator_token(&name)
        .await?
        .ok_or_else(missing)?;
    Ok(Json(IssuedToken {
        secret,
        token: TokenView::new(&token, now),
    }))
}

#[utoipa::path(post, path = "/v1/tokens/{name}/revoke", params(("name" = String, Path)),
    description = "Revokes the token: it is refused from now on and cannot be rotated. Revoking the last active admin token is refused (GT_CONFLICT).",
    responses((status = 200, body = TokenView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn revoke_token(
    State(svc): State<AppState>,
    Require(op, _): Require<perm::ManageTokens>,
    Path(name): Path<String>,
) -> Result<Json<TokenView>, ApiError> {
    let now = now_ms();
    let missing = || ApiError::not_found(format!("no token {name}"));
    let all = svc.store.list_operator_tokens().await?;
    let target = all.iter().find(|t| t.name == name).ok_or_else(missing)?;
    let is_admin = |t: &OperatorToken| t.roles.contains(&OperatorRole::Admin) && t.is_active(now);
    if is_admin(target) && !all.iter().any(|t| t.name != name && is_admin(t)) {
        return Err(ApiError::conflict(format!(
            "{name} is the last active admin token; create another admin token first"
        )));
    }
    let outcome = svc
        .store
        .revoke_operator_token(
            &name,
            now,
            AuditEntry::new(
                op.actor(),
                "operator.token_revoked",
                name.clone(),
                serde_json::json!({ "roles": OperatorRole::join(&target.roles) }),
            ),
        )
        .await
        .map_err(|e| match e {
            StoreError::NotFound { .. } => missing(),
            other => other.into(),
        })?;
    if outcome == TokenRevocation::AlreadyRevoked {
        tracing::debug!(token = %name, "token was already revoked");
    }
    let token = svc
        .store
        .get_operator_token(&name)
        .await?
        .ok_or_else(missing)?;
    Ok(Json(TokenView::new(&token, now)))
}

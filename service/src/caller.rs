//! Who is calling: the request extractors that authenticate agencies (mTLS
//! with an enrollment-client certificate) and operators (bearer token).
//!
//! An agency is authenticated in two steps. [`AgencyIdentity`] checks the
//! TLS client chain (once per connection, see
//! [`crate::server::ConnectionAuth`]) and the rate limit, with no database
//! access. [`Agency::resolve`] then reads its standing — the authority
//! record, the client certificate's status, and for an enrollment the
//! challenge it answers — in one query, and refuses a revoked client
//! certificate. The [`Agency`] extractor does both for the endpoints that
//! need no challenge.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use govtrust_verifier::UnixTime;

use crate::auth::{authenticate_agency_chain, token_hash, AgencyClient};
use crate::error::ApiError;
use crate::server::{ConnectionAuth, PeerCertificates};
use crate::state::{AppState, Service};
use crate::storage::{Authority, Certificate, CertificateStatus, Challenge};

/// An agency authenticated by its enrollment-client certificate (mTLS) and
/// within its rate limit; its standing not yet looked up.
pub struct AgencyIdentity(pub AgencyClient);

impl FromRequestParts<AppState> for AgencyIdentity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, svc: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<PeerCertificates>()
            .cloned()
            .unwrap_or_default();
        // The chain is fixed for the connection: verify its signatures on
        // the first request, and on later ones only that the time is still
        // within every certificate's validity (what a new validation would
        // re-decide). Revocation and the rate limit stay per request.
        let now = UnixTime::now();
        let memo = parts.extensions.get::<ConnectionAuth>().cloned();
        let client = match memo.as_ref().and_then(|m| m.0.get()?.at(now).cloned()) {
            Some(client) => client,
            None => {
                let chain = authenticate_agency_chain(&peer.0, svc.pki.anchors(), now)?;
                let client = chain.client().clone();
                if let Some(memo) = memo {
                    let _ = memo.0.set(chain);
                }
                client
            }
        };
        svc.limiter.check(&client.authority_id).map_err(|wait| {
            ApiError::rate_limited(format!(
                "rate limit exceeded; retry in {} ms",
                wait.as_millis()
            ))
        })?;
        Ok(AgencyIdentity(client))
    }
}

/// An authenticated agency whose client certificate is not revoked, with
/// its authority record as it stands now (active or not; `None` if not
/// registered).
pub struct Agency {
    /// Who the client certificate says is calling.
    pub client: AgencyClient,
    /// The caller's authority record, if registered.
    pub authority: Option<Authority>,
}

impl Agency {
    /// Reads the standing of an authenticated agency in one query and
    /// refuses a revoked client certificate. An enrollment passes the id of
    /// the challenge it answers, which comes back in the same round trip
    /// (`None` if there is no such challenge).
    pub async fn resolve(
        svc: &Service,
        client: AgencyClient,
        challenge_id: Option<&str>,
    ) -> Result<(Agency, Option<Challenge>), ApiError> {
        let standing = svc
            .store
            .agency_standing(
                &client.authority_id,
                &client.certificate_serial,
                challenge_id,
            )
            .await?;
        if standing.client_status == Some(CertificateStatus::Revoked) {
            return Err(ApiError::client_cert_rejected(
                "client certificate is revoked (revoked)",
            ));
        }
        let agency = Agency {
            client,
            authority: standing.authority,
        };
        Ok((agency, standing.challenge))
    }
}

impl FromRequestParts<AppState> for Agency {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, svc: &AppState) -> Result<Self, ApiError> {
        let AgencyIdentity(client) = AgencyIdentity::from_request_parts(parts, svc).await?;
        Ok(Agency::resolve(svc, client, None).await?.0)
    }
}

/// An operator, by bearer token.
pub struct Operator(pub String);

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, svc: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::unauthorized("operator endpoints need Authorization: Bearer <token>")
            })?;
        let operator = svc
            .store
            .find_operator_by_token_hash(&token_hash(token.trim()))
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown operator token"))?;
        Ok(Operator(operator.name))
    }
}

/// Either party: an agency (limited to its own authority) or an operator.
pub enum Caller {
    /// An agency client.
    Agency(AgencyClient),
    /// An operator.
    Operator(String),
}

impl Caller {
    /// How the audit log names this caller.
    pub fn actor(&self) -> String {
        match self {
            Caller::Agency(a) => format!("agency:{}", a.authority_id),
            Caller::Operator(o) => format!("operator:{o}"),
        }
    }

    /// Whether the caller may see (or act on) `cert`: an agency only its
    /// own authority's certificates.
    pub fn may_see(&self, cert: &Certificate) -> bool {
        match self {
            Caller::Agency(a) => a.authority_id == cert.authority_id,
            Caller::Operator(_) => true,
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, svc: &AppState) -> Result<Self, ApiError> {
        if parts.headers.contains_key(AUTHORIZATION) {
            return Operator::from_request_parts(parts, svc)
                .await
                .map(|o| Caller::Operator(o.0));
        }
        Agency::from_request_parts(parts, svc)
            .await
            .map(|a| Caller::Agency(a.client))
    }
}

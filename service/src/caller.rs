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
//!
//! An operator is authenticated by an active bearer token
//! ([`OperatorIdentity::authenticate`]) and authorised by the roles of
//! that token: each operator endpoint extracts [`Require<P>`] (or
//! [`AgencyOr<P>`]) with the permission it needs, and
//! [`Permission::roles`] is the table of which roles hold which
//! permission.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use govtrust_verifier::UnixTime;

use crate::auth::{authenticate_agency_chain, token_hash, AgencyClient};
use crate::error::ApiError;
use crate::server::{ConnectionAuth, PeerCertificates};
use crate::state::{AppState, Service};
use crate::storage::{Authority, Certificate, CertificateStatus, Challenge, OperatorRole};

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
        // The access log names the caller (crate::server::with_access_log).
        crate::server::record_caller(&format!("agency:{}", client.authority_id));
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

/// What an operator endpoint needs. [`Permission::roles`] is the
/// permission table: the one place that says which roles may do what. An
/// endpoint states its permission in its signature by extracting
/// [`Require<P>`] (or [`AgencyOr<P>`]) with one of the marker types in
/// [`perm`]; the OpenAPI document lists the same roles
/// (`x-govtrust-roles`, and as the bearer requirement's role names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// List and read certificates.
    ReadCertificates,
    /// Revoke certificates.
    RevokeCertificates,
    /// List and read authorities.
    ReadAuthorities,
    /// Create, update, suspend and activate authorities; issue enrollment
    /// clients.
    ManageAuthorities,
    /// Read and verify the audit log.
    ReadAudit,
    /// Create, list, rotate and revoke operator tokens.
    ManageTokens,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 6] = [
        Self::ReadCertificates,
        Self::RevokeCertificates,
        Self::ReadAuthorities,
        Self::ManageAuthorities,
        Self::ReadAudit,
        Self::ManageTokens,
    ];

    /// The roles that hold this permission (the permission table).
    pub fn roles(self) -> &'static [OperatorRole] {
        use OperatorRole::{Admin, Auditor, Registrar, Revoker};
        match self {
            // A revoker has to find what it revokes.
            Self::ReadCertificates => &[Admin, Revoker, Auditor],
            Self::RevokeCertificates => &[Admin, Revoker],
            Self::ReadAuthorities => &[Admin, Registrar, Auditor],
            Self::ManageAuthorities => &[Admin, Registrar],
            Self::ReadAudit => &[Admin, Auditor],
            Self::ManageTokens => &[Admin],
        }
    }

    /// What it allows, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ReadCertificates => "read certificates",
            Self::RevokeCertificates => "revoke certificates",
            Self::ReadAuthorities => "read the authority registry",
            Self::ManageAuthorities => "change the authority registry",
            Self::ReadAudit => "read the audit log",
            Self::ManageTokens => "manage operator tokens",
        }
    }

    /// Whether a token with `roles` holds this permission.
    pub fn admits(self, roles: &[OperatorRole]) -> bool {
        roles.iter().any(|r| self.roles().contains(r))
    }
}

/// The marker types an endpoint names in [`Require<P>`] /
/// [`AgencyOr<P>`], one per [`Permission`].
pub mod perm {
    use super::Permission;

    /// A permission as a type, so that an extractor can demand it.
    pub trait Needs: Send + Sync + 'static {
        /// The permission demanded.
        const PERMISSION: Permission;
    }

    macro_rules! markers {
        ($($name:ident),* $(,)?) => {$(
            #[doc = concat!("Demands [`Permission::", stringify!($name), "`].")]
            #[derive(Debug)]
            pub struct $name;
            impl Needs for $name {
                const PERMISSION: Permission = Permission::$name;
            }
        )*};
    }

    markers!(
        ReadCertificates,
        RevokeCertificates,
        ReadAuthorities,
        ManageAuthorities,
        ReadAudit,
        ManageTokens,
    );
}

/// An operator authenticated by an active bearer token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorIdentity {
    /// The token's name (audit actor `operator:<name>`).
    pub name: String,
    /// Its roles.
    pub roles: Vec<OperatorRole>,
}

impl OperatorIdentity {
    /// How the audit log names this operator.
    pub fn actor(&self) -> String {
        format!("operator:{}", self.name)
    }

    /// Authenticates the bearer token of a request: it must exist, not be
    /// revoked and not be expired (`GT_UNAUTHORIZED` otherwise).
    pub async fn authenticate(parts: &Parts, svc: &Service) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("operator endpoints need Authorization: Bearer <token>")
            })?;
        let stored = svc
            .store
            .find_operator_by_token_hash(&token_hash(token))
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown operator token"))?;
        if stored.revoked_at.is_some() {
            return Err(ApiError::unauthorized(format!(
                "operator token {} is revoked",
                stored.name
            )));
        }
        if !stored.is_active(crate::clock::now_ms()) {
            return Err(ApiError::unauthorized(format!(
                "operator token {} has expired",
                stored.name
            )));
        }
        crate::server::record_caller(&format!("operator:{}", stored.name));
        Ok(OperatorIdentity {
            name: stored.name,
            roles: stored.roles,
        })
    }

    /// `GT_FORBIDDEN` unless this operator holds `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if permission.admits(&self.roles) {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "operator token {} ({}) may not {}: that needs the role {}",
            self.name,
            OperatorRole::join(&self.roles),
            permission.describe(),
            permission
                .roles()
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(" or ")
        )))
    }
}

/// An operator holding permission `P`: `GT_UNAUTHORIZED` (401) without an
/// active token, `GT_FORBIDDEN` (403) when its roles lack `P`.
pub struct Require<P>(pub OperatorIdentity, pub PhantomData<P>);

impl<P> Require<P> {
    /// The operator.
    pub fn operator(&self) -> &OperatorIdentity {
        &self.0
    }
}

impl<P: perm::Needs> FromRequestParts<AppState> for Require<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, svc: &AppState) -> Result<Self, ApiError> {
        let operator = OperatorIdentity::authenticate(parts, svc).await?;
        operator.require(P::PERMISSION)?;
        Ok(Require(operator, PhantomData))
    }
}

/// Either party: an agency (limited to its own authority) or an operator.
pub enum Caller {
    /// An agency client.
    Agency(AgencyClient),
    /// An operator.
    Operator(OperatorIdentity),
}

impl Caller {
    /// How the audit log names this caller.
    pub fn actor(&self) -> String {
        match self {
            Caller::Agency(a) => format!("agency:{}", a.authority_id),
            Caller::Operator(o) => o.actor(),
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

/// An agency (mTLS, its own certificates only) or an operator holding
/// permission `P`. The presence of an `Authorization` header selects the
/// operator, whatever client certificate is also presented.
pub struct AgencyOr<P>(pub Caller, pub PhantomData<P>);

impl<P: perm::Needs> FromRequestParts<AppState> for AgencyOr<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, svc: &AppState) -> Result<Self, ApiError> {
        if parts.headers.contains_key(AUTHORIZATION) {
            let Require(operator, _) = Require::<P>::from_request_parts(parts, svc).await?;
            return Ok(AgencyOr(Caller::Operator(operator), PhantomData));
        }
        let agency = Agency::from_request_parts(parts, svc).await?;
        Ok(AgencyOr(Caller::Agency(agency.client), PhantomData))
    }
}

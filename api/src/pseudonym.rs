//! `POST /v1/pseudonyms`: a citizen, identified by a fresh identity-provider
//! assertion, gets the pseudonymous Matrix account for one authority. The
//! wire types live here so the service and citizen clients share them.

use govtrust_verifier::profile::AssuranceLevel;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of `POST /v1/pseudonyms`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PseudonymRequest {
    /// The identity provider's signed assertion about the citizen.
    pub assertion: String,
    /// The authority the citizen wants to talk to.
    pub authority_id: String,
}

/// The answer of `POST /v1/pseudonyms`: the pseudonymous account for
/// that authority.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PseudonymResponse {
    /// `@p-…:server`.
    pub user_id: String,
    /// The level of assurance the identity provider asserted.
    #[schema(value_type = String)]
    pub assurance_level: AssuranceLevel,
    /// Whether the account was created by this request.
    pub created: bool,
}

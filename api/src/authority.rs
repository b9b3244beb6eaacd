//! The authority registry's records: who may enroll devices, and the
//! official record that goes into their certificates.
//!
//! [`AuthorityInput`] is what operators send (API body, import row);
//! [`AuthorityInput::into_authority`] is the validation every way into the
//! registry shares, so an import cannot store what the API would refuse.

use govtrust_verifier::AuthorityRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Error;

/// Whether an authority may currently enroll devices.
///
/// Suspending (instead of deleting) keeps the certificates, audit entries and
/// challenges that reference the authority intact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorityStatus {
    /// The authority may enroll and its certificates are renewed.
    Active,
    /// Enrollment and renewal are refused until an operator reactivates it.
    Suspended,
}

impl AuthorityStatus {
    /// The value stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }

    /// Parses the stored (or sent) name.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            other => Err(Error::UnknownValue {
                what: "authority status",
                value: other.to_owned(),
            }),
        }
    }
}

/// A government authority that may enroll devices, with the official record
/// that goes into its certificates' subject DN.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authority {
    /// The official record (its `id` is the primary key).
    pub record: AuthorityRecord,
    /// Matrix server names whose users this authority may enroll.
    pub servers: Vec<String>,
    /// Glob-like patterns on the localpart of users it may enroll
    /// (e.g. `office.*`); matching is the service's job, storage keeps them.
    pub user_patterns: Vec<String>,
    /// Active or suspended.
    pub status: AuthorityStatus,
    /// Free-form operational contact (mail address, ticket queue, ...).
    pub contact: Option<String>,
    /// When the authority was first stored (unix ms).
    pub created_at: i64,
    /// When it was last changed (unix ms).
    pub updated_at: i64,
}

/// An authority as the registry API takes and returns it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorityInput {
    /// The official record (subject DN of its certificates).
    #[schema(value_type = Object)]
    pub record: AuthorityRecord,
    /// Matrix server names of its users.
    pub servers: Vec<String>,
    /// Localpart patterns (`*` wildcard) of users it may enroll.
    pub user_patterns: Vec<String>,
    /// Operational contact.
    #[serde(default)]
    pub contact: Option<String>,
}

impl AuthorityInput {
    /// Validates and converts to the registry's record: the one check every
    /// way into the registry (API, import) goes through.
    pub fn into_authority(
        self,
        status: AuthorityStatus,
        created_at: i64,
        updated_at: i64,
    ) -> Result<Authority, Error> {
        self.record
            .validate()
            .map_err(|e| Error::InvalidParam(e.to_string()))?;
        if self.servers.is_empty() || self.user_patterns.is_empty() {
            return Err(Error::InvalidParam(
                "servers and user_patterns must not be empty".into(),
            ));
        }
        for server in &self.servers {
            govtrust_verifier::validate_server_name(server)
                .map_err(|why| Error::InvalidParam(format!("server {server:?}: {why}")))?;
        }
        for pattern in &self.user_patterns {
            crate::policy::validate_pattern(pattern).map_err(Error::InvalidParam)?;
        }
        if self
            .contact
            .as_ref()
            .is_some_and(|c| c.len() > 512 || c.chars().any(char::is_control))
        {
            return Err(Error::InvalidParam(
                "contact must be at most 512 printable characters".into(),
            ));
        }
        Ok(Authority {
            record: self.record,
            servers: self.servers,
            user_patterns: self.user_patterns,
            status,
            contact: self.contact,
            created_at,
            updated_at,
        })
    }
}

//! `[pseudonyms]`: pseudonymous citizens (docs/pseudonyms.md) — off by
//! default; when on, where the pseudonym key lives, which identity provider
//! vouches for citizens and how their accounts are made.

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Pseudonymous citizens (docs/pseudonyms.md): the operator turns them on,
/// chooses where the pseudonym key lives, which identity provider vouches
/// for citizens, and how accounts are created on the homeserver.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PseudonymsConfig {
    /// Serve `POST /v1/pseudonyms`. Default `false`.
    pub enabled: bool,
    /// Where the PRF key lives: `file` (default) or `pkcs11`.
    pub key_backend: PseudonymKeyBackend,
    /// `file`: the key file (default `<ca dir>/pseudonym.key`, generated at
    /// first start with the feature on: 32 random bytes, mode 0600).
    pub key_file: Option<PathBuf>,
    /// `pkcs11`: module path, token label, key label (`CKK_GENERIC_SECRET`)
    /// and the environment variable holding the user PIN.
    pub pkcs11_module: Option<PathBuf>,
    /// `pkcs11`: token label.
    pub pkcs11_token: Option<String>,
    /// `pkcs11`: `CKA_LABEL` of the HMAC key (generated if absent).
    pub pkcs11_key_label: Option<String>,
    /// `pkcs11`: name of the environment variable holding the PIN.
    pub pkcs11_pin_env: Option<String>,
    /// The Matrix server the pseudonymous accounts live on.
    pub server_name: Option<String>,
    /// Synapse's base URL for the admin API (`PUT /_synapse/admin/v2/users/…`).
    pub homeserver_admin_url: Option<url::Url>,
    /// File holding a Synapse admin access token (kept out of the config).
    pub admin_token_file: Option<PathBuf>,
    /// The identity provider adapter. Only `static-test` exists (tests and
    /// demos; see docs/operations.md for the BundID integration point).
    pub identity_provider: Option<String>,
    /// `static-test`: the base64 Ed25519 key whose assertions it trusts.
    pub test_idp_public_key: Option<String>,
}

/// Where the pseudonym PRF key lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PseudonymKeyBackend {
    /// A key file in the CA directory.
    #[default]
    File,
    /// A `CKK_GENERIC_SECRET` key in a PKCS#11 token.
    Pkcs11,
}

impl PseudonymsConfig {
    /// Checks that an enabled feature has everything it needs.
    pub fn validate(&self) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let Some(server) = &self.server_name else {
            bail!("pseudonyms.server_name is required when pseudonyms are enabled");
        };
        if let Err(why) = govtrust_verifier::validate_server_name(server) {
            bail!("pseudonyms.server_name {server:?}: {why}");
        }
        if self.homeserver_admin_url.is_none() || self.admin_token_file.is_none() {
            bail!("pseudonyms.homeserver_admin_url and pseudonyms.admin_token_file are required when pseudonyms are enabled");
        }
        if self.key_backend == PseudonymKeyBackend::Pkcs11
            && (self.pkcs11_module.is_none()
                || self.pkcs11_token.is_none()
                || self.pkcs11_key_label.is_none()
                || self.pkcs11_pin_env.is_none())
        {
            bail!("pseudonyms.key_backend = \"pkcs11\" needs pkcs11_module, pkcs11_token, pkcs11_key_label and pkcs11_pin_env");
        }
        match self.identity_provider.as_deref() {
            Some("static-test") if self.test_idp_public_key.is_some() => Ok(()),
            Some("static-test") => {
                bail!("pseudonyms.identity_provider = \"static-test\" needs test_idp_public_key")
            }
            Some(other) => bail!(
                "pseudonyms.identity_provider {other:?} is unknown (only \"static-test\" exists; see docs/operations.md)"
            ),
            None => bail!("pseudonyms.identity_provider is required when pseudonyms are enabled"),
        }
    }
}

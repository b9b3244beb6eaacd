//! Pseudonymous citizens (issue #11 part 2, docs/pseudonyms.md): one
//! identity-provider account, a different unlinkable Matrix account per
//! agency.
//!
//! * [`mod@derive`]: the pseudonym, HMAC-SHA-256 over (citizen's stable ID,
//!   authority ID) with a key in a CA key backend ([`open_key`]).
//! * [`idp`]: the [`IdentityProvider`] seam (BundID in production; only the
//!   test adapter [`StaticTestIdp`] exists).
//! * [`homeserver`]: idempotent account creation through Synapse's admin API.
//! * the HTTP side lives with the other routes in `crate::api::pseudonyms`:
//!   `POST /v1/pseudonyms`, and the citizen's enrollment for a citizen
//!   attestation (`POST /v1/pseudonyms/enrollment/challenge`,
//!   `POST /v1/pseudonyms/enrollment`, kind `citizen`, run by
//!   [`crate::enroll`]), mounted only when the operator enabled
//!   `[pseudonyms]`.
//! * [`client`]: the citizen's side of those endpoints, for a matrix-sdk
//!   device (tests, demos, a citizen app).
//!
//! The citizen's stable ID is personal data: it exists in memory while a
//! request is handled and is never logged, stored, audited or certified.

pub mod client;
pub mod derive;
pub mod homeserver;
pub mod idp;

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use govtrust_pki::signer::{FileMacKey, MacKey, Pkcs11Config, Pkcs11MacKey};
use govtrust_verifier::Ed25519Key;

pub use derive::{derive, CitizenId, Pseudonym, PseudonymError};
pub use idp::{IdentifiedCitizen, IdentityProvider, IdpError, StaticTestIdp, TestAssertion};

use crate::config::{Config, PseudonymKeyBackend};

/// Everything `POST /v1/pseudonyms` needs, built from `[pseudonyms]`.
pub struct Pseudonyms {
    /// The PRF key.
    pub key: Box<dyn MacKey>,
    /// Who vouches for citizens.
    pub idp: Box<dyn IdentityProvider>,
    /// The server the accounts live on.
    pub server_name: String,
    /// The homeserver's admin API.
    pub homeserver: homeserver::SynapseAdmin,
}

impl Pseudonyms {
    /// Builds the feature from the configuration; `None` when disabled.
    /// Opens (or, the first time, generates) the PRF key.
    pub fn from_config(config: &Config) -> Result<Option<Self>> {
        let p = &config.pseudonyms;
        if !p.enabled {
            return Ok(None);
        }
        p.validate()?;
        let key = open_key(config)?;
        let idp: Box<dyn IdentityProvider> = match p.identity_provider.as_deref() {
            Some("static-test") => {
                let key = p
                    .test_idp_public_key
                    .as_deref()
                    .ok_or_else(|| anyhow!("pseudonyms.test_idp_public_key missing"))?;
                let key = Ed25519Key::from_base64(key)
                    .map_err(|e| anyhow!("pseudonyms.test_idp_public_key: {e}"))?;
                tracing::warn!(
                    "pseudonyms: the static-test identity provider is configured; it is for tests only"
                );
                Box::new(StaticTestIdp::new(key, config.public_base()))
            }
            other => return Err(anyhow!("unknown identity provider {other:?}")),
        };
        let admin_url = p
            .homeserver_admin_url
            .clone()
            .ok_or_else(|| anyhow!("pseudonyms.homeserver_admin_url missing"))?;
        let token_file = p
            .admin_token_file
            .as_ref()
            .ok_or_else(|| anyhow!("pseudonyms.admin_token_file missing"))?;
        let token = std::fs::read_to_string(token_file)
            .with_context(|| format!("reading {}", token_file.display()))?;
        Ok(Some(Pseudonyms {
            key,
            idp,
            server_name: p.server_name.clone().unwrap_or_default(),
            homeserver: homeserver::SynapseAdmin::new(admin_url, token.trim().to_owned())?,
        }))
    }
}

/// The default key file: `<ca dir>/pseudonym.key`.
pub fn default_key_file(config: &Config) -> PathBuf {
    config.ca_dir().join("pseudonym.key")
}

/// Opens the configured PRF key, generating it on first use (file: 32
/// random bytes, mode 0600; PKCS#11: a non-extractable generic secret).
pub fn open_key(config: &Config) -> Result<Box<dyn MacKey>> {
    let p = &config.pseudonyms;
    match p.key_backend {
        PseudonymKeyBackend::File => {
            let path = p
                .key_file
                .clone()
                .unwrap_or_else(|| default_key_file(config));
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let (key, generated) = FileMacKey::load_or_generate(&path)
                .with_context(|| format!("pseudonym key {}", path.display()))?;
            if generated {
                tracing::info!(path = %path.display(), "pseudonyms: generated a new PRF key");
            }
            Ok(Box::new(key))
        }
        PseudonymKeyBackend::Pkcs11 => {
            let (Some(module), Some(token), Some(label), Some(pin_env)) = (
                &p.pkcs11_module,
                &p.pkcs11_token,
                &p.pkcs11_key_label,
                &p.pkcs11_pin_env,
            ) else {
                return Err(anyhow!("pseudonyms: incomplete PKCS#11 settings"));
            };
            let pin = std::env::var(pin_env)
                .with_context(|| format!("pseudonyms: PIN variable {pin_env} is not set"))?;
            let pkcs11 = Pkcs11Config::new(module, token, label, pin);
            let key = match Pkcs11MacKey::open(&pkcs11) {
                Ok(key) => key,
                Err(open) => Pkcs11MacKey::generate(&pkcs11).map_err(|generate| {
                    anyhow!("pseudonym key: cannot open ({open}) nor generate ({generate})")
                })?,
            };
            Ok(Box::new(key))
        }
    }
}

#[cfg(test)]
mod tests;

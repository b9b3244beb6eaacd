//! Service configuration: TOML with environment overrides and embedded
//! defaults, so `govtrust serve` runs with no file at all.
//!
//! This module holds the whole [`Config`], loading and the checks that span
//! sections; each `[section]` of the file has a module of its own, and the
//! `GOVTRUST_*` overrides live in `env`.

mod ca;
mod database;
mod env;
mod limits;
mod matrix;
mod pseudonyms;
mod renewal;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

pub use ca::CaConfig;
pub use database::{redact_database_url, DatabaseConfig, SSL_MODES};
pub use env::ENV_OVERRIDES;
pub use limits::LimitsConfig;
pub use matrix::MatrixConfig;
pub use pseudonyms::{PseudonymKeyBackend, PseudonymsConfig};
pub use renewal::RenewalConfig;
pub use tls::TlsConfig;

/// The whole configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTPS listen address.
    pub listen: SocketAddr,
    /// Separate plain-HTTP listen address for `/metrics` (keep it on
    /// loopback or a private network); when set, `/metrics` is no longer
    /// served on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// On SIGTERM/SIGINT: how long in-flight requests may take to finish
    /// before the process exits anyway, in seconds.
    pub shutdown_grace_secs: u64,
    /// Where the embedded defaults keep their files (SQLite database, the
    /// development CA, TLS key, Matrix store).
    pub data_dir: PathBuf,
    /// Public base URL of the service: CRL distribution points are
    /// `<public_url>/v1/crl/<ca>.crl`.
    pub public_url: Option<String>,
    /// Storage.
    pub database: DatabaseConfig,
    /// Certificate authority.
    pub ca: CaConfig,
    /// TLS server certificate.
    pub tls: TlsConfig,
    /// Matrix homeserver and bot account; publishing is off without it.
    pub matrix: Option<MatrixConfig>,
    /// Automatic renewal.
    pub renewal: RenewalConfig,
    /// Limits on agency requests.
    pub limits: LimitsConfig,
    /// Pseudonymous citizens (`POST /v1/pseudonyms`); off by default.
    pub pseudonyms: PseudonymsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7443)),
            metrics_listen: None,
            shutdown_grace_secs: 30,
            data_dir: PathBuf::from("data"),
            public_url: None,
            database: DatabaseConfig::default(),
            ca: CaConfig::default(),
            tls: TlsConfig::default(),
            matrix: None,
            renewal: RenewalConfig::default(),
            limits: LimitsConfig::default(),
            pseudonyms: PseudonymsConfig::default(),
        }
    }
}

impl Config {
    /// Reads a TOML file (or the defaults), then applies the environment.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let mut config = match path {
            Some(p) => Config::from_toml(
                &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("{}", p.display()))?,
            None => Config::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML; unknown keys are errors, so typos do not pass silently.
    pub fn from_toml(text: &str) -> Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<()> {
        self.pseudonyms.validate()?;
        self.ca.validate()?;
        if self.renewal.window_days >= self.ca.attestation_days {
            bail!("renewal.window_days must be shorter than ca.attestation_days");
        }
        self.limits.validate()?;
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            bail!("tls.cert and tls.key go together");
        }
        self.validate_database()?;
        if self.shutdown_grace_secs > 3600 {
            bail!("shutdown_grace_secs must be at most 3600");
        }
        if let Some(m) = self.metrics_listen {
            if m == self.listen || (m.port() == self.listen.port() && m.port() != 0) {
                bail!(
                    "metrics_listen must use another port than listen ({})",
                    self.listen
                );
            }
        }
        if self.tls.validity_secs < 10 || self.tls.validity_secs > 397 * 86_400 {
            bail!("tls.validity_secs must be 10 to 34300800 (397 days)");
        }
        if self.tls.renew_before_secs == 0 || self.tls.renew_before_secs >= self.tls.validity_secs {
            bail!("tls.renew_before_secs must be at least 1 and shorter than tls.validity_secs");
        }
        if let Some(m) = &self.matrix {
            m.validate()?;
        }
        if let Some(url) = &self.public_url {
            url::Url::parse(url).with_context(|| format!("public_url {url:?}"))?;
        }
        Ok(())
    }

    /// The CA directory in force.
    pub fn ca_dir(&self) -> PathBuf {
        self.ca
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("ca"))
    }

    /// The public base URL in force.
    pub fn public_base(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("https://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_env_overrides_apply() {
        let mut c = Config::default();
        c.validate().unwrap();
        c.apply_env(|k| match k {
            "GOVTRUST_LISTEN" => Some("127.0.0.1:9000".into()),
            "GOVTRUST_DATABASE_URL" => Some("postgres://x@127.0.0.1/test".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert!(c.database_url().starts_with("postgres://"));
    }
    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(Config::from_toml("listn = \"1.2.3.4:5\"").is_err());
        let c = Config::from_toml("[ca]\nattestation_days = 0").unwrap();
        assert!(c.validate().is_err());
        let mut c = Config::default();
        assert!(c
            .apply_env(|k| (k == "GOVTRUST_MATRIX_PASSWORD").then(|| "x".into()))
            .is_err());
    }
    #[test]
    fn bad_pool_tls_and_listener_values_are_refused_with_the_key_named() {
        let refused = |toml: &str, key: &str| {
            let err = Config::from_toml(toml)
                .and_then(|c| c.validate())
                .expect_err(toml);
            assert!(format!("{err:#}").contains(key), "{toml}: {err:#}");
        };
        refused(
            "[database]\nmax_connections = 1",
            "database.max_connections",
        );
        refused(
            "[database]\nmax_connections = 4\nmin_connections = 5",
            "database.min_connections",
        );
        refused(
            "[database]\nacquire_timeout_secs = 0",
            "database.acquire_timeout_secs",
        );
        refused(
            "[database]\nurl = \"postgres://x@h/d\"\nssl_mode = \"verify\"",
            "database.ssl_mode",
        );
        // TLS options are PostgreSQL's only.
        refused("[database]\nssl_mode = \"require\"", "PostgreSQL only");
        refused(
            "[database]\nurl = \"postgres://x@h/d\"\nssl_root_cert = \"/nonexistent/ca.pem\"",
            "database.ssl_root_cert",
        );
        refused("[tls]\nvalidity_secs = 5", "tls.validity_secs");
        refused(
            "[tls]\nvalidity_secs = 100\nrenew_before_secs = 100",
            "tls.renew_before_secs",
        );
        refused(
            "listen = \"127.0.0.1:7443\"\nmetrics_listen = \"127.0.0.1:7443\"",
            "metrics_listen",
        );
        refused("shutdown_grace_secs = 100000", "shutdown_grace_secs");
    }
}

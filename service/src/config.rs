//! Service configuration: TOML with environment overrides and embedded
//! defaults, so `govtrust serve` runs with no file at all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTPS listen address.
    pub listen: SocketAddr,
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
}

/// Storage settings.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://…`; default: SQLite in the data dir.
    pub url: Option<String>,
}

/// CA settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaConfig {
    /// CA directory (see `govtrust ca init`); default `<data_dir>/ca`,
    /// created with a development hierarchy on first start.
    pub dir: Option<PathBuf>,
    /// Issuing CA used for attestations.
    pub issuing_ca: String,
    /// Matrix server names the development issuing CA may certify when it
    /// is created on first start.
    pub dev_servers: Vec<String>,
    /// Attestation lifetime in days.
    pub attestation_days: u32,
    /// CRL lifetime (nextUpdate) in hours.
    pub crl_hours: u32,
}

impl Default for CaConfig {
    fn default() -> Self {
        CaConfig {
            dir: None,
            issuing_ca: "issuing-1".into(),
            dev_servers: vec!["localhost".into()],
            attestation_days: 30,
            crl_hours: 24,
        }
    }
}

/// TLS server settings.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM chain; default: issued by the issuing CA on first start.
    pub cert: Option<PathBuf>,
    /// PEM PKCS#8 key for `cert`.
    pub key: Option<PathBuf>,
}

/// The service's Matrix bot.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixConfig {
    /// Client-server API base URL.
    pub homeserver_url: url::Url,
    /// The bot's full user ID.
    pub user_id: String,
    /// The bot's password (prefer `GOVTRUST_MATRIX_PASSWORD`).
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    /// Alias localpart of the directory room.
    #[serde(default = "default_alias")]
    pub directory_alias: String,
}

fn default_alias() -> String {
    "govtrust-directory".into()
}

/// Renewal settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RenewalConfig {
    /// Renew certificates of active devices this many days before expiry.
    pub window_days: u32,
    /// How often the renewal task looks, in seconds.
    pub interval_secs: u64,
}

impl Default for RenewalConfig {
    fn default() -> Self {
        RenewalConfig {
            window_days: 7,
            interval_secs: 3600,
        }
    }
}

/// Limits.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Sustained requests per second one agency may make.
    pub agency_requests_per_second: u32,
    /// Burst above that rate.
    pub agency_burst: u32,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Lifetime of an enrollment challenge in seconds.
    pub challenge_ttl_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            agency_requests_per_second: 50,
            agency_burst: 200,
            max_body_bytes: 64 * 1024,
            challenge_ttl_secs: 300,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7443)),
            data_dir: PathBuf::from("data"),
            public_url: None,
            database: DatabaseConfig::default(),
            ca: CaConfig::default(),
            tls: TlsConfig::default(),
            matrix: None,
            renewal: RenewalConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

/// Environment variables that override the file, and what they set.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("GOVTRUST_LISTEN", "listen"),
    ("GOVTRUST_DATA_DIR", "data_dir"),
    ("GOVTRUST_PUBLIC_URL", "public_url"),
    ("GOVTRUST_DATABASE_URL", "database.url"),
    ("GOVTRUST_MATRIX_HOMESERVER_URL", "matrix.homeserver_url"),
    ("GOVTRUST_MATRIX_USER_ID", "matrix.user_id"),
    ("GOVTRUST_MATRIX_PASSWORD", "matrix.password"),
];

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

    /// Applies the `GOVTRUST_*` overrides from `get`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        if let Some(v) = get("GOVTRUST_LISTEN") {
            self.listen = v
                .parse()
                .with_context(|| format!("GOVTRUST_LISTEN={v:?}"))?;
        }
        if let Some(v) = get("GOVTRUST_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("GOVTRUST_PUBLIC_URL") {
            self.public_url = Some(v);
        }
        if let Some(v) = get("GOVTRUST_DATABASE_URL") {
            self.database.url = Some(v);
        }
        let hs = get("GOVTRUST_MATRIX_HOMESERVER_URL");
        let user = get("GOVTRUST_MATRIX_USER_ID");
        if let (Some(hs), Some(user)) = (&hs, &user) {
            self.matrix = Some(MatrixConfig {
                homeserver_url: hs
                    .parse()
                    .with_context(|| format!("GOVTRUST_MATRIX_HOMESERVER_URL={hs:?}"))?,
                user_id: user.clone(),
                password: None,
                directory_alias: self
                    .matrix
                    .as_ref()
                    .map_or_else(default_alias, |m| m.directory_alias.clone()),
            });
        } else if hs.is_some() || user.is_some() {
            bail!("set both GOVTRUST_MATRIX_HOMESERVER_URL and GOVTRUST_MATRIX_USER_ID");
        }
        if let Some(v) = get("GOVTRUST_MATRIX_PASSWORD") {
            match &mut self.matrix {
                Some(m) => m.password = Some(v),
                None => bail!("GOVTRUST_MATRIX_PASSWORD is set but no homeserver is configured"),
            }
        }
        Ok(())
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<()> {
        if self.ca.attestation_days == 0 || self.ca.attestation_days > 397 {
            bail!("ca.attestation_days must be 1 to 397");
        }
        if self.ca.crl_hours == 0 {
            bail!("ca.crl_hours must be at least 1");
        }
        if self.renewal.window_days >= self.ca.attestation_days {
            bail!("renewal.window_days must be shorter than ca.attestation_days");
        }
        if self.limits.agency_requests_per_second == 0 {
            bail!("limits.agency_requests_per_second must be at least 1");
        }
        if self.limits.max_body_bytes < 1024 {
            bail!("limits.max_body_bytes must be at least 1024");
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            bail!("tls.cert and tls.key go together");
        }
        if let Some(url) = &self.database.url {
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
            {
                bail!("database.url must be sqlite:… or postgres://…");
            }
        }
        if let Some(m) = &self.matrix {
            govtrust_verifier::UserId::parse(&m.user_id)
                .with_context(|| format!("matrix.user_id {:?}", m.user_id))?;
            if m.password.is_none() {
                bail!(
                    "matrix.password (or GOVTRUST_MATRIX_PASSWORD) is required with a homeserver"
                );
            }
        }
        if let Some(url) = &self.public_url {
            url::Url::parse(url).with_context(|| format!("public_url {url:?}"))?;
        }
        Ok(())
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        self.database.url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("govtrust.db").display()
            )
        })
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
}

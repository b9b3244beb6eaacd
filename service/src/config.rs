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

/// Storage settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://…`; default: SQLite in the data dir.
    pub url: Option<String>,
    /// Most pooled connections (per replica; mind PostgreSQL's
    /// `max_connections` across all replicas).
    pub max_connections: u32,
    /// Connections kept open even when idle.
    pub min_connections: u32,
    /// How long a query waits for a free pooled connection, in seconds.
    pub acquire_timeout_secs: u64,
    /// Idle connections above `min_connections` are closed after this many
    /// seconds; 0 keeps them.
    pub idle_timeout_secs: u64,
    /// PostgreSQL TLS mode: `disable`, `prefer`, `require`, `verify-ca` or
    /// `verify-full` (libpq's names); unset: whatever the URL says
    /// (`sslmode=`), else `prefer`.
    pub ssl_mode: Option<String>,
    /// PostgreSQL: PEM file of the CA(s) that sign the server's certificate
    /// (for `verify-ca`/`verify-full`; default: the Mozilla roots built in).
    pub ssl_root_cert: Option<PathBuf>,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            max_connections: 10,
            min_connections: 0,
            acquire_timeout_secs: 30,
            idle_timeout_secs: 600,
            ssl_mode: None,
            ssl_root_cert: None,
        }
    }
}

/// PostgreSQL `sslmode` values (libpq's names, as sqlx takes them).
pub const SSL_MODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

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
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM chain; default: issued by the issuing CA on first start (and
    /// re-issued while running). Configured files are re-read when they
    /// change.
    pub cert: Option<PathBuf>,
    /// PEM PKCS#8 key for `cert`.
    pub key: Option<PathBuf>,
    /// Lifetime of the self-issued TLS certificate, in seconds (default 90
    /// days).
    pub validity_secs: u64,
    /// Re-issue the self-issued certificate when less than this is left,
    /// in seconds (default 30 days).
    pub renew_before_secs: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            validity_secs: 90 * 86_400,
            renew_before_secs: 30 * 86_400,
        }
    }
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

/// Environment variables that override the file, and what they set.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("GOVTRUST_LISTEN", "listen"),
    ("GOVTRUST_METRICS_LISTEN", "metrics_listen"),
    ("GOVTRUST_SHUTDOWN_GRACE_SECS", "shutdown_grace_secs"),
    ("GOVTRUST_DATA_DIR", "data_dir"),
    ("GOVTRUST_PUBLIC_URL", "public_url"),
    ("GOVTRUST_DATABASE_URL", "database.url"),
    (
        "GOVTRUST_DATABASE_MAX_CONNECTIONS",
        "database.max_connections",
    ),
    (
        "GOVTRUST_DATABASE_MIN_CONNECTIONS",
        "database.min_connections",
    ),
    (
        "GOVTRUST_DATABASE_ACQUIRE_TIMEOUT_SECS",
        "database.acquire_timeout_secs",
    ),
    (
        "GOVTRUST_DATABASE_IDLE_TIMEOUT_SECS",
        "database.idle_timeout_secs",
    ),
    ("GOVTRUST_DATABASE_SSL_MODE", "database.ssl_mode"),
    ("GOVTRUST_DATABASE_SSL_ROOT_CERT", "database.ssl_root_cert"),
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
        if let Some(v) = get("GOVTRUST_METRICS_LISTEN") {
            self.metrics_listen = match v.as_str() {
                "" | "off" => None,
                _ => Some(
                    v.parse()
                        .with_context(|| format!("GOVTRUST_METRICS_LISTEN={v:?}"))?,
                ),
            };
        }
        number(
            &get,
            "GOVTRUST_SHUTDOWN_GRACE_SECS",
            &mut self.shutdown_grace_secs,
        )?;
        number(
            &get,
            "GOVTRUST_DATABASE_MAX_CONNECTIONS",
            &mut self.database.max_connections,
        )?;
        number(
            &get,
            "GOVTRUST_DATABASE_MIN_CONNECTIONS",
            &mut self.database.min_connections,
        )?;
        number(
            &get,
            "GOVTRUST_DATABASE_ACQUIRE_TIMEOUT_SECS",
            &mut self.database.acquire_timeout_secs,
        )?;
        number(
            &get,
            "GOVTRUST_DATABASE_IDLE_TIMEOUT_SECS",
            &mut self.database.idle_timeout_secs,
        )?;
        if let Some(v) = get("GOVTRUST_DATABASE_SSL_MODE") {
            self.database.ssl_mode = Some(v);
        }
        if let Some(v) = get("GOVTRUST_DATABASE_SSL_ROOT_CERT") {
            self.database.ssl_root_cert = Some(v.into());
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
        self.pseudonyms.validate()?;
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

    fn validate_database(&self) -> Result<()> {
        let db = &self.database;
        if db.max_connections < 2 || db.max_connections > 1000 {
            bail!("database.max_connections must be 2 to 1000");
        }
        if db.min_connections > db.max_connections {
            bail!(
                "database.min_connections ({}) must not exceed database.max_connections ({})",
                db.min_connections,
                db.max_connections
            );
        }
        if db.acquire_timeout_secs == 0 || db.acquire_timeout_secs > 3600 {
            bail!("database.acquire_timeout_secs must be 1 to 3600");
        }
        let postgres = self.database_url().starts_with("postgres");
        if let Some(mode) = &db.ssl_mode {
            if !SSL_MODES.contains(&mode.as_str()) {
                bail!(
                    "database.ssl_mode {mode:?} is not one of {}",
                    SSL_MODES.join(", ")
                );
            }
            if !postgres {
                bail!("database.ssl_mode is for PostgreSQL only");
            }
        }
        if let Some(root) = &db.ssl_root_cert {
            if !postgres {
                bail!("database.ssl_root_cert is for PostgreSQL only");
            }
            let text = root.to_str().with_context(|| {
                format!("database.ssl_root_cert {} is not UTF-8", root.display())
            })?;
            if text.contains(['&', '?', '#']) {
                bail!("database.ssl_root_cert must not contain &, ? or #");
            }
            if !root.is_file() {
                bail!(
                    "database.ssl_root_cert {} is not a readable file",
                    root.display()
                );
            }
            if matches!(db.ssl_mode.as_deref(), Some("disable")) {
                bail!("database.ssl_root_cert makes no sense with ssl_mode = \"disable\"");
            }
        }
        Ok(())
    }

    /// The database URL in force, with `ssl_mode` and `ssl_root_cert`
    /// applied as the `sslmode`/`sslrootcert` parameters (which replace
    /// any the URL carries).
    pub fn database_url(&self) -> String {
        let Some(url) = self.database.url.clone() else {
            return format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("govtrust.db").display()
            );
        };
        let mut params = Vec::new();
        if let Some(mode) = &self.database.ssl_mode {
            params.push(("sslmode", mode.clone()));
        }
        if let Some(root) = &self.database.ssl_root_cert {
            params.push(("sslrootcert", root.display().to_string()));
        }
        if params.is_empty() || !url.starts_with("postgres") {
            return url;
        }
        match url::Url::parse(&url) {
            Ok(mut parsed) => {
                let kept: Vec<(String, String)> = parsed
                    .query_pairs()
                    .filter(|(k, _)| !params.iter().any(|(p, _)| p == k))
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                {
                    let mut query = parsed.query_pairs_mut();
                    query.clear();
                    query.extend_pairs(kept);
                    query.extend_pairs(params);
                }
                parsed.to_string()
            }
            Err(_) => url,
        }
    }

    /// Pool settings in force.
    pub fn store_options(&self) -> crate::storage::StoreOptions {
        let db = &self.database;
        crate::storage::StoreOptions {
            max_connections: db.max_connections,
            min_connections: db.min_connections,
            acquire_timeout: std::time::Duration::from_secs(db.acquire_timeout_secs),
            idle_timeout: (db.idle_timeout_secs > 0)
                .then(|| std::time::Duration::from_secs(db.idle_timeout_secs)),
            ..Default::default()
        }
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

/// Parses the environment variable `name`, if set, into `slot`.
fn number<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    slot: &mut T,
) -> Result<()>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    if let Some(v) = get(name) {
        *slot = v
            .trim()
            .parse()
            .with_context(|| format!("{name}={v:?} is not a number"))?;
    }
    Ok(())
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
    fn pool_and_tls_options_parse_validate_and_reach_the_store() {
        let c = Config::from_toml(
            "[database]\nurl = \"postgres://gt@db.example/gt\"\nmax_connections = 40\n\
             min_connections = 4\nacquire_timeout_secs = 5\nidle_timeout_secs = 0\n\
             ssl_mode = \"verify-full\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        let o = c.store_options();
        assert_eq!(o.max_connections, 40);
        assert_eq!(o.min_connections, 4);
        assert_eq!(o.acquire_timeout, std::time::Duration::from_secs(5));
        assert_eq!(o.idle_timeout, None);
        assert_eq!(
            c.database_url(),
            "postgres://gt@db.example/gt?sslmode=verify-full"
        );

        // The configured mode replaces the URL's; other parameters stay.
        let mut c = Config::default();
        c.database.url = Some("postgres://gt@db/gt?sslmode=disable&application_name=x".into());
        c.database.ssl_mode = Some("require".into());
        let root = tempfile::NamedTempFile::new().unwrap();
        c.database.ssl_root_cert = Some(root.path().to_owned());
        c.validate().unwrap();
        let url = url::Url::parse(&c.database_url()).unwrap();
        let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert!(q.contains(&("application_name".into(), "x".into())));
        assert!(q.contains(&("sslmode".into(), "require".into())));
        assert!(!q.contains(&("sslmode".into(), "disable".into())));
        assert!(q.contains(&("sslrootcert".into(), root.path().display().to_string())));
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

    #[test]
    fn robustness_env_overrides_apply_and_reject_garbage() {
        let mut c = Config::default();
        c.apply_env(|k| match k {
            "GOVTRUST_METRICS_LISTEN" => Some("127.0.0.1:9464".into()),
            "GOVTRUST_SHUTDOWN_GRACE_SECS" => Some("5".into()),
            "GOVTRUST_DATABASE_URL" => Some("postgres://x@h/d".into()),
            "GOVTRUST_DATABASE_MAX_CONNECTIONS" => Some("20".into()),
            "GOVTRUST_DATABASE_MIN_CONNECTIONS" => Some("2".into()),
            "GOVTRUST_DATABASE_ACQUIRE_TIMEOUT_SECS" => Some("3".into()),
            "GOVTRUST_DATABASE_IDLE_TIMEOUT_SECS" => Some("60".into()),
            "GOVTRUST_DATABASE_SSL_MODE" => Some("verify-ca".into()),
            _ => None,
        })
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(c.shutdown_grace_secs, 5);
        assert_eq!(c.database.max_connections, 20);
        assert_eq!(c.database.min_connections, 2);
        assert_eq!(c.database.acquire_timeout_secs, 3);
        assert_eq!(c.database.idle_timeout_secs, 60);
        assert!(c.database_url().ends_with("?sslmode=verify-ca"));
        let err = Config::default()
            .apply_env(|k| (k == "GOVTRUST_DATABASE_MAX_CONNECTIONS").then(|| "many".into()))
            .unwrap_err();
        assert!(format!("{err:#}").contains("GOVTRUST_DATABASE_MAX_CONNECTIONS"));
        assert!(Config::default()
            .apply_env(|k| (k == "GOVTRUST_METRICS_LISTEN").then(|| "localhost".into()))
            .is_err());
    }
}

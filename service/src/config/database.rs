//! `[database]`: the storage URL, the connection pool and PostgreSQL's TLS
//! settings, and how they become the URL and pool options the store opens
//! with.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::Config;

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

/// A database URL with its password, if any, masked (for printing).
pub fn redact_database_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

impl Config {
    /// Checks the `[database]` section (URL scheme, pool, TLS settings).
    pub(super) fn validate_database(&self) -> Result<()> {
        if let Some(url) = &self.database.url {
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
            {
                bail!("database.url must be sqlite:… or postgres://…");
            }
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

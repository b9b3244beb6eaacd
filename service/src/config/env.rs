//! The `GOVTRUST_*` environment variables that override the file: which
//! exist, and how each is parsed into the configuration.

use anyhow::{bail, Context, Result};

use super::matrix::default_alias;
use super::{Config, MatrixConfig};

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

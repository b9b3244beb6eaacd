//! `[tls]`: the service's HTTPS certificate — configured files, or one the
//! issuing CA issues and renews itself.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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

//! `[renewal]`: when the service renews active devices' certificates.

use serde::{Deserialize, Serialize};

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

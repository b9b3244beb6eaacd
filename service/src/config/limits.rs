//! `[limits]`: what one agency may ask of the service — request rate, body
//! size, challenge lifetime.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

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

impl LimitsConfig {
    /// Checks the rate and body size.
    pub(super) fn validate(&self) -> Result<()> {
        if self.agency_requests_per_second == 0 {
            bail!("limits.agency_requests_per_second must be at least 1");
        }
        if self.max_body_bytes < 1024 {
            bail!("limits.max_body_bytes must be at least 1024");
        }
        Ok(())
    }
}

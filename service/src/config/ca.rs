//! `[ca]`: the CA directory, the issuing CA attestations are signed with,
//! and attestation and CRL lifetimes.

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

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

impl CaConfig {
    /// Checks the lifetimes.
    pub(super) fn validate(&self) -> Result<()> {
        if self.attestation_days == 0 || self.attestation_days > 397 {
            bail!("ca.attestation_days must be 1 to 397");
        }
        if self.crl_hours == 0 {
            bail!("ca.crl_hours must be at least 1");
        }
        Ok(())
    }
}

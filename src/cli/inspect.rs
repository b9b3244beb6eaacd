//! `govtrust inspect`: explain a certificate, CRL or event against the profile.

use std::path::PathBuf;

use clap::Args;

/// `govtrust inspect`
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A certificate or chain (PEM/DER), a CRL (PEM/DER) or an attestation event (JSON).
    pub file: PathBuf,
}

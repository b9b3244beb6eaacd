//! `govtrust demo`: the narrated tour, live or offline.

use std::path::PathBuf;

use clap::Args;

/// `govtrust demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Tour the PKI alone (CA, issue, verify, revoke with the CLI's own
    /// code paths), without a homeserver or the service.
    #[arg(long)]
    pub offline: bool,
    /// Keep the demo's files in this directory instead of a temporary one
    /// (offline: the hierarchy, certificates and CRLs; otherwise the
    /// service's data directory, the Synapse directory and the stores).
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// A Python interpreter with Synapse installed. Default: the virtualenv
    /// the demo sets up from PyPI (`$GOVTRUST_SYNAPSE_VENV`, else
    /// target/synapse-venv of the source tree, else
    /// ~/.cache/govtrust/synapse-venv).
    #[arg(long, value_name = "PYTHON", conflicts_with = "offline")]
    pub synapse_python: Option<PathBuf>,
}

//! `govtrust serve` and `govtrust config`: where the service's configuration
//! comes from, shared by every command that opens the service's files.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// Where the service's configuration comes from.
#[derive(Debug, Args, Clone)]
pub struct ConfigArgs {
    /// TOML configuration file (default: embedded defaults). Environment
    /// variables GOVTRUST_LISTEN, GOVTRUST_DATA_DIR, GOVTRUST_PUBLIC_URL,
    /// GOVTRUST_DATABASE_URL, GOVTRUST_MATRIX_HOMESERVER_URL,
    /// GOVTRUST_MATRIX_USER_ID and GOVTRUST_MATRIX_PASSWORD override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides the file and GOVTRUST_DATA_DIR).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// `govtrust serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Listen address (overrides the file and GOVTRUST_LISTEN).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Log as JSON lines instead of human text.
    #[arg(long)]
    pub log_json: bool,
}

/// `govtrust config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate a configuration file; explain what is wrong.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
}

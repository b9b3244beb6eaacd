//! `govtrust audit …`: read the audit log and check its hash chain, over the
//! API or on the database directly.

use clap::{Args, Subcommand};

use super::operator::{PageArgs, ServerArgs};
use super::service::ConfigArgs;

/// `govtrust audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Read the audit log in chain order: seq, time, actor, action,
    /// subject. --since takes RFC 3339, milliseconds, or now-7d / now-12h.
    ///
    /// Examples:
    ///
    ///   govtrust audit log --since now-1d
    ///   govtrust audit log --all --json > audit.json
    #[command(verbatim_doc_comment)]
    Log(AuditLogArgs),
    /// Recompute the hash chain; name the first broken entry. Exit status
    /// 1 if it is broken.
    ///
    /// With --server it asks the service; with --config/--data-dir, or
    /// without a server, it reads the database directly.
    Verify(AuditVerifyArgs),
}

/// `govtrust audit log`
#[derive(Debug, Args)]
pub struct AuditLogArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Only entries at or after this time.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    #[command(flatten)]
    pub page: PageArgs,
}

/// `govtrust audit verify`
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
}

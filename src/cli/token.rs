//! `govtrust token …`: operator tokens and their roles over the API.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::operator::ServerArgs;

/// `govtrust token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token. Its secret is shown once: written to --out (mode
    /// 0600) or printed.
    ///
    /// Roles: admin, registrar, revoker, auditor (repeat --role for
    /// several).
    ///
    /// Examples:
    ///
    ///   govtrust token create registry-team --role registrar --out registry-team.token
    ///   govtrust token create siem --role auditor --expires-in-days 90
    #[command(verbatim_doc_comment)]
    Create(TokenCreateArgs),
    /// List tokens: name, roles, state (active, expired, revoked), times.
    List(TokenListArgs),
    /// Give a token a new secret; the old one stops working at once.
    ///
    /// Example: govtrust token rotate siem --out siem.token
    Rotate(TokenSecretArgs),
    /// Revoke a token for good (its name is not reused).
    ///
    /// Example: govtrust token revoke siem
    Revoke(TokenNameArgs),
}

/// `govtrust token create`
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Name: 1–64 of a-z 0-9 . _ -; it names the operator in the audit log.
    pub name: String,
    /// A role (repeat for several).
    #[arg(long = "role", required = true, value_name = "ROLE")]
    pub roles: Vec<String>,
    /// Expire after this many days (default: never).
    #[arg(long)]
    pub expires_in_days: Option<u32>,
    /// Write the secret to this file (mode 0600) instead of printing it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `govtrust token list`
#[derive(Debug, Args)]
pub struct TokenListArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `govtrust token rotate`
#[derive(Debug, Args)]
pub struct TokenSecretArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The token's name.
    pub name: String,
    /// Write the new secret to this file (mode 0600) instead of printing it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `govtrust token revoke`
#[derive(Debug, Args)]
pub struct TokenNameArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The token's name.
    pub name: String,
}

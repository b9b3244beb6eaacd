//! `govtrust authority …`: the authority registry, over the API or (list,
//! import) on the database directly.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::operator::ServerArgs;
use super::service::ConfigArgs;

/// `govtrust authority …`
#[derive(Debug, Subcommand)]
pub enum AuthorityCommand {
    /// Register an authority from a JSON file.
    ///
    /// The file is an AuthorityInput: {"record": {"id", "name", "unit",
    /// "street", "postal_code", "locality", "state", "country"},
    /// "servers": [...], "user_patterns": [...], "contact": "..."}.
    ///
    /// Example:
    ///
    ///   govtrust authority create neukoelln.json
    #[command(verbatim_doc_comment)]
    Create(AuthorityFileArgs),
    /// List authorities: a table of ID, status, name, servers, patterns.
    ///
    /// With --server (or GOVTRUST_SERVER) it asks the service; with
    /// --config/--data-dir, or without a server, it reads the service's
    /// database directly (run it where the service's files are).
    ///
    /// Examples:
    ///
    ///   govtrust authority list --server https://127.0.0.1:7443 --token-file t --ca-file root.pem
    ///   govtrust authority list --data-dir /var/lib/govtrust
    #[command(verbatim_doc_comment)]
    List(AuthorityListArgs),
    /// Show one authority.
    ///
    /// Example: govtrust authority show DE-BE-11000000-BA-NK
    Show(AuthorityIdArgs),
    /// Replace an authority's record, servers, patterns and contact from a
    /// JSON file (as for create; its record.id must be ID). The status is
    /// kept.
    ///
    /// Example: govtrust authority update DE-BE-11000000-BA-NK neukoelln.json
    Update(AuthorityUpdateArgs),
    /// Suspend an authority: enrollment stops and every live certificate
    /// of it is revoked (privilege_withdrawn). Prints the revoked serials.
    ///
    /// Example: govtrust authority suspend DE-BE-11000000-BA-NK
    Suspend(AuthorityIdArgs),
    /// Activate a suspended authority again (revoked certificates stay
    /// revoked).
    Activate(AuthorityIdArgs),
    /// Import authorities from JSON (an array of {record, servers,
    /// user_patterns, contact}) or CSV (header: id,name,unit,street,
    /// postal_code,locality,state,country,servers,user_patterns,contact;
    /// servers and patterns separated by ';'). Each row is validated and
    /// stored on its own: a bad row is reported and never half-imported,
    /// good rows go in; an existing ID is updated.
    ///
    /// With --server it goes through the API (create, or update when the
    /// ID exists); otherwise it writes the database directly.
    ///
    /// Example: govtrust authority import offices.csv --server https://127.0.0.1:7443
    Import(ImportArgs),
}

/// `govtrust authority create FILE`
#[derive(Debug, Args)]
pub struct AuthorityFileArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The AuthorityInput JSON file.
    pub file: PathBuf,
}

/// `govtrust authority update ID FILE`
#[derive(Debug, Args)]
pub struct AuthorityUpdateArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The authority ID.
    pub id: String,
    /// The AuthorityInput JSON file.
    pub file: PathBuf,
}

/// `govtrust authority show|suspend|activate ID`
#[derive(Debug, Args)]
pub struct AuthorityIdArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The authority ID.
    pub id: String,
}

/// `govtrust authority list`
#[derive(Debug, Args)]
pub struct AuthorityListArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// `govtrust authority import`
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The file (.json or .csv; see --format).
    pub file: PathBuf,
    /// json or csv (default: from the file extension).
    #[arg(long)]
    pub format: Option<String>,
}

//! `govtrust cert …`: list, show and revoke issued certificates over the API.

use clap::{Args, Subcommand};

use super::operator::{PageArgs, ServerArgs};

/// `govtrust cert …`
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// List certificates in issuance order, filtered.
    ///
    /// --status: live (valid, unexpired), revoked, expired (not revoked,
    /// past not_after) or superseded (replaced, unexpired). Times
    /// (--expiring-before) are RFC 3339, milliseconds since the epoch, or
    /// now+30d / now-12h. Prints one page (--limit) and the cursor of the
    /// next; --all follows every page.
    ///
    /// Examples:
    ///
    ///   govtrust cert list --authority DE-BE-11000000-BA-NK --status live
    ///   govtrust cert list --status live --expiring-before now+7d --all
    ///   govtrust cert list --user @office.berlin:id.bund.example --json
    #[command(verbatim_doc_comment)]
    List(CertListArgs),
    /// Show one certificate (--pem: print its chain as PEM).
    ///
    /// Example: govtrust cert show 461f7d667539828e675bf1e785e5b23e --pem > chain.pem
    Show(CertShowArgs),
    /// Revoke a certificate; takes effect with the issuing CA's next CRL,
    /// which the service signs on the next fetch.
    ///
    /// Reasons: unspecified, key_compromise, ca_compromise,
    /// affiliation_changed, superseded, cessation_of_operation,
    /// certificate_hold, privilege_withdrawn.
    ///
    /// Example: govtrust cert revoke 461f7d667539828e675bf1e785e5b23e --reason key_compromise
    Revoke(CertRevokeArgs),
}

/// `govtrust cert list`
#[derive(Debug, Args)]
pub struct CertListArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Only this authority's certificates.
    #[arg(long)]
    pub authority: Option<String>,
    /// Only this Matrix user's certificates.
    #[arg(long)]
    pub user: Option<String>,
    /// live, revoked, expired or superseded.
    #[arg(long)]
    pub status: Option<String>,
    /// Only certificates that expire before this time.
    #[arg(long, value_name = "TIME")]
    pub expiring_before: Option<String>,
    #[command(flatten)]
    pub page: PageArgs,
}

/// `govtrust cert show`
#[derive(Debug, Args)]
pub struct CertShowArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The serial (hex).
    pub serial: String,
    /// Print the certificate chain as PEM instead of its fields.
    #[arg(long)]
    pub pem: bool,
}

/// `govtrust cert revoke`
#[derive(Debug, Args)]
pub struct CertRevokeArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The serial (hex).
    pub serial: String,
    /// RFC 5280 reason name (default unspecified).
    #[arg(long)]
    pub reason: Option<String>,
}

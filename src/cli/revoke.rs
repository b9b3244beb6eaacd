//! `govtrust revoke` and `govtrust crl`: offline revocation and CRL signing
//! in a CA directory.

use std::path::PathBuf;

use clap::Args;

use super::ca::DirArg;

/// `govtrust revoke`
#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Serial number (hex) of the certificate to revoke.
    #[arg(long, conflicts_with_all = ["cert", "issuing_ca"])]
    pub serial: Option<String>,
    /// The certificate (PEM) to revoke.
    #[arg(long, conflicts_with = "issuing_ca")]
    pub cert: Option<PathBuf>,
    /// Revoke this issuing CA (recorded on the root's CRL).
    #[arg(long)]
    pub issuing_ca: Option<String>,
    /// Issuing CA that issued the certificate (default: looked up in DIR/issued).
    #[arg(long)]
    pub ca: Option<String>,
    /// RFC 5280 reason: unspecified, key_compromise, ca_compromise,
    /// affiliation_changed, superseded, cessation_of_operation,
    /// certificate_hold, privilege_withdrawn.
    #[arg(long, default_value = "unspecified")]
    pub reason: String,
}

/// `govtrust crl`
#[derive(Debug, Args)]
pub struct CrlArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Issuing CA ID (default: the first one).
    #[arg(long, conflicts_with = "root")]
    pub ca: Option<String>,
    /// Sign the root's CRL instead (revoked issuing CAs).
    #[arg(long)]
    pub root: bool,
    /// Hours until nextUpdate (default 24 for issuing CAs, 720 for the root).
    #[arg(long)]
    pub hours: Option<u32>,
    /// Output file (DER unless --pem); standard output if absent.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write PEM instead of DER.
    #[arg(long)]
    pub pem: bool,
}

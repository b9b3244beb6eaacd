//! `govtrust archive …`: re-verify sealed-document archives offline.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `govtrust archive …`
#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Re-verify an archive of sealed documents offline: each record's seal
    /// as of its issued_at with the CRLs stored in it, and its receipts.
    /// Exit status 1 if any record or receipt fails.
    Verify(ArchiveVerifyArgs),
}

/// `govtrust archive verify`
#[derive(Debug, Args)]
pub struct ArchiveVerifyArgs {
    /// The archive directory (one JSON record per file).
    pub dir: PathBuf,
    /// The pinned root certificate(s) (PEM).
    #[arg(long)]
    pub root: PathBuf,
    /// Accept records without CRLs (default: a CRL valid at issued_at is
    /// required for every certificate on the path).
    #[arg(long)]
    pub allow_missing_crl: bool,
}

//! The command line of the `govtrust` binary (clap): `Cli` with its global
//! flags and the top-level `Command`; each command group's arguments live in
//! a module of their own and are re-exported here, so commands import them
//! as `crate::cli::…`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod agency;
mod archive;
mod audit;
mod authority;
mod ca;
mod cert;
mod demo;
mod enrollment_client;
mod inspect;
mod issue;
mod operator;
mod revoke;
mod service;
mod token;
mod verify;

pub use agency::{
    AgencyAccountArgs, AgencyArchiveArgs, AgencyCommand, AgencyEnrollArgs, AgencySealingDeviceArgs,
    AgencySendSealedArgs, AgencyServiceArgs, AgencySignIdentityArgs,
};
pub use archive::{ArchiveCommand, ArchiveVerifyArgs};
pub use audit::{AuditCommand, AuditLogArgs};
pub use authority::{
    AuthorityCommand, AuthorityFileArgs, AuthorityIdArgs, AuthorityUpdateArgs, ImportArgs,
};
pub use ca::{CaCommand, CaInitArgs, DirArg, IssuingCaArgs, KeyArgs};
pub use cert::{CertCommand, CertListArgs, CertRevokeArgs, CertShowArgs};
pub use demo::DemoArgs;
pub use enrollment_client::{EnrollmentClientCommand, EnrollmentClientIssueArgs};
pub use inspect::InspectArgs;
pub use issue::{
    AttestationArgs, IssueCommand, IssueDeviceArgs, IssueEnrollmentArgs, IssueIdentityArgs,
};
use operator::OPERATOR_HELP;
pub use operator::{PageArgs, ServerArgs};
pub use revoke::{CrlArgs, RevokeArgs};
pub use service::{ConfigArgs, ConfigCommand, ServeArgs};
pub use token::{TokenCommand, TokenCreateArgs, TokenListArgs, TokenNameArgs, TokenSecretArgs};
pub use verify::VerifyArgs;

/// govtrust — a government PKI that makes Matrix clients trust agency devices.
///
/// govtrust issues X.509 certificates that bind an agency's Matrix devices
/// (and cross-signing identities) to official authority records, and
/// verifies them. A typical first session:
///
///   govtrust demo                                   # the whole story, with a local Synapse
///   govtrust demo --offline                         # the PKI alone, in a temp dir
///   govtrust ca init --dir ca --servers id.bund.example
///   govtrust issue device --dir ca --user @office:id.bund.example \
///       --device AGENCYDEV --key <B64> --authority office.json > chain.pem
///   govtrust crl --dir ca --out ca.crl && govtrust crl --dir ca --root --out root.crl
///   govtrust verify --root ca/root/cert.pem --chain chain.pem \
///       --user @office:id.bund.example --device AGENCYDEV --key <B64> \
///       --crl ca.crl --crl root.crl
#[derive(Debug, Parser)]
#[command(name = "govtrust", version, verbatim_doc_comment)]
pub struct Cli {
    /// Print machine-readable JSON instead of human text.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the CA hierarchy: create a root and issuing CAs.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Issue device, identity or enrollment-client certificates.
    #[command(subcommand)]
    Issue(IssueCommand),
    /// Revoke a certificate or an issuing CA (takes effect with the next CRL).
    Revoke(RevokeArgs),
    /// Sign a fresh CRL for an issuing CA or the root.
    Crl(CrlArgs),
    /// Decide whether a chain attests a Matrix device or identity.
    ///
    /// Exit status: 0 trusted (the authority record is printed), 1 not
    /// trusted (the reason is printed; also for unreadable or malformed
    /// certificates), 2 usage error.
    Verify(VerifyArgs),
    /// Explain a certificate, CRL or attestation event against the profile.
    ///
    /// Prints each object's fields, its SHA-256 fingerprint (compare it
    /// out of band, e.g. the root's before pinning it) and one finding per
    /// profile rule; a CRL is judged fresh or stale now.
    ///
    /// Exit status: 0 every finding holds, 1 a finding does not (stale CRL,
    /// certificate outside the profile) or the file cannot be read, 2 usage
    /// error. `--json` prints the report as JSON.
    Inspect(InspectArgs),
    /// The whole story in about a minute, narrated: a local Synapse, the
    /// service, an agency enrolling its device, a citizen's client trusting
    /// it automatically, and the trust withdrawn on revocation.
    ///
    /// The first run installs Synapse from PyPI into a virtualenv (about
    /// half a minute; reused afterwards). `--offline` tours the PKI alone:
    /// hierarchy, issuance, verification and revocation with the CLI's
    /// own commands, no homeserver.
    Demo(DemoArgs),
    /// Run the enrollment & attestation service (HTTPS API).
    ///
    /// With no configuration it runs on embedded defaults: SQLite under the
    /// data dir, file keys, a development CA created on first start, HTTPS
    /// on 127.0.0.1:7443, Matrix publishing off until a homeserver is
    /// configured. The first operator token is written to
    /// <data dir>/operator-token.
    Serve(ServeArgs),
    /// Check a service configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage the authority registry over the service's API (list and
    /// import can also work on the database directly).
    #[command(subcommand, after_long_help = OPERATOR_HELP)]
    Authority(AuthorityCommand),
    /// List, show and revoke issued certificates over the service's API.
    #[command(subcommand, after_long_help = OPERATOR_HELP)]
    Cert(CertCommand),
    /// Issue and revoke agencies' enrollment-client (mTLS) certificates
    /// over the service's API.
    #[command(subcommand, after_long_help = OPERATOR_HELP)]
    EnrollmentClient(EnrollmentClientCommand),
    /// Manage operator tokens and their roles over the service's API
    /// (needs an admin token).
    #[command(subcommand, after_long_help = OPERATOR_HELP)]
    Token(TokenCommand),
    /// Read the audit log and check its hash chain.
    #[command(subcommand, after_long_help = OPERATOR_HELP)]
    Audit(AuditCommand),
    /// Print a shell completion script.
    ///
    /// Examples:
    ///
    ///   govtrust completions bash > /etc/bash_completion.d/govtrust
    ///   govtrust completions zsh > "${fpath[1]}/_govtrust"
    ///   govtrust completions fish > ~/.config/fish/completions/govtrust.fish
    #[command(verbatim_doc_comment)]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write man pages (govtrust.1 and one per subcommand) into DIR.
    ///
    /// Example: govtrust man /usr/local/share/man/man1
    Man {
        /// Directory to write the pages into (created if missing).
        dir: PathBuf,
    },
    /// The agency side: enroll a Matrix device with the service.
    #[command(subcommand)]
    Agency(AgencyCommand),
    /// Sealed-document archives: re-verify offline.
    #[command(subcommand)]
    Archive(ArchiveCommand),
}

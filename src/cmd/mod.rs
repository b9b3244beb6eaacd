//! One module per command; each turns parsed arguments into work and output.

pub mod ca;
pub mod demo;
pub mod inspect;
pub mod issue;
pub mod revoke;
pub mod sealed;
pub mod service;
pub mod verify;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use govtrust_verifier::AuthorityRecord;

use crate::cli::{
    AgencyCommand, ArchiveCommand, AuditCommand, AuthorityCommand, CaCommand, Cli, Command, ConfigCommand,
    IssueCommand,
};
use crate::output::Output;

/// Exit status for "not trusted" and for failed commands.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status for usage errors (as clap uses).
pub const EXIT_USAGE: u8 = 2;

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let out = Output { json: cli.json };
    match cli.command {
        Command::Ca(CaCommand::Init(args)) => ca::init(&args, out),
        Command::Ca(CaCommand::IssuingCa(args)) => ca::issuing_ca(&args, out),
        Command::Ca(CaCommand::List(args)) => ca::list(&args.dir, out),
        Command::Issue(IssueCommand::Device(args)) => issue::device(&args, out),
        Command::Issue(IssueCommand::Identity(args)) => issue::identity(&args, out),
        Command::Issue(IssueCommand::EnrollmentClient(args)) => {
            issue::enrollment_client(&args, out)
        }
        Command::Revoke(args) => revoke::revoke(&args, out),
        Command::Crl(args) => revoke::crl(&args, out),
        Command::Verify(args) => Ok(verify::verify(&args, out)),
        Command::Inspect(args) => inspect::inspect(&args.file, out),
        Command::Demo(args) => demo::demo(&args),
        Command::Serve(args) => service::serve(&args),
        Command::Config(ConfigCommand::Check { file }) => service::config_check(&file, out),
        Command::Authority(AuthorityCommand::Import(args)) => service::authority_import(&args, out),
        Command::Authority(AuthorityCommand::List(args)) => service::authority_list(&args, out),
        Command::Audit(AuditCommand::Verify(args)) => service::audit_verify(&args, out),
        Command::Agency(AgencyCommand::Enroll(args)) => service::agency_enroll(&args, out),
        Command::Agency(AgencyCommand::SealingDevice(args)) => sealed::sealing_device(&args, out),
        Command::Agency(AgencyCommand::SendSealed(args)) => sealed::send_sealed(&args, out),
        Command::Agency(AgencyCommand::Archive(args)) => sealed::archive(&args, out),
        Command::Archive(ArchiveCommand::Verify(args)) => sealed::archive_verify(&args, out),
    }
}

/// Reads an authority record JSON file and validates it.
pub fn read_authority(path: &Path) -> Result<AuthorityRecord> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let record: AuthorityRecord = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an authority record", path.display()))?;
    record
        .validate()
        .with_context(|| format!("{}", path.display()))?;
    Ok(record)
}

/// Writes `text` to `path`, or to standard output.
pub fn write_or_print(path: Option<&Path>, bytes: &[u8]) -> Result<()> {
    match path {
        Some(p) => govtrust_service::cadir::write_atomic(p, bytes),
        None => {
            use std::io::Write;
            std::io::stdout().write_all(bytes)?;
            Ok(())
        }
    }
}

//! One module per command; each turns parsed arguments into work and output.

pub mod ca;
pub mod demo;
pub mod element_x509;
pub mod inspect;
pub mod issue;
pub mod manual;
pub mod operator;
pub mod revoke;
pub mod sealed;
pub mod service;
pub mod table;
pub mod verify;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use govtrust_verifier::AuthorityRecord;

use crate::cli::{
    AgencyCommand, ArchiveCommand, AuditCommand, AuthorityCommand, CaCommand, CertCommand, Cli,
    Command, ConfigCommand, EnrollmentClientCommand, IssueCommand, TokenCommand,
};
use crate::output::Output;

/// Exit status for "not trusted" and for failed commands.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status for usage errors (as clap uses).
pub const EXIT_USAGE: u8 = 2;

/// A multi-threaded runtime for a command's async work.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

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
        Command::Authority(command) => authority(command, out),
        Command::Cert(CertCommand::List(args)) => operator::cert_list(&args, out),
        Command::Cert(CertCommand::Show(args)) => operator::cert_show(&args, out),
        Command::Cert(CertCommand::Revoke(args)) => operator::cert_revoke(&args, out),
        Command::EnrollmentClient(EnrollmentClientCommand::Issue(args)) => {
            operator::enrollment_client_issue(&args, out)
        }
        Command::EnrollmentClient(EnrollmentClientCommand::Revoke(args)) => {
            operator::enrollment_client_revoke(&args, out)
        }
        Command::Token(TokenCommand::Create(args)) => operator::token_create(&args, out),
        Command::Token(TokenCommand::List(args)) => operator::token_list(&args, out),
        Command::Token(TokenCommand::Rotate(args)) => operator::token_rotate(&args, out),
        Command::Token(TokenCommand::Revoke(args)) => operator::token_revoke(&args, out),
        Command::Audit(AuditCommand::Log(args)) => operator::audit_log(&args, out),
        Command::Audit(AuditCommand::Verify(args)) => {
            if operator::use_api(&args.server, &args.config) {
                operator::audit_verify(&args.server, out)
            } else {
                service::audit_verify(&args.config, out)
            }
        }
        Command::Completions { shell } => manual::completions(shell),
        Command::Man { dir } => manual::man(&dir, out),
        Command::Agency(AgencyCommand::Enroll(args)) => service::agency_enroll(&args, out),
        Command::Agency(AgencyCommand::SignIdentity(args)) => {
            element_x509::sign_identity(&args, out)
        }
        Command::Agency(AgencyCommand::SealingDevice(args)) => sealed::sealing_device(&args, out),
        Command::Agency(AgencyCommand::SendSealed(args)) => sealed::send_sealed(&args, out),
        Command::Agency(AgencyCommand::Archive(args)) => sealed::archive(&args, out),
        Command::Archive(ArchiveCommand::Verify(args)) => sealed::archive_verify(&args, out),
    }
}

/// `govtrust authority …`: over the API, except `list` and `import`
/// without a server (or with --config/--data-dir), which open the
/// database directly as they always did.
fn authority(command: AuthorityCommand, out: Output) -> Result<ExitCode> {
    match command {
        AuthorityCommand::Create(args) => operator::authority_create(&args, out),
        AuthorityCommand::Show(args) => operator::authority_show(&args, out),
        AuthorityCommand::Update(args) => operator::authority_update(&args, out),
        AuthorityCommand::Suspend(args) => operator::authority_suspend(&args, out),
        AuthorityCommand::Activate(args) => operator::authority_activate(&args, out),
        AuthorityCommand::List(args) if operator::use_api(&args.server, &args.config) => {
            operator::authority_list(&args.server, out)
        }
        AuthorityCommand::List(args) => service::authority_list(&args.config, out),
        AuthorityCommand::Import(args) if operator::use_api(&args.server, &args.config) => {
            operator::authority_import(&args, out)
        }
        AuthorityCommand::Import(args) => service::authority_import(&args, out),
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

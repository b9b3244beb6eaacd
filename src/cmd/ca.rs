//! `govtrust ca init | issuing-ca | list`

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use govtrust_pki::der::DistinguishedName;
use govtrust_pki::signer::KeyAlgorithm;
use govtrust_pki::{RootCa, Validity};
use serde::Serialize;

use crate::cadir::{CaDir, CaState, KeyLocation, PASSPHRASE_ENV};
use crate::cli::{CaInitArgs, IssuingCaArgs, KeyArgs};
use crate::cmd::read_authority;
use crate::output::Output;

const DAY: u64 = 24 * 60 * 60;

#[derive(Serialize)]
struct CaSummary {
    dir: String,
    root: String,
    issuing: Vec<IssuingSummary>,
}

#[derive(Serialize)]
struct IssuingSummary {
    id: String,
    subject: String,
    permitted_servers: Vec<String>,
    not_after: String,
    key: KeyLocation,
    crl_url: Option<String>,
}

fn passphrase(key: &KeyArgs) -> Result<Option<String>> {
    if !key.encrypt_key {
        return Ok(None);
    }
    std::env::var(PASSPHRASE_ENV)
        .map(Some)
        .with_context(|| format!("--encrypt-key needs the passphrase in ${PASSPHRASE_ENV}"))
}

fn key_location(key: &KeyArgs, id: &str) -> KeyLocation {
    match (&key.pkcs11_module, &key.pkcs11_token) {
        (Some(module), Some(token)) => KeyLocation::Pkcs11 {
            module: module.clone(),
            token: token.clone(),
            label: key
                .pkcs11_key_label
                .clone()
                .unwrap_or_else(|| format!("govtrust-{id}")),
        },
        _ => KeyLocation::File,
    }
}

fn ca_name(common_name: &str, organisation: Option<&Path>) -> Result<DistinguishedName> {
    let org = organisation.map(read_authority).transpose()?;
    Ok(DistinguishedName::ca(common_name, org.as_ref())?)
}

fn crl_url(base: Option<&str>, id: &str) -> Option<String> {
    base.map(|b| format!("{}/{id}.crl", b.trim_end_matches('/')))
}

/// `govtrust ca init`
pub fn init(args: &CaInitArgs, out: Output) -> Result<ExitCode> {
    create_hierarchy(args)?;
    list(&args.dir.dir, out)
}

/// Creates a root and its first issuing CA in a new directory (also how the
/// service makes its development CA on first start).
pub fn create_hierarchy(args: &CaInitArgs) -> Result<()> {
    let algorithm = KeyAlgorithm::parse(&args.key.key_algorithm)?;
    let pass = passphrase(&args.key)?;
    validate_servers(&args.servers)?;
    let organisation = args
        .organisation
        .as_deref()
        .map(read_authority)
        .transpose()?;
    if args.dir.dir.join("root").exists() {
        bail!(
            "{} already holds a CA hierarchy; refusing to overwrite it",
            args.dir.dir.display()
        );
    }
    let existed = args.dir.dir.exists();
    let result = create_in(args, algorithm, pass.as_deref(), organisation.as_ref());
    if result.is_err() {
        // Leave no half-made hierarchy behind to block a retry.
        let _ = if existed {
            ["root", "issuing", "issued"].iter().try_for_each(|d| {
                match std::fs::remove_dir_all(args.dir.dir.join(d)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                }
            })
        } else {
            std::fs::remove_dir_all(&args.dir.dir)
        };
    }
    result
}

/// Checks server names before any key is generated.
fn validate_servers(servers: &[String]) -> Result<()> {
    if servers.is_empty() {
        bail!("give at least one Matrix server name with --servers");
    }
    for server in servers {
        govtrust_verifier::validate_server_name(server)
            .map_err(|why| anyhow::anyhow!("server name {server:?}: {why}"))?;
        if server.bytes().any(|b| b.is_ascii_uppercase()) {
            bail!("server name {server:?} must be lower case");
        }
    }
    Ok(())
}

fn create_in(
    args: &CaInitArgs,
    algorithm: KeyAlgorithm,
    pass: Option<&str>,
    organisation: Option<&govtrust_verifier::AuthorityRecord>,
) -> Result<()> {
    let dir = CaDir::create(&args.dir.dir)?;
    let root_dir = dir.path().join("root");
    // The root key is always a file: the root is meant to live offline.
    let root_signer = CaDir::generate_key(&root_dir, algorithm, &KeyLocation::File, pass)?;
    let root = RootCa::create(
        &DistinguishedName::ca(&args.root_name, organisation)?,
        root_signer,
        Validity::from_now(Duration::from_secs(u64::from(args.root_days) * DAY)),
    )?;
    dir.write_root(
        root.certificate().der(),
        &CaState {
            next_crl_number: 1,
            ..Default::default()
        },
    )?;
    create_issuing(
        &dir,
        &root,
        &NewIssuing {
            id: &args.issuing_id,
            common_name: &format!("govtrust Issuing CA {}", args.issuing_id),
            organisation: args.organisation.as_deref(),
            servers: &args.servers,
            crl_base_url: args.crl_base_url.as_deref(),
            days: args.issuing_days,
            key: &args.key,
        },
    )
}

/// `govtrust ca issuing-ca`
pub fn issuing_ca(args: &IssuingCaArgs, out: Output) -> Result<ExitCode> {
    validate_servers(&args.servers)?;
    let dir = CaDir::open(&args.dir.dir)?;
    let root = dir.root_ca()?;
    create_issuing(
        &dir,
        &root,
        &NewIssuing {
            id: &args.id,
            common_name: &args
                .common_name
                .clone()
                .unwrap_or_else(|| format!("govtrust Issuing CA {}", args.id)),
            organisation: args.organisation.as_deref(),
            servers: &args.servers,
            crl_base_url: args.crl_base_url.as_deref(),
            days: args.days,
            key: &args.key,
        },
    )?;
    list(&args.dir.dir, out)
}

struct NewIssuing<'a> {
    id: &'a str,
    common_name: &'a str,
    organisation: Option<&'a Path>,
    servers: &'a [String],
    crl_base_url: Option<&'a str>,
    days: u32,
    key: &'a KeyArgs,
}

fn create_issuing<S: govtrust_pki::signer::Signer>(
    dir: &CaDir,
    root: &RootCa<S>,
    new: &NewIssuing<'_>,
) -> Result<()> {
    let algorithm = KeyAlgorithm::parse(&new.key.key_algorithm)?;
    let location = key_location(new.key, new.id);
    let ca_dir = dir.new_issuing_dir(new.id)?;
    let signer = CaDir::generate_key(
        &ca_dir,
        algorithm,
        &location,
        passphrase(new.key)?.as_deref(),
    )?;
    // The issuing CA's own certificate is revoked on the root's CRL; what
    // it issues is revoked on its own.
    let crl_url = crl_url(new.crl_base_url, new.id);
    let cert = root.issue_issuing_ca(
        &ca_name(new.common_name, new.organisation)?,
        signer.spki_der().to_vec(),
        new.servers,
        Validity::from_now(Duration::from_secs(u64::from(new.days) * DAY)),
        self::crl_url(new.crl_base_url, "root").as_deref(),
    )?;
    dir.write_issuing(
        new.id,
        &cert,
        &CaState {
            key: location,
            crl_url,
            next_crl_number: 1,
            revoked: Vec::new(),
        },
    )?;
    // Loading proves the chain with a probe attestation through the verifier.
    dir.issuing_ca(new.id)
        .with_context(|| format!("the new issuing CA {} failed its self-test", new.id))?;
    Ok(())
}

/// `govtrust ca list`
pub fn list(path: &Path, out: Output) -> Result<ExitCode> {
    let dir = CaDir::open(path)?;
    let root = govtrust_pki::CaCertificate::from_der(dir.root_cert()?)?;
    let mut issuing = Vec::new();
    for id in dir.issuing_ids()? {
        let cert = govtrust_pki::CaCertificate::from_der(dir.issuing_cert(&id)?)?;
        let state = dir.issuing_state(&id)?;
        issuing.push(IssuingSummary {
            subject: cert.subject(),
            permitted_servers: cert.permitted_servers().to_vec(),
            not_after: crate::cmd::inspect::rfc3339(cert.not_after()),
            key: state.key,
            crl_url: state.crl_url,
            id,
        });
    }
    let summary = CaSummary {
        dir: path.display().to_string(),
        root: root.subject(),
        issuing,
    };
    out.emit(&summary, || {
        let mut text = format!("CA directory {}\n  root: {}\n", summary.dir, summary.root);
        for ca in &summary.issuing {
            text.push_str(&format!(
                "  issuing CA {}: {}\n    may certify: {}\n    valid until {}, key: {}\n",
                ca.id,
                ca.subject,
                ca.permitted_servers.join(", "),
                ca.not_after,
                match &ca.key {
                    KeyLocation::File => "file".to_owned(),
                    KeyLocation::Pkcs11 { token, label, .. } =>
                        format!("PKCS#11 token {token:?} key {label:?}"),
                }
            ));
        }
        text
    });
    Ok(ExitCode::SUCCESS)
}

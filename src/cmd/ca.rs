//! `govtrust ca init | issuing-ca | list`

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use govtrust_pki::signer::KeyAlgorithm;
use govtrust_service::cadir::{CaDir, KeyLocation, PASSPHRASE_ENV};
use govtrust_service::hierarchy::{
    add_issuing_ca, create_hierarchy, validate_servers, HierarchySpec, IssuingSpec, KeySpec,
};
use serde::Serialize;

use crate::cli::{CaInitArgs, IssuingCaArgs, KeyArgs};
use crate::cmd::read_authority;
use crate::output::Output;

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

/// The key parameters for CA `id` from the command line.
fn key_spec(key: &KeyArgs, id: &str) -> Result<KeySpec> {
    let location = match (&key.pkcs11_module, &key.pkcs11_token) {
        (Some(module), Some(token)) => KeyLocation::Pkcs11 {
            module: module.clone(),
            token: token.clone(),
            label: key
                .pkcs11_key_label
                .clone()
                .unwrap_or_else(|| format!("govtrust-{id}")),
        },
        _ => KeyLocation::File,
    };
    Ok(KeySpec {
        algorithm: KeyAlgorithm::parse(&key.key_algorithm)?,
        location,
        passphrase: passphrase(key)?,
    })
}

fn servers(servers: &[String]) -> Result<Vec<String>> {
    validate_servers(servers).context("--servers")?;
    Ok(servers.to_vec())
}

/// `govtrust ca init`
pub fn init(args: &CaInitArgs, out: Output) -> Result<ExitCode> {
    let spec = HierarchySpec {
        dir: args.dir.dir.clone(),
        root_name: args.root_name.clone(),
        root_days: args.root_days,
        issuing: IssuingSpec {
            id: args.issuing_id.clone(),
            common_name: IssuingSpec::default_common_name(&args.issuing_id),
            organisation: args
                .organisation
                .as_deref()
                .map(read_authority)
                .transpose()?,
            servers: servers(&args.servers)?,
            crl_base_url: args.crl_base_url.clone(),
            days: args.issuing_days,
            key: key_spec(&args.key, &args.issuing_id)?,
        },
    };
    create_hierarchy(&spec)?;
    list(&args.dir.dir, out)
}

/// `govtrust ca issuing-ca`
pub fn issuing_ca(args: &IssuingCaArgs, out: Output) -> Result<ExitCode> {
    let spec = IssuingSpec {
        id: args.id.clone(),
        common_name: args
            .common_name
            .clone()
            .unwrap_or_else(|| IssuingSpec::default_common_name(&args.id)),
        organisation: args
            .organisation
            .as_deref()
            .map(read_authority)
            .transpose()?,
        servers: servers(&args.servers)?,
        crl_base_url: args.crl_base_url.clone(),
        days: args.days,
        key: key_spec(&args.key, &args.id)?,
    };
    let dir = CaDir::open(&args.dir.dir)?;
    add_issuing_ca(&dir, &dir.root_ca()?, &spec)?;
    list(&args.dir.dir, out)
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
            not_after: govtrust_pki::rfc3339(cert.not_after()),
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

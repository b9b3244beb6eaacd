//! `govtrust agency sealing-device | send-sealed | archive` and
//! `govtrust archive verify`: sealed documents (docs/profile.md §16).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use govtrust_service::agency::sealed::{
    archive_room, enroll_sealing_device, generate_sealing_key, pkcs8_pem, register_sealing_device,
    send_sealed as send, write_archive, SchemaStore, SealingKey,
};
use govtrust_service::agency::ServiceClient;
use govtrust_service::matrix::{Bot, MatrixConfig};
use govtrust_verifier::sealed::Document;
use govtrust_verifier::sealed_archive::verify_record;
use govtrust_verifier::{CrlPolicy, SealedVerifier, TrustAnchors};
use matrix_sdk::ruma::OwnedRoomId;
use serde_json::{json, Value};

use super::runtime;
use super::EXIT_FAILURE;
use crate::cli::{
    AgencyAccountArgs, AgencyArchiveArgs, AgencySealingDeviceArgs, AgencySendSealedArgs,
    AgencyServiceArgs, ArchiveVerifyArgs,
};
use crate::output::Output;

/// Logs the agency's Matrix account in, or restores its session from --store.
pub(crate) async fn connect(account: &AgencyAccountArgs) -> Result<Bot> {
    Ok(Bot::connect(MatrixConfig::new(
        account.login.homeserver.clone(),
        account.login.user.clone(),
        account.login.password.clone(),
        account.store.clone(),
    ))
    .await?)
}

/// The mTLS client of the service with the agency's enrollment-client
/// certificate.
pub(crate) fn service_client(args: &AgencyServiceArgs) -> Result<ServiceClient> {
    ServiceClient::from_files(
        args.service.clone(),
        &args.service_root,
        &args.client_cert,
        &args.client_key,
    )
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `govtrust agency sealing-device`
pub fn sealing_device(args: &AgencySealingDeviceArgs, out: Output) -> Result<ExitCode> {
    super::service::init_logging(false);
    if args.new_key.exists() {
        bail!(
            "{} exists; refusing to overwrite a key",
            args.new_key.display()
        );
    }
    let pkcs8 = generate_sealing_key()?;
    write_private(&args.new_key, pkcs8_pem(&pkcs8).as_bytes())?;
    let enrolled = runtime()?.block_on(async {
        let http = reqwest::Client::new();
        let device = register_sealing_device(
            &http,
            &args.login.homeserver,
            &args.login.user,
            &args.login.password,
            &pkcs8,
        )
        .await?;
        let service = service_client(&args.service)?;
        let enrolled = enroll_sealing_device(&service, &args.login.user, &device, &pkcs8).await?;
        anyhow::Ok((device, enrolled))
    })?;
    govtrust_service::cadir::write_atomic(&args.out, enrolled.1.chain_pem.as_bytes())?;
    out.emit(
        &json!({"device_id": enrolled.0, "serial": enrolled.1.serial, "chain": args.out}),
        || {
            format!(
                "sealing device {} enrolled: serial {}, chain in {}",
                enrolled.0,
                enrolled.1.serial,
                args.out.display()
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// `govtrust agency send-sealed`
pub fn send_sealed(args: &AgencySendSealedArgs, out: Output) -> Result<ExitCode> {
    super::service::init_logging(false);
    let text = std::fs::read(&args.document)
        .with_context(|| format!("reading {}", args.document.display()))?;
    let document: Value = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not JSON", args.document.display()))?;
    let schema = match &args.schema_dir {
        Some(dir) => SchemaStore::load_dir(dir)?.check(&document)?,
        None => None,
    };
    let key = SealingKey::load(
        &args.sealing_key,
        &args.sealing_chain,
        &args.account.login.user,
    )?;
    let room: OwnedRoomId = args.room.as_str().try_into().context("--room")?;
    let content = key.seal(
        room.as_str(),
        Document::Json { json: document },
        &args.reference,
        now_ms(),
    )?;
    let event_id = runtime()?.block_on(async {
        let bot = connect(&args.account).await?;
        let event_id = send(bot.client(), &room, &content).await?;
        bot.shutdown();
        anyhow::Ok(event_id)
    })?;
    out.emit(
        &json!({
            "event_id": event_id,
            "document_sha256": content.document_sha256,
            "schema": schema,
            "signer_device": key.device_id(),
        }),
        || {
            format!(
                "sent {event_id}: sealed by {} (device {}), document SHA-256 {}{}",
                key.authority(),
                key.device_id(),
                content.document_sha256,
                schema
                    .as_deref()
                    .map(|s| format!(", conforms to {s}"))
                    .unwrap_or_default()
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// `govtrust agency archive`
pub fn archive(args: &AgencyArchiveArgs, out: Output) -> Result<ExitCode> {
    super::service::init_logging(false);
    let crls: Vec<Vec<u8>> = args
        .crls
        .iter()
        .map(|path| {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let crl = govtrust_verifier::Crl::from_pem_or_der(&bytes)
                .with_context(|| format!("{} is not a CRL", path.display()))?;
            Ok(crl.der().to_vec())
        })
        .collect::<Result<_>>()?;
    let room: OwnedRoomId = args.room.as_str().try_into().context("--room")?;
    let (records, refused) = runtime()?.block_on(async {
        let bot = connect(&args.account).await?;
        let result = archive_room(bot.client(), &room, &crls).await?;
        bot.shutdown();
        anyhow::Ok(result)
    })?;
    let files = write_archive(&args.out, &records)?;
    let receipts: usize = records.iter().map(|r| r.receipts.len()).sum();
    out.emit(
        &json!({"records": files, "receipts": receipts, "refused_receipts": refused}),
        || {
            let mut text = format!(
                "archived {} sealed event(s) with {receipts} verified receipt(s) in {}",
                files.len(),
                args.out.display()
            );
            for why in &refused {
                text.push_str(&format!("\n  left out: {why}"));
            }
            text
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// `govtrust archive verify`
pub fn archive_verify(args: &ArchiveVerifyArgs, out: Output) -> Result<ExitCode> {
    let root =
        std::fs::read(&args.root).with_context(|| format!("reading {}", args.root.display()))?;
    let policy = if args.allow_missing_crl {
        CrlPolicy::ALLOW_MISSING
    } else {
        CrlPolicy::REQUIRE_FRESH
    };
    let verifier = SealedVerifier::new(TrustAnchors::from_pem(&root)?, policy);
    let mut files: Vec<_> = std::fs::read_dir(&args.dir)
        .with_context(|| format!("reading {}", args.dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .collect();
    files.sort();
    let mut report = Vec::new();
    let mut ok = true;
    for path in &files {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let entry = match verify_record(&verifier, &bytes) {
            Ok(verdict) => {
                let receipts: Vec<Value> = verdict
                    .receipts
                    .iter()
                    .map(|r| match r {
                        Ok(r) => json!({"ok": true, "user_id": r.content.user_id,
                            "received_at": r.content.received_at}),
                        Err(e) => {
                            ok = false;
                            json!({"ok": false, "code": e.code(), "reason": e.to_string()})
                        }
                    })
                    .collect();
                json!({
                    "file": path, "ok": true,
                    "sealed_by": verdict.sealed.attestation.authority.to_string(),
                    "authority_id": verdict.sealed.attestation.authority.id,
                    "reference": verdict.sealed.content.metadata.reference,
                    "issued_at": verdict.sealed.content.metadata.issued_at,
                    "revoked_after_signing": verdict.sealed.revoked_after_signing,
                    "receipts": receipts,
                })
            }
            Err(e) => {
                ok = false;
                json!({"file": path, "ok": false, "code": e.code(), "reason": e.to_string()})
            }
        };
        report.push(entry);
    }
    if files.is_empty() {
        ok = false;
    }
    out.emit(&report, || {
        let mut text = String::new();
        for r in &report {
            let file = r["file"].as_str().unwrap_or_default();
            if r["ok"] == true {
                text.push_str(&format!(
                    "VALID {file}: sealed by {}, reference {}, {} receipt(s)\n",
                    r["sealed_by"].as_str().unwrap_or_default(),
                    r["reference"].as_str().unwrap_or_default(),
                    r["receipts"].as_array().map_or(0, Vec::len)
                ));
                for receipt in r["receipts"].as_array().into_iter().flatten() {
                    if receipt["ok"] != true {
                        text.push_str(&format!(
                            "  receipt INVALID ({}): {}\n",
                            receipt["code"].as_str().unwrap_or_default(),
                            receipt["reason"].as_str().unwrap_or_default()
                        ));
                    }
                }
            } else {
                text.push_str(&format!(
                    "INVALID {file} ({}): {}\n",
                    r["code"].as_str().unwrap_or_default(),
                    r["reason"].as_str().unwrap_or_default()
                ));
            }
        }
        if report.is_empty() {
            text.push_str("no archive records found\n");
        }
        text
    });
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}

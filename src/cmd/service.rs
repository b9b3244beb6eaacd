//! `govtrust serve`, `config check`, `authority …`, `audit verify`,
//! `agency enroll`: the commands around the service.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use govtrust_api::import::{self as authority_import, RowError};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::runtime;
use crate::cli::{AgencyEnrollArgs, ConfigArgs, ImportArgs, ServeArgs};
use crate::output::Output;
use govtrust_service::clock::now_ms;
use govtrust_service::config::Config;
use govtrust_service::storage::{AuditEntry, Authority, Store, StoreError};

/// Loads the configuration a command runs with.
pub fn load_config(args: &ConfigArgs) -> Result<Config> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    Ok(config)
}

/// Sets up `tracing` (RUST_LOG, default info).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,matrix_sdk=warn,matrix_sdk_crypto=warn,sqlx=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// `govtrust serve`
pub fn serve(args: &ServeArgs) -> Result<ExitCode> {
    init_logging(args.log_json);
    let mut config = load_config(&args.config)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    runtime()?.block_on(govtrust_service::run(config))?;
    Ok(ExitCode::SUCCESS)
}

/// `govtrust config check FILE`
pub fn config_check(file: &Path, out: Output) -> Result<ExitCode> {
    let config = Config::load(Some(file))?;
    #[derive(Serialize)]
    struct Checked<'a> {
        valid: bool,
        listen: String,
        database: String,
        ca_dir: String,
        matrix: Option<&'a str>,
    }
    let report = Checked {
        valid: true,
        listen: config.listen.to_string(),
        database: govtrust_service::config::redact_database_url(&config.database_url()),
        ca_dir: config.ca_dir().display().to_string(),
        matrix: config.matrix.as_ref().map(|m| m.homeserver_url.as_str()),
    };
    out.emit(&report, || {
        format!(
            "{} is valid\n  listen:   {}\n  database: {}\n  CA dir:   {}\n  matrix:   {}",
            file.display(),
            report.listen,
            report.database,
            report.ca_dir,
            report.matrix.unwrap_or("not configured (publishing off)")
        )
    });
    Ok(ExitCode::SUCCESS)
}

/// What `govtrust authority import` did, row by row.
#[derive(Serialize)]
pub(crate) struct ImportReport {
    pub(crate) rows: usize,
    pub(crate) created: usize,
    pub(crate) updated: usize,
    pub(crate) errors: Vec<RowError>,
}

impl ImportReport {
    /// Nothing done yet out of `rows` rows.
    pub(crate) fn new(rows: usize) -> Self {
        ImportReport {
            rows,
            created: 0,
            updated: 0,
            errors: Vec::new(),
        }
    }

    /// Prints the report; the exit status fails if any row was rejected.
    pub(crate) fn emit(&self, out: Output) -> ExitCode {
        out.emit(self, || {
            let mut text = format!(
                "{} rows: {} created, {} updated, {} rejected\n",
                self.rows,
                self.created,
                self.updated,
                self.errors.len()
            );
            for e in &self.errors {
                text.push_str(&format!(
                    "  row {}{}: {}\n",
                    e.row,
                    e.id.as_ref().map(|i| format!(" ({i})")).unwrap_or_default(),
                    e.error
                ));
            }
            text
        });
        if self.errors.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(super::EXIT_FAILURE)
        }
    }
}

/// The rows of the import file, each validated or the reason it is not.
pub(crate) fn read_import_rows(args: &ImportArgs) -> Result<Vec<Result<Authority, RowError>>> {
    let format = authority_import::Format::detect(&args.file, args.format.as_deref())?;
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    authority_import::parse(&bytes, format, now_ms())
        .with_context(|| args.file.display().to_string())
}

/// `govtrust authority import FILE`
pub fn authority_import(args: &ImportArgs, out: Output) -> Result<ExitCode> {
    let config = load_config(&args.config)?;
    let rows = read_import_rows(args)?;
    let report = runtime()?.block_on(async {
        let store = Store::connect(&config.database_url()).await?;
        let progress = ProgressBar::new(rows.len() as u64);
        progress.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} authorities ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mut report = ImportReport::new(rows.len());
        for (index, row) in rows.into_iter().enumerate() {
            match import_row(&store, index + 1, row).await {
                Ok(true) => report.created += 1,
                Ok(false) => report.updated += 1,
                Err(e) => report.errors.push(e),
            }
            progress.inc(1);
        }
        progress.finish_and_clear();
        anyhow::Ok(report)
    })?;
    Ok(report.emit(out))
}

/// Stores one parsed and validated row; `Ok(true)` created, `Ok(false)`
/// updated (keeping the existing status and creation time).
async fn import_row(
    store: &Store,
    row: usize,
    parsed: Result<Authority, RowError>,
) -> Result<bool, RowError> {
    let mut authority = parsed?;
    let id = authority.record.id.clone();
    let fail = |error: String| RowError {
        row,
        id: Some(id.clone()),
        error,
    };
    let existing = store
        .get_authority(&id)
        .await
        .map_err(|e| fail(e.to_string()))?;
    if let Some(existing) = &existing {
        authority.status = existing.status;
        authority.created_at = existing.created_at;
    }
    authority.updated_at = now_ms();
    let audit = |action: &str| {
        AuditEntry::new(
            "operator:import",
            action,
            id.clone(),
            serde_json::to_value(&authority.record).unwrap_or_default(),
        )
    };
    match existing {
        None => match store
            .insert_authority(authority.clone(), audit("authority.created"))
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::Duplicate { .. }) => {
                Err(fail("created concurrently by someone else".into()))
            }
            Err(e) => Err(fail(e.to_string())),
        },
        Some(_) => store
            .update_authority(authority.clone(), audit("authority.updated"))
            .await
            .map(|()| false)
            .map_err(|e| fail(e.to_string())),
    }
}

/// `govtrust authority list`
pub fn authority_list(args: &ConfigArgs, out: Output) -> Result<ExitCode> {
    let config = load_config(args)?;
    let all = runtime()?.block_on(async {
        let store = Store::connect(&config.database_url()).await?;
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store.list_authorities(after.as_deref(), 500).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.record.id.clone());
            all.extend(page);
        }
        anyhow::Ok(all)
    })?;
    let views: Vec<_> = all
        .into_iter()
        .map(govtrust_service::api::AuthorityView::from)
        .collect();
    out.emit(&views, || {
        serde_json::to_string_pretty(&views).unwrap_or_default()
    });
    Ok(ExitCode::SUCCESS)
}

/// `govtrust audit verify`
pub fn audit_verify(args: &ConfigArgs, out: Output) -> Result<ExitCode> {
    let config = load_config(args)?;
    let report = runtime()?.block_on(async {
        let store = Store::connect(&config.database_url()).await?;
        anyhow::Ok(store.verify_audit_chain().await?)
    })?;
    let ok = report.is_ok();
    out.emit(&report, || match ok {
        true => format!("audit chain intact: {} entries", report.entries),
        false => format!("AUDIT CHAIN BROKEN: {report:?}"),
    });
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_FAILURE)
    })
}

/// `govtrust agency enroll`
pub fn agency_enroll(args: &AgencyEnrollArgs, out: Output) -> Result<ExitCode> {
    init_logging(false);
    let responses = runtime()?.block_on(async {
        // The device's account: logged in once, restored from --store after.
        let device = super::sealed::connect(&args.account).await?;
        let service = super::sealed::service_client(&args.service)?;
        let bot: matrix_sdk::ruma::OwnedUserId = args
            .service_bot
            .as_str()
            .try_into()
            .context("--service-bot")?;
        let mut responses = vec![
            govtrust_service::agency::enroll_device(device.client(), &service, bot.clone()).await?,
        ];
        if args.identity {
            responses.push(
                govtrust_service::agency::enroll_identity(device.client(), &service, bot.clone())
                    .await?,
            );
        }
        if let (Some(key), Some(out)) = (&args.identity_signing_key, &args.identity_signing_out) {
            let signer = super::element_x509::load_signer(key)?;
            let enrolled = govtrust_service::agency::enroll_identity_signing(
                device.client(),
                &service,
                bot,
                &signer,
            )
            .await?;
            govtrust_service::cadir::write_atomic(out, enrolled.chain_pem.as_bytes())?;
            responses.push(enrolled);
        }
        device.shutdown();
        anyhow::Ok(responses)
    })?;
    // The identity-signing chain went to its own file.
    let pem: String = responses
        .iter()
        .filter(|r| !r.state_key.is_empty())
        .map(|r| r.chain_pem.clone())
        .collect();
    match &args.out {
        Some(path) => govtrust_service::cadir::write_atomic(path, pem.as_bytes())?,
        None if !out.json => print!("{pem}"),
        None => {}
    }
    out.emit(&responses, || {
        responses
            .iter()
            .map(|r| {
                format!(
                    "enrolled: serial {} ({}), event {}",
                    r.serial,
                    r.state_key,
                    r.event_id.as_deref().unwrap_or("pending")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(ExitCode::SUCCESS)
}

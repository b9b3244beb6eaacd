//! `govtrust serve`, `config check`, `authority …`, `audit verify`,
//! `agency enroll`: the commands around the service.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::cli::{AgencyEnrollArgs, ConfigArgs, ImportArgs, ServeArgs};
use crate::output::Output;
use crate::service::api::AuthorityInput;
use crate::service::config::Config;
use crate::service::tasks::now_ms;
use crate::storage::{AuditEntry, AuthorityStatus, Store, StoreError};

/// Loads the configuration a command runs with.
pub fn load_config(args: &ConfigArgs) -> Result<Config> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    Ok(config)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
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
    runtime()?.block_on(crate::service::run(config))?;
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
        database: redact(&config.database_url()),
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

/// Hides a password in a database URL.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// One row's fate in an import.
#[derive(Serialize)]
struct RowError {
    row: usize,
    id: Option<String>,
    error: String,
}

#[derive(Serialize)]
struct ImportReport {
    rows: usize,
    created: usize,
    updated: usize,
    errors: Vec<RowError>,
}

/// Parses the import file into rows (each a result of its own).
fn read_rows(path: &Path, format: Option<&str>) -> Result<Vec<Result<AuthorityInput, String>>> {
    let format = format
        .map(str::to_ascii_lowercase)
        .or_else(|| {
            path.extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
        })
        .unwrap_or_default();
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    match format.as_str() {
        "json" => {
            let values: Vec<serde_json::Value> = serde_json::from_str(&text)
                .context("the JSON file must be an array of authorities")?;
            Ok(values
                .into_iter()
                .map(|v| serde_json::from_value::<AuthorityInput>(v).map_err(|e| e.to_string()))
                .collect())
        }
        "csv" => {
            let mut reader = csv::ReaderBuilder::new()
                .trim(csv::Trim::All)
                .from_reader(text.as_bytes());
            let headers = reader.headers()?.clone();
            const COLUMNS: [&str; 11] = [
                "id",
                "name",
                "unit",
                "street",
                "postal_code",
                "locality",
                "state",
                "country",
                "servers",
                "user_patterns",
                "contact",
            ];
            if let Some(unknown) = headers.iter().find(|h| !COLUMNS.contains(h)) {
                bail!(
                    "unknown CSV column {unknown:?}; columns are {}",
                    COLUMNS.join(",")
                );
            }
            Ok(reader
                .records()
                .map(|record| {
                    let record = record.map_err(|e| e.to_string())?;
                    let get = |name: &str| {
                        headers
                            .iter()
                            .position(|h| h == name)
                            .and_then(|i| record.get(i))
                            .filter(|v| !v.is_empty())
                            .map(str::to_owned)
                    };
                    let list = |name: &str| {
                        get(name)
                            .map(|v| {
                                v.split(';')
                                    .map(|s| s.trim().to_owned())
                                    .filter(|s| !s.is_empty())
                                    .collect()
                            })
                            .unwrap_or_default()
                    };
                    Ok(AuthorityInput {
                        record: govtrust_verifier::AuthorityRecord {
                            id: get("id").unwrap_or_default(),
                            name: get("name").unwrap_or_default(),
                            unit: get("unit"),
                            street: get("street"),
                            postal_code: get("postal_code"),
                            locality: get("locality"),
                            state: get("state"),
                            country: get("country"),
                        },
                        servers: list("servers"),
                        user_patterns: list("user_patterns"),
                        contact: get("contact"),
                    })
                })
                .collect())
        }
        other => bail!(
            "cannot tell the format of {} ({other:?}); use --format json or csv",
            path.display()
        ),
    }
}

/// `govtrust authority import FILE`
pub fn authority_import(args: &ImportArgs, out: Output) -> Result<ExitCode> {
    let config = load_config(&args.config)?;
    let rows = read_rows(&args.file, args.format.as_deref())?;
    let report = runtime()?.block_on(async {
        let store = Store::connect(&config.database_url()).await?;
        let progress = ProgressBar::new(rows.len() as u64);
        progress.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} authorities ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mut report = ImportReport {
            rows: rows.len(),
            created: 0,
            updated: 0,
            errors: Vec::new(),
        };
        for (index, row) in rows.into_iter().enumerate() {
            let row_no = index + 1;
            match import_row(&store, row).await {
                Ok(true) => report.created += 1,
                Ok(false) => report.updated += 1,
                Err((id, error)) => report.errors.push(RowError {
                    row: row_no,
                    id,
                    error,
                }),
            }
            progress.inc(1);
        }
        progress.finish_and_clear();
        anyhow::Ok(report)
    })?;
    out.emit(&report, || {
        let mut text = format!(
            "{} rows: {} created, {} updated, {} rejected\n",
            report.rows,
            report.created,
            report.updated,
            report.errors.len()
        );
        for e in &report.errors {
            text.push_str(&format!(
                "  row {}{}: {}\n",
                e.row,
                e.id.as_ref().map(|i| format!(" ({i})")).unwrap_or_default(),
                e.error
            ));
        }
        text
    });
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_FAILURE)
    })
}

/// Stores one row; `Ok(true)` created, `Ok(false)` updated.
async fn import_row(
    store: &Store,
    row: Result<AuthorityInput, String>,
) -> Result<bool, (Option<String>, String)> {
    let input = row.map_err(|e| (None, e))?;
    let id = input.record.id.clone();
    let fail = |e: String| (Some(id.clone()), e);
    let existing = store
        .get_authority(&id)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let authority = input
        .into_authority(
            existing
                .as_ref()
                .map_or(AuthorityStatus::Active, |a| a.status),
            existing.as_ref().map_or(now_ms(), |a| a.created_at),
        )
        .map_err(|e| fail(e.error))?;
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
        .map(crate::service::api::AuthorityView::from)
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
        let device = crate::matrix::Bot::connect(crate::matrix::MatrixConfig::new(
            args.homeserver.clone(),
            args.user.clone(),
            args.password.clone(),
            args.store.clone(),
        ))
        .await?;
        let service = crate::agency::ServiceClient::from_files(
            args.service.clone(),
            &args.service_root,
            &args.client_cert,
            &args.client_key,
        )?;
        let bot: matrix_sdk::ruma::OwnedUserId = args
            .service_bot
            .as_str()
            .try_into()
            .context("--service-bot")?;
        let mut responses =
            vec![crate::agency::enroll_device(device.client(), &service, bot.clone()).await?];
        if args.identity {
            responses.push(crate::agency::enroll_identity(device.client(), &service, bot).await?);
        }
        device.shutdown();
        anyhow::Ok(responses)
    })?;
    let pem: String = responses.iter().map(|r| r.chain_pem.clone()).collect();
    match &args.out {
        Some(path) => crate::cadir::write_atomic(path, pem.as_bytes())?,
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

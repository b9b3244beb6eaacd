//! `govtrust authority …` over the API: create, update, show, suspend,
//! activate, list and import authorities.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use govtrust_api::authority::AuthorityInput;
use govtrust_service::api::AuthorityView;

use super::{call, client, runtime};
use crate::cli::{AuthorityFileArgs, AuthorityIdArgs, AuthorityUpdateArgs, ImportArgs, ServerArgs};
use crate::cmd::service::{read_import_rows, ImportReport};
use crate::cmd::table::table;
use crate::output::Output;

fn read_input(path: &Path) -> Result<AuthorityInput> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not an authority ({{\"record\", \"servers\", \"user_patterns\", \"contact\"}})",
            path.display()
        )
    })
}

fn authority_text(a: &AuthorityView) -> String {
    let r = &a.record;
    let mut lines = vec![
        format!("id:            {}", r.id),
        format!("name:          {}", r.name),
    ];
    for (label, value) in [
        ("unit:          ", &r.unit),
        ("street:        ", &r.street),
        ("postal code:   ", &r.postal_code),
        ("locality:      ", &r.locality),
        ("state:         ", &r.state),
        ("country:       ", &r.country),
    ] {
        if let Some(v) = value {
            lines.push(format!("{label}{v}"));
        }
    }
    lines.push(format!("status:        {}", a.status));
    lines.push(format!("servers:       {}", a.servers.join(", ")));
    lines.push(format!("user patterns: {}", a.user_patterns.join(", ")));
    if let Some(c) = &a.contact {
        lines.push(format!("contact:       {c}"));
    }
    lines.join("\n")
}

/// The authority table of `authority list`.
pub fn authority_table(list: &[AuthorityView]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            vec![
                a.record.id.clone(),
                a.status.clone(),
                a.record.name.clone(),
                a.servers.join(","),
                a.user_patterns.join(","),
            ]
        })
        .collect();
    table(&["ID", "STATUS", "NAME", "SERVERS", "USER PATTERNS"], &rows)
}

/// `govtrust authority create FILE`
pub fn authority_create(args: &AuthorityFileArgs, out: Output) -> Result<ExitCode> {
    let input = read_input(&args.file)?;
    let created = call(
        &args.server,
        |c| async move { c.create_authority(&input).await },
    )?;
    out.emit(&created, || {
        format!("created\n{}", authority_text(&created))
    });
    Ok(ExitCode::SUCCESS)
}

/// `govtrust authority update ID FILE`
pub fn authority_update(args: &AuthorityUpdateArgs, out: Output) -> Result<ExitCode> {
    let input = read_input(&args.file)?;
    if input.record.id != args.id {
        bail!(
            "{} describes authority {}, not {}",
            args.file.display(),
            input.record.id,
            args.id
        );
    }
    let id = args.id.clone();
    let updated = call(&args.server, |c| async move {
        c.update_authority(&id, &input).await
    })?;
    out.emit(&updated, || {
        format!("updated\n{}", authority_text(&updated))
    });
    Ok(ExitCode::SUCCESS)
}

/// `govtrust authority show ID`
pub fn authority_show(args: &AuthorityIdArgs, out: Output) -> Result<ExitCode> {
    let id = args.id.clone();
    let a = call(&args.server, |c| async move { c.get_authority(&id).await })?;
    out.emit(&a, || authority_text(&a));
    Ok(ExitCode::SUCCESS)
}

/// `govtrust authority suspend ID`
pub fn authority_suspend(args: &AuthorityIdArgs, out: Output) -> Result<ExitCode> {
    let id = args.id.clone();
    let r = call(
        &args.server,
        |c| async move { c.suspend_authority(&id).await },
    )?;
    out.emit(&r, || {
        let mut text = format!(
            "suspended {}; {} certificate(s) revoked",
            r.id,
            r.revoked.len()
        );
        for serial in &r.revoked {
            text.push_str(&format!("\n  {serial}"));
        }
        text
    });
    Ok(ExitCode::SUCCESS)
}

/// `govtrust authority activate ID`
pub fn authority_activate(args: &AuthorityIdArgs, out: Output) -> Result<ExitCode> {
    let id = args.id.clone();
    let a = call(
        &args.server,
        |c| async move { c.activate_authority(&id).await },
    )?;
    out.emit(&a, || format!("activated\n{}", authority_text(&a)));
    Ok(ExitCode::SUCCESS)
}

/// `govtrust authority list --server …`
pub fn authority_list(server: &ServerArgs, out: Output) -> Result<ExitCode> {
    let list = call(server, |c| async move { c.list_all_authorities().await })?;
    out.emit(&list, || authority_table(&list));
    Ok(ExitCode::SUCCESS)
}

/// `govtrust authority import FILE --server …`: each row is created, or
/// updated when the ID exists (GT_CONFLICT), through the API.
pub fn authority_import(args: &ImportArgs, out: Output) -> Result<ExitCode> {
    use govtrust_api::import::RowError;
    let rows = read_import_rows(args)?;
    let client = client(&args.server)?;
    let report = runtime()?.block_on(async {
        let mut report = ImportReport::new(rows.len());
        for (index, row) in rows.into_iter().enumerate() {
            let authority = match row {
                Ok(a) => a,
                Err(e) => {
                    report.errors.push(e);
                    continue;
                }
            };
            let id = authority.record.id.clone();
            let input = AuthorityInput {
                record: authority.record,
                servers: authority.servers,
                user_patterns: authority.user_patterns,
                contact: authority.contact,
            };
            let fail = |error: String| RowError {
                row: index + 1,
                id: Some(id.clone()),
                error,
            };
            match client.create_authority(&input).await {
                Ok(_) => report.created += 1,
                Err(e) if e.errcode() == Some("GT_CONFLICT") => {
                    match client.update_authority(&id, &input).await {
                        Ok(_) => report.updated += 1,
                        Err(e) => report.errors.push(fail(e.to_string())),
                    }
                }
                Err(e) => report.errors.push(fail(e.to_string())),
            }
        }
        report
    });
    Ok(report.emit(out))
}

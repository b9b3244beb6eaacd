//! `govtrust audit …` over the API: read the audit log (paged) and have
//! the service recompute its hash chain.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use govtrust_service::api::AuditLogQuery;
use govtrust_service::clock::now_ms;
use serde::Serialize;

use super::call;
use crate::cli::{AuditLogArgs, ServerArgs};
use crate::cmd::table::{parse_time, table, time};
use crate::output::Output;

/// `govtrust audit log`
pub fn audit_log(args: &AuditLogArgs, out: Output) -> Result<ExitCode> {
    if !(1..=1000).contains(&args.limit) {
        bail!("--limit must be 1 to 1000");
    }
    let since = args
        .since
        .as_deref()
        .map(|t| parse_time(t, now_ms()))
        .transpose()
        .context("--since")?;
    let mut query = AuditLogQuery {
        since,
        limit: Some(args.limit),
        cursor: args.cursor.clone(),
    };
    let all = args.all;
    let (entries, next) = call(&args.server, |c| async move {
        let mut entries = Vec::new();
        loop {
            let page = c.audit_log(&query).await?;
            entries.extend(page.entries);
            match page.next_cursor {
                Some(next) if all => query.cursor = Some(next),
                next => return Ok((entries, next)),
            }
        }
    })?;
    #[derive(Serialize)]
    struct Log<'a> {
        entries: &'a [govtrust_service::api::AuditRecordView],
        next_cursor: &'a Option<String>,
    }
    out.emit(
        &Log {
            entries: &entries,
            next_cursor: &next,
        },
        || {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    vec![
                        e.seq.to_string(),
                        time(e.at),
                        e.actor.clone(),
                        e.action.clone(),
                        e.subject.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            let mut text = table(&["SEQ", "AT", "ACTOR", "ACTION", "SUBJECT"], &rows);
            if let Some(next) = &next {
                text.push_str(&format!("\nmore: --cursor {next} (or --all)"));
            }
            text
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// `govtrust audit verify --server …`
pub fn audit_verify(server: &ServerArgs, out: Output) -> Result<ExitCode> {
    let report = call(server, |c| async move { c.audit_verify().await })?;
    let ok = report.first_broken.is_none();
    out.emit(&report, || match ok {
        true => format!(
            "audit chain intact: {} entries, head {} ({})",
            report.entries, report.head_seq, report.head_hash
        ),
        false => format!(
            "AUDIT CHAIN BROKEN at entry {}: {}",
            report.first_broken.unwrap_or_default(),
            report.reason.as_deref().unwrap_or("")
        ),
    });
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::cmd::EXIT_FAILURE)
    })
}

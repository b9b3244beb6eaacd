//! `govtrust audit …` over the API: read the audit log (paged) and have
//! the service recompute its hash chain.

use std::process::ExitCode;

use anyhow::{Context, Result};
use govtrust_service::api::AuditLogQuery;
use govtrust_service::clock::now_ms;
use serde::Serialize;

use super::{call, page_limit, pages};
use crate::cli::{AuditLogArgs, ServerArgs};
use crate::cmd::table::{parse_time, table, time};
use crate::output::Output;

/// `govtrust audit log`
pub fn audit_log(args: &AuditLogArgs, out: Output) -> Result<ExitCode> {
    let limit = page_limit(&args.page)?;
    let since = args
        .since
        .as_deref()
        .map(|t| parse_time(t, now_ms()))
        .transpose()
        .context("--since")?;
    let (entries, next) = call(&args.server, |c| async move {
        pages(args.page.all, args.page.cursor.clone(), |cursor| {
            let query = AuditLogQuery {
                since,
                limit: Some(limit),
                cursor,
            };
            let c = &c;
            async move {
                let page = c.audit_log(&query).await?;
                Ok((page.entries, page.next_cursor))
            }
        })
        .await
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

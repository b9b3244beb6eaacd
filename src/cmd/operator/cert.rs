//! `govtrust cert …` over the API: list (filtered, paged), show and revoke
//! issued certificates.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use govtrust_service::api::{CertificateListQuery, CertificateView};
use govtrust_service::clock::now_ms;
use serde::Serialize;

use super::{call, page_limit, pages};
use crate::cli::{CertListArgs, CertRevokeArgs, CertShowArgs};
use crate::cmd::table::{opt_time, parse_time, table, time};
use crate::output::Output;

/// `govtrust cert list`
pub fn cert_list(args: &CertListArgs, out: Output) -> Result<ExitCode> {
    let limit = page_limit(&args.page)?;
    if let Some(s) = &args.status {
        if !["live", "revoked", "expired", "superseded"].contains(&s.as_str()) {
            bail!("--status must be live, revoked, expired or superseded, not {s:?}");
        }
    }
    let expiring_before = args
        .expiring_before
        .as_deref()
        .map(|t| parse_time(t, now_ms()))
        .transpose()
        .context("--expiring-before")?;
    let (items, next) = call(&args.server, |c| async move {
        pages(args.page.all, args.page.cursor.clone(), |cursor| {
            let query = CertificateListQuery {
                authority: args.authority.clone(),
                user: args.user.clone(),
                status: args.status.clone(),
                expiring_before,
                limit: Some(limit),
                cursor,
            };
            let c = &c;
            async move {
                let page = c.list_certificates(&query).await?;
                Ok((page.items, page.next_cursor))
            }
        })
        .await
    })?;
    #[derive(Serialize)]
    struct Listing<'a> {
        items: &'a [govtrust_service::api::CertificateSummary],
        next_cursor: &'a Option<String>,
    }
    out.emit(
        &Listing {
            items: &items,
            next_cursor: &next,
        },
        || {
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|c| {
                    vec![
                        c.serial.clone(),
                        c.kind.clone(),
                        c.state.clone(),
                        c.authority_id.clone(),
                        c.user_id.clone().unwrap_or_else(|| "-".into()),
                        c.device_id.clone().unwrap_or_else(|| "-".into()),
                        time(c.issued_at),
                        time(c.not_after),
                    ]
                })
                .collect();
            let mut text = table(
                &[
                    "SERIAL",
                    "KIND",
                    "STATE",
                    "AUTHORITY",
                    "USER",
                    "DEVICE",
                    "ISSUED",
                    "NOT AFTER",
                ],
                &rows,
            );
            if let Some(next) = &next {
                text.push_str(&format!("\nmore: --cursor {next} (or --all)"));
            }
            text
        },
    );
    Ok(ExitCode::SUCCESS)
}

fn certificate_text(c: &CertificateView) -> String {
    let mut lines = vec![
        format!("serial:     {}", c.serial),
        format!("kind:       {}", c.kind),
        format!(
            "state:      {} (stored status {})",
            c.state.as_deref().unwrap_or("-"),
            c.status
        ),
        format!("authority:  {}", c.authority_id),
    ];
    if let Some(u) = &c.user_id {
        lines.push(format!("user:       {u}"));
    }
    if let Some(d) = &c.device_id {
        lines.push(format!("device:     {d}"));
    }
    lines.push(format!("key:        {}", c.key));
    if let Some(ca) = &c.issuing_ca {
        lines.push(format!("issuing CA: {ca}"));
    }
    lines.push(format!("issued:     {}", opt_time(c.issued_at)));
    lines.push(format!("not before: {}", time(c.not_before)));
    lines.push(format!("not after:  {}", time(c.not_after)));
    lines.join("\n")
}

/// `govtrust cert show SERIAL`
pub fn cert_show(args: &CertShowArgs, out: Output) -> Result<ExitCode> {
    let serial = args.serial.clone();
    let cert = call(
        &args.server,
        |c| async move { c.get_certificate(&serial).await },
    )?;
    if args.pem && !out.json {
        print!("{}", cert.chain_pem);
        return Ok(ExitCode::SUCCESS);
    }
    out.emit(&cert, || certificate_text(&cert));
    Ok(ExitCode::SUCCESS)
}

/// `govtrust cert revoke SERIAL`
pub fn cert_revoke(args: &CertRevokeArgs, out: Output) -> Result<ExitCode> {
    let serial = args.serial.clone();
    let reason = args.reason.clone();
    let r = call(&args.server, |c| async move {
        c.revoke_certificate(&serial, reason.as_deref()).await
    })?;
    out.emit(&r, || match r.revoked_now {
        true => format!("revoked {}", r.serial),
        false => format!(
            "{} was already revoked (the first reason and time stand)",
            r.serial
        ),
    });
    Ok(ExitCode::SUCCESS)
}

//! The operator commands over the service's API: `authority`, `cert`,
//! `enrollment-client`, `token`, `audit log` (and `authority list|import`,
//! `audit verify` when a server is given). The HTTP client is
//! `govtrust_service::operator_client`; this module parses, calls, prints.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use govtrust_api::authority::AuthorityInput;
use govtrust_service::api::{
    AuditLogQuery, AuthorityView, CertificateListQuery, CertificateView, CreateTokenRequest,
    EnrollmentClientRequest, IssuedToken, TokenView,
};
use govtrust_service::clock::now_ms;
use govtrust_service::operator_client::OperatorClient;
use serde::Serialize;

use super::table::{opt_time, parse_time, table, time};
use crate::cli::{
    AuditLogArgs, AuthorityFileArgs, AuthorityIdArgs, AuthorityUpdateArgs, CertListArgs,
    CertRevokeArgs, CertShowArgs, ConfigArgs, EnrollmentClientIssueArgs, ImportArgs, ServerArgs,
    TokenCreateArgs, TokenListArgs, TokenNameArgs, TokenSecretArgs,
};
use crate::output::Output;

/// Whether a command that can also open the database directly should use
/// the API: a server is given and neither --config nor --data-dir is.
pub fn use_api(server: &ServerArgs, config: &ConfigArgs) -> bool {
    server.server.is_some() && config.config.is_none() && config.data_dir.is_none()
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The client the connection arguments describe.
fn client(args: &ServerArgs) -> Result<OperatorClient> {
    let server = args
        .server
        .clone()
        .context("no service: pass --server URL (or set GOVTRUST_SERVER)")?;
    let token_file = args
        .token_file
        .as_deref()
        .context("no operator token: pass --token-file FILE (or set GOVTRUST_TOKEN_FILE)")?;
    Ok(OperatorClient::from_files(
        server,
        args.ca_file.as_deref(),
        token_file,
    )?)
}

/// Runs one call against the service.
fn call<T, F>(args: &ServerArgs, f: impl FnOnce(OperatorClient) -> F) -> Result<T>
where
    F: std::future::Future<
        Output = Result<T, govtrust_service::operator_client::OperatorClientError>,
    >,
{
    let client = client(args)?;
    Ok(runtime()?.block_on(f(client))?)
}

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

#[derive(Serialize)]
struct ImportReport {
    rows: usize,
    created: usize,
    updated: usize,
    errors: Vec<govtrust_api::import::RowError>,
}

/// `govtrust authority import FILE --server …`: each row is created, or
/// updated when the ID exists (GT_CONFLICT), through the API.
pub fn authority_import(args: &ImportArgs, out: Output) -> Result<ExitCode> {
    use govtrust_api::import::{self as import, RowError};
    let format = import::Format::detect(&args.file, args.format.as_deref())?;
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let rows =
        import::parse(&bytes, format, now_ms()).with_context(|| args.file.display().to_string())?;
    let client = client(&args.server)?;
    let report = runtime()?.block_on(async {
        let mut report = ImportReport {
            rows: rows.len(),
            created: 0,
            updated: 0,
            errors: Vec::new(),
        };
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

// ----- certificates --------------------------------------------------------

/// `govtrust cert list`
pub fn cert_list(args: &CertListArgs, out: Output) -> Result<ExitCode> {
    if !(1..=1000).contains(&args.limit) {
        bail!("--limit must be 1 to 1000");
    }
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
    let mut query = CertificateListQuery {
        authority: args.authority.clone(),
        user: args.user.clone(),
        status: args.status.clone(),
        expiring_before,
        limit: Some(args.limit),
        cursor: args.cursor.clone(),
    };
    let all = args.all;
    let (items, next) = call(&args.server, |c| async move {
        let mut items = Vec::new();
        loop {
            let page = c.list_certificates(&query).await?;
            items.extend(page.items);
            match page.next_cursor {
                Some(next) if all => query.cursor = Some(next),
                next => return Ok((items, next)),
            }
        }
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

// ----- enrollment clients --------------------------------------------------

/// `govtrust enrollment-client issue AUTHORITY --public-key FILE`
pub fn enrollment_client_issue(args: &EnrollmentClientIssueArgs, out: Output) -> Result<ExitCode> {
    let public_key_pem = std::fs::read_to_string(&args.public_key)
        .with_context(|| format!("reading {}", args.public_key.display()))?;
    if !public_key_pem.contains("-----BEGIN PUBLIC KEY-----") {
        bail!(
            "{} is not a PEM public key (openssl pkey -in KEY -pubout)",
            args.public_key.display()
        );
    }
    let request = EnrollmentClientRequest {
        public_key_pem,
        lifetime_days: args.days,
    };
    let authority = args.authority.clone();
    let issued = call(&args.server, |c| async move {
        c.issue_enrollment_client(&authority, &request).await
    })?;
    match &args.out {
        Some(path) => govtrust_service::cadir::write_atomic(path, issued.chain_pem.as_bytes())?,
        None if !out.json => print!("{}", issued.chain_pem),
        None => {}
    }
    if args.out.is_some() || out.json {
        out.emit(&issued, || {
            format!(
                "issued enrollment client {} for {}, valid until {}{}",
                issued.serial,
                args.authority,
                issued.not_after,
                args.out
                    .as_ref()
                    .map(|p| format!("; chain written to {}", p.display()))
                    .unwrap_or_default()
            )
        });
    } else {
        eprintln!(
            "issued enrollment client {} for {}, valid until {}",
            issued.serial, args.authority, issued.not_after
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `govtrust enrollment-client revoke SERIAL`: refuses a serial that is
/// not an enrollment client.
pub fn enrollment_client_revoke(args: &CertRevokeArgs, out: Output) -> Result<ExitCode> {
    let serial = args.serial.clone();
    let reason = args.reason.clone();
    let r = call(&args.server, |c| async move {
        let cert = c.get_certificate(&serial).await?;
        if cert.kind != "enrollment_client" {
            return Err(
                govtrust_service::operator_client::OperatorClientError::Config(format!(
                "{serial} is a {} certificate, not an enrollment client (use govtrust cert revoke)",
                cert.kind
            )),
            );
        }
        c.revoke_certificate(&serial, reason.as_deref()).await
    })?;
    out.emit(&r, || match r.revoked_now {
        true => format!(
            "revoked enrollment client {}; the agency is refused from its next request",
            r.serial
        ),
        false => format!("{} was already revoked", r.serial),
    });
    Ok(ExitCode::SUCCESS)
}

// ----- tokens --------------------------------------------------------------

fn token_text(t: &TokenView) -> String {
    format!(
        "token {} ({}), {}, created {}, expires {}",
        t.name,
        t.roles.join(","),
        t.state,
        time(t.created_at),
        opt_time(t.expires_at)
    )
}

/// Writes a secret to `path` with mode 0600 (replacing the file), or
/// prints it.
fn deliver_secret(issued: &IssuedToken, path: Option<&Path>, out: Output) -> Result<()> {
    match path {
        Some(path) => {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(path)
                .with_context(|| format!("writing {}", path.display()))?;
            std::io::Write::write_all(&mut file, format!("{}\n", issued.secret).as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            #[derive(Serialize)]
            struct Written<'a> {
                token: &'a TokenView,
                secret_file: String,
            }
            out.emit(
                &Written {
                    token: &issued.token,
                    secret_file: path.display().to_string(),
                },
                || {
                    format!(
                        "{}\nsecret written to {}",
                        token_text(&issued.token),
                        path.display()
                    )
                },
            );
        }
        None => out.emit(issued, || {
            format!(
                "{}\nsecret (shown once; store it now):\n{}",
                token_text(&issued.token),
                issued.secret
            )
        }),
    }
    Ok(())
}

/// `govtrust token create NAME --role …`
pub fn token_create(args: &TokenCreateArgs, out: Output) -> Result<ExitCode> {
    let expires_at = match args.expires_in_days {
        None => None,
        Some(0) => bail!("--expires-in-days must be at least 1"),
        Some(days) => Some(now_ms() + i64::from(days) * 86_400_000),
    };
    let request = CreateTokenRequest {
        name: args.name.clone(),
        roles: args.roles.clone(),
        expires_at,
    };
    let issued = call(
        &args.server,
        |c| async move { c.create_token(&request).await },
    )?;
    deliver_secret(&issued, args.out.as_deref(), out)?;
    Ok(ExitCode::SUCCESS)
}

/// `govtrust token list`
pub fn token_list(args: &TokenListArgs, out: Output) -> Result<ExitCode> {
    let tokens = call(&args.server, |c| async move { c.list_tokens().await })?;
    out.emit(&tokens, || {
        let rows: Vec<Vec<String>> = tokens
            .iter()
            .map(|t| {
                vec![
                    t.name.clone(),
                    t.roles.join(","),
                    t.state.clone(),
                    time(t.created_at),
                    opt_time(t.expires_at),
                    opt_time(t.rotated_at),
                ]
            })
            .collect();
        table(
            &["NAME", "ROLES", "STATE", "CREATED", "EXPIRES", "ROTATED"],
            &rows,
        )
    });
    Ok(ExitCode::SUCCESS)
}

/// `govtrust token rotate NAME`
pub fn token_rotate(args: &TokenSecretArgs, out: Output) -> Result<ExitCode> {
    let name = args.name.clone();
    let issued = call(&args.server, |c| async move { c.rotate_token(&name).await })?;
    deliver_secret(&issued, args.out.as_deref(), out)?;
    Ok(ExitCode::SUCCESS)
}

/// `govtrust token revoke NAME`
pub fn token_revoke(args: &TokenNameArgs, out: Output) -> Result<ExitCode> {
    let name = args.name.clone();
    let t = call(&args.server, |c| async move { c.revoke_token(&name).await })?;
    out.emit(&t, || token_text(&t));
    Ok(ExitCode::SUCCESS)
}

// ----- audit ---------------------------------------------------------------

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
        ExitCode::from(super::EXIT_FAILURE)
    })
}

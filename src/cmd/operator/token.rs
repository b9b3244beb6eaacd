//! `govtrust token …` over the API: create, list, rotate and revoke
//! operator tokens; a new secret is shown once or written mode 0600.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use govtrust_service::api::{CreateTokenRequest, IssuedToken, TokenView};
use govtrust_service::clock::now_ms;
use serde::Serialize;

use super::call;
use crate::cli::{TokenCreateArgs, TokenListArgs, TokenNameArgs, TokenSecretArgs};
use crate::cmd::table::{opt_time, table, time};
use crate::output::Output;

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

//! The operator commands over the service's API: `authority`, `cert`,
//! `enrollment-client`, `token`, `audit log` (and `authority list|import`,
//! `audit verify` when a server is given). The HTTP client is
//! `govtrust_service::operator_client`; these modules parse, call, print —
//! one per command group. This one holds what they share: how a command
//! reaches the service.

mod audit;
mod authority;
mod cert;
mod enrollment_client;
mod token;

use anyhow::{bail, Context, Result};
use govtrust_service::operator_client::{OperatorClient, OperatorClientError};

pub use audit::{audit_log, audit_verify};
pub use authority::{
    authority_activate, authority_create, authority_import, authority_list, authority_show,
    authority_suspend, authority_update,
};
pub use cert::{cert_list, cert_revoke, cert_show};
pub use enrollment_client::{enrollment_client_issue, enrollment_client_revoke};
pub use token::{token_create, token_list, token_revoke, token_rotate};

use crate::cli::{ConfigArgs, PageArgs, ServerArgs};

/// Whether a command that can also open the database directly should use
/// the API: a server is given and neither --config nor --data-dir is.
pub fn use_api(server: &ServerArgs, config: &ConfigArgs) -> bool {
    server.server.is_some() && config.config.is_none() && config.data_dir.is_none()
}

/// The page size of --limit, checked (1 to 1000).
fn page_limit(page: &PageArgs) -> Result<u32> {
    if !(1..=1000).contains(&page.limit) {
        bail!("--limit must be 1 to 1000");
    }
    Ok(page.limit)
}

/// The page `fetch` returns from `cursor` or, with `all`, that page and
/// every one after it: the items and the cursor of the page after them.
async fn pages<T, Fut>(
    all: bool,
    mut cursor: Option<String>,
    mut fetch: impl FnMut(Option<String>) -> Fut,
) -> Result<(Vec<T>, Option<String>), OperatorClientError>
where
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<String>), OperatorClientError>>,
{
    let mut items = Vec::new();
    loop {
        let (page, next) = fetch(cursor.take()).await?;
        items.extend(page);
        match next {
            Some(next) if all => cursor = Some(next),
            next => return Ok((items, next)),
        }
    }
}

/// A current-thread runtime for one command's calls.
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

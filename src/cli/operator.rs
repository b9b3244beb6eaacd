//! How an operator command reaches the service over its API: `--server`,
//! `--token-file`, `--ca-file` and the help text every operator command
//! group ends with.

use std::path::PathBuf;

use clap::Args;

/// How an operator command reaches the service.
pub(super) const OPERATOR_HELP: &str = "\
Connecting to the service:
  --server URL        the service, e.g. https://govtrust.example:7443 (env GOVTRUST_SERVER)
  --token-file FILE   the operator token, e.g. <data dir>/operator-token (env GOVTRUST_TOKEN_FILE)
  --ca-file FILE      the root the service's TLS certificate chains to (env GOVTRUST_CA_FILE)

The token's roles decide what it may do: admin (everything), registrar
(authorities, enrollment clients), revoker (read and revoke certificates),
auditor (read certificates, authorities and the audit log). A refused
command exits 1 with the service's errcode, e.g. GT_FORBIDDEN.

--json prints the API's JSON instead of tables.

Example session:
  export GOVTRUST_SERVER=https://127.0.0.1:7443
  export GOVTRUST_TOKEN_FILE=data/operator-token GOVTRUST_CA_FILE=data/ca/root/cert.pem
  govtrust authority create authority.json
  govtrust enrollment-client issue DE-BE-11000000-BA-NK --public-key agency.pub.pem --out agency.chain.pem
  govtrust cert list --authority DE-BE-11000000-BA-NK --status live
  govtrust token create night-shift --role revoker --expires-in-days 30 --out night-shift.token
  govtrust audit log --since now-1d";

/// Paging of a listing over the API.
#[derive(Debug, Args)]
pub struct PageArgs {
    /// Page size (1–1000).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Continue after this cursor (printed by the previous page).
    #[arg(long)]
    pub cursor: Option<String>,
    /// Follow every page.
    #[arg(long)]
    pub all: bool,
}

/// Where an operator command sends its requests.
#[derive(Debug, Args, Clone, Default)]
pub struct ServerArgs {
    /// The service's URL, e.g. https://govtrust.example:7443.
    #[arg(long, env = "GOVTRUST_SERVER", value_name = "URL")]
    pub server: Option<url::Url>,
    /// File holding the operator token (the first one is
    /// <data dir>/operator-token).
    #[arg(long, env = "GOVTRUST_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The root certificate (PEM) the service's TLS certificate chains to.
    #[arg(long, env = "GOVTRUST_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

//! `[matrix]`: the homeserver and bot account the service publishes
//! attestations with; without it publishing is off.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The service's Matrix bot.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixConfig {
    /// Client-server API base URL.
    pub homeserver_url: url::Url,
    /// The bot's full user ID.
    pub user_id: String,
    /// The bot's password (prefer `GOVTRUST_MATRIX_PASSWORD`).
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    /// Alias localpart of the directory room.
    #[serde(default = "default_alias")]
    pub directory_alias: String,
}

pub(super) fn default_alias() -> String {
    "govtrust-directory".into()
}

impl MatrixConfig {
    /// Checks the user ID and that a password is there.
    pub(super) fn validate(&self) -> Result<()> {
        govtrust_verifier::UserId::parse(&self.user_id)
            .with_context(|| format!("matrix.user_id {:?}", self.user_id))?;
        if self.password.is_none() {
            bail!("matrix.password (or GOVTRUST_MATRIX_PASSWORD) is required with a homeserver");
        }
        Ok(())
    }
}

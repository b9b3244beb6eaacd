//! Creating pseudonymous accounts through Synapse's admin API:
//! `PUT /_synapse/admin/v2/users/<user_id>` creates the user or leaves an
//! existing one as it is, so repeating it for the same pseudonym is
//! harmless. No display name, e-mail or password is set: the account
//! carries nothing but the pseudonym.

use anyhow::{anyhow, Result};
use govtrust_verifier::UserId;
use zeroize::Zeroizing;

use crate::error::ApiError;

/// A client for the admin API with an admin access token.
pub struct SynapseAdmin {
    base: url::Url,
    token: Zeroizing<String>,
    http: reqwest::Client,
}

impl SynapseAdmin {
    /// A client for the homeserver at `base`.
    pub fn new(base: url::Url, token: String) -> Result<Self> {
        if token.is_empty() {
            return Err(anyhow!("the homeserver admin token is empty"));
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        Ok(SynapseAdmin {
            base,
            token: Zeroizing::new(token),
            http,
        })
    }

    /// Ensures `user` exists (and is not deactivated); `true` if it was
    /// created now.
    pub async fn ensure_user(&self, user: &UserId) -> Result<bool, ApiError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| ApiError::internal("homeserver admin URL cannot be a base"))?
            .pop_if_empty()
            .extend(["_synapse", "admin", "v2", "users", user.as_str()]);
        let response = self
            .http
            .put(url)
            .bearer_auth(self.token.as_str())
            .json(&serde_json::json!({ "deactivated": false }))
            .send()
            .await
            .map_err(|e| ApiError::homeserver_unavailable(format!("homeserver admin API: {e}")))?;
        match response.status().as_u16() {
            201 => Ok(true),
            200 => Ok(false),
            status => Err(ApiError::homeserver_unavailable(format!(
                "homeserver admin API answered {status} for the pseudonymous account"
            ))),
        }
    }
}

//! The agency side of enrollment, for a device driven by matrix-sdk 0.18:
//! request the challenge over mTLS, receive it on the device as an
//! Olm-encrypted to-device message, answer it.
//!
//! ```no_run
//! # async fn example(client: matrix_sdk::Client, service: govtrust::agency::ServiceClient) -> anyhow::Result<()> {
//! let bot = "@govtrust:id.bund.example".try_into()?;
//! let enrolled = govtrust::agency::enroll_device(&client, &service, bot).await?;
//! println!("{}", enrolled.chain_pem);
//! # Ok(()) }
//! ```

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use matrix_sdk::ruma::OwnedUserId;
use matrix_sdk::Client;

pub mod sealed;

use crate::error::ErrorBody;
use crate::matrix::ChallengeReceiver;
use govtrust_api::enrollment::{
    ChallengeRequest, ChallengeResponse, EnrollRequest, EnrollResponse, Kind, Proof,
};

/// How long to wait for the challenge to arrive on the device.
const CHALLENGE_TIMEOUT: Duration = Duration::from_secs(60);

/// An HTTPS client of the service, authenticated by the agency's
/// enrollment-client certificate.
#[derive(Clone, Debug)]
pub struct ServiceClient {
    base: url::Url,
    http: reqwest::Client,
}

impl ServiceClient {
    /// Builds a client: `root_pem` is the root the service's TLS certificate
    /// chains to; `identity_pem` holds the client certificate chain and its
    /// PKCS#8 key.
    pub fn new(base: url::Url, root_pem: &[u8], identity_pem: &[u8]) -> Result<Self> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(root_pem).context("service root")?)
            .identity(
                reqwest::Identity::from_pem(identity_pem).context("client certificate and key")?,
            )
            .timeout(Duration::from_secs(30))
            // One request at a time per connection: HTTP/2's framing, header
            // compression and flow control buy nothing here and cost CPU
            // on both ends (the enrollment load bench ran ~10% faster on
            // HTTP/1.1 keep-alive).
            .http1_only()
            .build()?;
        Ok(ServiceClient { base, http })
    }

    /// Reads the root and the client certificate and key from files.
    pub fn from_files(base: url::Url, root: &Path, cert: &Path, key: &Path) -> Result<Self> {
        let root = std::fs::read(root).with_context(|| format!("reading {}", root.display()))?;
        let mut identity =
            std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
        identity.extend(std::fs::read(key).with_context(|| format!("reading {}", key.display()))?);
        ServiceClient::new(base, &root, &identity)
    }

    async fn post<Req: serde::Serialize, Res: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Req,
    ) -> Result<Res> {
        let response = self
            .http
            .post(self.base.join(path)?)
            .json(body)
            .send()
            .await?;
        if response.status().is_success() {
            return Ok(response.json().await?);
        }
        let status = response.status();
        match response.json::<ErrorBody>().await {
            Ok(e) => bail!("{} ({status}): {}", e.errcode, e.error),
            Err(_) => bail!("the service answered {status}"),
        }
    }

    /// `POST /v1/enrollment/challenge`
    pub async fn challenge(&self, request: &ChallengeRequest) -> Result<ChallengeResponse> {
        self.post("v1/enrollment/challenge", request).await
    }

    /// `POST /v1/enrollment`
    pub async fn enroll(&self, request: &EnrollRequest) -> Result<EnrollResponse> {
        self.post("v1/enrollment", request).await
    }
}

/// Enrolls the logged-in device of `client` (device attestation).
pub async fn enroll_device(
    client: &Client,
    service: &ServiceClient,
    bot: OwnedUserId,
) -> Result<EnrollResponse> {
    enroll(client, service, bot, Kind::Device).await
}

/// Enrolls the user's cross-signing master key, proven through this
/// device (which the user's self-signing key must have signed).
pub async fn enroll_identity(
    client: &Client,
    service: &ServiceClient,
    bot: OwnedUserId,
) -> Result<EnrollResponse> {
    enroll(client, service, bot, Kind::Identity).await
}

async fn enroll(
    client: &Client,
    service: &ServiceClient,
    bot: OwnedUserId,
    kind: Kind,
) -> Result<EnrollResponse> {
    let user = client
        .user_id()
        .context("the Matrix client is not logged in")?
        .to_string();
    let device = client
        .device_id()
        .context("the Matrix client has no device")?
        .to_string();
    let encryption = client.encryption();
    let key = match kind {
        Kind::Device => encryption
            .ed25519_key()
            .await
            .context("the device has no Ed25519 key")?,
        Kind::Identity => encryption
            .get_user_identity(client.user_id().context("not logged in")?)
            .await?
            .and_then(|identity| identity.master_key().get_first_key().map(|k| k.to_base64()))
            .context("the user has no cross-signing master key; bootstrap cross-signing first")?,
    };
    let receiver = ChallengeReceiver::install(client, bot);
    // The service sends the challenge while answering this request; the
    // sync loop (which the caller runs) delivers it to the receiver.
    service
        .challenge(&ChallengeRequest {
            kind,
            user_id: user.clone(),
            device_id: device.clone(),
            proof: Proof::ToDevice,
        })
        .await?;
    let secret = receiver.next(CHALLENGE_TIMEOUT).await?;
    service
        .enroll(&EnrollRequest {
            kind,
            user_id: user,
            device_id: device,
            key,
            challenge: secret,
            signature: None,
            wait_for_event_ms: None,
        })
        .await
}

//! The citizen's side of the pseudonym endpoints, for a device driven by
//! matrix-sdk 0.18: get the pseudonymous account, then enroll its device
//! for a citizen attestation (kind `citizen`) with a to-device challenge.
//!
//! The citizen authenticates every request with an identity-provider
//! assertion, not a client certificate; the service's TLS certificate is
//! checked against the pinned government root.
//!
//! ```no_run
//! # async fn example(client: matrix_sdk::Client, assertion: String) -> anyhow::Result<()> {
//! use govtrust_service::pseudonym::client::{enroll_citizen_device, CitizenServiceClient};
//! let root = std::fs::read("root.pem")?;
//! let service = CitizenServiceClient::new("https://govtrust.example".parse()?, &root)?;
//! let bot = "@govtrust:id.bund.example".try_into()?;
//! let enrolled =
//!     enroll_citizen_device(&client, &service, bot, &assertion, "DE-BE-11000000-BA-NK").await?;
//! println!("{}", enrolled.chain_pem);
//! # Ok(()) }
//! ```

use anyhow::{bail, Context, Result};
use govtrust_api::enrollment::{
    ChallengeResponse, CitizenChallengeRequest, CitizenEnrollRequest, EnrollResponse, Proof,
};
use matrix_sdk::ruma::OwnedUserId;
use matrix_sdk::Client;

use crate::agency::{logged_in_device, pinned_client, post_json, to_device_challenge};
use govtrust_api::pseudonym::{PseudonymRequest, PseudonymResponse};

/// An HTTPS client of the service's citizen endpoints (no client
/// certificate).
#[derive(Clone, Debug)]
pub struct CitizenServiceClient {
    base: url::Url,
    http: reqwest::Client,
}

/// A refusal by the service: the HTTP status and the error body.
#[derive(Debug, thiserror::Error)]
#[error("{errcode} ({status}): {error}")]
pub struct Refused {
    /// The HTTP status.
    pub status: u16,
    /// The `GT_…` code.
    pub errcode: String,
    /// The explanation.
    pub error: String,
}

impl CitizenServiceClient {
    /// A client of the service at `base` whose TLS certificate chains to
    /// `root_pem`.
    pub fn new(base: url::Url, root_pem: &[u8]) -> Result<Self> {
        let http = pinned_client(root_pem)?.build()?;
        Ok(CitizenServiceClient { base, http })
    }

    async fn post<Req: serde::Serialize, Res: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Req,
    ) -> Result<Res> {
        match post_json(&self.http, &self.base, path, body).await? {
            Ok(answer) => Ok(answer),
            Err((status, Some(e))) => Err(Refused {
                status: status.as_u16(),
                errcode: e.errcode,
                error: e.error,
            }
            .into()),
            Err((status, None)) => bail!("the service answered {status}"),
        }
    }

    /// `POST /v1/pseudonyms`
    pub async fn pseudonym(&self, request: &PseudonymRequest) -> Result<PseudonymResponse> {
        self.post("v1/pseudonyms", request).await
    }

    /// `POST /v1/pseudonyms/enrollment/challenge`
    pub async fn challenge(&self, request: &CitizenChallengeRequest) -> Result<ChallengeResponse> {
        self.post("v1/pseudonyms/enrollment/challenge", request)
            .await
    }

    /// `POST /v1/pseudonyms/enrollment`
    pub async fn enroll(&self, request: &CitizenEnrollRequest) -> Result<EnrollResponse> {
        self.post("v1/pseudonyms/enrollment", request).await
    }
}

/// Enrolls the logged-in device of `client` — which must be logged in as
/// the citizen's pseudonym for `authority_id` — for a citizen attestation:
/// the challenge arrives as an Olm-encrypted to-device message from `bot`
/// (the client must be syncing), the answer returns the chain. The same
/// `assertion` authenticates both steps; an identity provider whose
/// assertions are single-use needs one per step (call
/// [`CitizenServiceClient::challenge`] and [`CitizenServiceClient::enroll`]
/// directly).
pub async fn enroll_citizen_device(
    client: &Client,
    service: &CitizenServiceClient,
    bot: OwnedUserId,
    assertion: &str,
    authority_id: &str,
) -> Result<EnrollResponse> {
    let (user, device) = logged_in_device(client)?;
    let key = client
        .encryption()
        .ed25519_key()
        .await
        .context("the device has no Ed25519 key")?;
    let secret = to_device_challenge(
        client,
        bot,
        service.challenge(&CitizenChallengeRequest {
            assertion: assertion.to_owned(),
            authority_id: authority_id.to_owned(),
            user_id: user.clone(),
            device_id: device.clone(),
            proof: Proof::ToDevice,
        }),
    )
    .await?;
    service
        .enroll(&CitizenEnrollRequest {
            assertion: assertion.to_owned(),
            authority_id: authority_id.to_owned(),
            user_id: user,
            device_id: device,
            key,
            challenge: secret,
            signature: None,
        })
        .await
}

//! The agency side of enrollment, for a device driven by matrix-sdk 0.18:
//! request the challenge over mTLS, receive it on the device as an
//! Olm-encrypted to-device message, answer it.
//!
//! ```no_run
//! # async fn example(client: matrix_sdk::Client, service: govtrust_service::agency::ServiceClient) -> anyhow::Result<()> {
//! let bot = "@govtrust:id.bund.example".try_into()?;
//! let enrolled = govtrust_service::agency::enroll_device(&client, &service, bot).await?;
//! println!("{}", enrolled.chain_pem);
//! # Ok(()) }
//! ```

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use govtrust_pki::element_x509::IdentitySigner;
use matrix_sdk::ruma::api::client::uiaa;
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
        let http = pinned_client(root_pem)?
            .identity(
                reqwest::Identity::from_pem(identity_pem).context("client certificate and key")?,
            )
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
        match post_json(&self.http, &self.base, path, body).await? {
            Ok(answer) => Ok(answer),
            Err((status, Some(e))) => bail!("{} ({status}): {}", e.errcode, e.error),
            Err((status, None)) => bail!("the service answered {status}"),
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

/// A client builder that trusts only `root_pem` for the service's TLS
/// certificate, with a 30 s timeout per request.
pub(crate) fn pinned_client(root_pem: &[u8]) -> Result<reqwest::ClientBuilder> {
    Ok(reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root_pem).context("service root")?)
        .timeout(Duration::from_secs(30)))
}

/// `POST`s `body` as JSON to `path` under `base`: the decoded answer, or
/// for a refusal the status and the error body if the service sent one.
pub(crate) async fn post_json<Req: serde::Serialize, Res: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    base: &url::Url,
    path: &str,
    body: &Req,
) -> Result<Result<Res, (reqwest::StatusCode, Option<ErrorBody>)>> {
    let response = http.post(base.join(path)?).json(body).send().await?;
    let status = response.status();
    if status.is_success() {
        return Ok(Ok(response.json().await?));
    }
    Ok(Err((status, response.json::<ErrorBody>().await.ok())))
}

/// Sends the challenge `request` and returns the challenge that arrives
/// for it on the device as a to-device message from `bot`.
pub(crate) async fn to_device_challenge(
    client: &Client,
    bot: OwnedUserId,
    request: impl std::future::Future<Output = Result<ChallengeResponse>>,
) -> Result<String> {
    let receiver = ChallengeReceiver::install(client, bot);
    // The service sends the challenge while answering this request; the
    // sync loop (which the caller runs) delivers it to the receiver.
    request.await?;
    Ok(receiver.next(CHALLENGE_TIMEOUT).await?)
}

/// The user and device `client` is logged in as.
pub(crate) fn logged_in_device(client: &Client) -> Result<(String, String)> {
    let user = client
        .user_id()
        .context("the Matrix client is not logged in")?
        .to_string();
    let device = client
        .device_id()
        .context("the Matrix client has no device")?
        .to_string();
    Ok((user, device))
}

/// Enrolls the logged-in device of `client` (device attestation).
pub async fn enroll_device(
    client: &Client,
    service: &ServiceClient,
    bot: OwnedUserId,
) -> Result<EnrollResponse> {
    enroll(client, service, bot, Kind::Device, None).await
}

/// Enrolls the user's cross-signing master key, proven through this
/// device (which the user's self-signing key must have signed).
pub async fn enroll_identity(
    client: &Client,
    service: &ServiceClient,
    bot: OwnedUserId,
) -> Result<EnrollResponse> {
    enroll(client, service, bot, Kind::Identity, None).await
}

/// Enrolls an identity-signing certificate (EKU ARC.5, `io.element.x509`)
/// for the agency's RSA key `signer`, proven like [`enroll_identity`]
/// (this device and the user's master key). The answer's chain is what
/// [`sign_identity`] signs with; nothing is published.
pub async fn enroll_identity_signing(
    client: &Client,
    service: &ServiceClient,
    bot: OwnedUserId,
    signer: &dyn IdentitySigner,
) -> Result<EnrollResponse> {
    let spki = STANDARD.encode(signer.spki_der());
    enroll(client, service, bot, Kind::IdentitySigning, Some(spki)).await
}

async fn enroll(
    client: &Client,
    service: &ServiceClient,
    bot: OwnedUserId,
    kind: Kind,
    rsa_public_key: Option<String>,
) -> Result<EnrollResponse> {
    let (user, device) = logged_in_device(client)?;
    let encryption = client.encryption();
    let key = match kind {
        Kind::Device | Kind::Citizen => encryption
            .ed25519_key()
            .await
            .context("the device has no Ed25519 key")?,
        Kind::Identity | Kind::IdentitySigning => encryption
            .get_user_identity(client.user_id().context("not logged in")?)
            .await?
            .and_then(|identity| identity.master_key().get_first_key().map(|k| k.to_base64()))
            .context("the user has no cross-signing master key; bootstrap cross-signing first")?,
    };
    let secret = to_device_challenge(
        client,
        bot,
        service.challenge(&ChallengeRequest {
            kind,
            user_id: user.clone(),
            device_id: device.clone(),
            proof: Proof::ToDevice,
        }),
    )
    .await?;
    service
        .enroll(&EnrollRequest {
            kind,
            user_id: user,
            device_id: device,
            key,
            challenge: secret,
            signature: None,
            wait_for_event_ms: None,
            rsa_public_key,
        })
        .await
}

/// How [`sign_identity`] got the signature onto the homeserver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureUpload {
    /// `POST /keys/signatures/upload` took it.
    SignaturesUpload,
    /// The homeserver refused it there (Synapse releases before the
    /// unchecked non-`ed25519` signatures, e.g. 1.100, accept only device
    /// signatures on a user's own master key), so the master key object
    /// with the signature was re-uploaded through
    /// `POST /keys/device_signing/upload`, authorised by the password (UIA).
    DeviceSigningUpload,
}

/// The outcome of [`sign_identity`].
#[derive(Clone, Debug, serde::Serialize)]
pub struct SignedIdentity {
    /// The user whose master key was signed.
    pub user_id: String,
    /// `io.element.x509:<key id>`.
    pub key_id: String,
    /// The master key object as the homeserver serves it afterwards
    /// (`/keys/query`), with the signature.
    pub master_key: serde_json::Value,
    /// The request that stored it.
    pub uploaded_with: SignatureUpload,
}

/// Signs the logged-in user's own cross-signing master key in Element's
/// `io.element.x509` format with the agency's identity-signing key and
/// uploads the signature.
///
/// The master key object is read from the homeserver (`/keys/query`, as
/// every client will read it), signed with
/// [`govtrust_pki::element_x509::sign_master_key`] (`chain`: the
/// identity-signing certificate and its issuing CA, as enrollment returned
/// them; `signer`: its RSA key) and uploaded with
/// `POST /keys/signatures/upload` (Synapse 1.163 stores it). A homeserver
/// that refuses a non-device signature there (older Synapse) gets the
/// signed object through
/// `POST /keys/device_signing/upload` instead if `password` is given (that
/// endpoint needs user-interactive auth to change a stored key). Finally
/// the signature is read back from `/keys/query`.
pub async fn sign_identity(
    client: &Client,
    chain: &[govtrust_verifier::CertificateDer<'_>],
    signer: &dyn IdentitySigner,
    password: Option<&str>,
) -> Result<SignedIdentity> {
    use matrix_sdk::ruma::api::client::keys::{upload_signatures, upload_signing_keys};
    use matrix_sdk::ruma::serde::Raw;

    let user = client
        .user_id()
        .context("the Matrix client is not logged in")?
        .to_owned();
    let mut master = query_master_key(client, &user)
        .await?
        .context("the user has no cross-signing master key; bootstrap cross-signing first")?;
    let master_id = master_key_name(&master)?;
    let signed = govtrust_pki::element_x509::sign_master_key(&mut master, chain, signer)
        .context("signing the master key")?;

    // Only the new signature: the homeserver checks every signature it is sent.
    let mut upload = master.clone();
    upload.insert(
        "signatures".into(),
        serde_json::json!({ user.as_str(): { &signed.key_id: &signed.cms_pem } }),
    );
    let mut keys = upload_signatures::v3::SignedKeys::new();
    keys.add_cross_signing_keys(
        master_id.into(),
        Raw::from_json(serde_json::value::to_raw_value(&upload)?),
    );
    let answer = client
        .send(upload_signatures::v3::Request::new(
            [(user.clone(), keys)].into(),
        ))
        .await
        .context("POST /keys/signatures/upload")?;
    let uploaded_with = match answer.failures.get(&user) {
        None => SignatureUpload::SignaturesUpload,
        Some(failures) => {
            let Some(password) = password else {
                bail!(
                    "the homeserver refused the signature in /keys/signatures/upload ({failures:?}); \
                     give the account password to store it through /keys/device_signing/upload"
                );
            };
            tracing::info!(?failures, "/keys/signatures/upload refused the io.element.x509 signature; using /keys/device_signing/upload");
            let raw = Raw::from_json(serde_json::value::to_raw_value(&master)?);
            let mut request = upload_signing_keys::v3::Request::new();
            request.master_key = Some(raw.clone());
            if let Err(e) = client.send(request).await {
                let session = e
                    .as_uiaa_response()
                    .with_context(|| format!("POST /keys/device_signing/upload: {e}"))?
                    .session
                    .clone();
                let mut auth = uiaa::Password::new(
                    uiaa::UserIdentifier::Matrix(uiaa::MatrixUserIdentifier::new(user.to_string())),
                    password.to_owned(),
                );
                auth.session = session;
                let mut request = upload_signing_keys::v3::Request::new();
                request.master_key = Some(raw);
                request.auth = Some(uiaa::AuthData::Password(auth));
                client
                    .send(request)
                    .await
                    .context("POST /keys/device_signing/upload with the password")?;
            }
            SignatureUpload::DeviceSigningUpload
        }
    };

    let served = query_master_key(client, &user)
        .await?
        .context("the master key vanished from /keys/query")?;
    let stored = served
        .get("signatures")
        .and_then(|s| s.get(user.as_str()))
        .and_then(|s| s.get(&signed.key_id))
        .and_then(serde_json::Value::as_str);
    if stored != Some(signed.cms_pem.as_str()) {
        bail!(
            "the homeserver does not serve the {} signature on {user}'s master key after the upload",
            signed.key_id
        );
    }
    Ok(SignedIdentity {
        user_id: user.to_string(),
        key_id: signed.key_id,
        master_key: serde_json::Value::Object(served),
        uploaded_with,
    })
}

/// The user's master key object as `/keys/query` serves it (`None`: no
/// cross-signing identity).
pub async fn query_master_key(
    client: &Client,
    user: &matrix_sdk::ruma::UserId,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
    use matrix_sdk::ruma::api::client::keys::get_keys;
    let mut request = get_keys::v3::Request::new();
    request.device_keys.insert(user.to_owned(), Vec::new());
    let response = client.send(request).await.context("POST /keys/query")?;
    response
        .master_keys
        .get(user)
        .map(|raw| {
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw.json().get())
                .context("the master key is not a JSON object")
        })
        .transpose()
}

/// The unpadded base64 public key of a master key object (its one
/// `ed25519:<key>` entry): the key's ID in `/keys/signatures/upload`.
fn master_key_name(master: &serde_json::Map<String, serde_json::Value>) -> Result<String> {
    let keys = master
        .get("keys")
        .and_then(serde_json::Value::as_object)
        .context("the master key has no keys")?;
    let mut names = keys.keys().filter_map(|k| k.strip_prefix("ed25519:"));
    match (names.next(), names.next()) {
        (Some(name), None) => Ok(name.to_owned()),
        _ => bail!("the master key does not hold exactly one ed25519 key"),
    }
}

//! Test helper: a "fake" Matrix device for enrollments with `signature`
//! proof, without matrix-sdk.
//!
//! The device logs in through the raw client-server API (which gives it a
//! device ID and an access token), uploads device keys that carry a valid
//! self-signature made with an Ed25519 key held here (ring), and signs the
//! service's `signing_payload` with that key (Matrix signing rules:
//! canonical JSON via `govtrust_api::keys::signing_bytes`).
//!
//! Independent of the Synapse fixture (it only needs the homeserver's base
//! URL), so the end-to-end tests, the crash test and a load benchmark can
//! share it:
//!
//! ```ignore
//! #[path = "support/fake_device.rs"]
//! mod fake_device;
//!
//! let dev = fake_device::FakeDevice::create(&http, &hs_url, "@office:localhost", "pw", None).await?;
//! let issued = dev.enroll(&mtls_client, &service_base, Some(0)).await?;
//! ```
#![allow(dead_code)]

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};

/// A failed call: the transport failed, or the server answered an error.
#[derive(Debug)]
pub enum CallError {
    /// No HTTP answer (connection refused, reset, timeout, TLS failure).
    Transport(String),
    /// An HTTP error answer with its JSON body (`null` if not JSON).
    Api {
        /// HTTP status.
        status: u16,
        /// The body.
        body: Value,
    },
}

impl CallError {
    /// The `errcode` of an API error (`GT_…` from the service, `M_…` from
    /// the homeserver).
    pub fn errcode(&self) -> Option<&str> {
        match self {
            CallError::Api { body, .. } => body["errcode"].as_str(),
            CallError::Transport(_) => None,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Transport(e) => write!(f, "transport: {e}"),
            CallError::Api { status, body } => write!(f, "HTTP {status}: {body}"),
        }
    }
}

impl std::error::Error for CallError {}

/// POSTs JSON and returns the JSON answer of a 2xx response.
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> Result<Value, CallError> {
    let mut request = http.post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .map_err(|e| CallError::Transport(format!("POST {url}: {e:#}")))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| CallError::Transport(format!("POST {url}: reading the body: {e:#}")))?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status.is_success() {
        Ok(body)
    } else {
        Err(CallError::Api {
            status: status.as_u16(),
            body,
        })
    }
}

/// A fresh Ed25519 key pair.
pub fn new_ed25519() -> Ed25519KeyPair {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("Ed25519 key generation");
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("Ed25519 key")
}

/// Unpadded base64 of a key pair's public key (the Matrix key format).
pub fn public_b64(key: &Ed25519KeyPair) -> String {
    STANDARD_NO_PAD.encode(key.public_key().as_ref())
}

/// Signs a JSON object by the Matrix signing rules (canonical JSON without
/// `signatures` and `unsigned`); unpadded base64.
pub fn sign_json(key: &Ed25519KeyPair, object: &Value) -> String {
    let map = object.as_object().expect("signing a JSON object");
    let bytes = govtrust_api::keys::signing_bytes(map).expect("canonical JSON");
    STANDARD_NO_PAD.encode(key.sign(&bytes).as_ref())
}

/// A logged-in device whose self-signed device keys the homeserver serves.
pub struct FakeDevice {
    /// Full user ID.
    pub user_id: String,
    /// Device ID the login assigned (or the one asked for).
    pub device_id: String,
    /// Access token of the device.
    pub access_token: String,
    /// The device's Ed25519 signing key (`ed25519:<device_id>`).
    pub key: Ed25519KeyPair,
}

impl FakeDevice {
    /// Logs in `user` (a new device, or `device_id`) on the homeserver at
    /// `homeserver` (`http://host:port`) and uploads self-signed device keys.
    pub async fn create(
        http: &reqwest::Client,
        homeserver: &str,
        user: &str,
        password: &str,
        device_id: Option<&str>,
    ) -> Result<FakeDevice, CallError> {
        let mut login = json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
            "initial_device_display_name": "govtrust test device",
        });
        if let Some(device_id) = device_id {
            login["device_id"] = device_id.into();
        }
        let session = post_json(
            http,
            &format!("{homeserver}/_matrix/client/v3/login"),
            None,
            &login,
        )
        .await?;
        let field = |name: &str| {
            session[name].as_str().map(str::to_owned).ok_or_else(|| {
                CallError::Transport(format!("login answer without {name}: {session}"))
            })
        };
        let device = FakeDevice {
            user_id: field("user_id")?,
            device_id: field("device_id")?,
            access_token: field("access_token")?,
            key: new_ed25519(),
        };
        device.upload_keys(http, homeserver).await?;
        Ok(device)
    }

    /// The device's Ed25519 key, unpadded base64.
    pub fn ed25519(&self) -> String {
        public_b64(&self.key)
    }

    /// The self-signed `device_keys` object this device uploads.
    pub fn device_keys(&self) -> Value {
        let mut curve = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut curve)
            .expect("randomness");
        let dev = &self.device_id;
        let mut keys = json!({
            "user_id": self.user_id,
            "device_id": dev,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                format!("ed25519:{dev}"): self.ed25519(),
                format!("curve25519:{dev}"): STANDARD_NO_PAD.encode(curve),
            },
        });
        let signature = sign_json(&self.key, &keys);
        keys["signatures"] =
            json!({ self.user_id.clone(): { format!("ed25519:{dev}"): signature } });
        keys
    }

    async fn upload_keys(&self, http: &reqwest::Client, homeserver: &str) -> Result<(), CallError> {
        post_json(
            http,
            &format!("{homeserver}/_matrix/client/v3/keys/upload"),
            Some(&self.access_token),
            &json!({ "device_keys": self.device_keys() }),
        )
        .await
        .map(|_| ())
    }

    /// Body of `POST /v1/enrollment/challenge` for this device with
    /// `signature` proof; `kind` is `device` or `identity`.
    pub fn challenge_request(&self, kind: &str) -> Value {
        json!({
            "kind": kind,
            "user_id": self.user_id,
            "device_id": self.device_id,
            "proof": "signature",
        })
    }

    /// Signs the `signing_payload` of a challenge answer with this
    /// device's key; unpadded base64.
    pub fn sign_payload(&self, challenge_answer: &Value) -> String {
        sign_json(&self.key, &challenge_answer["signing_payload"])
    }

    /// Body of `POST /v1/enrollment` answering `challenge_answer` (a
    /// device attestation of this device's key).
    pub fn enroll_request(
        &self,
        challenge_answer: &Value,
        wait_for_event_ms: Option<u64>,
    ) -> Value {
        let mut body = json!({
            "kind": "device",
            "user_id": self.user_id,
            "device_id": self.device_id,
            "key": self.ed25519(),
            "challenge": challenge_answer["signing_payload"]["challenge"],
            "signature": self.sign_payload(challenge_answer),
        });
        if let Some(ms) = wait_for_event_ms {
            body["wait_for_event_ms"] = ms.into();
        }
        body
    }

    /// Requests a `signature` challenge from the service at `service`
    /// (base URL without trailing slash) through `mtls` (a client holding
    /// an enrollment-client certificate).
    pub async fn challenge(
        &self,
        mtls: &reqwest::Client,
        service: &str,
    ) -> Result<Value, CallError> {
        post_json(
            mtls,
            &format!("{service}/v1/enrollment/challenge"),
            None,
            &self.challenge_request("device"),
        )
        .await
    }

    /// The whole device enrollment with `signature` proof: challenge, sign,
    /// enroll. Returns the enrollment answer (`serial`, `chain`, …).
    pub async fn enroll(
        &self,
        mtls: &reqwest::Client,
        service: &str,
        wait_for_event_ms: Option<u64>,
    ) -> Result<Value, CallError> {
        let answer = self.challenge(mtls, service).await?;
        post_json(
            mtls,
            &format!("{service}/v1/enrollment"),
            None,
            &self.enroll_request(&answer, wait_for_event_ms),
        )
        .await
    }
}

/// An HTTPS client for the service: trusts only `root_pem` (the root the
/// service's TLS certificate chains to) and presents `identity_pem` (client
/// certificate chain and PKCS#8 key, PEM) if given.
pub fn https_client(root_pem: &[u8], identity_pem: Option<&[u8]>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root_pem).expect("root PEM"))
        .timeout(std::time::Duration::from_secs(30));
    if let Some(identity) = identity_pem {
        builder = builder.identity(reqwest::Identity::from_pem(identity).expect("identity PEM"));
    }
    builder.build().expect("HTTPS client")
}

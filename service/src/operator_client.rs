//! The operators' HTTPS client of the service: one method per operator
//! endpoint, authenticated by a bearer token, with typed errors. The
//! `govtrust authority|cert|enrollment-client|token|audit` commands are
//! this client plus printing.
//!
//! ```no_run
//! # async fn example() -> Result<(), govtrust_service::operator_client::OperatorClientError> {
//! use govtrust_service::operator_client::OperatorClient;
//! let client = OperatorClient::from_files(
//!     "https://govtrust.example:7443".parse().expect("URL"),
//!     Some(std::path::Path::new("root.pem")),
//!     std::path::Path::new("operator-token"),
//! )?;
//! for authority in client.list_all_authorities().await? {
//!     println!("{} {}", authority.record.id, authority.status);
//! }
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use govtrust_api::authority::AuthorityInput;
use serde::de::DeserializeOwned;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::api::{
    AuditLogPage, AuditLogQuery, AuditVerifyReport, AuthorityView, CertificateList,
    CertificateListQuery, CertificateView, CreateTokenRequest, EnrollmentClientRequest,
    EnrollmentClientResponse, IssuedToken, RevokeRequest, RevokeResponse, SuspendResponse,
    TokenView,
};
use crate::error::ErrorBody;

/// What can go wrong talking to the service as an operator.
#[derive(Debug, thiserror::Error)]
pub enum OperatorClientError {
    /// A file (CA certificate, token) could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The client's settings are unusable (empty token, bad CA file, bad URL).
    #[error("{0}")]
    Config(String),
    /// The request did not get an answer (connection, TLS, timeout).
    #[error("the request to the service failed: {0}")]
    Transport(#[source] reqwest::Error),
    /// The service refused the request with an error body.
    #[error("{errcode} (HTTP {status}): {error}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The service's errcode, e.g. `GT_FORBIDDEN`.
        errcode: String,
        /// Its explanation.
        error: String,
    },
    /// The service answered with an error status and no error body.
    #[error("the service answered HTTP {status}")]
    Status {
        /// HTTP status.
        status: u16,
    },
    /// The answer was not what the API documents.
    #[error("unexpected answer from the service: {0}")]
    Decode(String),
}

impl OperatorClientError {
    /// The service's errcode, if it refused the request.
    pub fn errcode(&self) -> Option<&str> {
        match self {
            Self::Api { errcode, .. } => Some(errcode),
            _ => None,
        }
    }
}

/// Result of the client's calls.
pub type Result<T, E = OperatorClientError> = std::result::Result<T, E>;

/// An operator's client of the service.
#[derive(Clone)]
pub struct OperatorClient {
    base: url::Url,
    http: reqwest::Client,
    token: Zeroizing<String>,
}

impl std::fmt::Debug for OperatorClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| OperatorClientError::Read {
        path: path.to_owned(),
        source,
    })
}

impl OperatorClient {
    /// A client of the service at `base` (`https://host:port`), trusting
    /// only the CA certificates in `ca_pem` for the service's TLS (the
    /// service's root), presenting `token`.
    pub fn new(base: url::Url, ca_pem: &[u8], token: &str) -> Result<Self> {
        if base.scheme() != "https" {
            return Err(OperatorClientError::Config(format!(
                "the service URL must be https://, not {base}"
            )));
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(OperatorClientError::Config(
                "the operator token is empty".into(),
            ));
        }
        if token.chars().any(|c| c.is_control() || c == ' ') {
            return Err(OperatorClientError::Config(
                "the operator token contains spaces or control characters".into(),
            ));
        }
        let roots = reqwest::Certificate::from_pem_bundle(ca_pem)
            .map_err(|e| OperatorClientError::Config(format!("CA file: {e}")))?;
        if roots.is_empty() {
            return Err(OperatorClientError::Config(
                "the CA file holds no PEM certificate".into(),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .timeout(Duration::from_secs(60));
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
        let http = builder.build().map_err(OperatorClientError::Transport)?;
        Ok(OperatorClient {
            base,
            http,
            token: Zeroizing::new(token.to_owned()),
        })
    }

    /// [`OperatorClient::new`] with the CA certificate(s) and the token read
    /// from files. Without `ca_file` the CA must come from somewhere else:
    /// it is an error (the client trusts no built-in roots).
    pub fn from_files(base: url::Url, ca_file: Option<&Path>, token_file: &Path) -> Result<Self> {
        let ca_file = ca_file.ok_or_else(|| {
            OperatorClientError::Config(
                "no CA file: pass the root the service's TLS certificate chains to (--ca-file or GOVTRUST_CA_FILE)".into(),
            )
        })?;
        let ca = read(ca_file)?;
        let token = Zeroizing::new(read(token_file)?);
        let token = std::str::from_utf8(&token).map_err(|_| {
            OperatorClientError::Config(format!("{} is not UTF-8 text", token_file.display()))
        })?;
        OperatorClient::new(base, &ca, token)
    }

    /// The service's URL.
    pub fn base(&self) -> &url::Url {
        &self.base
    }

    /// `base` + path segments (each percent-encoded).
    fn url(&self, segments: &[&str]) -> Result<url::Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| {
                OperatorClientError::Config(format!("{} cannot be a base URL", self.base))
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T> {
        let response = request
            .bearer_auth(self.token.as_str())
            .send()
            .await
            .map_err(OperatorClientError::Transport)?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(OperatorClientError::Transport)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| OperatorClientError::Decode(e.to_string()));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(e) => Err(OperatorClientError::Api {
                status: status.as_u16(),
                errcode: e.errcode,
                error: e.error,
            }),
            Err(_) => Err(OperatorClientError::Status {
                status: status.as_u16(),
            }),
        }
    }

    async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T> {
        self.send(self.http.get(self.url(segments)?)).await
    }

    async fn get_query<Q: Serialize, T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &Q,
    ) -> Result<T> {
        self.send(self.http.get(self.url(segments)?).query(query))
            .await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<T> {
        let mut request = self.http.post(self.url(segments)?);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request).await
    }

    // ----- authorities -----------------------------------------------------

    /// `GET /v1/authorities`: one page, after the ID `after`.
    pub async fn list_authorities(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuthorityView>> {
        #[derive(Serialize)]
        struct Page<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            after: Option<&'a str>,
            limit: u32,
        }
        self.get_query(&["v1", "authorities"], &Page { after, limit })
            .await
    }

    /// Every authority, following the pages.
    pub async fn list_all_authorities(&self) -> Result<Vec<AuthorityView>> {
        let mut all: Vec<AuthorityView> = Vec::new();
        loop {
            let after = all.last().map(|a| a.record.id.clone());
            let page = self.list_authorities(after.as_deref(), 1000).await?;
            let done = page.len() < 1000;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// `GET /v1/authorities/{id}`
    pub async fn get_authority(&self, id: &str) -> Result<AuthorityView> {
        self.get(&["v1", "authorities", id]).await
    }

    /// `POST /v1/authorities`
    pub async fn create_authority(&self, input: &AuthorityInput) -> Result<AuthorityView> {
        self.post(&["v1", "authorities"], Some(input)).await
    }

    /// `PUT /v1/authorities/{id}`
    pub async fn update_authority(
        &self,
        id: &str,
        input: &AuthorityInput,
    ) -> Result<AuthorityView> {
        self.send(
            self.http
                .put(self.url(&["v1", "authorities", id])?)
                .json(input),
        )
        .await
    }

    /// `POST /v1/authorities/{id}/suspend`
    pub async fn suspend_authority(&self, id: &str) -> Result<SuspendResponse> {
        self.post::<(), _>(&["v1", "authorities", id, "suspend"], None)
            .await
    }

    /// `POST /v1/authorities/{id}/activate`
    pub async fn activate_authority(&self, id: &str) -> Result<AuthorityView> {
        self.post::<(), _>(&["v1", "authorities", id, "activate"], None)
            .await
    }

    /// `POST /v1/authorities/{id}/enrollment-clients`
    pub async fn issue_enrollment_client(
        &self,
        id: &str,
        request: &EnrollmentClientRequest,
    ) -> Result<EnrollmentClientResponse> {
        self.post(
            &["v1", "authorities", id, "enrollment-clients"],
            Some(request),
        )
        .await
    }

    // ----- certificates ----------------------------------------------------

    /// `GET /v1/certificates`: one page.
    pub async fn list_certificates(&self, query: &CertificateListQuery) -> Result<CertificateList> {
        self.get_query(&["v1", "certificates"], query).await
    }

    /// `GET /v1/certificates/{serial}`
    pub async fn get_certificate(&self, serial: &str) -> Result<CertificateView> {
        self.get(&["v1", "certificates", serial]).await
    }

    /// `POST /v1/certificates/{serial}/revoke`
    pub async fn revoke_certificate(
        &self,
        serial: &str,
        reason: Option<&str>,
    ) -> Result<RevokeResponse> {
        let body = RevokeRequest {
            reason: reason.map(str::to_owned),
        };
        self.post(&["v1", "certificates", serial, "revoke"], Some(&body))
            .await
    }

    // ----- tokens ----------------------------------------------------------

    /// `POST /v1/tokens`: the answer holds the secret.
    pub async fn create_token(&self, request: &CreateTokenRequest) -> Result<IssuedToken> {
        self.post(&["v1", "tokens"], Some(request)).await
    }

    /// `GET /v1/tokens`
    pub async fn list_tokens(&self) -> Result<Vec<TokenView>> {
        self.get(&["v1", "tokens"]).await
    }

    /// `POST /v1/tokens/{name}/rotate`: the answer holds the new secret.
    pub async fn rotate_token(&self, name: &str) -> Result<IssuedToken> {
        self.post::<(), _>(&["v1", "tokens", name, "rotate"], None)
            .await
    }

    /// `POST /v1/tokens/{name}/revoke`
    pub async fn revoke_token(&self, name: &str) -> Result<TokenView> {
        self.post::<(), _>(&["v1", "tokens", name, "revoke"], None)
            .await
    }

    // ----- audit -----------------------------------------------------------

    /// `GET /v1/audit/log`: one page.
    pub async fn audit_log(&self, query: &AuditLogQuery) -> Result<AuditLogPage> {
        self.get_query(&["v1", "audit", "log"], query).await
    }

    /// `GET /v1/audit/verify`
    pub async fn audit_verify(&self) -> Result<AuditVerifyReport> {
        self.get(&["v1", "audit", "verify"]).await
    }
}

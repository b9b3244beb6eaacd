//! API errors: `{"errcode": …, "error": …}` with the right HTTP status.
//!
//! Every rejection names the check that failed, so an agency's operator can
//! act on it and metrics can count rejections by reason.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// An error as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (`GT_…`), documented in docs/api.md.
    pub errcode: &'static str,
    /// Human explanation.
    pub error: String,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `GT_CHALLENGE_USED`.
    pub errcode: String,
    /// Human explanation naming the failed check.
    pub error: String,
}

macro_rules! errcodes {
    ($($name:ident => ($status:ident, $code:literal)),* $(,)?) => {
        impl ApiError {
            $(
                #[doc = concat!("`", $code, "` (HTTP ", stringify!($status), ").")]
                pub fn $name(error: impl Into<String>) -> Self {
                    ApiError { status: StatusCode::$status, errcode: $code, error: error.into() }
                }
            )*
        }
        /// Every errcode the API can return, with its HTTP status (for docs and tests).
        pub const ERRCODES: &[(&str, u16)] = &[$(($code, StatusCode::$status.as_u16())),*];
    };
}

errcodes! {
    bad_json => (BAD_REQUEST, "GT_BAD_JSON"),
    invalid_param => (BAD_REQUEST, "GT_INVALID_PARAM"),
    too_large => (PAYLOAD_TOO_LARGE, "GT_TOO_LARGE"),
    no_client_cert => (UNAUTHORIZED, "GT_NO_CLIENT_CERT"),
    client_cert_rejected => (UNAUTHORIZED, "GT_CLIENT_CERT_REJECTED"),
    unauthorized => (UNAUTHORIZED, "GT_UNAUTHORIZED"),
    forbidden => (FORBIDDEN, "GT_FORBIDDEN"),
    unknown_authority => (FORBIDDEN, "GT_UNKNOWN_AUTHORITY"),
    authority_suspended => (FORBIDDEN, "GT_AUTHORITY_SUSPENDED"),
    user_not_permitted => (FORBIDDEN, "GT_USER_NOT_PERMITTED"),
    server_not_permitted => (FORBIDDEN, "GT_SERVER_NOT_PERMITTED"),
    challenge_unknown => (BAD_REQUEST, "GT_CHALLENGE_UNKNOWN"),
    challenge_expired => (BAD_REQUEST, "GT_CHALLENGE_EXPIRED"),
    challenge_used => (BAD_REQUEST, "GT_CHALLENGE_USED"),
    challenge_mismatch => (BAD_REQUEST, "GT_CHALLENGE_MISMATCH"),
    proof_failed => (BAD_REQUEST, "GT_PROOF_FAILED"),
    device_unknown => (BAD_REQUEST, "GT_DEVICE_UNKNOWN"),
    key_mismatch => (BAD_REQUEST, "GT_KEY_MISMATCH"),
    bad_device_signature => (BAD_REQUEST, "GT_BAD_DEVICE_SIGNATURE"),
    identity_unverified => (BAD_REQUEST, "GT_IDENTITY_UNVERIFIED"),
    not_found => (NOT_FOUND, "GT_NOT_FOUND"),
    conflict => (CONFLICT, "GT_CONFLICT"),
    rate_limited => (TOO_MANY_REQUESTS, "GT_RATE_LIMITED"),
    homeserver_unavailable => (SERVICE_UNAVAILABLE, "GT_HOMESERVER_UNAVAILABLE"),
    internal => (INTERNAL_SERVER_ERROR, "GT_INTERNAL"),
}

impl From<govtrust_pki::Error> for ApiError {
    /// A request the CA refuses (a key outside the profile, a record it
    /// cannot encode) is the client's error; anything else (a signer or
    /// self-check failure) is ours, logged and hidden.
    fn from(e: govtrust_pki::Error) -> Self {
        match e {
            govtrust_pki::Error::InvalidRequest(why) => ApiError::invalid_param(why),
            other => ApiError::from_internal(&other.into()),
        }
    }
}

impl From<govtrust_api::Error> for ApiError {
    /// Input the contract's checks refuse is the client's error: the text
    /// names the field.
    fn from(e: govtrust_api::Error) -> Self {
        ApiError::invalid_param(e.to_string())
    }
}

impl ApiError {
    /// Logs an unexpected failure and hides its detail from the client.
    pub fn from_internal(err: &anyhow::Error) -> Self {
        tracing::error!(error = %format!("{err:#}"), "internal error");
        ApiError::internal("internal error; see the service log")
    }
}

impl From<crate::storage::StoreError> for ApiError {
    fn from(err: crate::storage::StoreError) -> Self {
        ApiError::from_internal(&err.into())
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        ApiError::from_internal(&err)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.errcode, self.error)
    }
}

/// Response extension carrying the errcode, so a middleware can count
/// rejections without parsing bodies.
#[derive(Clone, Copy, Debug)]
pub struct ErrCode(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                errcode: self.errcode.to_owned(),
                error: self.error,
            }),
        )
            .into_response();
        response.extensions_mut().insert(ErrCode(self.errcode));
        response
    }
}

//! The service's Matrix side: the E2EE bot that publishes attestation state
//! events, looks up device and cross-signing keys for enrollment, and sends
//! proof-of-possession challenges as Olm-encrypted to-device messages; plus
//! the agency side's [`agency::ChallengeReceiver`].
//!
//! The homeserver is untrusted for integrity (see DESIGN.md): everything
//! here that the enrollment decision rests on is checked from signatures
//! (`govtrust_api::keys`), never taken from the homeserver's word. Room state written by
//! the bot is transport only; clients verify the certificate chain.

pub mod agency;
mod bot;
mod error;

use std::path::PathBuf;

use url::Url;

pub use agency::{ChallengeReceiver, EnrollmentChallengeEventContent, CHALLENGE_EVENT_TYPE};
pub use bot::{Bot, ServedKeys};
pub use error::MatrixError;
pub use govtrust_api::keys::{QueriedDevice, QueriedIdentity};

/// Default localpart of the directory room's alias
/// (`#govtrust-directory:<server_name>`).
pub const DEFAULT_DIRECTORY_ALIAS_LOCALPART: &str = "govtrust-directory";

/// Result type of this module.
pub type Result<T, E = MatrixError> = std::result::Result<T, E>;

/// How the service's bot reaches and logs in to its homeserver.
///
/// The bot is an ordinary E2EE-capable Matrix account: it needs a device of
/// its own (with keys in a persistent store) because proof-of-possession
/// challenges are Olm-encrypted from that device.
#[derive(Clone)]
pub struct MatrixConfig {
    /// Client-server API base URL of the homeserver, e.g.
    /// `https://matrix.bund.example`.
    pub homeserver_url: Url,
    /// The bot's full Matrix user ID, e.g. `@govtrust:bund.example`.
    pub user_id: String,
    /// The bot's password; used only when no stored session exists (or the
    /// stored access token was invalidated).
    pub password: String,
    /// Directory for the matrix-sdk SQLite stores and the saved session. It
    /// holds the bot's device keys and access token: keep it private and
    /// persistent, or the bot gets a new device (and new Olm identity) on
    /// every start.
    pub store_dir: PathBuf,
    /// Localpart of the directory room alias; the server name is the bot's.
    pub directory_alias_localpart: String,
    /// Display name of the bot's device, shown in other users' device lists.
    pub device_display_name: String,
}

impl MatrixConfig {
    /// A configuration with the default alias localpart and device name.
    pub fn new(
        homeserver_url: Url,
        user_id: impl Into<String>,
        password: impl Into<String>,
        store_dir: impl Into<PathBuf>,
    ) -> Self {
        MatrixConfig {
            homeserver_url,
            user_id: user_id.into(),
            password: password.into(),
            store_dir: store_dir.into(),
            directory_alias_localpart: DEFAULT_DIRECTORY_ALIAS_LOCALPART.to_owned(),
            device_display_name: "govtrust attestation service".to_owned(),
        }
    }
}

// Hand-written so that the password never ends up in a log line.
impl std::fmt::Debug for MatrixConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatrixConfig")
            .field("homeserver_url", &self.homeserver_url.as_str())
            .field("user_id", &self.user_id)
            .field("password", &"<redacted>")
            .field("store_dir", &self.store_dir)
            .field("directory_alias_localpart", &self.directory_alias_localpart)
            .field("device_display_name", &self.device_display_name)
            .finish()
    }
}

//! Where enrollment learns a device's keys and delivers its challenge: the
//! homeserver (through the service's bot), or — for the load benchmark's
//! service-only mode — a pre-filled cache with no delivery at all.

use std::collections::HashMap;
use std::sync::Arc;

use govtrust_verifier::{DeviceId, Ed25519Key, UserId};

use crate::error::ApiError;
use crate::matrix::{Bot, MatrixError, QueriedDevice, QueriedIdentity};

/// What `/keys/query` said about a device and its user's identity.
#[derive(Clone, Debug)]
pub struct KeyAnswer {
    /// The device, if the homeserver knows it.
    pub device: Option<QueriedDevice>,
    /// The user's cross-signing identity, if any.
    pub identity: Option<QueriedIdentity>,
}

/// A key source.
#[derive(Clone)]
pub enum KeySource {
    /// No homeserver configured: enrollment is unavailable.
    Unconfigured,
    /// The live homeserver, through the service's bot.
    Homeserver(Arc<Bot>),
    /// The source set once the service's bot has connected (the homeserver
    /// may be down when the service starts, see
    /// `tasks::run_matrix_connect`); until then lookups and deliveries fail
    /// as `homeserver unavailable`.
    Deferred(Arc<std::sync::OnceLock<KeySource>>),
    /// Answers prepared in advance (load benchmark, service-only mode);
    /// only signature proofs work, since nothing can be delivered.
    Prefilled(Arc<HashMap<(String, String), KeyAnswer>>),
}

fn unavailable(e: &MatrixError) -> ApiError {
    ApiError::homeserver_unavailable(format!("homeserver: {e}"))
}

/// A deferred key source whose bot has not connected yet.
fn not_connected() -> ApiError {
    ApiError::homeserver_unavailable(
        "the service has not reached its homeserver yet; retry later",
    )
}

impl KeySource {
    /// Looks up `device` of `user` and `user`'s identity.
    pub async fn lookup(&self, user: &UserId, device: &DeviceId) -> Result<KeyAnswer, ApiError> {
        if let KeySource::Deferred(slot) = self {
            return match slot.get() {
                Some(inner) => Box::pin(inner.lookup(user, device)).await,
                None => Err(not_connected()),
            };
        }
        match self {
            KeySource::Unconfigured => Err(ApiError::homeserver_unavailable(
                "no homeserver is configured, so device keys cannot be checked",
            )),
            // Handled above.
            KeySource::Deferred(_) => Err(not_connected()),
            KeySource::Homeserver(bot) => {
                let (device, identity) = bot
                    .device_and_identity(user, device)
                    .await
                    .map_err(|e| unavailable(&e))?;
                Ok(KeyAnswer { device, identity })
            }
            KeySource::Prefilled(map) => Ok(map
                .get(&(user.to_string(), device.to_string()))
                .cloned()
                .unwrap_or(KeyAnswer {
                    device: None,
                    identity: None,
                })),
        }
    }

    /// Sends the challenge secret Olm-encrypted to the device; returns the
    /// Ed25519 key of the device it was encrypted for.
    pub async fn deliver(
        &self,
        user: &UserId,
        device: &DeviceId,
        secret: &str,
    ) -> Result<Ed25519Key, ApiError> {
        if let KeySource::Deferred(slot) = self {
            return match slot.get() {
                Some(inner) => Box::pin(inner.deliver(user, device, secret)).await,
                None => Err(not_connected()),
            };
        }
        match self {
            KeySource::Homeserver(bot) => {
                bot.send_challenge(user, device, secret)
                    .await
                    .map_err(|e| match e {
                        MatrixError::UnknownDevice { .. } => {
                            ApiError::device_unknown(e.to_string())
                        }
                        other => unavailable(&other),
                    })
            }
            _ => Err(ApiError::invalid_param(
                "to-device challenges need a homeserver; use proof \"signature\"",
            )),
        }
    }
}

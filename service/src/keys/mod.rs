//! Where enrollment learns a device's keys and delivers its challenge: the
//! homeserver (through the service's bot), or — for the load benchmark's
//! service-only mode — a pre-filled cache with no delivery at all.
//!
//! Lookups on the homeserver go through a [`batch::Batcher`]: concurrent
//! challenges share one `/keys/query`, and each checks only its own device
//! and user in the shared answer ([`ServedKeys`]), with the same checks as
//! a lookup of its own.

pub mod batch;

use std::collections::HashMap;
use std::sync::Arc;

use govtrust_verifier::{DeviceId, Ed25519Key, UserId};

use crate::error::ApiError;
use crate::matrix::{Bot, MatrixError, QueriedDevice, QueriedIdentity, ServedKeys};

use self::batch::{BatchConfig, BatchError, BatchStats, Batcher, KeyQuery, Wanted};

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
    /// The live homeserver, through the service's bot, one `/keys/query`
    /// per lookup. [`KeySource::coalesced`] turns it into
    /// [`KeySource::Batched`].
    Homeserver(Arc<Bot>),
    /// The live homeserver, through the service's bot, with concurrent
    /// lookups coalesced into batched `/keys/query` requests.
    Batched(Arc<Batcher<Bot>>),
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

impl KeyQuery for Bot {
    type Answer = ServedKeys;
    type Error = MatrixError;

    async fn query(&self, wanted: &Wanted) -> Result<ServedKeys, MatrixError> {
        self.query_served_keys(wanted).await
    }
}

/// A deferred key source whose bot has not connected yet.
fn not_connected() -> ApiError {
    ApiError::homeserver_unavailable("the service has not reached its homeserver yet; retry later")
}

fn batch_unavailable(e: &BatchError<MatrixError>) -> ApiError {
    ApiError::homeserver_unavailable(format!("homeserver: {e}"))
}

impl KeySource {
    /// The same source, with homeserver lookups coalesced by a batcher
    /// with `config` (other sources are returned as they are).
    pub fn coalesced(self, config: BatchConfig) -> KeySource {
        match self {
            KeySource::Homeserver(bot) => KeySource::Batched(Arc::new(Batcher::new(bot, config))),
            other => other,
        }
    }

    /// How many batched queries answered how many lookups, if batched.
    pub fn batch_stats(&self) -> Option<BatchStats> {
        match self {
            KeySource::Batched(batcher) => Some(batcher.stats()),
            KeySource::Deferred(slot) => slot.get().and_then(KeySource::batch_stats),
            _ => None,
        }
    }

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
            KeySource::Batched(batcher) => {
                let served = batcher
                    .fetch(user, device)
                    .await
                    .map_err(|e| batch_unavailable(&e))?;
                let (device, identity) = served
                    .device_and_identity(user, device)
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
        let bot = match self {
            KeySource::Homeserver(bot) => Some(bot),
            KeySource::Batched(batcher) => Some(batcher.inner()),
            _ => None,
        };
        match bot {
            Some(bot) => bot
                .send_challenge(user, device, secret)
                .await
                .map_err(|e| match e {
                    MatrixError::UnknownDevice { .. } => ApiError::device_unknown(e.to_string()),
                    other => unavailable(&other),
                }),
            None => Err(ApiError::invalid_param(
                "to-device challenges need a homeserver; use proof \"signature\"",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The split of one batched answer per caller: each caller sees only
    //! its own device and user, with the checks of a lookup of its own.

    use base64::engine::general_purpose::STANDARD_NO_PAD;
    use base64::Engine as _;
    use govtrust_api::keys::signing_bytes;
    use ring::signature::{Ed25519KeyPair, KeyPair as _};
    use serde_json::{json, Map, Value};

    use super::*;

    fn pair() -> Ed25519KeyPair {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("keygen");
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key")
    }

    fn b64(bytes: &[u8]) -> String {
        STANDARD_NO_PAD.encode(bytes)
    }

    fn sign(pair: &Ed25519KeyPair, obj: &mut Map<String, Value>, user: &str, key_id: &str) {
        let bytes = signing_bytes(obj).expect("canonical");
        let sig = b64(pair.sign(&bytes).as_ref());
        let sigs = obj
            .entry("signatures")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("map");
        sigs.entry(user)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("map")
            .insert(key_id.to_owned(), json!(sig));
    }

    fn device_json(pair: &Ed25519KeyPair, user: &str, device: &str) -> Map<String, Value> {
        let mut obj = json!({
            "user_id": user,
            "device_id": device,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
            "keys": {
                format!("ed25519:{device}"): b64(pair.public_key().as_ref()),
                format!("curve25519:{device}"): "Y3VydmU",
            },
        })
        .as_object()
        .cloned()
        .expect("object");
        sign(pair, &mut obj, user, &format!("ed25519:{device}"));
        obj
    }

    fn cross_signing(pair: &Ed25519KeyPair, user: &str, usage: &str) -> Map<String, Value> {
        let key = b64(pair.public_key().as_ref());
        json!({"user_id": user, "usage": [usage], "keys": {format!("ed25519:{key}"): key}})
            .as_object()
            .cloned()
            .expect("object")
    }

    fn ids(user: &str, device: &str) -> (UserId, DeviceId) {
        (
            UserId::parse(user).expect("user"),
            DeviceId::parse(device).expect("device"),
        )
    }

    fn text(obj: &Map<String, Value>) -> String {
        serde_json::to_string(obj).expect("json")
    }

    #[test]
    fn each_caller_gets_its_own_part_of_a_batched_answer() {
        let mut served = ServedKeys::default();
        // A: a self-signed device and a full identity vouching for it.
        let (a, a_dev) = ids("@a:gov.example", "ADEV");
        let a_key = pair();
        let master = pair();
        let ssk = pair();
        let mut a_device = device_json(&a_key, a.as_str(), "ADEV");
        let ssk_id = format!("ed25519:{}", b64(ssk.public_key().as_ref()));
        sign(&ssk, &mut a_device, a.as_str(), &ssk_id);
        let mut ssk_obj = cross_signing(&ssk, a.as_str(), "self_signing");
        let master_id = format!("ed25519:{}", b64(master.public_key().as_ref()));
        sign(&master, &mut ssk_obj, a.as_str(), &master_id);
        served
            .devices
            .insert((a.clone(), a_dev.clone()), text(&a_device));
        served.master_keys.insert(
            a.clone(),
            text(&cross_signing(&master, a.as_str(), "master")),
        );
        served.self_signing_keys.insert(a.clone(), text(&ssk_obj));
        // B: a second device of another user, no identity.
        let (b, b_dev) = ids("@b:gov.example", "BDEV");
        let b_key = pair();
        served.devices.insert(
            (b.clone(), b_dev.clone()),
            text(&device_json(&b_key, b.as_str(), "BDEV")),
        );
        // C: asked for, not served. D: served with a wrong signature.
        let (c, c_dev) = ids("@c:gov.example", "CDEV");
        let (d, d_dev) = ids("@d:gov.example", "DDEV");
        let mut d_device = device_json(&pair(), d.as_str(), "DDEV");
        d_device.insert("device_id".into(), json!("OTHER"));
        served
            .devices
            .insert((d.clone(), d_dev.clone()), text(&d_device));
        // E: on a server the homeserver could not reach.
        let (e, e_dev) = ids("@e:far.example", "EDEV");
        served
            .failures
            .insert("far.example".into(), "unreachable".into());

        let (device, identity) = served.device_and_identity(&a, &a_dev).expect("a");
        let device = device.expect("a's device");
        assert!(device.self_signed);
        assert_eq!(
            device.ed25519.as_bytes().as_slice(),
            a_key.public_key().as_ref()
        );
        assert!(identity.expect("a's identity").vouches_for(&device));

        let (device, identity) = served.device_and_identity(&b, &b_dev).expect("b");
        assert_eq!(
            device.expect("b's device").ed25519.as_bytes().as_slice(),
            b_key.public_key().as_ref()
        );
        assert!(identity.is_none());

        // Not served: "not found" for this caller only.
        let (device, identity) = served.device_and_identity(&c, &c_dev).expect("c");
        assert!(device.is_none() && identity.is_none());
        // Another caller's device is not this caller's, even for the same user.
        let (device, _) = served
            .device_and_identity(&a, &DeviceId::parse("BDEV").expect("id"))
            .expect("a/BDEV");
        assert!(device.is_none());
        let (device, _) = served.device_and_identity(&b, &a_dev).expect("b/ADEV");
        assert!(device.is_none());

        // Wrongly served keys and failures refuse only their caller.
        assert!(matches!(
            served.device_and_identity(&d, &d_dev),
            Err(MatrixError::InvalidKeys(_))
        ));
        assert!(matches!(
            served.device_and_identity(&e, &e_dev),
            Err(MatrixError::InvalidKeys(_))
        ));
    }

    #[test]
    fn a_master_key_without_self_signing_key_refuses_that_user() {
        let mut served = ServedKeys::default();
        let (a, a_dev) = ids("@a:gov.example", "ADEV");
        let a_key = pair();
        served.devices.insert(
            (a.clone(), a_dev.clone()),
            text(&device_json(&a_key, a.as_str(), "ADEV")),
        );
        served.master_keys.insert(
            a.clone(),
            text(&cross_signing(&pair(), a.as_str(), "master")),
        );
        assert!(served.device_and_identity(&a, &a_dev).is_err());
        let (b, b_dev) = ids("@b:gov.example", "BDEV");
        assert!(served.device_and_identity(&b, &b_dev).is_ok());
    }

    #[tokio::test]
    async fn prefilled_and_unconfigured_sources_are_left_as_they_are() {
        let source = KeySource::Prefilled(Arc::default()).coalesced(BatchConfig::default());
        assert!(matches!(source, KeySource::Prefilled(_)));
        assert!(source.batch_stats().is_none());
        let (u, d) = ids("@a:gov.example", "ADEV");
        let answer = source.lookup(&u, &d).await.expect("lookup");
        assert!(answer.device.is_none());
        let source = KeySource::Unconfigured.coalesced(BatchConfig::default());
        assert!(source.lookup(&u, &d).await.is_err());
    }
}

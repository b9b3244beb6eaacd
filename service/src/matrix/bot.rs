//! The service's bot: an E2EE matrix-sdk client with a persistent store,
//! a background sync loop, the directory room, publishing, key lookups and
//! challenge delivery.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use govtrust_verifier::event::{AttestationContent, EVENT_TYPE, MAX_CONTENT_BYTES};
use govtrust_verifier::{DeviceId, Ed25519Key, UserId};
use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::{RequestConfig, SyncSettings};
use matrix_sdk::ruma::api::client::keys::get_keys;
use matrix_sdk::ruma::api::client::room::create_room::v3::{
    Request as CreateRoomRequest, RoomPreset,
};
use matrix_sdk::ruma::api::client::room::create_room::RoomPowerLevelsContentOverride;
use matrix_sdk::ruma::api::client::room::Visibility;
use matrix_sdk::ruma::api::client::state::{get_state_event_for_key, send_state_event};
use matrix_sdk::ruma::api::error::ErrorKind;
use matrix_sdk::ruma::events::{AnyInitialStateEvent, AnyStateEventContent, StateEventType};
use matrix_sdk::ruma::serde::Raw;
use matrix_sdk::ruma::{
    OwnedDeviceId, OwnedRoomAliasId, OwnedRoomId, OwnedUserId, RoomId, UserId as RumaUserId,
};
use matrix_sdk::{Client, RoomState};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::agency::{EnrollmentChallengeEventContent, CHALLENGE_EVENT_TYPE, MAX_CHALLENGE_LEN};
use super::{MatrixConfig, MatrixError, Result};
use super::{QueriedDevice, QueriedIdentity};

/// File in the store directory that holds the bot's session (user ID,
/// device ID, access token), so restarts re-use the same device.
const SESSION_FILE: &str = "session.json";
/// Subdirectory of the store directory for matrix-sdk's SQLite stores.
const SDK_STORE_DIR: &str = "sdk";
/// Long-poll timeout of the background sync.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest pause between sync attempts while the homeserver is down.
const MAX_SYNC_BACKOFF: Duration = Duration::from_secs(30);

/// What the session file holds: the homeserver it belongs to, and
/// matrix-sdk's session.
#[derive(Serialize, Deserialize)]
struct SavedSession {
    homeserver_url: String,
    session: MatrixSession,
}

/// The service's Matrix bot.
///
/// One per service process: it owns a logged-in matrix-sdk client whose
/// device (and so whose Olm identity) persists in the store directory, and
/// a background task that keeps syncing, which is what uploads the device's
/// keys, receives one-time-key counts and keeps the crypto store current.
/// Dropping the bot stops the sync task.
pub struct Bot {
    client: Client,
    user_id: OwnedUserId,
    directory_alias: OwnedRoomAliasId,
    directory_room: Mutex<Option<OwnedRoomId>>,
    sync_task: JoinHandle<()>,
}

impl Bot {
    /// Logs in (or restores the saved session), runs one sync so the
    /// device's keys are uploaded, and starts the background sync loop.
    ///
    /// Fails if the homeserver cannot be reached: the caller decides
    /// whether to retry or run without Matrix.
    pub async fn connect(config: MatrixConfig) -> Result<Bot> {
        let user_id = OwnedUserId::try_from(config.user_id.as_str())
            .map_err(|e| MatrixError::Config(format!("bot user ID {:?}: {e}", config.user_id)))?;
        let directory_alias = OwnedRoomAliasId::try_from(format!(
            "#{}:{}",
            config.directory_alias_localpart,
            user_id.server_name()
        ))
        .map_err(|e| MatrixError::Config(format!("directory alias: {e}")))?;
        prepare_store_dir(&config.store_dir)?;
        let session_path = config.store_dir.join(SESSION_FILE);

        let client = match load_session(&session_path)? {
            Some(saved) => {
                if saved.session.meta.user_id != user_id {
                    return Err(MatrixError::Config(format!(
                        "store directory {} belongs to {}, not {user_id}",
                        config.store_dir.display(),
                        saved.session.meta.user_id
                    )));
                }
                if saved.homeserver_url != config.homeserver_url.as_str() {
                    return Err(MatrixError::Config(format!(
                        "store directory {} belongs to homeserver {}, not {}",
                        config.store_dir.display(),
                        saved.homeserver_url,
                        config.homeserver_url
                    )));
                }
                restore_or_relogin(&config, &session_path, saved).await?
            }
            None => {
                let client = build_client(&config).await?;
                login(&client, &config, None).await?;
                save_session(&session_path, &config, &client)?;
                client
            }
        };
        tracing::info!(
            user = %user_id,
            device = ?client.device_id(),
            "Matrix bot logged in"
        );

        // One sync in the foreground: it uploads the device keys (and
        // one-time keys) before anybody needs them.
        client
            .sync_once(SyncSettings::default().timeout(Duration::ZERO))
            .await?;
        let sync_task = tokio::spawn(sync_loop(client.clone()));

        Ok(Bot {
            client,
            user_id,
            directory_alias,
            directory_room: Mutex::new(None),
            sync_task,
        })
    }

    /// The underlying matrix-sdk client, for operations this type does not
    /// wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The bot's user ID (the `sender` of every attestation it publishes).
    pub fn user_id(&self) -> &RumaUserId {
        &self.user_id
    }

    /// The bot's device ID, stable across restarts.
    pub fn device_id(&self) -> Option<OwnedDeviceId> {
        self.client.device_id().map(ToOwned::to_owned)
    }

    /// The directory room's alias, `#<localpart>:<bot's server name>`.
    pub fn directory_alias(&self) -> &OwnedRoomAliasId {
        &self.directory_alias
    }

    /// Finds the directory room by its alias, or creates it.
    ///
    /// The room is public, world-readable (clients read attestations
    /// without joining), allows guests, and its power levels let only the
    /// bot send `io.govtrust.attestation` (and, since it is a directory and
    /// not a chat, messages need PL 50, which nobody else has). If the alias
    /// already points to a room the bot did not create, that is an error:
    /// somebody else's room may have power levels the bot does not control.
    pub async fn ensure_directory_room(&self) -> Result<OwnedRoomId> {
        let mut cached = self.directory_room.lock().await;
        let room_id = match self.resolve_directory_alias().await? {
            Some(room_id) => room_id,
            None => match self.create_directory_room().await {
                Ok(room_id) => room_id,
                // Another instance created it between our lookup and now.
                Err(e) if matches!(e.error_kind(), Some(ErrorKind::RoomInUse)) => self
                    .resolve_directory_alias()
                    .await?
                    .ok_or_else(|| MatrixError::DirectoryAliasTaken {
                        alias: self.directory_alias.to_string(),
                        creator: None,
                    })?,
                Err(e) => return Err(e),
            },
        };
        self.check_created_by_bot(&room_id).await?;
        self.ensure_joined(&room_id).await?;
        *cached = Some(room_id.clone());
        Ok(room_id)
    }

    /// Publishes an attestation into the directory room (found or created
    /// on first use) and returns the event ID.
    pub async fn publish(&self, state_key: &str, content: &AttestationContent) -> Result<String> {
        let cached = self.directory_room.lock().await.clone();
        let room_id = match cached {
            Some(room_id) => room_id,
            None => self.ensure_directory_room().await?,
        };
        self.publish_in(&room_id, state_key, content).await
    }

    /// Publishes an attestation into `room_id` (a room the bot serves and
    /// where it has the power to send `io.govtrust.attestation`) and
    /// returns the event ID.
    pub async fn publish_in(
        &self,
        room_id: &RoomId,
        state_key: &str,
        content: &AttestationContent,
    ) -> Result<String> {
        if state_key.is_empty() || state_key.starts_with('@') {
            return Err(MatrixError::InvalidStateKey(state_key.to_owned()));
        }
        let json = content.to_json();
        if json.len() > MAX_CONTENT_BYTES {
            return Err(MatrixError::ContentTooLarge {
                size: json.len(),
                limit: MAX_CONTENT_BYTES,
            });
        }
        let body: Raw<AnyStateEventContent> = Raw::from_json_string(json)
            .map_err(|e| MatrixError::Config(format!("attestation content: {e}")))?;
        let request = send_state_event::v3::Request::new_raw(
            room_id.to_owned(),
            StateEventType::from(EVENT_TYPE),
            state_key.to_owned(),
            body,
        );
        let response = self.client.send(request).await?;
        tracing::info!(room = %room_id, state_key, event_id = %response.event_id, "published attestation");
        Ok(response.event_id.to_string())
    }

    /// Looks up one device's keys with `/keys/query` and checks its
    /// self-signature. `None` if the homeserver does not know the device.
    pub async fn device_keys(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<Option<QueriedDevice>> {
        Ok(self.query_keys(user, Some(device)).await?.0)
    }

    /// Looks up a user's cross-signing identity with `/keys/query` and
    /// checks the master key's signature on the self-signing key. `None` if
    /// the user has not set up cross-signing.
    pub async fn identity(&self, user: &UserId) -> Result<Option<QueriedIdentity>> {
        Ok(self.query_keys(user, None).await?.1)
    }

    /// Both lookups from one `/keys/query` response, so that the device and
    /// the identity checked together come from the same answer.
    pub async fn device_and_identity(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<(Option<QueriedDevice>, Option<QueriedIdentity>)> {
        self.query_keys(user, Some(device)).await
    }

    async fn query_keys(
        &self,
        user: &UserId,
        device: Option<&DeviceId>,
    ) -> Result<(Option<QueriedDevice>, Option<QueriedIdentity>)> {
        let wanted = BTreeMap::from([(user.clone(), device.into_iter().cloned().collect())]);
        let served = self.query_served_keys(&wanted).await?;
        let queried_device = match device {
            Some(device) => served.device(user, device)?,
            None => {
                served.check_failures(user)?;
                None
            }
        };
        Ok((queried_device, served.identity(user)?))
    }

    /// One `/keys/query` for all of `wanted` (user → devices; an empty set
    /// asks for the user's identity only, Synapse then serves every
    /// device, of which none is kept). The answer is kept as served, only
    /// for what was asked: each caller checks its own part with
    /// [`ServedKeys::device`] and [`ServedKeys::identity`], so that what
    /// one device or user served wrongly refuses only that caller.
    pub async fn query_served_keys(
        &self,
        wanted: &BTreeMap<UserId, BTreeSet<DeviceId>>,
    ) -> Result<ServedKeys> {
        let mut request = get_keys::v3::Request::new();
        let mut asked = Vec::with_capacity(wanted.len());
        for (user, devices) in wanted {
            let ruma_user = ruma_user_id(user)?;
            request.device_keys.insert(
                ruma_user.clone(),
                devices
                    .iter()
                    .map(|d| OwnedDeviceId::from(d.as_str()))
                    .collect(),
            );
            asked.push((user, ruma_user, devices));
        }
        let response = self.client.send(request).await?;
        let mut served = ServedKeys::default();
        for (server, failure) in &response.failures {
            served
                .failures
                .insert(server.to_string(), failure.to_string());
        }
        for (user, ruma_user, devices) in asked {
            if let Some(by_device) = response.device_keys.get(&ruma_user) {
                for device in devices {
                    if let Some(raw) = by_device.get(&OwnedDeviceId::from(device.as_str())) {
                        served
                            .devices
                            .insert((user.clone(), device.clone()), raw.json().get().to_owned());
                    }
                }
            }
            if let Some(master) = response.master_keys.get(&ruma_user) {
                served
                    .master_keys
                    .insert(user.clone(), master.json().get().to_owned());
            }
            if let Some(ssk) = response.self_signing_keys.get(&ruma_user) {
                served
                    .self_signing_keys
                    .insert(user.clone(), ssk.json().get().to_owned());
            }
        }
        Ok(served)
    }

    /// Sends `challenge` as an Olm-encrypted `io.govtrust.enrollment_challenge`
    /// to-device message to exactly `device` of `user`, and returns the
    /// device's Ed25519 key that the Olm session was established with.
    ///
    /// The keys come from a fresh `/keys/query` through matrix-sdk, which
    /// drops devices whose self-signature is invalid. Enrollment should
    /// check that the returned key equals the key it certifies: then only
    /// the holder of that key could have read the challenge.
    pub async fn send_challenge(
        &self,
        user: &UserId,
        device: &DeviceId,
        challenge: &str,
    ) -> Result<Ed25519Key> {
        if challenge.is_empty() || challenge.len() > MAX_CHALLENGE_LEN {
            return Err(MatrixError::Config(format!(
                "challenge must be 1 to {MAX_CHALLENGE_LEN} bytes"
            )));
        }
        let ruma_user = ruma_user_id(user)?;
        let ruma_device = OwnedDeviceId::from(device.as_str());
        let encryption = self.client.encryption();
        // Refreshes the user's devices in the crypto store, tracked or not.
        encryption.request_user_identity(&ruma_user).await?;
        let unknown = || MatrixError::UnknownDevice {
            user_id: user.to_string(),
            device_id: device.to_string(),
        };
        let target = encryption
            .get_device(&ruma_user, &ruma_device)
            .await?
            .ok_or_else(unknown)?;
        let key = target
            .ed25519_key()
            .and_then(|k| Ed25519Key::from_base64(&k.to_base64()).ok())
            .ok_or_else(unknown)?;
        let content = EnrollmentChallengeEventContent {
            challenge: challenge.to_owned(),
            service: self.user_id.to_string(),
        };
        let raw = Raw::new(&content)
            .map_err(|e| MatrixError::Config(format!("challenge content: {e}")))?
            .cast_unchecked();
        let failures = encryption
            .encrypt_and_send_raw_to_device(
                vec![&target],
                CHALLENGE_EVENT_TYPE,
                raw,
                Default::default(),
            )
            .await?;
        if !failures.is_empty() {
            return Err(MatrixError::DeliveryFailed {
                user_id: user.to_string(),
                device_id: device.to_string(),
            });
        }
        tracing::info!(user = %user, device = %device, "sent enrollment challenge");
        Ok(key)
    }

    /// Stops the background sync. The bot's device and session stay in the
    /// store directory for the next [`Bot::connect`].
    pub fn shutdown(&self) {
        self.sync_task.abort();
    }

    async fn resolve_directory_alias(&self) -> Result<Option<OwnedRoomId>> {
        match self.client.resolve_room_alias(&self.directory_alias).await {
            Ok(response) => Ok(Some(response.room_id)),
            Err(e) if matches!(e.client_api_error_kind(), Some(ErrorKind::NotFound)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn create_directory_room(&self) -> Result<OwnedRoomId> {
        let mut request = CreateRoomRequest::new();
        request.room_alias_name = Some(self.directory_alias.alias().to_owned());
        request.visibility = Visibility::Public;
        request.preset = Some(RoomPreset::PublicChat);
        request.name = Some("govtrust attestation directory".to_owned());
        request.topic = Some(
            "Government PKI attestations of agency devices and identities \
             (io.govtrust.attestation state events)"
                .to_owned(),
        );
        request.initial_state = vec![
            initial_state(json!({
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "world_readable"},
            }))?,
            initial_state(json!({
                "type": "m.room.guest_access",
                "state_key": "",
                "content": {"guest_access": "can_join"},
            }))?,
        ];
        let power_levels: Raw<RoomPowerLevelsContentOverride> =
            Raw::from_json_string(directory_power_levels().to_string())
                .map_err(|e| MatrixError::Config(format!("power levels: {e}")))?;
        request.power_level_content_override = Some(power_levels);
        let room = self.client.create_room(request).await?;
        tracing::info!(room = %room.room_id(), alias = %self.directory_alias, "created directory room");
        Ok(room.room_id().to_owned())
    }

    /// Refuses a directory room that the bot did not create: its creator
    /// (the `sender` of `m.room.create`) controls its power levels.
    async fn check_created_by_bot(&self, room_id: &RoomId) -> Result<()> {
        let mut request = get_state_event_for_key::v3::Request::new(
            room_id.to_owned(),
            StateEventType::RoomCreate,
            String::new(),
        );
        request.format = get_state_event_for_key::v3::StateEventFormat::Event;
        let creator = match self.client.send(request).await {
            Ok(response) => {
                serde_json::from_str::<serde_json::Value>(response.event_or_content.get())
                    .ok()
                    .and_then(|ev| ev.get("sender").and_then(|s| s.as_str()).map(str::to_owned))
            }
            // Not visible to the bot (it never joined): not its room.
            Err(e) if matches!(e.client_api_error_kind(), Some(ErrorKind::Forbidden)) => None,
            Err(e) => return Err(e.into()),
        };
        if creator.as_deref() == Some(self.user_id.as_str()) {
            Ok(())
        } else {
            Err(MatrixError::DirectoryAliasTaken {
                alias: self.directory_alias.to_string(),
                creator,
            })
        }
    }

    async fn ensure_joined(&self, room_id: &RoomId) -> Result<()> {
        let joined = self
            .client
            .get_room(room_id)
            .is_some_and(|room| room.state() == RoomState::Joined);
        if !joined {
            self.client.join_room_by_id(room_id).await?;
        }
        Ok(())
    }
}

/// What one `/keys/query` served for the users and devices asked about,
/// as the homeserver's JSON (nothing in it is trusted yet): the checks run
/// per caller, for that caller's user and device only.
#[derive(Clone, Debug, Default)]
pub struct ServedKeys {
    /// Device-keys objects, by the (user, device) asked about.
    pub devices: HashMap<(UserId, DeviceId), String>,
    /// Cross-signing master keys, by user.
    pub master_keys: HashMap<UserId, String>,
    /// Cross-signing self-signing keys, by user.
    pub self_signing_keys: HashMap<UserId, String>,
    /// The homeserver's `failures`: servers it could not ask, and why.
    pub failures: BTreeMap<String, String>,
}

impl ServedKeys {
    /// An error if the homeserver reported a failure for `user`'s server:
    /// then its silence about the user means nothing.
    pub fn check_failures(&self, user: &UserId) -> Result<()> {
        match self.failures.get(user.server_name()) {
            Some(failure) => Err(MatrixError::InvalidKeys(format!(
                "key query failed for {}: {failure}",
                user.server_name()
            ))),
            None => Ok(()),
        }
    }

    /// `device` of `user` with its self-signature checked; `None` if the
    /// homeserver did not serve it.
    pub fn device(&self, user: &UserId, device: &DeviceId) -> Result<Option<QueriedDevice>> {
        self.check_failures(user)?;
        self.devices
            .get(&(user.clone(), device.clone()))
            .map(|json| QueriedDevice::parse(user.as_str(), device.as_str(), json))
            .transpose()
            .map_err(MatrixError::from)
    }

    /// `user`'s cross-signing identity with the master key's signature on
    /// the self-signing key checked; `None` if the user has no master key.
    pub fn identity(&self, user: &UserId) -> Result<Option<QueriedIdentity>> {
        self.check_failures(user)?;
        match (self.master_keys.get(user), self.self_signing_keys.get(user)) {
            (None, _) => Ok(None),
            (Some(_), None) => Err(MatrixError::InvalidKeys(format!(
                "{user} has a master key but no self-signing key"
            ))),
            (Some(master), Some(ssk)) => {
                Ok(Some(QueriedIdentity::parse(user.as_str(), master, ssk)?))
            }
        }
    }

    /// Both [`ServedKeys::device`] and [`ServedKeys::identity`], from the
    /// same answer.
    pub fn device_and_identity(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<(Option<QueriedDevice>, Option<QueriedIdentity>)> {
        Ok((self.device(user, device)?, self.identity(user)?))
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        self.sync_task.abort();
    }
}

/// The directory room's power levels, as an override of Synapse's defaults.
///
/// `events` replaces Synapse's whole default map, so the defaults are
/// repeated here. `users` is left out on purpose: Synapse then gives the
/// creator PL 100 (room versions before 12) or leaves the map empty (room
/// version 12, where creators have unlimited power and must not be listed).
/// Either way only the bot reaches the 100 needed for attestations.
fn directory_power_levels() -> serde_json::Value {
    json!({
        "users_default": 0,
        "events_default": 50,
        "state_default": 50,
        "invite": 50,
        "kick": 50,
        "ban": 50,
        "redact": 50,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
            "m.room.join_rules": 100,
            "m.room.guest_access": 100,
            EVENT_TYPE: 100,
        },
    })
}

fn initial_state(event: serde_json::Value) -> Result<Raw<AnyInitialStateEvent>> {
    Raw::from_json_string(event.to_string())
        .map_err(|e| MatrixError::Config(format!("initial state: {e}")))
}

fn ruma_user_id(user: &UserId) -> Result<OwnedUserId> {
    OwnedUserId::try_from(user.as_str())
        .map_err(|e| MatrixError::Config(format!("user ID {user}: {e}")))
}

/// Long-polls `/sync` forever, backing off while the homeserver is away, so
/// that a homeserver outage never ends the loop.
async fn sync_loop(client: Client) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match client
            .sync_once(SyncSettings::default().timeout(SYNC_TIMEOUT))
            .await
        {
            Ok(_) => backoff = Duration::from_secs(1),
            Err(e) => {
                tracing::warn!("Matrix sync failed, retrying in {backoff:?}: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_SYNC_BACKOFF);
            }
        }
    }
}

async fn build_client(config: &MatrixConfig) -> Result<Client> {
    Client::builder()
        .homeserver_url(config.homeserver_url.as_str())
        .sqlite_store(config.store_dir.join(SDK_STORE_DIR), None)
        // Bounded retries: an API call during a homeserver outage must fail
        // (and be retried by the caller) rather than hang forever.
        .request_config(
            RequestConfig::new()
                .timeout(Duration::from_secs(30))
                .retry_limit(3)
                .max_retry_time(Duration::from_secs(20)),
        )
        .build()
        .await
        .map_err(|e| MatrixError::Store(format!("building the Matrix client: {e}")))
}

/// Password login; with `device_id`, logs in to that existing device so the
/// keys in the crypto store stay valid.
async fn login(client: &Client, config: &MatrixConfig, device_id: Option<&str>) -> Result<()> {
    let mut builder = client
        .matrix_auth()
        .login_username(&config.user_id, &config.password)
        .initial_device_display_name(&config.device_display_name);
    if let Some(device_id) = device_id {
        builder = builder.device_id(device_id);
    }
    builder.send().await?;
    Ok(())
}

/// Restores the saved session; if the homeserver no longer accepts its
/// access token, logs in again to the same device.
async fn restore_or_relogin(
    config: &MatrixConfig,
    session_path: &Path,
    saved: SavedSession,
) -> Result<Client> {
    let device_id = saved.session.meta.device_id.to_string();
    let client = build_client(config).await?;
    client.restore_session(saved.session).await?;
    match client.whoami().await {
        Ok(_) => Ok(client),
        Err(e) if matches!(e.client_api_error_kind(), Some(ErrorKind::UnknownToken(_))) => {
            tracing::warn!(device = %device_id, "saved Matrix access token rejected; logging in again");
            drop(client);
            let client = build_client(config).await?;
            login(&client, config, Some(&device_id)).await?;
            save_session(session_path, config, &client)?;
            Ok(client)
        }
        Err(e) => Err(e.into()),
    }
}

fn prepare_store_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)
        .and_then(|()| fs::set_permissions(dir, fs::Permissions::from_mode(0o700)))
        .map_err(|e| MatrixError::Store(format!("{}: {e}", dir.display())))
}

fn load_session(path: &Path) -> Result<Option<SavedSession>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| MatrixError::Store(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(MatrixError::Store(format!("{}: {e}", path.display()))),
    }
}

/// Writes the session atomically with mode 0600: it holds the access token.
fn save_session(path: &Path, config: &MatrixConfig, client: &Client) -> Result<()> {
    let session = client
        .matrix_auth()
        .session()
        .ok_or_else(|| MatrixError::Store("logged in but no session to save".into()))?;
    let saved = SavedSession {
        homeserver_url: config.homeserver_url.to_string(),
        session,
    };
    let bytes = serde_json::to_vec_pretty(&saved)
        .map_err(|e| MatrixError::Store(format!("serialising the session: {e}")))?;
    let tmp: PathBuf = path.with_extension("json.tmp");
    let write = || -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| MatrixError::Store(format!("{}: {e}", path.display())))
}

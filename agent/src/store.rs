//! The agent's own small store: what trust it set, so that it can withdraw
//! exactly that and never touch trust somebody else set.
//!
//! One JSON file, written atomically (temporary file, fsync, rename). It
//! names the account and device it belongs to, so a store copied to another
//! login is refused rather than misread. Losing it loses the ability to
//! withdraw: the agent refuses to start on an unreadable store instead of
//! starting empty.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::AgentError;

const VERSION: u32 = 1;

/// The local trust state the agent set on a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SetTrust {
    /// `LocalTrust::Verified`.
    Verified,
    /// `LocalTrust::BlackListed`.
    BlackListed,
}

/// Why the agent set what it set on a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reason {
    /// A valid device attestation.
    DeviceAttestation,
    /// A valid identity attestation, and the device is signed by that
    /// identity's self-signing key.
    IdentityAttestation,
    /// The device's (or its identity's) attestation was revoked.
    Revoked,
    /// The agent signed the identity, whose attestation no longer holds:
    /// blocking is the only local way back.
    SignatureNoLongerBacked,
}

/// What the agent set on one device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeviceRecord {
    /// The device's Ed25519 key (unpadded base64) when the agent acted.
    pub key: String,
    /// The local trust the agent set.
    pub set: SetTrust,
    /// Why.
    pub reason: Reason,
    /// Serial of the attestation that justified it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Seconds since the Unix epoch.
    pub at: i64,
    /// The last attestation content seen for the device, re-verified when
    /// the attestation cannot be looked up (homeserver unreachable), so
    /// expiry and revocation still apply offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// A user's identity attestation as the agent last accepted it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IdentityRecord {
    /// The master key (unpadded base64) that was attested.
    pub master_key: String,
    /// Whether the agent uploaded a signature of that master key with the
    /// citizen's user-signing key (cannot be taken back).
    pub signed: bool,
    /// Serial of the attestation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Seconds since the Unix epoch.
    pub at: i64,
    /// The last attestation content seen (see [`DeviceRecord::content`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    owner: String,
    /// user ID → device ID → record.
    #[serde(default)]
    devices: BTreeMap<String, BTreeMap<String, DeviceRecord>>,
    #[serde(default)]
    identities: BTreeMap<String, IdentityRecord>,
}

/// The records, loaded in memory, saved on change.
#[derive(Debug)]
pub(crate) struct Store {
    path: PathBuf,
    file: File,
    dirty: bool,
}

impl Store {
    /// Opens (or starts) the store at `path` for the account `owner`
    /// (`@user:server|DEVICE`).
    pub fn open(path: &Path, owner: &str) -> Result<Self, AgentError> {
        let err = |detail: String| AgentError::Store {
            path: path.display().to_string(),
            detail,
        };
        let file = match std::fs::read(path) {
            Ok(bytes) => {
                let file: File = serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?;
                if file.version != VERSION {
                    return Err(err(format!("unsupported version {}", file.version)));
                }
                if file.owner != owner {
                    return Err(err(format!(
                        "belongs to {}, not to this login ({owner})",
                        file.owner
                    )));
                }
                file
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File {
                version: VERSION,
                owner: owner.to_owned(),
                ..File::default()
            },
            Err(e) => return Err(err(e.to_string())),
        };
        Ok(Store {
            path: path.to_owned(),
            file,
            dirty: false,
        })
    }

    pub fn device(&self, user: &str, device: &str) -> Option<&DeviceRecord> {
        self.file.devices.get(user)?.get(device)
    }

    pub fn put_device(&mut self, user: &str, device: &str, record: DeviceRecord) {
        if self.device(user, device) != Some(&record) {
            self.file
                .devices
                .entry(user.to_owned())
                .or_default()
                .insert(device.to_owned(), record);
            self.dirty = true;
        }
    }

    pub fn remove_device(&mut self, user: &str, device: &str) {
        let Some(devices) = self.file.devices.get_mut(user) else {
            return;
        };
        if devices.remove(device).is_some() {
            self.dirty = true;
        }
        if devices.is_empty() {
            self.file.devices.remove(user);
        }
    }

    /// Device IDs recorded for `user`.
    pub fn devices_of(&self, user: &str) -> Vec<String> {
        self.file
            .devices
            .get(user)
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn identity(&self, user: &str) -> Option<&IdentityRecord> {
        self.file.identities.get(user)
    }

    pub fn put_identity(&mut self, user: String, record: IdentityRecord) {
        if self.file.identities.get(&user) != Some(&record) {
            self.file.identities.insert(user, record);
            self.dirty = true;
        }
    }

    pub fn remove_identity(&mut self, user: &str) {
        if self.file.identities.remove(user).is_some() {
            self.dirty = true;
        }
    }

    /// Every user the store holds a record for.
    pub fn users(&self) -> Vec<String> {
        let mut users: Vec<String> = self
            .file
            .devices
            .keys()
            .cloned()
            .chain(self.file.identities.keys().cloned())
            .collect();
        users.sort();
        users.dedup();
        users
    }

    /// Writes the file if anything changed.
    pub fn save(&mut self) -> Result<(), AgentError> {
        if !self.dirty {
            return Ok(());
        }
        let err = |detail: String| AgentError::Store {
            path: self.path.display().to_string(),
            detail,
        };
        let bytes = serde_json::to_vec_pretty(&self.file).map_err(|e| err(e.to_string()))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            // It tells whom the citizen deals with: owner-only.
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| err(e.to_string()))?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_owner_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.json");
        let mut store = Store::open(&path, "@c:hs|DEV").unwrap();
        store.put_device(
            "@a:hs",
            "X",
            DeviceRecord {
                key: "k".into(),
                set: SetTrust::Verified,
                reason: Reason::DeviceAttestation,
                serial: Some("01".into()),
                at: 1,
                content: None,
            },
        );
        store.save().unwrap();
        let again = Store::open(&path, "@c:hs|DEV").unwrap();
        assert_eq!(again.device("@a:hs", "X").unwrap().set, SetTrust::Verified);
        assert_eq!(again.users(), vec!["@a:hs".to_owned()]);
        assert_eq!(again.devices_of("@a:hs"), vec!["X".to_owned()]);
        assert!(matches!(
            Store::open(&path, "@other:hs|DEV"),
            Err(AgentError::Store { .. })
        ));
        std::fs::write(&path, b"{not json").unwrap();
        assert!(Store::open(&path, "@c:hs|DEV").is_err());
    }
}

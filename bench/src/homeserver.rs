//! The homeserver side of `full` mode: a Synapse the bench starts (or one it
//! is given), real device logins and key uploads, and the probes run after
//! the load (outbox drain, standalone `/keys/query`).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use govtrust_service::matrix::Bot;
use govtrust_service::state::AppState;
use govtrust_service::synapse::{HomeserverApi, Synapse, SynapseOptions};
use govtrust_verifier::{DeviceId, UserId};
use serde_json::json;

use crate::devices::BenchDevice;
use crate::report::{BatchQuery, Latency};

/// Sequential `/keys/query` probes after a `full` run.
const KEYS_QUERY_PROBES: usize = 100;
/// Devices in the batched `/keys/query` probe.
const KEYS_QUERY_BATCH: usize = 16;

/// The homeserver of a `full` run: one the bench started, or one given.
pub(crate) struct Homeserver {
    pub(crate) api: HomeserverApi,
    pub(crate) local: Option<Synapse>,
}

impl Homeserver {
    /// Uses a running homeserver, registering users with its shared secret.
    pub(crate) fn connect(base: url::Url, shared_secret: String) -> Result<Homeserver> {
        Ok(Homeserver {
            api: HomeserverApi::new(base, shared_secret)?,
            local: None,
        })
    }

    /// Starts a throwaway Synapse in `dir` on a free loopback port.
    pub(crate) async fn launch(python: Option<&Path>, dir: &Path) -> Result<Homeserver> {
        let synapse = Synapse::start_with(SynapseOptions {
            dir: Some(dir.to_path_buf()),
            python: python.map(Path::to_path_buf),
            venv: None,
            quiet: true,
        })
        .await?;
        Ok(Homeserver {
            api: synapse.api().clone(),
            local: Some(synapse),
        })
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.local.as_ref().and_then(Synapse::pid)
    }

    /// Logs `device` in (creating it) and uploads its signed keys.
    pub(crate) async fn add_device(&self, password: &str, device: &BenchDevice) -> Result<()> {
        let (status, body) = self
            .api
            .call(
                reqwest::Method::POST,
                "/_matrix/client/v3/login",
                None,
                Some(&json!({
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": device.user_id},
                    "password": password,
                    "device_id": device.device_id,
                    "initial_device_display_name": "govtrust bench device",
                })),
            )
            .await?;
        if !status.is_success() {
            bail!(
                "login {} {}: {status} {body}",
                device.user_id,
                device.device_id
            );
        }
        let token = body["access_token"]
            .as_str()
            .context("login: no access_token")?;
        let (status, body) = self
            .api
            .call(
                reqwest::Method::POST,
                "/_matrix/client/v3/keys/upload",
                Some(token),
                Some(&json!({ "device_keys": device.keys_json })),
            )
            .await?;
        if !status.is_success() {
            bail!(
                "/keys/upload {} {}: {status} {body}",
                device.user_id,
                device.device_id
            );
        }
        Ok(())
    }
}

/// Waits for the outbox to empty; returns the seconds it took.
pub(crate) async fn drain_outbox(svc: &AppState, timeout: Duration) -> Result<Option<f64>> {
    let start = Instant::now();
    loop {
        if svc.store.outbox_depth().await? == 0 {
            return Ok(Some(start.elapsed().as_secs_f64()));
        }
        if start.elapsed() > timeout {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sequential single-device `/keys/query` through the bot, and one batch.
pub(crate) async fn probe_keys_query(
    bot: &Bot,
    devices: &[(String, String)],
) -> Result<(Latency, Option<BatchQuery>)> {
    use matrix_sdk::ruma::api::client::keys::get_keys;
    use matrix_sdk::ruma::{OwnedDeviceId, OwnedUserId};

    let mut single = Vec::new();
    for (user, device) in devices.iter().take(KEYS_QUERY_PROBES) {
        let (u, d) = (UserId::parse(user)?, DeviceId::parse(device)?);
        let t = Instant::now();
        let (found, _) = bot.device_and_identity(&u, &d).await?;
        single.push(t.elapsed());
        if found.is_none() {
            bail!("/keys/query does not serve {user} {device}");
        }
    }
    let batch: Vec<_> = devices.iter().take(KEYS_QUERY_BATCH).collect();
    let batch = if batch.len() > 1 {
        let mut times = Vec::new();
        for _ in 0..5 {
            let mut request = get_keys::v3::Request::new();
            for (user, device) in &batch {
                request
                    .device_keys
                    .entry(OwnedUserId::try_from(user.as_str())?)
                    .or_default()
                    .push(OwnedDeviceId::from(device.as_str()));
            }
            let t = Instant::now();
            let response = bot.client().send(request).await?;
            times.push(t.elapsed());
            let served: usize = response.device_keys.values().map(|d| d.len()).sum();
            if served != batch.len() {
                bail!(
                    "batched /keys/query served {served} of {} devices",
                    batch.len()
                );
            }
        }
        let median = Latency::of(times).p50_ms;
        Some(BatchQuery {
            devices: batch.len(),
            ms: median,
            per_device_ms: median / batch.len() as f64,
        })
    } else {
        None
    };
    Ok((Latency::of(single), batch))
}

//! The homeserver side of `full` mode: a Synapse the bench starts (or one it
//! is given), real device logins and key uploads, and the probes run after
//! the load (outbox drain, standalone `/keys/query` with Synapse's CPU).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use govtrust_service::keys::batch::Wanted;
use govtrust_service::matrix::Bot;
use govtrust_service::state::AppState;
use govtrust_service::synapse::{HomeserverApi, Synapse, SynapseOptions};
use govtrust_verifier::{DeviceId, UserId};
use serde_json::json;

use crate::cpu::process_cpu_s;
use crate::devices::BenchDevice;
use crate::report::{KeysQueryProbe, Latency};

/// Devices per request in the `/keys/query` probes after a `full` run: one,
/// as many as 16 clients can have waiting at once, the batcher's default
/// cap.
const KEYS_QUERY_SIZES: [usize; 3] = [1, 16, 64];
/// Requests per probe size: Synapse's CPU is read in 10 ms ticks, so each
/// size runs for a few dozen of them.
const KEYS_QUERY_PROBES: usize = 60;

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

/// Standalone `/keys/query` probes, one after the other on the idle server,
/// through the path the service's batcher uses (`Bot::query_served_keys`):
/// for each size, the latency and Synapse's CPU per request. Fitting
/// fixed + per-device cost to the smallest and largest size is what lets
/// the report split Synapse's CPU during the load.
pub(crate) async fn probe_keys_query(
    bot: &Bot,
    devices: &[(String, String)],
    synapse_pid: Option<u32>,
) -> Result<Vec<KeysQueryProbe>> {
    let ids = devices
        .iter()
        .map(|(u, d)| Ok((UserId::parse(u)?, DeviceId::parse(d)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut probes = Vec::new();
    for size in KEYS_QUERY_SIZES.into_iter().filter(|s| *s <= ids.len()) {
        let mut times = Vec::with_capacity(KEYS_QUERY_PROBES);
        let cpu_before = synapse_pid.and_then(process_cpu_s);
        for round in 0..KEYS_QUERY_PROBES {
            // Another window of devices each time, as during the load.
            let mut wanted = Wanted::new();
            for (user, device) in ids.iter().cycle().skip(round * size % ids.len()).take(size) {
                wanted
                    .entry(user.clone())
                    .or_default()
                    .insert(device.clone());
            }
            let t = Instant::now();
            let served = bot.query_served_keys(&wanted).await?;
            times.push(t.elapsed());
            if served.devices.len() != size {
                bail!(
                    "/keys/query served {} of {size} devices",
                    served.devices.len()
                );
            }
        }
        let cpu_after = synapse_pid.and_then(process_cpu_s);
        probes.push(KeysQueryProbe {
            devices: size,
            latency: Latency::of(times),
            synapse_cpu_ms: cpu_before
                .zip(cpu_after)
                .map(|(before, after)| (after - before) * 1000.0 / KEYS_QUERY_PROBES as f64),
        });
    }
    Ok(probes)
}

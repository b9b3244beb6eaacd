//! The closed-loop load driver: each agency client enrolls its devices one
//! after the other (challenge, sign, enroll), all clients at once, with the
//! CPU of every party sampled around the load phase.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use govtrust_api::enrollment::{ChallengeRequest, EnrollRequest, Kind, Proof};
use govtrust_api::keys::signing_bytes;
use govtrust_service::agency::ServiceClient;
use serde_json::Value;

use crate::cpu::{CpuProbe, CpuSnapshot};
use crate::devices::BenchDevice;

/// One successful enrollment's timings.
pub(crate) struct Sample {
    pub(crate) total: Duration,
    pub(crate) challenge: Duration,
    pub(crate) enroll: Duration,
}

/// What one agency client achieved.
struct AgencyOutcome {
    samples: Vec<Sample>,
    errors: Vec<String>,
}

/// One enrollment with signature proof, as an agency does it.
async fn enroll_one(
    client: &ServiceClient,
    device: &BenchDevice,
    wait_for_event_ms: Option<u64>,
) -> Result<Sample> {
    let t0 = Instant::now();
    let challenge = client
        .challenge(&ChallengeRequest {
            kind: Kind::Device,
            user_id: device.user_id.clone(),
            device_id: device.device_id.clone(),
            proof: Proof::Signature,
        })
        .await
        .context("challenge")?;
    let t1 = Instant::now();
    let payload = challenge
        .signing_payload
        .context("the challenge carries no signing payload")?;
    let payload = payload
        .as_object()
        .context("the signing payload is not an object")?;
    // An agency signs only what it asked for.
    if payload.get("user_id").and_then(Value::as_str) != Some(&device.user_id)
        || payload.get("device_id").and_then(Value::as_str) != Some(&device.device_id)
    {
        bail!("the signing payload names another user or device");
    }
    let nonce = payload
        .get("challenge")
        .and_then(Value::as_str)
        .context("the signing payload has no challenge")?
        .to_owned();
    let bytes = signing_bytes(payload).context("the signing payload is not canonical JSON")?;
    let signature = STANDARD_NO_PAD.encode(device.key.sign(&bytes).as_ref());
    let t2 = Instant::now();
    let enrolled = client
        .enroll(&EnrollRequest {
            kind: Kind::Device,
            user_id: device.user_id.clone(),
            device_id: device.device_id.clone(),
            key: device.key_b64.clone(),
            challenge: nonce,
            signature: Some(signature),
            wait_for_event_ms,
            rsa_public_key: None,
        })
        .await
        .context("enrollment")?;
    let t3 = Instant::now();
    if enrolled.chain.len() != 2 {
        bail!(
            "the enrollment returned a chain of {}",
            enrolled.chain.len()
        );
    }
    Ok(Sample {
        total: t3 - t0,
        challenge: t1 - t0,
        enroll: t3 - t2,
    })
}

/// One agency client's closed loop over its devices.
async fn run_agency(
    client: ServiceClient,
    devices: Vec<BenchDevice>,
    wait_for_event_ms: Option<u64>,
) -> AgencyOutcome {
    let mut outcome = AgencyOutcome {
        samples: Vec::with_capacity(devices.len()),
        errors: Vec::new(),
    };
    for device in &devices {
        match enroll_one(&client, device, wait_for_event_ms).await {
            Ok(sample) => outcome.samples.push(sample),
            Err(e) => outcome
                .errors
                .push(format!("{} {}: {e:#}", device.user_id, device.device_id)),
        }
    }
    outcome
}

/// The load phase: its wall time, the successful enrollments' timings,
/// the failures, and the CPU seconds per party.
pub(crate) struct LoadResult {
    pub(crate) elapsed: Duration,
    pub(crate) samples: Vec<Sample>,
    pub(crate) errors: Vec<String>,
    pub(crate) cpu: BTreeMap<String, f64>,
}

/// Runs every agency client at once on the current runtime and collects
/// their outcomes.
pub(crate) async fn drive(
    work: Vec<(ServiceClient, Vec<BenchDevice>)>,
    wait_for_event_ms: Option<u64>,
    probe: CpuProbe,
) -> Result<LoadResult> {
    let cpu_before = CpuSnapshot::take(probe);
    let start = Instant::now();
    let tasks: Vec<_> = work
        .into_iter()
        .map(|(client, devices)| tokio::spawn(run_agency(client, devices, wait_for_event_ms)))
        .collect();
    let mut samples = Vec::new();
    let mut errors = Vec::new();
    for task in tasks {
        let outcome = task.await.context("a client task panicked")?;
        samples.extend(outcome.samples);
        errors.extend(outcome.errors);
    }
    let elapsed = start.elapsed();
    let cpu = CpuSnapshot::take(probe).since(&cpu_before);
    Ok(LoadResult {
        elapsed,
        samples,
        errors,
        cpu,
    })
}

//! The bench's side of Matrix identity: agencies (authority, user,
//! password) and their devices (Ed25519 key and self-signed device-keys
//! JSON), generated up front so that key generation is not part of the load.

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use govtrust_api::keys::signing_bytes;
use govtrust_service::keys::KeyAnswer;
use govtrust_service::matrix::QueriedDevice;
use govtrust_verifier::AuthorityRecord;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Map, Value};

/// A Matrix device the bench controls: its Ed25519 key and its signed
/// device-keys object (as `/keys/upload` takes it and `/keys/query` serves it).
pub(crate) struct BenchDevice {
    pub(crate) user_id: String,
    pub(crate) device_id: String,
    pub(crate) key: Ed25519KeyPair,
    pub(crate) key_b64: String,
    pub(crate) keys_json: Map<String, Value>,
}

impl BenchDevice {
    pub(crate) fn generate(
        user_id: &str,
        device_id: &str,
        rng: &SystemRandom,
    ) -> Result<BenchDevice> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(rng)
            .map_err(|_| anyhow!("Ed25519 key generation failed"))?;
        let key =
            Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| anyhow!("Ed25519 key: {e}"))?;
        let key_b64 = STANDARD_NO_PAD.encode(key.public_key().as_ref());
        // Synapse does not look at it and the signature proof does not use
        // it; a real device's Olm identity key would go here.
        let mut curve = [0u8; 32];
        rng.fill(&mut curve)
            .map_err(|_| anyhow!("system randomness unavailable"))?;
        let Value::Object(mut keys_json) = json!({
            "user_id": user_id,
            "device_id": device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                format!("ed25519:{device_id}"): key_b64,
                format!("curve25519:{device_id}"): STANDARD_NO_PAD.encode(curve),
            },
        }) else {
            bail!("device keys are not a JSON object");
        };
        let bytes = signing_bytes(&keys_json).context("device keys are not canonical JSON")?;
        let signature = STANDARD_NO_PAD.encode(key.sign(&bytes).as_ref());
        keys_json.insert(
            "signatures".into(),
            json!({ user_id: { format!("ed25519:{device_id}"): signature } }),
        );
        Ok(BenchDevice {
            user_id: user_id.to_owned(),
            device_id: device_id.to_owned(),
            key,
            key_b64,
            keys_json,
        })
    }

    /// What `/keys/query` would say about this device, checked the way the
    /// service checks a homeserver's answer.
    pub(crate) fn key_answer(&self) -> Result<KeyAnswer> {
        let text = serde_json::to_string(&self.keys_json)?;
        let device = QueriedDevice::parse(&self.user_id, &self.device_id, &text)?;
        if !device.self_signed {
            bail!("bench device {} is not self-signed", self.device_id);
        }
        Ok(KeyAnswer {
            device: Some(device),
            identity: None,
        })
    }
}

/// One agency: its authority, its Matrix user and its devices.
pub(crate) struct Agency {
    pub(crate) record: AuthorityRecord,
    pub(crate) localpart: String,
    pub(crate) user_id: String,
    pub(crate) password: String,
    pub(crate) devices: Vec<BenchDevice>,
}

/// The agencies of a run, `clients` of them, with `enrollments` devices
/// spread evenly over them (device `j` belongs to agency `j % clients`).
pub(crate) fn agencies(
    run: &str,
    server: &str,
    clients: u32,
    enrollments: u32,
    rng: &SystemRandom,
) -> Result<Vec<Agency>> {
    let mut out: Vec<Agency> = (0..clients)
        .map(|i| {
            let localpart = format!("bench-{run}-agency-{i}");
            Ok(Agency {
                record: AuthorityRecord {
                    id: format!("DE-BENCH-{run}-{i:04}"),
                    name: format!("Benchmark Agency {i}"),
                    locality: Some("Berlin".into()),
                    country: Some("DE".into()),
                    ..Default::default()
                },
                user_id: format!("@{localpart}:{server}"),
                localpart,
                password: random_hex(rng, 16)?,
                devices: Vec::new(),
            })
        })
        .collect::<Result<_>>()?;
    for j in 0..enrollments {
        let agency = &mut out[(j % clients) as usize];
        let device = BenchDevice::generate(&agency.user_id, &format!("BENCH{j:07}"), rng)?;
        agency.devices.push(device);
    }
    Ok(out)
}

/// `bytes` random bytes as lowercase hex (run ids, passwords).
pub(crate) fn random_hex(rng: &SystemRandom, bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    rng.fill(&mut buf)
        .map_err(|_| anyhow!("system randomness unavailable"))?;
    Ok(govtrust_pki::hex(&buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_devices_are_self_signed() {
        let rng = SystemRandom::new();
        let d = BenchDevice::generate("@a:bench.example", "DEV1", &rng).unwrap();
        let answer = d.key_answer().unwrap();
        let device = answer.device.unwrap();
        assert!(device.self_signed);
        assert_eq!(device.ed25519.to_base64(), d.key_b64);
    }
}

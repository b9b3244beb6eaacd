//! The sealing device: the sealing key registered as a Matrix device of
//! the agency user (login + self-signed device keys) and enrolled with the
//! service through the `signature` proof.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use govtrust_api::enrollment::{ChallengeRequest, EnrollRequest, EnrollResponse, Kind, Proof};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};

use super::error::SealError;
use super::key::{keypair, pkcs8_der};
use crate::agency::ServiceClient;

/// Registers the sealing key as a Matrix device of `user` (password
/// login, then self-signed device keys), so the service can enroll it.
/// Returns the device ID.
pub async fn register_sealing_device(
    http: &reqwest::Client,
    homeserver: &url::Url,
    user: &str,
    password: &str,
    pkcs8: &[u8],
) -> Result<String, SealError> {
    let key = keypair(&pkcs8_der(pkcs8)?)?;
    let matrix = |e: reqwest::Error| SealError::Matrix(e.to_string());
    let url = |path: &str| {
        homeserver
            .join(path)
            .map_err(|e| SealError::Matrix(e.to_string()))
    };
    let session: Value = http
        .post(url("_matrix/client/v3/login")?)
        .json(&json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
            "initial_device_display_name": "govtrust sealing key",
        }))
        .send()
        .await
        .map_err(matrix)?
        .error_for_status()
        .map_err(matrix)?
        .json()
        .await
        .map_err(matrix)?;
    let field = |name: &str| {
        session[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| SealError::Matrix(format!("login answer without {name}")))
    };
    let (user_id, device_id, token) = (
        field("user_id")?,
        field("device_id")?,
        field("access_token")?,
    );
    // The device never runs Olm; a curve25519 key is still required by the
    // device-keys schema, so it gets a random one nobody holds.
    let mut curve = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut curve)
        .map_err(|_| SealError::Key("randomness".into()))?;
    let mut keys = json!({
        "user_id": user_id,
        "device_id": device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {
            format!("ed25519:{device_id}"): STANDARD_NO_PAD.encode(key.public_key().as_ref()),
            format!("curve25519:{device_id}"): STANDARD_NO_PAD.encode(curve),
        },
    });
    keys["signatures"] = json!({ user_id.clone(): {
        format!("ed25519:{device_id}"): sign_object(&key, &keys)?,
    }});
    http.post(url("_matrix/client/v3/keys/upload")?)
        .bearer_auth(&token)
        .json(&json!({ "device_keys": keys }))
        .send()
        .await
        .map_err(matrix)?
        .error_for_status()
        .map_err(matrix)?;
    Ok(device_id)
}

fn sign_object(key: &Ed25519KeyPair, object: &Value) -> Result<String, SealError> {
    let map = object
        .as_object()
        .ok_or_else(|| SealError::Document("not a JSON object".into()))?;
    let bytes = govtrust_api::keys::signing_bytes(map)
        .ok_or_else(|| SealError::Document("not canonical JSON".into()))?;
    Ok(STANDARD_NO_PAD.encode(key.sign(&bytes).as_ref()))
}

/// Enrolls the sealing device with the service (device attestation,
/// `signature` proof: the service's signing payload signed with the key).
pub async fn enroll_sealing_device(
    service: &ServiceClient,
    user: &str,
    device: &str,
    pkcs8: &[u8],
) -> anyhow::Result<EnrollResponse> {
    let key = keypair(&pkcs8_der(pkcs8)?)?;
    let answer = service
        .challenge(&ChallengeRequest {
            kind: Kind::Device,
            user_id: user.to_owned(),
            device_id: device.to_owned(),
            proof: Proof::Signature,
        })
        .await?;
    let payload = answer
        .signing_payload
        .ok_or_else(|| anyhow::anyhow!("the service sent no signing payload"))?;
    let challenge = payload["challenge"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("signing payload without challenge"))?
        .to_owned();
    service
        .enroll(&EnrollRequest {
            kind: Kind::Device,
            user_id: user.to_owned(),
            device_id: device.to_owned(),
            key: STANDARD_NO_PAD.encode(key.public_key().as_ref()),
            challenge,
            signature: Some(sign_object(&key, &payload)?),
            wait_for_event_ms: None,
            rsa_public_key: None,
        })
        .await
}

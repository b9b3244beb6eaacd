//! The enrollment API's request bodies, as an agency (possibly hostile or
//! compromised) sends them — `POST /v1/enrollment/challenge`
//! (`ChallengeRequest`) and `POST /v1/enrollment` (`EnrollRequest`) — through
//! the same serde decoding the JSON extractor uses and the pure checks the
//! handlers run on them (Matrix ID and key parsing, the authority policy),
//! plus the `/keys/query` device objects a homeserver (untrusted) serves
//! and the canonical JSON their signatures are checked over.
//!
//! All of it lives in the pure crate `govtrust-api`, which the service
//! calls: the target exercises the service's own code, in a small build.
#![no_main]

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use govtrust_api::enrollment::{ChallengeRequest, EnrollRequest};
use govtrust_api::keys::{signing_bytes, QueriedDevice};
use govtrust_api::policy::{check_user, glob_match, validate_pattern};
use govtrust_verifier::{DeviceId, Ed25519Key, UserId};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const SERVERS: [&str; 2] = ["id.bund.example", "matrix.bund.example"];
const PATTERNS: [&str; 4] = ["office", "office-*", "*-bot", "a*b*c"];

fn user_and_device(user: &str, device: &str) {
    let servers: Vec<String> = SERVERS.iter().map(|s| s.to_string()).collect();
    let patterns: Vec<String> = PATTERNS.iter().map(|s| s.to_string()).collect();
    if let Ok(u) = UserId::parse(user) {
        // The parsed form must survive a round trip through its text.
        let again = UserId::parse(&u.to_string()).expect("a parsed user ID re-parses");
        assert_eq!(again, u);
        if check_user(&u, &servers, &patterns).is_ok() {
            assert!(SERVERS.contains(&u.server_name()));
        }
    }
    let _ = DeviceId::parse(device);
    // Hostile patterns against hostile text: glob_match claims linear time.
    if validate_pattern(device).is_ok() {
        let _ = glob_match(device, user);
    }
}

fn key(b64: &str) {
    if let Ok(k) = Ed25519Key::from_base64(b64) {
        assert_eq!(
            Ed25519Key::from_base64(&k.to_base64()).expect("re-parses"),
            k
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<ChallengeRequest>(data) {
        let json = serde_json::to_vec(&req).expect("serialises");
        let again: ChallengeRequest = serde_json::from_slice(&json).expect("re-parses");
        assert_eq!(again.user_id, req.user_id);
        assert_eq!(again.device_id, req.device_id);
        user_and_device(&req.user_id, &req.device_id);
    }
    if let Ok(req) = serde_json::from_slice::<EnrollRequest>(data) {
        let json = serde_json::to_vec(&req).expect("serialises");
        let again: EnrollRequest = serde_json::from_slice(&json).expect("re-parses");
        assert_eq!(again.key, req.key);
        assert_eq!(again.challenge, req.challenge);
        user_and_device(&req.user_id, &req.device_id);
        key(&req.key);
        if let Some(sig) = &req.signature {
            let _ = STANDARD_NO_PAD
                .decode(sig)
                .or_else(|_| STANDARD.decode(sig));
        }
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(object) = serde_json::from_str::<Map<String, Value>>(text) {
        // Canonical JSON is a fixed point: what is signed re-canonicalises
        // to the same bytes.
        if let Some(bytes) = signing_bytes(&object) {
            let reparsed: Map<String, Value> =
                serde_json::from_slice(&bytes).expect("canonical JSON parses");
            assert_eq!(signing_bytes(&reparsed).as_deref(), Some(bytes.as_slice()));
        }
        // /keys/query device object for the device the service asked about,
        // and for whatever the object itself claims to be.
        let _ = QueriedDevice::parse("@office:id.bund.example", "AGENCYDEV", text);
        if let (Some(Value::String(u)), Some(Value::String(d))) =
            (object.get("user_id"), object.get("device_id"))
        {
            if let Ok(device) = QueriedDevice::parse(u, d, text) {
                assert_eq!(&device.user_id, u);
                assert_eq!(&device.device_id, d);
            }
        }
    }
});

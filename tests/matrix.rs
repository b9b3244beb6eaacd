//! The Matrix module against a real Synapse (installed into a venv on
//! first use, see tests/support/synapse.rs) and real matrix-sdk clients.
//!
//! One Synapse serves the whole scenario, which runs as a single test in
//! sequence: each step builds on the rooms, devices and keys of the ones
//! before, and starting Synapse once keeps the run short.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/synapse.rs"]
mod synapse;

use harness::{enc, login, spawn_sync, step};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use govtrust_verifier::event::{state_key, AttestationContent, AttestationKind, EVENT_TYPE};
use govtrust_verifier::{DeviceId, Ed25519Key, Subject, UserId};
use matrix_sdk::ruma::api::client::uiaa;
use matrix_sdk::ruma::{OwnedRoomId, OwnedUserId};
use matrix_sdk::Client;
use reqwest::{Method, StatusCode};
use serde_json::json;
use synapse::Synapse;
use url::Url;

use govtrust_service::matrix::{
    Bot, ChallengeReceiver, MatrixConfig, MatrixError, CHALLENGE_EVENT_TYPE,
};

const BOT_PW: &str = "bot-password";
const AGENCY_PW: &str = "agency-password";
const CITIZEN_PW: &str = "citizen-password";

fn sample_content(user: &str, device: &str, key: &Ed25519Key) -> AttestationContent {
    AttestationContent {
        version: 1,
        kind: AttestationKind::Device,
        user_id: user.to_owned(),
        device_id: Some(device.to_owned()),
        key: key.to_base64(),
        // Placeholder DER: publishing is transport only, nothing here
        // parses the chain.
        chain: vec![
            STANDARD.encode([0x30u8; 600]),
            STANDARD.encode([0x30u8; 500]),
        ],
        expires_at: Some(1_900_000_000_000),
        revoked: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_against_synapse() {
    let t0 = Instant::now();
    let mut hs = Synapse::new().await.expect("start Synapse");
    step(t0, "synapse up");

    let bot_id = hs
        .register("govtrust", BOT_PW, false)
        .await
        .expect("register bot");
    let agency_id = hs
        .register("agency", AGENCY_PW, false)
        .await
        .expect("register agency");
    let citizen_id = hs
        .register("citizen", CITIZEN_PW, false)
        .await
        .expect("register citizen");
    let citizen = hs
        .login(&citizen_id, CITIZEN_PW, None)
        .await
        .expect("citizen login");

    let tmp = tempfile::tempdir().expect("temp dir");
    let config = MatrixConfig::new(
        Url::parse(&hs.base_url()).expect("url"),
        bot_id.clone(),
        BOT_PW,
        tmp.path().join("bot"),
    );
    let bot = Bot::connect(config.clone()).await.expect("bot connect");
    let bot_device = bot.device_id().expect("bot device");
    step(t0, "bot connected");

    let agency = login(
        &hs.base_url(),
        &agency_id,
        AGENCY_PW,
        &tmp.path().join("agency"),
    )
    .await;
    let agency_sync = spawn_sync(agency.clone(), Duration::from_secs(5), None);
    let agency_device = agency.device_id().expect("agency device").to_string();
    step(t0, "agency client logged in");

    let room_id = directory_room(&hs, &bot, &citizen.access_token).await;
    step(t0, "(a) directory room");

    publish(&hs, &bot, &room_id, &agency_id, &agency_device).await;
    step(t0, "(b) publish");

    let agency_user = UserId::parse(&agency_id).expect("agency id");
    let agency_dev = DeviceId::parse(&agency_device).expect("agency device id");
    device_keys(&hs, &bot, &agency, &agency_user, &agency_dev).await;
    step(t0, "(c) device keys");

    let receiver = ChallengeReceiver::install(&agency, bot.user_id().to_owned());
    challenge(&hs, &bot, &agency, &receiver, &agency_user, &agency_dev).await;
    step(t0, "(d) challenge");

    identity(&bot, &agency, &agency_user, &agency_dev, &citizen_id).await;
    step(t0, "(e) identity");

    // Restart: the bot restores its session and device instead of logging
    // in again; a directory alias squatted by someone else is refused.
    let session_before = std::fs::read(tmp.path().join("bot/session.json")).expect("session");
    drop(bot);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let squat_room = create_squat_room(&hs, &citizen.access_token).await;
    let mut squat_config = config.clone();
    squat_config.directory_alias_localpart = "squat".into();
    let squatted = Bot::connect(squat_config).await.expect("bot reconnect");
    assert_eq!(squatted.device_id().as_ref(), Some(&bot_device));
    match squatted.ensure_directory_room().await {
        Err(MatrixError::DirectoryAliasTaken { creator, .. }) => {
            assert_eq!(
                creator.as_deref(),
                Some(citizen_id.as_str()),
                "{squat_room}"
            )
        }
        other => panic!("squatted alias accepted: {other:?}"),
    }
    drop(squatted);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bot = Bot::connect(config.clone()).await.expect("bot reconnect");
    assert_eq!(bot.device_id().as_ref(), Some(&bot_device));
    let session_after = std::fs::read(tmp.path().join("bot/session.json")).expect("session");
    assert_eq!(session_before, session_after, "the bot logged in again");
    let token = bot.client().access_token().expect("token");
    let (status, devices) = hs
        .call(
            Method::GET,
            "/_matrix/client/v3/devices",
            Some(&token),
            None,
        )
        .await
        .expect("devices");
    assert_eq!(status, StatusCode::OK);
    // Registration made one device; the bot's logins made exactly one more.
    let bot_devices: Vec<_> = devices["devices"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|d| d["display_name"] == config.device_display_name.as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(bot_devices.len(), 1, "{devices}");
    assert_eq!(bot_devices[0]["device_id"], bot_device.as_str());
    assert_eq!(
        bot.ensure_directory_room().await.expect("directory"),
        room_id
    );
    step(t0, "bot restarted with the same device");

    // Homeserver outage: calls fail (bounded, transient) instead of
    // hanging, and everything works again once it is back.
    hs.stop();
    let started = Instant::now();
    let content = sample_content(&agency_id, &agency_device, &Ed25519Key::from_bytes([1; 32]));
    let key = state_key(&agency_user, &Subject::Device(agency_dev.clone()));
    let err = bot
        .publish(&key, &content)
        .await
        .expect_err("publish during outage");
    assert!(err.is_transient(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    step(
        t0,
        &format!(
            "outage: publish failed after {:?}: {err}",
            started.elapsed()
        ),
    );
    hs.start().await.expect("restart Synapse");
    step(t0, "synapse restarted");
    bot.publish(&key, &content)
        .await
        .expect("publish after outage");
    receiver.clear().await;
    bot.send_challenge(&agency_user, &agency_dev, "after-outage")
        .await
        .expect("challenge after outage");
    assert_eq!(
        receiver
            .next(Duration::from_secs(60))
            .await
            .expect("challenge after outage"),
        "after-outage"
    );
    step(t0, "(outage) recovered");

    drop(receiver);
    agency_sync.abort();
    drop(bot);
    hs.stop();
    step(t0, "done");
}

/// (a) The directory room: created once, found again, world-readable, and
/// only the bot may send attestations.
async fn directory_room(hs: &Synapse, bot: &Bot, citizen_token: &str) -> OwnedRoomId {
    let room_id = bot.ensure_directory_room().await.expect("create directory");
    assert_eq!(
        bot.ensure_directory_room().await.expect("find directory"),
        room_id,
        "second call must find the same room"
    );
    let alias = format!("#govtrust-directory:{}", hs.server_name());
    let (status, resolved) = hs
        .call(
            Method::GET,
            &format!("/_matrix/client/v3/directory/room/{}", enc(&alias)),
            Some(citizen_token),
            None,
        )
        .await
        .expect("resolve alias");
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(resolved["room_id"], room_id.as_str());

    let room = enc(room_id.as_str());
    // A non-member reads the room's state: it is world-readable.
    let state = |event_type: &'static str| {
        let path = format!("/_matrix/client/v3/rooms/{room}/state/{event_type}/");
        async move {
            let (status, body) = hs
                .call(Method::GET, &path, Some(citizen_token), None)
                .await
                .expect("get state");
            assert_eq!(status, StatusCode::OK, "{event_type}: {body}");
            body
        }
    };
    assert_eq!(
        state("m.room.history_visibility").await["history_visibility"],
        "world_readable"
    );
    assert_eq!(
        state("m.room.guest_access").await["guest_access"],
        "can_join"
    );
    assert_eq!(state("m.room.join_rules").await["join_rule"], "public");
    let pl = state("m.room.power_levels").await;
    assert_eq!(pl["events"][EVENT_TYPE], 100, "{pl}");
    assert_eq!(pl["users_default"], 0, "{pl}");
    assert_eq!(pl["events"]["m.room.power_levels"], 100, "{pl}");
    let bot_level = pl["users"][bot.user_id().as_str()].as_i64();
    let version = state("m.room.create").await["room_version"].clone();
    eprintln!("directory room version {version}, bot power level {bot_level:?}");
    assert!(
        bot_level == Some(100) || version == "12",
        "bot must have PL 100 (or be the v12 creator): {pl} {version}"
    );

    // A citizen who joins still may not publish attestations (nor chat).
    let (status, body) = hs
        .call(
            Method::POST,
            &format!("/_matrix/client/v3/join/{room}"),
            Some(citizen_token),
            Some(&json!({})),
        )
        .await
        .expect("join");
    assert_eq!(status, StatusCode::OK, "{body}");
    let forged_key = enc("device|@citizen:localhost|FORGED");
    let (status, body) = hs
        .call(
            Method::PUT,
            &format!("/_matrix/client/v3/rooms/{room}/state/{EVENT_TYPE}/{forged_key}"),
            Some(citizen_token),
            Some(&json!({"version": 1, "kind": "device"})),
        )
        .await
        .expect("forged state");
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["errcode"], "M_FORBIDDEN");
    let (status, body) = hs
        .call(
            Method::PUT,
            &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/t1"),
            Some(citizen_token),
            Some(&json!({"msgtype": "m.text", "body": "spam"})),
        )
        .await
        .expect("message");
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    room_id
}

/// (b) Publishing: the state event is readable by a non-member with the
/// same content, sent by the bot; bad state keys and oversized content are
/// refused before anything is sent.
async fn publish(
    hs: &Synapse,
    bot: &Bot,
    room_id: &OwnedRoomId,
    agency_id: &str,
    agency_device: &str,
) {
    let user = UserId::parse(agency_id).expect("user");
    let device = DeviceId::parse(agency_device).expect("device");
    let key = state_key(&user, &Subject::Device(device));
    let content = sample_content(agency_id, agency_device, &Ed25519Key::from_bytes([7; 32]));
    let event_id = bot.publish(&key, &content).await.expect("publish");
    assert!(event_id.starts_with('$'), "{event_id}");

    // Read as a user who never joined: the room is world-readable.
    let outsider_id = hs
        .register("outsider", "outsider-pw", false)
        .await
        .expect("register outsider");
    let outsider = hs
        .login(&outsider_id, "outsider-pw", None)
        .await
        .expect("outsider login");
    let path = format!(
        "/_matrix/client/v3/rooms/{}/state/{EVENT_TYPE}/{}",
        enc(room_id.as_str()),
        enc(&key)
    );
    let (status, body) = hs
        .call(Method::GET, &path, Some(&outsider.access_token), None)
        .await
        .expect("read state");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, serde_json::to_value(&content).expect("json"));
    let parsed = AttestationContent::from_json(body.to_string().as_bytes()).expect("parse");
    assert_eq!(parsed, content);
    let (status, event) = hs
        .call(
            Method::GET,
            &format!("{path}?format=event"),
            Some(&outsider.access_token),
            None,
        )
        .await
        .expect("read event");
    assert_eq!(status, StatusCode::OK, "{event}");
    assert_eq!(event["sender"], bot.user_id().as_str());
    assert_eq!(event["event_id"], event_id.as_str());

    // Also into a room given by ID.
    let event_id2 = bot
        .publish_in(room_id, &format!("{key}|again"), &content)
        .await
        .expect("publish_in");
    assert_ne!(event_id, event_id2);

    assert!(matches!(
        bot.publish(&format!("@{agency_id}"), &content).await,
        Err(MatrixError::InvalidStateKey(_))
    ));
    assert!(matches!(
        bot.publish("", &content).await,
        Err(MatrixError::InvalidStateKey(_))
    ));
    let mut huge = content.clone();
    huge.chain = vec![STANDARD.encode(vec![0u8; 20_000])];
    assert!(matches!(
        bot.publish(&key, &huge).await,
        Err(MatrixError::ContentTooLarge { .. })
    ));
}

/// (c) Device keys: the bot sees the key the agency's own client reports,
/// self-signed; a device uploaded with a forged signature is flagged, and
/// matrix-sdk will not even send it a challenge.
async fn device_keys(
    hs: &Synapse,
    bot: &Bot,
    agency: &Client,
    agency_user: &UserId,
    agency_dev: &DeviceId,
) {
    let own_key = agency.encryption().ed25519_key().await.expect("own key");
    let queried = bot
        .device_keys(agency_user, agency_dev)
        .await
        .expect("query")
        .expect("device known");
    assert_eq!(queried.ed25519.to_base64(), own_key);
    assert!(queried.self_signed);
    assert_eq!(
        Some(queried.curve25519.clone()),
        agency
            .encryption()
            .curve25519_key()
            .await
            .map(|k| k.to_base64())
    );
    assert_eq!(queried.display_name.as_deref(), Some("e2e"));

    let missing = DeviceId::parse("NOSUCHDEVICE").expect("id");
    assert!(bot
        .device_keys(agency_user, &missing)
        .await
        .expect("query")
        .is_none());

    // Synapse stores whatever it is given: upload a device whose
    // self-signature is made over different content.
    let tampered = hs
        .login(agency_user.as_str(), AGENCY_PW, Some("TAMPERED"))
        .await
        .expect("login TAMPERED");
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("keygen");
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
    let public = base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(ring::signature::KeyPair::public_key(&pair).as_ref());
    let wrong_sig = base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(pair.sign(b"something else").as_ref());
    let upload = json!({
        "device_keys": {
            "user_id": agency_user.as_str(),
            "device_id": "TAMPERED",
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                "ed25519:TAMPERED": public,
                "curve25519:TAMPERED": "dGFtcGVyZWRjdXJ2ZWtleXRhbXBlcmVkY3VydmVrZXk",
            },
            "signatures": {agency_user.as_str(): {"ed25519:TAMPERED": wrong_sig}},
        }
    });
    let (status, body) = hs
        .call(
            Method::POST,
            "/_matrix/client/v3/keys/upload",
            Some(&tampered.access_token),
            Some(&upload),
        )
        .await
        .expect("upload");
    assert_eq!(
        status,
        StatusCode::OK,
        "Synapse refused the forged upload: {body}"
    );
    let tampered_dev = DeviceId::parse("TAMPERED").expect("id");
    let queried = bot
        .device_keys(agency_user, &tampered_dev)
        .await
        .expect("query")
        .expect("tampered device served");
    assert_eq!(queried.ed25519.to_base64(), public);
    assert!(!queried.self_signed, "forged self-signature accepted");
    match bot
        .send_challenge(agency_user, &tampered_dev, "to-tampered")
        .await
    {
        Err(MatrixError::UnknownDevice { .. }) => {}
        other => panic!("challenge to a forged device: {other:?}"),
    }
}

/// (d) Challenges: an Olm-encrypted challenge reaches the receiver; a
/// plaintext to-device event of the same type (sent first) does not.
async fn challenge(
    hs: &Synapse,
    bot: &Bot,
    agency: &Client,
    receiver: &ChallengeReceiver,
    agency_user: &UserId,
    agency_dev: &DeviceId,
) {
    let bot_token = bot.client().access_token().expect("bot token");
    let plaintext = json!({
        "messages": {
            agency_user.as_str(): {
                agency_dev.as_str(): {"challenge": "plaintext", "service": bot.user_id().as_str()}
            }
        }
    });
    let (status, body) = hs
        .call(
            Method::PUT,
            &format!("/_matrix/client/v3/sendToDevice/{CHALLENGE_EVENT_TYPE}/plain1"),
            Some(&bot_token),
            Some(&plaintext),
        )
        .await
        .expect("plaintext to-device");
    assert_eq!(status, StatusCode::OK, "{body}");

    let key = bot
        .send_challenge(agency_user, agency_dev, "challenge-1")
        .await
        .expect("send challenge");
    let own_key = agency.encryption().ed25519_key().await.expect("own key");
    assert_eq!(
        key.to_base64(),
        own_key,
        "challenge encrypted for another key"
    );
    let got = receiver
        .next(Duration::from_secs(30))
        .await
        .expect("receive challenge");
    assert_eq!(got, "challenge-1", "the plaintext event was accepted");
    // Nothing else (in particular not the plaintext one) is queued.
    assert!(matches!(
        receiver.next(Duration::from_secs(2)).await,
        Err(MatrixError::Timeout)
    ));

    // A second challenge on the same Olm session.
    bot.send_challenge(agency_user, agency_dev, "challenge-2")
        .await
        .expect("send challenge 2");
    assert_eq!(
        receiver
            .next(Duration::from_secs(30))
            .await
            .expect("challenge 2"),
        "challenge-2"
    );

    // A receiver expecting another service ignores the bot's challenge.
    let other: OwnedUserId = "@other-service:localhost".try_into().expect("id");
    let picky = ChallengeReceiver::install(agency, other);
    bot.send_challenge(agency_user, agency_dev, "challenge-3")
        .await
        .expect("send challenge 3");
    assert_eq!(
        receiver
            .next(Duration::from_secs(30))
            .await
            .expect("challenge 3"),
        "challenge-3"
    );
    assert!(matches!(
        picky.next(Duration::from_millis(500)).await,
        Err(MatrixError::Timeout)
    ));
}

/// (e) Cross-signing: after the agency bootstraps it, the bot sees master
/// and self-signing keys with valid signatures and the agency's device
/// signed by the self-signing key.
async fn identity(
    bot: &Bot,
    agency: &Client,
    agency_user: &UserId,
    agency_dev: &DeviceId,
    citizen_id: &str,
) {
    assert!(bot.identity(agency_user).await.expect("query").is_none());
    let citizen = UserId::parse(citizen_id).expect("citizen");
    assert!(bot.identity(&citizen).await.expect("query").is_none());

    if let Err(e) = agency.encryption().bootstrap_cross_signing(None).await {
        let Some(response) = e.as_uiaa_response() else {
            panic!("bootstrap_cross_signing: {e}");
        };
        let mut password = uiaa::Password::new(
            uiaa::UserIdentifier::Matrix(uiaa::MatrixUserIdentifier::new(
                agency_user.as_str().to_owned(),
            )),
            AGENCY_PW.to_owned(),
        );
        password.session = response.session.clone();
        agency
            .encryption()
            .bootstrap_cross_signing(Some(uiaa::AuthData::Password(password)))
            .await
            .expect("bootstrap_cross_signing with password");
    }
    let own_identity = agency
        .encryption()
        .get_user_identity(agency.user_id().expect("user"))
        .await
        .expect("store")
        .expect("own identity");
    let own_master = own_identity
        .master_key()
        .get_first_key()
        .expect("master key")
        .to_base64();

    let identity = bot
        .identity(agency_user)
        .await
        .expect("query")
        .expect("identity");
    assert_eq!(identity.master.to_base64(), own_master);
    assert!(identity.self_signing_signed_by_master);
    let (device, identity2) = bot
        .device_and_identity(agency_user, agency_dev)
        .await
        .expect("query");
    let device = device.expect("device");
    assert_eq!(identity2.as_ref(), Some(&identity));
    assert!(identity.device_signed_by_self_signing(&device));
    assert!(identity.vouches_for(&device));

    // The forged device from (c) is not signed by the identity.
    let tampered = bot
        .device_keys(agency_user, &DeviceId::parse("TAMPERED").expect("id"))
        .await
        .expect("query")
        .expect("tampered");
    assert!(!identity.device_signed_by_self_signing(&tampered));
    assert!(!identity.vouches_for(&tampered));
}

/// A room created by the citizen under the alias `#squat:localhost`.
async fn create_squat_room(hs: &Synapse, citizen_token: &str) -> String {
    let (status, body) = hs
        .call(
            Method::POST,
            "/_matrix/client/v3/createRoom",
            Some(citizen_token),
            Some(&json!({
                "room_alias_name": "squat",
                "preset": "public_chat",
                // Readable by the bot, so it can name the creator.
                "initial_state": [{
                    "type": "m.room.history_visibility",
                    "state_key": "",
                    "content": {"history_visibility": "world_readable"},
                }],
            })),
        )
        .await
        .expect("createRoom");
    assert_eq!(status, StatusCode::OK, "{body}");
    body["room_id"].as_str().unwrap_or_default().to_owned()
}

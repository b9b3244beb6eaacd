//! Property tests: whatever valid request an agency makes — any user on a
//! permitted server, any device ID, any authority record the profile allows,
//! any key — the issuing CA's certificate verifies for exactly that request
//! and reads back the same authority record; and changing any one field of
//! the expectation (user, device, kind, key) is rejected with that field's
//! reason.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use govtrust_pki::{AttestationRequest, Validity};
use govtrust_verifier::{
    AuthorityRecord, Crl, CrlPolicy, CrlSet, DeviceId, Ed25519Key, Error, Expected, Subject,
    TrustAnchors, UserId, Verifier,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

// --- strategies ---------------------------------------------------------------

/// Localparts of the modern grammar.
fn localpart() -> impl Strategy<Value = String> {
    "[a-z0-9._=-]{1,40}"
}

/// A server the issuing CA may certify.
fn server() -> impl Strategy<Value = String> {
    prop::sample::select(SERVERS.to_vec()).prop_map(str::to_owned)
}

fn user_id() -> impl Strategy<Value = UserId> {
    (localpart(), server()).prop_map(|(l, s)| UserId::parse(&format!("@{l}:{s}")).unwrap())
}

fn device_id() -> impl Strategy<Value = String> {
    "[A-Z0-9]{1,20}"
}

fn subject() -> impl Strategy<Value = Subject> {
    option::of(device_id()).prop_map(|d| match d {
        Some(d) => Subject::Device(DeviceId::parse(&d).unwrap()),
        None => Subject::Identity,
    })
}

/// PrintableString alphabet (X.680): letters, digits, space and `'()+,-./:=?`.
const PRINTABLE: &str = "A-Za-z0-9'()+,./:=?-";

/// 1 to 40 PrintableString characters, no leading or trailing space.
fn authority_id() -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!(
        "[{PRINTABLE}]([ {PRINTABLE}]{{0,38}}[{PRINTABLE}])?"
    ))
    .unwrap()
}

/// 1 to `max` characters of any Unicode except controls, without leading
/// or trailing white space.
fn text(max: usize) -> impl Strategy<Value = String> {
    let inner = any::<char>().prop_filter("control character", |c| !c.is_control());
    let edge = any::<char>().prop_filter("control or white space", |c| {
        !c.is_control() && !c.is_whitespace()
    });
    prop_oneof![
        edge.clone().prop_map(String::from),
        (edge.clone(), vec(inner, 0..=max - 2), edge).prop_map(|(first, middle, last)| {
            let mut s = String::from(first);
            s.extend(middle);
            s.push(last);
            s
        }),
    ]
}

fn authority() -> impl Strategy<Value = AuthorityRecord> {
    (
        authority_id(),
        text(60),
        option::of(text(60)),
        option::of(text(60)),
        option::of(text(20)),
        option::of(text(60)),
        option::of(text(60)),
        option::of("[A-Z]{2}"),
    )
        .prop_map(
            |(id, name, unit, street, postal_code, locality, state, country)| AuthorityRecord {
                id,
                name,
                unit,
                street,
                postal_code,
                locality,
                state,
                country,
            },
        )
}

fn request() -> impl Strategy<Value = AttestationRequest> {
    (user_id(), subject(), any::<[u8; 32]>(), authority()).prop_map(
        |(user_id, subject, key, authority)| AttestationRequest {
            user_id,
            subject,
            key: Ed25519Key::from_bytes(key),
            authority,
        },
    )
}

/// One field of the expectation, changed.
#[derive(Clone, Debug)]
enum Change {
    /// Expect another user (any permitted server).
    User(UserId),
    /// Expect another device ID (for an identity certificate: expect a device).
    Device(String),
    /// Expect the other kind of attestation.
    Kind,
    /// Expect another key.
    Key([u8; 32]),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        user_id().prop_map(Change::User),
        device_id().prop_map(Change::Device),
        Just(Change::Kind),
        any::<[u8; 32]>().prop_map(Change::Key),
    ]
}

// --- shared verifier state ----------------------------------------------------

fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        Verifier::new(
            TrustAnchors::from_der([fixture().root.certificate().der().clone()]).unwrap(),
            CrlPolicy::REQUIRE_FRESH,
        )
    })
}

fn crls() -> &'static CrlSet {
    static CRLS: OnceLock<CrlSet> = OnceLock::new();
    CRLS.get_or_init(|| {
        let fx = fixture();
        [&fx.ica_crl, &fx.root_crl]
            .into_iter()
            .map(|der| Crl::from_der(der).unwrap())
            .collect()
    })
}

/// The expectation with `change` applied, and the reason it must fail with;
/// `None` if the change happens to change nothing.
fn apply(expected: &Expected, change: &Change) -> Option<(Expected, &'static str)> {
    let mut changed = expected.clone();
    let reason = match (change, &expected.subject) {
        (Change::User(user), _) => {
            if *user == expected.user_id {
                return None;
            }
            changed.user_id = user.clone();
            "user_mismatch"
        }
        (Change::Device(device), Subject::Device(current)) => {
            if device == current.as_str() {
                return None;
            }
            changed.subject = Subject::Device(DeviceId::parse(device).unwrap());
            "device_mismatch"
        }
        (Change::Device(device), Subject::Identity) => {
            changed.subject = Subject::Device(DeviceId::parse(device).unwrap());
            "wrong_eku"
        }
        (Change::Kind, Subject::Device(_)) => {
            changed.subject = Subject::Identity;
            "wrong_eku"
        }
        (Change::Kind, Subject::Identity) => {
            changed.subject = Subject::Device(DeviceId::parse("KINDSWAP").unwrap());
            "wrong_eku"
        }
        (Change::Key(key), _) => {
            if key == expected.key.as_bytes() {
                return None;
            }
            changed.key = Ed25519Key::from_bytes(*key);
            "key_mismatch"
        }
    };
    Some((changed, reason))
}

/// Moderate case count by default (each case signs one certificate, which
/// the CA's self-check verifies, and verifies twice); `PROPTEST_CASES`
/// raises it for a longer run. Failure persistence is off so a failing run
/// leaves no files behind; the failing input is printed.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn issued_attestation_verifies_and_binds_each_field(
        request in request(),
        change in change(),
    ) {
        let fx = fixture();
        let issued = fx
            .ica
            .issue_attestation(&request, Validity::starting(fx.now, Duration::from_secs(3600)))
            .map_err(|e| TestCaseError::fail(format!("issuance failed: {e}")))?;
        let expected = Expected {
            user_id: request.user_id.clone(),
            subject: request.subject.clone(),
            key: request.key,
        };
        let time = unix(fx.now);

        let ok = verifier()
            .verify(&expected, &issued.chain, crls(), time)
            .map_err(|e| TestCaseError::fail(format!("rejected: {e:?}")))?;
        prop_assert_eq!(&ok.authority, &request.authority);
        prop_assert_eq!(&ok.user_id, &request.user_id);
        prop_assert_eq!(&ok.subject, &request.subject);
        prop_assert_eq!(ok.key, request.key);
        prop_assert_eq!(ok.serial, issued.serial_hex());

        let Some((changed, reason)) = apply(&expected, &change) else {
            return Err(TestCaseError::reject("the change changes nothing"));
        };
        let err: Error = match verifier().verify(&changed, &issued.chain, crls(), time) {
            Ok(_) => return Err(TestCaseError::fail(format!("{change:?} accepted"))),
            Err(e) => e,
        };
        prop_assert_eq!(err.code(), reason, "{:?} gave {:?}", change, err);
    }
}

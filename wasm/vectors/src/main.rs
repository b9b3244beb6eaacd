//! Writes the browser test vectors for govtrust-verifier-wasm:
//!
//! ```sh
//! cargo run -p govtrust-web-vectors -- OUT.json
//! ```
//!
//! Builds a fresh hierarchy with govtrust-pki (a P-256 root and issuing
//! CA, keys in memory only — nothing private is written), issues device
//! and identity attestations and an identity-signing certificate (whose
//! test-only RSA key signs a master key in Element's `io.element.x509`
//! format), revokes one in the issuing CA's CRL, and
//! writes the pinned root (PEM), the CRLs (DER, base64), the validation
//! time and one case per verdict the web client must reach, each with the
//! expected result. Every case is first run natively through the wasm
//! crate's `core` (the code the browser runs), so a vector that does not
//! say what it claims fails here rather than in the browser.
//!
//! It also writes the WebCrypto baseline: the device leaf's TBS, its ECDSA
//! P-256 signature (raw r||s, as WebCrypto takes it) and the issuing CA's
//! SPKI, checked here with ring.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use govtrust_pki::der::DistinguishedName;
use govtrust_pki::element_x509::{sign_master_key, FileIdentitySigner, IdentitySigner};
use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use govtrust_pki::{
    AttestationRequest, IdentitySigningRequest, IssuedCertificate, IssuingCa, RevocationReason,
    RevokedCertificate, RootCa, Validity,
};
use govtrust_verifier::{AuthorityRecord, DeviceId, Ed25519Key, Subject, UserId};
use govtrust_verifier_wasm::core::{unix_time, Policy, Session};
use serde_json::{json, Value};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A test-only RSA-2048 identity-signing key (made once with `openssl
/// genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`; ring cannot
/// generate RSA keys). Public test material, like every key here.
const IDENTITY_SIGNING_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCrWroCy7cpT5zL
m39ts/NOc7qtQriU/oJZvhmnJY1nIrXYwWntMkbfl34cAhlAJhHTRfFnsZwLqGbh
krztBbtS5FgO27U8XEkIuIpfT3zV05z1ZJRwN+7rXV1bYqzafJVFT6CzDMs+gDsm
4ZBXrwJPymWKT+vFVTQ9mkuqy6x5H5xyWkOkKT4aXWuRkUQh5Vjn0hUiBlYzCzvr
LDB6qzloR58ytRHeqYXDorrSAYytoPVnsqLIxzbMkV+LhvmvPpPUYQQQj8F0E+Al
EathkcwvvzTMTiczSUomGQwWKSveuIf8IH4uS8oHSRAVUbN80zew7tqt4K1vZCgI
7+GrGItDAgMBAAECggEAC9sirKfYu/iAskvHhNkjGAYE4BESQWjcrwXqs3hzMLQj
neRABoPoiHbsaFay1Y/sws//lHui/uF/gNMM1F+FpwYam6iTASKngP13wYF38zmJ
jicP6DXOh6V1nKmWqSVelKWeSlUzyNbJgPaxbIe04r1vyiKefxBWpX6EBsTB4b1z
kEmFmDT0PCkQBjKHEIBBrg/Rcaf7vrK/N75yp0g+PimZVQYnKjJ6sf9c257YuJ/e
ShIPw+p4j3VUq8ETm8mpLR2zGRf3LK+FpPgrChtwRFaa+Ek+ltHhpr6X7rptTY26
G8JyKqkj8s1OKantJrH1tJpkTpjUEKiFSWh3KkzzoQKBgQDm2rK3Qsyc/0BqzLNX
Mw7AaWnJMeaSDgCFsKZNJPQcd3plYfrJ/MI6OZPxVn0BnNcBYhWw1Y3ntYGw6x6z
WDgx7GqMv4s5rVtxJajCGw8uyxmx+qpzXIEInMcFLt0V/KubTOGRrAMb4XYgOi4G
/feCR37BP0nkmGNPgoFtz97wIQKBgQC+BORi7byxTWYaaeKRgDHKTFv17bqTBIYL
ek8abEZ7VypZtMEoY28Mu7UkmoAmCgJUVuPVwGZrLlPKAMOLMh2du+Cpdgyd3smw
xP0F8IdkeEWwC9yeA90z7GMRE159B4HkcVayLwzjG1ZIsP1oNH/U/tfmHTMv2D2R
QN0Ego3e4wKBgQDOj0D52Ttb/siUxzRxAa5hW/DbpVq5tO2isb0bqcUC86UAsfrE
YPUpQ/usJccUelGnWywtXefrO+0fcEG4F2eww+lSptDcetEnHJszkyKyq+gB6Fg7
gLm0CxPI/3WzBrJF8zSiM1dUyxf3HhexCe09FNvF7esgL3os2okUyLqiAQKBgESQ
AVRM0bvr4H6BXDYB2nVTDg9zotFvXWqAzFANZ3UTo31Qwi1vi189z4OQl9Kh4+tI
mtbCoHHl+me11NjB0XvbkZmztaO1AnNc8KsW+dNfrk1ySj1dyY/1qF097ucQMWcb
Ghwa6/x6Ha0G57iU0NcqyP4H5TNLRBPIIreA3+3fAoGAeB6v8CchOwbmFrXCJ2ci
N0cnsnoTcf2MwURIHZFQQE6HG6uS8boANo4y7hhsSm/ppLGfcul5m2ooDvO54tS/
rYawOTlGFQ/e5EImxfJucmdiUH3NEq7cFTv8PHL0VxaqExRXydsUyqXuoHQ+ZF/U
/cK43rmI4T3he3tt/4DS+Xg=
-----END PRIVATE KEY-----
";

const DAY: Duration = Duration::from_secs(24 * 3600);
const HOUR: Duration = Duration::from_secs(3600);
const SERVER: &str = "id.bund.example";
const USER: &str = "@office:id.bund.example";
const DEVICE: &str = "AGENCYDEV";

type Ca = IssuingCa<Arc<FileSigner>>;

fn p256() -> Result<Arc<FileSigner>, String> {
    FileSigner::generate(KeyAlgorithm::EcdsaP256)
        .map(Arc::new)
        .map_err(|e| format!("P-256 key: {e}"))
}

fn ed25519() -> Result<Ed25519Key, String> {
    let signer = FileSigner::generate(KeyAlgorithm::Ed25519).map_err(|e| e.to_string())?;
    let raw: [u8; 32] = signer.spki_der()[12..]
        .try_into()
        .map_err(|_| "Ed25519 SPKI is not 44 bytes")?;
    Ok(Ed25519Key::from_bytes(raw))
}

fn pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn authority() -> AuthorityRecord {
    AuthorityRecord {
        id: "DE-BE-11000000-BA-NK".into(),
        name: "Registration Office Berlin".into(),
        unit: Some("Bürgeramt Neukölln".into()),
        street: Some("Donaustraße 29".into()),
        postal_code: Some("12043".into()),
        locality: Some("Berlin".into()),
        country: Some("DE".into()),
        ..Default::default()
    }
}

/// A hierarchy: root, issuing CA, and the CA signers (for the CRLs).
struct Hierarchy {
    root: RootCa<Arc<FileSigner>>,
    ica: Ca,
}

fn hierarchy(name: &str, now: OffsetDateTime) -> Result<Hierarchy, String> {
    let e = |what: &str| {
        let what = what.to_owned();
        move |err: govtrust_pki::Error| format!("{what}: {err}")
    };
    let root = RootCa::create(
        &DistinguishedName::ca(&format!("{name} Root"), None).map_err(e("root name"))?,
        p256()?,
        Validity::starting(now - 60 * DAY, 3650 * DAY),
    )
    .map_err(e("root"))?;
    let ica_signer = p256()?;
    let ica_der = root
        .issue_issuing_ca(
            &DistinguishedName::ca(&format!("{name} Issuing CA"), None)
                .map_err(e("issuing CA name"))?,
            ica_signer.spki_der().to_vec(),
            &[SERVER.to_owned()],
            Validity::starting(now - 30 * DAY, 365 * DAY),
            Some("https://ca.id.bund.example/crl/root.crl"),
        )
        .map_err(e("issuing CA"))?;
    let ica = IssuingCa::load(
        ica_der,
        root.certificate().der().clone(),
        ica_signer,
        Some("https://ca.id.bund.example/crl/issuing.crl".into()),
    )
    .map_err(e("issuing CA load"))?;
    Ok(Hierarchy { root, ica })
}

fn request(user: &str, subject: Subject, key: Ed25519Key) -> Result<AttestationRequest, String> {
    Ok(AttestationRequest {
        user_id: UserId::parse(user).map_err(|e| e.to_string())?,
        subject,
        key,
        authority: authority(),
    })
}

fn device(id: &str) -> Result<Subject, String> {
    Ok(Subject::Device(
        DeviceId::parse(id).map_err(|e| e.to_string())?,
    ))
}

fn issue(
    ca: &Ca,
    req: &AttestationRequest,
    validity: Validity,
) -> Result<(IssuedCertificate, Value), String> {
    let issued = ca
        .issue_attestation(req, validity)
        .map_err(|e| format!("issue: {e}"))?;
    let content: Value = serde_json::from_str(&issued.attestation_content(req).to_json())
        .map_err(|e| e.to_string())?;
    Ok((issued, content))
}

/// One case: the inputs the client holds and the verdict it must reach.
struct Case {
    name: &'static str,
    kind: &'static str,
    content: Value,
    user_id: String,
    device_id: Option<String>,
    key: String,
    /// Replaces the default CRLs when set.
    crls: Option<Vec<Vec<u8>>>,
    /// `None`: trusted; `Some(code)`: rejected with that code.
    code: Option<&'static str>,
}

/// A cross-signing master key object as `/keys/query` returns it, with an
/// ed25519 self-signature placeholder and optionally an `io.element.x509`
/// entry.
fn master_key_object(user: &str, key: &Ed25519Key, element_x509: Option<&str>) -> Value {
    let k = key.to_base64();
    let mut sigs = serde_json::Map::new();
    sigs.insert(format!("ed25519:{k}"), Value::String("c2lnbmF0dXJl".into()));
    if let Some(cms) = element_x509 {
        sigs.insert("io.element.x509:AAAA".into(), Value::String(cms.into()));
    }
    json!({
        "user_id": user,
        "usage": ["master"],
        "keys": { format!("ed25519:{k}"): k },
        "signatures": { user: sigs },
    })
}

fn element(
    name: &'static str,
    content: Value,
    user: &str,
    key: &Ed25519Key,
    code: Option<&'static str>,
) -> Case {
    Case {
        name,
        kind: "element_x509",
        content,
        user_id: user.to_owned(),
        device_id: None,
        key: key.to_base64(),
        crls: None,
        code,
    }
}

/// DER ECDSA-Sig-Value to the fixed r||s form WebCrypto verifies.
fn ecdsa_raw(der: &[u8], width: usize) -> Result<Vec<u8>, String> {
    let bad = || "ECDSA signature is not DER SEQUENCE { r, s }".to_owned();
    let body = match der {
        [0x30, len, rest @ ..] if usize::from(*len) == rest.len() => rest,
        _ => return Err(bad()),
    };
    let mut out = Vec::with_capacity(2 * width);
    let mut rest = body;
    for _ in 0..2 {
        let (int, tail) = match rest {
            [0x02, len, tail @ ..] if usize::from(*len) <= tail.len() => {
                tail.split_at(usize::from(*len))
            }
            _ => return Err(bad()),
        };
        let int = match int {
            [0, tail @ ..] => tail,
            _ => int,
        };
        if int.len() > width {
            return Err(bad());
        }
        out.extend(std::iter::repeat_n(0, width - int.len()));
        out.extend_from_slice(int);
        rest = tail;
    }
    if rest.is_empty() {
        Ok(out)
    } else {
        Err(bad())
    }
}

fn baseline(leaf: &[u8], ica: &[u8]) -> Result<Value, String> {
    let (_, leaf) = X509Certificate::from_der(leaf).map_err(|e| e.to_string())?;
    let (_, ica) = X509Certificate::from_der(ica).map_err(|e| e.to_string())?;
    let tbs = leaf.tbs_certificate.as_ref();
    let sig = ecdsa_raw(&leaf.signature_value.data, 32)?;
    let point = &ica.public_key().subject_public_key.data;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(tbs, &sig)
        .map_err(|_| "baseline: the raw P-256 signature does not verify with ring")?;
    Ok(json!({
        "what": "the device leaf's ECDSA P-256/SHA-256 signature, checked with the issuing CA's key",
        "spki": STANDARD.encode(ica.public_key().raw),
        "data": STANDARD.encode(tbs),
        "signature": STANDARD.encode(&sig),
    }))
}

fn run(out: &str) -> Result<(), String> {
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .map_err(|e| e.to_string())?;
    let now_secs = u64::try_from(now.unix_timestamp()).map_err(|e| e.to_string())?;
    let gov = hierarchy("govtrust Web Test", now)?;
    let other = hierarchy("Unpinned Test", now)?;

    let device_key = ed25519()?;
    let master_key = ed25519()?;
    let stranger_key = ed25519()?;
    let current = Validity::starting(now - HOUR, 30 * DAY);

    let device_req = request(USER, device(DEVICE)?, device_key)?;
    let (device_cert, device_content) = issue(&gov.ica, &device_req, current)?;
    let identity_req = request(USER, Subject::Identity, master_key)?;
    let (_, identity_content) = issue(&gov.ica, &identity_req, current)?;

    let revoked_key = ed25519()?;
    let revoked_req = request(USER, device("REVOKEDDEV")?, revoked_key)?;
    let (revoked_cert, revoked_content) = issue(&gov.ica, &revoked_req, current)?;

    let expired_key = ed25519()?;
    let expired_req = request(USER, device("OLDDEV")?, expired_key)?;
    let (_, expired_content) = issue(
        &gov.ica,
        &expired_req,
        Validity::starting(now - 10 * DAY, 2 * DAY),
    )?;

    let unpinned_key = ed25519()?;
    let unpinned_req = request(USER, device("ROGUEDEV")?, unpinned_key)?;
    let (_, unpinned_content) = issue(&other.ica, &unpinned_req, current)?;

    let crl_time = now - HOUR;
    let ica_crl = gov
        .ica
        .crl(
            &[RevokedCertificate {
                serial: revoked_cert.serial.clone(),
                revoked_at: now - HOUR,
                reason: RevocationReason::KeyCompromise,
            }],
            7,
            crl_time,
            DAY,
        )
        .map_err(|e| format!("issuing CA CRL: {e}"))?;
    let root_crl = gov
        .root
        .crl(&[], 3, crl_time, 7 * DAY)
        .map_err(|e| format!("root CRL: {e}"))?;
    let crls = vec![ica_crl.clone(), root_crl.clone()];

    // A master key signed in Element's io.element.x509 format with an
    // identity-signing certificate (EKU ARC.5) of the pinned hierarchy.
    let rsa = FileIdentitySigner::from_pkcs8_pem(IDENTITY_SIGNING_KEY)
        .map_err(|e| format!("identity-signing key: {e}"))?;
    let identity_signing = gov
        .ica
        .issue_identity_signing(
            &IdentitySigningRequest {
                user_id: UserId::parse(USER).map_err(|e| e.to_string())?,
                authority: authority(),
                spki: rsa.spki_der().to_vec(),
            },
            current,
        )
        .map_err(|e| format!("identity-signing certificate: {e}"))?;
    let mut signed_master = match master_key_object(USER, &master_key, None) {
        Value::Object(o) => o,
        _ => return Err("master key object".into()),
    };
    sign_master_key(&mut signed_master, &identity_signing.chain, &rsa)
        .map_err(|e| format!("io.element.x509 signature: {e}"))?;
    let signed_master = Value::Object(signed_master);

    // A copy of the device event whose leaf signature has one bit flipped.
    let mut tampered_content = device_content.clone();
    {
        let mut leaf = device_cert.chain[0].to_vec();
        let last = leaf.len() - 1;
        leaf[last] ^= 0x01;
        tampered_content["chain"][0] = Value::String(STANDARD.encode(&leaf));
    }
    let mut marked_content = device_content.clone();
    marked_content["revoked"] = json!({
        "revoked_at": (now_secs - 60) * 1000,
        "reason": "key_compromise",
    });

    let dev = |name, content: &Value, user: &str, dev: &str, key: &Ed25519Key, code| Case {
        name,
        kind: "device",
        content: content.clone(),
        user_id: user.to_owned(),
        device_id: Some(dev.to_owned()),
        key: key.to_base64(),
        crls: None,
        code,
    };
    let mut cases = vec![
        dev(
            "valid device",
            &device_content,
            USER,
            DEVICE,
            &device_key,
            None,
        ),
        Case {
            name: "valid identity",
            kind: "identity",
            content: identity_content.clone(),
            user_id: USER.into(),
            device_id: None,
            key: master_key.to_base64(),
            crls: None,
            code: None,
        },
        dev(
            "revoked by the issuing CA's CRL",
            &revoked_content,
            USER,
            "REVOKEDDEV",
            &revoked_key,
            Some("revoked"),
        ),
        dev(
            "wrong key (not the crypto store's)",
            &device_content,
            USER,
            DEVICE,
            &stranger_key,
            Some("key_mismatch"),
        ),
        dev(
            "wrong user",
            &device_content,
            "@mallory:id.bund.example",
            DEVICE,
            &device_key,
            Some("user_mismatch"),
        ),
        dev(
            "expired",
            &expired_content,
            USER,
            "OLDDEV",
            &expired_key,
            Some("expired"),
        ),
        dev(
            "wrong device",
            &device_content,
            USER,
            "OTHERDEV",
            &device_key,
            Some("device_mismatch"),
        ),
        dev(
            "tampered leaf signature",
            &tampered_content,
            USER,
            DEVICE,
            &device_key,
            Some("bad_signature"),
        ),
        dev(
            "revoked marker in the event",
            &marked_content,
            USER,
            DEVICE,
            &device_key,
            Some("revoked"),
        ),
        dev(
            "chain to an unpinned root",
            &unpinned_content,
            USER,
            "ROGUEDEV",
            &unpinned_key,
            Some("unknown_issuer"),
        ),
        Case {
            name: "identity event checked as a device",
            kind: "device",
            content: identity_content.clone(),
            user_id: USER.into(),
            device_id: Some(DEVICE.into()),
            key: master_key.to_base64(),
            crls: None,
            code: Some("wrong_eku"),
        },
        Case {
            crls: Some(Vec::new()),
            ..dev(
                "no CRLs given (REQUIRE_FRESH)",
                &device_content,
                USER,
                DEVICE,
                &device_key,
                Some("crl_missing"),
            )
        },
        // Element's io.element.x509 identity signature on the master key
        // object: the verifier's checks before the CMS signature itself.
        element(
            "element: valid io.element.x509 signature by an identity-signing certificate",
            signed_master.clone(),
            USER,
            &master_key,
            None,
        ),
        element(
            "element: master key without an io.element.x509 signature",
            master_key_object(USER, &master_key, None),
            USER,
            &master_key,
            Some("identity_signature_missing"),
        ),
        element(
            "element: master key object of another user",
            master_key_object("@mallory:id.bund.example", &master_key, None),
            USER,
            &master_key,
            Some("user_mismatch"),
        ),
        element(
            "element: io.element.x509 value that is no CMS",
            master_key_object(
                USER,
                &master_key,
                Some("-----BEGIN CMS-----\nTm90IENNUw==\n-----END CMS-----\n"),
            ),
            USER,
            &master_key,
            Some("cms_malformed"),
        ),
    ];

    // Cross-check every case natively through the code the browser runs.
    let root_pem = pem(gov.root.certificate().der());
    let default_session =
        Session::new(root_pem.as_bytes(), &crls, Policy::default()).map_err(|e| e.to_string())?;
    let time = unix_time(now_secs as f64);
    let mut out_cases = Vec::new();
    for case in &mut cases {
        let own;
        let session = match &case.crls {
            Some(c) => {
                own = Session::new(root_pem.as_bytes(), c, Policy::default())
                    .map_err(|e| e.to_string())?;
                &own
            }
            None => &default_session,
        };
        let json = case.content.to_string();
        let verdict = match (case.kind, &case.device_id) {
            ("element_x509", _) => session
                .verify_element_x509(json.as_bytes(), &case.user_id, time)
                .map(|v| (v.signer.authority, v.signer.serial, v.signer.not_after)),
            (_, Some(d)) => session
                .verify_device(json.as_bytes(), &case.user_id, d, &case.key, time)
                .map(|v| (v.authority, v.serial, v.not_after)),
            (_, None) => session
                .verify_identity(json.as_bytes(), &case.user_id, &case.key, time)
                .map(|v| (v.authority, v.serial, v.not_after)),
        };
        let mut expect = json!({ "trusted": case.code.is_none() });
        match (&verdict, case.code) {
            (Ok((authority, serial, not_after)), None) => {
                expect["badge"] = Value::String(authority.to_string());
                expect["authorityId"] = Value::String(authority.id.clone());
                expect["serial"] = Value::String(serial.clone());
                expect["notAfter"] = json!(not_after);
            }
            (Err(e), Some(code)) if e.code() == code => {
                expect["code"] = Value::String(code.to_owned());
            }
            (Ok(_), Some(code)) => {
                return Err(format!(
                    "case {:?}: expected {code}, natively TRUSTED",
                    case.name
                ))
            }
            (Err(e), _) => {
                return Err(format!(
                    "case {:?}: expected {:?}, natively {} ({e})",
                    case.name,
                    case.code.unwrap_or("trusted"),
                    e.code()
                ))
            }
        }
        let mut c = json!({
            "name": case.name,
            "kind": case.kind,
            "content": case.content,
            "userId": case.user_id,
            "key": case.key,
            "expect": expect,
        });
        if let Some(d) = &case.device_id {
            c["deviceId"] = Value::String(d.clone());
        }
        if let Some(crls) = &case.crls {
            c["crls"] = Value::Array(crls.iter().map(|c| STANDARD.encode(c).into()).collect());
        }
        out_cases.push(c);
    }

    let vectors = json!({
        "about": "govtrust-verifier-wasm browser vectors, generated by wasm/vectors (public material only)",
        "time": now_secs,
        "rootPem": root_pem,
        "crls": [STANDARD.encode(&ica_crl), STANDARD.encode(&root_crl)],
        "cases": out_cases,
        "bench": { "case": 0 },
        "baseline": baseline(&device_cert.chain[0], &device_cert.chain[1])?,
    });
    std::fs::write(
        out,
        serde_json::to_vec_pretty(&vectors).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("{out}: {e}"))?;
    println!(
        "wrote {out}: {} cases, all cross-checked natively",
        vectors["cases"].as_array().map_or(0, Vec::len)
    );
    Ok(())
}

fn main() -> ExitCode {
    let Some(out) = std::env::args().nth(1) else {
        eprintln!("usage: govtrust-web-vectors OUT.json");
        return ExitCode::FAILURE;
    };
    match run(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("govtrust-web-vectors: {e}");
            ExitCode::FAILURE
        }
    }
}

//! A synced room full of agency device attestations, shared by the
//! `room_verify` example (10,000 devices, issue #4) and the `room` bench
//! (1,000 devices).
//!
//! Setup issues the attestations with a development-style CA (file keys,
//! ECDSA P-256 root and issuing CA, as `govtrust ca init` and the service's
//! development CA make them) and keeps only what a citizen's client holds
//! once the room state is synced: the raw state event JSON per device, the
//! device's user, ID and Ed25519 key as its own crypto store knows them,
//! the pinned root and the two CRLs. Everything the measured pass uses is
//! derived from that, so issuance leaves no shortcut behind.
//!
//! Two passes over the same room are compared:
//! - [`verify_room`]: per device, what the auto-trust agent does once the
//!   CRLs are cached — parse the state event, check type, state key and
//!   sender, take the content out, build [`Expected`] from the crypto-store
//!   strings and call [`Verifier::verify_event`]; per room, decode the CRLs
//!   into a [`CrlSet`] (whose signature checks are remembered).
//! - [`RawWork::run`]: the signature verifications the verifier cannot
//!   avoid, with ring directly and nothing else — per device the leaf
//!   signature (issuing-CA key); per room the two CRL signatures (the
//!   verifier checks them once per `CrlSet` and then remembers them) and
//!   the issuing-CA certificate's signature (root key), which the
//!   `Verifier` checks on the first chain through that CA and then
//!   remembers. That is exactly the signature work of a verifier pass with
//!   a fresh `Verifier`; a long-lived one (as in the measured rounds after
//!   the first) no longer re-verifies the issuing CA at all.
//!
//!   Until the issuing-CA memo, rustls-webpki re-verified the issuing-CA
//!   signature on every call, and this baseline counted it per device
//!   (2 × devices + 2 signatures): ratios measured against that baseline
//!   are not comparable with ratios against this one.
#![allow(dead_code)] // the bench and the example use different parts

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use govtrust_pki::der::DistinguishedName;
use govtrust_pki::profile::{ATTESTATION_VALIDITY, ISSUING_CA_VALIDITY, ROOT_VALIDITY};
use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use govtrust_pki::{
    AttestationRequest, IssuingCa, RevocationReason, RevokedCertificate, RootCa, Validity,
};
use govtrust_verifier::event::{state_key, EVENT_TYPE};
use govtrust_verifier::{
    AuthorityRecord, Crl, CrlPolicy, CrlSet, DeviceId, Ed25519Key, Expected, Subject, TrustAnchors,
    UnixTime, UserId, VerifiedAttestation, Verifier,
};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use serde_json::{json, Value};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

/// The agencies' homeserver, the one the issuing CA may certify.
pub const SERVER: &str = "id.bund.example";
/// The service's bot, the only sender the client accepts attestations from.
pub const PUBLISHER: &str = "@govtrust:id.bund.example";
/// CRL lifetime: the service's default (`ca.crl_hours = 24`).
pub const CRL_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// ecdsa-with-SHA256: what the P-256 CAs sign with, and all the raw
/// baseline verifies.
const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
/// First line of the room state file.
const FILE_MAGIC: &str = "govtrust-room-state 1";

/// One agency device as the citizen's client knows it.
pub struct Device {
    /// From the client's crypto store.
    pub user_id: String,
    /// From the client's crypto store.
    pub device_id: String,
    /// The `ed25519:<device>` key from the client's crypto store, unpadded base64.
    pub key: String,
    /// The synced `io.govtrust.attestation` state event, raw JSON.
    pub event: String,
}

/// What the client holds: pinned root, cached CRLs, synced room state.
pub struct RoomState {
    /// The pinned root certificate, DER.
    pub root: Vec<u8>,
    /// The issuing CA's CRL and the root's CRL, DER.
    pub crls: Vec<Vec<u8>>,
    /// The accepted sender of attestation events.
    pub publisher: String,
    /// One per attested device.
    pub devices: Vec<Device>,
}

/// Issues `devices` device attestations (distinct users, devices and
/// Ed25519 keys) and a CRL with `revoked` other serials; returns only the
/// client's view. Setup: panics on failure.
pub fn build(devices: usize, revoked: usize) -> RoomState {
    let rng = SystemRandom::new();
    let root = RootCa::create(
        &DistinguishedName::ca("govtrust Root CA", None).expect("root name"),
        FileSigner::generate(KeyAlgorithm::EcdsaP256).expect("root key"),
        Validity::from_now(ROOT_VALIDITY),
    )
    .expect("root");
    let ica_key = FileSigner::generate(KeyAlgorithm::EcdsaP256).expect("issuing CA key");
    let ica_cert = root
        .issue_issuing_ca(
            &DistinguishedName::ca("govtrust Issuing CA 1", None).expect("CA name"),
            ica_key.spki_der().to_vec(),
            &[SERVER.to_owned()],
            Validity::from_now(ISSUING_CA_VALIDITY),
            Some("https://govtrust.example/v1/crl/root.crl"),
        )
        .expect("issuing CA certificate");
    let ica = IssuingCa::load(
        ica_cert,
        root.certificate().der().clone(),
        ica_key,
        Some("https://govtrust.example/v1/crl/issuing-1.crl".into()),
    )
    .expect("issuing CA");

    let mut room = Vec::with_capacity(devices);
    let mut serials = std::collections::HashSet::new();
    for i in 0..devices {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("device key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("device key");
        let raw: [u8; 32] = pair.public_key().as_ref().try_into().expect("32 bytes");
        let request = AttestationRequest {
            user_id: UserId::parse(&format!("@agency{i:05}:{SERVER}")).expect("user"),
            subject: Subject::Device(DeviceId::parse(&format!("AGENCYDEV{i:05}")).expect("dev")),
            key: Ed25519Key::from_bytes(raw),
            authority: AuthorityRecord {
                id: format!("DE-BE-{:08}-BA", 11_000_000 + i),
                name: format!("Bezirksamt {i}, Bürgeramt"),
                street: Some("Donaustraße 29".into()),
                postal_code: Some("12043".into()),
                locality: Some("Berlin".into()),
                country: Some("DE".into()),
                ..Default::default()
            },
        };
        let issued = ica
            .issue_attestation(&request, Validity::from_now(ATTESTATION_VALIDITY))
            .expect("attestation");
        serials.insert(issued.serial.clone());
        let content = issued.attestation_content(&request);
        let event = json!({
            "type": EVENT_TYPE,
            "state_key": state_key(&request.user_id, &request.subject),
            "sender": PUBLISHER,
            "content": serde_json::to_value(&content).expect("content"),
            "event_id": format!("${:043}", i),
            "origin_server_ts": 1_767_225_600_000u64 + i as u64,
            "unsigned": { "age": 1234 },
        });
        room.push(Device {
            user_id: request.user_id.to_string(),
            device_id: format!("AGENCYDEV{i:05}"),
            key: request.key.to_base64(),
            event: event.to_string(),
        });
    }

    let now = OffsetDateTime::now_utc();
    let entries = revoked_entries(revoked, &serials, &rng);
    let ica_crl = ica
        .crl(&entries, 1, now, CRL_LIFETIME)
        .expect("issuing CA CRL");
    let root_crl = root.crl(&[], 1, now, CRL_LIFETIME).expect("root CRL");
    RoomState {
        root: root.certificate().der().to_vec(),
        crls: vec![ica_crl, root_crl],
        publisher: PUBLISHER.to_owned(),
        devices: room,
    }
}

/// `n` random 16-byte serials (the shape the CA's serials have), none of
/// them one of the room's, so the CRL is realistic but revokes nobody here.
fn revoked_entries(
    n: usize,
    avoid: &std::collections::HashSet<Vec<u8>>,
    rng: &SystemRandom,
) -> Vec<RevokedCertificate> {
    let now = OffsetDateTime::now_utc();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut serial = vec![0u8; 16];
        rng.fill(&mut serial).expect("random serial");
        serial[0] = (serial[0] & 0x7f) | 0x40;
        if avoid.contains(&serial) {
            continue;
        }
        out.push(RevokedCertificate {
            serial,
            revoked_at: now - Duration::from_secs(out.len() as u64),
            reason: if out.len() % 4 == 0 {
                RevocationReason::KeyCompromise
            } else {
                RevocationReason::Unspecified
            },
        });
    }
    out
}

impl RoomState {
    /// Bytes of raw state event JSON held.
    pub fn event_bytes(&self) -> usize {
        self.devices.iter().map(|d| d.event.len()).sum()
    }

    /// The verifier a client builds once at start: the pinned root under
    /// the production CRL policy.
    pub fn verifier(&self) -> Result<Verifier, String> {
        let anchors =
            TrustAnchors::from_der([self.root.clone().into()]).map_err(|e| format!("root: {e}"))?;
        Ok(Verifier::new(anchors, CrlPolicy::REQUIRE_FRESH))
    }

    /// Writes the client's view as a line file (so a fresh process can load
    /// it without the setup's memory): a magic line, `root`/`crl`/
    /// `publisher` lines, then `device` lines with tab-separated user,
    /// device, key and event JSON (compact JSON has no tab or newline).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut w = BufWriter::new(std::fs::File::create(path)?);
        writeln!(w, "{FILE_MAGIC}")?;
        writeln!(w, "root {}", STANDARD.encode(&self.root))?;
        for crl in &self.crls {
            writeln!(w, "crl {}", STANDARD.encode(crl))?;
        }
        writeln!(w, "publisher {}", self.publisher)?;
        for d in &self.devices {
            writeln!(
                w,
                "device {}\t{}\t{}\t{}",
                d.user_id, d.device_id, d.key, d.event
            )?;
        }
        w.flush()
    }

    /// Reads what [`RoomState::write`] wrote.
    pub fn read(path: &Path) -> Result<Self, String> {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut lines = BufReader::new(file).lines();
        let bad = |n: usize, why: &str| format!("{}:{n}: {why}", path.display());
        match lines.next() {
            Some(Ok(l)) if l == FILE_MAGIC => {}
            _ => return Err(bad(1, "not a room state file")),
        }
        let (mut root, mut crls, mut publisher, mut devices) = (None, Vec::new(), None, Vec::new());
        for (n, line) in lines.enumerate() {
            let n = n + 2;
            let line = line.map_err(|e| bad(n, &e.to_string()))?;
            let (tag, rest) = line.split_once(' ').ok_or_else(|| bad(n, "no tag"))?;
            let b64 = |s: &str| STANDARD.decode(s).map_err(|e| bad(n, &e.to_string()));
            match tag {
                "root" => root = Some(b64(rest)?),
                "crl" => crls.push(b64(rest)?),
                "publisher" => publisher = Some(rest.to_owned()),
                "device" => {
                    let mut f = rest.splitn(4, '\t');
                    let mut next = || f.next().map(str::to_owned).ok_or_else(|| bad(n, "field"));
                    devices.push(Device {
                        user_id: next()?,
                        device_id: next()?,
                        key: next()?,
                        event: next()?,
                    });
                }
                _ => return Err(bad(n, "unknown tag")),
            }
        }
        Ok(RoomState {
            root: root.ok_or_else(|| bad(0, "no root"))?,
            crls,
            publisher: publisher.ok_or_else(|| bad(0, "no publisher"))?,
            devices,
        })
    }
}

/// Why the client did not accept a device's attestation.
#[derive(Debug)]
pub enum Rejected {
    /// The state event is not an attestation for this device from the
    /// publisher (the agent would not consider it).
    Event(&'static str),
    /// The verifier's verdict.
    Verdict(govtrust_verifier::Error),
}

impl Rejected {
    /// A stable short code: the verifier's, or the event check's.
    pub fn code(&self) -> &'static str {
        match self {
            Rejected::Event(why) => why,
            Rejected::Verdict(e) => e.code(),
        }
    }
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejected::Event(why) => write!(f, "event not considered: {why}"),
            Rejected::Verdict(e) => write!(f, "{} ({e})", e.code()),
        }
    }
}

/// Decodes the cached CRLs into the set the verifier reads. Per room, not
/// per device: a client keeps the decoded set until the next CRL fetch.
pub fn decode_crls(state: &RoomState) -> Result<CrlSet, String> {
    state
        .crls
        .iter()
        .map(|der| Crl::from_der(der).map_err(|e| format!("CRL: {e}")))
        .collect()
}

/// The client's work for one device (the agent's `accept_event`, then
/// `evaluate_device` + `verify_content` with fresh cached CRLs): the raw
/// event is parsed, must be an attestation under this device's state key
/// from the publisher with non-empty content; the content is serialised
/// again and given to the verifier with the crypto store's user, device and
/// key.
pub fn verify_device(
    verifier: &Verifier,
    crls: &CrlSet,
    publisher: &str,
    device: &Device,
    now: UnixTime,
) -> Result<VerifiedAttestation, Rejected> {
    let event: Value =
        serde_json::from_str(&device.event).map_err(|_| Rejected::Event("not_json"))?;
    if event.get("type").and_then(Value::as_str) != Some(EVENT_TYPE) {
        return Err(Rejected::Event("wrong_type"));
    }
    let expected = Expected::new(&device.user_id, Some(&device.device_id), &device.key)
        .map_err(Rejected::Verdict)?;
    let key = state_key(&expected.user_id, &expected.subject);
    if event.get("state_key").and_then(Value::as_str) != Some(key.as_str()) {
        return Err(Rejected::Event("wrong_state_key"));
    }
    if event.get("sender").and_then(Value::as_str) != Some(publisher) {
        return Err(Rejected::Event("unexpected_sender"));
    }
    let content = event
        .get("content")
        .filter(|c| c.as_object().is_some_and(|o| !o.is_empty()))
        .ok_or(Rejected::Event("no_content"))?;
    let json = serde_json::to_vec(content).map_err(|_| Rejected::Event("content"))?;
    verifier
        .verify_event(&expected, &json, crls, now)
        .map_err(Rejected::Verdict)
}

/// One client pass over the room: decode the CRLs, then every device in
/// order. Stops at the first rejection, naming the device's index.
pub fn verify_room(
    state: &RoomState,
    verifier: &Verifier,
    now: UnixTime,
) -> Result<Vec<VerifiedAttestation>, (usize, Rejected)> {
    let crls = decode_crls(state).map_err(|_| (usize::MAX, Rejected::Event("crl")))?;
    let mut verdicts = Vec::with_capacity(state.devices.len());
    for (i, device) in state.devices.iter().enumerate() {
        verdicts.push(
            verify_device(verifier, &crls, &state.publisher, device, now).map_err(|e| (i, e))?,
        );
    }
    Ok(verdicts)
}

/// One signed object as ring sees it: message, signature, issuer key.
struct RawSig {
    message: Vec<u8>,
    signature: Vec<u8>,
    /// Index into [`RawWork::keys`].
    key: usize,
}

/// The signature verifications [`verify_room`] makes, prepared (parsing
/// and base64 are setup here, not measured).
pub struct RawWork {
    /// Uncompressed P-256 points: issuing CA, root.
    keys: [Vec<u8>; 2],
    /// Issuing-CA CRL (issuing-CA key), root CRL (root key): once per room.
    crls: Vec<RawSig>,
    /// The issuing-CA certificate (root key): once per room, as the
    /// `Verifier` remembers the issuing CAs it has validated.
    issuer: RawSig,
    /// Each device's leaf (issuing-CA key).
    leaves: Vec<RawSig>,
}

impl RawWork {
    /// Extracts the signed parts from the room state. Every certificate and
    /// CRL must be signed with ecdsa-with-SHA256 (what the P-256 CAs use),
    /// and every chain must carry the same issuing CA.
    pub fn from_state(state: &RoomState) -> Result<Self, String> {
        let root = cert(&state.root)?;
        let root_point = root.public_key().subject_public_key.data.to_vec();
        let mut ica_der: Option<Vec<u8>> = None;
        let mut leaves = Vec::with_capacity(state.devices.len());
        for d in &state.devices {
            let event: Value = serde_json::from_str(&d.event).map_err(|e| e.to_string())?;
            let chain: Vec<Vec<u8>> = event["content"]["chain"]
                .as_array()
                .ok_or("no chain")?
                .iter()
                .map(|c| STANDARD.decode(c.as_str().unwrap_or_default()))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            let [leaf, ica] = chain.as_slice() else {
                return Err("chain is not leaf + issuing CA".into());
            };
            match &ica_der {
                None => ica_der = Some(ica.clone()),
                Some(known) if known == ica => {}
                Some(_) => return Err("chains carry different issuing CAs".into()),
            }
            leaves.push(signed_cert(leaf, 0)?);
        }
        let ica_der = ica_der.ok_or("empty room")?;
        let ica = cert(&ica_der)?;
        let keys = [
            ica.public_key().subject_public_key.data.to_vec(),
            root_point,
        ];
        let [ica_crl, root_crl] = state.crls.as_slice() else {
            return Err("expected the issuing-CA CRL and the root CRL".into());
        };
        Ok(RawWork {
            keys,
            crls: vec![signed_crl(ica_crl, 0)?, signed_crl(root_crl, 1)?],
            issuer: signed_cert(&ica_der, 1)?,
            leaves,
        })
    }

    /// Signature verifications per pass: 2 CRLs + the issuing CA + 1 per
    /// device.
    pub fn signatures(&self) -> usize {
        self.crls.len() + 1 + self.leaves.len()
    }

    fn check(&self, s: &RawSig) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.keys[s.key])
            .verify(
                std::hint::black_box(&s.message),
                std::hint::black_box(&s.signature),
            )
            .is_ok()
    }

    /// One raw pass: the CRL and issuing-CA certificate signatures once,
    /// then each device's leaf signature. Returns how many verified.
    pub fn run(&self) -> usize {
        let mut ok = self.crls.iter().filter(|s| self.check(s)).count();
        ok += usize::from(self.check(&self.issuer));
        for leaf in &self.leaves {
            ok += usize::from(self.check(leaf));
        }
        ok
    }
}

fn cert(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| format!("certificate: {e}"))
}

fn signed_cert(der: &[u8], key: usize) -> Result<RawSig, String> {
    let c = cert(der)?;
    if c.signature_algorithm.algorithm.to_id_string() != ECDSA_WITH_SHA256 {
        return Err("certificate not signed with ecdsa-with-SHA256".into());
    }
    Ok(RawSig {
        message: c.tbs_certificate.as_ref().to_vec(),
        signature: c.signature_value.data.to_vec(),
        key,
    })
}

fn signed_crl(der: &[u8], key: usize) -> Result<RawSig, String> {
    let (_, c) = CertificateRevocationList::from_der(der).map_err(|e| format!("CRL: {e}"))?;
    if c.signature_algorithm.algorithm.to_id_string() != ECDSA_WITH_SHA256 {
        return Err("CRL not signed with ecdsa-with-SHA256".into());
    }
    Ok(RawSig {
        message: c.tbs_cert_list.as_ref().to_vec(),
        signature: c.signature_value.data.to_vec(),
        key,
    })
}

/// A copy of `device` whose leaf signature has one bit flipped: the
/// sanity check that the measured pass really verifies signatures.
pub fn tampered(device: &Device) -> Result<Device, String> {
    let mut event: Value = serde_json::from_str(&device.event).map_err(|e| e.to_string())?;
    let leaf_b64 = event["content"]["chain"][0]
        .as_str()
        .ok_or("no leaf")?
        .to_owned();
    let mut leaf = STANDARD.decode(leaf_b64).map_err(|e| e.to_string())?;
    // The signature BIT STRING ends the certificate.
    let last = leaf.len() - 1;
    leaf[last] ^= 0x01;
    event["content"]["chain"][0] = Value::String(STANDARD.encode(&leaf));
    Ok(Device {
        user_id: device.user_id.clone(),
        device_id: device.device_id.clone(),
        key: device.key.clone(),
        event: event.to_string(),
    })
}

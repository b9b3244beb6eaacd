//! Writes the seed corpora `fuzz/corpus/<target>/seed-*` from real
//! material: attestations and CRLs the fixture hierarchy issues with
//! govtrust-pki (fixed fuzz-only keys, so they chain to the fuzz root in
//! every later run), the committed `certs-example/` files, and a handful of
//! NIST PKITS certificates and CRLs from the conformance data.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example seeds
//!
//! Existing `seed-*` files are overwritten; other corpus files are kept.

use std::fs;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use govtrust_fuzz::{fixture, Issued};
use govtrust_verifier::event::{AttestationContent, RevocationNotice};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> Option<Vec<u8>> {
    fs::read(root().join(rel)).ok()
}

fn pkits(set: &str, kind: &str, name: &str) -> Option<Vec<u8>> {
    let ext = if kind == "certs" { "crt" } else { "crl" };
    read(&format!(
        "verifier/tests/data/conformance/{set}/{kind}/{name}.{ext}"
    ))
}

struct Out {
    dir: PathBuf,
    count: usize,
}

impl Out {
    fn new(target: &str) -> Self {
        let dir = root().join("fuzz/corpus").join(target);
        fs::create_dir_all(&dir).expect("corpus dir");
        Out { dir, count: 0 }
    }
    fn put(&mut self, name: &str, bytes: &[u8]) {
        fs::write(self.dir.join(format!("seed-{name}")), bytes).expect("write seed");
        self.count += 1;
    }
}

/// chain_verify input: flags, u16-length-prefixed certificates, expectation.
fn chain_input(flags: u8, certs: &[&[u8]], expectation: &str) -> Vec<u8> {
    let mut out = vec![flags | (certs.len() as u8 - 1)];
    for c in certs {
        out.extend_from_slice(&(c.len() as u16).to_be_bytes());
        out.extend_from_slice(c);
    }
    out.extend_from_slice(expectation.as_bytes());
    out
}

fn expectation_lines(i: &Issued) -> String {
    let e = &i.expected;
    let device = match &e.subject {
        govtrust_verifier::Subject::Device(d) => d.to_string(),
        govtrust_verifier::Subject::Identity => String::new(),
    };
    format!("{}\n{}\n{}", e.user_id, device, e.key.to_base64())
}

fn main() {
    let fx = fixture();

    // ---- event_json
    let mut ev = Out::new("event_json");
    for (name, issued) in [
        ("device-a", &fx.device_a),
        ("identity-a", &fx.identity_a),
        ("device-b", &fx.device_b),
        ("revoked-a", &fx.revoked_a),
    ] {
        ev.put(&format!("{name}.json"), issued.event_json().as_bytes());
    }
    let base = fx.device_a.cert.attestation_content(&fx.device_a.request);
    let mut marked = base.clone();
    marked.revoked = Some(RevocationNotice {
        revoked_at: 1_796_000_000_000,
        reason: "key_compromise".into(),
    });
    ev.put("device-a-revoked-marker.json", marked.to_json().as_bytes());
    let mut with_root = base.clone();
    with_root.chain.push(STANDARD.encode(&fx.root_der));
    ev.put("device-a-with-root.json", with_root.to_json().as_bytes());
    let mut leaf_only = base.clone();
    leaf_only.chain.truncate(1);
    ev.put("device-a-leaf-only.json", leaf_only.to_json().as_bytes());
    let mut swapped: AttestationContent = base.clone();
    swapped.chain.reverse();
    ev.put("device-a-swapped.json", swapped.to_json().as_bytes());
    let mut cross = base.clone();
    cross.chain[1] = fx
        .device_b
        .cert
        .attestation_content(&fx.device_b.request)
        .chain[1]
        .clone();
    ev.put("device-a-wrong-ca.json", cross.to_json().as_bytes());
    for f in ["device-event.json", "identity-event.json"] {
        if let Some(b) = read(&format!("certs-example/{f}")) {
            ev.put(&format!("example-{f}"), &b);
        }
    }
    ev.put(
        "min.json",
        br#"{"version":1,"kind":"identity","user_id":"@a:b","key":"","chain":[""]}"#,
    );

    // ---- chain_verify
    let mut ch = Out::new("chain_verify");
    for (name, issued, sel) in [
        ("device-a", &fx.device_a, 0u8),
        ("identity-a", &fx.identity_a, 1),
        ("device-b", &fx.device_b, 2),
        ("revoked-a", &fx.revoked_a, 0),
    ] {
        let certs: Vec<&[u8]> = issued.cert.chain.iter().map(|c| c.as_ref()).collect();
        // fixture expectation by index; flags bit 6 (EKU) and 7 (fresh CRLs)
        ch.put(
            &format!("{name}-fixed"),
            &chain_input(sel << 2 | 0xc0, &certs, ""),
        );
        ch.put(
            &format!("{name}-lines"),
            &chain_input(0, &certs, &expectation_lines(issued)),
        );
    }
    let a: Vec<&[u8]> = fx.device_a.cert.chain.iter().map(|c| c.as_ref()).collect();
    ch.put(
        "device-a-with-root",
        &chain_input(0xc0, &[a[0], a[1], fx.root_der.as_ref()], ""),
    );
    ch.put("device-a-no-crls", &chain_input(0x20, &a, ""));
    if let Some(pem) = read("certs-example/device-chain.pem") {
        ch.put("example-device-chain.pem", &pem);
        let certs = govtrust_verifier::pem::certificates(&pem).expect("example chain");
        let refs: Vec<&[u8]> = certs.iter().map(|c| c.as_ref()).collect();
        ch.put("example-device-chain", &chain_input(3 << 2, &refs, ""));
    }
    if let Some(pem) = read("certs-example/identity-chain.pem") {
        ch.put("example-identity-chain.pem", &pem);
    }
    // PKITS paths (leaf first), through validate_path with the extended
    // algorithms: the RSA originals and the P-256 re-signed copies.
    let paths: &[&[&str]] = &[
        &["ValidCertificatePathTest1EE", "GoodCACert"],
        &["InvalidCASignatureTest2EE", "BadSignedCACert"],
        &["InvalidEESignatureTest3EE", "GoodCACert"],
        &["ValidDNnameConstraintsTest1EE", "nameConstraintsDN1CACert"],
        &[
            "ValidDNSnameConstraintsTest30EE",
            "nameConstraintsDNS1CACert",
        ],
        &["ValidLongSerialNumberTest16EE", "LongSerialNumberCACert"],
        &[
            "InvalidMissingbasicConstraintsTest1EE",
            "MissingbasicConstraintsCACert",
        ],
        &["ValidpathLenConstraintTest7EE", "pathLenConstraint0CACert"],
        &[
            "ValidpathLenConstraintTest14EE",
            "pathLenConstraint6subsubsubCA41XCert",
            "pathLenConstraint6subsubCA41Cert",
            "pathLenConstraint6subCA4Cert",
        ],
    ];
    for set in ["pkits-2048", "pkits-p256"] {
        for path in paths {
            let certs: Option<Vec<Vec<u8>>> = path.iter().map(|n| pkits(set, "certs", n)).collect();
            let Some(certs) = certs else { continue };
            let refs: Vec<&[u8]> = certs.iter().map(Vec::as_slice).collect();
            ch.put(&format!("{set}-{}", path[0]), &chain_input(0, &refs, ""));
        }
    }

    // ---- crl_parse
    let mut cr = Out::new("crl_parse");
    for (name, der) in ["root", "ica-a", "ica-b"].iter().zip(&fx.crl_der) {
        cr.put(&format!("{name}.crl"), der);
    }
    let pem = format!(
        "-----BEGIN X509 CRL-----\n{}\n-----END X509 CRL-----\n",
        STANDARD.encode(&fx.crl_der[1])
    );
    cr.put("ica-a.crl.pem", pem.as_bytes());
    // A bigger CRL from CA A (still revoking the fixture's revoked serial).
    let now = time::OffsetDateTime::from_unix_timestamp(govtrust_fuzz::NOW as i64 - 60).unwrap();
    let mut many = vec![govtrust_pki::RevokedCertificate {
        serial: fx.revoked_a.cert.serial.clone(),
        revoked_at: now,
        reason: govtrust_pki::RevocationReason::KeyCompromise,
    }];
    for (i, reason) in [
        "unspecified",
        "superseded",
        "cessation_of_operation",
        "ca_compromise",
    ]
    .iter()
    .enumerate()
    {
        many.push(govtrust_pki::RevokedCertificate {
            serial: vec![0x80 >> i, i as u8, 0xff],
            revoked_at: now,
            reason: govtrust_pki::RevocationReason::parse(reason).expect("reason"),
        });
    }
    let big = fx
        .ica_a
        .crl(&many, 9, now, std::time::Duration::from_secs(86_400))
        .expect("CRL");
    cr.put("ica-a-five-entries.crl", &big);
    for f in ["issuing-1.crl", "root.crl"] {
        if let Some(b) = read(&format!("certs-example/{f}")) {
            cr.put(&format!("example-{f}"), &b);
        }
    }
    for name in [
        "TrustAnchorRootCRL",
        "GoodCACRL",
        "BadCRLSignatureCACRL",
        "LongSerialNumberCACRL",
        "NegativeSerialNumberCACRL",
        "GeneralizedTimeCRLnextUpdateCACRL",
        "UnknownCRLExtensionCACRL",
        "UnknownCRLEntryExtensionCACRL",
        "deltaCRLCA1deltaCRL",
        "distributionPoint1CACRL",
        "indirectCRLCA3cRLIssuerCRL",
        "onlyContainsCACertsCACRL",
        "onlyContainsUserCertsCACRL",
        "onlySomeReasonsCA1compromiseCRL",
        "RevokedsubCACRL",
        "pre2000CRLnextUpdateCACRL",
    ] {
        if let Some(b) = pkits("pkits-2048", "crls", name) {
            cr.put(&format!("pkits-{name}.crl"), &b);
        }
    }

    enrollment_seeds();
    authority_import_seeds();

    println!(
        "seeds: event_json {}, chain_verify {}, crl_parse {}",
        ev.count, ch.count, cr.count
    );
}

/// `authority_import`: `govtrust authority import` files, CSV (the
/// operations guide's example, quoting, CRLF, a column subset) and JSON (the
/// API's objects), each with valid rows and rows that fail validation.
fn authority_import_seeds() {
    let mut ai = Out::new("authority_import");
    const HEADER: &str =
        "id,name,unit,street,postal_code,locality,state,country,servers,user_patterns,contact";
    ai.put(
        "valid.csv",
        format!(
            "{HEADER}\n\
             DE-HH-02000000-BA-MITTE,Bezirksamt Hamburg-Mitte,Kundenzentrum,Caffamacherreihe 1-3,20355,Hamburg,Hamburg,DE,id.bund.example,bot.hh-mitte;office.hh-*,it@hamburg-mitte.example\n\
             DE-BE-11000000-BA-NK,Bezirksamt Neukölln,Bürgeramt,Donaustraße 29,12043,Berlin,Berlin,DE,id.bund.example;matrix.bund.example,office-*,\n"
        )
        .as_bytes(),
    );
    ai.put(
        "quoted-crlf-subset.csv",
        "user_patterns , id,name,servers,contact\r\n\
          \"office;*-bot\",DE-1,\"Amt \"\"Nord\"\", Kiel\",\" id.bund.example ; \",\"a@b.example\"\r\n\
          \r\n\
          office,DE-2,Amt Süd,matrix.bund.example:8448,\r\n"
            .as_bytes(),
    );
    ai.put(
        "invalid-rows.csv",
        format!(
            "{HEADER}\n\
             DE-NONAME,,,,,,,,id.bund.example,office,\n\
             DE-LOWER,Amt,,,,,,de,id.bund.example,office,\n\
             DE-SERVER,Amt,,,,,,,id..bund.example,office,\n\
             DE-PATTERN,Amt,,,,,,,id.bund.example,of:fice,\n\
             DE-EMPTY,Amt,,,,,,,;,office,\n\
             DE-CONTACT,Amt,,,,,,,id.bund.example,office,\"line\nbreak\"\n\
             too,few,fields\n"
        )
        .as_bytes(),
    );
    ai.put("unknown-column.csv", b"id,name,colour\nDE-1,Amt,blue\n");
    ai.put(
        "valid.json",
        br#"[
  {"record": {"id": "DE-HH-02000000-BA-MITTE", "name": "Bezirksamt Hamburg-Mitte", "unit": "Kundenzentrum",
              "street": "Caffamacherreihe 1-3", "postal_code": "20355", "locality": "Hamburg",
              "state": "Hamburg", "country": "DE"},
   "servers": ["id.bund.example"], "user_patterns": ["bot.hh-mitte", "office.hh-*"],
   "contact": "it@hamburg-mitte.example"},
  {"record": {"id": "DE-BE-1", "name": "Bezirksamt Neuk\u00f6lln"}, "servers": ["matrix.bund.example", "[::1]:8448"],
   "user_patterns": ["*"], "contact": null}
]
"#,
    );
    ai.put(
        "invalid-rows.json",
        br#"[
  {"record": {"id": "DE-1", "name": " Amt"}, "servers": ["id.bund.example"], "user_patterns": ["office"]},
  {"record": {"id": "DE-2", "name": "Amt", "country": "DEU"}, "servers": ["id.bund.example"], "user_patterns": ["office"]},
  {"record": {"id": "DE-3", "name": "Amt"}, "servers": [], "user_patterns": ["office"]},
  {"record": {"id": "DE-4", "name": "Amt"}, "servers": ["id.bund.example"], "user_patterns": ["of fice"]},
  {"record": {"id": "DE-5", "name": "Amt"}, "servers": ["id.bund.example"], "user_patterns": ["o"], "contact": "a\u0007"},
  {"record": {"id": "DE-6", "name": "Amt", "colour": "blue"}, "servers": ["x"], "user_patterns": ["o"]},
  {"record": {"id": "DE-7", "name": "Amt"}, "servers": "id.bund.example", "user_patterns": ["o"]},
  {"record": {"id": 8}, "servers": ["x"], "user_patterns": ["o"], "extra": true},
  [], null, 7
]
"#,
    );
    ai.put(
        "not-an-array.json",
        br#"{"record": {"id": "DE-1", "name": "Amt"}}"#,
    );
    println!("seeds: authority_import {}", ai.count);
}

/// `enrollment_json`: request bodies of both enrollment calls, and
/// `/keys/query` device objects (self-signed with a fixed seed).
fn enrollment_seeds() {
    use serde_json::{json, Map, Value};
    let mut en = Out::new("enrollment_json");
    let user = "@office:id.bund.example";
    let device = "AGENCYDEV";
    let requests = [
        json!({"kind": "device", "user_id": user, "device_id": device}),
        json!({"kind": "identity", "user_id": user, "device_id": device, "proof": "signature"}),
        json!({"kind": "device", "user_id": user, "device_id": device,
               "key": "p5bnbyFvNg10g9SU5Qeif7DJZ2dr9qoQRK3dAjECkeg",
               "challenge": "Jx0s2yR3oO4G6bC1mYbq8Zr5kL7vT9wE2nQ4pA6sD8f"}),
        json!({"kind": "identity", "user_id": "@office-berlin:matrix.bund.example",
               "device_id": device, "key": "p5bnbyFvNg10g9SU5Qeif7DJZ2dr9qoQRK3dAjECkeg=",
               "challenge": "nonce", "signature": "c2lnbmF0dXJl", "wait_for_event_ms": 10000}),
    ];
    for (i, r) in requests.iter().enumerate() {
        en.put(&format!("request-{i}.json"), r.to_string().as_bytes());
    }
    // A device-keys object as /keys/query serves it, self-signed by a fixed
    // Ed25519 key (the key itself is not secret: these are fuzz seeds).
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[42; 32]).expect("seed");
    use ring::signature::KeyPair;
    let public = STANDARD.encode(pair.public_key().as_ref());
    let public = public.trim_end_matches('=');
    let mut obj: Map<String, Value> = match json!({
        "user_id": user,
        "device_id": device,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {
            format!("curve25519:{device}"): "3C5BFWi2Y8MaVvjM8M22DBmh24PmgR0nPvJOIArzgyI",
            format!("ed25519:{device}"): public,
        },
        "unsigned": {"device_display_name": "Agency bot"},
    }) {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    let bytes = govtrust_api::keys::signing_bytes(&obj).expect("canonical");
    let sig = STANDARD.encode(pair.sign(&bytes));
    obj.insert(
        "signatures".into(),
        json!({ user: { format!("ed25519:{device}"): sig.trim_end_matches('=') } }),
    );
    en.put(
        "device-keys.json",
        Value::Object(obj).to_string().as_bytes(),
    );
    println!("seeds: enrollment_json {}", en.count);
}

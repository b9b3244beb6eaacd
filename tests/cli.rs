//! Integration tests of the `govtrust` binary: the contract of
//! `govtrust verify` (exit 0 trusted, 1 not trusted, 2 usage error) against
//! hierarchies built with the CLI itself, and the operator commands that
//! build them (`ca`, `issue`, `revoke`, `crl`, `inspect`, `demo`).
//!
//! Every test builds its own hierarchy in a temporary directory, so the
//! tests run in parallel and never touch the working directory.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const BIN: &str = env!("CARGO_BIN_EXE_govtrust");

const SERVER: &str = "id.bund.example";
const USER: &str = "@registration.office:id.bund.example";
const DEVICE: &str = "AGENCYDEV1";
/// The authority's official name: the verified badge a client shows.
const BADGE: &str = "Registration Office Berlin";
const AUTHORITY_ID: &str = "DE-BE-11000000-BA-NK";
const AUTHORITY_JSON: &str = r#"{
  "id": "DE-BE-11000000-BA-NK",
  "name": "Registration Office Berlin",
  "unit": "Bürgeramt Neukölln",
  "street": "Donaustraße 29",
  "postal_code": "12043",
  "locality": "Berlin",
  "state": "Berlin",
  "country": "DE"
}"#;

// ---------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------

/// The binary with a clean environment for the variables it reads.
fn govtrust() -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "GOVTRUST_KEY_PASSPHRASE",
        "GOVTRUST_PKCS11_PIN",
        "SOFTHSM2_CONF",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `cmd` with `args` and returns what it did.
fn run_with<I, S>(mut cmd: Command, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    cmd.args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"))
}

/// Runs `govtrust ARGS…`.
fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_with(govtrust(), args)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Both streams, for assertion messages and for checks that should not
/// depend on which stream a message goes to.
fn both(out: &Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

/// Asserts the exit status; the panic shows both streams.
#[track_caller]
fn expect_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: expected exit {code}\n--- stdout\n{}--- stderr\n{}",
        stdout(out),
        stderr(out)
    );
}

/// Asserts success and returns standard output.
#[track_caller]
fn ok(out: Output, what: &str) -> String {
    expect_exit(&out, 0, what);
    stdout(&out)
}

/// Asserts a failed command (any non-zero exit) and returns both streams.
#[track_caller]
fn failed(out: Output, what: &str) -> String {
    assert!(
        !out.status.success() && out.status.code().is_some(),
        "{what}: expected a failure, got {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    both(&out)
}

#[track_caller]
fn parse_json(text: &str, what: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}):\n{text}"))
}

/// A fresh Ed25519 key standing in for a Matrix device or master key, as
/// standard base64 with padding (Matrix prints it unpadded: see
/// [`unpadded`]).
fn matrix_key() -> String {
    let signer = FileSigner::generate(KeyAlgorithm::Ed25519).expect("Ed25519 key");
    // SPKI = 12-byte header (SEQUENCE, AlgorithmIdentifier, BIT STRING) + key.
    let raw = &signer.spki_der()[12..];
    assert_eq!(raw.len(), 32);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn unpadded(key: &str) -> String {
    key.trim_end_matches('=').to_owned()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("format time")
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("temp paths are UTF-8").to_owned()
}

/// Every file under `dir` with its content, to prove a command changed
/// nothing.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).expect("read file"));
            }
        }
    }
    files
}

/// Skips (with a notice) unless CI is set, where a missing tool is an error.
fn skip_or_fail(notice: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{notice}");
    }
    eprintln!("NOTICE: {notice}; skipping");
}

// ---------------------------------------------------------------------------
// `govtrust verify` invocations
// ---------------------------------------------------------------------------

/// One `govtrust verify` call; tests start from a fixture's passing call and
/// change one thing.
#[derive(Clone, Debug)]
struct Verify {
    root: String,
    chain: String,
    user: String,
    /// `--device` (a device attestation).
    device: Option<String>,
    /// `--identity` (an identity attestation).
    identity: bool,
    key: String,
    crls: Vec<String>,
    /// Further arguments (`--at`, `--require-crl`, …).
    extra: Vec<String>,
}

impl Verify {
    fn args(&self, json: bool) -> Vec<String> {
        let mut args: Vec<String> = vec!["verify".into()];
        if json {
            args.push("--json".into());
        }
        for (flag, value) in [
            ("--root", &self.root),
            ("--chain", &self.chain),
            ("--user", &self.user),
            ("--key", &self.key),
        ] {
            args.extend([flag.to_owned(), value.clone()]);
        }
        if let Some(device) = &self.device {
            args.extend(["--device".to_owned(), device.clone()]);
        }
        if self.identity {
            args.push("--identity".into());
        }
        for crl in &self.crls {
            args.extend(["--crl".to_owned(), crl.clone()]);
        }
        args.extend(self.extra.iter().cloned());
        args
    }

    fn with(mut self, edit: impl FnOnce(&mut Verify)) -> Verify {
        edit(&mut self);
        self
    }

    fn extra<const N: usize>(self, args: [&str; N]) -> Verify {
        self.with(|v| v.extra.extend(args.iter().map(|a| (*a).to_owned())))
    }

    fn run(&self, json: bool) -> Output {
        run(self.args(json))
    }

    /// Asserts "trusted" in both output forms; returns the JSON verdict.
    #[track_caller]
    fn trusted(&self) -> Value {
        let human = ok(self.run(false), "verify (human)");
        assert!(human.starts_with("TRUSTED"), "{human}");
        assert!(human.contains(BADGE), "the badge is printed: {human}");
        assert!(human.contains(AUTHORITY_ID), "{human}");
        assert!(human.contains(&self.user), "{human}");
        let verdict = parse_json(&ok(self.run(true), "verify --json"), "verify --json");
        assert_eq!(verdict["trusted"], true, "{verdict:#}");
        assert!(verdict.get("reason").is_none(), "{verdict:#}");
        verdict
    }

    /// Asserts "not trusted" with `reason`, exit 1, in both output forms;
    /// returns the JSON verdict.
    #[track_caller]
    fn rejected(&self, reason: &str) -> Value {
        let out = self.run(true);
        expect_exit(&out, 1, &format!("verify --json, expecting {reason}"));
        let verdict = parse_json(&stdout(&out), "verify --json");
        assert_eq!(verdict["trusted"], false, "{verdict:#}");
        assert_eq!(verdict["reason"], reason, "{verdict:#}");
        assert!(
            verdict["error"].as_str().is_some_and(|e| !e.is_empty()),
            "a human-readable error accompanies the code: {verdict:#}"
        );
        assert!(verdict.get("attestation").is_none(), "{verdict:#}");

        let out = self.run(false);
        expect_exit(&out, 1, &format!("verify, expecting {reason}"));
        let human = stdout(&out);
        assert!(human.starts_with("NOT TRUSTED"), "{human}");
        assert!(human.contains(reason), "the reason is printed: {human}");
        assert!(!human.contains(BADGE), "no badge when not trusted: {human}");
        verdict
    }

    /// Asserts a usage error (exit 2) in both output forms; returns both
    /// streams of the human run.
    #[track_caller]
    fn usage_error(&self) -> String {
        expect_exit(&self.run(true), 2, "verify --json, expecting a usage error");
        let out = self.run(false);
        expect_exit(&out, 2, "verify, expecting a usage error");
        let text = both(&out);
        assert!(!text.trim().is_empty(), "a usage error explains itself");
        assert!(!text.contains(BADGE), "{text}");
        text
    }
}

// ---------------------------------------------------------------------------
// The fixture: a hierarchy built with the CLI
// ---------------------------------------------------------------------------

/// A CA directory with one device and one identity attestation for
/// [`USER`], fresh CRLs of the issuing CA and the root (DER), all made by
/// the binary in a temporary directory.
struct Hierarchy {
    tmp: tempfile::TempDir,
    device_key: String,
    identity_key: String,
    device_serial: String,
}

impl Hierarchy {
    fn new() -> Self {
        Self::build(&[], &[])
    }

    /// A hierarchy whose `ca init` gets `init_args` too.
    fn with_init(init_args: &[&str]) -> Self {
        Self::build(init_args, &[])
    }

    /// Builds the hierarchy; `init_args` are appended to `ca init` (e.g.
    /// PKCS#11 options), `env` is set for every command that signs.
    fn build(init_args: &[&str], env: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        std::fs::write(tmp.path().join("authority.json"), AUTHORITY_JSON).expect("authority");
        let mut h = Hierarchy {
            tmp,
            device_key: matrix_key(),
            identity_key: matrix_key(),
            device_serial: String::new(),
        };
        let signing = || {
            let mut cmd = govtrust();
            cmd.envs(env.iter().copied());
            cmd
        };
        let ca_dir = h.ca_path();
        let mut init = vec!["ca", "init", "--dir", &ca_dir, "--servers", SERVER];
        init.extend_from_slice(init_args);
        ok(run_with(signing(), &init), "ca init");

        let report = ok(
            run_with(
                signing(),
                h.issue_args("device", &h.device_key, "device.pem"),
            ),
            "issue device",
        );
        let report = parse_json(&report, "issue device --json");
        h.device_serial = report["serial"].as_str().expect("serial").to_owned();
        assert_eq!(
            report["state_key"],
            format!("device|{USER}|{DEVICE}"),
            "{report:#}"
        );
        ok(
            run_with(
                signing(),
                h.issue_args("identity", &h.identity_key, "identity.pem"),
            ),
            "issue identity",
        );
        h.publish_crls_with(signing);
        h
    }

    /// `issue KIND --json … --out FILE --event-out FILE.json` for USER.
    fn issue_args(&self, kind: &str, key: &str, out: &str) -> Vec<String> {
        let mut args: Vec<String> = ["issue", kind, "--json", "--dir"]
            .map(String::from)
            .to_vec();
        args.push(self.ca_path());
        for (flag, value) in [
            ("--user", USER.to_owned()),
            ("--key", key.to_owned()),
            ("--authority", self.path("authority.json")),
            ("--out", self.path(out)),
            ("--event-out", self.path(&format!("{out}.json"))),
        ] {
            args.extend([flag.to_owned(), value]);
        }
        if kind == "device" {
            args.extend(["--device".to_owned(), DEVICE.to_owned()]);
        }
        args
    }

    /// Signs new CRLs of the first issuing CA (`ca.crl`) and the root
    /// (`root.crl`), both DER.
    fn publish_crls(&self) {
        self.publish_crls_with(govtrust);
    }

    fn publish_crls_with(&self, cmd: impl Fn() -> Command) {
        for (root, file) in [(false, "ca.crl"), (true, "root.crl")] {
            let mut args = vec![
                "crl".to_owned(),
                "--dir".into(),
                self.ca_path(),
                "--out".into(),
                self.path(file),
            ];
            if root {
                args.push("--root".into());
            }
            ok(run_with(cmd(), args), "crl");
        }
    }

    fn path(&self, name: &str) -> String {
        path_str(&self.tmp.path().join(name))
    }

    fn ca_path(&self) -> String {
        self.path("ca")
    }

    fn root_cert(&self) -> String {
        path_str(&self.tmp.path().join("ca/root/cert.pem"))
    }

    /// `govtrust SUBCOMMAND --dir CA ARGS…`, asserting success.
    #[track_caller]
    fn ca_cmd(&self, subcommand: &[&str], args: &[&str]) -> String {
        let mut all: Vec<String> = subcommand.iter().map(|s| (*s).to_owned()).collect();
        all.extend(["--dir".to_owned(), self.ca_path()]);
        all.extend(args.iter().map(|s| (*s).to_owned()));
        ok(run(&all), &all.join(" "))
    }

    /// The passing verification of the device attestation, requiring
    /// fresh CRLs.
    fn verify_device(&self) -> Verify {
        Verify {
            root: self.root_cert(),
            chain: self.path("device.pem"),
            user: USER.into(),
            device: Some(DEVICE.into()),
            identity: false,
            key: self.device_key.clone(),
            crls: vec![self.path("ca.crl"), self.path("root.crl")],
            extra: vec!["--require-crl".into()],
        }
    }

    /// The passing verification of the identity attestation.
    fn verify_identity(&self) -> Verify {
        Verify {
            chain: self.path("identity.pem"),
            device: None,
            identity: true,
            key: self.identity_key.clone(),
            ..self.verify_device()
        }
    }
}

// ---------------------------------------------------------------------------
// verify: trusted
// ---------------------------------------------------------------------------

#[test]
fn verify_trusts_device_and_prints_authority_badge() {
    let h = Hierarchy::new();
    let out = ok(h.verify_device().run(false), "verify device");
    assert!(out.contains(&format!("device {DEVICE} of {USER}")), "{out}");
    assert!(out.contains(BADGE), "{out}");
    assert!(out.contains("Donaustraße 29"), "{out}");
    assert!(out.contains(&h.device_serial), "{out}");
    h.verify_device().trusted();
}

#[test]
fn verify_trusts_identity() {
    let h = Hierarchy::new();
    let verdict = h.verify_identity().trusted();
    assert_eq!(verdict["attestation"]["subject"]["kind"], "identity");
    assert!(verdict["attestation"]["subject"].get("device_id").is_none());
    let human = ok(h.verify_identity().run(false), "verify identity");
    assert!(human.contains("identity"), "{human}");
}

#[test]
fn verify_json_reports_the_authority_record() {
    let h = Hierarchy::new();
    let verdict = h.verify_device().trusted();
    let att = &verdict["attestation"];
    assert_eq!(att["user_id"], USER, "{verdict:#}");
    assert_eq!(att["subject"]["kind"], "device", "{verdict:#}");
    assert_eq!(att["subject"]["device_id"], DEVICE, "{verdict:#}");
    assert_eq!(att["key"], unpadded(&h.device_key), "{verdict:#}");
    assert_eq!(att["serial"], h.device_serial.as_str(), "{verdict:#}");
    let not_after = att["not_after"].as_i64().expect("not_after");
    let days = (not_after - OffsetDateTime::now_utc().unix_timestamp()) / 86_400;
    assert!((29..=30).contains(&days), "30-day default validity: {days}");
    assert!(att["issuer"]
        .as_str()
        .is_some_and(|s| s.contains("Issuing CA")));
    assert!(att["root"].as_str().is_some_and(|s| s.contains("Root CA")));
    let expected: Value = serde_json::from_str(AUTHORITY_JSON).expect("authority JSON");
    assert_eq!(att["authority"], expected, "the full record round-trips");
}

#[test]
fn verify_accepts_padded_and_unpadded_keys() {
    let h = Hierarchy::new();
    assert!(
        h.device_key.ends_with('='),
        "a 32-byte key pads to 44 chars"
    );
    for key in [h.device_key.clone(), unpadded(&h.device_key)] {
        h.verify_device().with(|v| v.key = key).trusted();
    }
}

#[test]
fn verify_accepts_pem_and_der_crls() {
    let h = Hierarchy::new();
    for (root, file) in [(false, "ca-pem.crl"), (true, "root-pem.crl")] {
        let out = h.path(file);
        let mut args = vec!["--out", &out, "--pem"];
        if root {
            args.push("--root");
        }
        h.ca_cmd(&["crl"], &args);
        let text = std::fs::read_to_string(&out).expect("PEM CRL is text");
        assert!(text.starts_with("-----BEGIN X509 CRL-----"), "{text}");
    }
    let der = std::fs::read(h.path("ca.crl")).expect("DER CRL");
    assert_eq!(der[0], 0x30, "DER CRL starts with a SEQUENCE");
    for (ca, root) in [
        ("ca.crl", "root.crl"),
        ("ca-pem.crl", "root-pem.crl"),
        ("ca.crl", "root-pem.crl"),
        ("ca-pem.crl", "root.crl"),
    ] {
        h.verify_device()
            .with(|v| v.crls = vec![h.path(ca), h.path(root)])
            .trusted();
    }
}

#[test]
fn verify_without_require_crl_accepts_missing_crls() {
    let h = Hierarchy::new();
    h.verify_device()
        .with(|v| {
            v.crls.clear();
            v.extra.clear();
        })
        .trusted();
}

// ---------------------------------------------------------------------------
// verify: not trusted (exit 1, reason code)
// ---------------------------------------------------------------------------

#[test]
fn verify_rejects_with_reason_codes() {
    let h = Hierarchy::new();
    let garbage = h.path("garbage.pem");
    std::fs::write(&garbage, "this is not a certificate\n").expect("garbage");
    // Another deployment: its own root (with its own name), and an issuing
    // CA of the same name as ours ("govtrust Issuing CA issuing-1").
    let other = Hierarchy::with_init(&["--root-name", "Other Government Root CA"]);
    // A third one whose root has the same (default) name as ours.
    let namesake = Hierarchy::new();
    let now = OffsetDateTime::now_utc();
    let stranger_key = matrix_key();

    let cases: Vec<(&str, Verify)> = vec![
        (
            "device_mismatch",
            h.verify_device()
                .with(|v| v.device = Some("OTHERDEV".into())),
        ),
        (
            "key_mismatch",
            h.verify_device().with(|v| v.key = stranger_key.clone()),
        ),
        (
            "key_mismatch",
            // The identity's key is certified, but not for this device.
            h.verify_device().with(|v| v.key = h.identity_key.clone()),
        ),
        (
            "user_mismatch",
            h.verify_device()
                .with(|v| v.user = "@impostor:id.bund.example".into()),
        ),
        (
            "user_mismatch",
            h.verify_identity()
                .with(|v| v.user = "@registration.office:other.example".into()),
        ),
        (
            "wrong_eku",
            // An identity certificate presented as a device attestation.
            h.verify_device().with(|v| {
                v.chain = h.path("identity.pem");
                v.key = h.identity_key.clone();
            }),
        ),
        (
            "wrong_eku",
            h.verify_identity().with(|v| {
                v.chain = h.path("device.pem");
                v.key = h.device_key.clone();
            }),
        ),
        ("crl_missing", h.verify_device().with(|v| v.crls.clear())),
        (
            "crl_missing",
            // The issuing CA's CRL alone does not cover the issuing CA.
            h.verify_device().with(|v| v.crls.truncate(1)),
        ),
        (
            "crl_stale",
            // Past the issuing CA CRL's nextUpdate (24 h).
            h.verify_device()
                .extra(["--at", &rfc3339(now + time::Duration::hours(25))]),
        ),
        (
            "crl_stale",
            h.verify_device().extra([
                "--crl-max-age-hours",
                "1",
                "--at",
                &rfc3339(now + time::Duration::hours(2)),
            ]),
        ),
        (
            "crl_wrong_issuer",
            // A CRL with the right issuer name, signed by another key.
            h.verify_device()
                .with(|v| v.crls = vec![other.path("ca.crl"), h.path("root.crl")]),
        ),
        (
            "expired",
            h.verify_device().extra(["--at", "2100-01-01T00:00:00Z"]),
        ),
        (
            "not_yet_valid",
            h.verify_device().extra(["--at", "2020-01-01T00:00:00Z"]),
        ),
        (
            "unknown_issuer",
            h.verify_device().with(|v| {
                v.root = other.root_cert();
                v.crls = vec![other.path("ca.crl"), other.path("root.crl")];
            }),
        ),
        (
            // A pinned root of the same name but another key: the chain is
            // matched to it by name and its signature fails. (Arguably
            // "unknown_issuer" would be the better reason; see the report.)
            "bad_signature",
            h.verify_device().with(|v| {
                v.root = namesake.root_cert();
                v.crls = vec![namesake.path("ca.crl"), namesake.path("root.crl")];
            }),
        ),
        (
            "malformed",
            h.verify_device().with(|v| v.chain = garbage.clone()),
        ),
        (
            "malformed",
            h.verify_device()
                .with(|v| v.chain = h.path("no-such-chain.pem")),
        ),
        (
            "malformed",
            h.verify_device().with(|v| v.root = garbage.clone()),
        ),
        (
            "malformed",
            h.verify_device()
                .with(|v| v.root = h.path("no-such-root.pem")),
        ),
        (
            "malformed",
            h.verify_device().with(|v| v.crls.push(garbage.clone())),
        ),
        (
            "malformed",
            h.verify_device()
                .with(|v| v.crls.push(h.path("no-such.crl"))),
        ),
        (
            "malformed",
            // A CRL where the chain should be.
            h.verify_device().with(|v| v.chain = h.path("ca.crl")),
        ),
    ];
    for (reason, verify) in &cases {
        let verdict = verify.rejected(reason);
        eprintln!("{reason}: {}", verdict["error"]);
    }
}

#[test]
fn verify_reports_revoked_after_revoke_and_new_crl() {
    let h = Hierarchy::new();
    let out = h.ca_cmd(
        &["revoke"],
        &["--serial", &h.device_serial, "--reason", "key_compromise"],
    );
    assert!(out.contains(&h.device_serial), "{out}");
    assert!(out.contains("key_compromise"), "{out}");
    // Revocation takes effect with the next CRL: the old one still passes.
    h.verify_device().trusted();
    h.publish_crls();
    h.verify_device().rejected("revoked");
    // Also from a PEM CRL, and also without --require-crl: a given CRL is
    // always checked.
    let pem = h.path("ca-pem.crl");
    h.ca_cmd(&["crl"], &["--out", &pem, "--pem"]);
    h.verify_device()
        .with(|v| {
            v.crls = vec![pem.clone()];
            v.extra.clear();
        })
        .rejected("revoked");
    // The identity attestation of the same user is unaffected.
    h.verify_identity().trusted();
}

#[test]
fn verify_reports_issuer_revoked_after_revoking_the_issuing_ca() {
    let h = Hierarchy::new();
    let out = h.ca_cmd(
        &["revoke"],
        &["--issuing-ca", "issuing-1", "--reason", "ca_compromise"],
    );
    assert!(
        out.contains("--root"),
        "tells to publish the root CRL: {out}"
    );
    h.verify_device().trusted();
    h.publish_crls();
    h.verify_device().rejected("issuer_revoked");
    h.verify_identity().rejected("issuer_revoked");
}

// ---------------------------------------------------------------------------
// verify: usage errors (exit 2)
// ---------------------------------------------------------------------------

#[test]
fn verify_usage_errors_exit_2() {
    let h = Hierarchy::new();
    let base = h.verify_device();
    let cases: Vec<(&str, Verify)> = vec![
        ("--device", base.clone().with(|v| v.device = None)),
        ("--identity", base.clone().with(|v| v.identity = true)),
        ("user ID", base.clone().with(|v| v.user = "alice".into())),
        ("user ID", base.clone().with(|v| v.user = "@alice".into())),
        ("key", base.clone().with(|v| v.key = "xyz".into())),
        (
            "key",
            // Valid base64, but 31 bytes.
            base.clone()
                .with(|v| v.key = base64::engine::general_purpose::STANDARD.encode([7u8; 31])),
        ),
        ("RFC 3339", base.clone().extra(["--at", "yesterday"])),
        (
            "RFC 3339",
            base.clone().extra(["--at", "2026-13-01T00:00:00Z"]),
        ),
        (
            "--crl-max-age-hours",
            base.clone().extra(["--crl-max-age-hours", "soon"]),
        ),
        ("--frobnicate", base.clone().extra(["--frobnicate"])),
    ];
    for (mention, verify) in &cases {
        let text = verify.usage_error();
        assert!(text.contains(mention), "mentions {mention:?}: {text}");
    }
    // Missing required arguments altogether.
    expect_exit(&run(["verify"]), 2, "verify without arguments");
    expect_exit(
        &run(["verify", "--root", &h.root_cert()]),
        2,
        "verify with --root only",
    );
}

// ---------------------------------------------------------------------------
// The operator commands
// ---------------------------------------------------------------------------

#[test]
fn ca_init_refuses_an_existing_directory() {
    let h = Hierarchy::new();
    let before = snapshot(Path::new(&h.ca_path()));
    let text = failed(
        run([
            "ca",
            "init",
            "--dir",
            &h.ca_path(),
            "--servers",
            "x.example",
        ]),
        "second ca init",
    );
    assert!(text.contains("refusing"), "{text}");
    assert_eq!(
        snapshot(Path::new(&h.ca_path())),
        before,
        "the existing hierarchy is untouched"
    );
    h.verify_device().trusted();
}

#[test]
fn issue_device_refuses_a_server_the_ca_may_not_certify() {
    let h = Hierarchy::new();
    let out = h.path("evil.pem");
    let text = failed(
        run([
            "issue",
            "device",
            "--dir",
            &h.ca_path(),
            "--user",
            "@office:evil.example",
            "--device",
            DEVICE,
            "--key",
            &h.device_key,
            "--authority",
            &h.path("authority.json"),
            "--out",
            &out,
        ]),
        "issue device for evil.example",
    );
    assert!(text.contains("may not certify"), "{text}");
    assert!(text.contains("evil.example"), "{text}");
    assert!(!Path::new(&out).exists(), "no chain written");
}

#[test]
fn issue_rejects_malformed_requests() {
    let h = Hierarchy::new();
    let issue = |kind: &str, key: &str, user: &str| {
        let mut args = h.issue_args(kind, key, "bad.pem");
        let at = args.iter().position(|a| a == "--user").expect("--user") + 1;
        args[at] = user.to_owned();
        failed(run(&args), &format!("issue {kind} {user} {key}"))
    };
    assert!(issue("device", "xyz", USER).contains("base64"));
    assert!(issue("identity", &h.identity_key, "alice").contains("alice"));
    assert!(!Path::new(&h.path("bad.pem")).exists());
}

#[test]
fn revoke_twice_reports_already_revoked() {
    let h = Hierarchy::new();
    let first = h.ca_cmd(&["revoke"], &["--serial", &h.device_serial]);
    assert!(!first.contains("already"), "{first}");
    let second = h.ca_cmd(&["revoke"], &["--serial", &h.device_serial]);
    assert!(second.contains("already revoked"), "{second}");
    let json = parse_json(
        &h.ca_cmd(&["revoke", "--json"], &["--serial", &h.device_serial]),
        "revoke --json",
    );
    assert_eq!(json["already_revoked"], true, "{json:#}");
    assert_eq!(json["serial"], h.device_serial.as_str(), "{json:#}");
    assert_eq!(json["crl_of"], "issuing-1", "{json:#}");
    // The CRL lists it once.
    let crl = parse_json(
        &h.ca_cmd(&["crl", "--json"], &["--out", &h.path("ca.crl")]),
        "crl --json",
    );
    assert_eq!(crl["revoked"], 1, "{crl:#}");

    // Revoking an issuing CA twice, too.
    h.ca_cmd(&["revoke"], &["--issuing-ca", "issuing-1"]);
    let again = h.ca_cmd(&["revoke"], &["--issuing-ca", "issuing-1"]);
    assert!(again.contains("already revoked"), "{again}");
}

#[test]
fn revoke_rejects_unknown_and_malformed_serials() {
    let h = Hierarchy::new();
    let text = failed(
        run(["revoke", "--dir", &h.ca_path(), "--serial", "deadbeef"]),
        "revoke unknown serial",
    );
    assert!(text.contains("--ca"), "suggests naming the CA: {text}");
    let text = failed(
        run(["revoke", "--dir", &h.ca_path(), "--serial", "zz"]),
        "revoke non-hex serial",
    );
    assert!(text.contains("hex"), "{text}");
    let text = failed(
        run([
            "revoke",
            "--dir",
            &h.ca_path(),
            "--serial",
            &h.device_serial,
            "--reason",
            "boredom",
        ]),
        "revoke with an unknown reason",
    );
    assert!(text.contains("boredom"), "{text}");
}

#[test]
fn inspect_explains_chain_crl_and_event() {
    let h = Hierarchy::new();
    let pem_crl = h.path("ca-pem.crl");
    h.ca_cmd(&["crl"], &["--out", &pem_crl, "--pem"]);
    let cases = [
        (h.path("device.pem"), "device attestation"),
        (h.path("identity.pem"), "identity attestation"),
        (h.root_cert(), "root CA"),
        (h.path("ca.crl"), "CRL"),
        (pem_crl, "CRL"),
        (h.path("root.crl"), "CRL"),
        (h.path("device.pem.json"), "state key"),
    ];
    for (file, mention) in &cases {
        let text = ok(run(["inspect", file]), &format!("inspect {file}"));
        assert!(text.contains(mention), "{file}: {mention:?} in\n{text}");
        let json = parse_json(
            &ok(run(["inspect", "--json", file]), "inspect --json"),
            "inspect --json",
        );
        assert!(json["type"].is_string(), "{json:#}");
    }
    let event = ok(
        run(["inspect", &h.path("device.pem.json")]),
        "inspect event",
    );
    assert!(
        event.contains(&format!("device|{USER}|{DEVICE}")),
        "{event}"
    );
    assert!(event.contains(BADGE), "{event}");
    let chain = ok(run(["inspect", &h.path("device.pem")]), "inspect chain");
    assert!(chain.contains("issuing CA"), "{chain}");
    assert!(chain.contains(&h.device_serial), "{chain}");

    // The SHA-256 fingerprint operators compare out of band: the same
    // text OpenSSL prints.
    let root = ok(run(["inspect", &h.root_cert()]), "inspect root");
    let openssl = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(h.root_cert())
        .output();
    match openssl {
        Ok(out) if out.status.success() => {
            let text = stdout(&out);
            let fingerprint = text.trim().split_once('=').map_or("", |(_, f)| f);
            assert!(fingerprint.len() == 95, "{text}");
            assert!(root.contains(fingerprint), "{fingerprint} in\n{root}");
        }
        Ok(out) => panic!("openssl x509 failed: {}", stderr(&out)),
        Err(e) => return skip_or_fail(&format!("openssl not runnable ({e})")),
    }

    // A certificate outside the profile is a finding: exit status 1, with
    // the report still printed.
    let foreign = h.path("foreign.pem");
    let openssl = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=foreign"])
        .args([
            "-days",
            "1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .args(["-keyout", &h.path("foreign-key.pem"), "-out", &foreign])
        .output();
    match openssl {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("openssl req failed: {}", stderr(&out)),
        Err(e) => return skip_or_fail(&format!("openssl not runnable ({e})")),
    }
    let out = run(["inspect", &foreign]);
    expect_exit(&out, 1, "inspect a certificate outside the profile");
    assert!(
        stdout(&out).contains("no govtrust profile role"),
        "{}",
        both(&out)
    );

    let garbage = h.path("garbage.bin");
    std::fs::write(&garbage, [0u8, 1, 2, 3]).expect("garbage");
    failed(run(["inspect", &garbage]), "inspect garbage");
    failed(
        run(["inspect", &h.path("missing")]),
        "inspect a missing file",
    );
}

#[test]
fn ca_list_and_a_second_issuing_ca() {
    let h = Hierarchy::new();
    let out = h.ca_cmd(
        &["ca", "issuing-ca"],
        &["--id", "second", "--servers", "other.example"],
    );
    assert!(out.contains("second"), "{out}");
    let text = h.ca_cmd(&["ca", "list"], &[]);
    assert!(
        text.contains("issuing-1") && text.contains("second"),
        "{text}"
    );
    let list = parse_json(&h.ca_cmd(&["ca", "list", "--json"], &[]), "ca list --json");
    let issuing = list["issuing"].as_array().expect("issuing CAs");
    let servers: Vec<(&str, &Value)> = issuing
        .iter()
        .map(|ca| (ca["id"].as_str().expect("id"), &ca["permitted_servers"]))
        .collect();
    assert_eq!(
        servers,
        [
            ("issuing-1", &serde_json::json!([SERVER])),
            ("second", &serde_json::json!(["other.example"])),
        ],
        "{list:#}"
    );
    // The same ID again is refused.
    failed(
        run([
            "ca",
            "issuing-ca",
            "--dir",
            &h.ca_path(),
            "--id",
            "second",
            "--servers",
            "x.example",
        ]),
        "duplicate issuing CA",
    );

    // The second CA certifies other.example users, under the same root.
    let key = matrix_key();
    let chain = h.path("other.pem");
    h.ca_cmd(
        &["issue", "identity"],
        &[
            "--ca",
            "second",
            "--user",
            "@office:other.example",
            "--key",
            &key,
            "--authority",
            &h.path("authority.json"),
            "--out",
            &chain,
        ],
    );
    let second_crl = h.path("second.crl");
    h.ca_cmd(&["crl"], &["--ca", "second", "--out", &second_crl]);
    let verify = h.verify_identity().with(|v| {
        v.chain = chain.clone();
        v.user = "@office:other.example".into();
        v.key = key.clone();
        v.crls = vec![second_crl.clone(), h.path("root.crl")];
    });
    verify.trusted();
    // The first CA's CRL does not cover the second CA's certificates.
    verify
        .clone()
        .with(|v| v.crls = vec![h.path("ca.crl"), h.path("root.crl")])
        .rejected("crl_missing");
    // …and the second CA may not certify id.bund.example users.
    let text = failed(
        run(h
            .issue_args("identity", &key, "x.pem")
            .into_iter()
            .chain(["--ca".to_owned(), "second".to_owned()])),
        "second CA for id.bund.example",
    );
    assert!(text.contains("may not certify"), "{text}");
}

#[test]
fn enrollment_client_with_new_key_and_with_csr() {
    let h = Hierarchy::new();
    let key = h.path("client-key.pem");
    let cert = h.path("client.pem");
    h.ca_cmd(
        &["issue", "enrollment-client"],
        &[
            "--authority",
            &h.path("authority.json"),
            "--new-key",
            &key,
            "--out",
            &cert,
        ],
    );
    let key_text = std::fs::read_to_string(&key).expect("key file");
    assert!(key_text.contains("PRIVATE KEY"), "{key_text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("key").permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key file is private: {mode:o}");
    }
    let text = ok(run(["inspect", &cert]), "inspect enrollment client");
    assert!(text.contains("agency enrollment client"), "{text}");
    assert!(text.contains(AUTHORITY_ID), "{text}");

    // --csr and --new-key together are a usage error.
    expect_exit(
        &run([
            "issue",
            "enrollment-client",
            "--dir",
            &h.ca_path(),
            "--authority",
            &h.path("authority.json"),
            "--new-key",
            &h.path("k2.pem"),
            "--csr",
            &h.path("r.csr"),
        ]),
        2,
        "--csr with --new-key",
    );

    // A P-256 CSR from OpenSSL.
    let csr = h.path("client.csr");
    let openssl = Command::new("openssl")
        .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=agency"])
        .args(["-keyout", &h.path("csr-key.pem"), "-out", &csr])
        .output();
    match openssl {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("openssl req failed: {}", stderr(&out)),
        Err(e) => return skip_or_fail(&format!("openssl not runnable ({e})")),
    }
    let csr_cert = h.path("csr-client.pem");
    h.ca_cmd(
        &["issue", "enrollment-client"],
        &[
            "--authority",
            &h.path("authority.json"),
            "--csr",
            &csr,
            "--out",
            &csr_cert,
        ],
    );
    let text = ok(run(["inspect", &csr_cert]), "inspect CSR client");
    assert!(text.contains("agency enrollment client"), "{text}");

    // A CSR whose signature does not verify is refused: flip a byte in the
    // signature at the end of the DER.
    let tampered = h.path("tampered.csr");
    let out = Command::new("openssl")
        .args(["req", "-in", &csr, "-outform", "DER", "-out", &tampered])
        .output()
        .expect("openssl req -outform DER");
    assert!(out.status.success(), "{}", stderr(&out));
    let mut der = std::fs::read(&tampered).expect("DER CSR");
    let last = der.len() - 3;
    der[last] ^= 0x01;
    std::fs::write(&tampered, der).expect("tampered CSR");
    let text = failed(
        run([
            "issue",
            "enrollment-client",
            "--dir",
            &h.ca_path(),
            "--authority",
            &h.path("authority.json"),
            "--csr",
            &tampered,
        ]),
        "tampered CSR",
    );
    assert!(text.contains("signature"), "{text}");
}

/// The subcommands listed in the `Commands:` section of a help text.
fn listed_subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        // Entries are indented by two spaces; wrapped descriptions by more.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|name| name != "help")
        .collect()
}

#[test]
fn help_of_every_subcommand_exits_0() {
    let mut pending: Vec<Vec<String>> = vec![Vec::new()];
    let mut seen = Vec::new();
    while let Some(path) = pending.pop() {
        let mut args = path.clone();
        args.push("--help".into());
        let help = ok(run(&args), &args.join(" "));
        assert!(
            help.contains("Usage: govtrust"),
            "{}: {help}",
            args.join(" ")
        );
        for sub in listed_subcommands(&help) {
            let mut child = path.clone();
            child.push(sub);
            pending.push(child);
        }
        seen.push(path.join(" "));
    }
    seen.sort();
    for expected in [
        "",
        "ca",
        "ca init",
        "ca issuing-ca",
        "ca list",
        "issue",
        "issue device",
        "issue identity",
        "issue enrollment-client",
        "revoke",
        "crl",
        "verify",
        "inspect",
        "demo",
    ] {
        assert!(
            seen.iter().any(|s| s == expected),
            "{expected:?} in {seen:?}"
        );
    }
    // The verify help states the exit-status contract.
    let help = ok(run(["verify", "--help"]), "verify --help");
    for mention in ["0 trusted", "1 not", "2 usage"] {
        assert!(help.contains(mention), "{mention:?} in {help}");
    }
    let version = ok(run(["--version"]), "--version");
    assert!(version.starts_with("govtrust "), "{version}");
    // No subcommand at all is a usage error.
    expect_exit(&run::<[&str; 0], &str>([]), 2, "no subcommand");
}

#[test]
fn offline_demo_exits_0() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let keep = tmp.path().join("demo");
    let out = ok(
        run(["demo", "--offline", "--keep", &path_str(&keep)]),
        "demo --offline",
    );
    assert!(out.contains("TRUSTED"), "{out}");
    assert!(out.contains("NOT TRUSTED"), "{out}");
    assert!(
        keep.join("ca/root/cert.pem").is_file(),
        "--keep leaves the hierarchy behind"
    );
    ok(run(["demo", "--offline"]), "demo in a temporary directory");
}

/// The README's first command, as a newcomer runs it: a real Synapse (the
/// shared test venv), the service, enrollment, the citizen's agent
/// trusting the device, revocation withdrawing it.
#[test]
fn demo_shows_trust_given_and_withdrawn() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let keep = tmp.path().join("demo");
    let out = ok(run(["demo", "--keep", &path_str(&keep)]), "demo");
    let trusted = out
        .find("is_verified() = true")
        .unwrap_or_else(|| panic!("no verified device in:\n{out}"));
    let badge =
        "Registration Office Berlin, Donaustraße 29, 12043 Berlin — verified by the government PKI";
    assert!(out.contains(badge), "{out}");
    let withdrawn = out
        .find("is_verified() = false")
        .unwrap_or_else(|| panic!("trust not withdrawn in:\n{out}"));
    assert!(trusted < withdrawn, "{out}");
    assert!(out.contains("revoked"), "{out}");
    assert!(
        keep.join("service/operator-token").is_file() && keep.join("synapse").is_dir(),
        "--keep leaves the service's data and Synapse behind"
    );
}

// ---------------------------------------------------------------------------
// PKCS#11 (SoftHSM2)
// ---------------------------------------------------------------------------

/// Where SoftHSM keeps its module on common systems.
const SOFTHSM_MODULES: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
];

fn softhsm_module() -> Option<PathBuf> {
    std::env::var_os("GOVTRUST_PKCS11_MODULE")
        .map(PathBuf::from)
        .or_else(|| {
            SOFTHSM_MODULES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
        })
        .filter(|p| p.is_file())
}

#[test]
fn ca_init_with_issuing_key_in_softhsm_issues_verifiable_attestations() {
    const TOKEN: &str = "govtrust-cli";
    const PIN: &str = "5678";
    let Some(module) = softhsm_module() else {
        return skip_or_fail("SoftHSM2 module not found; set GOVTRUST_PKCS11_MODULE");
    };
    // The token lives in its own directory; SOFTHSM2_CONF is set on the
    // child processes only.
    let hsm = tempfile::tempdir().expect("token dir");
    let tokens = hsm.path().join("tokens");
    std::fs::create_dir(&tokens).expect("tokens");
    let conf = hsm.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .expect("softhsm2.conf");
    let init = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args(["--init-token", "--free", "--label", TOKEN])
        .args(["--so-pin", "1234", "--pin", PIN])
        .output();
    match init {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("softhsm2-util --init-token: {}", both(&out)),
        Err(e) => return skip_or_fail(&format!("softhsm2-util not runnable ({e})")),
    }
    let conf = path_str(&conf);
    let env = [
        ("SOFTHSM2_CONF", conf.as_str()),
        ("GOVTRUST_PKCS11_PIN", PIN),
    ];
    let module = path_str(&module);
    let pkcs11_args = [
        "--pkcs11-module",
        &module,
        "--pkcs11-token",
        TOKEN,
        "--pkcs11-key-label",
        "ca-key",
    ];

    let h = Hierarchy::build(&pkcs11_args, &env);
    let state: Value = parse_json(
        &std::fs::read_to_string(h.tmp.path().join("ca/issuing/issuing-1/state.json"))
            .expect("state"),
        "state.json",
    );
    assert_eq!(state["key"]["backend"], "pkcs11", "{state:#}");
    assert_eq!(state["key"]["label"], "ca-key", "{state:#}");
    assert!(
        !h.tmp.path().join("ca/issuing/issuing-1/key.pem").exists(),
        "no issuing key file"
    );
    // Verification needs no token: it is pure.
    h.verify_device().trusted();
    h.verify_identity().trusted();

    // Without the PIN the CA cannot sign, and says why.
    let mut no_pin = govtrust();
    no_pin.env("SOFTHSM2_CONF", &conf);
    let text = failed(
        run_with(
            no_pin,
            ["crl", "--dir", &h.ca_path(), "--out", &h.path("x.crl")],
        ),
        "crl without the PIN",
    );
    assert!(text.contains("GOVTRUST_PKCS11_PIN"), "{text}");

    // A second init on the same token and label is refused: no duplicate
    // CA key.
    let mut again = govtrust();
    again.envs(env);
    let other_dir = h.path("ca2");
    let mut args = vec!["ca", "init", "--dir", &other_dir, "--servers", SERVER];
    args.extend_from_slice(&pkcs11_args);
    let text = failed(run_with(again, &args), "second key with the same label");
    assert!(text.contains("already holds"), "{text}");
}

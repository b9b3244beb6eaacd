//! `govtrust demo --offline`: a narrated tour of the PKI alone (no
//! homeserver, no service) in a temporary directory — the same code paths
//! the individual CLI commands run. It also regenerates certs-example/.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use govtrust_verifier::{Ed25519Key, Subject};

use crate::cli::{AttestationArgs, CaInitArgs, DemoArgs, DirArg, RevokeArgs, VerifyArgs};
use crate::cmd::{ca, issue, revoke, verify};
use crate::output::Output;
use govtrust_service::cadir::CaDir;

const SERVER: &str = "id.bund.example";
const USER: &str = "@registration.office:id.bund.example";
const DEVICE: &str = "AGENCYDEV1";

use super::step;

/// A fresh Ed25519 key standing in for a Matrix device or master key.
fn matrix_key() -> Result<Ed25519Key> {
    let signer = FileSigner::generate(KeyAlgorithm::Ed25519)?;
    let raw: [u8; 32] = signer.spki_der()[12..].try_into()?;
    Ok(Ed25519Key::from_bytes(raw))
}

/// Runs the offline tour.
pub fn tour(args: &DemoArgs) -> Result<ExitCode> {
    let temp;
    let base: PathBuf = match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let human = Output { json: false };
    let ca_dir = base.join("ca");
    println!("govtrust demo — working in {}", base.display());

    step(
        1,
        "Create the hierarchy: a root CA and an issuing CA that may certify only id.bund.example",
    );
    let mut init = CaInitArgs::development(
        ca_dir.clone(),
        vec![SERVER.into()],
        Some("https://govtrust.id.bund.example/v1/crl".into()),
    );
    init.root_name = "Demo Government Root CA".into();
    ca::init(&init, human)?;

    step(
        2,
        "The agency's authority record (what citizens will see as the verified badge)",
    );
    let authority = super::berlin();
    let authority_file = base.join("authority.json");
    std::fs::write(&authority_file, serde_json::to_string_pretty(&authority)?)?;
    println!("{}", serde_json::to_string_pretty(&authority)?);

    step(
        3,
        &format!("Issue a device attestation for {USER}, device {DEVICE}"),
    );
    let device_key = matrix_key()?;
    println!("device key ed25519:{DEVICE} = {device_key}");
    let device_chain = base.join("device-chain.pem");
    let (device_issued, _) = issue::issue_attestation(
        &attestation_args(
            &ca_dir,
            &authority_file,
            device_key,
            &device_chain,
            &base.join("device-event.json"),
        ),
        Subject::Device(DEVICE.parse()?),
    )?;
    std::fs::write(&device_chain, &device_issued.chain_pem)?;
    println!(
        "serial {} valid until {}; state key {}",
        device_issued.serial,
        device_issued.not_after,
        device_issued.state_key.as_deref().unwrap_or("")
    );
    println!(
        "attestation event content: {} bytes (limit {})",
        std::fs::metadata(base.join("device-event.json"))?.len(),
        govtrust_verifier::event::MAX_CONTENT_BYTES
    );

    step(
        4,
        "Issue an identity attestation for the agency's cross-signing master key",
    );
    let master_key = matrix_key()?;
    let identity_chain = base.join("identity-chain.pem");
    let (identity_issued, _) = issue::issue_attestation(
        &attestation_args(
            &ca_dir,
            &authority_file,
            master_key,
            &identity_chain,
            &base.join("identity-event.json"),
        ),
        Subject::Identity,
    )?;
    std::fs::write(&identity_chain, &identity_issued.chain_pem)?;
    println!(
        "serial {} for master key {master_key}",
        identity_issued.serial
    );

    step(5, "Publish CRLs (issuing CA and root) and verify as a citizen's client would, requiring fresh CRLs");
    let crls = publish_crls(&ca_dir, &base)?;
    expect(
        verify_case(&base, &device_chain, USER, Some(DEVICE), device_key, &crls),
        true,
    )?;
    expect(
        verify_case(&base, &identity_chain, USER, None, master_key, &crls),
        true,
    )?;

    step(6, "What the verifier refuses");
    println!("-- the same chain presented for another device:");
    expect(
        verify_case(
            &base,
            &device_chain,
            USER,
            Some("OTHERDEV"),
            device_key,
            &crls,
        ),
        false,
    )?;
    println!("-- a key that is not the one the client's crypto store holds:");
    expect(
        verify_case(
            &base,
            &device_chain,
            USER,
            Some(DEVICE),
            matrix_key()?,
            &crls,
        ),
        false,
    )?;
    println!("-- another user claiming the certificate:");
    expect(
        verify_case(
            &base,
            &device_chain,
            "@impostor:id.bund.example",
            Some(DEVICE),
            device_key,
            &crls,
        ),
        false,
    )?;
    println!("-- no CRLs under a policy that requires them:");
    expect(
        verify_case(&base, &device_chain, USER, Some(DEVICE), device_key, &[]),
        false,
    )?;

    step(
        7,
        "Revoke the device certificate (key compromise) and publish a new CRL",
    );
    revoke::revoke(
        &RevokeArgs {
            dir: DirArg {
                dir: ca_dir.clone(),
            },
            serial: Some(device_issued.serial.clone()),
            cert: None,
            issuing_ca: None,
            ca: None,
            reason: "key_compromise".into(),
        },
        human,
    )?;
    let crls = publish_crls(&ca_dir, &base)?;
    expect(
        verify_case(&base, &device_chain, USER, Some(DEVICE), device_key, &crls),
        false,
    )?;
    println!("-- the identity attestation is unaffected:");
    expect(
        verify_case(&base, &identity_chain, USER, None, master_key, &crls),
        true,
    )?;

    if args.keep.is_some() {
        std::fs::write(base.join("README.md"), KEPT_README)?;
    }
    println!(
        "\nDone. Inspect any file with `govtrust inspect FILE`{}.",
        if args.keep.is_some() {
            format!(" (kept in {})", base.display())
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Written beside a kept demo hierarchy (this is how certs-example/ is made).
const KEPT_README: &str = "\
# Example govtrust hierarchy — EXAMPLE MATERIAL, NOT FOR USE

Every private key in this directory (`ca/root/key.pem`,
`ca/issuing/issuing-1/key.pem`) is EXAMPLE KEY MATERIAL, published on
purpose. Never trust this root outside tests and documentation.

Regenerate (new keys, new serials) into a fresh directory with:

    cargo run -- demo --offline --keep DIR

(certs-example/README.md says how to refresh certs-example without
losing its fuzz keys.)

| file | what it is |
|---|---|
| `ca/root/cert.pem` | root CA (self-signed, ECDSA P-256) |
| `ca/issuing/issuing-1/cert.pem` | issuing CA, pathLen 0, permitted server `id.bund.example` (ARC.11) |
| `authority.json` | the authority record of Registration Office Berlin |
| `device-chain.pem` | device attestation for `@registration.office:id.bund.example`, device `AGENCYDEV1` (leaf + issuing CA) |
| `device-event.json` | its `io.govtrust.attestation` state-event content |
| `identity-chain.pem` | identity attestation of the user's cross-signing master key |
| `identity-event.json` | its state-event content |
| `issuing-1.crl` | CRL of the issuing CA, revoking the device certificate (DER) |
| `root.crl` | CRL of the root (empty) |
| `ca/issued/*.pem` | every issued certificate with its chain |

Try: `govtrust inspect certs-example/device-chain.pem`,
`govtrust inspect certs-example/issuing-1.crl`,
`govtrust inspect certs-example/device-event.json`.
";

fn attestation_args(
    ca: &Path,
    authority: &Path,
    key: Ed25519Key,
    out: &Path,
    event: &Path,
) -> AttestationArgs {
    AttestationArgs {
        dir: DirArg {
            dir: ca.to_path_buf(),
        },
        ca: None,
        user: USER.into(),
        key: key.to_base64(),
        authority: authority.to_path_buf(),
        days: 30,
        out: Some(out.to_path_buf()),
        event_out: Some(event.to_path_buf()),
    }
}

fn publish_crls(ca_dir: &Path, base: &Path) -> Result<Vec<PathBuf>> {
    let dir = CaDir::open(ca_dir)?;
    let issuing = base.join("issuing-1.crl");
    let root = base.join("root.crl");
    std::fs::write(
        &issuing,
        dir.sign_crl(Some("issuing-1"), std::time::Duration::from_secs(24 * 3600))?,
    )?;
    std::fs::write(
        &root,
        dir.sign_crl(None, std::time::Duration::from_secs(30 * 24 * 3600))?,
    )?;
    println!("CRLs written: {} and {}", issuing.display(), root.display());
    Ok(vec![issuing, root])
}

fn verify_case(
    base: &Path,
    chain: &Path,
    user: &str,
    device: Option<&str>,
    key: Ed25519Key,
    crls: &[PathBuf],
) -> ExitCode {
    let args = VerifyArgs {
        root: base.join("ca/root/cert.pem"),
        chain: Some(chain.to_path_buf()),
        user: user.into(),
        device: device.map(str::to_owned),
        identity: device.is_none(),
        key: Some(key.to_base64()),
        element_x509: None,
        crl: crls.to_vec(),
        require_crl: true,
        crl_max_age_hours: None,
        at: None,
    };
    print!(
        "$ govtrust verify --user {user} {} --require-crl{} → ",
        device.map_or("--identity".to_owned(), |d| format!("--device {d}")),
        " --crl …".repeat(crls.len().min(1))
    );
    verify::verify(&args, Output { json: false })
}

/// The demo doubles as a smoke test: a verdict other than the expected one
/// aborts it.
fn expect(code: ExitCode, trusted: bool) -> Result<()> {
    if (code == ExitCode::SUCCESS) != trusted {
        bail!(
            "unexpected verdict: the demo expected {}",
            if trusted { "TRUSTED" } else { "NOT TRUSTED" }
        );
    }
    Ok(())
}

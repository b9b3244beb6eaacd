//! Interoperability with OpenSSL: certificate hierarchies made by the
//! `openssl` command line from plain config files, checked against the
//! govtrust acceptance rule.
//!
//! Every test builds its own hierarchy in its own temporary directory: a
//! self-signed ECDSA P-256 root, an ECDSA P-256 issuing CA and an Ed25519
//! attestation leaf, as `docs/profile.md` describes them. A profile-conformant
//! chain must be accepted; each rejection case differs from the conformant
//! chain in exactly one thing and must fail with the error variant that
//! names the broken rule. CRLs come from `openssl ca -gencrl`.
//!
//! If `openssl` is not on `PATH`, the tests print a notice and pass.

use std::process::Command;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use govtrust_verifier::{
    AuthorityRecord, CertificateDer, Crl, CrlPolicy, CrlSet, Error, Expected, PathPosition,
    Subject, TrustAnchors, UnixTime, VerifiedAttestation, Verifier,
};
use tempfile::TempDir;

/// The profile's private OID arc.
const ARC: &str = "2.25.232602010215861917599387974036895384766";
const USER: &str = "@office.berlin:id.bund.example";
const SERVER: &str = "id.bund.example";
const DEVICE: &str = "AGENCYDEV1";
const MATRIX_URI: &str = "matrix:u/office.berlin:id.bund.example";

/// The authority record the leaf's subject DN carries, in DN order. The
/// street has a non-ASCII character to check UTF8String handling.
const AUTHORITY_DN: &[(&str, &str)] = &[
    ("C", "DE"),
    ("L", "Berlin"),
    ("postalCode", "12043"),
    ("street", "Donaustraße 29"),
    ("O", "Registration Office Berlin"),
    ("serialNumber", "DE-BE-11000000-BA-NK"),
];

/// `ARC.<n>` in dotted form, as OpenSSL configs take it.
fn arc(n: u8) -> String {
    format!("{ARC}.{n}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyAlg {
    P256,
    Ed25519,
}

/// A certificate and its private key, as files `<name>.pem` and `<name>.key`
/// in the scratch directory.
#[derive(Clone, Debug)]
struct Cert {
    name: String,
}

impl Cert {
    fn pem(&self) -> String {
        format!("{}.pem", self.name)
    }

    fn key(&self) -> String {
        format!("{}.key", self.name)
    }
}

/// One test's scratch directory; every `openssl` call runs inside it, so
/// configs and arguments name files relative to it.
struct Openssl {
    dir: TempDir,
}

impl Openssl {
    /// `None` (after printing a notice) when `openssl` cannot be run.
    fn new() -> Option<Self> {
        match Command::new("openssl").arg("version").output() {
            Ok(out) if out.status.success() => Some(Openssl {
                dir: tempfile::tempdir().expect("create temporary directory"),
            }),
            _ => {
                eprintln!("openssl is not on PATH: skipping the OpenSSL interop test");
                None
            }
        }
    }

    /// Runs `openssl <args>` in the scratch directory; panics with its
    /// stderr on failure, returns its stdout.
    fn run(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("spawn openssl");
        assert!(
            out.status.success(),
            "openssl {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.dir.path().join(name), contents)
            .unwrap_or_else(|e| panic!("write {name}: {e}"));
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }

    /// Generates `<name>.key` and returns the file name.
    fn genkey(&self, name: &str, alg: KeyAlg) -> String {
        let file = format!("{name}.key");
        match alg {
            KeyAlg::P256 => self.run(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &file,
            ]),
            KeyAlg::Ed25519 => self.run(&["genpkey", "-algorithm", "ed25519", "-out", &file]),
        };
        file
    }

    /// The raw Ed25519 public key of a key file, unpadded base64 as Matrix
    /// prints it: the last 32 bytes of the DER SubjectPublicKeyInfo.
    fn ed25519_b64(&self, key_file: &str) -> String {
        let spki = self.run(&["pkey", "-in", key_file, "-pubout", "-outform", "DER"]);
        assert_eq!(spki.len(), 44, "Ed25519 SPKI is 12 + 32 bytes");
        STANDARD_NO_PAD.encode(&spki[spki.len() - 32..])
    }

    /// Writes `<name>.cnf`: a `req` config with subject `dn` and the
    /// extension section `[ext]` (followed by any sections it refers to).
    fn write_config(&self, name: &str, dn: &[(&str, &str)], extensions: &str) -> String {
        let mut cnf = String::from(
            "[req]\ndistinguished_name = dn\nprompt = no\nstring_mask = utf8only\nutf8 = yes\n\n[dn]\n",
        );
        for (attr, value) in dn {
            cnf.push_str(&format!("{attr} = {value}\n"));
        }
        cnf.push_str("\n[ext]\n");
        cnf.push_str(extensions);
        let file = format!("{name}.cnf");
        self.write(&file, &cnf);
        file
    }

    /// A self-signed P-256 root: CA:true (critical), keyCertSign + cRLSign, no EKU.
    fn root(&self, name: &str, cn: &str) -> Cert {
        let cert = Cert { name: name.into() };
        self.genkey(name, KeyAlg::P256);
        let cnf = self.write_config(
            name,
            &[("C", "DE"), ("O", "Bundesverwaltung"), ("CN", cn)],
            "basicConstraints = critical, CA:true\n\
             keyUsage = critical, keyCertSign, cRLSign\n\
             subjectKeyIdentifier = hash\n",
        );
        self.run(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &cert.key(),
            "-config",
            &cnf,
            "-extensions",
            "ext",
            "-sha256",
            "-days",
            "3650",
            "-out",
            &cert.pem(),
        ]);
        cert
    }

    /// Issues `<name>.pem` for `key_file` from `issuer` with a CSR made by
    /// `openssl req` and signed by `openssl x509 -req` (ECDSA, SHA-256).
    fn issue(
        &self,
        name: &str,
        issuer: &Cert,
        key_file: &str,
        dn: &[(&str, &str)],
        extensions: &str,
        days: u32,
    ) -> Cert {
        let cert = Cert { name: name.into() };
        let cnf = self.write_config(name, dn, extensions);
        let csr = format!("{name}.csr");
        self.run(&[
            "req", "-new", "-key", key_file, "-config", &cnf, "-out", &csr,
        ]);
        self.run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &issuer.pem(),
            "-CAkey",
            &issuer.key(),
            "-CAcreateserial",
            "-CAserial",
            &format!("{}.srl", issuer.name),
            "-sha256",
            "-days",
            &days.to_string(),
            "-extfile",
            &cnf,
            "-extensions",
            "ext",
            "-out",
            &cert.pem(),
        ]);
        cert
    }

    fn issuing_ca(&self, name: &str, root: &Cert, spec: &CaSpec) -> Cert {
        let key = self.genkey(name, KeyAlg::P256);
        let dn = [
            ("C", "DE"),
            ("O", "Bundesverwaltung"),
            ("CN", "govtrust issuing CA"),
        ];
        self.issue(name, root, &key, &dn, &spec.extensions(), 365)
    }

    fn leaf(&self, name: &str, ca: &Cert, key_file: &str, spec: &LeafSpec) -> Cert {
        self.issue(name, ca, key_file, AUTHORITY_DN, &spec.extensions(), 30)
    }

    /// A CRL signed by `ca` (`openssl ca -gencrl`) revoking exactly `revoked`.
    fn crl(&self, ca: &Cert, revoked: &[&Cert]) -> Crl {
        let (index, number, cnf) = (
            format!("{}.index.txt", ca.name),
            format!("{}.crlnumber", ca.name),
            format!("{}.ca.cnf", ca.name),
        );
        self.write(&index, "");
        self.write(&number, "01\n");
        self.write(
            &cnf,
            &format!(
                "[ca]\ndefault_ca = ca_default\n\n[ca_default]\ndatabase = {index}\n\
                 crlnumber = {number}\ndefault_md = sha256\ndefault_crl_days = 7\n"
            ),
        );
        let ca_args = ["-config", &cnf, "-cert", &ca.pem(), "-keyfile", &ca.key()];
        for cert in revoked {
            self.run(&[&["ca"], &ca_args[..], &["-revoke", &cert.pem()]].concat());
        }
        let out = format!("{}.crl.pem", ca.name);
        self.run(&[&["ca"], &ca_args[..], &["-gencrl", "-out", &out]].concat());
        Crl::from_pem_or_der(self.read(&out)).expect("verifier parses the openssl CRL")
    }

    fn der(&self, cert: &Cert) -> CertificateDer<'static> {
        let mut certs =
            govtrust_verifier::pem::certificates(&self.read(&cert.pem())).expect("PEM parses");
        assert_eq!(certs.len(), 1);
        certs.remove(0)
    }

    /// The certificate's serial number as `openssl x509 -serial` prints it,
    /// lower-cased.
    fn serial(&self, cert: &Cert) -> String {
        let out = self.run(&["x509", "-in", &cert.pem(), "-noout", "-serial"]);
        let out = String::from_utf8(out).expect("ASCII");
        out.trim()
            .strip_prefix("serial=")
            .expect("serial= prefix")
            .to_ascii_lowercase()
    }
}

/// How the issuing CA is made; [`CaSpec::conformant`] follows the profile.
#[derive(Clone, Debug)]
struct CaSpec {
    basic_constraints: &'static str,
    eku: Vec<String>,
    servers: Vec<&'static str>,
}

impl CaSpec {
    fn conformant() -> Self {
        CaSpec {
            basic_constraints: "critical, CA:true, pathlen:0",
            eku: vec![arc(1), arc(2)],
            servers: vec![SERVER],
        }
    }

    fn extensions(&self) -> String {
        let mut ext = format!(
            "basicConstraints = {}\n\
             keyUsage = critical, keyCertSign, cRLSign\n\
             extendedKeyUsage = {}\n\
             subjectKeyIdentifier = hash\n\
             authorityKeyIdentifier = keyid:always\n\
             {} = ASN1:SEQUENCE:servers\n\n[servers]\n",
            self.basic_constraints,
            self.eku.join(", "),
            arc(11),
        );
        for (i, server) in self.servers.iter().enumerate() {
            ext.push_str(&format!("s{i} = UTF8:{server}\n"));
        }
        ext
    }
}

/// How the attestation leaf is made; [`LeafSpec::device`] and
/// [`LeafSpec::identity`] follow the profile.
#[derive(Clone, Debug)]
struct LeafSpec {
    key: KeyAlg,
    eku: String,
    san: String,
    device_id: Option<&'static str>,
}

impl LeafSpec {
    fn device() -> Self {
        LeafSpec {
            key: KeyAlg::Ed25519,
            eku: arc(1),
            san: format!("URI:{MATRIX_URI}"),
            device_id: Some(DEVICE),
        }
    }

    fn identity() -> Self {
        LeafSpec {
            eku: arc(2),
            device_id: None,
            ..LeafSpec::device()
        }
    }

    fn extensions(&self) -> String {
        let mut ext = format!(
            "basicConstraints = CA:false\n\
             keyUsage = critical, digitalSignature\n\
             extendedKeyUsage = {}\n\
             subjectAltName = {}\n\
             authorityKeyIdentifier = keyid:always\n",
            self.eku, self.san,
        );
        if let Some(device) = self.device_id {
            ext.push_str(&format!("{} = ASN1:UTF8String:{device}\n", arc(10)));
        }
        ext
    }
}

/// Root, issuing CA and leaf, plus the Ed25519 key the client's crypto
/// store holds for the attested device or identity.
struct Hierarchy {
    ossl: Openssl,
    root: Cert,
    ca: Cert,
    leaf: Cert,
    /// Unpadded base64 of the store's Ed25519 key. The leaf certifies this
    /// key unless its spec asks for another algorithm.
    key_b64: String,
}

impl Hierarchy {
    fn build(ca: &CaSpec, leaf: &LeafSpec) -> Option<Self> {
        let ossl = Openssl::new()?;
        let root = ossl.root("root", "govtrust test root");
        let issuing = ossl.issuing_ca("ca", &root, ca);
        let store_key = ossl.genkey("store", KeyAlg::Ed25519);
        let key_b64 = ossl.ed25519_b64(&store_key);
        let leaf_key = match leaf.key {
            KeyAlg::Ed25519 => store_key,
            other => ossl.genkey("leaf-subject", other),
        };
        let leaf = ossl.leaf("leaf", &issuing, &leaf_key, leaf);
        Some(Hierarchy {
            ossl,
            root,
            ca: issuing,
            leaf,
            key_b64,
        })
    }

    fn conformant_device() -> Option<Self> {
        Hierarchy::build(&CaSpec::conformant(), &LeafSpec::device())
    }

    /// What a client holding the store key expects for `device` (`None`:
    /// the identity).
    fn expected(&self, device: Option<&str>) -> Expected {
        Expected::new(USER, device, &self.key_b64).expect("valid expectation")
    }

    fn verify_with(
        &self,
        root: &Cert,
        expected: &Expected,
        policy: CrlPolicy,
        crls: &CrlSet,
    ) -> Result<VerifiedAttestation, Error> {
        let anchors = TrustAnchors::from_pem(&self.ossl.read(&root.pem())).expect("root parses");
        let chain = [self.ossl.der(&self.leaf), self.ossl.der(&self.ca)];
        Verifier::new(anchors, policy).verify(expected, &chain, crls, UnixTime::now())
    }

    fn verify(
        &self,
        expected: &Expected,
        policy: CrlPolicy,
        crls: &CrlSet,
    ) -> Result<VerifiedAttestation, Error> {
        self.verify_with(&self.root, expected, policy, crls)
    }

    /// CRLs from the root (for the issuing CA) and from the issuing CA (for
    /// leaves), revoking the given certificates.
    fn crls(&self, revoked_by_root: &[&Cert], revoked_by_ca: &[&Cert]) -> CrlSet {
        [
            self.ossl.crl(&self.root, revoked_by_root),
            self.ossl.crl(&self.ca, revoked_by_ca),
        ]
        .into_iter()
        .collect()
    }
}

/// Builds a hierarchy from the specs and verifies the device attestation
/// without CRLs; the chain must be rejected.
fn rejection(ca: CaSpec, leaf: LeafSpec) -> Option<Error> {
    let h = Hierarchy::build(&ca, &leaf)?;
    let verdict = h.verify(
        &h.expected(Some(DEVICE)),
        CrlPolicy::ALLOW_MISSING,
        &CrlSet::new(),
    );
    Some(verdict.expect_err("the chain breaks the profile and must be rejected"))
}

// --- acceptance -----------------------------------------------------------

#[test]
fn conformant_device_chain_is_accepted() {
    let Some(h) = Hierarchy::conformant_device() else {
        return;
    };
    let att = h
        .verify(
            &h.expected(Some(DEVICE)),
            CrlPolicy::ALLOW_MISSING,
            &CrlSet::new(),
        )
        .expect("a profile-conformant openssl chain is accepted");

    assert_eq!(att.user_id.as_str(), USER);
    assert!(matches!(&att.subject, Subject::Device(d) if d.as_str() == DEVICE));
    assert_eq!(att.key.to_base64(), h.key_b64);
    assert_eq!(
        att.authority,
        AuthorityRecord {
            id: "DE-BE-11000000-BA-NK".into(),
            name: "Registration Office Berlin".into(),
            unit: None,
            street: Some("Donaustraße 29".into()),
            postal_code: Some("12043".into()),
            locality: Some("Berlin".into()),
            state: None,
            country: Some("DE".into()),
        }
    );
    assert_eq!(
        att.authority.to_string(),
        "Registration Office Berlin, Donaustraße 29, 12043 Berlin"
    );
    assert_eq!(att.serial, h.ossl.serial(&h.leaf));
    let now = i64::try_from(UnixTime::now().as_secs()).unwrap();
    assert!(
        att.not_after > now + 29 * 86_400 && att.not_after <= now + 30 * 86_400,
        "notAfter is 30 days out: {}",
        att.not_after
    );
    assert!(att.issuer.contains("govtrust issuing CA"), "{}", att.issuer);
    assert!(att.root.contains("govtrust test root"), "{}", att.root);
}

#[test]
fn conformant_identity_chain_is_accepted() {
    let Some(h) = Hierarchy::build(&CaSpec::conformant(), &LeafSpec::identity()) else {
        return;
    };
    let att = h
        .verify(&h.expected(None), CrlPolicy::ALLOW_MISSING, &CrlSet::new())
        .expect("a profile-conformant openssl identity chain is accepted");
    assert_eq!(att.subject, Subject::Identity);
    assert_eq!(att.user_id.as_str(), USER);
    assert_eq!(att.authority.id, "DE-BE-11000000-BA-NK");

    // The same certificate does not attest a device.
    let err = h
        .verify(
            &h.expected(Some(DEVICE)),
            CrlPolicy::ALLOW_MISSING,
            &CrlSet::new(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::WrongEku { .. }), "{err:?}");
}

// --- rejections: each differs from the conformant chain in one thing -------

#[test]
fn leaf_with_server_auth_eku_is_rejected() {
    let leaf = LeafSpec {
        eku: "serverAuth".into(),
        ..LeafSpec::device()
    };
    let Some(err) = rejection(CaSpec::conformant(), leaf) else {
        return;
    };
    assert!(matches!(err, Error::WrongEku { .. }), "{err:?}");
    assert_eq!(err.code(), "wrong_eku");
}

#[test]
fn issuing_ca_without_device_eku_is_rejected() {
    let ca = CaSpec {
        eku: vec![arc(2)],
        ..CaSpec::conformant()
    };
    let Some(err) = rejection(ca, LeafSpec::device()) else {
        return;
    };
    assert_eq!(err, Error::IssuerEkuMissing);
}

#[test]
fn issuing_ca_for_another_server_is_rejected() {
    let ca = CaSpec {
        servers: vec!["land.berlin.example"],
        ..CaSpec::conformant()
    };
    let Some(err) = rejection(ca, LeafSpec::device()) else {
        return;
    };
    assert_eq!(
        err,
        Error::ServerNotPermitted {
            server: SERVER.into()
        }
    );
}

#[test]
fn san_with_dns_name_is_rejected() {
    let leaf = LeafSpec {
        san: "DNS:office.berlin.id.bund.example".into(),
        ..LeafSpec::device()
    };
    let Some(err) = rejection(CaSpec::conformant(), leaf) else {
        return;
    };
    assert!(matches!(err, Error::SanInvalid(_)), "{err:?}");
}

#[test]
fn san_with_https_uri_is_rejected() {
    let leaf = LeafSpec {
        san: "URI:https://id.bund.example/office.berlin".into(),
        ..LeafSpec::device()
    };
    let Some(err) = rejection(CaSpec::conformant(), leaf) else {
        return;
    };
    assert!(matches!(err, Error::SanInvalid(_)), "{err:?}");
}

#[test]
fn san_for_another_user_is_rejected() {
    let leaf = LeafSpec {
        san: "URI:matrix:u/someone.else:id.bund.example".into(),
        ..LeafSpec::device()
    };
    let Some(err) = rejection(CaSpec::conformant(), leaf) else {
        return;
    };
    assert_eq!(
        err,
        Error::UserMismatch {
            expected: MATRIX_URI.into(),
            found: "matrix:u/someone.else:id.bund.example".into(),
        }
    );
}

#[test]
fn leaf_with_p256_key_is_rejected() {
    let leaf = LeafSpec {
        key: KeyAlg::P256,
        ..LeafSpec::device()
    };
    let Some(err) = rejection(CaSpec::conformant(), leaf) else {
        return;
    };
    assert_eq!(err, Error::KeyNotEd25519);
}

#[test]
fn another_expected_key_is_rejected() {
    let Some(h) = Hierarchy::conformant_device() else {
        return;
    };
    let other = h.ossl.genkey("other-device", KeyAlg::Ed25519);
    let expected = Expected::new(USER, Some(DEVICE), &h.ossl.ed25519_b64(&other)).unwrap();
    let err = h
        .verify(&expected, CrlPolicy::ALLOW_MISSING, &CrlSet::new())
        .unwrap_err();
    assert_eq!(err, Error::KeyMismatch);
}

#[test]
fn device_extension_for_another_device_is_rejected() {
    let leaf = LeafSpec {
        device_id: Some("OTHERDEVICE"),
        ..LeafSpec::device()
    };
    let Some(err) = rejection(CaSpec::conformant(), leaf) else {
        return;
    };
    assert_eq!(
        err,
        Error::DeviceMismatch {
            expected: Some(DEVICE.into()),
            found: Some("OTHERDEVICE".into()),
        }
    );
}

#[test]
fn issuing_ca_without_ca_flag_is_rejected() {
    let ca = CaSpec {
        basic_constraints: "critical, CA:false",
        ..CaSpec::conformant()
    };
    let Some(err) = rejection(ca, LeafSpec::device()) else {
        return;
    };
    assert_eq!(err, Error::IssuerNotCa);
}

#[test]
fn chain_under_another_root_is_rejected() {
    let Some(h) = Hierarchy::conformant_device() else {
        return;
    };
    let expected = h.expected(Some(DEVICE));
    let other_root = h.ossl.root("other-root", "another test root");
    let err = h
        .verify_with(
            &other_root,
            &expected,
            CrlPolicy::ALLOW_MISSING,
            &CrlSet::new(),
        )
        .unwrap_err();
    assert_eq!(err, Error::UnknownIssuer);

    // A root with the same name but another key: the path builder finds
    // the name and then fails on the issuing CA's signature.
    let impostor = h.ossl.root("impostor-root", "govtrust test root");
    let err = h
        .verify_with(
            &impostor,
            &expected,
            CrlPolicy::ALLOW_MISSING,
            &CrlSet::new(),
        )
        .unwrap_err();
    assert_eq!(err, Error::BadSignature);
}

// --- revocation with openssl CRLs -----------------------------------------

#[test]
fn leaf_revoked_by_openssl_crl_is_rejected() {
    let Some(h) = Hierarchy::conformant_device() else {
        return;
    };
    let crls = h.crls(&[], &[&h.leaf]);
    let expected = h.expected(Some(DEVICE));
    for policy in [CrlPolicy::ALLOW_MISSING, CrlPolicy::REQUIRE_FRESH] {
        let err = h.verify(&expected, policy, &crls).unwrap_err();
        assert_eq!(
            err,
            Error::Revoked {
                position: PathPosition::Leaf
            },
            "{policy:?}"
        );
        assert_eq!(err.code(), "revoked");
    }
}

#[test]
fn issuing_ca_revoked_by_openssl_root_crl_is_rejected() {
    let Some(h) = Hierarchy::conformant_device() else {
        return;
    };
    let crls = h.crls(&[&h.ca], &[]);
    let err = h
        .verify(&h.expected(Some(DEVICE)), CrlPolicy::REQUIRE_FRESH, &crls)
        .unwrap_err();
    assert_eq!(
        err,
        Error::Revoked {
            position: PathPosition::Issuer
        }
    );
}

#[test]
fn crls_revoking_other_certificates_are_accepted_under_require_fresh() {
    let Some(h) = Hierarchy::conformant_device() else {
        return;
    };
    // The issuing CA's CRL is not empty: it revokes another device's leaf.
    let other_key = h.ossl.genkey("other-device", KeyAlg::Ed25519);
    let other_leaf = h
        .ossl
        .leaf("other-leaf", &h.ca, &other_key, &LeafSpec::device());
    let crls = h.crls(&[], &[&other_leaf]);
    let ca_crl = crls
        .iter()
        .find(|c| !c.is_empty())
        .expect("the issuing CA's CRL");
    assert_eq!(ca_crl.len(), 1);
    assert_eq!(ca_crl.number(), Some("1"));

    let att = h
        .verify(&h.expected(Some(DEVICE)), CrlPolicy::REQUIRE_FRESH, &crls)
        .expect("not revoked, fresh CRLs for both certificates");
    assert_eq!(att.serial, h.ossl.serial(&h.leaf));
}

#[test]
fn no_crl_under_require_fresh_is_rejected() {
    let Some(h) = Hierarchy::conformant_device() else {
        return;
    };
    let err = h
        .verify(
            &h.expected(Some(DEVICE)),
            CrlPolicy::REQUIRE_FRESH,
            &CrlSet::new(),
        )
        .unwrap_err();
    assert_eq!(
        err,
        Error::CrlMissing {
            position: PathPosition::Leaf
        }
    );
    assert_eq!(err.code(), "crl_missing");
}

#[test]
fn missing_root_crl_under_require_fresh_is_rejected() {
    let Some(h) = Hierarchy::conformant_device() else {
        return;
    };
    // With the issuing CA's CRL alone, the root's CRL for the CA is missing.
    let only_ca: CrlSet = [h.ossl.crl(&h.ca, &[])].into_iter().collect();
    let err = h
        .verify(
            &h.expected(Some(DEVICE)),
            CrlPolicy::REQUIRE_FRESH,
            &only_ca,
        )
        .unwrap_err();
    assert_eq!(
        err,
        Error::CrlMissing {
            position: PathPosition::Issuer
        }
    );
}

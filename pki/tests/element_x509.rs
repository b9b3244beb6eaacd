//! `io.element.x509` end to end: issue an identity-signing certificate,
//! sign a master key with it (CMS, RSASSA-PSS-SHA512), verify it with the
//! client verifier — and refuse every mutation, each beside its passing
//! baseline and each asserting the reason code of the one check that
//! catches it (so removing that check fails the test: the mutation would
//! then either be accepted or be caught later under another code).

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use cms::cert::x509::attr::Attribute;
use cms::cert::x509::spki::AlgorithmIdentifierOwned;
use cms::signed_data::{SignerInfo, SignerInfos};
use common::{fixture, unix, CRL_AGE, CRL_LIFETIME, USER};
use der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec};
use der::{Decode, Encode, Tag};
use govtrust_pki::element_x509::{
    key_id_of_chain, pss_algorithm, pss_sha512_algorithm, sign_master_key, signed_data, to_pem,
    FileIdentitySigner, IdentitySigner,
};
use govtrust_pki::signer::Signer;
use govtrust_pki::{
    IdentitySigningRequest, IssuedCertificate, RevocationReason, RevokedCertificate, Validity,
};
use govtrust_verifier::canonical_json::signing_bytes;
use govtrust_verifier::element_x509::SignedDataRawCerts as SignedData;
use govtrust_verifier::element_x509::{
    key_id_for, parse_cms_pem, GovtrustRawX509Verifier, RawX509Signature, RawX509Verifier,
    KEY_ID_PREFIX,
};
use govtrust_verifier::{
    oid, Crl, CrlPolicy, CrlSet, ElementX509Verifier, Error, TrustAnchors, UnixTime, UserId,
    VerifiedIdentitySignature,
};
use serde_json::{json, Map, Value};
use x509_parser::prelude::{FromDer, X509Certificate};

/// A test-only RSA-2048 key of the agency (made once with
/// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`): RSA key
/// generation is slow in debug builds and ring cannot generate RSA keys.
const AGENCY_RSA_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQCdw1l5v+tXepEW
meVFkMcUsNCwmkM4azbtdAAI8OB3/PzRZqFLaRwG2nuYgOVsDqHGWWIRJB0V6miU
Id2N53fpvWipsAwL+dfMeqBSna2zrPY1Da/+AzKDfhM3YMgX2fVvRv7GuV87rsQH
xinFHEd8MywB4RxpLKznH+KCAo3JW+OzxIrILhHsfPtUxQQt6GIkuSrFBS3m9KSD
a6N6R/Av5F2+LEHrmm+vZwu+hhimpUdkhfpFdA83sg7t7/XJqB0+TtLsZOLYRgud
cpK6q8X4zCHwbYyiQrQznR7e7JhK/ADM2aFnz+n+LkF6Uju5zsM+h5KbaWIG11Nl
R4v9YLzbAgMBAAECggEAHENsGzi70888gP0PKxhV4ioPKSRp2Ii0rXOzseZdgIGN
VYJ6cQUipUOtEtQ8xdAVQXCv9fwvTcbR93/drleCjxiE0KmebuLSu2pYoJRpEyBw
d269UdeGzDHhBXHMRyGgK9BfQoDhQ9L6gZ4Jy6tWTzTntGp86Ya8byeyL7J/bkxE
yvGT94s0PdaKCqyrlxa/KG556hxl14LKTLyruNkrvIdSRZ3aJrMMZ+CgXBKYRtge
9Zbz7R6gT9puEtJAJ+yYZbZAJo8OO6sMr/JRq65v64vGQtyisj4LrdU06L1wYfLA
SUDbu/EFHAq+uzl3je39L8J5cNPPoqnp6HJ1AR9MYQKBgQDaki2GprGjBoE6Bo/o
eY2c8rvlwqaYYG74uPj3tUkDdkNHuz2sByISPXyifMaghlfWutI5X4Gc5DlDv8Vu
ZTRsUNAzLsaevSjcpA3oJaVpKR7Dj9+cvF3VRi7nsdnOPlp8nBalNEwercx+gFwE
pobqSsZ8xKX7bGP5XoBWEEdlMQKBgQC4x3HBUiYSjstUyFwAK+BbjSNEKvu/dNjh
BkdQkvrbPrKIkhgKNFVpOIFVNCpB3lCr3eysHhSESDRwn4SJOFkVVACqaC+YA3NY
SvCXLTbGpd0qxnJMogCQQvKzrX2w92QW7kzUdP9VjLHaOFaopLN4GsTUyowu4khX
gts9FkevywKBgQCkWWxQJoHF4vtCpXKKTPQ2ArNU1aOtSj3HWlci87a+GqwGgP2j
oA13h7Jy/73fMIVWGk4/A9iTH20Ly2RqWUEs/StAgTiqXfQezGEEoWIai+ftBv8O
fPlViBt27t2m3m3t6vSALq3aF7d/m4cVnB4wiB9t6/Qe9ObLuMppbH4y0QKBgQCE
MXu6mLDQOgRRxX28SaebF+ARFsdAc7HtWvaOOHjrfXFwr0QvmL06J8ivUkChGxGP
w5dck7CN6rJJmHXTTdK9pXlMcHkMQfu1QPfaz+gOOf9+aLbBCG1qx9qmnQn9HyAm
H5orrQA3Dg73VbL5t8sFs/D5Y2bi69RhdyauD1B9/QKBgQDBOAuYO4hmrhrzzrk5
0FAvJ3/Ch984zNsFq6HiyCF/v1GbQUHU7v2qtGzkAk/t9I73Xo4QxBimec3ltORw
lFzy9vK4j3V+orjv7uM7wIQsB/X8Zn+B470isv4cyodHOkNts3eaeKj45nYhwXij
HjSZR85EU94rwhN8VDvUcwhHRw==
-----END PRIVATE KEY-----
";
/// A 1024-bit RSA SubjectPublicKeyInfo (base64 DER), below the profile's minimum.
const RSA_1024_SPKI: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwoX/FHmTf5wEu+AvwhsS+XtwOrppML9RXAOBph0MNVU64LnpjjnRvJ+TfgxqH0zMg7MFPMfjs7NFn7D1AtoDUzwOSDY1WuotCkfcusK8UPPOftjM59fvpOoyTt0x15EnXEJg0D/WT7H3vcs9p1BNe5+pl5qZr2M3aD+zMOPtvLwIDAQAB";
/// Another user on the issuing CA's server.
const OTHER_USER: &str = "@other:id.bund.example";

fn agency() -> &'static FileIdentitySigner {
    static KEY: OnceLock<FileIdentitySigner> = OnceLock::new();
    KEY.get_or_init(|| FileIdentitySigner::from_pkcs8_pem(AGENCY_RSA_KEY).expect("agency key"))
}

fn agency_ring_key() -> ring::signature::RsaKeyPair {
    let (_, der) = der::pem::decode_vec(AGENCY_RSA_KEY.as_bytes()).expect("PEM");
    ring::signature::RsaKeyPair::from_pkcs8(&der).expect("ring RSA key")
}

fn request(user: &str) -> IdentitySigningRequest {
    IdentitySigningRequest {
        user_id: UserId::parse(user).expect("user"),
        authority: fixture().authority.clone(),
        spki: agency().spki_der().to_vec(),
    }
}

/// An identity-signing certificate for `user` from the fixture's issuing
/// CA, valid `now ± 1 h`.
fn issue(user: &str) -> IssuedCertificate {
    let fx = fixture();
    fx.ica
        .issue_identity_signing(&request(user), fx.leaf_validity())
        .expect("identity-signing certificate")
}

fn baseline_chain() -> &'static IssuedCertificate {
    static ISSUED: OnceLock<IssuedCertificate> = OnceLock::new();
    ISSUED.get_or_init(|| issue(USER))
}

/// The unsigned master key object of `user` (the fixture's identity key).
fn master_key(user: &str) -> Map<String, Value> {
    let key = fixture().identity_key.to_base64();
    let Value::Object(object) = json!({
        "user_id": user,
        "usage": ["master"],
        "keys": {format!("ed25519:{key}"): key},
        "signatures": {user: {format!("ed25519:{key}"): "c2lnbmVkIGJ5IHRoZSBkZXZpY2U"}},
    }) else {
        unreachable!("a JSON object literal")
    };
    object
}

/// The baseline: USER's master key signed by `sign_master_key`.
fn signed() -> (Map<String, Value>, String) {
    let mut master = master_key(USER);
    let added = sign_master_key(&mut master, &baseline_chain().chain, agency()).expect("sign");
    (master, added.key_id)
}

fn fresh_crls() -> CrlSet {
    let fx = fixture();
    [&fx.ica_crl, &fx.root_crl]
        .into_iter()
        .map(|der| Crl::from_der(der).expect("CRL"))
        .collect()
}

fn verifier() -> ElementX509Verifier {
    ElementX509Verifier::new(
        TrustAnchors::from_der([fixture().root.certificate().der().clone()]).expect("root"),
        CrlPolicy::REQUIRE_FRESH,
    )
}

fn verify_as(
    user: &str,
    master: &Map<String, Value>,
    crls: &CrlSet,
    time: UnixTime,
) -> Result<VerifiedIdentitySignature, Error> {
    verifier().verify_master_key(
        &UserId::parse(user).expect("user"),
        Value::Object(master.clone()).to_string().as_bytes(),
        crls,
        time,
    )
}

fn verify(master: &Map<String, Value>) -> Result<VerifiedIdentitySignature, Error> {
    verify_as(USER, master, &fresh_crls(), unix(fixture().now))
}

fn code(result: Result<VerifiedIdentitySignature, Error>) -> Result<(), String> {
    result.map(|_| ()).map_err(|e| format!("{}: {e}", e.code()))
}

/// Asserts the baseline passes and `master` fails with `expected`.
fn refused(master: &Map<String, Value>, expected: &str) -> Error {
    verify(&signed().0).expect("the baseline verifies");
    let err = verify(master).expect_err("the mutation must be refused");
    assert_eq!(err.code(), expected, "{err}");
    err
}

/// Replaces USER's io.element.x509 signature(s) of `master` by `pem` under `key_id`.
fn with_signature(master: &Map<String, Value>, key_id: &str, pem: &str) -> Map<String, Value> {
    let mut master = master.clone();
    let own = master
        .get_mut("signatures")
        .and_then(|s| s.get_mut(USER))
        .and_then(Value::as_object_mut)
        .expect("own signatures");
    own.retain(|id, _| !id.starts_with(KEY_ID_PREFIX));
    own.insert(key_id.to_owned(), Value::String(pem.to_owned()));
    master
}

/// A CMS over USER's unsigned master key by `chain`'s key, PSS-signed as
/// the profile demands, then `edit`ed; returned as the signed object.
fn resigned(
    chain: &[govtrust_verifier::CertificateDer<'static>],
    edit: impl FnOnce(&mut SignedData, &[u8]),
) -> Map<String, Value> {
    let (master, key_id) = signed();
    let message = signing_bytes(&master).expect("canonical JSON");
    let signature = agency().sign_rsa_pss_sha512(&message).expect("sign");
    let mut data =
        signed_data(chain, signature, pss_sha512_algorithm().expect("alg")).expect("SignedData");
    edit(&mut data, &message);
    with_signature(&master, &key_id, &to_pem(&data).expect("PEM"))
}

fn signer_info_mut(data: &mut SignedData) -> SignerInfo {
    data.signer_infos.0.get(0).expect("one signer").clone()
}

fn replace_signer(data: &mut SignedData, signer: SignerInfo) {
    data.signer_infos = SignerInfos(SetOfVec::try_from(vec![signer]).expect("set"));
}

// --- the positive path --------------------------------------------------

#[test]
fn issue_sign_verify_round_trip() {
    let fx = fixture();
    let (master, key_id) = signed();
    let verified = verify(&master).expect("accepted");
    assert_eq!(verified.signer.user_id.as_str(), USER);
    assert_eq!(verified.signer.authority, fx.authority);
    assert_eq!(verified.master_key, fx.identity_key);
    assert_eq!(
        verified.signer.serial,
        govtrust_pki::hex(&baseline_chain().serial)
    );
    // The key ID names the root: Element's rule (AKI of the top
    // certificate) and the verifier's (SKI of the pinned root) agree.
    let root_key_id =
        govtrust_pki::der::key_identifier(fx.root_signer.spki_der()).expect("root key id");
    assert_eq!(key_id, key_id_for(&root_key_id));
    assert_eq!(verified.signer.key_id, key_id);
    assert_eq!(
        key_id_of_chain(&baseline_chain().chain).expect("key id"),
        key_id
    );
    // The other signatures of the object are untouched.
    let own = master["signatures"][USER].as_object().expect("own");
    assert_eq!(own.len(), 2);
    assert!(own[&key_id]
        .as_str()
        .expect("PEM")
        .starts_with("-----BEGIN CMS-----\n"));
}

#[test]
fn issued_certificate_follows_the_identity_signing_profile() {
    let issued = baseline_chain();
    let (_, leaf) = X509Certificate::from_der(issued.certificate()).expect("leaf");
    let eku = leaf
        .extended_key_usage()
        .expect("eku")
        .expect("present")
        .value;
    assert_eq!(eku.other.len(), 1);
    assert_eq!(eku.other[0].as_bytes(), oid::EKU_IDENTITY_SIGNING);
    let ku = leaf.key_usage().expect("ku").expect("present");
    assert!(ku.critical && ku.value.digital_signature() && ku.value.flags == 1);
    assert!(leaf.subject_alternative_name().expect("san").is_some());
    assert_eq!(leaf.public_key().raw, agency().spki_der());
    let (_, ica) = X509Certificate::from_der(&issued.chain[1]).expect("ica");
    let ica_eku = ica
        .extended_key_usage()
        .expect("eku")
        .expect("present")
        .value;
    assert!(ica_eku
        .other
        .iter()
        .any(|o| o.as_bytes() == oid::EKU_IDENTITY_SIGNING));
    let (master, key_id) = signed();
    let cms =
        parse_cms_pem(master["signatures"][USER][&key_id].as_str().expect("pem")).expect("profile");
    assert_eq!(cms.chain[0], *issued.certificate());
}

#[test]
fn issuance_refuses_keys_outside_the_profile() {
    use base64::Engine as _;
    let fx = fixture();
    let small = base64::engine::general_purpose::STANDARD
        .decode(RSA_1024_SPKI)
        .expect("base64");
    for (what, spki) in [
        ("RSA-1024", small),
        ("P-256", fx.p256_key.spki_der().to_vec()),
    ] {
        let mut req = request(USER);
        req.spki = spki;
        let err = fx
            .ica
            .issue_identity_signing(&req, fx.leaf_validity())
            .expect_err(what);
        assert!(
            matches!(err, govtrust_pki::Error::InvalidRequest(_)),
            "{what}: {err}"
        );
    }
    let err = fx
        .ica
        .issue_identity_signing(&request("@office:elsewhere.example"), fx.leaf_validity())
        .expect_err("server not permitted");
    assert!(
        matches!(err, govtrust_pki::Error::InvalidRequest(_)),
        "{err}"
    );
}

#[test]
fn sign_master_key_refuses_a_certificate_of_another_user() {
    let mut master = master_key(OTHER_USER);
    let err = sign_master_key(&mut master, &baseline_chain().chain, agency())
        .expect_err("the certificate is USER's");
    assert!(
        matches!(err, govtrust_pki::Error::InvalidRequest(_)),
        "{err}"
    );
}

#[test]
fn matrix_sdk_adapter_accepts_the_baseline_and_binds_the_user() {
    let fx = fixture();
    let (master, key_id) = signed();
    let pem = master["signatures"][USER][&key_id].as_str().expect("pem");
    let raw = RawX509Signature::from_cms(&parse_cms_pem(pem).expect("profile"));
    let message = signing_bytes(&master).expect("canonical");
    let adapter = GovtrustRawX509Verifier::new(verifier()).at_time(unix(fx.now));
    // REQUIRE_FRESH without CRLs: refused until the application sets them.
    assert_eq!(
        adapter
            .verify_detailed(&message, &raw)
            .map_err(|e| e.code())
            .err(),
        Some("crl_missing")
    );
    adapter.set_crls(fresh_crls());
    assert!(adapter.verify(&message, &raw));
    // Another message (another user's object) with the same signature.
    let other = signing_bytes(&master_key(OTHER_USER)).expect("canonical");
    assert_eq!(
        adapter
            .verify_detailed(&other, &raw)
            .map_err(|e| e.code())
            .err(),
        Some("user_mismatch")
    );
    // A changed master key of the same user.
    let mut changed = master.clone();
    changed.insert("usage".into(), json!(["master", "extra"]));
    let changed = signing_bytes(&changed).expect("canonical");
    assert!(!adapter.verify(&changed, &raw));
    assert_eq!(
        adapter
            .verify_detailed(&changed, &raw)
            .map_err(|e| e.code())
            .err(),
        Some("identity_signature_invalid")
    );
}

/// Records how Element's parser will order our certificates: the cms crate
/// (which matrix-rust-sdk uses) re-sorts the `certificates` SET OF by DER
/// encoding when decoding, and matrix-rust-sdk takes the first element as
/// the signer. Our verifier finds the signer by its SKI instead.
#[test]
fn certificate_order_after_decoding() {
    let (master, key_id) = signed();
    let pem = master["signatures"][USER][&key_id].as_str().expect("pem");
    let (_, der_bytes) = der::pem::decode_vec(pem.as_bytes()).expect("PEM");
    // What matrix-rust-sdk does: decode with the cms crate. It cannot
    // decode the issuing CA certificate (x509-cert OIDs hold 32-bit arcs;
    // ARC.11 needs 128 bits), so Element refuses the whole signature.
    let info = cms::content_info::ContentInfo::from_der(&der_bytes).expect("ContentInfo");
    let element_view: Result<cms::signed_data::SignedData, _> = info.content.decode_as();
    let err = element_view.expect_err("x509-cert cannot read the govtrust issuing CA");
    assert!(err.to_string().contains("OID"), "{err}");
    // Our decoder: the certificates SET OF is DER-sorted.
    let data: SignedData = info.content.decode_as().expect("SignedData");
    let first = data
        .certificates
        .expect("certs")
        .get(0)
        .expect("one")
        .to_der()
        .expect("DER");
    let leaf = baseline_chain().certificate().to_vec();
    let ca = baseline_chain().chain[1].to_vec();
    // DER SET OF order: the shorter encoding first. The RSA leaf is longer
    // than the ECDSA issuing CA, so the CA comes first.
    assert!(leaf.len() > ca.len());
    assert_eq!(first, ca, "the issuing CA sorts first");
    // Our parser still names the leaf as the signer.
    assert_eq!(parse_cms_pem(pem).expect("profile").chain[0].to_vec(), leaf);
}

// --- mutations ----------------------------------------------------------

#[test]
fn wrong_user() {
    let (master, _) = signed();
    verify(&master).expect("baseline");
    let err = code(verify_as(
        OTHER_USER,
        &master,
        &fresh_crls(),
        unix(fixture().now),
    ));
    assert!(
        err.as_ref().is_err_and(|e| e.starts_with("user_mismatch")),
        "{err:?}"
    );
    let err = verify_as(OTHER_USER, &master, &fresh_crls(), unix(fixture().now))
        .expect_err("another user");
    assert_eq!(
        err,
        Error::UserMismatch {
            expected: OTHER_USER.into(),
            found: USER.into()
        }
    );
}

#[test]
fn other_master_key() {
    let (mut master, _) = signed();
    let other = common::ed25519_key().to_base64();
    master.insert("keys".into(), json!({format!("ed25519:{other}"): other}));
    refused(&master, "identity_signature_invalid");
}

#[test]
fn wrong_ski_key_id() {
    let (master, key_id) = signed();
    let pem = master["signatures"][USER][&key_id]
        .as_str()
        .expect("pem")
        .to_owned();
    // The issuing CA's SKI instead of the root's.
    let ica_key_id = key_id_for(&fixture().ica_info.key_id);
    let err = refused(
        &with_signature(&master, &ica_key_id, &pem),
        "key_id_mismatch",
    );
    assert_eq!(
        err,
        Error::KeyIdMismatch {
            expected: key_id,
            found: ica_key_id
        }
    );
}

#[test]
fn pkcs1_v15_instead_of_pss() {
    let master = resigned(&baseline_chain().chain, |data, message| {
        let key = agency_ring_key();
        let mut sig = vec![0u8; key.public().modulus_len()];
        key.sign(
            &ring::signature::RSA_PKCS1_SHA512,
            &ring::rand::SystemRandom::new(),
            message,
            &mut sig,
        )
        .expect("PKCS#1 signature");
        let mut signer = signer_info_mut(data);
        signer.signature = OctetString::new(sig).expect("octets");
        // sha512WithRSAEncryption, NULL parameters.
        signer.signature_algorithm = AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13"),
            parameters: Some(Any::null()),
        };
        replace_signer(data, signer);
    });
    refused(&master, "cms_algorithm");
}

#[test]
fn wrong_salt_length() {
    // The signature itself uses salt 64 (it would verify); only the
    // parameters claim 32, which the profile forbids.
    let master = resigned(&baseline_chain().chain, |data, _| {
        let mut signer = signer_info_mut(data);
        signer.signature_algorithm = pss_algorithm(32).expect("alg");
        replace_signer(data, signer);
    });
    let err = refused(&master, "cms_algorithm");
    assert!(err.to_string().contains("salt length 32"), "{err}");
}

#[test]
fn extra_signer() {
    let master = resigned(&baseline_chain().chain, |data, message| {
        let first = signer_info_mut(data);
        let mut second = first.clone();
        // A second, equally valid signature (PSS is randomised).
        second.signature =
            OctetString::new(agency().sign_rsa_pss_sha512(message).expect("sign")).expect("octets");
        data.signer_infos = SignerInfos(SetOfVec::try_from(vec![first, second]).expect("set"));
    });
    refused(&master, "cms_signer_count");
}

#[test]
fn signed_attributes_present() {
    let master = resigned(&baseline_chain().chain, |data, message| {
        // RFC 5652 §5.4: contentType and messageDigest, and the signature
        // over their DER SET — a valid CMS signature, outside the profile.
        let digest = ring::digest::digest(&ring::digest::SHA512, message);
        let attrs: SetOfVec<Attribute> = SetOfVec::try_from(vec![
            Attribute {
                oid: ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3"),
                values: SetOfVec::try_from(vec![Any::encode_from(&ObjectIdentifier::new_unwrap(
                    "1.2.840.113549.1.7.1",
                ))
                .expect("any")])
                .expect("set"),
            },
            Attribute {
                oid: ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4"),
                values: SetOfVec::try_from(vec![Any::encode_from(
                    &OctetString::new(digest.as_ref()).expect("octets"),
                )
                .expect("any")])
                .expect("set"),
            },
        ])
        .expect("attributes");
        let signed_bytes = attrs.to_der().expect("DER");
        let mut signer = signer_info_mut(data);
        signer.signature =
            OctetString::new(agency().sign_rsa_pss_sha512(&signed_bytes).expect("sign"))
                .expect("octets");
        signer.signed_attrs = Some(attrs);
        replace_signer(data, signer);
    });
    refused(&master, "cms_signed_attributes");
}

#[test]
fn revoked_signer() {
    let fx = fixture();
    let (master, _) = signed();
    verify(&master).expect("baseline");
    let crl = fx.ica_crl_with(
        &[RevokedCertificate {
            serial: baseline_chain().serial.clone(),
            revoked_at: fx.now - Duration::from_secs(1800),
            reason: RevocationReason::KeyCompromise,
        }],
        fx.now - CRL_AGE,
        CRL_LIFETIME,
    );
    let crls: CrlSet = [&crl, &fx.root_crl]
        .into_iter()
        .map(|der| Crl::from_der(der).expect("CRL"))
        .collect();
    let err = verify_as(USER, &master, &crls, unix(fx.now)).expect_err("revoked");
    assert_eq!(err.code(), "revoked", "{err}");
}

#[test]
fn expired_signer() {
    let fx = fixture();
    let (master, _) = signed();
    verify(&master).expect("baseline");
    // Past the leaf's notAfter (now + 1 h), while both CRLs are still fresh.
    let later = unix(fx.now + Duration::from_secs(2 * 3600));
    let err = verify_as(USER, &master, &fresh_crls(), later).expect_err("expired");
    assert_eq!(err.code(), "expired", "{err}");
}

#[test]
fn chain_to_another_root() {
    let fx = fixture();
    // The impostor CA (under an unpinned root, with the issuing CA's name)
    // issues a certificate of the same profile for the same key and user.
    let foreign = fx
        .impostor_ica
        .issue_identity_signing(&request(USER), fx.leaf_validity())
        .expect("foreign identity-signing certificate");
    let mut master = master_key(USER);
    sign_master_key(&mut master, &foreign.chain, agency()).expect("sign");
    refused(&master, "unknown_issuer");
}

#[test]
fn crls_present_in_cms() {
    let master = resigned(&baseline_chain().chain, |data, _| {
        let crl = Any::from_der(&fixture().ica_crl).expect("CRL DER");
        data.crls = Some(SetOfVec::try_from(vec![crl]).expect("set"));
    });
    refused(&master, "cms_crls_present");
}

#[test]
fn content_not_detached() {
    // The signature is valid over the encapsulated content too.
    let master = resigned(&baseline_chain().chain, |data, message| {
        data.encap_content_info.econtent =
            Some(Any::new(Tag::OctetString, message.to_vec()).expect("content"));
    });
    refused(&master, "cms_not_detached");
}

#[test]
fn san_of_another_user() {
    // A valid identity-signing certificate of OTHER_USER (same key) signs
    // USER's master key.
    let other = issue(OTHER_USER);
    let master = resigned(&other.chain, |_, _| {});
    let err = refused(&master, "user_mismatch");
    assert_eq!(
        err,
        Error::UserMismatch {
            expected: "matrix:u/office:id.bund.example".into(),
            found: "matrix:u/other:id.bund.example".into(),
        }
    );
}

#[test]
fn no_x509_signature() {
    let master = master_key(USER);
    refused(&master, "identity_signature_missing");
}

#[test]
fn expired_validity_is_clamped_by_issuance() {
    // Issuance refuses a validity that ends before it starts.
    let fx = fixture();
    let err = fx
        .ica
        .issue_identity_signing(
            &request(USER),
            Validity {
                not_before: fx.now,
                not_after: fx.now - Duration::from_secs(1),
            },
        )
        .expect_err("empty validity");
    assert!(
        matches!(err, govtrust_pki::Error::InvalidRequest(_)),
        "{err}"
    );
}

use std::time::Duration;

use govtrust_pki::der::DistinguishedName;
use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
use govtrust_pki::{
    AttestationRequest, IssuingCa, RevocationReason, RevokedCertificate, RootCa, Validity,
};
use govtrust_verifier::*;

#[test]
fn issue_and_verify_device() {
    let root = RootCa::create(
        &DistinguishedName::ca("Test Root", None).unwrap(),
        FileSigner::generate(KeyAlgorithm::EcdsaP256).unwrap(),
        Validity::from_now(Duration::from_secs(3600 * 24 * 365)),
    )
    .unwrap();
    let ica_key = FileSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let ica_cert = root
        .issue_issuing_ca(
            &DistinguishedName::ca("Test Issuing", None).unwrap(),
            ica_key.spki_der().to_vec(),
            &["id.bund.example".to_string()],
            Validity::from_now(Duration::from_secs(3600 * 24 * 100)),
            None,
        )
        .unwrap();
    let ica = IssuingCa::load(
        ica_cert,
        root.certificate().der().clone(),
        ica_key,
        Some("https://ca.example/crl".into()),
    )
    .unwrap();
    let key = Ed25519Key::from_bytes([9; 32]);
    let req = AttestationRequest {
        user_id: UserId::parse("@office:id.bund.example").unwrap(),
        subject: Subject::Device(DeviceId::parse("DEV1").unwrap()),
        key,
        authority: AuthorityRecord {
            id: "A1".into(),
            name: "Office".into(),
            ..Default::default()
        },
    };
    let issued = ica
        .issue_attestation(&req, Validity::from_now(Duration::from_secs(3600)))
        .unwrap();
    let v = Verifier::new(
        TrustAnchors::from_der([root.certificate().der().clone()]).unwrap(),
        CrlPolicy::REQUIRE_FRESH,
    );
    let exp = Expected {
        user_id: req.user_id.clone(),
        subject: req.subject.clone(),
        key,
    };
    let err = v
        .verify(&exp, &issued.chain, &CrlSet::new(), UnixTime::now())
        .unwrap_err();
    assert!(
        matches!(
            err,
            govtrust_verifier::Error::CrlMissing {
                position: PathPosition::Leaf
            }
        ),
        "{err:?}"
    );
    let now = time::OffsetDateTime::now_utc();
    let crl = ica.crl(&[], 1, now, Duration::from_secs(3600)).unwrap();
    let root_crl = root.crl(&[], 1, now, Duration::from_secs(3600)).unwrap();
    let crls: CrlSet = [
        Crl::from_der(&crl).unwrap(),
        Crl::from_der(&root_crl).unwrap(),
    ]
    .into_iter()
    .collect();
    let ok = v
        .verify(&exp, &issued.chain, &crls, UnixTime::now())
        .unwrap();
    assert_eq!(ok.authority.name, "Office");
    let revoked = ica
        .crl(
            &[RevokedCertificate {
                serial: issued.serial.clone(),
                revoked_at: now,
                reason: RevocationReason::KeyCompromise,
            }],
            2,
            now,
            Duration::from_secs(3600),
        )
        .unwrap();
    let crls: CrlSet = [
        Crl::from_der(&revoked).unwrap(),
        Crl::from_der(&root_crl).unwrap(),
    ]
    .into_iter()
    .collect();
    let err = v
        .verify(&exp, &issued.chain, &crls, UnixTime::now())
        .unwrap_err();
    assert_eq!(err.code(), "revoked");
}

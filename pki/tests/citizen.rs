//! Citizen attestations (EKU ARC.6): issuance round trip, the level of
//! assurance, and for each citizen rule a certificate that violates exactly
//! that rule next to the otherwise-identical valid one, so that removing
//! any check from `Verifier::verify_citizen` makes its case fail.

mod common;

use std::time::Duration;

use common::*;
use govtrust_pki::der::{ext, DistinguishedName, NameAttribute};
use govtrust_pki::profile::{self, CitizenAttestationRequest, ISSUING_CA_EKUS};
use govtrust_pki::template::CertificateTemplate;
use govtrust_pki::{RevocationReason, RevokedCertificate};
use govtrust_verifier::oid::{
    AT_PSEUDONYM, EKU_CITIZEN_ATTESTATION, EKU_DEVICE_ATTESTATION, EXT_ASSURANCE_LEVEL,
    EXT_DEVICE_ID,
};
use govtrust_verifier::profile::{AssuranceLevel, CitizenExpected};
use govtrust_verifier::{
    CertificateDer, Crl, CrlPolicy, CrlSet, DeviceId, DnString, Error, Expected, PathPosition,
    Subject, TrustAnchors, UserId, Verifier,
};

const CITIZEN: &str = "@p-abcdefghijklmnopqrstuvwxyz:id.bund.example";
const CITIZEN_DEVICE: &str = "CITIZENDEV";

fn request(level: AssuranceLevel) -> CitizenAttestationRequest {
    CitizenAttestationRequest {
        user_id: UserId::parse(CITIZEN).unwrap(),
        device_id: DeviceId::parse(CITIZEN_DEVICE).unwrap(),
        key: fixture().device_key,
        level,
    }
}

fn expected(minimum: Option<AssuranceLevel>) -> CitizenExpected {
    CitizenExpected {
        user_id: UserId::parse(CITIZEN).unwrap(),
        device_id: DeviceId::parse(CITIZEN_DEVICE).unwrap(),
        key: fixture().device_key,
        minimum_level: minimum,
    }
}

fn verifier() -> Verifier {
    Verifier::new(
        TrustAnchors::from_der([fixture().root.certificate().der().clone()]).unwrap(),
        CrlPolicy::REQUIRE_FRESH,
    )
}

fn crls(ica_crl: &[u8]) -> CrlSet {
    [ica_crl, &fixture().root_crl]
        .into_iter()
        .map(|d| Crl::from_der(d).unwrap())
        .collect()
}

/// Everything one citizen verification depends on.
#[derive(Clone)]
struct Case {
    leaf: CertificateTemplate,
    ica: CertificateTemplate,
    expected: CitizenExpected,
    ica_crl: Vec<u8>,
}

impl Case {
    fn baseline() -> Self {
        let fx = fixture();
        Case {
            leaf: profile::citizen_attestation(
                &request(AssuranceLevel::Substantial),
                &fx.ica_info,
                fx.leaf_validity(),
                Some(CRL_URL),
            )
            .unwrap(),
            ica: fx.ica_template.clone(),
            expected: expected(Some(AssuranceLevel::Substantial)),
            ica_crl: fx.ica_crl.clone(),
        }
    }

    fn chain(&self) -> Vec<CertificateDer<'static>> {
        let fx = fixture();
        vec![
            self.leaf.sign(&*fx.ica_signer).unwrap(),
            self.ica.sign(&*fx.root_signer).unwrap(),
        ]
    }

    fn run(&self) -> Result<govtrust_verifier::profile::VerifiedCitizen, Error> {
        verifier().verify_citizen(
            &self.expected,
            &self.chain(),
            &crls(&self.ica_crl),
            unix(fixture().now),
        )
    }
}

fn pseudonym_dn(value: &str, string: DnString) -> Vec<u8> {
    DistinguishedName(vec![NameAttribute {
        oid: AT_PSEUDONYM,
        string,
        value: value.into(),
    }])
    .to_der()
}

#[test]
fn issued_by_the_ca_and_verified_at_each_level() {
    let fx = fixture();
    for level in AssuranceLevel::ALL {
        let issued = fx
            .ica
            .issue_citizen_attestation(&request(level), fx.leaf_validity())
            .unwrap();
        let verified = verifier()
            .verify_citizen(
                &expected(None),
                &issued.chain,
                &crls(&fx.ica_crl),
                unix(fx.now),
            )
            .unwrap();
        assert_eq!(verified.level, level);
        assert_eq!(verified.user_id.as_str(), CITIZEN);
        assert_eq!(verified.device_id.as_str(), CITIZEN_DEVICE);
        for minimum in AssuranceLevel::ALL {
            let verdict = verifier().verify_citizen(
                &expected(Some(minimum)),
                &issued.chain,
                &crls(&fx.ica_crl),
                unix(fx.now),
            );
            if level >= minimum {
                assert_eq!(verdict.unwrap().level, level);
            } else {
                let err = verdict.unwrap_err();
                assert_eq!(err.code(), "assurance_too_low", "{level} < {minimum}");
                assert!(matches!(err, Error::AssuranceTooLow { required, found }
                    if required == minimum.as_str() && found == level.as_str()));
            }
        }
    }
}

#[test]
fn names_no_person_and_no_authority() {
    let fx = fixture();
    let issued = fx
        .ica
        .issue_citizen_attestation(&request(AssuranceLevel::High), fx.leaf_validity())
        .unwrap();
    let (_, cert) =
        x509_parser::parse_x509_certificate(issued.certificate()).expect("certificate decodes");
    assert_eq!(
        cert.subject().to_string(),
        "OID(2.5.4.65)=p-abcdefghijklmnopqrstuvwxyz"
    );
    let der = issued.certificate().as_ref();
    for absent in [
        fx.authority.id.as_bytes(),
        fx.authority.name.as_bytes(),
        b"Berlin".as_slice(),
    ] {
        assert!(
            !der.windows(absent.len()).any(|w| w == absent),
            "{:?} appears in the citizen certificate",
            String::from_utf8_lossy(absent)
        );
    }
}

#[test]
fn issuance_refuses_a_server_the_ca_may_not_certify() {
    let fx = fixture();
    let mut r = request(AssuranceLevel::Low);
    r.user_id = UserId::parse("@p-aaaa:other.example").unwrap();
    assert!(fx
        .ica
        .issue_citizen_attestation(&r, fx.leaf_validity())
        .is_err());
}

#[test]
fn kinds_do_not_pass_for_each_other() {
    let fx = fixture();
    // A citizen attestation is not a device attestation...
    let citizen = fx
        .ica
        .issue_citizen_attestation(&request(AssuranceLevel::High), fx.leaf_validity())
        .unwrap();
    let as_device = Expected {
        user_id: UserId::parse(CITIZEN).unwrap(),
        subject: Subject::Device(DeviceId::parse(CITIZEN_DEVICE).unwrap()),
        key: fx.device_key,
    };
    let err = verifier()
        .verify(&as_device, &citizen.chain, &crls(&fx.ica_crl), unix(fx.now))
        .unwrap_err();
    assert_eq!(err.code(), "wrong_eku");
    // ...and a device attestation is not a citizen attestation.
    let device = fx
        .ica
        .issue_attestation(&fx.device_request(), fx.leaf_validity())
        .unwrap();
    let as_citizen = CitizenExpected {
        user_id: UserId::parse(USER).unwrap(),
        device_id: DeviceId::parse(DEVICE).unwrap(),
        key: fx.device_key,
        minimum_level: None,
    };
    let err = verifier()
        .verify_citizen(&as_citizen, &device.chain, &crls(&fx.ica_crl), unix(fx.now))
        .unwrap_err();
    assert_eq!(err.code(), "wrong_eku");
}

type Mutation = fn(&mut Case);

#[test]
fn each_rule_rejects_exactly_its_violation() {
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "ARC.12 missing",
            |c| remove_ext(&mut c.leaf, EXT_ASSURANCE_LEVEL),
            "assurance_level_invalid",
        ),
        (
            "ARC.12 value 4",
            |c| ext_mut(&mut c.leaf, EXT_ASSURANCE_LEVEL).value = vec![0x0a, 0x01, 0x04],
            "assurance_level_invalid",
        ),
        (
            "ARC.12 value 0",
            |c| ext_mut(&mut c.leaf, EXT_ASSURANCE_LEVEL).value = vec![0x0a, 0x01, 0x00],
            "assurance_level_invalid",
        ),
        (
            "ARC.12 an INTEGER instead of ENUMERATED",
            |c| ext_mut(&mut c.leaf, EXT_ASSURANCE_LEVEL).value = vec![0x02, 0x01, 0x02],
            "assurance_level_invalid",
        ),
        (
            "ARC.12 critical",
            |c| ext_mut(&mut c.leaf, EXT_ASSURANCE_LEVEL).critical = true,
            "assurance_level_invalid",
        ),
        (
            "level below the demanded minimum",
            |c| c.expected.minimum_level = Some(AssuranceLevel::High),
            "assurance_too_low",
        ),
        (
            "subject is an authority record (a name)",
            |c| {
                c.leaf.subject = DistinguishedName::from_authority(&fixture().authority)
                    .unwrap()
                    .to_der()
            },
            "citizen_subject_invalid",
        ),
        (
            "subject pseudonym of another user",
            |c| c.leaf.subject = pseudonym_dn("p-someoneelse", DnString::Utf8),
            "citizen_subject_invalid",
        ),
        (
            "pseudonym as PrintableString",
            |c| c.leaf.subject = pseudonym_dn("p-abcdefghijklmnopqrstuvwxyz", DnString::Printable),
            "citizen_subject_invalid",
        ),
        (
            "subject with a common name besides the pseudonym",
            |c| {
                let mut dn = DistinguishedName(vec![NameAttribute {
                    oid: AT_PSEUDONYM,
                    string: DnString::Utf8,
                    value: "p-abcdefghijklmnopqrstuvwxyz".into(),
                }]);
                dn.0.push(NameAttribute {
                    oid: &[0x55, 0x04, 0x03],
                    string: DnString::Utf8,
                    value: "Erika Mustermann".into(),
                });
                c.leaf.subject = dn.to_der();
            },
            "citizen_subject_invalid",
        ),
        (
            "EKU device attestation instead of citizen",
            |c| {
                set_ext(
                    &mut c.leaf,
                    ext::extended_key_usage(&[EKU_DEVICE_ATTESTATION]),
                )
            },
            "wrong_eku",
        ),
        (
            "EKU citizen plus device",
            |c| {
                set_ext(
                    &mut c.leaf,
                    ext::extended_key_usage(&[EKU_CITIZEN_ATTESTATION, EKU_DEVICE_ATTESTATION]),
                )
            },
            "wrong_eku",
        ),
        (
            "another device",
            |c| set_ext(&mut c.leaf, ext::device_id("OTHERDEV")),
            "device_mismatch",
        ),
        (
            "no device extension",
            |c| remove_ext(&mut c.leaf, EXT_DEVICE_ID),
            "device_mismatch",
        ),
        (
            "SAN of another user",
            |c| {
                set_ext(
                    &mut c.leaf,
                    ext::subject_alt_name_uris(&["matrix:u/p-other:id.bund.example"]),
                )
            },
            "user_mismatch",
        ),
        (
            "another key",
            |c| c.expected.key = fixture().stranger_key,
            "key_mismatch",
        ),
        (
            "issuing CA does not list ARC.6",
            |c| {
                let ekus: Vec<&[u8]> = ISSUING_CA_EKUS
                    .iter()
                    .copied()
                    .filter(|e| *e != EKU_CITIZEN_ATTESTATION)
                    .collect();
                set_ext(&mut c.ica, ext::extended_key_usage(&ekus));
            },
            "issuer_eku_missing",
        ),
        (
            "issuing CA may not certify the server",
            |c| {
                set_ext(
                    &mut c.ica,
                    ext::permitted_servers(&["matrix.bund.example".to_string()]),
                )
            },
            "server_not_permitted",
        ),
        (
            "leaf revoked",
            |c| {
                let fx = fixture();
                c.ica_crl = fx
                    .ica
                    .crl(
                        &[RevokedCertificate {
                            serial: c.leaf.serial.clone(),
                            revoked_at: fx.now - Duration::from_secs(1800),
                            reason: RevocationReason::KeyCompromise,
                        }],
                        2,
                        fx.now - CRL_AGE,
                        CRL_LIFETIME,
                    )
                    .unwrap()
            },
            "revoked",
        ),
    ];
    let baseline = Case::baseline();
    let verified = baseline.run().expect("the baseline passes");
    assert_eq!(verified.level, AssuranceLevel::Substantial);
    for (name, mutate, code) in cases {
        let mut case = baseline.clone();
        mutate(&mut case);
        let err = case.run().expect_err(name);
        assert_eq!(err.code(), code, "{name}: {err}");
        if code == "revoked" {
            assert!(matches!(
                err,
                Error::Revoked {
                    position: PathPosition::Leaf
                }
            ));
        }
    }
}

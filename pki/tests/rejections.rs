//! For every reject reason: a certificate (or CRL set, validation time,
//! event) that violates exactly that one rule, asserting that exact reason,
//! beside the otherwise-identical valid one that passes.
//!
//! Each case is `setup` (applied to both sides; usually nothing) and
//! `mutate` (applied to the rejected side only) over a valid scenario from
//! the shared fixture. Both sides are signed and verified with the same
//! verifier, CRLs and time unless the mutation is about exactly those; the
//! baseline must pass, so removing any check from the verifier makes its
//! case fail, and an accidental second violation shows up as a wrong reason.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use govtrust_pki::der::ext::KeyUsageBit;
use govtrust_pki::der::{ext, DistinguishedName};
use govtrust_pki::profile::{self, ISSUING_CA_EKUS};
use govtrust_pki::signer::Signer;
use govtrust_pki::{RevocationReason, RevokedCertificate};
use govtrust_verifier::event::{RevocationNotice, MAX_CONTENT_BYTES};
use govtrust_verifier::oid::{EKU_DEVICE_ATTESTATION, EKU_IDENTITY_ATTESTATION};
use govtrust_verifier::{
    CrlPolicy, DeviceId, Error, Expected, PathPosition, Subject, UserId, VerifiedAttestation,
};

type Step = fn(&mut Scenario, &Fixture);

struct Case {
    name: &'static str,
    /// Which baseline: the device attestation or the identity attestation.
    identity: bool,
    /// Applied to both sides.
    setup: Step,
    /// Applied to the rejected side only: the one violation.
    mutate: Step,
    /// `Error::code()` of the expected rejection.
    code: &'static str,
    /// The expected variant, including its details.
    variant: fn(&Error) -> bool,
}

fn nothing(_: &mut Scenario, _: &Fixture) {}

const LEAF: PathPosition = PathPosition::Leaf;
const ISSUER: PathPosition = PathPosition::Issuer;

/// The issuing CA's EKUs without the device attestation EKU.
fn ekus_without_device() -> Vec<&'static [u8]> {
    ISSUING_CA_EKUS
        .iter()
        .copied()
        .filter(|e| *e != EKU_DEVICE_ATTESTATION)
        .collect()
}

fn revoked(serial: &[u8]) -> RevokedCertificate {
    RevokedCertificate {
        serial: serial.to_vec(),
        revoked_at: fixture().now - Duration::from_secs(1800),
        reason: RevocationReason::KeyCompromise,
    }
}

/// Inserts a sub-CA between the leaf and the issuing CA and gives the
/// issuing CA pathLen 1, so the three-CA path is valid; CRLs of all three
/// CAs are present.
fn via_sub_ca(s: &mut Scenario, fx: &Fixture) {
    let servers: Vec<String> = SERVERS.iter().map(|s| s.to_string()).collect();
    let sub = profile::issuing_ca(
        &DistinguishedName::ca("govtrust Test Sub CA", None).unwrap(),
        fx.sub_ca_signer.spki_der().to_vec(),
        &servers,
        &fx.ica_info,
        govtrust_pki::Validity::starting(
            fx.now - Duration::from_secs(86400),
            Duration::from_secs(30 * 86400),
        ),
        Some(CRL_URL),
    )
    .unwrap();
    let sub_info = issuer_info(&sub.subject, &*fx.sub_ca_signer, sub.not_after);
    reparent(&mut s.leaf, &sub_info);
    s.leaf_signer = fx.sub_ca_signer.clone();
    set_ext(s.ica(), ext::basic_constraints(true, Some(1)));
    s.extra_crls.push(sign_crl(
        &*fx.sub_ca_signer,
        &sub.subject,
        &[],
        fx.now - CRL_AGE,
        CRL_LIFETIME,
    ));
    s.cas.insert(
        0,
        Issued {
            template: sub,
            signer: fx.ica_signer.clone(),
        },
    );
}

fn san(s: &mut Scenario, uris: &[&str]) {
    set_ext(&mut s.leaf, ext::subject_alt_name_uris(uris));
}

fn cases() -> Vec<Case> {
    vec![
        // --- chain to the pinned root ---------------------------------------
        Case {
            name: "issuing CA issued by a different (unpinned) root",
            identity: false,
            setup: nothing,
            mutate: |s, fx| {
                reparent(s.ica(), &fx.other_root_info);
                s.cas[0].signer = fx.other_root_signer.clone();
            },
            code: "unknown_issuer",
            variant: |e| matches!(e, Error::UnknownIssuer),
        },
        Case {
            name: "a different root is pinned",
            identity: false,
            setup: nothing,
            mutate: |s, fx| s.anchors = vec![fx.other_root.certificate().der().clone()],
            code: "unknown_issuer",
            variant: |e| matches!(e, Error::UnknownIssuer),
        },
        Case {
            name: "issuing CA without CA:true",
            identity: false,
            setup: nothing,
            mutate: |s, _| set_ext(s.ica(), ext::basic_constraints(false, None)),
            code: "issuer_not_ca",
            variant: |e| matches!(e, Error::IssuerNotCa),
        },
        Case {
            name: "sub-CA below an issuing CA with pathLen 0",
            identity: false,
            setup: via_sub_ca,
            // cas[0] is the sub-CA, cas[1] the issuing CA.
            mutate: |s, _| {
                set_ext(
                    &mut s.cas[1].template,
                    ext::basic_constraints(true, Some(0)),
                )
            },
            code: "path_len_exceeded",
            variant: |e| matches!(e, Error::PathLenExceeded),
        },
        Case {
            name: "bad signature (last byte of the leaf signature flipped)",
            identity: false,
            setup: nothing,
            mutate: |s, _| {
                s.leaf_der_edit = Some(|der| {
                    let last = der.len() - 1;
                    der[last] ^= 0x01;
                })
            },
            code: "bad_signature",
            variant: |e| matches!(e, Error::BadSignature),
        },
        Case {
            name: "leaf signature algorithm outside the profile (ecdsa-with-SHA512)",
            identity: false,
            setup: nothing,
            mutate: |s, _| {
                s.leaf_alg_override = Some(&[
                    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04,
                ])
            },
            code: "unsupported_algorithm",
            variant: |e| matches!(e, Error::UnsupportedAlgorithm),
        },
        // --- validity ---------------------------------------------------------
        Case {
            name: "validation time after the leaf's notAfter",
            identity: false,
            setup: nothing,
            mutate: |s, _| s.time = unix(s.leaf.not_after + Duration::from_secs(1)),
            code: "expired",
            variant: |e| matches!(e, Error::Expired),
        },
        Case {
            name: "validation time before the leaf's notBefore",
            identity: false,
            setup: nothing,
            mutate: |s, _| s.time = unix(s.leaf.not_before - Duration::from_secs(1)),
            code: "not_yet_valid",
            variant: |e| matches!(e, Error::NotYetValid),
        },
        // --- EKU --------------------------------------------------------------
        Case {
            name: "leaf without EKU",
            identity: false,
            setup: nothing,
            mutate: |s, _| remove_ext(&mut s.leaf, oids::EXT_KEY_USAGE),
            code: "wrong_eku",
            variant: |e| matches!(e, Error::WrongEku { .. }),
        },
        Case {
            name: "leaf with serverAuth instead of the device EKU",
            identity: false,
            setup: nothing,
            mutate: |s, _| set_ext(&mut s.leaf, ext::extended_key_usage(&[oids::SERVER_AUTH])),
            code: "wrong_eku",
            variant: |e| matches!(e, Error::WrongEku { .. }),
        },
        Case {
            name: "leaf with the device EKU plus serverAuth",
            identity: false,
            setup: nothing,
            mutate: |s, _| {
                set_ext(
                    &mut s.leaf,
                    ext::extended_key_usage(&[EKU_DEVICE_ATTESTATION, oids::SERVER_AUTH]),
                )
            },
            code: "wrong_eku",
            variant: |e| matches!(e, Error::WrongEku { .. }),
        },
        Case {
            name: "device certificate with the identity EKU",
            identity: false,
            setup: nothing,
            mutate: |s, _| {
                set_ext(
                    &mut s.leaf,
                    ext::extended_key_usage(&[EKU_IDENTITY_ATTESTATION]),
                )
            },
            code: "wrong_eku",
            variant: |e| matches!(e, Error::WrongEku { .. }),
        },
        Case {
            name: "identity certificate with the device EKU",
            identity: true,
            setup: nothing,
            mutate: |s, _| {
                set_ext(
                    &mut s.leaf,
                    ext::extended_key_usage(&[EKU_DEVICE_ATTESTATION]),
                )
            },
            code: "wrong_eku",
            variant: |e| matches!(e, Error::WrongEku { .. }),
        },
        Case {
            name: "issuing CA whose EKU list lacks the device EKU",
            identity: false,
            setup: nothing,
            mutate: |s, _| set_ext(s.ica(), ext::extended_key_usage(&ekus_without_device())),
            code: "issuer_eku_missing",
            variant: |e| matches!(e, Error::IssuerEkuMissing),
        },
        Case {
            name: "issuing CA without EKU extension",
            identity: false,
            setup: nothing,
            mutate: |s, _| remove_ext(s.ica(), oids::EXT_KEY_USAGE),
            code: "issuer_eku_missing",
            variant: |e| matches!(e, Error::IssuerEkuMissing),
        },
        // --- key usage, basic constraints, extensions -------------------------
        Case {
            name: "leaf keyUsage not critical",
            identity: false,
            setup: nothing,
            mutate: |s, _| ext_mut(&mut s.leaf, oids::KEY_USAGE).critical = false,
            code: "wrong_key_usage",
            variant: |e| matches!(e, Error::WrongKeyUsage),
        },
        Case {
            name: "leaf keyUsage with keyCertSign",
            identity: false,
            setup: nothing,
            mutate: |s, _| {
                set_ext(
                    &mut s.leaf,
                    ext::key_usage(&[KeyUsageBit::DigitalSignature, KeyUsageBit::KeyCertSign]),
                )
            },
            code: "wrong_key_usage",
            variant: |e| matches!(e, Error::WrongKeyUsage),
        },
        Case {
            name: "leaf without keyUsage",
            identity: false,
            setup: nothing,
            mutate: |s, _| remove_ext(&mut s.leaf, oids::KEY_USAGE),
            code: "wrong_key_usage",
            variant: |e| matches!(e, Error::WrongKeyUsage),
        },
        Case {
            name: "leaf is a CA (CA:true)",
            identity: false,
            setup: nothing,
            mutate: |s, _| set_ext(&mut s.leaf, ext::basic_constraints(true, None)),
            code: "leaf_is_ca",
            variant: |e| matches!(e, Error::LeafIsCa),
        },
        Case {
            name: "unknown critical extension on the leaf",
            identity: false,
            setup: nothing,
            mutate: |s, _| {
                // 1.3.6.1.4.1.55555.1, value NULL
                s.leaf.extensions.push(ext::raw(
                    &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xb2, 0x03, 0x01],
                    true,
                    vec![0x05, 0x00],
                ))
            },
            code: "unsupported_critical_extension",
            variant: |e| matches!(e, Error::UnsupportedCriticalExtension),
        },
        // --- SAN and user -----------------------------------------------------
        Case {
            name: "two SAN URIs",
            identity: false,
            setup: nothing,
            mutate: |s, _| {
                san(
                    s,
                    &[
                        "matrix:u/office:id.bund.example",
                        "matrix:u/other:id.bund.example",
                    ],
                )
            },
            code: "san_invalid",
            variant: |e| matches!(e, Error::SanInvalid(_)),
        },
        Case {
            name: "the same SAN URI twice",
            identity: false,
            setup: nothing,
            mutate: |s, _| {
                san(
                    s,
                    &[
                        "matrix:u/office:id.bund.example",
                        "matrix:u/office:id.bund.example",
                    ],
                )
            },
            code: "san_invalid",
            variant: |e| matches!(e, Error::SanInvalid(_)),
        },
        Case {
            name: "the SAN extension twice, each the user's URI",
            identity: false,
            setup: nothing,
            mutate: |s, _| {
                let uri = "matrix:u/office:id.bund.example";
                s.leaf.extensions.push(ext::subject_alt_name_uris(&[uri]));
            },
            code: "malformed",
            variant: |e| matches!(e, Error::Malformed { detail, .. } if detail == "duplicate extensions"),
        },
        Case {
            name: "non-matrix SAN URI",
            identity: false,
            setup: nothing,
            mutate: |s, _| san(s, &["https://id.bund.example/@office"]),
            code: "san_invalid",
            variant: |e| matches!(e, Error::SanInvalid(_)),
        },
        Case {
            name: "matrix: URI for a room, not a user",
            identity: false,
            setup: nothing,
            mutate: |s, _| san(s, &["matrix:r/office:id.bund.example"]),
            code: "san_invalid",
            variant: |e| matches!(e, Error::SanInvalid(_)),
        },
        Case {
            name: "DNS SAN instead of a URI",
            identity: false,
            setup: nothing,
            mutate: |s, _| {
                set_ext(
                    &mut s.leaf,
                    ext::subject_alt_name_hosts(&["id.bund.example"], &[]),
                )
            },
            code: "san_invalid",
            variant: |e| matches!(e, Error::SanInvalid(_)),
        },
        Case {
            name: "no SAN",
            identity: false,
            setup: nothing,
            mutate: |s, _| remove_ext(&mut s.leaf, oids::SUBJECT_ALT_NAME),
            code: "san_invalid",
            variant: |e| matches!(e, Error::SanInvalid(_)),
        },
        Case {
            name: "certificate for @Office (localpart case differs)",
            identity: false,
            setup: nothing,
            mutate: |s, _| san(s, &["matrix:u/Office:id.bund.example"]),
            code: "user_mismatch",
            variant: |e| {
                matches!(e, Error::UserMismatch { expected, found }
                    if expected == "matrix:u/office:id.bund.example"
                        && found == "matrix:u/Office:id.bund.example")
            },
        },
        Case {
            name: "certificate for the same localpart on another permitted server",
            identity: false,
            setup: nothing,
            mutate: |s, _| san(s, &["matrix:u/office:matrix.bund.example"]),
            code: "user_mismatch",
            variant: |e| matches!(e, Error::UserMismatch { found, .. } if found == "matrix:u/office:matrix.bund.example"),
        },
        Case {
            name: "identity certificate for another user",
            identity: true,
            setup: nothing,
            mutate: |s, _| san(s, &["matrix:u/offic:id.bund.example"]),
            code: "user_mismatch",
            variant: |e| matches!(e, Error::UserMismatch { .. }),
        },
        // --- device -----------------------------------------------------------
        Case {
            name: "device ID differs",
            identity: false,
            setup: nothing,
            mutate: |s, _| set_ext(&mut s.leaf, ext::device_id("OTHERDEV")),
            code: "device_mismatch",
            variant: |e| {
                matches!(e, Error::DeviceMismatch { expected: Some(x), found: Some(f) }
                    if x == DEVICE && f == "OTHERDEV")
            },
        },
        Case {
            name: "the device extension twice, another device first",
            identity: false,
            setup: nothing,
            mutate: |s, _| {
                let device = s.leaf.extensions.len() - 1;
                let first = ext::device_id("OTHERDEV");
                assert_eq!(
                    first.oid, s.leaf.extensions[device].oid,
                    "the last is the device ID"
                );
                s.leaf.extensions.insert(device, first);
            },
            code: "malformed",
            variant: |e| matches!(e, Error::Malformed { detail, .. } if detail == "duplicate extensions"),
        },
        Case {
            name: "device ID differs in case",
            identity: false,
            setup: nothing,
            mutate: |s, _| set_ext(&mut s.leaf, ext::device_id("agencydev")),
            code: "device_mismatch",
            variant: |e| matches!(e, Error::DeviceMismatch { .. }),
        },
        Case {
            name: "device certificate without device extension",
            identity: false,
            setup: nothing,
            mutate: |s, _| remove_ext(&mut s.leaf, govtrust_verifier::oid::EXT_DEVICE_ID),
            code: "device_mismatch",
            variant: |e| {
                matches!(
                    e,
                    Error::DeviceMismatch {
                        expected: Some(_),
                        found: None
                    }
                )
            },
        },
        Case {
            name: "identity certificate with a device extension",
            identity: true,
            setup: nothing,
            mutate: |s, _| s.leaf.extensions.push(ext::device_id(DEVICE)),
            code: "device_mismatch",
            variant: |e| matches!(e, Error::DeviceMismatch { expected: None, found: Some(f) } if f == DEVICE),
        },
        // --- key --------------------------------------------------------------
        Case {
            name: "leaf key is P-256, not Ed25519",
            identity: false,
            setup: nothing,
            mutate: |s, fx| set_spki(&mut s.leaf, fx.p256_key.spki_der().to_vec()),
            code: "key_not_ed25519",
            variant: |e| matches!(e, Error::KeyNotEd25519),
        },
        Case {
            name: "leaf key is another Ed25519 key",
            identity: false,
            setup: nothing,
            mutate: |s, fx| set_spki(&mut s.leaf, fx.stranger_key.to_spki_der()),
            code: "key_mismatch",
            variant: |e| matches!(e, Error::KeyMismatch),
        },
        Case {
            name: "identity certificate for the device key instead of the master key",
            identity: true,
            setup: nothing,
            mutate: |s, fx| set_spki(&mut s.leaf, fx.device_key.to_spki_der()),
            code: "key_mismatch",
            variant: |e| matches!(e, Error::KeyMismatch),
        },
        // --- permitted servers --------------------------------------------------
        Case {
            name: "user on a server the issuing CA may not certify",
            identity: false,
            setup: nothing,
            mutate: |s, _| {
                san(s, &["matrix:u/office:other.example"]);
                s.expected.user_id = UserId::parse("@office:other.example").unwrap();
            },
            code: "server_not_permitted",
            variant: |e| matches!(e, Error::ServerNotPermitted { server } if server == "other.example"),
        },
        Case {
            name: "issuing CA whose ARC.11 lists only other servers",
            identity: false,
            setup: nothing,
            mutate: |s, _| {
                set_ext(
                    s.ica(),
                    ext::permitted_servers(&["matrix.bund.example".to_string()]),
                )
            },
            code: "server_not_permitted",
            variant: |e| matches!(e, Error::ServerNotPermitted { server } if server == "id.bund.example"),
        },
        Case {
            name: "issuing CA without ARC.11",
            identity: false,
            setup: nothing,
            mutate: |s, _| remove_ext(s.ica(), govtrust_verifier::oid::EXT_PERMITTED_SERVERS),
            code: "server_not_permitted",
            variant: |e| matches!(e, Error::ServerNotPermitted { .. }),
        },
        // --- authority record ---------------------------------------------------
        Case {
            name: "subject without serialNumber (authority ID)",
            identity: false,
            setup: nothing,
            mutate: |s, fx| {
                let mut dn = DistinguishedName::from_authority(&fx.authority).unwrap();
                dn.0.retain(|a| a.oid != oids::SERIAL_NUMBER_ATTR);
                s.leaf.subject = dn.to_der();
            },
            code: "authority_record_invalid",
            variant: |e| matches!(e, Error::AuthorityRecordInvalid(_)),
        },
        Case {
            name: "subject with the O attribute twice",
            identity: false,
            setup: nothing,
            mutate: |s, fx| {
                let mut dn = DistinguishedName::from_authority(&fx.authority).unwrap();
                let o =
                    dn.0.iter()
                        .find(|a| a.oid == [0x55, 0x04, 0x0a])
                        .unwrap()
                        .clone();
                dn.0.push(o);
                s.leaf.subject = dn.to_der();
            },
            code: "authority_record_invalid",
            variant: |e| matches!(e, Error::AuthorityRecordInvalid(_)),
        },
        // --- DER ------------------------------------------------------------------
        Case {
            name: "leaf DER truncated",
            identity: false,
            setup: nothing,
            mutate: |s, _| s.leaf_der_edit = Some(|der| der.truncate(der.len() / 2)),
            code: "malformed",
            variant: |e| {
                matches!(
                    e,
                    Error::Malformed {
                        what: "attestation certificate",
                        ..
                    }
                )
            },
        },
        Case {
            name: "leaf DER is garbage",
            identity: false,
            setup: nothing,
            mutate: |s, _| {
                s.leaf_der_edit = Some(|der| *der = b"this is not a certificate".to_vec())
            },
            code: "malformed",
            variant: |e| {
                matches!(
                    e,
                    Error::Malformed {
                        what: "attestation certificate",
                        ..
                    }
                )
            },
        },
        Case {
            name: "leaf DER with trailing data",
            identity: false,
            setup: nothing,
            mutate: |s, _| s.leaf_der_edit = Some(|der| der.push(0)),
            code: "malformed",
            variant: |e| matches!(e, Error::Malformed { .. }),
        },
        // --- revocation -------------------------------------------------------------
        Case {
            name: "leaf revoked by the issuing CA's CRL",
            identity: false,
            setup: nothing,
            mutate: |s, fx| {
                s.ica_crl = Some(fx.ica_crl_with(
                    &[revoked(&s.leaf.serial)],
                    fx.now - CRL_AGE,
                    CRL_LIFETIME,
                ))
            },
            code: "revoked",
            variant: |e| matches!(e, Error::Revoked { position: LEAF }),
        },
        Case {
            name: "identity leaf revoked by the issuing CA's CRL",
            identity: true,
            setup: nothing,
            mutate: |s, fx| {
                s.ica_crl = Some(fx.ica_crl_with(
                    &[revoked(&s.leaf.serial)],
                    fx.now - CRL_AGE,
                    CRL_LIFETIME,
                ))
            },
            code: "revoked",
            variant: |e| matches!(e, Error::Revoked { position: LEAF }),
        },
        Case {
            name: "leaf revoked by a stale CRL (revocation is permanent)",
            identity: false,
            setup: |s, _| s.policy = CrlPolicy::ALLOW_MISSING,
            mutate: |s, fx| {
                s.ica_crl =
                    Some(fx.ica_crl_with(&[revoked(&s.leaf.serial)], fx.now - 3 * CRL_AGE, CRL_AGE))
            },
            code: "revoked",
            variant: |e| matches!(e, Error::Revoked { position: LEAF }),
        },
        Case {
            name: "issuing CA revoked by the root CRL",
            identity: false,
            setup: nothing,
            mutate: |s, fx| {
                let serial = s.ica().serial.clone();
                s.root_crl =
                    Some(fx.root_crl_with(&[revoked(&serial)], fx.now - CRL_AGE, CRL_LIFETIME))
            },
            code: "issuer_revoked",
            variant: |e| matches!(e, Error::Revoked { position: ISSUER }),
        },
        Case {
            name: "CA CRL past its nextUpdate (REQUIRE_FRESH)",
            identity: false,
            setup: nothing,
            mutate: |s, fx| s.ica_crl = Some(fx.ica_crl_with(&[], fx.now - 3 * CRL_AGE, CRL_AGE)),
            code: "crl_stale",
            variant: |e| matches!(e, Error::CrlStale { position: LEAF }),
        },
        Case {
            name: "root CRL past its nextUpdate (REQUIRE_FRESH)",
            identity: false,
            setup: nothing,
            mutate: |s, fx| s.root_crl = Some(fx.root_crl_with(&[], fx.now - 3 * CRL_AGE, CRL_AGE)),
            code: "crl_stale",
            variant: |e| matches!(e, Error::CrlStale { position: ISSUER }),
        },
        Case {
            name: "CA CRL older than the policy's max_age",
            identity: false,
            setup: |s, _| {
                s.policy = CrlPolicy {
                    require: true,
                    max_age: Some(CRL_AGE + Duration::from_secs(600)),
                }
            },
            mutate: |s, fx| {
                s.ica_crl = Some(fx.ica_crl_with(&[], fx.now - 2 * CRL_AGE, CRL_LIFETIME))
            },
            code: "crl_stale",
            variant: |e| matches!(e, Error::CrlStale { position: LEAF }),
        },
        Case {
            name: "no CRL from the issuing CA (REQUIRE_FRESH)",
            identity: false,
            setup: nothing,
            mutate: |s, _| s.ica_crl = None,
            code: "crl_missing",
            variant: |e| matches!(e, Error::CrlMissing { position: LEAF }),
        },
        Case {
            name: "no CRL from the root (REQUIRE_FRESH)",
            identity: false,
            setup: nothing,
            mutate: |s, _| s.root_crl = None,
            code: "crl_missing",
            variant: |e| matches!(e, Error::CrlMissing { position: ISSUER }),
        },
        Case {
            name: "CA CRL signed by an impostor CA with the same name",
            identity: false,
            setup: nothing,
            mutate: |s, fx| {
                s.ica_crl = Some(
                    fx.impostor_ica
                        .crl(&[], 1, fx.now - CRL_AGE, CRL_LIFETIME)
                        .unwrap(),
                )
            },
            code: "crl_wrong_issuer",
            variant: |e| matches!(e, Error::CrlWrongIssuer { position: LEAF }),
        },
        Case {
            name: "impostor CRL under ALLOW_MISSING",
            identity: false,
            setup: |s, _| s.policy = CrlPolicy::ALLOW_MISSING,
            mutate: |s, fx| {
                s.ica_crl = Some(
                    fx.impostor_ica
                        .crl(&[], 1, fx.now - CRL_AGE, CRL_LIFETIME)
                        .unwrap(),
                )
            },
            code: "crl_wrong_issuer",
            variant: |e| matches!(e, Error::CrlWrongIssuer { position: LEAF }),
        },
        // --- event ------------------------------------------------------------------
        Case {
            name: "event content above MAX_CONTENT_BYTES",
            identity: false,
            setup: |s, _| s.input = Input::Event,
            mutate: |s, _| {
                s.content_edit = Some(|c| c.user_id.push_str(&" ".repeat(MAX_CONTENT_BYTES)))
            },
            code: "event_too_large",
            variant: |e| {
                matches!(e, Error::EventTooLarge { size, limit }
                    if *limit == MAX_CONTENT_BYTES && *size > MAX_CONTENT_BYTES)
            },
        },
        Case {
            name: "event marked revoked",
            identity: false,
            setup: |s, _| s.input = Input::Event,
            mutate: |s, _| {
                s.content_edit = Some(|c| {
                    c.revoked = Some(RevocationNotice {
                        revoked_at: 1_700_000_000_000,
                        reason: "key_compromise".into(),
                    })
                })
            },
            code: "revoked",
            variant: |e| matches!(e, Error::Revoked { position: LEAF }),
        },
        Case {
            name: "event chain is garbage base64",
            identity: false,
            setup: |s, _| s.input = Input::Event,
            mutate: |s, _| s.content_edit = Some(|c| c.chain[0] = "!!not base64!!".into()),
            code: "malformed",
            variant: |e| {
                matches!(
                    e,
                    Error::Malformed {
                        what: "attestation chain",
                        ..
                    }
                )
            },
        },
        Case {
            name: "event with an empty chain",
            identity: false,
            setup: |s, _| s.input = Input::Event,
            mutate: |s, _| s.content_edit = Some(|c| c.chain.clear()),
            code: "malformed",
            variant: |e| {
                matches!(
                    e,
                    Error::Malformed {
                        what: "attestation event",
                        ..
                    }
                )
            },
        },
        Case {
            name: "event of an unknown version",
            identity: false,
            setup: |s, _| s.input = Input::Event,
            mutate: |s, _| s.content_edit = Some(|c| c.version = 2),
            code: "malformed",
            variant: |e| {
                matches!(
                    e,
                    Error::Malformed {
                        what: "attestation event",
                        ..
                    }
                )
            },
        },
        Case {
            name: "event whose chain is a validly signed certificate for another device",
            identity: false,
            setup: |s, _| s.input = Input::Event,
            mutate: |s, _| {
                // The homeserver swaps the event; the informational fields
                // still claim the expected device.
                set_ext(&mut s.leaf, ext::device_id("SWAPPED"));
            },
            code: "device_mismatch",
            variant: |e| matches!(e, Error::DeviceMismatch { .. }),
        },
    ]
}

/// Reject codes that a certificate, CRL set or event can cause; every one
/// must have a case. (`invalid_input` is a usage error of the caller, tested
/// below; `path_invalid` is the catch-all for path-builder errors that have
/// no rule of their own.)
const ALL_VERDICT_CODES: &[&str] = &[
    "malformed",
    "event_too_large",
    "unknown_issuer",
    "bad_signature",
    "unsupported_algorithm",
    "expired",
    "not_yet_valid",
    "issuer_not_ca",
    "path_len_exceeded",
    "leaf_is_ca",
    "unsupported_critical_extension",
    "wrong_eku",
    "issuer_eku_missing",
    "wrong_key_usage",
    "san_invalid",
    "user_mismatch",
    "device_mismatch",
    "key_not_ed25519",
    "key_mismatch",
    "server_not_permitted",
    "authority_record_invalid",
    "revoked",
    "issuer_revoked",
    "crl_missing",
    "crl_stale",
    "crl_wrong_issuer",
];

#[test]
fn every_reject_reason_beside_its_valid_baseline() {
    let fx = fixture();
    let cases = cases();
    let mut failures = Vec::new();
    let mut names = BTreeSet::new();
    for case in &cases {
        assert!(
            names.insert(case.name),
            "duplicate case name {:?}",
            case.name
        );
        let mut baseline = if case.identity {
            fx.identity_scenario()
        } else {
            fx.device_scenario()
        };
        (case.setup)(&mut baseline, fx);
        let mut mutated = baseline.clone();
        (case.mutate)(&mut mutated, fx);

        let base = baseline.run();
        let verdict = mutated.run();
        // The same through a verifier that remembers the issuing CA, so
        // that the short path and its leaf reader see every leaf rule.
        let (warmed_base, _) = baseline.run_warmed(&baseline);
        let (warmed, _) = mutated.run_warmed(&baseline);
        let status = match (&base, &verdict) {
            _ if !same_verdict(&warmed_base, &base) => {
                format!("FAIL: a warmed verifier gives the baseline {warmed_base:?}")
            }
            _ if !same_verdict(&warmed, &verdict) => {
                format!("FAIL: a warmed verifier gives {warmed:?}")
            }
            (Err(e), _) => format!("FAIL: the baseline is rejected: {e:?}"),
            (Ok(_), Ok(_)) => "FAIL: the violation is accepted".to_owned(),
            (Ok(_), Err(e)) if e.code() == case.code && (case.variant)(e) => {
                format!("ok ({})", e.code())
            }
            (Ok(_), Err(e)) => format!("FAIL: expected {}, got {} ({e:?})", case.code, e.code()),
        };
        println!("{:<72} {status}", case.name);
        if status.starts_with("FAIL") {
            failures.push(format!("{}: {status}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    let covered: BTreeSet<&str> = cases.iter().map(|c| c.code).collect();
    let missing: Vec<_> = ALL_VERDICT_CODES
        .iter()
        .filter(|c| !covered.contains(*c))
        .collect();
    assert!(
        missing.is_empty(),
        "reject reasons without a case: {missing:?}"
    );
}

/// The same acceptance, or a rejection for the same reason (details such
/// as an event's size vary with the length of each signing's signature).
fn same_verdict(
    a: &Result<VerifiedAttestation, Error>,
    b: &Result<VerifiedAttestation, Error>,
) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => a.code() == b.code(),
        _ => false,
    }
}

/// Both baselines, verified again by a verifier that remembers their
/// issuing CA, take the short path with the leaf read without x509-parser
/// (so the cases above exercise that reader), and agree with a fresh one.
#[test]
fn baselines_take_the_short_path_with_the_leaf_reader() {
    let fx = fixture();
    for s in [fx.device_scenario(), fx.identity_scenario()] {
        let (warmed, stats) = s.run_warmed(&s);
        assert_eq!(warmed.expect("accepted"), s.run().expect("accepted"));
        assert_eq!(
            (stats.hits, stats.fallbacks, stats.fast_leaf_reads),
            (1, 0, 1)
        );
    }
}

#[test]
fn device_attestation_baseline_passes() {
    let fx = fixture();
    for input in [Input::Chain, Input::Event] {
        let mut s = fx.device_scenario();
        s.input = input;
        let ok = s.run().expect("valid device attestation");
        assert_eq!(ok.user_id.as_str(), USER);
        assert_eq!(
            ok.subject,
            Subject::Device(DeviceId::parse(DEVICE).unwrap())
        );
        assert_eq!(ok.key, fx.device_key);
        assert_eq!(ok.authority, fx.authority);
        assert_eq!(ok.serial, govtrust_pki::hex(&s.leaf.serial));
        assert_eq!(ok.not_after, s.leaf.not_after.unix_timestamp());
        assert_eq!(ok.issuer, "CN=govtrust Test Issuing CA");
        assert_eq!(ok.root, "CN=govtrust Test Root");
    }
}

#[test]
fn identity_attestation_passes() {
    let fx = fixture();
    for input in [Input::Chain, Input::Event] {
        let mut s = fx.identity_scenario();
        s.input = input;
        let ok = s.run().expect("valid identity attestation");
        assert_eq!(ok.user_id.as_str(), USER);
        assert_eq!(ok.subject, Subject::Identity);
        assert_eq!(ok.key, fx.identity_key);
        assert_eq!(ok.authority, fx.authority);
    }
    // And the same through the CA's own issuance path.
    let issued = fx
        .ica
        .issue_attestation(&fx.identity_request(), fx.leaf_validity())
        .expect("issue identity attestation");
    let s = fx.identity_scenario();
    let verifier = govtrust_verifier::Verifier::new(
        govtrust_verifier::TrustAnchors::from_der(s.anchors.clone()).unwrap(),
        CrlPolicy::REQUIRE_FRESH,
    );
    let ok = verifier
        .verify(&s.expected, &issued.chain, &s.crls(), s.time)
        .expect("issued identity attestation verifies");
    assert_eq!(ok.subject, Subject::Identity);
    assert_eq!(ok.authority, fx.authority);
}

/// The attestation kinds are not interchangeable: the same key, user and
/// chain verified as the other kind fails on the EKU.
#[test]
fn kinds_do_not_cross() {
    let fx = fixture();
    let mut s = fx.identity_scenario();
    s.expected.subject = Subject::Device(DeviceId::parse(DEVICE).unwrap());
    assert_eq!(s.run().unwrap_err().code(), "wrong_eku");
    let mut s = fx.device_scenario();
    s.expected.subject = Subject::Identity;
    assert_eq!(s.run().unwrap_err().code(), "wrong_eku");
}

/// A caller's invalid expectation is a usage error, not a verdict.
#[test]
fn invalid_expectation_is_invalid_input() {
    let key = fixture().device_key.to_base64();
    for (user, device, key) in [
        ("office:id.bund.example", Some(DEVICE), key.as_str()),
        (USER, Some("A|B"), key.as_str()),
        (USER, Some(DEVICE), "AAAA"),
    ] {
        let err = Expected::new(user, device, key).unwrap_err();
        assert_eq!(err.code(), "invalid_input", "{user} {device:?} {key}");
    }
}

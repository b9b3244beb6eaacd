//! Certificate chains: 1–4 DER certificates plus an expectation, through
//! `Verifier::verify` (the profile algorithms) and `path::validate_path`
//! (the extended algorithms the conformance suites use); the raw input also
//! goes through `pem::certificates`.
//!
//! Input layout: one flags byte, then up to `(flags & 3) + 1` certificates,
//! each a big-endian u16 length and that many bytes (cut short at the end of
//! the input), then the expectation as UTF-8 lines `user_id`, `device_id`
//! (empty: identity), `key` (base64). When those do not parse, flag bits
//! 2..5 pick a fixture expectation instead.
//! Flags bit 5: no CRLs; bit 6: require the device EKU in `validate_path`;
//! bit 7: REQUIRE_FRESH (else ALLOW_MISSING) in `validate_path`.
#![no_main]

use govtrust_fuzz::{fixture, now};
use govtrust_verifier::path::{validate_path, PathOptions};
use govtrust_verifier::signature::EXTENDED_ALGORITHMS;
use govtrust_verifier::{pem, CertificateDer, CrlPolicy, CrlSet, Expected};
use libfuzzer_sys::fuzz_target;

fn expectation(bytes: &[u8]) -> Option<Expected> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.split('\n');
    let user = lines.next()?;
    let device = lines.next()?;
    let key = lines.next()?;
    let device = (!device.is_empty()).then_some(device);
    Expected::new(user, device, key).ok()
}

fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    let time = now();

    if let Ok(certs) = pem::certificates(data) {
        assert!(!certs.is_empty());
        for expected in &fx.expectations {
            let _ = fx.verifier.verify(expected, &certs, &fx.crls, time);
        }
    }

    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut certs = Vec::new();
    for _ in 0..(flags & 3) + 1 {
        let [hi, lo, tail @ ..] = rest else { break };
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        certs.push(CertificateDer::from(&tail[..len]));
        rest = &tail[len..];
    }
    if certs.is_empty() {
        return;
    }
    let expected = expectation(rest).unwrap_or_else(|| {
        fx.expectations[usize::from(flags >> 2 & 7) % fx.expectations.len()].clone()
    });
    let no_crls = CrlSet::new();
    let crls = if flags & 0x20 != 0 {
        &no_crls
    } else {
        &fx.crls
    };
    if let Ok(v) = fx.verifier.verify(&expected, &certs, crls, time) {
        assert_eq!(v.key, expected.key);
        assert_eq!(v.user_id, expected.user_id);
        assert_eq!(v.subject, expected.subject);
        // REQUIRE_FRESH: nothing passes without revocation information.
        assert!(flags & 0x20 == 0, "accepted without any CRL");
    }

    let options = PathOptions {
        algorithms: EXTENDED_ALGORITHMS,
        eku: (flags & 0x40 != 0).then(|| expected.subject.eku()),
        time,
        crls: &fx.extended_crls,
        crl_policy: if flags & 0x80 != 0 {
            CrlPolicy::REQUIRE_FRESH
        } else {
            CrlPolicy::ALLOW_MISSING
        },
    };
    if let Ok(path) = validate_path(&fx.extended_anchors, &certs[0], &certs[1..], &options) {
        assert_eq!(path.certificates[0].as_ref(), certs[0].as_ref());
        assert!(path.certificates.len() <= certs.len());
    }
});

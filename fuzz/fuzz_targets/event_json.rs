//! `io.govtrust.attestation` event content, as a homeserver (untrusted)
//! would serve it: parse, decode the chain, then verify it the way a
//! citizen's client does, against the pinned fixture roots and fresh CRLs.
#![no_main]

use govtrust_fuzz::{fixture, now};
use govtrust_verifier::event::{AttestationContent, MAX_CHAIN_LEN, MAX_CONTENT_BYTES};
use govtrust_verifier::{Expected, VerifiedAttestation};
use libfuzzer_sys::fuzz_target;

fn check_verdict(expected: &Expected, verdict: &VerifiedAttestation) {
    // A verdict must be about exactly what the caller asked.
    assert_eq!(verdict.user_id, expected.user_id);
    assert_eq!(verdict.subject, expected.subject);
    assert_eq!(verdict.key, expected.key);
}

fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    let time = now();

    let parsed = AttestationContent::from_json(data);
    if let Ok(content) = &parsed {
        assert!(data.len() <= MAX_CONTENT_BYTES);
        assert!(!content.chain.is_empty() && content.chain.len() <= MAX_CHAIN_LEN);
        // What the service serialises must parse back to the same content.
        let json = content.to_json();
        if json.len() <= MAX_CONTENT_BYTES {
            let again = AttestationContent::from_json(json.as_bytes())
                .expect("serialised content re-parses");
            assert_eq!(&again, content);
        }
        if let Ok(chain) = content.chain_der() {
            assert_eq!(chain.len(), content.chain.len());
            // The informational fields as an expectation: exercises the
            // Matrix ID and key parsers on hostile strings.
            if let Ok(expected) =
                Expected::new(&content.user_id, content.device_id.as_deref(), &content.key)
            {
                if let Ok(v) = fx.verifier.verify(&expected, &chain, &fx.crls, time) {
                    check_verdict(&expected, &v);
                }
            }
        }
    }

    for expected in &fx.expectations {
        let verdict = fx.verifier.verify_event(expected, data, &fx.crls, time);
        match &verdict {
            Ok(v) => {
                check_verdict(expected, v);
                let content = parsed.as_ref().expect("accepted content parses");
                assert!(!content.is_revoked(), "a revoked marker was ignored");
            }
            Err(e) => {
                // Every rejection has a stable code.
                assert!(!e.code().is_empty());
            }
        }
        if parsed.is_err() {
            assert!(verdict.is_err());
            break; // every expectation fails the same way
        }
    }
});

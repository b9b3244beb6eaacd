//! CRLs, as fetched over an untrusted network: decode (PEM or DER), look
//! serials up, check the signature against fixed CA keys, and use the CRL in
//! place of issuing CA A's CRL when verifying A's attestations.
#![no_main]

use govtrust_fuzz::{fixture, now};
use govtrust_verifier::{Crl, CrlSet, Error, MAX_CRL_ENTRIES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    let time = now();

    let der_only = Crl::from_der(data);
    let Ok(crl) = Crl::from_pem_or_der(data) else {
        return;
    };
    if let Ok(d) = &der_only {
        assert_eq!(d.der(), crl.der());
        assert_eq!(d.len(), crl.len());
    }
    assert!(crl.len() <= MAX_CRL_ENTRIES);
    assert_eq!(crl.is_empty(), matches!(crl.len(), 0));
    let _ = (crl.this_update(), crl.next_update(), crl.number());
    let _ = crl.unusable_reason();
    let _ = crl.issuer_der();
    for serial in [
        fx.device_a.cert.serial.as_slice(),
        fx.revoked_a.cert.serial.as_slice(),
        &data[data.len().saturating_sub(20)..],
        &[],
        &[0],
        &[0xff],
    ] {
        let _ = crl.lookup(serial);
    }

    // A fixed key (CA A's), then every fixture CA whose name the CRL claims.
    let signed_by_a = crl.verify_signed_by(&fx.crl_keys[1].0).is_ok();
    for (spki, name) in &fx.crl_keys {
        if name.as_slice() == crl.issuer_der() {
            let first = crl.verify_signed_by(spki);
            // The memo must not change the answer.
            assert_eq!(first.is_ok(), crl.verify_signed_by(spki).is_ok());
        }
    }
    let _ = crl.verify_signed_by(&data[..data.len().min(91)]);

    // The CRL in place of CA A's: nobody without A's key can unrevoke.
    let mut crls = CrlSet::new();
    crls.push(crl);
    crls.push(Crl::from_der(&fx.crl_der[0]).expect("root CRL"));
    let revoked = fx.verifier.verify(
        &fx.revoked_a.expected,
        &fx.revoked_a.cert.chain,
        &crls,
        time,
    );
    assert!(
        signed_by_a || revoked.is_err(),
        "a CRL not signed by CA A unrevoked a certificate"
    );
    match fx
        .verifier
        .verify(&fx.device_a.expected, &fx.device_a.cert.chain, &crls, time)
    {
        Ok(_) | Err(Error::Revoked { .. }) => {}
        Err(e) => assert!(!e.code().is_empty()),
    }
});

//! The CRL decoder's own DER walk over revokedCertificates: every
//! malformation it must reject, the duplicate / unsorted / removeFromCRL
//! semantics, and agreement with x509-parser's reading of every entry.
//!
//! The CRLs here are built by hand and not signed: `Crl::from_der` checks
//! structure only (the signature is checked later against the issuer).

use govtrust_verifier::{Crl, RevokedEntry, MAX_CRL_ENTRIES};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

const ECDSA_SHA256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const REASON: &[u8] = &[0x55, 0x1d, 0x15];
const INVALIDITY: &[u8] = &[0x55, 0x1d, 0x18];
/// 2024-01-01T00:00:00Z.
const T0: i64 = 1_704_067_200;

fn utc(secs_after_t0: u32) -> Vec<u8> {
    // Only seconds within the first minute (enough for distinct dates).
    assert!(secs_after_t0 < 60);
    tlv(0x17, format!("2401010000{secs_after_t0:02}Z").as_bytes())
}

fn ext(oid: &[u8], critical: Option<&[u8]>, value: &[u8]) -> Vec<u8> {
    let mut parts = vec![tlv(0x06, oid)];
    if let Some(flag) = critical {
        parts.push(tlv(0x01, flag));
    }
    parts.push(tlv(0x04, value));
    tlv(0x30, &parts.concat())
}

fn reason(code: u8) -> Vec<u8> {
    ext(REASON, None, &[0x0a, 0x01, code])
}

fn entry(serial: &[u8], date: &[u8], exts: &[Vec<u8>]) -> Vec<u8> {
    let mut parts = vec![tlv(0x02, serial), date.to_vec()];
    if !exts.is_empty() {
        parts.push(tlv(0x30, &exts.concat()));
    }
    tlv(0x30, &parts.concat())
}

/// A CRL whose revokedCertificates content is exactly `list` (`None`:
/// no revokedCertificates field), with the given TBS extensions.
fn crl_with(list: Option<&[u8]>, crl_exts: &[Vec<u8>]) -> Vec<u8> {
    let issuer = seq(&[&tlv(
        0x31,
        &seq(&[&tlv(0x06, &[0x55, 0x04, 0x03]), &tlv(0x0c, b"Test CA")]),
    )]);
    let mut tbs = vec![
        tlv(0x02, &[1]),
        seq(&[ECDSA_SHA256]),
        issuer,
        utc(0),
        tlv(0x17, b"340101000000Z"),
    ];
    if let Some(list) = list {
        tbs.push(tlv(0x30, list));
    }
    if !crl_exts.is_empty() {
        tbs.push(tlv(0xa0, &tlv(0x30, &crl_exts.concat())));
    }
    let tbs = tlv(0x30, &tbs.concat());
    seq(&[&tbs, &seq(&[ECDSA_SHA256]), &tlv(0x03, &[0, 0x30, 0x00])])
}

fn build(entries: &[Vec<u8>]) -> Vec<u8> {
    crl_with(Some(&entries.concat()), &[])
}

fn decode(der: &[u8]) -> Result<Crl, String> {
    Crl::from_der(der).map_err(|e| e.to_string())
}

fn rejected(der: &[u8], why: &str) {
    match decode(der) {
        Ok(crl) => panic!("{why}: accepted ({} entries)", crl.len()),
        Err(e) => assert!(e.starts_with("malformed CRL"), "{why}: {e}"),
    }
}

#[test]
fn a_well_formed_list_decodes() {
    let der = build(&[
        entry(&[1], &utc(1), &[reason(1)]),
        entry(&[2], &utc(2), &[]),
    ]);
    let crl = decode(&der).unwrap();
    assert_eq!(crl.len(), 2);
    assert_eq!(
        crl.lookup(&[1]),
        Some(RevokedEntry {
            revoked_at: T0 + 1,
            reason: Some(1)
        })
    );
    assert_eq!(
        crl.lookup(&[0, 2]),
        Some(RevokedEntry {
            revoked_at: T0 + 2,
            reason: None
        })
    );
    assert_eq!(crl.lookup(&[3]), None);
    assert!(crl.unusable_reason().is_none());
}

#[test]
fn a_truncated_entry_is_rejected() {
    let good = entry(&[1, 2, 3], &utc(0), &[reason(1)]);
    for cut in 1..good.len() {
        // The list's own length covers exactly the truncated entry.
        rejected(
            &crl_with(Some(&good[..cut]), &[]),
            &format!("entry cut at {cut}"),
        );
    }
    // An entry whose length claims more than the list holds.
    let mut long = good.clone();
    long[1] += 1;
    rejected(&crl_with(Some(&long), &[]), "entry longer than the list");
}

#[test]
fn bad_lengths_are_rejected() {
    let good = entry(&[7], &utc(0), &[]);
    // Non-minimal long form for the entry length.
    let mut non_minimal = vec![0x30, 0x81, good[1]];
    non_minimal.extend_from_slice(&good[2..]);
    rejected(&crl_with(Some(&non_minimal), &[]), "non-minimal length");
    // Indefinite length.
    let mut indefinite = vec![0x30, 0x80];
    indefinite.extend_from_slice(&good[2..]);
    indefinite.extend_from_slice(&[0, 0]);
    rejected(&crl_with(Some(&indefinite), &[]), "indefinite length");
    // A serial whose length runs past its entry.
    let mut serial_long = good.clone();
    serial_long[3] = 0x10;
    rejected(&crl_with(Some(&serial_long), &[]), "serial past the entry");
    // A date whose length is short by one (the entry then has a stray byte).
    let mut date_short = good.clone();
    date_short[6] -= 1;
    rejected(&crl_with(Some(&date_short), &[]), "date length short");
    // A serial that is not an INTEGER, a date that is not a Time.
    let mut not_integer = good.clone();
    not_integer[2] = 0x04;
    rejected(&crl_with(Some(&not_integer), &[]), "serial not an INTEGER");
    let mut not_time = good.clone();
    not_time[5] = 0x04;
    rejected(&crl_with(Some(&not_time), &[]), "date not a Time");
    // A date that is no date.
    rejected(
        &build(&[entry(&[1], &tlv(0x17, b"241301000000Z"), &[])]),
        "month 13",
    );
    rejected(
        &build(&[entry(&[1], &tlv(0x17, b"garbage"), &[])]),
        "no time",
    );
}

#[test]
fn trailing_bytes_are_rejected() {
    let good = entry(&[1], &utc(0), &[reason(1)]);
    // After the extensions, inside the entry.
    let inner = [&good[2..], &[0x05, 0x00][..]].concat();
    rejected(
        &build(&[tlv(0x30, &inner)]),
        "data after the entry extensions",
    );
    // After the date, something that is not an Extensions SEQUENCE.
    let no_exts = entry(&[1], &utc(0), &[]);
    let inner = [&no_exts[2..], &[0x05, 0x00][..]].concat();
    rejected(&build(&[tlv(0x30, &inner)]), "NULL after the date");
    // Inside an extension, after its value.
    let mut ext_trailing = reason(1);
    ext_trailing.extend([0x05, 0x00]);
    ext_trailing[1] += 2;
    rejected(
        &build(&[entry(&[1], &utc(0), &[ext_trailing])]),
        "data after an extension value",
    );
    // After the list, inside the TBSCertList.
    let der = crl_with(Some(&good), &[]);
    let tbs_end = der.len() - (2 + ECDSA_SHA256.len()) - 5;
    let mut tbs = der[..tbs_end].to_vec();
    let outer_header = 2 + usize::from(tbs[1] & 0x7f) * usize::from(tbs[1] >= 0x80);
    let tbs_header = {
        let b = tbs[outer_header + 1];
        2 + usize::from(b & 0x7f) * usize::from(b >= 0x80)
    };
    let tbs_content = tbs.split_off(outer_header + tbs_header);
    let tbs_content = [&tbs_content[..], &[0x05, 0x00][..]].concat();
    let bad = seq(&[
        &tlv(0x30, &tbs_content),
        &seq(&[ECDSA_SHA256]),
        &tlv(0x03, &[0, 0x30, 0x00]),
    ]);
    rejected(&bad, "data after the last TBSCertList field");
    // After the CRL.
    let mut after = build(&[good]);
    after.push(0);
    rejected(&after, "data after the CRL");
}

#[test]
fn an_unknown_critical_entry_extension_makes_the_crl_unusable() {
    let unknown = ext(&[0x2a, 0x03, 0x04], Some(&[0xff]), &[0x05, 0x00]);
    let der = build(&[
        entry(&[1], &utc(0), &[]),
        entry(&[2], &utc(0), &[reason(1), unknown.clone()]),
    ]);
    let crl = decode(&der).unwrap();
    assert_eq!(
        crl.unusable_reason(),
        Some("unsupported critical entry extension 1.2.3.4")
    );
    assert!(crl.lookup(&[2]).is_some(), "still revokes");
    // Non-critical, or critical as BER TRUE (0x01, as x509-parser reads it).
    let quiet = ext(&[0x2a, 0x03, 0x04], Some(&[0x00]), &[0x05, 0x00]);
    assert!(decode(&build(&[entry(&[1], &utc(0), &[quiet])]))
        .unwrap()
        .unusable_reason()
        .is_none());
    let ber_true = ext(&[0x2a, 0x03, 0x04], Some(&[0x01]), &[0x05, 0x00]);
    assert!(decode(&build(&[entry(&[1], &utc(0), &[ber_true])]))
        .unwrap()
        .unusable_reason()
        .is_some());
    // A critical reasonCode or invalidityDate is understood.
    let critical_reason = ext(REASON, Some(&[0xff]), &[0x0a, 0x01, 0x01]);
    let date = ext(INVALIDITY, Some(&[0xff]), &tlv(0x18, b"20231231000000Z"));
    let crl = decode(&build(&[entry(&[1], &utc(0), &[critical_reason, date])])).unwrap();
    assert!(crl.unusable_reason().is_none());
    assert_eq!(crl.lookup(&[1]).unwrap().reason, Some(1));
    // A critical invalidityDate that cannot be read is not.
    let bad_date = ext(INVALIDITY, Some(&[0xff]), &tlv(0x18, b"2023"));
    assert!(decode(&build(&[entry(&[1], &utc(0), &[bad_date])]))
        .unwrap()
        .unusable_reason()
        .is_some());
    // A BOOLEAN of two octets is no BOOLEAN.
    let long_bool = ext(&[0x2a, 0x03, 0x04], Some(&[0xff, 0xff]), &[0x05, 0x00]);
    rejected(
        &build(&[entry(&[1], &utc(0), &[long_bool])]),
        "long BOOLEAN",
    );
}

#[test]
fn unsorted_and_duplicate_serials() {
    // More than the small-sort threshold, in descending order, with
    // serials that share their first eight octets and differ after them,
    // and duplicates (the last entry of a serial gives date and reason).
    let mut entries = Vec::new();
    for i in (0..200u8).rev() {
        let long = [9, 9, 9, 9, 9, 9, 9, 9, i];
        entries.push(entry(&[i, 1], &utc(0), &[]));
        entries.push(entry(&long, &utc(1), &[]));
    }
    entries.push(entry(&[5, 1], &utc(7), &[reason(4)]));
    // The same serial with a redundant leading octet is the same serial.
    entries.push(entry(&[0, 6, 1], &utc(9), &[reason(3)]));
    let crl = decode(&build(&entries)).unwrap();
    assert_eq!(crl.len(), 400);
    for i in 0..200u8 {
        assert!(crl.lookup(&[i, 1]).is_some(), "{i}");
        assert!(
            crl.lookup(&[9, 9, 9, 9, 9, 9, 9, 9, i]).is_some(),
            "long {i}"
        );
        assert!(crl.lookup(&[9, 9, 9, 9, 9, 9, 9, 9, i, 0]).is_none());
    }
    assert!(crl.lookup(&[9, 9, 9, 9, 9, 9, 9, 9]).is_none());
    assert_eq!(
        crl.lookup(&[5, 1]),
        Some(RevokedEntry {
            revoked_at: T0 + 7,
            reason: Some(4)
        })
    );
    assert_eq!(crl.lookup(&[6, 1]).unwrap().revoked_at, T0 + 9);
    assert_eq!(crl.lookup(&[7, 1]).unwrap().revoked_at, T0);
    // Few entries (the small sort), unsorted with a duplicate.
    let crl = decode(&build(&[
        entry(&[3], &utc(3), &[]),
        entry(&[1], &utc(1), &[]),
        entry(&[3], &utc(4), &[reason(2)]),
    ]))
    .unwrap();
    assert_eq!(crl.len(), 2);
    assert_eq!(
        crl.lookup(&[3]),
        Some(RevokedEntry {
            revoked_at: T0 + 4,
            reason: Some(2)
        })
    );
}

#[test]
fn negative_and_zero_length_serials_stay_distinct() {
    let crl = decode(&build(&[
        entry(&[0xff], &utc(1), &[]),
        entry(&[], &utc(2), &[]),
        entry(&[0x00, 0xff], &utc(3), &[]),
    ]))
    .unwrap();
    assert_eq!(crl.len(), 3);
    assert_eq!(crl.lookup(&[0xff, 0xff]).unwrap().revoked_at, T0 + 1);
    assert_eq!(crl.lookup(&[0x00, 0xff]).unwrap().revoked_at, T0 + 3);
    assert_eq!(crl.lookup(&[]).unwrap().revoked_at, T0 + 2);
    assert!(crl.lookup(&[0x00]).is_none());
}

#[test]
fn remove_from_crl_entries_are_not_revocations() {
    let crl = decode(&build(&[
        entry(&[1], &utc(0), &[reason(1)]),
        entry(&[2], &utc(0), &[reason(8)]),
        entry(&[1], &utc(0), &[reason(8)]),
    ]))
    .unwrap();
    assert_eq!(crl.len(), 1);
    assert!(crl.lookup(&[2]).is_none());
    // As before: removeFromCRL does not take back an earlier entry.
    assert_eq!(crl.lookup(&[1]).unwrap().reason, Some(1));
}

#[test]
fn unusual_encodings_are_read_as_x509_parser_reads_them() {
    // A UTCTime without seconds, a GeneralizedTime with an offset.
    let crl = decode(&build(&[
        entry(&[1], &tlv(0x17, b"2401010001Z"), &[]),
        entry(&[2], &tlv(0x18, b"20240101000000Z"), &[]),
        // A reasonCode with a redundant leading zero octet.
        entry(
            &[3],
            &utc(0),
            &[ext(REASON, None, &[0x0a, 0x02, 0x00, 0x05])],
        ),
    ]))
    .unwrap();
    assert_eq!(crl.lookup(&[1]).unwrap().revoked_at, T0 + 60);
    assert_eq!(crl.lookup(&[2]).unwrap().revoked_at, T0);
    let x509 = x509_reading(crl.der());
    assert_eq!(
        crl.lookup(&[3]).map(|e| e.reason),
        x509[2].1.map(|e| e.reason)
    );
}

#[test]
fn long_serials() {
    // Longer than RFC 5280's 20 octets: still indexed.
    let long = [0x7f; 300];
    assert!(decode(&build(&[entry(&long, &utc(0), &[])]))
        .unwrap()
        .lookup(&long)
        .is_some());
    // More than 255 octets of header and redundant sign octets before the
    // value: beyond what the index records, rejected.
    let padded = [vec![0; 300], vec![1]].concat();
    rejected(
        &build(&[entry(&padded, &utc(0), &[])]),
        "300 redundant octets",
    );
}

#[test]
fn too_many_entries_are_rejected() {
    let one = entry(&[1], &utc(0), &[]);
    let list = one.repeat(MAX_CRL_ENTRIES + 1);
    rejected(&crl_with(Some(&list), &[]), "MAX_CRL_ENTRIES + 1");
}

#[test]
fn the_empty_list_and_no_list() {
    assert!(decode(&crl_with(Some(&[]), &[])).unwrap().is_empty());
    assert!(decode(&crl_with(None, &[])).unwrap().is_empty());
}

/// (serial, entry) as x509-parser reads each entry, removeFromCRL skipped.
fn x509_reading(der: &[u8]) -> Vec<(Vec<u8>, Option<RevokedEntry>)> {
    let (_, crl) = CertificateRevocationList::from_der(der).unwrap();
    crl.iter_revoked_certificates()
        .map(|e| {
            // As the x509-parser-based decoder read it: the last reasonCode.
            let reason = e
                .extensions()
                .iter()
                .rev()
                .find_map(|x| match x.parsed_extension() {
                    ParsedExtension::ReasonCode(r) => Some(r.0),
                    _ => None,
                });
            let entry = (reason != Some(8)).then_some(RevokedEntry {
                revoked_at: e.revocation_date.timestamp(),
                reason,
            });
            (e.raw_serial().to_vec(), entry)
        })
        .collect()
}

#[test]
fn lookups_agree_with_x509_parser() {
    // A deterministic pseudo-random mix: serial lengths 1..=20, repeats,
    // reasons including removeFromCRL, dates in both Time forms.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut entries = Vec::new();
    let mut serials: Vec<Vec<u8>> = Vec::new();
    for _ in 0..3000 {
        let serial = if !serials.is_empty() && next() % 10 == 0 {
            serials[(next() % serials.len() as u64) as usize].clone()
        } else {
            let len = 1 + (next() % 20) as usize;
            let mut s: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if next() % 4 == 0 {
                s[0] = 0;
            }
            s
        };
        let date = if next() % 2 == 0 {
            utc((next() % 60) as u32)
        } else {
            tlv(
                0x18,
                format!("2024010100{:02}{:02}Z", next() % 60, next() % 60).as_bytes(),
            )
        };
        let exts = match next() % 5 {
            0 => vec![reason((next() % 11) as u8)],
            1 => vec![reason(1), reason(8)],
            _ => vec![],
        };
        entries.push(entry(&serial, &date, &exts));
        serials.push(serial);
    }
    let der = build(&entries);
    let crl = decode(&der).unwrap();
    // The map the x509-parser-based decoder built: last entry wins.
    let mut expected = std::collections::HashMap::new();
    for (serial, entry) in x509_reading(&der) {
        let key = normalize(&serial).to_vec();
        if let Some(entry) = entry {
            expected.insert(key, entry);
        }
    }
    assert_eq!(crl.len(), expected.len());
    for serial in &serials {
        assert_eq!(
            crl.lookup(serial),
            expected.get(normalize(serial)).copied(),
            "{serial:02x?}"
        );
    }
}

fn normalize(serial: &[u8]) -> &[u8] {
    let mut s = serial;
    while let [first, second, ..] = s {
        if (*first == 0 && second & 0x80 == 0) || (*first == 0xff && second & 0x80 != 0) {
            s = &s[1..];
        } else {
            break;
        }
    }
    s
}

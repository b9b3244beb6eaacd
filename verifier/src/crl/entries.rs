//! The revokedCertificates list, decoded lazily.
//!
//! Decoding walks the DER of the list (a light first pass over the serials,
//! then one that validates every entry: structure, serial, revocation date
//! and extensions) and keeps, per distinct serial, one 16-octet [`Slot`]:
//! an 8-octet sort key taken from the serial and the entry's offset in the
//! CRL's DER. Nothing is allocated per entry. The slots are sorted by
//! serial, so a lookup is a binary search, and only the entry found is read
//! again for its date and reason.
//!
//! What counts as revoked is what the x509-parser-based decoder counted:
//! the serials of all entries except those with reason removeFromCRL; for a
//! serial listed several times, the last such entry gives date and reason.

use std::cmp::Ordering;
use std::ops::Range;

use x509_parser::extensions::{ParsedExtension, X509Extension};
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;

use super::der::{self, Tlv};
use super::{normalize_serial, RevokedEntry, MAX_CRL_ENTRIES};

/// id-ce-cRLReasons (2.5.29.21), OID content octets.
const OID_REASON_CODE: &[u8] = &[0x55, 0x1d, 0x15];
/// id-ce-invalidityDate (2.5.29.24), OID content octets.
const OID_INVALIDITY_DATE: &[u8] = &[0x55, 0x1d, 0x18];
/// CRLReason removeFromCRL: only meaningful in delta CRLs.
const REMOVE_FROM_CRL: u8 = 8;

/// One indexed serial: `key` is the first eight octets of the normalized
/// serial (zero-padded, big-endian), `at` the offset of the entry's
/// SEQUENCE in the DER, `serial` the normalized serial's position relative
/// to `at` (low 8 bits) and its length (high 24 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Slot {
    key: u64,
    at: u32,
    serial: u32,
}

/// Marks a removeFromCRL entry's slot (in `at`) until compaction.
const REMOVED: u32 = 1 << 31;

impl Slot {
    const EMPTY: Slot = Slot {
        key: 0,
        at: 0,
        serial: 0,
    };

    #[inline]
    fn serial<'a>(&self, der: &'a [u8]) -> &'a [u8] {
        let start = (self.at & !REMOVED) as usize + (self.serial & 0xff) as usize;
        der.get(start..start + (self.serial >> 8) as usize)
            .unwrap_or_default()
    }

    #[inline]
    fn cmp_in(&self, other: &Slot, der: &[u8]) -> Ordering {
        self.key
            .cmp(&other.key)
            .then_with(|| self.serial(der).cmp(other.serial(der)))
    }
}

/// The sort key of a normalized serial: its first eight octets, zero-padded.
/// Ordering by key, then by the octets, is the lexicographic order.
#[inline]
fn key_of(serial: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = serial.len().min(8);
    buf[..n].copy_from_slice(&serial[..n]);
    u64::from_be_bytes(buf)
}

/// The index of a CRL's revoked entries.
#[derive(Debug, Default)]
pub(super) struct Index {
    slots: Vec<Slot>,
}

/// What decoding the list found besides the index.
pub(super) struct Decoded {
    pub index: Index,
    /// OID content octets (as a range of the DER) of the last unsupported
    /// critical entry extension, if any.
    pub unsupported_critical: Option<Range<usize>>,
}

/// An entry as read from the DER.
struct Entry {
    /// The normalized serial, as a range of the DER.
    serial: Range<usize>,
    /// The revocationDate TLV (validated; read on lookup).
    date: Tlv,
    reason: Option<u8>,
    unsupported_critical: Option<Range<usize>>,
}

impl Index {
    /// Decodes the content of the revokedCertificates SEQUENCE `list`.
    ///
    /// A first pass only counts the entries (bounded by [`MAX_CRL_ENTRIES`]
    /// before anything is allocated); the second validates each entry and
    /// records its slot. The slots are then sorted by serial (see
    /// [`sort_by_serial`]) and compacted: removeFromCRL entries dropped,
    /// one slot kept per serial.
    pub(super) fn decode(der: &[u8], list: Tlv) -> Result<Decoded, &'static str> {
        if list.tag != der::SEQUENCE {
            return Err("revokedCertificates is not a SEQUENCE");
        }
        // Offsets are kept in 31 bits (the top bit of `at` marks a
        // removeFromCRL entry until compaction).
        if der.len() >= REMOVED as usize {
            return Err("CRL too large");
        }
        let mut count = 0usize;
        let mut pos = list.body;
        while pos < list.end {
            let entry = der::read(der, pos, list.end).ok_or("revoked entry: bad length")?;
            pos = entry.end;
            count += 1;
            if count > MAX_CRL_ENTRIES {
                return Err("too many entries");
            }
        }

        let mut slots = Vec::with_capacity(count);
        let mut unsupported_critical = None;
        let mut removed_any = false;
        let mut sorted = true;
        let mut pos = list.body;
        while pos < list.end {
            let tlv = der::read(der, pos, list.end).ok_or("revoked entry: bad length")?;
            pos = tlv.end;
            let entry = read_entry(der, tlv)?;
            if entry.unsupported_critical.is_some() {
                unsupported_critical = entry.unsupported_critical;
            }
            let delta = entry.serial.start - tlv.start;
            let len = entry.serial.len();
            if delta > 0xff || len > 0x00ff_ffff {
                return Err("revoked entry: serial number too long");
            }
            let removed = if entry.reason == Some(REMOVE_FROM_CRL) {
                removed_any = true;
                REMOVED
            } else {
                0
            };
            let slot = Slot {
                key: key_of(der.get(entry.serial.clone()).unwrap_or_default()),
                // Below 2^31: the DER length is (checked above).
                at: tlv.start as u32 | removed,
                serial: ((len as u32) << 8) | delta as u32,
            };
            if let Some(last) = slots.last() {
                sorted &= Slot::cmp_in(last, &slot, der) == Ordering::Less;
            }
            slots.push(slot);
        }

        if !sorted || removed_any {
            sort_by_serial(&mut slots, der);
            // Equal serials are adjacent, in DER order: keep the last entry
            // of each that is not removeFromCRL.
            let mut kept = 0;
            let mut i = 0;
            while i < slots.len() {
                let mut j = i + 1;
                while j < slots.len() && slots[j].cmp_in(&slots[i], der) == Ordering::Equal {
                    j += 1;
                }
                if let Some(last) = (i..j).rev().find(|&k| slots[k].at & REMOVED == 0) {
                    slots[kept] = slots[last];
                    kept += 1;
                }
                i = j;
            }
            slots.truncate(kept);
        }
        Ok(Decoded {
            index: Index { slots },
            unsupported_critical,
        })
    }

    /// Number of distinct revoked serials.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Bytes of heap this index holds.
    pub(super) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
    }

    /// Looks a serial up and reads its entry.
    pub(super) fn lookup(&self, der: &[u8], serial: &[u8]) -> Option<RevokedEntry> {
        let serial = normalize_serial(serial);
        let key = key_of(serial);
        let i = self
            .slots
            .binary_search_by(|slot| {
                slot.key
                    .cmp(&key)
                    .then_with(|| slot.serial(der).cmp(serial))
            })
            .ok()?;
        let slot = self.slots.get(i)?;
        let entry = der::read(der, slot.at as usize, der.len())
            .and_then(|tlv| read_entry(der, tlv).ok())
            .and_then(|e| Some((read_time(der, e.date)?, e.reason)));
        Some(match entry {
            Some((revoked_at, reason)) => RevokedEntry { revoked_at, reason },
            // Unreachable: the entry was read at decode from the same
            // immutable bytes. Still revoked: fail closed.
            None => RevokedEntry {
                revoked_at: i64::MIN,
                reason: None,
            },
        })
    }
}

/// Sorts slots by serial, then by position in the DER.
///
/// A least-significant-digit radix sort (stable, so slots stay in DER order
/// among equal digits) on the most significant octets of the key that are
/// not the same in every key (as many as make equal prefixes rare); then each run of slots equal in those and
/// all more significant octets (rare for distinct serials) is sorted by the
/// whole serial and position. O(n) for keys that differ in those octets,
/// O(n log n) at worst.
fn sort_by_serial(slots: &mut Vec<Slot>, der: &[u8]) {
    let by_serial = |a: &Slot, b: &Slot| {
        a.cmp_in(b, der)
            .then((a.at & !REMOVED).cmp(&(b.at & !REMOVED)))
    };
    let n = slots.len();
    if n < 64 {
        slots.sort_unstable_by(by_serial);
        return;
    }
    // Histograms of all eight octets (octet 7 the most significant).
    let mut counts = [[0usize; 256]; 8];
    for slot in slots.iter() {
        for (octet, count) in counts.iter_mut().enumerate() {
            count[((slot.key >> (8 * octet)) & 0xff) as usize] += 1;
        }
    }
    // Enough octets that equal prefixes are rare for distinct serials
    // (about 16 keys per value of the sorted octets, at most four passes).
    let passes = ((usize::BITS - n.leading_zeros()) as usize + 4)
        .div_ceil(8)
        .min(4);
    let varying: Vec<usize> = (0..8)
        .rev()
        .filter(|&octet| !counts[octet].contains(&n))
        .take(passes)
        .collect();
    // Octets below the lowest sorted one are left to the run sort.
    let shift = varying.last().map_or(64, |&octet| 8 * octet as u32);
    let mut scratch = vec![Slot::EMPTY; n];
    for &octet in varying.iter().rev() {
        let mut next = [0usize; 256];
        let mut sum = 0;
        for (next, count) in next.iter_mut().zip(&counts[octet]) {
            *next = sum;
            sum += count;
        }
        for slot in slots.iter() {
            let bucket = &mut next[((slot.key >> (8 * octet)) & 0xff) as usize];
            if let Some(place) = scratch.get_mut(*bucket) {
                *place = *slot;
            }
            *bucket += 1;
        }
        std::mem::swap(slots, &mut scratch);
    }
    drop(scratch);
    let prefix = |s: &Slot| s.key.checked_shr(shift).unwrap_or(0);
    let mut start = 0;
    while start < n {
        let p = prefix(&slots[start]);
        let end = slots[start..]
            .iter()
            .position(|s| prefix(s) != p)
            .map_or(n, |len| start + len);
        if end - start > 1 {
            slots[start..end].sort_unstable_by(by_serial);
        }
        start = end;
    }
}

/// Reads and validates one revoked entry:
///
/// ```text
/// SEQUENCE { userCertificate INTEGER, revocationDate Time,
///            crlEntryExtensions Extensions OPTIONAL }
/// ```
///
/// The structure is strict DER with nothing after the last field; times in
/// forms other than RFC 5280's and extension values that are not in the
/// canonical short form go to x509-parser, which decides as before.
fn read_entry(der: &[u8], entry: Tlv) -> Result<Entry, &'static str> {
    if entry.tag != der::SEQUENCE {
        return Err("revoked entry is not a SEQUENCE");
    }
    let serial = der::expect(der, entry.body, entry.end, der::INTEGER)
        .ok_or("revoked entry: serial number")?;
    let raw = serial.content(der);
    let normalized = normalize_serial(raw);
    let serial_range = serial.end - normalized.len()..serial.end;
    let date = der::read(der, serial.end, entry.end).ok_or("revoked entry: revocation date")?;
    let valid = der::time_fast_ok(date.tag, date.content(der)) || read_time(der, date).is_some();
    if !valid {
        return Err("revoked entry: revocation date");
    }
    let mut reason = None;
    let mut unsupported_critical = None;
    if date.end < entry.end {
        let exts = der::expect(der, date.end, entry.end, der::SEQUENCE)
            .ok_or("revoked entry: extensions")?;
        if exts.end != entry.end {
            return Err("revoked entry: trailing data");
        }
        let mut pos = exts.body;
        while pos < exts.end {
            let ext = read_extension(der, pos, exts.end).ok_or("revoked entry: extension")?;
            pos = ext.tlv.end;
            match classify(der, &ext)? {
                Kind::Reason(code) => reason = Some(code),
                Kind::Known => {}
                Kind::Other if ext.critical => unsupported_critical = Some(ext.oid.clone()),
                Kind::Other => {}
            }
        }
    }
    Ok(Entry {
        serial: serial_range,
        date,
        reason,
        unsupported_critical,
    })
}

/// A Time TLV as seconds since the epoch: the RFC 5280 forms directly,
/// anything else as x509-parser reads it.
fn read_time(der: &[u8], tlv: Tlv) -> Option<i64> {
    if let Some(t) = der::time_fast(tlv.tag, tlv.content(der)) {
        return Some(t);
    }
    if tlv.tag != der::UTC_TIME && tlv.tag != der::GENERALIZED_TIME {
        return None;
    }
    match ASN1Time::from_der(tlv.whole(der)) {
        Ok(([], time)) => Some(time.timestamp()),
        _ => None,
    }
}

/// One Extension's fields, as ranges of the DER.
pub(super) struct RawExtension {
    pub tlv: Tlv,
    pub oid: Range<usize>,
    pub critical: bool,
    pub value: Range<usize>,
}

/// Reads `SEQUENCE { OID, BOOLEAN DEFAULT FALSE, OCTET STRING }` at `pos`,
/// strictly (no trailing data; the BOOLEAN read as BER, as x509-parser
/// reads it: one octet, non-zero is true).
pub(super) fn read_extension(der: &[u8], pos: usize, limit: usize) -> Option<RawExtension> {
    let tlv = der::expect(der, pos, limit, der::SEQUENCE)?;
    let oid = der::expect(der, tlv.body, tlv.end, der::OID).filter(|o| o.end > o.body)?;
    let mut next = der::read(der, oid.end, tlv.end)?;
    let mut critical = false;
    if next.tag == der::BOOLEAN {
        let [flag] = next.content(der) else {
            return None;
        };
        critical = *flag != 0;
        next = der::read(der, next.end, tlv.end)?;
    }
    if next.tag != der::OCTET_STRING || next.end != tlv.end {
        return None;
    }
    Some(RawExtension {
        tlv,
        oid: oid.body..oid.end,
        critical,
        value: next.body..next.end,
    })
}

enum Kind {
    /// A reasonCode x509-parser reads as this code.
    Reason(u8),
    /// A reasonCode or invalidityDate that is ignored (an invalidityDate
    /// x509-parser can read).
    Known,
    /// Anything else, including a reasonCode or invalidityDate whose value
    /// x509-parser cannot read.
    Other,
}

/// How the x509-parser-based decoder treated an entry extension.
fn classify(der: &[u8], ext: &RawExtension) -> Result<Kind, &'static str> {
    let oid = der.get(ext.oid.clone()).unwrap_or_default();
    let value = der.get(ext.value.clone()).unwrap_or_default();
    if oid == OID_REASON_CODE {
        if let [0x0a, 0x01, code] = value {
            if *code <= 10 {
                return Ok(Kind::Reason(*code));
            }
        }
    } else if oid == OID_INVALIDITY_DATE {
        if let [der::GENERALIZED_TIME, 15, time @ ..] = value {
            if der::time_fast_ok(der::GENERALIZED_TIME, time) {
                return Ok(Kind::Known);
            }
        }
    } else {
        return Ok(Kind::Other);
    }
    // A known extension in an unusual encoding: as x509-parser reads it.
    let (rest, parsed) =
        X509Extension::from_der(ext.tlv.whole(der)).map_err(|_| "revoked entry: extension")?;
    if !rest.is_empty() {
        return Err("revoked entry: extension");
    }
    Ok(match parsed.parsed_extension() {
        ParsedExtension::ReasonCode(code) => Kind::Reason(code.0),
        ParsedExtension::InvalidityDate(_) => Kind::Known,
        _ => Kind::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_like_the_octets() {
        let serials: [&[u8]; 7] = [
            &[],
            &[0],
            &[0, 0],
            &[1],
            &[1, 2, 3, 4, 5, 6, 7, 8],
            &[1, 2, 3, 4, 5, 6, 7, 8, 0],
            &[1, 2, 3, 4, 5, 6, 7, 9],
        ];
        for a in serials {
            for b in serials {
                let by_key = key_of(a).cmp(&key_of(b)).then_with(|| a.cmp(b));
                assert_eq!(by_key, a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }
}

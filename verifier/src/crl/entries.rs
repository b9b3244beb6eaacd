//! The revokedCertificates list, decoded lazily.
//!
//! Decoding walks the DER of the list once, validating every entry
//! (structure, serial, revocation date and extensions), and keeps, per
//! distinct serial, one 12-octet [`Slot`]: an 8-octet sort key taken from
//! the serial and the entry's offset in the CRL's DER. Nothing is allocated
//! per entry. The slots are sorted by serial, so a lookup is a binary
//! search, and only the entry found is read again for its date and reason.
//!
//! What counts as revoked is what the x509-parser-based decoder counted:
//! the serials of all entries except those with reason removeFromCRL; for a
//! serial listed several times, the last such entry gives date and reason.

use std::cmp::Ordering;
use std::ops::Range;

use x509_parser::extensions::{ParsedExtension, X509Extension};
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;

use super::{normalize_serial, RevokedEntry, MAX_CRL_ENTRIES};
use crate::der::{self, Tlv};

/// id-ce-cRLReasons (2.5.29.21), OID content octets.
const OID_REASON_CODE: &[u8] = &[0x55, 0x1d, 0x15];
/// id-ce-invalidityDate (2.5.29.24), OID content octets.
const OID_INVALIDITY_DATE: &[u8] = &[0x55, 0x1d, 0x18];
/// CRLReason removeFromCRL: only meaningful in delta CRLs.
const REMOVE_FROM_CRL: u8 = 8;

/// Entries decoded before the slots are allocated for the rest of the
/// list, sized by these entries' average length. No separate counting pass
/// over a list that does not fit in cache; a list whose later entries are
/// shorter than its first makes the vector grow as usual.
const SAMPLE: usize = 256;

/// One indexed serial, 12 octets: the sort key (the first eight octets of
/// the normalized serial, zero-padded, big-endian) in two halves, so that a
/// slot needs 4-octet alignment only, and the offset of the entry's
/// SEQUENCE in the DER. A million entries take 12 MB instead of 16 with a
/// stored serial position: less memory to fault in, walk and sort. The
/// serial itself is read again from the entry's header only when two keys
/// tie (serials equal in their first eight octets), which is rare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Slot {
    key_hi: u32,
    key_lo: u32,
    /// Offset of the entry; the top bit marks a removeFromCRL entry until
    /// compaction.
    at: u32,
}

/// Marks a removeFromCRL entry's slot (in `at`) until compaction.
const REMOVED: u32 = 1 << 31;

impl Slot {
    #[inline]
    fn new(key: u64, at: u32) -> Slot {
        Slot {
            key_hi: (key >> 32) as u32,
            key_lo: key as u32,
            at,
        }
    }

    #[inline]
    fn key(&self) -> u64 {
        (u64::from(self.key_hi) << 32) | u64::from(self.key_lo)
    }

    /// Offset of the entry's SEQUENCE in the DER.
    #[inline]
    fn offset(&self) -> usize {
        (self.at & !REMOVED) as usize
    }

    #[inline]
    fn cmp_in(&self, other: &Slot, der: &[u8]) -> Ordering {
        self.key()
            .cmp(&other.key())
            .then_with(|| serial_at(der, self.offset()).cmp(serial_at(der, other.offset())))
    }
}

/// The normalized serial of the entry at `at`, read from its header (the
/// entry was validated when it was indexed).
fn serial_at(der: &[u8], at: usize) -> &[u8] {
    der::read(der, at, der.len())
        .and_then(|entry| der::expect(der, entry.body, entry.end, der::INTEGER))
        .map_or(&[], |serial| normalize_serial(serial.content(der)))
}

/// The sort key of a normalized serial: its first eight octets, zero-padded.
/// Ordering by key, then by the octets, is the lexicographic order.
#[inline]
fn key_of(serial: &[u8]) -> u64 {
    // Most serials have eight octets or more: one load, no copy loop.
    if let Some(first) = serial.first_chunk::<8>() {
        return u64::from_be_bytes(*first);
    }
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
    /// One walk validates each entry and records its slot; more than
    /// [`MAX_CRL_ENTRIES`] entries are refused. Unless the serials come in
    /// increasing order (as govtrust's CAs write them), the slots are then
    /// sorted by serial and compacted (see [`sort_and_compact`]):
    /// removeFromCRL entries dropped, one slot kept per serial.
    pub(super) fn decode(der: &[u8], list: Tlv) -> Result<Decoded, &'static str> {
        if list.tag != der::SEQUENCE {
            return Err("revokedCertificates is not a SEQUENCE");
        }
        // Offsets are kept in 31 bits (the top bit of `at` marks a
        // removeFromCRL entry until compaction).
        if der.len() >= REMOVED as usize {
            return Err("CRL too large");
        }
        let mut slots = Vec::with_capacity(SAMPLE);
        let mut unsupported_critical = None;
        let mut removed_any = false;
        let mut sorted = true;
        // The key bits that differ between entries (see `sort_and_compact`).
        let mut varying = 0u64;
        let mut first_key = None;
        let mut pos = list.body;
        while pos < list.end {
            let tlv = der::read(der, pos, list.end).ok_or("revoked entry: bad length")?;
            pos = tlv.end;
            if slots.len() == MAX_CRL_ENTRIES {
                return Err("too many entries");
            }
            let entry = read_entry(der, tlv)?;
            // Refused since the index kept the serial's position in one
            // octet; still refused, so that what decodes does not change.
            if entry.serial.start - tlv.start > 0xff {
                return Err("revoked entry: serial number too long");
            }
            if entry.unsupported_critical.is_some() {
                unsupported_critical = entry.unsupported_critical;
            }
            let removed = if entry.reason == Some(REMOVE_FROM_CRL) {
                removed_any = true;
                REMOVED
            } else {
                0
            };
            let key = key_of(der.get(entry.serial).unwrap_or_default());
            varying |= key ^ *first_key.get_or_insert(key);
            // Below 2^31: the DER length is (checked above).
            let slot = Slot::new(key, tlv.start as u32 | removed);
            if sorted {
                if let Some(last) = slots.last() {
                    sorted = Slot::cmp_in(last, &slot, der) == Ordering::Less;
                }
            }
            slots.push(slot);
            if slots.len() == SAMPLE {
                // The rest of the list, at these entries' average length,
                // with a little slack.
                let sampled = (pos - list.body) as u64;
                let rest = (list.end - pos) as u64 * SAMPLE as u64 / sampled;
                let rest = usize::try_from(rest + rest / 16 + 16).unwrap_or(usize::MAX);
                slots.reserve_exact(rest.min(MAX_CRL_ENTRIES - SAMPLE));
            }
        }

        if !sorted || removed_any {
            let kept = sort_and_compact(&mut slots, der, varying);
            slots.truncate(kept);
        }
        // An estimate far above the count (or many entries dropped) would
        // otherwise stay allocated for the CRL's lifetime.
        if slots.capacity() - slots.len() > slots.len() / 8 {
            slots.shrink_to_fit();
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
                slot.key()
                    .cmp(&key)
                    .then_with(|| serial_at(der, slot.offset()).cmp(serial))
            })
            .ok()?;
        let slot = self.slots.get(i)?;
        let entry = der::read(der, slot.offset(), der.len())
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

/// Most bits of the key one counting-sort pass orders by: 8,192 four-octet
/// counters (32 KiB), which stay in the L1 cache.
const MAX_DIGIT_BITS: u32 = 13;

/// Sorts slots by serial, then by position in the DER, and compacts them:
/// of each run of equal serials, now adjacent in DER order, the last entry
/// that is not removeFromCRL is kept, moved to the front. Returns how many
/// slots are kept.
///
/// `varying` has a bit set wherever two keys differ; the bits above its
/// highest are the same in every key and are not looked at. The slots are
/// first permuted in place into 256 buckets by their highest eight varying
/// bits (no second array the size of the index to allocate and fault in;
/// few enough write positions for the caches and the TLB). Each bucket, a
/// few thousand slots for a million, then fits in the L2 cache: it is
/// copied out ordered by its next bits (up to 13, about as many as the
/// bucket has slots in bits), each run of slots equal in all the bits
/// sorted so far (rare for distinct serials, and mostly pairs) is sorted
/// by the whole serial and position, which also orders equal serials by
/// position, and the runs are compacted back into `slots` (equal serials
/// share a run). O(n) for keys that differ in those bits, O(n log n) at
/// worst. (Few slots, or keys all alike, are sorted by comparison in a
/// copy.)
fn sort_and_compact(slots: &mut [Slot], der: &[u8], varying: u64) -> usize {
    let by_serial = |a: &Slot, b: &Slot| a.cmp_in(b, der).then(a.offset().cmp(&b.offset()));
    let top = u64::BITS - varying.leading_zeros();
    if slots.len() < 64 || top == 0 {
        let mut sorted = slots.to_vec();
        sorted.sort_unstable_by(by_serial);
        return compact_into(&sorted, slots, 0, der);
    }
    let high = top.saturating_sub(8);
    let ends = permute_into_buckets(slots, high);
    let mut bucket = Vec::new();
    let mut counters = [0u32; 1 << MAX_DIGIT_BITS];
    let mut start = 0;
    let mut kept = 0;
    for end in ends {
        let len = end - start;
        if bucket.len() < len {
            bucket.resize(len, Slot::new(0, 0));
        }
        let to = &mut bucket[..len];
        // One bit more than the bucket has slots in bits, so that most
        // slots end alone in a run of equal bits, and the counters few.
        let width = (usize::BITS + 1 - len.leading_zeros())
            .min(MAX_DIGIT_BITS)
            .min(high);
        let shift = high - width;
        distribute(
            &slots[start..end],
            to,
            shift,
            width,
            &mut counters[..1 << width],
        );
        let prefix = |s: &Slot| s.key() >> shift;
        let mut run = 0;
        for i in 1..=len {
            if i < len && prefix(&to[i]) == prefix(&to[run]) {
                continue;
            }
            match &mut to[run..i] {
                // A serial alone in its run is unique.
                [one] if one.at & REMOVED == 0 => {
                    if let Some(place) = slots.get_mut(kept) {
                        *place = *one;
                        kept += 1;
                    }
                }
                [_] => {}
                group => {
                    group.sort_unstable_by(by_serial);
                    kept = compact_into(group, slots, kept, der);
                }
            }
            run = i;
        }
        start = end;
    }
    kept
}

/// Writes the sorted slots `sorted` to `out[kept..]`: one slot per serial,
/// the last of its run that is not removeFromCRL (none if all are).
/// Returns where the kept slots end. `out[kept..]` must not hold slots
/// still to be read (the caller writes behind what it has read).
fn compact_into(sorted: &[Slot], out: &mut [Slot], mut kept: usize, der: &[u8]) -> usize {
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i + 1;
        while j < sorted.len() && sorted[j].cmp_in(&sorted[i], der) == Ordering::Equal {
            j += 1;
        }
        let last = sorted[i..j].iter().rev().find(|s| s.at & REMOVED == 0);
        if let (Some(last), Some(place)) = (last, out.get_mut(kept)) {
            *place = *last;
            kept += 1;
        }
        i = j;
    }
    kept
}

/// Permutes `slots` in place so that they are grouped by the eight key
/// bits at `shift` (an American flag sort pass, in rounds as ska_sort
/// does it: each slot is moved straight to the next free place of its
/// bucket), and returns where each bucket ends. Not stable; the caller
/// orders equal keys itself.
fn permute_into_buckets(slots: &mut [Slot], shift: u32) -> [usize; 256] {
    let digit = |s: &Slot| ((s.key() >> shift) & 0xff) as usize;
    let mut ends = [0usize; 256];
    for slot in slots.iter() {
        ends[digit(slot)] += 1;
    }
    let mut next = [0usize; 256];
    let mut sum = 0;
    for (end, next) in ends.iter_mut().zip(next.iter_mut()) {
        *next = sum;
        sum += *end;
        *end = sum;
    }
    // Rounds over the places not yet filled: the slot found at each is
    // swapped to the next free place of its own bucket, where it stays,
    // and the slot brought back waits for the next round. Each visit
    // places one slot, and consecutive visits read consecutive places, so
    // the cache misses at their scattered destinations overlap (following
    // one cycle of swaps instead makes each destination wait for the slot
    // the last swap brought back). Every round places at least one slot.
    let mut unfinished = true;
    while unfinished {
        unfinished = false;
        for b in 0..256 {
            let (from, to) = (next[b], ends[b]);
            unfinished |= from < to;
            for i in from..to {
                let d = digit(&slots[i]);
                slots.swap(i, next[d]);
                next[d] += 1;
            }
        }
    }
    ends
}

/// Copies `from` into `to` ordered by the `width` bits of the key at
/// `shift` (a counting sort), and sets `ends[d]` to where the
/// slots with digit `d` end in `to`. `ends` has `1 << width` elements.
fn distribute(from: &[Slot], to: &mut [Slot], shift: u32, width: u32, ends: &mut [u32]) {
    let digit = |s: &Slot| ((s.key() >> shift) & ((1 << width) - 1)) as usize;
    ends.fill(0);
    for slot in from {
        if let Some(count) = ends.get_mut(digit(slot)) {
            *count += 1;
        }
    }
    let mut sum = 0;
    for end in ends.iter_mut() {
        sum += *end;
        *end = sum - *end;
    }
    // `ends[d]` is now where digit `d` starts; each write moves it on, to
    // where the digit ends. (A bucket holds fewer than 2^32 slots: the
    // index holds at most MAX_CRL_ENTRIES.)
    for slot in from {
        if let Some(next) = ends.get_mut(digit(slot)) {
            if let Some(place) = to.get_mut(*next as usize) {
                *place = *slot;
            }
            *next += 1;
        }
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
#[inline]
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
#[inline]
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

    /// Sorts slots with distinct keys (so the DER is never read) and checks
    /// the result is those slots in key order.
    fn sorts(keys: &[u64]) {
        let mut slots: Vec<Slot> = keys
            .iter()
            .enumerate()
            .map(|(i, &k)| Slot::new(k, i as u32))
            .collect();
        let varying = keys.iter().fold(0, |v, k| v | (k ^ keys[0]));
        let kept = sort_and_compact(&mut slots, &[], varying);
        assert_eq!(kept, slots.len(), "distinct serials: none dropped");
        let mut expected: Vec<(u64, u32)> = keys
            .iter()
            .enumerate()
            .map(|(i, &k)| (k, i as u32))
            .collect();
        expected.sort_unstable();
        let got: Vec<(u64, u32)> = slots.iter().map(|s| (s.key(), s.at)).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn the_radix_sort_orders_any_key_distribution() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Random keys, as for random serials: one bucket level, and two.
        for n in [100, 5_000, 200_000] {
            let keys: Vec<u64> = (0..n).map(|_| next()).collect();
            sorts(&keys);
        }
        // Keys that differ only in their low bits, but for one outlier:
        // every slot lands in one bucket, and one long run of equal sorted
        // bits is left to the comparison sort.
        let mut keys: Vec<u64> = (0..50_000u64).map(|i| (i * 7919) % 50_021).collect();
        keys.push(u64::MAX);
        sorts(&keys);
        // Keys varying in fewer than eight bits.
        sorts(&(0..100u64).rev().collect::<Vec<_>>());
    }

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

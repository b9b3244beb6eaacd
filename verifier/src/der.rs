//! A small, strict DER reader for the CRL decoder and the attestation-leaf
//! reader: TLVs addressed by absolute offsets into one buffer, so that an
//! index can keep offsets instead of copies, and a fast path for the RFC
//! 5280 time forms.
//!
//! Only what those use is supported: single-octet tags (low tag numbers) and
//! definite lengths in minimal form of at most four octets. Anything else is
//! rejected; nothing here panics on any input.

/// One TLV: its tag octet and where its header and content lie in the
/// buffer it was read from (`start <= body <= end <= buffer length`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tlv {
    pub tag: u8,
    pub start: usize,
    pub body: usize,
    pub end: usize,
}

impl Tlv {
    /// The content octets.
    #[inline]
    pub fn content<'a>(&self, der: &'a [u8]) -> &'a [u8] {
        der.get(self.body..self.end).unwrap_or_default()
    }

    /// The whole encoding, header included.
    #[inline]
    pub fn whole<'a>(&self, der: &'a [u8]) -> &'a [u8] {
        der.get(self.start..self.end).unwrap_or_default()
    }
}

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const BOOLEAN: u8 = 0x01;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const OID: u8 = 0x06;
pub(crate) const UTC_TIME: u8 = 0x17;
pub(crate) const GENERALIZED_TIME: u8 = 0x18;
/// `[0]` constructed (the CRL extensions wrapper).
pub(crate) const CONTEXT_0: u8 = 0xa0;

/// Reads the TLV starting at `pos`, which must end at or before `limit`
/// (itself at most `der.len()`). `None` for a truncated TLV, a length that
/// runs past `limit`, a high tag number, an indefinite or non-minimal
/// length, or a length of more than four octets.
#[inline]
pub(crate) fn read(der: &[u8], pos: usize, limit: usize) -> Option<Tlv> {
    let limit = limit.min(der.len());
    let tag = *der.get(pos)?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let first = *der.get(pos.checked_add(1)?)?;
    let (body, len) = if first < 0x80 {
        (pos + 2, usize::from(first))
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = der.get(pos + 2..pos.checked_add(2 + n)?)?;
        if bytes.first() == Some(&0) {
            return None;
        }
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        if len < 0x80 {
            return None;
        }
        (pos + 2 + n, len)
    };
    let end = body.checked_add(len)?;
    if end > limit {
        return None;
    }
    Some(Tlv {
        tag,
        start: pos,
        body,
        end,
    })
}

/// Reads the TLV at `pos` and requires its tag.
#[inline]
pub(crate) fn expect(der: &[u8], pos: usize, limit: usize, tag: u8) -> Option<Tlv> {
    read(der, pos, limit).filter(|t| t.tag == tag)
}

/// Seconds since the Unix epoch of a UTCTime (`YYMMDDhhmmssZ`) or
/// GeneralizedTime (`YYYYMMDDhhmmssZ`) in the only forms RFC 5280 allows,
/// with a real calendar date; `None` for anything else (the caller then
/// asks x509-parser, which accepts more forms, so that the fast path never
/// changes what is accepted or the value read).
#[inline]
pub(crate) fn time_fast(tag: u8, content: &[u8]) -> Option<i64> {
    let [year, month, day, hour, minute, second] = time_fields(tag, content)?;
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Whether [`time_fast`] reads the time (without computing it).
#[inline]
pub(crate) fn time_fast_ok(tag: u8, content: &[u8]) -> bool {
    time_fields(tag, content).is_some()
}

/// Year, month, day, hour, minute and second of a time [`time_fast`] reads.
///
/// Every entry of a CRL has one, so this is on the decoder's hot path: the
/// digits are checked all at once, then read without further checks.
#[inline]
fn time_fields(tag: u8, content: &[u8]) -> Option<[i64; 6]> {
    let (digits, year_len) = match (tag, content) {
        (UTC_TIME, [digits @ .., b'Z']) if digits.len() == 12 => (digits, 2),
        (GENERALIZED_TIME, [digits @ .., b'Z']) if digits.len() == 14 => (digits, 4),
        _ => return None,
    };
    if !all_digits(digits) {
        return None;
    }
    let (year_digits, rest) = digits.split_at(year_len);
    let year = year_digits
        .iter()
        .fold(0, |acc, d| acc * 10 + i64::from(d - b'0'));
    let year = match tag {
        UTC_TIME if year >= 50 => 1900 + year,
        UTC_TIME => 2000 + year,
        _ => year,
    };
    let two = |i: usize| i64::from(rest[i] - b'0') * 10 + i64::from(rest[i + 1] - b'0');
    let [month, day, hour, minute, second] = [two(0), two(2), two(4), two(6), two(8)];
    if !(1..=12).contains(&month)
        || day < 1
        || (day > 28 && day > days_in_month(year, month))
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    Some([year, month, day, hour, minute, second])
}

/// Whether 8 to 16 octets are all ASCII digits, checked eight at a time:
/// an octet is a digit when its high nibble is 3 and adding 6 to it leaves
/// that nibble 3 (no octet overflows into the next, as each is at most
/// 0x3f + 6). The two words overlap when there are fewer than 16 octets.
#[inline]
fn all_digits(octets: &[u8]) -> bool {
    const HIGH: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    const SIXES: u64 = 0x0606_0606_0606_0606;
    let word = |at: usize| {
        octets
            .get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_le_bytes)
    };
    let digits = |w: Option<u64>| {
        w.is_some_and(|w| w & HIGH == THREES && w.wrapping_add(SIXES) & HIGH == THREES)
    };
    (8..=16).contains(&octets.len()) && digits(word(0)) && digits(word(octets.len() - 8))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm; `year` here is 0..=9999, `month` 1..=12).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_strict() {
        assert_eq!(read(&[0x30, 0x00], 0, 2).map(|t| t.end), Some(2));
        assert!(read(&[0x30, 0x01], 0, 2).is_none(), "truncated");
        assert!(read(&[0x30, 0x80, 0, 0], 0, 4).is_none(), "indefinite");
        assert!(
            read(&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0], 0, 8).is_none(),
            "non-minimal"
        );
        assert!(
            read(&[0x30, 0x82, 0x00, 0x80], 0, 4).is_none(),
            "leading zero"
        );
        assert!(read(&[0x1f, 0x01, 0x00], 0, 3).is_none(), "high tag number");
        assert!(
            read(&[0x30, 0x85, 1, 1, 1, 1, 1], 0, 7).is_none(),
            "five octets"
        );
        assert!(read(&[0x30, 0x02, 0, 0], 0, 3).is_none(), "past the limit");
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([0; 0x80]);
        assert_eq!(read(&long, 0, long.len()).map(|t| t.body), Some(3));
    }

    #[test]
    fn digits_are_exactly_0_to_9() {
        assert!(all_digits(b"012345678901"));
        assert!(all_digits(b"98765432109876"));
        for len in [12, 14] {
            for at in 0..len {
                for bad in (0..=255u8).filter(|b| !b.is_ascii_digit()) {
                    let mut octets = vec![b'5'; len];
                    octets[at] = bad;
                    assert!(!all_digits(&octets), "{octets:?}");
                }
            }
        }
        assert!(!all_digits(b"1234567"), "too short for the words");
    }

    #[test]
    fn times_match_the_calendar() {
        assert_eq!(time_fast(UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(time_fast(UTC_TIME, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(time_fast(UTC_TIME, b"500101000000Z"), Some(-631_152_000));
        assert_eq!(
            time_fast(GENERALIZED_TIME, b"20240229120000Z"),
            Some(1_709_208_000)
        );
        assert_eq!(time_fast(GENERALIZED_TIME, b"21000229120000Z"), None);
        assert_eq!(time_fast(UTC_TIME, b"240230000000Z"), None);
        assert_eq!(time_fast(UTC_TIME, b"2401010000Z"), None);
        assert_eq!(time_fast(UTC_TIME, b"240101000060Z"), None);
        assert_eq!(time_fast(UTC_TIME, b"240101000000+0000"), None);
        assert_eq!(time_fast(GENERALIZED_TIME, b"700101000000Z"), None);
    }
}

//! An attestation leaf read straight from its DER, for the verifier's short
//! path.
//!
//! A client verifies most attestations through an issuing CA it has already
//! validated (see `memo`), and there x509-parser's parse of the leaf was the
//! largest cost besides the one signature check (about 4 µs of 67).
//! govtrust's CAs issue leaves of one fixed shape. [`ProfileLeaf::read`]
//! accepts exactly that shape, in strict DER, and [`ProfileLeaf::check`]
//! applies the profile's leaf rules to it.
//!
//! Neither ever rejects. A leaf of any other shape, or one that breaks a
//! rule, goes on to the x509-parser parse and `profile::check_leaf`, whose
//! verdict and reason stand. What the reader accepts is therefore a subset
//! of what x509-parser parses, and for it the two read the same values:
//!
//! ```text
//! Certificate  SEQUENCE { tbs, signature algorithm, BIT STRING }, nothing after
//! tbs          SEQUENCE {
//!   [0] { INTEGER 2 }
//!   serial     INTEGER, 1-20 octets, positive, minimal
//!   signature  one of the profile's algorithms, the same as the outer one
//!   issuer     a SEQUENCE (rustls-webpki then requires it to equal the
//!              remembered CA's subject, which x509-parser read)
//!   validity   SEQUENCE { Time, Time } in RFC 5280's forms
//!   subject    RDNs of one attribute each, every one an authority-record
//!              attribute as UTF8String or PrintableString
//!   key        an Ed25519 SubjectPublicKeyInfo
//!   [3] { SEQUENCE OF Extension }, each OID at most once, each in the one
//!              encoding govtrust writes (see `Extensions::read`) }
//! ```
//!
//! Criticality is a DER BOOLEAN TRUE or absent.
//!
//! On the short path rustls-webpki checks the leaf as well (signature,
//! validity, name chaining, basic constraints, the required EKU, duplicate
//! and unknown critical extensions it knows), so the reader's own checks of
//! basicConstraints and of the EKU are a second line there; its other
//! checks are the only ones on that path, and `pki/tests/rejections.rs`
//! runs every rejection case through a warmed verifier as well.

use crate::authority::is_printable_string_char;
use crate::der::{self, Tlv};
use crate::path::CaUsage;
use crate::profile::{Expected, Subject};
use crate::signature::PROFILE_ALGORITHMS;
use crate::{oid, AuthorityRecord};

/// `[0]` EXPLICIT version: v3.
const VERSION_3: &[u8] = &[0xa0, 0x03, 0x02, 0x01, 0x02];
/// `[3]` constructed: the extensions wrapper.
const CONTEXT_3: u8 = 0xa3;
/// SET (of one RDN's attributes).
const SET: u8 = 0x31;
const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
/// GeneralName uniformResourceIdentifier `[6]` IMPLICIT IA5String.
const URI: u8 = 0x86;
/// keyUsage with only digitalSignature: BIT STRING, 7 unused bits, 0x80.
const KU_DIGITAL_SIGNATURE: &[u8] = &[0x03, 0x02, 0x07, 0x80];
/// basicConstraints with cA absent (false) and no pathLen.
const BC_END_ENTITY: &[u8] = &[0x30, 0x00];

/// A leaf of the profile's exact shape, as ranges of its DER.
pub(crate) struct ProfileLeaf<'a> {
    /// Serial number, INTEGER content octets (as x509-parser's raw serial).
    pub serial: &'a [u8],
    /// notAfter, seconds since the Unix epoch.
    pub not_after: i64,
    /// The authority record of the subject, validated.
    pub authority: AuthorityRecord,
    spki: &'a [u8],
    ext: Extensions<'a>,
}

impl<'a> ProfileLeaf<'a> {
    /// Reads `der` if it has the profile's exact shape; `None` otherwise.
    pub fn read(der: &'a [u8]) -> Option<Self> {
        let outer = der::expect(der, 0, der.len(), der::SEQUENCE).filter(|t| t.end == der.len())?;
        let tbs = der::expect(der, outer.body, outer.end, der::SEQUENCE)?;
        let outer_algorithm = der::expect(der, tbs.end, outer.end, der::SEQUENCE)?;
        let algorithm = outer_algorithm.whole(der);
        let signature_alg_ok = PROFILE_ALGORITHMS
            .iter()
            .any(|a| outer_algorithm.content(der) == a.signature_alg_id().as_ref());
        if !signature_alg_ok {
            return None;
        }
        der::expect(der, outer_algorithm.end, outer.end, der::BIT_STRING)
            .filter(|t| t.end == outer.end)?;

        let mut fields = Fields {
            der,
            pos: tbs.body,
            end: tbs.end,
        };
        if fields.next_whole(0xa0)? != VERSION_3 {
            return None;
        }
        let serial = fields.next(der::INTEGER)?.content(der);
        let minimal = match serial {
            [] => false,
            [first, ..] if first & 0x80 != 0 => false,
            [0, second, ..] => second & 0x80 != 0,
            _ => true,
        };
        if !minimal || serial.len() > 20 {
            return None;
        }
        if fields.next_whole(der::SEQUENCE)? != algorithm {
            return None;
        }
        fields.next(der::SEQUENCE)?; // issuer
        let validity = fields.next(der::SEQUENCE)?;
        let not_before = der::read(der, validity.body, validity.end)?;
        let not_after = der::read(der, not_before.end, validity.end)?;
        if not_after.end != validity.end {
            return None;
        }
        der::time_fast(not_before.tag, not_before.content(der))?;
        let not_after = der::time_fast(not_after.tag, not_after.content(der))?;
        let authority = authority_record(der, fields.next(der::SEQUENCE)?)?;
        let spki = fields.next_whole(der::SEQUENCE)?;
        if spki.len() != oid::ED25519_SPKI_PREFIX.len() + 32
            || !spki.starts_with(&oid::ED25519_SPKI_PREFIX)
        {
            return None;
        }
        let wrapper = fields.next(CONTEXT_3)?;
        if fields.pos != fields.end {
            return None;
        }
        let list = der::expect(der, wrapper.body, wrapper.end, der::SEQUENCE)
            .filter(|l| l.end == wrapper.end)?;
        let ext = Extensions::read(der, list)?;
        Some(ProfileLeaf {
            serial,
            not_after,
            authority,
            spki,
            ext,
        })
    }

    /// Whether the leaf attests `expected`: its key, its EKU (exactly the
    /// kind's), its SAN (exactly the user's canonical URI) and its device
    /// extension (exactly the device; absent for an identity). The key
    /// usage, basic constraints and authority record were checked by
    /// [`ProfileLeaf::read`].
    pub fn check(&self, expected: &Expected) -> bool {
        let eku = expected.subject.eku();
        let device = match &expected.subject {
            Subject::Device(d) => Some(d.as_str().as_bytes()),
            Subject::Identity => None,
        };
        self.spki.get(oid::ED25519_SPKI_PREFIX.len()..) == Some(expected.key.as_bytes())
            && self.ext.eku == eku
            && self.ext.san_uri == expected.user_id.to_matrix_uri().as_bytes()
            && self.ext.device == device
    }

    /// What its basic constraints and key usage permit: nothing but
    /// signatures (it is no CA, and keyUsage is exactly digitalSignature).
    pub fn usage(&self) -> CaUsage {
        CaUsage::DIGITAL_SIGNATURE_ONLY
    }
}

/// The TBSCertificate's fields, read in order.
struct Fields<'a> {
    der: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Fields<'a> {
    fn next(&mut self, tag: u8) -> Option<Tlv> {
        let tlv = der::expect(self.der, self.pos, self.end, tag)?;
        self.pos = tlv.end;
        Some(tlv)
    }

    fn next_whole(&mut self, tag: u8) -> Option<&'a [u8]> {
        let der = self.der;
        self.next(tag).map(|t| t.whole(der))
    }
}

/// The subject's authority record: each RDN one attribute of the record,
/// as UTF8String or PrintableString (in its alphabet), and the record valid.
fn authority_record(der: &[u8], name: Tlv) -> Option<AuthorityRecord> {
    let mut record = AuthorityRecord::default();
    let mut pos = name.body;
    while pos < name.end {
        let rdn = der::expect(der, pos, name.end, SET)?;
        pos = rdn.end;
        let atv =
            der::expect(der, rdn.body, rdn.end, der::SEQUENCE).filter(|a| a.end == rdn.end)?;
        let oid = der::expect(der, atv.body, atv.end, der::OID)?;
        let value = der::read(der, oid.end, atv.end).filter(|v| v.end == atv.end)?;
        let text = value.content(der);
        let text = match value.tag {
            UTF8_STRING => std::str::from_utf8(text).ok()?,
            PRINTABLE_STRING if text.iter().all(|&b| is_printable_string_char(b)) => {
                std::str::from_utf8(text).ok()?
            }
            _ => return None,
        };
        if !record.set_by_oid(oid.content(der), text.to_owned()).ok()? {
            return None;
        }
    }
    record.validate().ok()?;
    Some(record)
}

/// The leaf's extensions, each in the one encoding govtrust writes.
struct Extensions<'a> {
    /// The one EKU OID (content octets).
    eku: &'a [u8],
    /// The one SAN URI.
    san_uri: &'a [u8],
    /// The device ID extension's UTF8String content, if present.
    device: Option<&'a [u8]>,
}

impl<'a> Extensions<'a> {
    /// Reads the Extensions SEQUENCE `list`. Accepted, each at most once:
    ///
    /// - basicConstraints `SEQUENCE {}` (not a CA);
    /// - keyUsage, critical, exactly digitalSignature (required);
    /// - extKeyUsage of one OID (required; which one, `check` decides);
    /// - subjectAltName of one URI (required);
    /// - authorityKeyIdentifier of a 20-octet keyIdentifier alone, and
    ///   subjectKeyIdentifier of 20 octets, neither critical;
    /// - cRLDistributionPoints: one point with one full-name URI, printable
    ///   ASCII, not critical;
    /// - the ARC.10 device ID as a UTF8String, not critical.
    fn read(der: &'a [u8], list: Tlv) -> Option<Self> {
        let mut seen: Vec<&[u8]> = Vec::with_capacity(8);
        let mut key_usage = false;
        let mut eku = None;
        let mut san_uri = None;
        let mut device = None;
        let mut pos = list.body;
        while pos < list.end {
            let ext = der::expect(der, pos, list.end, der::SEQUENCE)?;
            pos = ext.end;
            let oid = der::expect(der, ext.body, ext.end, der::OID)?;
            let mut next = der::read(der, oid.end, ext.end)?;
            let critical = next.tag == der::BOOLEAN;
            if critical {
                if next.content(der) != [0xff] {
                    return None;
                }
                next = der::read(der, next.end, ext.end)?;
            }
            if next.tag != der::OCTET_STRING || next.end != ext.end {
                return None;
            }
            let oid = oid.content(der);
            if seen.contains(&oid) {
                return None;
            }
            seen.push(oid);
            let value = next.content(der);
            match oid {
                oid::EXT_BASIC_CONSTRAINTS if value == BC_END_ENTITY => {}
                oid::EXT_KEY_USAGE if critical && value == KU_DIGITAL_SIGNATURE => key_usage = true,
                oid::EXT_EXTENDED_KEY_USAGE => {
                    eku = Some(one_inside(value, der::SEQUENCE, der::OID)?)
                }
                oid::EXT_SUBJECT_ALT_NAME => san_uri = Some(one_inside(value, der::SEQUENCE, URI)?),
                oid::EXT_AUTHORITY_KEY_ID if !critical => {
                    let id = one_inside(value, der::SEQUENCE, 0x80)?;
                    (id.len() == 20).then_some(())?;
                }
                oid::EXT_SUBJECT_KEY_ID if !critical => {
                    let id = whole_tlv(value, der::OCTET_STRING)?;
                    (id.len() == 20).then_some(())?;
                }
                oid::EXT_CRL_DISTRIBUTION_POINTS if !critical => {
                    let point = one_inside(value, der::SEQUENCE, der::SEQUENCE)?;
                    let name = whole_tlv(point, der::CONTEXT_0)?;
                    let uri = one_inside(name, der::CONTEXT_0, URI)?;
                    let printable = uri.iter().all(|b| (0x21..0x7f).contains(b));
                    (printable && !uri.is_empty()).then_some(())?;
                }
                o if o == oid::EXT_DEVICE_ID && !critical => {
                    let id = whole_tlv(value, UTF8_STRING)?;
                    std::str::from_utf8(id).ok()?;
                    device = Some(id);
                }
                _ => return None,
            }
        }
        key_usage.then_some(())?;
        Some(Extensions {
            eku: eku?,
            san_uri: san_uri?,
            device,
        })
    }
}

/// The content of `bytes` if it is exactly one TLV with `tag`.
fn whole_tlv(bytes: &[u8], tag: u8) -> Option<&[u8]> {
    der::expect(bytes, 0, bytes.len(), tag)
        .filter(|t| t.end == bytes.len())
        .map(|t| t.content(bytes))
}

/// The content of the one `inner` TLV that is all of the `outer` TLV that
/// is all of `bytes`.
fn one_inside(bytes: &[u8], outer: u8, inner: u8) -> Option<&[u8]> {
    whole_tlv(whole_tlv(bytes, outer)?, inner)
}

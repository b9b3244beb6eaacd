//! Certificate revocation lists: parsing, signature checks against the
//! issuer on the path, the freshness policy, and serial lookup.
//!
//! A client keeps CRLs until their nextUpdate and checks many attestations
//! against them. A [`Crl`] is decoded once: the header fields with
//! x509-parser, the revoked entries by one walk over their DER that
//! validates each entry and indexes its serial (12 octets per serial, no
//! allocation per entry; see `entries`). A lookup is a binary search and
//! reads only the entry it finds. The signature check against an issuer
//! key is remembered, so the per-attestation cost is the lookup.

mod entries;

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls_pki_types::UnixTime;
use x509_parser::der_parser::der::parse_der_u32;
use x509_parser::extensions::{ParsedExtension, X509Extension};
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;
use x509_parser::x509::{AlgorithmIdentifier, X509Name};

use self::entries::Index;
use crate::der::{self, Tlv};
use crate::signature::EXTENDED_ALGORITHMS;
use crate::{Error, PathPosition};

/// Most revoked entries accepted in one CRL, as a bound on memory use.
pub const MAX_CRL_ENTRIES: usize = 2_000_000;

/// What the verifier demands of revocation information.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrlPolicy {
    /// Reject when no usable, fresh CRL from a certificate's issuer is
    /// available (`false`: check the CRLs given, accept without one).
    pub require: bool,
    /// Reject CRLs whose thisUpdate is older than this, even before their
    /// nextUpdate (a client that wants revocation to bite sooner than the
    /// CA's publication interval).
    pub max_age: Option<Duration>,
}

impl CrlPolicy {
    /// Requires a CRL from every issuer on the path that is not past its
    /// nextUpdate: the production default.
    pub const REQUIRE_FRESH: CrlPolicy = CrlPolicy {
        require: true,
        max_age: None,
    };
    /// Checks the CRLs given but accepts certificates without one: for
    /// offline tools and tests, never for a client's automatic trust.
    pub const ALLOW_MISSING: CrlPolicy = CrlPolicy {
        require: false,
        max_age: None,
    };
}

impl Default for CrlPolicy {
    fn default() -> Self {
        CrlPolicy::REQUIRE_FRESH
    }
}

/// Which certificates a CRL covers, from its issuing distribution point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    All,
    EndEntitiesOnly,
    CasOnly,
}

/// Why a revoked certificate was revoked (RFC 5280 CRLReason).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Revocation time, seconds since the Unix epoch.
    pub revoked_at: i64,
    /// CRLReason code, if the entry carries one.
    pub reason: Option<u8>,
}

/// A decoded CRL, ready for repeated lookups.
#[derive(Debug)]
pub struct Crl {
    /// The DER, kept for the lookups and the signature check.
    der: Vec<u8>,
    decoded: Decoded,
    /// SPKI DER of the issuer key this CRL's signature was verified against.
    verified_by: OnceLock<Vec<u8>>,
}

impl Crl {
    /// Decodes a DER CRL. Signature and freshness are checked later, against
    /// the issuer found on the path and the validation time.
    ///
    /// The `Crl` keeps the DER (a lookup reads the entry it finds from it).
    /// Handed a `Vec`, as a client has a CRL after downloading it, it keeps
    /// that buffer; handed a slice, it keeps a copy, which for a million
    /// entries (42 MB) costs about a third of the decode in copying and in
    /// page faults on the fresh memory.
    pub fn from_der<'a>(der: impl Into<Cow<'a, [u8]>>) -> Result<Self, Error> {
        let der = der.into();
        Ok(Crl {
            decoded: Decoded::decode(&der)?,
            der: der.into_owned(),
            verified_by: OnceLock::new(),
        })
    }

    /// Decodes a CRL given as PEM (`X509 CRL`) or DER; like
    /// [`Crl::from_der`], it keeps a `Vec` of DER it is handed.
    pub fn from_pem_or_der<'a>(bytes: impl Into<Cow<'a, [u8]>>) -> Result<Self, Error> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::CertificateRevocationListDer;
        let bytes = bytes.into();
        if bytes.trim_ascii_start().starts_with(b"-----") {
            let der = CertificateRevocationListDer::from_pem_slice(&bytes)
                .map_err(|e| Error::malformed("CRL PEM", format!("{e:?}")))?;
            Crl::from_der(der.as_ref().to_vec())
        } else {
            Crl::from_der(bytes)
        }
    }

    /// The issuer Name's DER content octets (without the SEQUENCE header,
    /// the form rustls-webpki exposes a certificate's issuer in), compared
    /// byte for byte with the issuer of each certificate on the path.
    pub fn issuer_der(&self) -> &[u8] {
        &self.decoded.issuer
    }

    /// thisUpdate, seconds since the Unix epoch.
    pub fn this_update(&self) -> i64 {
        self.decoded.this_update
    }

    /// nextUpdate, seconds since the Unix epoch, if the CRL has one.
    pub fn next_update(&self) -> Option<i64> {
        self.decoded.next_update
    }

    /// The CRL number in decimal, if present.
    pub fn number(&self) -> Option<&str> {
        self.decoded.number.as_deref()
    }

    /// Number of revoked serials (entries with reason removeFromCRL are
    /// not counted, and a serial listed twice counts once).
    pub fn len(&self) -> usize {
        self.decoded.revoked.len()
    }

    /// Whether the CRL revokes nothing.
    pub fn is_empty(&self) -> bool {
        self.decoded.revoked.len() == 0
    }

    /// The DER the CRL was decoded from.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Gives the DER back, for a caller that decoded a CRL to check it and
    /// goes on to store or send it (no copy of it is made).
    pub fn into_der(self) -> Vec<u8> {
        self.der
    }

    /// Heap bytes this CRL holds: its DER, the serial index and the small
    /// decoded fields.
    pub fn heap_bytes(&self) -> usize {
        self.der.capacity()
            + self.decoded.revoked.heap_bytes()
            + self.decoded.issuer.capacity()
            + self.decoded.number.as_ref().map_or(0, String::capacity)
            + self.decoded.unusable.as_ref().map_or(0, String::capacity)
            + self.decoded.signed.algorithm.capacity()
            + self.decoded.signed.signature.capacity()
            + self.verified_by.get().map_or(0, Vec::capacity)
    }

    /// Looks a serial number up (DER INTEGER content octets; redundant
    /// leading sign octets are ignored, the value is not changed), and
    /// reads that entry's revocation date and reason.
    pub fn lookup(&self, serial: &[u8]) -> Option<RevokedEntry> {
        self.decoded.revoked.lookup(&self.der, serial)
    }

    /// Why the CRL cannot serve as proof of non-revocation, if it cannot.
    pub fn unusable_reason(&self) -> Option<&str> {
        self.decoded.unusable.as_deref()
    }

    /// Checks the CRL's signature against an issuer key (full SPKI DER),
    /// remembering success so later checks against the same key are free.
    pub fn verify_signed_by(&self, issuer_spki_der: &[u8]) -> Result<(), Error> {
        if self.verified_by.get().map(Vec::as_slice) == Some(issuer_spki_der) {
            return Ok(());
        }
        verify_signature(
            self.der
                .get(self.decoded.signed.tbs.clone())
                .unwrap_or_default(),
            &self.decoded.signed.algorithm,
            &self.decoded.signed.signature,
            issuer_spki_der,
        )?;
        // A concurrent verification may have recorded another key; the
        // memo is only a shortcut, so losing that race is harmless.
        let _ = self.verified_by.set(issuer_spki_der.to_vec());
        Ok(())
    }

    fn covers(&self, position: PathPosition) -> bool {
        matches!(
            (self.decoded.scope, position),
            (Scope::All, _)
                | (Scope::EndEntitiesOnly, PathPosition::Leaf)
                | (Scope::CasOnly, PathPosition::Issuer)
        )
    }

    fn is_fresh(&self, now: i64, policy: &CrlPolicy) -> bool {
        let before_next = self.decoded.next_update.is_none_or(|next| now <= next);
        let young_enough = policy.max_age.is_none_or(|max| {
            now.saturating_sub(self.decoded.this_update)
                <= i64::try_from(max.as_secs()).unwrap_or(i64::MAX)
        });
        before_next && young_enough
    }
}

/// What a [`Crl`] reads from its DER once, when it is decoded.
#[derive(Debug)]
struct Decoded {
    /// The issuer Name's content octets.
    issuer: Vec<u8>,
    this_update: i64,
    next_update: Option<i64>,
    number: Option<String>,
    scope: Scope,
    /// `Some(why)` when the CRL uses features the verifier cannot honour
    /// (indirect CRL, partial reasons, unknown critical extensions); such
    /// a CRL is never taken as proof of non-revocation.
    unusable: Option<String>,
    /// The revoked serials, sorted, as offsets into the DER.
    revoked: Index,
    /// Where the signed TBSCertList sits in the DER, the signature
    /// algorithm (AlgorithmIdentifier content octets) and the signature:
    /// kept so the signature check needs no second parse.
    signed: SignedParts,
}

impl Decoded {
    fn decode(der: &[u8]) -> Result<Self, Error> {
        let malformed = |detail: &'static str| Error::malformed("CRL", detail);
        let signed = SignedParts::split(der)?;
        let tbs = der::expect(der, signed.tbs.start, signed.tbs.end, der::SEQUENCE)
            .ok_or_else(|| malformed("TBSCertList"))?;
        let fields = TbsFields::split(der, tbs)?;

        let mut scope = Scope::All;
        let mut unusable = None;
        let mut number = None;
        if let Some(list) = fields.extensions {
            let mut pos = list.body;
            while pos < list.end {
                let raw = entries::read_extension(der, pos, list.end)
                    .ok_or_else(|| malformed("CRL extension"))?;
                pos = raw.tlv.end;
                let ext = match X509Extension::from_der(raw.tlv.whole(der)) {
                    Ok(([], ext)) => ext,
                    _ => return Err(malformed("CRL extension")),
                };
                match ext.parsed_extension() {
                    ParsedExtension::CRLNumber(n) => number = Some(n.to_string()),
                    ParsedExtension::AuthorityKeyIdentifier(_) => {}
                    ParsedExtension::IssuingDistributionPoint(idp) => {
                        if idp.indirect_crl
                            || idp.only_some_reasons.is_some()
                            || idp.only_contains_attribute_certs
                        {
                            unusable = Some("indirect or partial CRL".to_owned());
                        }
                        // A CRL for one distribution point covers only the
                        // certificates naming that point (RFC 5280 6.3.3
                        // b.2.i), which is not checked here: never take it as
                        // proof of non-revocation (PKITS 4.14.3, 4.14.8,
                        // 4.14.9, 4.5.5 were false accepts). govtrust CAs
                        // issue full CRLs. x509-parser 0.18 drops a
                        // nameRelativeToCRLIssuer distributionPoint (and the
                        // fields after it), so the raw encoding is checked as
                        // well.
                        if idp.distribution_point.is_some() || idp_has_distribution_point(ext.value)
                        {
                            unusable = Some("CRL scoped to a distribution point".to_owned());
                        }
                        scope = match (idp.only_contains_user_certs, idp.only_contains_ca_certs) {
                            (true, false) => Scope::EndEntitiesOnly,
                            (false, true) => Scope::CasOnly,
                            (false, false) => Scope::All,
                            (true, true) => return Err(malformed("contradictory IDP")),
                        };
                    }
                    _ if ext.critical => {
                        unusable = Some(format!("unsupported critical extension {}", ext.oid));
                    }
                    _ => {}
                }
            }
        }

        let revoked = match fields.revoked {
            Some(list) => {
                let decoded = Index::decode(der, list).map_err(malformed)?;
                if let Some(oid) = decoded.unsupported_critical {
                    let oid = der.get(oid).unwrap_or_default();
                    unusable = Some(format!(
                        "unsupported critical entry extension {}",
                        x509_parser::der_parser::oid::Oid::new(oid.into())
                    ));
                }
                decoded.index
            }
            None => Index::default(),
        };
        Ok(Decoded {
            issuer: fields.issuer.content(der).to_vec(),
            this_update: fields.this_update,
            next_update: fields.next_update,
            number,
            scope,
            unusable,
            revoked,
            signed,
        })
    }
}

/// The fields of a TBSCertList:
///
/// ```text
/// SEQUENCE { version INTEGER OPTIONAL, signature AlgorithmIdentifier,
///            issuer Name, thisUpdate Time, nextUpdate Time OPTIONAL,
///            revokedCertificates SEQUENCE OF ... OPTIONAL,
///            crlExtensions [0] EXPLICIT Extensions OPTIONAL }
/// ```
///
/// Each field is validated as x509-parser validates it; the entries are
/// left to [`Index::decode`] and the extensions to the caller.
struct TbsFields {
    issuer: Tlv,
    this_update: i64,
    next_update: Option<i64>,
    revoked: Option<Tlv>,
    /// The Extensions SEQUENCE inside `[0]`.
    extensions: Option<Tlv>,
}

impl TbsFields {
    fn split(der: &[u8], tbs: Tlv) -> Result<Self, Error> {
        let malformed = |detail: &'static str| Error::malformed("CRL", detail);
        let end = tbs.end;
        let next = |pos: usize| der::read(der, pos, end).filter(|_| pos < end);
        let mut field = next(tbs.body).ok_or_else(|| malformed("TBSCertList"))?;
        if field.tag == der::INTEGER {
            match parse_der_u32(field.whole(der)) {
                Ok(([], _)) => {}
                _ => return Err(malformed("version")),
            }
            field = next(field.end).ok_or_else(|| malformed("signature algorithm"))?;
        }
        match (field.tag, AlgorithmIdentifier::from_der(field.whole(der))) {
            (der::SEQUENCE, Ok(([], _))) => {}
            _ => return Err(malformed("signature algorithm")),
        }
        let issuer = next(field.end).ok_or_else(|| malformed("issuer name"))?;
        match (issuer.tag, X509Name::from_der(issuer.whole(der))) {
            (der::SEQUENCE, Ok(([], _))) => {}
            _ => return Err(malformed("issuer name")),
        }
        let this_update = next(issuer.end)
            .and_then(|t| Some((t, time(der, t)?)))
            .ok_or_else(|| malformed("thisUpdate"))?;
        let mut pos = this_update.0.end;
        let mut next_update = None;
        let mut revoked = None;
        let mut extensions = None;
        if let Some(t) = next(pos).filter(|t| is_time(t.tag)) {
            next_update = Some(time(der, t).ok_or_else(|| malformed("nextUpdate"))?);
            pos = t.end;
        }
        if let Some(list) = next(pos).filter(|t| t.tag == der::SEQUENCE) {
            revoked = Some(list);
            pos = list.end;
        }
        if let Some(wrapper) = next(pos).filter(|t| t.tag == der::CONTEXT_0) {
            let list = der::expect(der, wrapper.body, wrapper.end, der::SEQUENCE)
                .filter(|list| list.end == wrapper.end)
                .ok_or_else(|| malformed("CRL extensions"))?;
            extensions = Some(list);
            pos = wrapper.end;
        }
        if pos != end {
            return Err(malformed("TBSCertList: unexpected or trailing field"));
        }
        Ok(TbsFields {
            issuer,
            this_update: this_update.1,
            next_update,
            revoked,
            extensions,
        })
    }
}

fn is_time(tag: u8) -> bool {
    tag == der::UTC_TIME || tag == der::GENERALIZED_TIME
}

/// thisUpdate / nextUpdate, as x509-parser reads them.
fn time(der: &[u8], tlv: Tlv) -> Option<i64> {
    if !is_time(tlv.tag) {
        return None;
    }
    match ASN1Time::from_der(tlv.whole(der)) {
        Ok(([], t)) => Some(t.timestamp()),
        _ => None,
    }
}

/// The parts of a signed DER structure (`SEQUENCE { tbs, algorithm,
/// BIT STRING signature }`), as offsets and copies.
#[derive(Debug)]
struct SignedParts {
    tbs: std::ops::Range<usize>,
    algorithm: Vec<u8>,
    signature: Vec<u8>,
}

impl SignedParts {
    fn split(der: &[u8]) -> Result<Self, Error> {
        let bad = || Error::malformed("CRL", "outer structure");
        let outer = der::expect(der, 0, der.len(), der::SEQUENCE).ok_or_else(bad)?;
        if outer.end != der.len() {
            return Err(Error::malformed("CRL", "trailing data"));
        }
        let tbs = der::expect(der, outer.body, outer.end, der::SEQUENCE).ok_or_else(bad)?;
        let algorithm = der::expect(der, tbs.end, outer.end, der::SEQUENCE).ok_or_else(bad)?;
        match AlgorithmIdentifier::from_der(algorithm.whole(der)) {
            Ok(([], _)) => {}
            _ => return Err(bad()),
        }
        let bits = der::expect(der, algorithm.end, outer.end, der::BIT_STRING)
            .filter(|bits| bits.end == outer.end)
            .ok_or_else(bad)?;
        let (&unused, signature) = bits.content(der).split_first().ok_or_else(bad)?;
        if unused > 7 {
            return Err(bad());
        }
        Ok(SignedParts {
            tbs: tbs.start..tbs.end,
            algorithm: algorithm.content(der).to_vec(),
            // A signature with unused bits is no signature (PKITS 4.4.4):
            // keep the CRL decodable, but it can never verify.
            signature: if unused == 0 {
                signature.to_vec()
            } else {
                Vec::new()
            },
        })
    }
}

/// Verifies `signature` over `message` with the issuer key, choosing the
/// algorithm exactly as rustls-webpki does: by the byte-exact algorithm
/// identifiers of the signature and of the key, among the accepted ones.
fn verify_signature(
    message: &[u8],
    algorithm: &[u8],
    signature: &[u8],
    issuer_spki_der: &[u8],
) -> Result<(), Error> {
    let bad_key = || Error::malformed("issuer public key", "SubjectPublicKeyInfo");
    let spki = &issuer_spki_der;
    let outer = der::expect(spki, 0, spki.len(), der::SEQUENCE).ok_or_else(bad_key)?;
    let key_algorithm =
        der::expect(spki, outer.body, outer.end, der::SEQUENCE).ok_or_else(bad_key)?;
    let key_bits =
        der::expect(spki, key_algorithm.end, outer.end, der::BIT_STRING).ok_or_else(bad_key)?;
    let key = key_bits.content(spki).get(1..).ok_or_else(bad_key)?;
    let key_algorithm = key_algorithm.content(spki);
    let mut candidates = EXTENDED_ALGORITHMS.iter().filter(|a| {
        a.signature_alg_id().as_ref() == algorithm
            && a.public_key_alg_id().as_ref() == key_algorithm
    });
    let mut any = false;
    let verified = candidates.any(|a| {
        any = true;
        a.verify_signature(key, message, signature).is_ok()
    });
    match (verified, any) {
        (true, _) => Ok(()),
        (false, true) => Err(Error::BadSignature),
        (false, false) => Err(Error::UnsupportedAlgorithm),
    }
}

/// Whether a DER IssuingDistributionPoint SEQUENCE starts with the
/// `[0] distributionPoint` field.
fn idp_has_distribution_point(value: &[u8]) -> bool {
    let content = match value {
        [0x30, len, rest @ ..] if *len < 0x80 => rest,
        [0x30, 0x81, _, rest @ ..] => rest,
        [0x30, 0x82, _, _, rest @ ..] => rest,
        // Not a short SEQUENCE: assume the worst.
        _ => return true,
    };
    content.first() == Some(&0xa0)
}

/// Drops redundant leading octets of a two's-complement INTEGER: a 0x00
/// before an octet whose top bit is clear, or a 0xff before one whose top
/// bit is set. Stripping every leading zero instead made 255 (`00 ff`)
/// equal to -1 (`ff`), so a CRL revoking serial -1 revoked serial 255
/// (PKITS 4.4.14 was a false reject).
#[inline]
fn normalize_serial(serial: &[u8]) -> &[u8] {
    let mut s = serial;
    while let [first, second, ..] = s {
        let redundant =
            (*first == 0x00 && second & 0x80 == 0) || (*first == 0xff && second & 0x80 != 0);
        if !redundant {
            break;
        }
        s = &s[1..];
    }
    s
}

/// The CRLs a verification may use, from any number of issuers.
///
/// It holds each CRL behind an `Arc`, so that a client that rebuilds its
/// set when one CRL changes shares the others (decoded once, their
/// signature checks remembered) instead of decoding them again.
#[derive(Debug, Default)]
pub struct CrlSet {
    crls: Vec<Arc<Crl>>,
}

impl CrlSet {
    /// An empty set (no revocation information).
    pub fn new() -> Self {
        CrlSet::default()
    }

    /// Adds a decoded CRL, owned or shared.
    pub fn push(&mut self, crl: impl Into<Arc<Crl>>) {
        self.crls.push(crl.into());
    }

    /// The CRLs held.
    pub fn iter(&self) -> impl Iterator<Item = &Crl> {
        self.crls.iter().map(|crl| &**crl)
    }

    /// Checks one certificate of a path against the set: `serial` and
    /// `issuer_name` are the certificate's, `issuer_spki` is the full SPKI
    /// of the CA that issued it (and signs its CRLs), `issuer_can_sign_crls`
    /// whether that CA's key usage permits cRLSign.
    pub(crate) fn check(
        &self,
        cert: CertUnderCheck<'_>,
        now: UnixTime,
        policy: &CrlPolicy,
    ) -> Result<(), Error> {
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let position = cert.position;
        let mut claimed = false;
        let mut fresh = false;
        let mut any_valid = false;
        for crl in self
            .crls
            .iter()
            .filter(|c| c.decoded.issuer == cert.issuer_name && c.covers(position))
        {
            claimed = true;
            if !cert.issuer_can_sign_crls || crl.verify_signed_by(cert.issuer_spki).is_err() {
                continue;
            }
            any_valid = true;
            // Revocation is permanent: a stale CRL still proves it.
            if crl.lookup(cert.serial).is_some() {
                return Err(Error::Revoked { position });
            }
            fresh |= crl.decoded.unusable.is_none() && crl.is_fresh(now, policy);
        }
        if claimed && !any_valid {
            return Err(Error::CrlWrongIssuer { position });
        }
        match (policy.require, fresh, any_valid) {
            (false, _, _) | (true, true, _) => Ok(()),
            (true, false, true) => Err(Error::CrlStale { position }),
            (true, false, false) => Err(Error::CrlMissing { position }),
        }
    }
}

impl FromIterator<Crl> for CrlSet {
    fn from_iter<I: IntoIterator<Item = Crl>>(iter: I) -> Self {
        iter.into_iter().map(Arc::new).collect()
    }
}

impl FromIterator<Arc<Crl>> for CrlSet {
    fn from_iter<I: IntoIterator<Item = Arc<Crl>>>(iter: I) -> Self {
        CrlSet {
            crls: iter.into_iter().collect(),
        }
    }
}

/// One certificate of a validated path, as the CRL check needs it.
pub(crate) struct CertUnderCheck<'a> {
    pub position: PathPosition,
    pub serial: &'a [u8],
    pub issuer_name: &'a [u8],
    pub issuer_spki: &'a [u8],
    pub issuer_can_sign_crls: bool,
}

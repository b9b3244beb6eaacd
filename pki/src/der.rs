//! DER building blocks the profile is written in: names, times, OIDs and
//! extensions.
//!
//! rcgen cannot express the profile (its OIDs are `u64` arcs, and the
//! profile's `2.25.<uuid>` arc needs 128 bits), so govtrust encodes the
//! TBS structures itself with yasna, from these few pieces.

use govtrust_verifier::{AuthorityRecord, DnString};
use time::OffsetDateTime;
use yasna::{DERWriter, Tag};

use crate::Error;

/// An X.509 extension: OID (content octets), criticality, DER value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    /// Extension OID as DER content octets.
    pub oid: Vec<u8>,
    /// Whether a verifier that does not know it must reject the certificate.
    pub critical: bool,
    /// DER encoding of the extension value (inside the OCTET STRING).
    pub value: Vec<u8>,
}

/// Writes an OID given as content octets (any arc size).
pub(crate) fn write_oid(w: DERWriter<'_>, content: &[u8]) {
    let mut tlv = vec![0x06];
    push_len(&mut tlv, content.len());
    tlv.extend_from_slice(content);
    w.write_der(&tlv);
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Writes a time as UTCTime (1950–2049) or GeneralizedTime, per RFC 5280 4.1.2.5.
pub(crate) fn write_time(w: DERWriter<'_>, t: OffsetDateTime) {
    let t = t.to_offset(time::UtcOffset::UTC);
    let body = format!(
        "{:02}{:02}{:02}{:02}{:02}Z",
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let (tag, text) = if (1950..2050).contains(&t.year()) {
        (0x17, format!("{:02}{body}", t.year() % 100))
    } else {
        (0x18, format!("{:04}{body}", t.year()))
    };
    let mut tlv = vec![tag];
    push_len(&mut tlv, text.len());
    tlv.extend_from_slice(text.as_bytes());
    w.write_der(&tlv);
}

/// One attribute of a distinguished name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAttribute {
    /// Attribute type OID, content octets.
    pub oid: &'static [u8],
    /// String type.
    pub string: DnString,
    /// Value.
    pub value: String,
}

/// `commonName` (2.5.4.3), used for CA names.
pub const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// A distinguished name: one attribute per RDN, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DistinguishedName(pub Vec<NameAttribute>);

impl DistinguishedName {
    /// The subject DN of an attestation or enrollment certificate: the
    /// authority record, validated against the profile.
    pub fn from_authority(record: &AuthorityRecord) -> Result<Self, Error> {
        record
            .validate()
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        Ok(DistinguishedName(
            record
                .dn_values()
                .map(|(attr, value)| NameAttribute {
                    oid: attr.oid,
                    string: attr.string,
                    value: value.to_owned(),
                })
                .collect(),
        ))
    }

    /// A CA name: `CN=<common_name>` plus the organisation record, if any.
    pub fn ca(common_name: &str, organisation: Option<&AuthorityRecord>) -> Result<Self, Error> {
        if common_name.trim().is_empty() || common_name.chars().count() > 64 {
            return Err(Error::InvalidRequest(
                "CA common name must be 1 to 64 characters".into(),
            ));
        }
        let mut name = match organisation {
            Some(record) => DistinguishedName::from_authority(record)?,
            None => DistinguishedName::default(),
        };
        name.0.push(NameAttribute {
            oid: OID_COMMON_NAME,
            string: DnString::Utf8,
            value: common_name.to_owned(),
        });
        Ok(name)
    }

    /// DER encoding (a full `Name` TLV).
    pub fn to_der(&self) -> Vec<u8> {
        yasna::construct_der(|w| {
            w.write_sequence_of(|w| {
                for attr in &self.0 {
                    w.next().write_set_of(|w| {
                        w.next().write_sequence(|w| {
                            write_oid(w.next(), attr.oid);
                            match attr.string {
                                // yasna's write_printable_string panics on '?', which X.680 allows.
                                DnString::Printable => w
                                    .next()
                                    .write_tagged_implicit(yasna::tags::TAG_PRINTABLESTRING, |w| {
                                        w.write_bytes(attr.value.as_bytes())
                                    }),
                                DnString::Utf8 => w.next().write_utf8_string(&attr.value),
                            }
                        })
                    })
                }
            })
        })
    }
}

/// Builders for the extensions the profile uses.
pub mod ext {
    use super::*;

    use govtrust_verifier::oid::{
        EXT_AUTHORITY_KEY_ID as AUTHORITY_KEY_ID, EXT_BASIC_CONSTRAINTS as BASIC_CONSTRAINTS,
        EXT_CRL_DISTRIBUTION_POINTS as CRL_DISTRIBUTION_POINTS,
        EXT_EXTENDED_KEY_USAGE as EXT_KEY_USAGE, EXT_KEY_USAGE as KEY_USAGE,
        EXT_SUBJECT_ALT_NAME as SUBJECT_ALT_NAME, EXT_SUBJECT_KEY_ID as SUBJECT_KEY_ID,
    };
    /// CRL extension: CRL number.
    pub(crate) const CRL_NUMBER: &[u8] = &[0x55, 0x1d, 0x14];
    /// CRL entry extension: reason code.
    pub(crate) const REASON_CODE: &[u8] = &[0x55, 0x1d, 0x15];

    /// KeyUsage bits (RFC 5280 4.2.1.3), as bit positions.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[repr(u8)]
    pub enum KeyUsageBit {
        /// digitalSignature (0).
        DigitalSignature = 0,
        /// keyEncipherment (2).
        KeyEncipherment = 2,
        /// keyCertSign (5).
        KeyCertSign = 5,
        /// cRLSign (6).
        CrlSign = 6,
    }

    fn ext(oid: &[u8], critical: bool, value: Vec<u8>) -> Extension {
        Extension {
            oid: oid.to_vec(),
            critical,
            value,
        }
    }

    /// basicConstraints (critical).
    pub fn basic_constraints(ca: bool, path_len: Option<u8>) -> Extension {
        ext(
            BASIC_CONSTRAINTS,
            true,
            yasna::construct_der(|w| {
                w.write_sequence(|w| {
                    if ca {
                        w.next().write_bool(true);
                        if let Some(len) = path_len {
                            w.next().write_u8(len);
                        }
                    }
                })
            }),
        )
    }

    /// keyUsage (critical) with the given bits set.
    pub fn key_usage(bits: &[KeyUsageBit]) -> Extension {
        let mut value: u16 = 0;
        let mut highest = 0;
        for &bit in bits {
            value |= 0x8000 >> (bit as u8);
            highest = highest.max(bit as usize);
        }
        let bytes = value.to_be_bytes();
        let len_bits = highest + 1;
        let used = &bytes[..len_bits.div_ceil(8)];
        ext(
            KEY_USAGE,
            true,
            yasna::construct_der(|w| w.write_bitvec_bytes(used, len_bits)),
        )
    }

    /// extKeyUsage (non-critical) listing `purposes` (OID content octets).
    pub fn extended_key_usage(purposes: &[&[u8]]) -> Extension {
        ext(
            EXT_KEY_USAGE,
            false,
            yasna::construct_der(|w| {
                w.write_sequence_of(|w| {
                    for p in purposes {
                        write_oid(w.next(), p);
                    }
                })
            }),
        )
    }

    /// subjectAltName with URIs (non-critical: the subject DN is not empty).
    pub fn subject_alt_name_uris(uris: &[&str]) -> Extension {
        ext(
            SUBJECT_ALT_NAME,
            false,
            yasna::construct_der(|w| {
                w.write_sequence_of(|w| {
                    for uri in uris {
                        w.next()
                            .write_tagged_implicit(Tag::context(6), |w| w.write_ia5_string(uri));
                    }
                })
            }),
        )
    }

    /// subjectAltName with DNS names and IP addresses (TLS server certificates).
    pub fn subject_alt_name_hosts(dns: &[&str], ips: &[std::net::IpAddr]) -> Extension {
        ext(
            SUBJECT_ALT_NAME,
            false,
            yasna::construct_der(|w| {
                w.write_sequence_of(|w| {
                    for name in dns {
                        w.next()
                            .write_tagged_implicit(Tag::context(2), |w| w.write_ia5_string(name));
                    }
                    for ip in ips {
                        let octets = match ip {
                            std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
                            std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
                        };
                        w.next()
                            .write_tagged_implicit(Tag::context(7), |w| w.write_bytes(&octets));
                    }
                })
            }),
        )
    }

    /// subjectKeyIdentifier.
    pub fn subject_key_identifier(key_id: &[u8]) -> Extension {
        ext(
            SUBJECT_KEY_ID,
            false,
            yasna::construct_der(|w| w.write_bytes(key_id)),
        )
    }

    /// authorityKeyIdentifier with a keyIdentifier.
    pub fn authority_key_identifier(key_id: &[u8]) -> Extension {
        ext(
            AUTHORITY_KEY_ID,
            false,
            yasna::construct_der(|w| {
                w.write_sequence(|w| {
                    w.next()
                        .write_tagged_implicit(Tag::context(0), |w| w.write_bytes(key_id))
                })
            }),
        )
    }

    /// cRLDistributionPoints with one full-name URI per point.
    pub fn crl_distribution_points(urls: &[&str]) -> Extension {
        ext(
            CRL_DISTRIBUTION_POINTS,
            false,
            yasna::construct_der(|w| {
                w.write_sequence_of(|w| {
                    for url in urls {
                        w.next().write_sequence(|w| {
                            w.next().write_tagged(Tag::context(0), |w| {
                                w.write_tagged_implicit(Tag::context(0), |w| {
                                    w.write_sequence(|w| {
                                        w.next().write_tagged_implicit(Tag::context(6), |w| {
                                            w.write_ia5_string(url)
                                        })
                                    })
                                })
                            })
                        })
                    }
                })
            }),
        )
    }

    /// ARC.10: the Matrix device ID (non-critical).
    pub fn device_id(device: &str) -> Extension {
        ext(
            govtrust_verifier::oid::EXT_DEVICE_ID,
            false,
            yasna::construct_der(|w| w.write_utf8_string(device)),
        )
    }

    /// ARC.11: permitted Matrix server names of an issuing CA (non-critical).
    pub fn permitted_servers(servers: &[String]) -> Extension {
        ext(
            govtrust_verifier::oid::EXT_PERMITTED_SERVERS,
            false,
            yasna::construct_der(|w| {
                w.write_sequence_of(|w| {
                    for s in servers {
                        w.next().write_utf8_string(s);
                    }
                })
            }),
        )
    }

    /// Any extension given by dotted-free content octets; for tests and
    /// for profiles added later.
    pub fn raw(oid: &[u8], critical: bool, value: Vec<u8>) -> Extension {
        ext(oid, critical, value)
    }

    /// Writes the `Extensions` SEQUENCE.
    pub(crate) fn write_extensions(w: DERWriter<'_>, extensions: &[Extension]) {
        w.write_sequence_of(|w| {
            for e in extensions {
                w.next().write_sequence(|w| {
                    write_oid(w.next(), &e.oid);
                    if e.critical {
                        w.next().write_bool(true);
                    }
                    w.next().write_bytes(&e.value);
                })
            }
        })
    }
}

/// Key identifier per RFC 7093 method 1: the leftmost 160 bits of the
/// SHA-256 of the subjectPublicKey bits.
pub fn key_identifier(spki_der: &[u8]) -> Result<Vec<u8>, Error> {
    use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo};
    let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|e| Error::InvalidRequest(format!("public key is not a valid SPKI: {e}")))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &spki.subject_public_key.data);
    Ok(digest.as_ref()[..20].to_vec())
}

//! The official authority record: who an attested Matrix account belongs to.
//!
//! The record is carried in the attestation certificate's subject DN; it is
//! what a client shows as the verified badge, so it is validated on both
//! sides with the same rules.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;

/// An authority's official record as certified in the subject DN.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorityRecord {
    /// Official authority identifier (DN `serialNumber`), e.g. a register number.
    pub id: String,
    /// Official name (DN `O`).
    pub name: String,
    /// Organisational unit (DN `OU`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Street and number (DN `street`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    /// Postal code (DN `postalCode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// Town or city (DN `L`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// State or region (DN `ST`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// ISO 3166-1 alpha-2 country code (DN `C`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// How a DN attribute is encoded: X.520 fixes PrintableString for
/// `serialNumber` and `C`; everything else is UTF8String.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnString {
    /// ASN.1 PrintableString.
    Printable,
    /// ASN.1 UTF8String.
    Utf8,
}

/// One DN attribute of the record: its OID content octets, encoding, upper
/// bound (X.520 `ub-*`) and the field's name in errors.
#[derive(Clone, Copy, Debug)]
pub struct DnAttribute {
    /// Attribute type OID, DER content octets.
    pub oid: &'static [u8],
    /// Short name as in OpenSSL configs (`serialNumber`, `O`, ...).
    pub short_name: &'static str,
    /// String type the profile encodes it with.
    pub string: DnString,
    /// Maximum length in characters.
    pub max_len: usize,
}

/// The record's attributes in the order the profile encodes them in the DN.
pub const DN_ATTRIBUTES: [DnAttribute; 8] = [
    attr(&[0x55, 0x04, 0x06], "C", DnString::Printable, 2),
    attr(&[0x55, 0x04, 0x08], "ST", DnString::Utf8, 128),
    attr(&[0x55, 0x04, 0x07], "L", DnString::Utf8, 128),
    attr(&[0x55, 0x04, 0x11], "postalCode", DnString::Utf8, 40),
    attr(&[0x55, 0x04, 0x09], "street", DnString::Utf8, 128),
    attr(&[0x55, 0x04, 0x0a], "O", DnString::Utf8, 64),
    attr(&[0x55, 0x04, 0x0b], "OU", DnString::Utf8, 64),
    attr(&[0x55, 0x04, 0x05], "serialNumber", DnString::Printable, 64),
];

const fn attr(
    oid: &'static [u8],
    short_name: &'static str,
    string: DnString,
    max_len: usize,
) -> DnAttribute {
    DnAttribute {
        oid,
        short_name,
        string,
        max_len,
    }
}

impl AuthorityRecord {
    /// The record's values paired with their DN attribute, in encoding order,
    /// skipping absent optional fields.
    pub fn dn_values(&self) -> impl Iterator<Item = (&'static DnAttribute, &str)> {
        let values = [
            self.country.as_deref(),
            self.state.as_deref(),
            self.locality.as_deref(),
            self.postal_code.as_deref(),
            self.street.as_deref(),
            Some(self.name.as_str()),
            self.unit.as_deref(),
            Some(self.id.as_str()),
        ];
        DN_ATTRIBUTES
            .iter()
            .zip(values)
            .filter_map(|(a, v)| v.map(|v| (a, v)))
    }

    /// Sets the field a DN attribute maps to; `false` if the OID is not part
    /// of the record.
    pub(crate) fn set_by_oid(&mut self, oid: &[u8], value: String) -> Result<bool, Error> {
        let slot = match DN_ATTRIBUTES.iter().position(|a| a.oid == oid) {
            Some(0) => &mut self.country,
            Some(1) => &mut self.state,
            Some(2) => &mut self.locality,
            Some(3) => &mut self.postal_code,
            Some(4) => &mut self.street,
            Some(5) => {
                return set_once(&mut self.name, value, "O");
            }
            Some(6) => &mut self.unit,
            Some(7) => {
                return set_once(&mut self.id, value, "serialNumber");
            }
            _ => return Ok(false),
        };
        if slot.is_some() {
            return Err(Error::AuthorityRecordInvalid(
                "an attribute appears twice in the subject".into(),
            ));
        }
        *slot = Some(value);
        Ok(true)
    }

    /// Checks the record against the profile: `id` and `name` present,
    /// every value within its X.520 bound, free of control characters,
    /// PrintableString fields within that alphabet, `country` two upper-case
    /// letters.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |why: String| Error::AuthorityRecordInvalid(why);
        if self.id.is_empty() {
            return Err(bad("authority ID (serialNumber) is missing".into()));
        }
        if self.name.is_empty() {
            return Err(bad("official name (O) is missing".into()));
        }
        for (attr, value) in self.dn_values() {
            let len = value.chars().count();
            if len == 0 || len > attr.max_len {
                return Err(bad(format!(
                    "{} must be 1 to {} characters",
                    attr.short_name, attr.max_len
                )));
            }
            if value.chars().any(char::is_control) || value.trim() != value {
                return Err(bad(format!(
                    "{} has control characters or surrounding spaces",
                    attr.short_name
                )));
            }
            if attr.string == DnString::Printable && !value.bytes().all(is_printable_string_char) {
                return Err(bad(format!(
                    "{} may only use the PrintableString alphabet (A-Z a-z 0-9 space '()+,-./:=?)",
                    attr.short_name
                )));
            }
        }
        if let Some(c) = &self.country {
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(bad(
                    "country must be an ISO 3166 alpha-2 code such as DE".into()
                ));
            }
        }
        Ok(())
    }
}

fn set_once(slot: &mut String, value: String, name: &str) -> Result<bool, Error> {
    if !slot.is_empty() {
        return Err(Error::AuthorityRecordInvalid(format!(
            "{name} appears twice in the subject"
        )));
    }
    *slot = value;
    Ok(true)
}

/// Whether a byte belongs to the ASN.1 PrintableString alphabet.
pub fn is_printable_string_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b)
}

/// The badge text a client shows: name, unit, street, postal code and town,
/// e.g. "Registration Office Berlin, Donaustraße 29, 12043 Berlin".
impl fmt::Display for AuthorityRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(unit) = &self.unit {
            write!(f, " ({unit})")?;
        }
        if let Some(street) = &self.street {
            write!(f, ", {street}")?;
        }
        match (&self.postal_code, &self.locality) {
            (Some(p), Some(l)) => write!(f, ", {p} {l}"),
            (Some(x), None) | (None, Some(x)) => write!(f, ", {x}"),
            (None, None) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn berlin() -> AuthorityRecord {
        AuthorityRecord {
            id: "DE-BE-11000000-BA-NK".into(),
            name: "Registration Office Berlin".into(),
            street: Some("Donaustraße 29".into()),
            postal_code: Some("12043".into()),
            locality: Some("Berlin".into()),
            country: Some("DE".into()),
            ..Default::default()
        }
    }

    #[test]
    fn badge_text() {
        assert_eq!(
            berlin().to_string(),
            "Registration Office Berlin, Donaustraße 29, 12043 Berlin"
        );
    }

    #[test]
    fn validation() {
        assert!(berlin().validate().is_ok());
        let mut r = berlin();
        r.country = Some("de".into());
        assert!(r.validate().is_err());
        let mut r = berlin();
        r.id = "ID with ü".into();
        assert!(r.validate().is_err());
        let mut r = berlin();
        r.name = "x".repeat(65);
        assert!(r.validate().is_err());
        let mut r = berlin();
        r.street = Some("line\nbreak".into());
        assert!(r.validate().is_err());
        let mut r = berlin();
        r.name.clear();
        assert!(r.validate().is_err());
    }
}

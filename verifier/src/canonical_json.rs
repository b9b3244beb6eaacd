//! Canonical JSON and the Matrix signing bytes (Matrix specification,
//! appendix "Canonical JSON" and "Signing JSON").
//!
//! Both signed formats of the verifier sign canonical JSON: Element's
//! `io.element.x509` master key signatures ([`crate::element_x509`]) and
//! govtrust's sealed documents and receipts ([`crate::sealed`]). This module
//! is the one implementation they share; each maps [`NotCanonical`] to its
//! own reject reason (`master_key_invalid`, `malformed`).
//!
//! The verifier computes the signed bytes itself from the object as
//! received, so that a caller cannot pass bytes that differ from the object
//! it then trusts. It does not use ruma (the api crate does): ruma would
//! pull a large dependency tree into a crate that must stay small and
//! wasm-buildable, and canonical JSON over a `serde_json::Value` is a few
//! lines (sorted keys, no insignificant whitespace, integers in
//! ±(2^53−1), no floats, serde_json's string escaping — which is the
//! spec's).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

/// Largest integer canonical JSON allows (2^53 − 1).
const CANONICAL_INT_MAX: i64 = (1 << 53) - 1;

/// Nesting bound for [`canonical_json`] (serde_json parses at most 128).
const MAX_DEPTH: usize = 128;

/// Why a value has no canonical JSON form: a float, an integer beyond
/// ±(2^53 − 1), or nesting deeper than serde_json parses. The text is the
/// detail callers put into their own reject reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotCanonical(String);

impl fmt::Display for NotCanonical {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotCanonical {}

/// Canonical JSON (Matrix specification, appendix "Canonical JSON") of a
/// value: object keys sorted by code point, no insignificant whitespace,
/// integers only, in ±(2^53 − 1), strings escaped as serde_json does
/// (`\"`, `\\`, the short escapes and `\u00xx` for other control
/// characters, everything else as UTF-8).
pub fn canonical_json(value: &Value) -> Result<String, NotCanonical> {
    let mut out = String::new();
    write_canonical(value, &mut out, 0)?;
    Ok(out)
}

/// The bytes the Matrix signing rules sign for `object`: the canonical JSON
/// of the object without `signatures` and `unsigned`.
pub fn signing_bytes(object: &Map<String, Value>) -> Result<Vec<u8>, NotCanonical> {
    let mut stripped = object.clone();
    stripped.remove("signatures");
    stripped.remove("unsigned");
    Ok(canonical_json(&Value::Object(stripped))?.into_bytes())
}

fn write_canonical(value: &Value, out: &mut String, depth: usize) -> Result<(), NotCanonical> {
    if depth > MAX_DEPTH {
        return Err(NotCanonical("JSON nested too deeply".into()));
    }
    let quote = |s: &str, out: &mut String| -> Result<(), NotCanonical> {
        let quoted = serde_json::to_string(s).map_err(|e| NotCanonical(format!("string: {e}")))?;
        out.push_str(&quoted);
        Ok(())
    };
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_i64() {
            Some(i) if (-CANONICAL_INT_MAX..=CANONICAL_INT_MAX).contains(&i) => {
                out.push_str(&i.to_string())
            }
            _ => {
                return Err(NotCanonical(format!(
                    "{n} is not an integer canonical JSON allows"
                )))
            }
        },
        Value::String(s) => quote(s, out)?,
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out, depth + 1)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sorting UTF-8 byte strings sorts by code point; sorted here
            // whatever order serde_json's map keeps.
            let sorted: BTreeMap<&str, &Value> = map.iter().map(|(k, v)| (k.as_str(), v)).collect();
            out.push('{');
            for (i, (key, item)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                quote(key, out)?;
                out.push(':');
                write_canonical(item, out, depth + 1)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_matches_the_specification_examples() {
        let cases = [
            ("{}", "{}"),
            (r#"{"one": 1, "two": "Two"}"#, r#"{"one":1,"two":"Two"}"#),
            (r#"{"b": "2", "a": "1"}"#, r#"{"a":"1","b":"2"}"#),
            (
                r#"{"auth":{"success":true,"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"medium":"email","address":"john.doe@example.org"},{"medium":"msisdn","address":"123456789"}]}}}"#,
                r#"{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}"#,
            ),
            (r#"{"a": "日本語"}"#, r#"{"a":"日本語"}"#),
            (r#"{"本": 2, "日": 1}"#, r#"{"日":1,"本":2}"#),
            (r#"{"a": "\u65E5"}"#, r#"{"a":"日"}"#),
            (r#"{"a": null}"#, r#"{"a":null}"#),
            (r#"{"a": "\u0001\n\"\\"}"#, r#"{"a":"\u0001\n\"\\"}"#),
        ];
        for (input, expected) in cases {
            let value: Value = serde_json::from_str(input).expect("test JSON");
            assert_eq!(canonical_json(&value).expect("canonical"), expected);
        }
    }

    #[test]
    fn canonical_json_refuses_floats_and_big_integers() {
        for input in ["[1.5]", "[9007199254740992]", "[-9007199254740992]"] {
            let value: Value = serde_json::from_str(input).expect("test JSON");
            assert!(canonical_json(&value).is_err(), "{input}");
        }
        let max: Value = serde_json::from_str("[9007199254740991]").expect("test JSON");
        assert_eq!(
            canonical_json(&max).expect("canonical"),
            "[9007199254740991]"
        );
    }

    #[test]
    fn canonical_json_refuses_deep_nesting() {
        let deep = (0..=MAX_DEPTH + 1).fold(Value::Null, |v, _| Value::Array(vec![v]));
        assert_eq!(
            canonical_json(&deep),
            Err(NotCanonical("JSON nested too deeply".into()))
        );
    }

    #[test]
    fn signing_bytes_drop_signatures_and_unsigned() {
        let object: Map<String, Value> =
            serde_json::from_str(r#"{"b":1,"signatures":{},"unsigned":{},"a":[]}"#)
                .expect("test JSON");
        assert_eq!(
            signing_bytes(&object).expect("canonical"),
            br#"{"a":[],"b":1}"#
        );
    }
}

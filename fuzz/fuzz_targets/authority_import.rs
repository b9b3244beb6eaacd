//! The file `govtrust authority import FILE` reads (an operator's export
//! from the official authority register, possibly tampered with on the
//! way), as JSON and as CSV, through the CLI's own parser and validation:
//! `govtrust_api::import::parse`.
//!
//! Properties besides "no panic": one result per row, numbered in order
//! (checked against an independent row count: the JSON array's length, and
//! for CSV without quotes the non-empty lines after the header); every
//! accepted row passes the registry API's validation
//! (`AuthorityInput::into_authority`) again unchanged and survives a JSON
//! export and re-import; CSV cells and list items come out trimmed and
//! non-empty; non-UTF-8 is refused as a whole.
#![no_main]

use govtrust_api::authority::{Authority, AuthorityInput, AuthorityStatus};
use govtrust_api::import::{parse, Format, RowError};
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;

fn input(a: &Authority) -> AuthorityInput {
    AuthorityInput {
        record: a.record.clone(),
        servers: a.servers.clone(),
        user_patterns: a.user_patterns.clone(),
        contact: a.contact.clone(),
    }
}

fn same_fields(a: &Authority, b: &Authority) {
    assert_eq!(a.record, b.record);
    assert_eq!(a.servers, b.servers);
    assert_eq!(a.user_patterns, b.user_patterns);
    assert_eq!(a.contact, b.contact);
}

fn trimmed_cell(value: &str) {
    assert!(!value.is_empty(), "an empty CSV cell became a value");
    assert_eq!(value.trim(), value, "a CSV cell was not trimmed");
}

fn accepted(a: &Authority, format: Format) {
    assert_eq!(a.status, AuthorityStatus::Active);
    assert!(!a.servers.is_empty() && !a.user_patterns.is_empty());
    // The service's validation, once more: it accepts the row unchanged.
    let again = input(a)
        .into_authority(AuthorityStatus::Active, 0, 0)
        .expect("an accepted row passes the registry validation");
    same_fields(a, &again);
    // Exported as JSON (the API's objects) and imported, it is the same row.
    let json = serde_json::to_vec(&[input(a)]).expect("serialises");
    let rows = parse(&json, Format::Json, 0).expect("an exported row re-imports");
    assert_eq!(rows.len(), 1);
    same_fields(a, rows[0].as_ref().expect("an exported row is accepted"));
    if format == Format::Csv {
        let r = &a.record;
        for value in [&r.id, &r.name]
            .into_iter()
            .chain(r.unit.iter())
            .chain(r.street.iter())
            .chain(r.postal_code.iter())
            .chain(r.locality.iter())
            .chain(r.state.iter())
            .chain(r.country.iter())
            .chain(a.contact.iter())
            .chain(a.servers.iter())
            .chain(a.user_patterns.iter())
        {
            trimmed_cell(value);
        }
    }
}

fn rejected(e: &RowError, index: usize) {
    assert_eq!(e.row, index + 1, "rows are numbered in order");
    assert!(!e.error.is_empty(), "a row error without a reason");
}

/// The number of rows, counted without the import's parser (None when the
/// count needs real CSV quoting rules).
fn expected_rows(text: &str, format: Format) -> Option<usize> {
    match format {
        Format::Json => serde_json::from_str::<Vec<IgnoredAny>>(text)
            .ok()
            .map(|v| v.len()),
        // Without quotes a record is a line; the reader skips empty lines
        // (terminators are \n, \r and \r\n) and the first one is the header.
        Format::Csv if !text.contains('"') => Some(
            text.split(['\n', '\r'])
                .filter(|line| !line.is_empty())
                .count()
                .saturating_sub(1),
        ),
        Format::Csv => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let text = std::str::from_utf8(data).ok();
    for format in [Format::Json, Format::Csv] {
        let Ok(rows) = parse(data, format, 0) else {
            continue;
        };
        let text = text.expect("a non-UTF-8 file is refused as a whole");
        let expected = expected_rows(text, format);
        if format == Format::Json {
            assert!(expected.is_some(), "a JSON import that is not an array");
        }
        if let Some(n) = expected {
            assert_eq!(rows.len(), n, "one result per row ({format:?})");
        }
        for (index, row) in rows.iter().enumerate() {
            match row {
                Ok(a) => accepted(a, format),
                Err(e) => rejected(e, index),
            }
        }
    }
});

//! The file that `govtrust authority import FILE` reads: parsing (JSON or
//! CSV) and validation of every row into an [`Authority`], with no I/O and
//! no database. The CLI (`govtrust authority import`) stores what this
//! returns; the fuzz target `authority_import` calls the same [`parse`].
//!
//! - **JSON:** an array of the objects the registry API takes
//!   ([`AuthorityInput`]).
//! - **CSV:** a header naming some of [`CSV_COLUMNS`] (unknown columns are
//!   refused), one authority per record; cells are trimmed, empty cells are
//!   absent, `servers` and `user_patterns` are `;`-separated lists.
//!
//! Whole-file problems (not UTF-8, not a JSON array, an unknown CSV column)
//! are an `Err` of [`parse`]; anything wrong with one row is that row's
//! [`RowError`], and the other rows still count.

use std::path::Path;

use govtrust_verifier::AuthorityRecord;
use serde::Serialize;

use crate::authority::{Authority, AuthorityInput, AuthorityStatus};
use crate::Error;

/// Results of whole-file checks.
type Result<T> = std::result::Result<T, Error>;

/// The columns a CSV file may have (in any order, any subset).
pub const CSV_COLUMNS: [&str; 11] = [
    "id",
    "name",
    "unit",
    "street",
    "postal_code",
    "locality",
    "state",
    "country",
    "servers",
    "user_patterns",
    "contact",
];

/// The format of an import file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// An array of [`AuthorityInput`] objects.
    Json,
    /// A header line and one authority per record.
    Csv,
}

impl Format {
    /// `json` or `csv` (any case).
    pub fn from_name(name: &str) -> Option<Format> {
        match name.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }

    /// The explicit `--format`, else the file's extension.
    pub fn detect(path: &Path, explicit: Option<&str>) -> Result<Format> {
        let name = explicit
            .map(str::to_owned)
            .or_else(|| path.extension().map(|e| e.to_string_lossy().into_owned()))
            .unwrap_or_default();
        Format::from_name(&name).ok_or_else(|| {
            Error::ImportFile(format!(
                "cannot tell the format of {} ({:?}); use --format json or csv",
                path.display(),
                name.to_ascii_lowercase()
            ))
        })
    }
}

/// Why one row was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// 1-based: the array element, or the CSV record after the header.
    pub row: usize,
    /// The authority ID, if the row got far enough to have one.
    pub id: Option<String>,
    /// What is wrong.
    pub error: String,
}

/// Parses and validates an import file: one result per row, in order.
///
/// An accepted row is the [`Authority`] that
/// [`AuthorityInput::into_authority`] (the registry API's validation)
/// made of it, as for a new authority: status active, created `now` (unix
/// ms). Storing it over an existing authority keeps that one's status and
/// creation time.
pub fn parse(
    bytes: &[u8],
    format: Format,
    now: i64,
) -> Result<Vec<std::result::Result<Authority, RowError>>> {
    let inputs = parse_inputs(bytes, format)?;
    Ok(inputs
        .into_iter()
        .enumerate()
        .map(|(index, input)| {
            let row = index + 1;
            let input = input.map_err(|error| RowError {
                row,
                id: None,
                error,
            })?;
            let id = input.record.id.clone();
            input
                .into_authority(AuthorityStatus::Active, now, now)
                .map_err(|e| RowError {
                    row,
                    id: Some(id),
                    error: e.to_string(),
                })
        })
        .collect())
}

/// One row as the API's input object, or why it is not one.
type RowResult = std::result::Result<AuthorityInput, String>;

/// The rows as the API's input objects, before validation.
fn parse_inputs(bytes: &[u8], format: Format) -> Result<Vec<RowResult>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| Error::ImportFile(format!("the file is not UTF-8: {e}")))?;
    match format {
        Format::Json => {
            let values: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|e| {
                Error::ImportFile(format!(
                    "the JSON file must be an array of authorities: {e}"
                ))
            })?;
            Ok(values
                .into_iter()
                .map(|v| serde_json::from_value::<AuthorityInput>(v).map_err(|e| e.to_string()))
                .collect())
        }
        Format::Csv => parse_csv(text),
    }
}

fn parse_csv(text: &str) -> Result<Vec<RowResult>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| Error::ImportFile(format!("CSV header: {e}")))?
        .clone();
    if let Some(unknown) = headers.iter().find(|h| !CSV_COLUMNS.contains(h)) {
        return Err(Error::ImportFile(format!(
            "unknown CSV column {unknown:?}; columns are {}",
            CSV_COLUMNS.join(",")
        )));
    }
    Ok(reader
        .records()
        .map(|record| {
            let record = record.map_err(|e| e.to_string())?;
            let get = |name: &str| {
                headers
                    .iter()
                    .position(|h| h == name)
                    .and_then(|i| record.get(i))
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
            };
            let list = |name: &str| {
                get(name)
                    .map(|v| {
                        v.split(';')
                            .map(|s| s.trim().to_owned())
                            .filter(|s| !s.is_empty())
                            .collect()
                    })
                    .unwrap_or_default()
            };
            Ok(AuthorityInput {
                record: AuthorityRecord {
                    id: get("id").unwrap_or_default(),
                    name: get("name").unwrap_or_default(),
                    unit: get("unit"),
                    street: get("street"),
                    postal_code: get("postal_code"),
                    locality: get("locality"),
                    state: get("state"),
                    country: get("country"),
                },
                servers: list("servers"),
                user_patterns: list("user_patterns"),
                contact: get("contact"),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "id,name,unit,street,postal_code,locality,state,country,servers,user_patterns,contact";

    fn ok(results: &[std::result::Result<Authority, RowError>]) -> Vec<&Authority> {
        results.iter().filter_map(|r| r.as_ref().ok()).collect()
    }

    #[test]
    fn csv_rows_are_parsed_trimmed_and_validated() {
        let text = format!(
            "{HEADER}\n\
             DE-HH-1, Bezirksamt Hamburg-Mitte ,,Caffamacherreihe 1-3,20355,Hamburg,Hamburg,DE, id.bund.example ; ,bot.hh;office.hh-*,\n\
             DE-BAD,,,,,,,,id.bund.example,office,\n\
             \n\
             too,few\n"
        );
        let rows = parse(text.as_bytes(), Format::Csv, 0).unwrap();
        assert_eq!(rows.len(), 3, "the empty line is no row");
        let a = rows[0].as_ref().unwrap();
        assert_eq!(a.record.name, "Bezirksamt Hamburg-Mitte");
        assert_eq!(a.record.unit, None);
        assert_eq!(a.servers, ["id.bund.example"]);
        assert_eq!(a.user_patterns, ["bot.hh", "office.hh-*"]);
        assert_eq!(a.contact, None);
        assert_eq!(a.status, AuthorityStatus::Active);
        let bad = rows[1].as_ref().unwrap_err();
        assert_eq!((bad.row, bad.id.as_deref()), (2, Some("DE-BAD")));
        assert!(bad.error.contains("official name"), "{}", bad.error);
        let short = rows[2].as_ref().unwrap_err();
        assert_eq!((short.row, short.id.as_deref()), (3, None));
    }

    #[test]
    fn csv_columns_may_be_a_subset_in_any_order_but_not_unknown() {
        let rows = parse(
            b"user_patterns,servers,name,id\noffice,id.bund.example,Amt,DE-1\n",
            Format::Csv,
            0,
        )
        .unwrap();
        assert_eq!(ok(&rows).len(), 1);
        let err = parse(b"id,name,colour\n", Format::Csv, 0).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn json_rows_are_the_api_objects() {
        let text = br#"[
            {"record": {"id": "DE-1", "name": "Amt"}, "servers": ["id.bund.example"], "user_patterns": ["office"]},
            {"record": {"id": "DE-2", "name": "Amt"}, "servers": [], "user_patterns": ["office"]},
            {"record": {"id": "DE-3", "name": "Amt"}, "servers": ["x"], "user_patterns": ["o"], "extra": 1},
            7
        ]"#;
        let rows = parse(text, Format::Json, 0).unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].as_ref().unwrap().record.id, "DE-1");
        assert_eq!(rows[1].as_ref().unwrap_err().id.as_deref(), Some("DE-2"));
        assert_eq!(rows[2].as_ref().unwrap_err().id, None);
        assert_eq!(rows[3].as_ref().unwrap_err().row, 4);
        assert!(parse(br#"{"record": {}}"#, Format::Json, 0).is_err());
    }

    #[test]
    fn whole_file_errors() {
        assert!(parse(b"\xff", Format::Csv, 0).is_err());
        assert!(parse(b"\xff", Format::Json, 0).is_err());
        assert_eq!(parse(b"", Format::Csv, 0).unwrap().len(), 0);
        assert!(parse(b"", Format::Json, 0).is_err());
    }

    #[test]
    fn format_from_flag_or_extension() {
        let p = Path::new("agencies.CSV");
        assert_eq!(Format::detect(p, None).unwrap(), Format::Csv);
        assert_eq!(Format::detect(p, Some("Json")).unwrap(), Format::Json);
        assert!(Format::detect(Path::new("agencies"), None).is_err());
        assert!(Format::detect(p, Some("xml")).is_err());
    }
}

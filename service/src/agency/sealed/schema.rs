//! The agency's JSON Schemas: documents naming a `$schema` must conform to
//! one the agency configured locally (nothing is fetched).

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use super::error::{io, SealError};

/// The agency's JSON Schemas (from a local directory, never fetched),
/// by `$id`.
#[derive(Debug, Default)]
pub struct SchemaStore {
    schemas: HashMap<String, Value>,
}

impl SchemaStore {
    /// Loads every `*.json` file of `dir` that has a string `$id`.
    pub fn load_dir(dir: &Path) -> Result<Self, SealError> {
        let mut schemas = HashMap::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            let schema: Value = serde_json::from_slice(&bytes).map_err(|e| SealError::Io {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            if let Some(id) = schema.get("$id").and_then(Value::as_str) {
                schemas.insert(id.to_owned(), schema);
            }
        }
        Ok(SchemaStore { schemas })
    }

    /// Validates `document` against the schema its `$schema` names.
    /// Returns the schema ID, or `None` when the document names none.
    /// A `$schema` the store does not hold is an error: the agency sends
    /// only documents of the schemas it configured.
    pub fn check(&self, document: &Value) -> Result<Option<String>, SealError> {
        let Some(id) = document.get("$schema").and_then(Value::as_str) else {
            return Ok(None);
        };
        let schema = self
            .schemas
            .get(id)
            .ok_or_else(|| SealError::UnknownSchema(id.to_owned()))?;
        let validator = jsonschema::validator_for(schema).map_err(|e| SealError::Schema {
            schema: id.to_owned(),
            errors: format!("the schema itself is invalid: {e}"),
        })?;
        let errors: Vec<String> = validator
            .iter_errors(document)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        if errors.is_empty() {
            Ok(Some(id.to_owned()))
        } else {
            Err(SealError::Schema {
                schema: id.to_owned(),
                errors: errors.join("; "),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store() -> SchemaStore {
        let mut store = SchemaStore::default();
        store.schemas.insert(
            "https://schema.fim.example/decision/1.0.json".into(),
            json!({
                "$id": "https://schema.fim.example/decision/1.0.json",
                "type": "object",
                "required": ["decision"],
                "properties": {"decision": {"enum": ["approved", "rejected"]}},
            }),
        );
        store
    }

    #[test]
    fn schema_check_accepts_refuses_and_skips() {
        let store = store();
        let id = "https://schema.fim.example/decision/1.0.json";
        assert_eq!(
            store
                .check(&json!({"$schema": id, "decision": "approved"}))
                .ok()
                .flatten()
                .as_deref(),
            Some(id)
        );
        assert!(matches!(
            store.check(&json!({"$schema": id, "decision": "maybe"})),
            Err(SealError::Schema { .. })
        ));
        assert!(matches!(
            store.check(&json!({"$schema": "https://other", "decision": "approved"})),
            Err(SealError::UnknownSchema(_))
        ));
        assert!(matches!(store.check(&json!({"decision": 1})), Ok(None)));
    }
}

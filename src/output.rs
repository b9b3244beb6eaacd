//! Human or JSON output, chosen once by `--json`.

use serde::Serialize;

/// How results are printed.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    /// Print JSON documents instead of human text.
    pub json: bool,
}

impl Output {
    /// Prints `value` as JSON, or the human rendering.
    pub fn emit<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
        let text = if self.json {
            match serde_json::to_string_pretty(value) {
                Ok(text) => text,
                Err(e) => {
                    eprintln!("error: cannot encode JSON output: {e}");
                    return;
                }
            }
        } else {
            human().trim_end().to_owned()
        };
        if !text.is_empty() {
            // A closed pipe (`govtrust … | head`) is not an error worth a panic.
            use std::io::Write;
            let _ = writeln!(std::io::stdout().lock(), "{text}");
        }
    }
}

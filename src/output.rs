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
        if self.json {
            match serde_json::to_string_pretty(value) {
                Ok(text) => println!("{text}"),
                Err(e) => eprintln!("error: cannot encode JSON output: {e}"),
            }
        } else {
            let text = human();
            if !text.is_empty() {
                println!("{}", text.trim_end());
            }
        }
    }
}

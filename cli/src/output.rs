//! The output layer: text or `--json`, and the one place text reaches the terminal. Every
//! line goes through [`escape`], so a manifest, bundle, repository or plugin cannot drive
//! the terminal (clear it, retitle it, forge a line) through plg. JSON is escaped by
//! serde_json.

use std::io::Write;

use plg_loader::untrusted::escape;
use serde::Serialize;

use crate::failure::Failure;

/// Where a command's results go.
pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Output { json }
    }

    /// `--json` was given: print [`json`](Self::json), not text.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// A line of text on stdout, escaped.
    pub fn line(&self, text: impl AsRef<str>) {
        println!("{}", escape(text.as_ref()));
    }

    /// A line on stderr, escaped: warnings and notes that are not the command's result.
    pub fn note(&self, text: impl AsRef<str>) {
        eprintln!("{}", escape(text.as_ref()));
    }

    /// `value` as pretty JSON on stdout.
    pub fn json(&self, value: &impl Serialize) -> Result<(), Failure> {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)?;
        Ok(())
    }

    /// The command's failure on stderr: `error: …` with its causes, or with `--json` a JSON
    /// object `{"error": "…", "exit_code": N}`.
    pub fn error(&self, failure: &Failure) {
        let message = format!("{:#}", failure.error);
        if self.json {
            let obj = serde_json::json!({ "error": message, "exit_code": failure.code });
            eprintln!("{obj}");
        } else {
            eprintln!("error: {}", escape(&message));
        }
    }
}

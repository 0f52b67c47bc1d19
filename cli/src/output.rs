//! The output layer: text or `--json`, and the one place text reaches the terminal. Every
//! line goes through [`escape`], so a manifest, bundle, repository or plugin cannot drive
//! the terminal (clear it, retitle it, forge a line) through plg. `--json` output is written
//! with [`Inert`], which escapes the same characters inside JSON strings.

use std::io::{self, Write};

use plg_loader::untrusted::{escape, needs_escape};
use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};

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
        // A closed pipe (`plg list | head -1`) ends the output, not the program.
        let _ = writeln!(io::stdout().lock(), "{}", escape(text.as_ref()));
    }

    /// A line on stderr, escaped: warnings and notes that are not the command's result.
    pub fn note(&self, text: impl AsRef<str>) {
        eprintln!("{}", escape(text.as_ref()));
    }

    /// `value` as pretty JSON on stdout.
    pub fn json(&self, value: &impl Serialize) -> Result<(), Failure> {
        let mut out = std::io::stdout().lock();
        write_json(&mut out, value, Inert(PrettyFormatter::new()))?;
        writeln!(out)?;
        Ok(())
    }

    /// The command's failure on stderr: `error: …` with its causes, or with `--json` a JSON
    /// object `{"error": "…", "exit_code": N}`.
    pub fn error(&self, failure: &Failure) {
        let message = format!("{:#}", failure.error);
        if self.json {
            let obj = serde_json::json!({ "error": message, "exit_code": failure.code });
            let mut err = std::io::stderr().lock();
            let _ = write_json(&mut err, &obj, Inert(CompactFormatter));
            let _ = writeln!(err);
        } else {
            eprintln!("error: {}", escape(&message));
        }
    }
}

fn write_json<W: Write, F: Formatter>(
    out: &mut W,
    value: &impl Serialize,
    formatter: F,
) -> serde_json::Result<()> {
    value.serialize(&mut serde_json::Serializer::with_formatter(out, formatter))
}

/// A serde_json formatter that also writes, as `\uXXXX` escapes, the characters serde_json
/// leaves raw but a terminal acts on: DEL, C1 controls (`\u009b` is a one-byte CSI), bidi
/// controls and the line and paragraph separators. The JSON means the same; printed raw, it
/// is inert.
struct Inert<F>(F);

macro_rules! forward {
    ($($method:ident $(($arg:ident: $ty:ty))?),* $(,)?) => {$(
        fn $method<W: ?Sized + Write>(&mut self, w: &mut W $(, $arg: $ty)?) -> io::Result<()> {
            self.0.$method(w $(, $arg)?)
        }
    )*};
}

impl<F: Formatter> Formatter for Inert<F> {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if needs_escape(c) {
                w.write_all(&fragment.as_bytes()[start..i])?;
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
                start = i + c.len_utf8();
            }
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    forward!(
        begin_array,
        end_array,
        begin_array_value(first: bool),
        end_array_value,
        begin_object,
        end_object,
        begin_object_key(first: bool),
        end_object_key,
        begin_object_value,
        end_object_value,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_what_a_terminal_would_act_on() {
        let value = serde_json::json!({ "k\u{9b}": ["a\u{7f}b\u{202e}c\u{2028}", "\u{1b}[2J"] });
        let mut out = Vec::new();
        write_json(&mut out, &value, Inert(PrettyFormatter::new())).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains(['\u{9b}', '\u{7f}', '\u{202e}', '\u{2028}', '\u{1b}']),
            "{text}"
        );
        assert!(
            text.contains("\\u009b") && text.contains("\\u202e"),
            "{text}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value, "the JSON means the same");
    }
}

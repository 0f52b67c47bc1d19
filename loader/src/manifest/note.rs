//! A plugin library's note: its plg ABI version, name and version, read from the library
//! *file* with the `object` crate, never by loading it. Listing and inspecting use it, so they
//! run no plugin code (a library's initializers run as soon as it is loaded). The full check
//! still happens at load.

use std::path::Path;

use object::{Object, ObjectSection, ObjectSymbol};

/// What a library's note says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginNote {
    /// The plg ABI version it was built for.
    pub abi_version: u32,
    /// The crate name it embeds.
    pub name: String,
    /// The crate version it embeds.
    pub version: String,
}

/// Why a library's note could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteError {
    /// The file is not an object file this platform loads (ELF or Mach-O).
    NotAnObject(String),
    /// The library exports neither a note nor a plg declaration: it is not a plg plugin.
    NotAPlugin,
    /// The library exports a plg declaration but no note: it was built with a plg-api from
    /// before notes, and only loading it can check it.
    Missing,
    /// The note is there but is not `plg-note-v1` text.
    Malformed(String),
}

impl std::fmt::Display for NoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoteError::NotAnObject(e) => write!(f, "not a shared object ({e})"),
            NoteError::NotAPlugin => write!(
                f,
                "it exports no `{}`; a plugin crate must invoke `plg_api::export_plugin!`",
                plg_api::DECLARATION_SYMBOL
            ),
            NoteError::Missing => f.write_str("it has no plg note (`PLG_PLUGIN_NOTE`)"),
            NoteError::Malformed(e) => write!(f, "its plg note is malformed ({e})"),
        }
    }
}

/// The largest note plg reads; a real one is under 200 bytes.
const MAX_NOTE: u64 = 4096;

/// Reads the note of the library file `path`: only the headers, symbol tables and the note's
/// bytes are read (on demand), never the whole file. Runs nothing.
pub fn read_note(path: &Path) -> Result<PluginNote, NoteError> {
    let file = std::fs::File::open(path).map_err(|e| NoteError::NotAnObject(e.to_string()))?;
    let reader = super::positional::Positional::new(&file)
        .map_err(|e| NoteError::NotAnObject(e.to_string()))?;
    parse_note(&object::ReadCache::new(reader))
}

/// Reads the note of a library held in memory (or behind any `object` reader).
pub fn parse_note<'data, R: object::ReadRef<'data>>(data: R) -> Result<PluginNote, NoteError> {
    let file = object::File::parse(data).map_err(|e| NoteError::NotAnObject(e.to_string()))?;
    let find = |wanted: &str| {
        file.dynamic_symbols().chain(file.symbols()).find(|s| {
            s.is_definition()
                && matches!(s.name(), Ok(n) if n == wanted || n.strip_prefix('_') == Some(wanted))
        })
    };
    let Some(symbol) = find(plg_api::NOTE_SYMBOL) else {
        return Err(match find(plg_api::DECLARATION_SYMBOL) {
            Some(_) => NoteError::Missing,
            None => NoteError::NotAPlugin,
        });
    };
    let size = symbol.size();
    if size == 0 || size > MAX_NOTE {
        return Err(NoteError::Malformed(format!("{size} bytes")));
    }
    let section = symbol
        .section_index()
        .and_then(|i| file.section_by_index(i).ok())
        .ok_or_else(|| NoteError::Malformed("not in a section".into()))?;
    let bytes = section
        .data_range(symbol.address(), size)
        .ok()
        .flatten()
        .ok_or_else(|| NoteError::Malformed("outside its section's data".into()))?;
    parse_text(bytes)
}

fn parse_text(bytes: &[u8]) -> Result<PluginNote, NoteError> {
    let bad = |m: &str| NoteError::Malformed(m.to_owned());
    let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
    let mut lines = text.lines();
    if lines.next() != Some("plg-note-v1") {
        return Err(bad("does not start with `plg-note-v1`"));
    }
    let (mut abi, mut name, mut version) = (None, None, None);
    for line in lines {
        match line.split_once('=') {
            Some(("abi", v)) => abi = v.parse::<u32>().ok(),
            Some(("name", v)) => name = Some(v.to_owned()),
            Some(("version", v)) => version = Some(v.to_owned()),
            _ => {} // keys from later versions
        }
    }
    Ok(PluginNote {
        abi_version: abi.ok_or_else(|| bad("no `abi=`"))?,
        name: name.ok_or_else(|| bad("no `name=`"))?,
        version: version.ok_or_else(|| bad("no `version=`"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_text_parses_and_ignores_unknown_keys() {
        let n = parse_text(b"plg-note-v1\nabi=1\nname=hello\nversion=1.2.0\nlater=x\n").unwrap();
        assert_eq!(
            n,
            PluginNote {
                abi_version: 1,
                name: "hello".into(),
                version: "1.2.0".into()
            }
        );
        assert!(matches!(parse_text(b"nope"), Err(NoteError::Malformed(_))));
        assert!(matches!(
            parse_text(b"plg-note-v1\nabi=1\n"),
            Err(NoteError::Malformed(_))
        ));
    }

    #[test]
    fn a_text_file_is_not_an_object() {
        assert!(matches!(
            parse_note(&b"hello"[..]),
            Err(NoteError::NotAnObject(_))
        ));
    }
}

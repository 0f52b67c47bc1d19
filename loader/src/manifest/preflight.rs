//! The unload-safety preflight: whether a library's image can be unmapped at all once it is
//! loaded, read from the library *file* (its ELF dynamic section and dynamic symbols) with
//! the `object` crate, without loading it. glibc never unmaps a library that is marked
//! `DF_1_NODELETE` or defines an `STB_GNU_UNIQUE` symbol, and keeps one mapped while it has
//! thread-local destructors registered (`__cxa_thread_atexit_impl`, or C++'s
//! `__cxa_thread_atexit`).
//!
//! The last obstacle depends on what the code does at run time, not on the file: every Rust
//! `cdylib` imports `__cxa_thread_atexit_impl` (std's thread-local support), whether or not
//! it ever registers a destructor. So the verdict is three-valued: [`Unmappable::No`] is
//! certain, [`Unmappable::Yes`] is certain, and [`Unmappable::Depends`] means "only the
//! verified unload can tell": a plugin that keeps a `Drop` type in a `thread_local!` stays
//! mapped, one that does not is unmapped.

use std::{fs::File, path::Path};

use object::{
    elf,
    read::elf::{Dyn as _, FileHeader, SectionHeader as _, SectionTable, Sym as _},
    read::StringTable,
};

use super::{note::NoteError, positional::Positional};

/// Whether a library can be unmapped once loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmappable {
    /// Nothing in the file keeps it mapped.
    Yes,
    /// It may register thread-local destructors (`__cxa_thread_atexit_impl` is imported):
    /// it is unmapped only if, at unload, none is registered. Only the verified unload tells.
    Depends,
    /// It can never be unmapped, for these reasons.
    No(Vec<String>),
    /// The file is not ELF (Mach-O, say): no prediction is made.
    Unknown,
}

impl std::fmt::Display for Unmappable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unmappable::Yes => f.write_str("unloadable"),
            Unmappable::Depends => {
                f.write_str("unloadable unless it leaves thread-local destructors registered")
            }
            Unmappable::No(why) => write!(f, "never unmapped: {}", why.join("; ")),
            Unmappable::Unknown => f.write_str("not predicted (not ELF)"),
        }
    }
}

/// The imports that register a thread-local destructor with glibc: its own, and the C++
/// runtime's wrapper of it.
const TLS_DTOR_IMPORTS: [&str; 2] = ["__cxa_thread_atexit_impl", "__cxa_thread_atexit"];

/// Predicts whether the library file at `path` can be unmapped. Reads headers, the dynamic
/// section and the dynamic symbols on demand; runs nothing.
pub fn preflight(path: &Path) -> Result<Unmappable, NoteError> {
    let file = File::open(path).map_err(|e| NoteError::NotAnObject(e.to_string()))?;
    let reader = Positional::new(&file).map_err(|e| NoteError::NotAnObject(e.to_string()))?;
    preflight_data(&object::ReadCache::new(reader))
}

/// [`preflight`] for a library held in memory (or behind any `object` reader).
pub fn preflight_data<'data, R: object::ReadRef<'data>>(data: R) -> Result<Unmappable, NoteError> {
    let kind = object::FileKind::parse(data).map_err(|e| NoteError::NotAnObject(e.to_string()))?;
    let verdict = match kind {
        object::FileKind::Elf64 => obstacles::<elf::FileHeader64<object::Endianness>, _>(data),
        object::FileKind::Elf32 => obstacles::<elf::FileHeader32<object::Endianness>, _>(data),
        _ => return Ok(Unmappable::Unknown),
    };
    let (nodelete, unique, tls_dtors) =
        verdict.map_err(|e| NoteError::NotAnObject(e.to_string()))?;
    let mut reasons = Vec::new();
    if nodelete {
        reasons.push("it is marked DF_1_NODELETE (linked with -z nodelete)".to_owned());
    }
    reasons.extend(
        unique
            .into_iter()
            .map(|name| format!("it defines the STB_GNU_UNIQUE symbol `{name}`")),
    );
    Ok(if !reasons.is_empty() {
        Unmappable::No(reasons)
    } else if tls_dtors {
        Unmappable::Depends
    } else {
        Unmappable::Yes
    })
}

/// What keeps an ELF file mapped: `DF_1_NODELETE`, its `STB_GNU_UNIQUE` definitions, and
/// whether it imports a thread-local destructor registration. The dynamic symbols and their
/// string table are each read in one piece (through a `ReadCache`, reading names one by one
/// costs a system call per symbol).
fn obstacles<'data, H: FileHeader<Endian = object::Endianness>, R: object::ReadRef<'data>>(
    data: R,
) -> object::Result<(bool, Vec<String>, bool)> {
    let header = H::parse(data)?;
    let endian = header.endian()?;
    let sections = header.sections(endian, data)?;
    let nodelete =
        flags_1(&sections, endian, data).is_some_and(|f| f & u64::from(elf::DF_1_NODELETE) != 0);
    let table = sections.symbols(endian, data, elf::SHT_DYNSYM)?;
    let mut unique = Vec::new();
    let mut tls_dtors = false;
    if table.is_empty() {
        return Ok((nodelete, unique, tls_dtors));
    }
    let strings = sections
        .section(table.string_section())?
        .data(endian, data)?;
    let strings = StringTable::new(strings, 0, strings.len() as u64);
    for sym in table.symbols() {
        let Ok(name) = sym.name(endian, strings) else {
            continue;
        };
        if sym.is_undefined(endian) {
            tls_dtors |= TLS_DTOR_IMPORTS.iter().any(|i| i.as_bytes() == name);
        } else if sym.st_bind() == elf::STB_GNU_UNIQUE {
            unique.push(String::from_utf8_lossy(name).into_owned());
        }
    }
    Ok((nodelete, unique, tls_dtors))
}

/// The file checks a load makes before the dynamic loader sees the library, reading the
/// file once: `Err(reason)` if it is an ELF file shorter than its own headers say (a
/// library still being written, by a build or a copy, or cut short: the dynamic loader would
/// map pages past its end, and the first touch of one kills the process with `SIGBUS`);
/// otherwise the [`preflight`] verdict ([`Unmappable::Unknown`] for a file `object` cannot
/// parse, whose opening then reports what is wrong).
pub fn check_before_load(file: &File) -> Result<Unmappable, String> {
    let Ok(reader) = Positional::new(file) else {
        return Ok(Unmappable::Unknown);
    };
    let cache = object::ReadCache::new(reader);
    if let Some(reason) = truncation(&cache) {
        return Err(reason);
    }
    Ok(preflight_data(&cache).unwrap_or(Unmappable::Unknown))
}

fn truncation<'data, R: object::ReadRef<'data>>(data: R) -> Option<String> {
    let elf_magic = data.read_bytes_at(0, 4).ok() == Some(&elf::ELFMAG[..]);
    let Ok(kind) = object::FileKind::parse(data) else {
        return elf_magic.then(|| "its ELF header is cut short or corrupt".to_owned());
    };
    match kind {
        object::FileKind::Elf64 => short_of::<elf::FileHeader64<object::Endianness>, _>(data),
        object::FileKind::Elf32 => short_of::<elf::FileHeader32<object::Endianness>, _>(data),
        _ => None,
    }
}

fn short_of<'data, H: FileHeader<Endian = object::Endianness>, R: object::ReadRef<'data>>(
    data: R,
) -> Option<String> {
    use object::read::elf::ProgramHeader as _;
    let len = data.len().ok()?;
    let Ok(header) = H::parse(data) else {
        return Some(format!("its ELF header is cut short ({len} bytes)"));
    };
    let endian = header.endian().ok()?;
    let sections_end = header.e_shoff(endian).into().saturating_add(
        u64::from(header.e_shnum(endian)).saturating_mul(u64::from(header.e_shentsize(endian))),
    );
    let mut end = sections_end;
    match header.program_headers(endian, data) {
        Ok(segments) => {
            for segment in segments {
                let seg_end = segment
                    .p_offset(endian)
                    .into()
                    .saturating_add(segment.p_filesz(endian).into());
                end = end.max(seg_end);
            }
        }
        Err(_) => end = end.max(len.saturating_add(1)),
    }
    (end > len).then(|| {
        format!(
            "truncated: its headers describe {end} bytes but the file has {len} (still being \
             written? wait until the build or copy finishes)"
        )
    })
}

/// The `DT_FLAGS_1` value of an ELF file's dynamic section, if it has one.
fn flags_1<'data, H: FileHeader, R: object::ReadRef<'data>>(
    sections: &SectionTable<'data, H, R>,
    endian: H::Endian,
    data: R,
) -> Option<u64> {
    let (dynamic, _) = sections.dynamic(endian, data).ok()??;
    dynamic
        .iter()
        .find_map(|d| (d.tag32(endian) == Some(elf::DT_FLAGS_1)).then(|| d.d_val(endian).into()))
}

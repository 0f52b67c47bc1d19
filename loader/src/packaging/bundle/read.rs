//! Reading a `.plg`: stream it through the gzip decoder under caps, refuse hostile entries,
//! check the checksums, the manifest and the signature; and unpacking it, streaming each file
//! to disk while hashing it again. Memory stays small whatever the bundle's size: only the
//! manifest, checksums and signature entries (at most 1 MiB each) are held.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    io::{self, BufRead, Read, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    signature::verify_signature, Bundle, BundleError, Entry, Limits, CHECKSUMS_FILE, SIGNATURE_FILE,
};
use crate::{
    error::{IoError, ManifestError},
    manifest::{Manifest, Source as ManifestSource, MANIFEST_FILE},
};

/// The largest manifest, checksums or signature entry read into memory.
const MAX_META_ENTRY: u64 = 1 << 20;

/// Where a bundle's bytes are, so they can be streamed again to unpack.
#[derive(Debug, Clone)]
pub(super) enum Source {
    File(PathBuf),
    Bytes(Arc<[u8]>),
}

impl Source {
    fn open(&self) -> io::Result<Box<dyn BufRead + '_>> {
        Ok(match self {
            Source::File(p) => Box::new(io::BufReader::with_capacity(
                64 << 10,
                std::fs::File::open(p)?,
            )),
            Source::Bytes(b) => Box::new(&b[..]),
        })
    }
}

/// Counts decompressed bytes and fails past `limit`.
struct Capped<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::other(CapExceeded));
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct CapExceeded;

impl fmt::Display for CapExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("decompressed size limit exceeded")
    }
}

impl std::error::Error for CapExceeded {}

/// Copies `from` to `to`, returning the size and SHA-256 (lowercase hex) of what passed.
fn copy_hashing(from: &mut dyn Read, to: &mut dyn Write) -> io::Result<(u64, String)> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 << 10];
    let mut size = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        ctx.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        size += n as u64;
    }
    Ok((size, hex::encode(ctx.finish())))
}

/// Turns a read error while decompressing into the bundle error it means.
type Classify<'a> = &'a dyn Fn(io::Error) -> BundleError;

/// Streams the archive in `source` entry by entry, refusing hostile structure (names, types,
/// duplicates, counts, sizes, trailing bytes) before `visit` sees an entry.
fn walk(
    source: &Source,
    path: &Path,
    limits: &Limits,
    compressed_size: u64,
    mut visit: impl FnMut(&str, &mut dyn Read, Classify<'_>) -> Result<(), BundleError>,
) -> Result<(), BundleError> {
    let by_ratio = compressed_size
        .saturating_mul(limits.max_ratio)
        .max(1 << 20);
    let (limit, why) = if by_ratio < limits.max_unpacked {
        (by_ratio, "its ratio to the compressed size")
    } else {
        (limits.max_unpacked, "the absolute cap")
    };
    let classify = |e: io::Error| {
        if e.get_ref().is_some_and(|inner| inner.is::<CapExceeded>()) {
            BundleError::TooLarge {
                path: path.to_owned(),
                limit,
                why,
            }
        } else {
            BundleError::Corrupt {
                path: path.to_owned(),
                message: e.to_string(),
            }
        }
    };
    let input = source.open().map_err(IoError::at::<BundleError>(path))?;
    let reader = Capped {
        inner: flate2::bufread::GzDecoder::new(input),
        read: 0,
        limit,
    };
    let mut archive = tar::Archive::new(reader);
    let mut seen = BTreeSet::new();
    for entry in archive.entries().map_err(classify)? {
        let mut entry = entry.map_err(classify)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        check_name(&name, path)?;
        let path = path.to_owned();
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                return Err(BundleError::Link { path, entry: name })
            }
            tar::EntryType::Directory => return Err(BundleError::NotFlat { path, entry: name }),
            other => {
                return Err(BundleError::SpecialFile {
                    path,
                    entry: name,
                    kind: format!("{other:?}"),
                })
            }
        }
        if seen.contains(&name) {
            return Err(BundleError::Duplicate { path, entry: name });
        }
        if seen.len() >= limits.max_entries {
            return Err(BundleError::TooLarge {
                path,
                limit: limits.max_entries as u64,
                why: "the entry count",
            });
        }
        visit(&name, &mut entry, &classify)?;
        seen.insert(name);
    }
    // Drain the rest of the stream, so a truncated or corrupt trailer is noticed too, and
    // refuse bytes after the gzip stream (they would be covered by no checksum).
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(classify)?;
    let mut input = rest.inner.into_inner();
    let trailing = input
        .fill_buf()
        .map_err(IoError::at::<BundleError>(path))?
        .len();
    if trailing > 0 {
        return Err(BundleError::Corrupt {
            path: path.to_owned(),
            message: "bytes follow the gzip stream".into(),
        });
    }
    Ok(())
}

impl Bundle {
    /// Reads and checks the bundle at `path`, streaming it.
    pub fn read(path: &Path, limits: &Limits) -> Result<Self, BundleError> {
        let meta = std::fs::metadata(path).map_err(IoError::at::<BundleError>(path))?;
        // The compressed file is capped too.
        if meta.len() > limits.max_unpacked {
            return Err(BundleError::TooLarge {
                path: path.to_owned(),
                limit: limits.max_unpacked,
                why: "the absolute cap (compressed file)",
            });
        }
        Self::check(Source::File(path.to_owned()), path, meta.len(), limits)
    }

    /// Reads and checks a bundle held in memory; `path` is used in error messages.
    pub fn from_bytes(bytes: &[u8], path: &Path, limits: &Limits) -> Result<Self, BundleError> {
        Self::check(
            Source::Bytes(bytes.into()),
            path,
            bytes.len() as u64,
            limits,
        )
    }

    fn check(
        source: Source,
        path: &Path,
        compressed_size: u64,
        limits: &Limits,
    ) -> Result<Self, BundleError> {
        let mut hashed: BTreeMap<String, (u64, String)> = BTreeMap::new();
        let mut kept: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        walk(
            &source,
            path,
            limits,
            compressed_size,
            |name, reader, classify| {
                if [MANIFEST_FILE, CHECKSUMS_FILE, SIGNATURE_FILE].contains(&name) {
                    let mut data = Vec::new();
                    let mut capped = reader.take(MAX_META_ENTRY + 1);
                    let (size, sha) = copy_hashing(&mut capped, &mut data).map_err(classify)?;
                    if size > MAX_META_ENTRY {
                        return Err(BundleError::TooLarge {
                            path: path.to_owned(),
                            limit: MAX_META_ENTRY,
                            why: "a manifest, checksums or signature entry",
                        });
                    }
                    hashed.insert(name.to_owned(), (size, sha));
                    kept.insert(name.to_owned(), data);
                } else {
                    let found = copy_hashing(reader, &mut io::sink()).map_err(classify)?;
                    hashed.insert(name.to_owned(), found);
                }
                Ok(())
            },
        )?;
        let bundle = Self::verify(source, path.to_owned(), compressed_size, hashed, kept)?;
        Ok(Bundle {
            limits: *limits,
            ..bundle
        })
    }

    /// Checks what [`check`](Self::check) streamed: the checksums list exactly the other
    /// entries and match, the manifest is valid and names the library, a signature verifies.
    fn verify(
        source: Source,
        path: PathBuf,
        compressed_size: u64,
        mut files: BTreeMap<String, (u64, String)>,
        mut kept: BTreeMap<String, Vec<u8>>,
    ) -> Result<Self, BundleError> {
        files.remove(CHECKSUMS_FILE);
        files.remove(SIGNATURE_FILE);
        let checksums = kept
            .remove(CHECKSUMS_FILE)
            .ok_or_else(|| BundleError::Missing {
                path: path.clone(),
                entry: CHECKSUMS_FILE.into(),
            })?;
        let signature_text = kept.remove(SIGNATURE_FILE);
        let listed = parse_checksums(&checksums, &path)?;
        for (name, expected) in &listed {
            let (_, found) = files.get(name).ok_or_else(|| BundleError::BadChecksums {
                path: path.clone(),
                problem: format!("lists `{name}`, which is not in the bundle"),
            })?;
            if found != expected {
                return Err(BundleError::ChecksumMismatch {
                    path,
                    entry: name.clone(),
                    expected: expected.clone(),
                    found: found.clone(),
                });
            }
        }
        if let Some(extra) = files.keys().find(|k| !listed.contains_key(*k)) {
            return Err(BundleError::BadChecksums {
                path: path.clone(),
                problem: format!("does not list `{extra}`"),
            });
        }
        let manifest_bytes = kept
            .get(MANIFEST_FILE)
            .ok_or_else(|| BundleError::Missing {
                path: path.clone(),
                entry: MANIFEST_FILE.into(),
            })?;
        let manifest_text =
            std::str::from_utf8(manifest_bytes).map_err(|_| ManifestError::Invalid {
                path: path.join(MANIFEST_FILE),
                field: "(top level)".into(),
                problem: "is not UTF-8".into(),
            })?;
        let manifest = Manifest::from_json(manifest_text, path.join(MANIFEST_FILE))?;
        let library = match &manifest.source {
            ManifestSource::LocalSo { path: lib } => {
                let name = lib.to_string_lossy().into_owned();
                if name == MANIFEST_FILE
                    || !files.contains_key(&name)
                    || lib.components().count() != 1
                {
                    return Err(BundleError::SourceOutsideBundle {
                        path,
                        source_path: name,
                    });
                }
                name
            }
            ManifestSource::RemoteGit { url, .. } => {
                return Err(BundleError::SourceOutsideBundle {
                    path,
                    source_path: url.clone(),
                })
            }
        };
        let signature = match signature_text {
            None => None,
            Some(text) => Some(verify_signature(&text, &checksums, &path)?),
        };
        let entries = files
            .into_iter()
            .map(|(name, (size, sha256))| Entry { name, size, sha256 })
            .collect();
        Ok(Bundle {
            path,
            source,
            manifest,
            entries,
            library,
            signature,
            compressed_size,
            limits: Limits::default(),
        })
    }

    /// Unpacks the files into `dir` (which must exist and be empty), creating each new and
    /// streaming it from the archive while hashing it again: if the bundle changed since it
    /// was read, the mismatch is refused (`ChecksumMismatch`).
    pub fn write_files(&self, dir: &Path) -> Result<(), BundleError> {
        let mut written = 0;
        walk(
            &self.source,
            &self.path,
            &self.limits,
            self.compressed_size,
            |name, reader, classify| {
                let Some(entry) = self.entries.iter().find(|e| e.name == name) else {
                    return if name == CHECKSUMS_FILE || name == SIGNATURE_FILE {
                        Ok(())
                    } else {
                        Err(BundleError::BadChecksums {
                            path: self.path.clone(),
                            problem: format!("`{name}` appeared since the bundle was read"),
                        })
                    };
                };
                let target = dir.join(name);
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(IoError::at::<BundleError>(&target))?;
                let mut out = io::BufWriter::new(file);
                let mut counted = CountingReader(reader, Ok(()));
                let copied = copy_hashing(&mut counted, &mut out);
                if let Err(e) = counted.1 {
                    return Err(classify(e));
                }
                let (_, found) = copied.map_err(IoError::at::<BundleError>(&target))?;
                out.flush().map_err(IoError::at::<BundleError>(&target))?;
                if found != entry.sha256 {
                    return Err(BundleError::ChecksumMismatch {
                        path: self.path.clone(),
                        entry: name.to_owned(),
                        expected: entry.sha256.clone(),
                        found,
                    });
                }
                written += 1;
                Ok(())
            },
        )?;
        if written != self.entries.len() {
            return Err(BundleError::BadChecksums {
                path: self.path.clone(),
                problem: "entries vanished since the bundle was read".into(),
            });
        }
        Ok(())
    }
}

/// Passes reads through, but keeps a read error aside so it is told apart from a write
/// error (a decompression problem is the bundle's fault; a write problem is the disk's).
struct CountingReader<'a>(&'a mut dyn Read, io::Result<()>);

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf) {
            Ok(n) => Ok(n),
            Err(e) => {
                let kind = e.kind();
                self.1 = Err(e);
                Err(io::Error::from(kind))
            }
        }
    }
}

/// Entry names are plain file names: no `..`, not absolute, no directories.
pub(super) fn check_name(name: &str, path: &Path) -> Result<(), BundleError> {
    let entry = name.to_owned();
    if name.starts_with('/') || name.starts_with('\\') || name.get(1..2) == Some(":") {
        return Err(BundleError::AbsolutePath {
            path: path.to_owned(),
            entry,
        });
    }
    if name.split(['/', '\\']).any(|part| part == "..") {
        return Err(BundleError::PathTraversal {
            path: path.to_owned(),
            entry,
        });
    }
    if name.is_empty() || name == "." || name.contains(['/', '\\']) {
        return Err(BundleError::NotFlat {
            path: path.to_owned(),
            entry,
        });
    }
    // No control characters (terminal spoofing in `plg inspect`), no `:` (NTFS streams).
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
    {
        return Err(BundleError::BadName {
            path: path.to_owned(),
            entry,
        });
    }
    Ok(())
}

fn parse_checksums(text: &[u8], path: &Path) -> Result<BTreeMap<String, String>, BundleError> {
    let bad = |problem: String| BundleError::BadChecksums {
        path: path.to_owned(),
        problem,
    };
    let text = std::str::from_utf8(text).map_err(|_| bad("is not UTF-8".into()))?;
    let mut map = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let (hash, name) = line
            .split_once("  ")
            .ok_or_else(|| bad(format!("line {}: expected `<sha256>  <name>`", i + 1)))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(format!("line {}: `{hash}` is not a SHA-256", i + 1)));
        }
        if map
            .insert(name.to_owned(), hash.to_ascii_lowercase())
            .is_some()
        {
            return Err(bad(format!("lists `{name}` twice")));
        }
    }
    Ok(map)
}

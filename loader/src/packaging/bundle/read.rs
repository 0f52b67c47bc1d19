//! Reading a `.plg`: decompress under caps, refuse hostile entries, check the checksums,
//! the manifest and the signature.

use std::{
    collections::BTreeMap,
    fmt,
    io::{self, Read},
    path::{Path, PathBuf},
};

use super::{
    sha256_hex, signature::verify_signature, Bundle, BundleError, Entry, Limits, CHECKSUMS_FILE,
    SIGNATURE_FILE,
};
use crate::{
    error::{IoError, ManifestError},
    manifest::{Manifest, Source, MANIFEST_FILE},
};

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

impl Bundle {
    /// Reads and checks the bundle at `path`.
    pub fn read(path: &Path, limits: &Limits) -> Result<Self, BundleError> {
        let io = IoError::at::<BundleError>;
        // The compressed file is capped too: never read more than the unpacked cap.
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .map_err(io(path))?
            .take(limits.max_unpacked + 1)
            .read_to_end(&mut bytes)
            .map_err(io(path))?;
        if bytes.len() as u64 > limits.max_unpacked {
            return Err(BundleError::TooLarge {
                path: path.to_owned(),
                limit: limits.max_unpacked,
                why: "the absolute cap (compressed file)",
            });
        }
        Self::from_bytes(&bytes, path, limits)
    }

    /// Reads and checks a bundle held in memory; `path` is used in error messages.
    pub fn from_bytes(bytes: &[u8], path: &Path, limits: &Limits) -> Result<Self, BundleError> {
        let path = path.to_owned();
        let compressed_size = bytes.len() as u64;
        let by_ratio = compressed_size
            .saturating_mul(limits.max_ratio)
            .max(1 << 20);
        let (limit, why) = if by_ratio < limits.max_unpacked {
            (by_ratio, "its ratio to the compressed size")
        } else {
            (limits.max_unpacked, "the absolute cap")
        };
        let reader = Capped {
            inner: flate2::bufread::GzDecoder::new(bytes),
            read: 0,
            limit,
        };
        let mut archive = tar::Archive::new(reader);
        let io_err = |e: io::Error, path: &Path| {
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
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for entry in archive.entries().map_err(|e| io_err(e, &path))? {
            let mut entry = entry.map_err(|e| io_err(e, &path))?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            check_name(&name, &path)?;
            let kind = entry.header().entry_type();
            match kind {
                tar::EntryType::Regular | tar::EntryType::Continuous => {}
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    return Err(BundleError::Link { path, entry: name })
                }
                tar::EntryType::Directory => {
                    return Err(BundleError::NotFlat { path, entry: name })
                }
                other => {
                    return Err(BundleError::SpecialFile {
                        path,
                        entry: name,
                        kind: format!("{other:?}"),
                    })
                }
            }
            if files.contains_key(&name) {
                return Err(BundleError::Duplicate { path, entry: name });
            }
            if files.len() >= limits.max_entries {
                return Err(BundleError::TooLarge {
                    path,
                    limit: limits.max_entries as u64,
                    why: "the entry count",
                });
            }
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(|e| io_err(e, &path))?;
            files.insert(name, data);
        }
        // Drain the rest of the stream, so a truncated or corrupt trailer is noticed too, and
        // refuse bytes after the gzip stream (they would be covered by no checksum).
        let mut rest = archive.into_inner();
        io::copy(&mut rest, &mut io::sink()).map_err(|e| io_err(e, &path))?;
        let decoder = rest.inner;
        let trailing = decoder.get_ref().len();
        if trailing > 0 {
            return Err(BundleError::Corrupt {
                path,
                message: format!("{trailing} bytes follow the gzip stream"),
            });
        }
        Self::from_files(files, path, compressed_size)
    }

    fn from_files(
        mut files: BTreeMap<String, Vec<u8>>,
        path: PathBuf,
        compressed_size: u64,
    ) -> Result<Self, BundleError> {
        let checksums = files
            .remove(CHECKSUMS_FILE)
            .ok_or_else(|| BundleError::Missing {
                path: path.clone(),
                entry: CHECKSUMS_FILE.into(),
            })?;
        let signature_text = files.remove(SIGNATURE_FILE);
        let listed = parse_checksums(&checksums, &path)?;
        for (name, expected) in &listed {
            let data = files.get(name).ok_or_else(|| BundleError::BadChecksums {
                path: path.clone(),
                problem: format!("lists `{name}`, which is not in the bundle"),
            })?;
            let found = sha256_hex(data);
            if &found != expected {
                return Err(BundleError::ChecksumMismatch {
                    path,
                    entry: name.clone(),
                    expected: expected.clone(),
                    found,
                });
            }
        }
        if let Some(extra) = files.keys().find(|k| !listed.contains_key(*k)) {
            return Err(BundleError::BadChecksums {
                path: path.clone(),
                problem: format!("does not list `{extra}`"),
            });
        }
        let manifest_bytes = files
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
            Source::LocalSo { path: lib } => {
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
            Source::RemoteGit { url, .. } => {
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
            .map(|(name, data)| Entry {
                // Verified equal to the computed hash above; no need to hash again.
                sha256: listed.get(&name).cloned().unwrap_or_default(),
                name,
                data,
            })
            .collect();
        Ok(Bundle {
            path,
            manifest,
            entries,
            library,
            signature,
            compressed_size,
        })
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

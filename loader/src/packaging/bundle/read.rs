//! Reading a `.plg`: stream it (`archive`), hash every entry as it passes, keep only the
//! manifest, checksums and signature entries (at most 1 MiB each), then check the checksums,
//! the manifest and the signature. Memory stays small whatever the bundle's size.

use std::{
    collections::BTreeMap,
    io::{self, Read},
    path::{Path, PathBuf},
};

use super::{
    archive::{copy_hashing, walk, Source},
    signature::verify_signature,
    Bundle, BundleError, Entry, Limits, CHECKSUMS_FILE, SIGNATURE_FILE,
};
use crate::{
    error::{IoError, ManifestError},
    manifest::{Manifest, Source as ManifestSource, MANIFEST_FILE},
};

/// The largest manifest, checksums or signature entry read into memory.
const MAX_META_ENTRY: u64 = 1 << 20;

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
            ManifestSource::Exec { .. } => {
                return Err(BundleError::UnsupportedSource { path, mode: "exec" })
            }
            ManifestSource::RemoteGit { url, .. } => {
                // The URL may carry credentials: show it without them.
                return Err(BundleError::SourceOutsideBundle {
                    path,
                    source_path: crate::manifest::git_url::redact(url),
                });
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

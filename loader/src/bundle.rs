//! `.plg` bundles: pack, read, verify, sign.
//!
//! # Format
//! A `.plg` file is a gzip-compressed tar archive, flat (no directories), holding:
//!
//! | entry | what |
//! |---|---|
//! | `plugin.json` | the manifest; `source.mode` is `local_so` and `source.path` names the library entry |
//! | the library | e.g. `libhello.so` |
//! | `CHECKSUMS.sha256` | one line per other entry: `<sha256 hex>  <name>`, sorted by name |
//! | `SIGNATURE.ed25519` (optional) | `plg-signature-v1`, the signer's public key and an ed25519 signature over `plg-bundle-v1\n` followed by the bytes of `CHECKSUMS.sha256` |
//!
//! A bundle is valid when every entry is a regular file with a plain name, no name repeats,
//! the checksums file lists exactly the other entries (signature aside) with matching hashes,
//! the manifest is valid and points at an entry of the bundle, and the unpacked library loads
//! as the plugin the manifest describes.
//!
//! Packing is deterministic: entries sorted by name, mode 0644, uid/gid 0, mtime 0, empty
//! user and group names, and a gzip header with no name and mtime 0. The same input gives the
//! same bytes.
//!
//! ```no_run
//! use plg_loader::bundle::{pack_dir, Bundle, Limits};
//!
//! let packed = pack_dir("plugins-dir/hello/1.2.0".as_ref(), None)?;
//! std::fs::write("hello-1.2.0.plg", &packed.bytes).unwrap();
//! let bundle = Bundle::read("hello-1.2.0.plg".as_ref(), &Limits::default())?;
//! println!("{} with {} entries", bundle.manifest().id(), bundle.entries().len());
//! # Ok::<(), plg_loader::bundle::BundleError>(())
//! ```

use std::{
    collections::BTreeMap,
    fmt,
    io::{self, Read, Write},
    path::{Path, PathBuf},
};

use ed25519_dalek::{Signature, Signer as _};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use flate2::{write::GzEncoder, Compression, GzBuilder};
use thiserror::Error;

use crate::{
    error::ManifestError,
    manifest::{Manifest, Source, MANIFEST_FILE},
};

/// The checksums entry.
pub const CHECKSUMS_FILE: &str = "CHECKSUMS.sha256";
/// The signature entry.
pub const SIGNATURE_FILE: &str = "SIGNATURE.ed25519";
/// The bundle file extension.
pub const EXTENSION: &str = "plg";
const SIGNATURE_HEADER: &str = "plg-signature-v1";
const SIGNED_PREFIX: &[u8] = b"plg-bundle-v1\n";

/// Why a bundle was refused. Nothing is written outside a temporary directory, which is
/// removed, whichever of these it is.
#[derive(Debug, Error)]
pub enum BundleError {
    /// The bundle file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The gzip stream or the tar archive is truncated or corrupt.
    #[error("{}: the bundle is corrupt or truncated ({message}); download or pack it again", path.display())]
    Corrupt {
        /// The bundle.
        path: PathBuf,
        /// What the decoder said.
        message: String,
    },
    /// More data than the limits allow would be unpacked (a gzip bomb, or a lying header).
    #[error("{}: unpacking would exceed {limit} bytes ({why}); raise the limit only for bundles you trust", path.display())]
    TooLarge {
        /// The bundle.
        path: PathBuf,
        /// The limit that was hit.
        limit: u64,
        /// Which limit.
        why: &'static str,
    },
    /// An entry name contains `..`.
    #[error("{}: entry `{entry}` contains `..`; a bundle may not write outside its directory", path.display())]
    PathTraversal {
        /// The bundle.
        path: PathBuf,
        /// The entry name.
        entry: String,
    },
    /// An entry name is absolute.
    #[error("{}: entry `{entry}` is an absolute path; bundle entries are plain file names", path.display())]
    AbsolutePath {
        /// The bundle.
        path: PathBuf,
        /// The entry name.
        entry: String,
    },
    /// An entry is a symbolic or hard link.
    #[error("{}: entry `{entry}` is a link; bundles hold regular files only", path.display())]
    Link {
        /// The bundle.
        path: PathBuf,
        /// The entry name.
        entry: String,
    },
    /// An entry is a device file, FIFO or other special file.
    #[error("{}: entry `{entry}` is a special file ({kind}); bundles hold regular files only", path.display())]
    SpecialFile {
        /// The bundle.
        path: PathBuf,
        /// The entry name.
        entry: String,
        /// What kind of file.
        kind: String,
    },
    /// An entry is a directory or sits in one.
    #[error("{}: entry `{entry}` is not a plain file name; bundles are flat", path.display())]
    NotFlat {
        /// The bundle.
        path: PathBuf,
        /// The entry name.
        entry: String,
    },
    /// An entry name has characters outside `[A-Za-z0-9._+-]`.
    #[error("{}: entry name {entry:?} has characters other than letters, digits, `.`, `_`, `+` and `-`", path.display())]
    BadName {
        /// The bundle.
        path: PathBuf,
        /// The entry name.
        entry: String,
    },
    /// Two entries share a name.
    #[error("{}: entry `{entry}` appears twice", path.display())]
    Duplicate {
        /// The bundle.
        path: PathBuf,
        /// The entry name.
        entry: String,
    },
    /// A required entry is missing.
    #[error("{}: the bundle has no `{entry}`", path.display())]
    Missing {
        /// The bundle.
        path: PathBuf,
        /// The entry name.
        entry: String,
    },
    /// The checksums file is malformed, lists an entry that is not there, or misses one.
    #[error("{}: {CHECKSUMS_FILE}: {problem}", path.display())]
    BadChecksums {
        /// The bundle.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// An entry's SHA-256 differs from the checksums file.
    #[error("{}: entry `{entry}` does not match its checksum (expected {expected}, found {found}); the bundle was altered or damaged", path.display())]
    ChecksumMismatch {
        /// The bundle.
        path: PathBuf,
        /// The entry name.
        entry: String,
        /// From the checksums file.
        expected: String,
        /// Computed.
        found: String,
    },
    /// The manifest is invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The manifest's `source.path` does not name a library entry of the bundle.
    #[error("{}: the manifest's `source.path` `{source_path}` does not name an entry of the bundle; it must be the library's file name", path.display())]
    SourceOutsideBundle {
        /// The bundle.
        path: PathBuf,
        /// The manifest's `source.path`.
        source_path: String,
    },
    /// The signature entry is malformed or does not verify.
    #[error("{}: {SIGNATURE_FILE}: {problem}", path.display())]
    BadSignature {
        /// The bundle.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The directory to pack is not a plugin.
    #[error("{}: {problem}", path.display())]
    NotPackable {
        /// The directory.
        path: PathBuf,
        /// What is missing.
        problem: String,
    },
}

/// Caps on what reading a bundle may unpack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes the archive may decompress to, whatever its size (default 512 MiB).
    pub max_unpacked: u64,
    /// The most the archive may expand relative to its compressed size (default 200×;
    /// small bundles may always reach 1 MiB).
    pub max_ratio: u64,
    /// The most entries (default 16).
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_unpacked: 512 << 20,
            max_ratio: 200,
            max_entries: 16,
        }
    }
}

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file name.
    pub name: String,
    /// The contents.
    pub data: Vec<u8>,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// A signature found in a bundle, checked against the bundle's checksums (not yet against a
/// keyring).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSignature {
    /// The signer's public key.
    pub public_key: VerifyingKey,
}

impl BundleSignature {
    /// The public key, hex.
    pub fn key_hex(&self) -> String {
        hex::encode(self.public_key.as_bytes())
    }
}

/// A bundle read into memory and checked: entry names and types, sizes, checksums, manifest,
/// and the signature's validity (when it has one). Loading the library is left to install.
#[derive(Debug, Clone)]
pub struct Bundle {
    path: PathBuf,
    manifest: Manifest,
    entries: Vec<Entry>,
    library: String,
    signature: Option<BundleSignature>,
    compressed_size: u64,
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
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

impl Bundle {
    /// Reads and checks the bundle at `path`.
    pub fn read(path: &Path, limits: &Limits) -> Result<Self, BundleError> {
        let io = |source| BundleError::Io {
            path: path.to_owned(),
            source,
        };
        // The compressed file is capped too: never read more than the unpacked cap.
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .map_err(io)?
            .take(limits.max_unpacked + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
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

    /// Where the bundle was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The files, sorted by name (without the checksums and signature entries).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The library entry's name.
    pub fn library_name(&self) -> &str {
        &self.library
    }

    /// The signature, if the bundle is signed (already verified against the checksums).
    pub fn signature(&self) -> Option<&BundleSignature> {
        self.signature.as_ref()
    }

    /// The size of the compressed bundle.
    pub fn compressed_size(&self) -> u64 {
        self.compressed_size
    }

    /// Writes the files into `dir` (which must exist and be empty), creating each new.
    pub fn write_files(&self, dir: &Path) -> Result<(), BundleError> {
        for e in &self.entries {
            let target = dir.join(&e.name);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&target)
                .map_err(|source| BundleError::Io {
                    path: target.clone(),
                    source,
                })?;
            f.write_all(&e.data).map_err(|source| BundleError::Io {
                path: target.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// Entry names are plain file names: no `..`, not absolute, no directories.
fn check_name(name: &str, path: &Path) -> Result<(), BundleError> {
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

fn checksums_text(files: &BTreeMap<String, Vec<u8>>) -> String {
    files
        .iter()
        .map(|(name, data)| format!("{}  {name}\n", sha256_hex(data)))
        .collect()
}

fn signed_message(checksums: &[u8]) -> Vec<u8> {
    [SIGNED_PREFIX, checksums].concat()
}

fn verify_signature(
    text: &[u8],
    checksums: &[u8],
    path: &Path,
) -> Result<BundleSignature, BundleError> {
    let bad = |problem: &str| BundleError::BadSignature {
        path: path.to_owned(),
        problem: problem.to_owned(),
    };
    let text = std::str::from_utf8(text).map_err(|_| bad("is not UTF-8"))?;
    let mut lines = text.lines();
    if lines.next() != Some(SIGNATURE_HEADER) {
        return Err(bad("does not start with `plg-signature-v1`"));
    }
    let field = |line: Option<&str>, key: &str| -> Option<Vec<u8>> {
        hex::decode(line?.strip_prefix(key)?.trim()).ok()
    };
    let key = field(lines.next(), "public-key:").ok_or_else(|| bad("bad `public-key:` line"))?;
    let sig = field(lines.next(), "signature:").ok_or_else(|| bad("bad `signature:` line"))?;
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| bad("the public key is not 32 bytes"))?;
    let sig: [u8; 64] = sig
        .try_into()
        .map_err(|_| bad("the signature is not 64 bytes"))?;
    let public_key = VerifyingKey::from_bytes(&key)
        .map_err(|_| bad("the public key is not a valid ed25519 key"))?;
    public_key
        .verify_strict(&signed_message(checksums), &Signature::from_bytes(&sig))
        .map_err(|_| bad("the signature does not match the bundle's contents"))?;
    Ok(BundleSignature { public_key })
}

/// A packed bundle.
#[derive(Debug, Clone)]
pub struct Packed {
    /// The manifest.
    pub manifest: Manifest,
    /// The `.plg` bytes.
    pub bytes: Vec<u8>,
}

impl Packed {
    /// `NAME-VERSION.plg`.
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}.{EXTENSION}",
            self.manifest.name, self.manifest.version
        )
    }
}

/// The manifest and library path of the staged plugin directory `dir` (a `plugin.json` and
/// its `local_so` library, as `plg build` and `plg install` write them).
pub fn library_of(dir: &Path) -> Result<(Manifest, PathBuf), BundleError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    if !manifest_path.is_file() {
        return Err(BundleError::NotPackable {
            path: dir.to_owned(),
            problem: "has no plugin.json; use a staged plugin directory or a plugin crate".into(),
        });
    }
    let manifest = Manifest::from_path(&manifest_path)?;
    let Source::LocalSo { path: lib } = &manifest.source else {
        return Err(BundleError::NotPackable {
            path: dir.to_owned(),
            problem: "only `local_so` plugins can be packed or installed from a directory; build it first".into(),
        });
    };
    let lib_path = dir.join(lib);
    Ok((manifest, lib_path))
}

/// Packs the staged plugin directory `dir` (see [`library_of`]), signing it with `key` if
/// given.
pub fn pack_dir(dir: &Path, key: Option<&SigningKey>) -> Result<Packed, BundleError> {
    let (manifest, library) = library_of(dir)?;
    pack_library(&manifest, &library, key)
}

/// Packs `manifest` with the library at `library` (for example straight from cargo's output),
/// signing it with `key` if given. The packed manifest's `source.path` is the library's file
/// name.
pub fn pack_library(
    manifest: &Manifest,
    library: &Path,
    key: Option<&SigningKey>,
) -> Result<Packed, BundleError> {
    let lib_bytes = std::fs::read(library).map_err(|source| BundleError::Io {
        path: library.to_owned(),
        source,
    })?;
    let lib_name = library
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| BundleError::NotPackable {
            path: library.to_owned(),
            problem: "has no file name".into(),
        })?;
    let mut manifest = manifest.clone();
    manifest.source = Source::LocalSo {
        path: PathBuf::from(&lib_name),
    };
    let mut files = BTreeMap::new();
    files.insert(
        MANIFEST_FILE.to_owned(),
        (manifest.to_json() + "\n").into_bytes(),
    );
    files.insert(lib_name, lib_bytes);
    Ok(Packed {
        bytes: pack_files(files, key),
        manifest,
    })
}

/// Writes `files` (plus checksums and, with `key`, a signature) as a deterministic `.plg`.
fn pack_files(mut files: BTreeMap<String, Vec<u8>>, key: Option<&SigningKey>) -> Vec<u8> {
    let checksums = checksums_text(&files);
    if let Some(key) = key {
        let sig = key.sign(&signed_message(checksums.as_bytes()));
        let text = format!(
            "{SIGNATURE_HEADER}\npublic-key: {}\nsignature: {}\n",
            hex::encode(key.verifying_key().as_bytes()),
            hex::encode(sig.to_bytes())
        );
        files.insert(SIGNATURE_FILE.to_owned(), text.into_bytes());
    }
    files.insert(CHECKSUMS_FILE.to_owned(), checksums.into_bytes());
    let gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    for (name, data) in &files {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, data.as_slice())
            .expect("writing to memory cannot fail");
    }
    let gz: GzEncoder<Vec<u8>> = tar.into_inner().expect("writing to memory cannot fail");
    gz.finish().expect("writing to memory cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BTreeMap<String, Vec<u8>> {
        let manifest =
            r#"{"name":"x","version":"1.0.0","source":{"mode":"local_so","path":"libx.so"}}"#;
        BTreeMap::from([
            (MANIFEST_FILE.to_owned(), manifest.as_bytes().to_vec()),
            ("libx.so".to_owned(), b"\x7fELF pretend".to_vec()),
        ])
    }

    #[test]
    fn packing_is_deterministic_and_reads_back() {
        let a = pack_files(sample(), None);
        let b = pack_files(sample(), None);
        assert_eq!(a, b);
        let bundle = Bundle::from_bytes(&a, Path::new("x.plg"), &Limits::default()).unwrap();
        assert_eq!(bundle.library_name(), "libx.so");
        assert_eq!(bundle.entries().len(), 2);
        assert!(bundle.signature().is_none());
    }

    #[test]
    fn a_signature_verifies_and_names_its_key() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let bytes = pack_files(sample(), Some(&key));
        let bundle = Bundle::from_bytes(&bytes, Path::new("x.plg"), &Limits::default()).unwrap();
        assert_eq!(bundle.signature().unwrap().public_key, key.verifying_key());
    }

    #[test]
    fn bytes_after_the_gzip_stream_are_refused() {
        let mut bytes = pack_files(sample(), None);
        bytes.extend_from_slice(b"junk");
        assert!(matches!(
            Bundle::from_bytes(&bytes, Path::new("x.plg"), &Limits::default()),
            Err(BundleError::Corrupt { .. })
        ));
    }

    #[test]
    fn names_are_checked() {
        let p = Path::new("b.plg");
        assert!(matches!(
            check_name("../x", p),
            Err(BundleError::PathTraversal { .. })
        ));
        assert!(matches!(
            check_name("a/../../x", p),
            Err(BundleError::PathTraversal { .. })
        ));
        assert!(matches!(
            check_name("/etc/x", p),
            Err(BundleError::AbsolutePath { .. })
        ));
        assert!(matches!(
            check_name("C:x", p),
            Err(BundleError::AbsolutePath { .. })
        ));
        assert!(matches!(
            check_name("a/b", p),
            Err(BundleError::NotFlat { .. })
        ));
        assert!(check_name("libx.so", p).is_ok());
    }
}

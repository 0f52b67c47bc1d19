//! Errors of reading and packing bundles, and of scaffolding a plugin crate.

use std::path::PathBuf;

use thiserror::Error;

use super::{io::IoError, manifest::ManifestError};

/// The checksums entry of a bundle.
const CHECKSUMS_FILE: &str = "CHECKSUMS.sha256";
/// The signature entry of a bundle.
const SIGNATURE_FILE: &str = "SIGNATURE.ed25519";

/// Why a bundle was refused. Nothing is written outside a temporary directory, which is
/// removed, whichever of these it is.
#[derive(Debug, Error)]
pub enum BundleError {
    /// The bundle file could not be read or written.
    #[error(transparent)]
    Io(#[from] IoError),
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
    /// The manifest's source mode cannot travel in a bundle (`exec` today).
    #[error("{}: the manifest's source mode is `{mode}`; bundles carry `local_so` plugins only. Ship an `exec` plugin as its directory", path.display())]
    UnsupportedSource {
        /// The bundle.
        path: PathBuf,
        /// The mode.
        mode: &'static str,
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

/// Why scaffolding failed. Nothing is left behind.
#[derive(Debug, Error)]
pub enum ScaffoldError {
    /// The name is not a valid plugin name.
    #[error("`{name}` is not a valid plugin name: {problem}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        problem: String,
    },
    /// The target directory already exists.
    #[error("{} already exists; choose another name or --path", path.display())]
    Exists {
        /// The directory.
        path: PathBuf,
    },
    /// Writing failed.
    #[error(transparent)]
    Io(#[from] IoError),
}

//! A `plugin.json` that cannot be read or is invalid.

use std::{io, path::PathBuf};

use thiserror::Error;

/// A `plugin.json` could not be read or is invalid.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read manifest {}: {source}", path.display())]
    Read {
        /// The manifest.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The manifest is not a regular file: a symbolic link (plg never follows a link to a
    /// manifest, which could point anywhere), a directory, a FIFO or a device.
    #[error("{} is {kind}, not a regular file; a plugin's manifest must be a plain file inside its directory", path.display())]
    NotAFile {
        /// The manifest.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// The manifest is larger than any real one.
    #[error("{} is larger than {limit} bytes; a plugin.json is a few hundred bytes, so this is not one", path.display())]
    TooLarge {
        /// The manifest.
        path: PathBuf,
        /// The cap, [`MAX_MANIFEST_BYTES`](crate::manifest::MAX_MANIFEST_BYTES).
        limit: u64,
    },
    /// The file is not valid JSON.
    #[error("{}:{line}:{column}: invalid JSON: {message}", path.display())]
    Syntax {
        /// The manifest.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// A field is missing, of the wrong type, unknown, or has a value plg refuses.
    #[error("{}: field `{field}`: {problem}", path.display())]
    Invalid {
        /// The manifest.
        path: PathBuf,
        /// The field path, e.g. `source.path` or `maintainers[1]`.
        field: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

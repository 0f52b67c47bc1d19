//! File errors, and errors of plg's own configuration files.

use std::{
    fmt, io,
    path::{Path, PathBuf},
};

use thiserror::Error;

/// A file operation failed on `path`. Every error enum that touches files carries this one
/// type in its `Io` variant, so the path and the OS error always travel together.
#[derive(Debug)]
pub struct IoError {
    /// The file or directory.
    pub path: PathBuf,
    /// What the operating system said.
    pub source: io::Error,
}

impl IoError {
    /// Pairs `source` with `path`.
    pub fn new(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self {
            path: path.into(),
            source,
        }
    }

    /// A `map_err` adapter: `fs::read(p).map_err(IoError::at(p))?`, into any error with an
    /// `Io(IoError)` variant.
    pub fn at<E: From<IoError>>(path: &Path) -> impl FnOnce(io::Error) -> E + '_ {
        move |source| E::from(IoError::new(path, source))
    }

    /// The OS error's kind.
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A configuration file could not be read or is invalid.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file is not valid JSON of the expected shape.
    #[error("{}: {problem}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The file could not be read.
    #[error(transparent)]
    Io(#[from] IoError),
}

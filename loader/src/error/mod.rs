//! Typed errors, at the bottom of the crate so that every layer can name them. Each names the
//! file, plugin or field involved and says what to do next.

mod call;
mod io;
mod load;
mod manifest;
mod pack;
mod wire;
mod worker;

pub use call::{ExecError, LookupError, UnloadError};
pub use io::{ConfigError, IoError};
pub use load::{
    BuildError, DependencyProblem, GitError, InstallError, LoadError, LoadFailure,
    MAX_DEPENDENCY_DEPTH,
};
pub use manifest::ManifestError;
pub use pack::{BundleError, ScaffoldError};
#[cfg(feature = "isolation")]
pub(crate) use wire::parse_load_error_line;
#[doc(hidden)]
pub use wire::{load_error_line, CHECK_OK, LOAD_ERROR_PREFIX};
pub use worker::{HandshakeProblem, WorkerError};

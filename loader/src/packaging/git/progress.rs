//! Progress of a git install, reported phase by phase; the CLI draws it.

/// A phase of fetching, building and installing a `remote_git` plugin, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Resolving the branch, tag or commit to a commit.
    Resolve,
    /// Cloning the repository and checking out the commit.
    Clone,
    /// Building the crate with cargo (the repository's build scripts run now).
    Build,
    /// Verifying and installing the built plugin (reported by installers, not by
    /// `fetch_and_build`).
    Install,
    /// Finished.
    Done,
}

/// Progress reports; the CLI draws bars from them.
pub trait GitProgress: Sync {
    /// A phase starts.
    fn phase(&self, _phase: Phase) {}
    /// Objects received while cloning.
    fn transfer(&self, _received: usize, _total: usize) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl GitProgress for NoProgress {}

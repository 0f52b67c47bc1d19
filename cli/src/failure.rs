//! A failed command: its error and the exit code it maps to.

use plg_loader::{
    build::BuildError, bundle::BundleError, git::GitError, install::InstallError, ExecError,
    LoadError,
};

/// The exit codes, as `plg --help` lists them.
pub const EXIT_CODES: &str = "EXIT CODES:
  0   success
  1   an error not listed below
  2   bad command-line arguments
  3   the plugin was not found
  4   the plugin failed to load (bad manifest, library, ABI or hook)
  5   the plugin's execute failed (error, panic, cancellation, deadline)
  6   building failed
  7   the bundle is invalid, corrupt or hostile
  8   the bundle's signature is missing or not trusted
  9   fetching or building a git repository failed
  10  a file could not be read or written (disk full, permissions)";

/// An error with the exit code it maps to.
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Failure {
    /// A failure with a message and an explicit code.
    pub fn new(code: u8, message: impl std::fmt::Display) -> Self {
        Failure {
            code,
            error: anyhow::anyhow!("{message}"),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let error = e.into();
        let code = exit_code(&error);
        Failure { code, error }
    }
}

fn exit_code(error: &anyhow::Error) -> u8 {
    // `execute`'s error arrives boxed through `?`; an unboxed one may come from elsewhere.
    if error.downcast_ref::<Box<ExecError>>().is_some()
        || error.downcast_ref::<ExecError>().is_some()
    {
        5
    } else if let Some(e) = error.downcast_ref::<LoadError>() {
        load_code(e)
    } else if let Some(e) = error.downcast_ref::<BuildError>() {
        build_code(e)
    } else if let Some(e) = error.downcast_ref::<GitError>() {
        match e {
            GitError::Io(_) => 10,
            _ => 9,
        }
    } else if let Some(e) = error.downcast_ref::<BundleError>() {
        bundle_code(e)
    } else if let Some(e) = error.downcast_ref::<InstallError>() {
        install_code(e)
    } else if error.downcast_ref::<plg_loader::IoError>().is_some() {
        10
    } else {
        1
    }
}

fn load_code(e: &LoadError) -> u8 {
    match e {
        LoadError::NotInstalled { .. } | LoadError::Lookup(_) => 3,
        LoadError::UnsignedSource { .. } => 8,
        _ => 4,
    }
}

fn build_code(e: &BuildError) -> u8 {
    match e {
        BuildError::Stage(e) => install_code(e),
        BuildError::Io(_) => 10,
        _ => 6,
    }
}

fn bundle_code(e: &BundleError) -> u8 {
    match e {
        BundleError::Io(_) => 10,
        _ => 7,
    }
}

fn install_code(e: &InstallError) -> u8 {
    match e {
        InstallError::Bundle(b) => bundle_code(b),
        InstallError::Load(_) => 4,
        InstallError::Build(b) => build_code(b),
        InstallError::Unsigned { .. } | InstallError::UnknownKey { .. } => 8,
        InstallError::NotInstalled { .. } => 3,
        InstallError::Io(_) => 10,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_have_their_own_code_wherever_they_arise() {
        let io = || {
            plg_loader::IoError::new("/x", std::io::Error::from(std::io::ErrorKind::StorageFull))
        };
        assert_eq!(Failure::from(BundleError::Io(io())).code, 10);
        assert_eq!(Failure::from(InstallError::Io(io())).code, 10);
        assert_eq!(
            Failure::from(InstallError::Bundle(BundleError::Io(io()))).code,
            10
        );
        assert_eq!(
            Failure::from(BuildError::Stage(InstallError::Io(io()))).code,
            10
        );
        assert_eq!(Failure::from(GitError::Io(io())).code, 10);
    }
}

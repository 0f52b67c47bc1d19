//! Installing and uninstalling plugins.
//!
//! Installing verifies a bundle, unpacks it into a temporary directory inside the plugins
//! directory (the same file system), checks there that the library loads as the manifest
//! says, and renames the directory into `PLUGINS_DIR/NAME/VERSION` ([`place`](self)). A
//! crash at any point leaves the old state or the new one: the temporary directory's name
//! starts with `.`, so discovery ignores a leftover one. Verifying loads the library, which
//! runs its initializers: install only bundles you mean to run.
//!
//! The signature policy comes from `PLUGINS_DIR/.plg/config.json` (`require_signature`) and
//! the keyring ([`Keyring`](crate::keys::Keyring)).
//!
//! ```no_run
//! use plg_loader::{install::{install_file, InstallOptions}, PluginsDir};
//!
//! let plugins = PluginsDir::new("plugins");
//! let installed = install_file("hello-1.2.0.plg".as_ref(), &plugins, &InstallOptions::default())?;
//! println!("installed {} in {}", installed.manifest.id(), installed.dir.display());
//! # Ok::<(), plg_loader::install::InstallError>(())
//! ```

use std::path::{Path, PathBuf};

use super::bundle::{Bundle, Limits};
use crate::{error::IoError, manifest::Manifest, plugins_dir::PluginsDir, runtime::check_loads};

pub(crate) mod place;
mod policy;

pub use crate::error::InstallError;
pub(crate) use place::place_library;
pub use place::uninstall;
pub(crate) use policy::Admission;

/// How to install.
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// Replace an installed plugin of the same name and version.
    pub force: bool,
    /// Require a trusted signature. `false` still applies the directory's `require_signature`
    /// configuration.
    pub require_signature: bool,
    /// Caps on unpacking.
    pub limits: Limits,
}

/// What was installed.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The manifest.
    pub manifest: Manifest,
    /// `PLUGINS_DIR/NAME/VERSION`.
    pub dir: PathBuf,
    /// The trusted key's name, if the bundle was signed by one.
    pub signed_by: Option<String>,
    /// `true` if an installed copy was replaced (`force`).
    pub replaced: bool,
}

/// Installs a built library with its manifest (cargo's output, a staged directory, a git
/// build) without packing it: the library is copied and the manifest written into the
/// temporary directory, checked and renamed into place like a bundle. Such a library carries
/// no signature, so this refuses when signatures are required.
pub fn install_library(
    manifest: &Manifest,
    library: &Path,
    plugins_dir: &PluginsDir,
    opts: &InstallOptions,
) -> Result<Installed, InstallError> {
    let admission = Admission::unsigned(library, opts.require_signature);
    place_library(manifest, library, plugins_dir, opts.force, admission)
}

/// Refuses, before anything is built, an unsigned source (a crate, a staged directory, a git
/// repository) that would be refused after building: when `plugins_dir` requires signatures
/// (or `opts.require_signature` does), an unsigned copy can never get in, and building a
/// crate or a repository runs its code. The same check runs again when the copy is placed.
pub fn admits_unsigned(
    source: &Path,
    plugins_dir: &PluginsDir,
    opts: &InstallOptions,
) -> Result<(), InstallError> {
    Admission::unsigned(source, opts.require_signature)
        .admit(plugins_dir)
        .map(drop)
}

/// Like [`admits_unsigned`], for a copy that will be signed with `key` (`plg build --sign`):
/// refuses before building when `plugins_dir` requires signatures and does not trust `key`.
pub fn admits_signed_by(
    source: &Path,
    key: &super::bundle::VerifyingKey,
    plugins_dir: &PluginsDir,
) -> Result<(), InstallError> {
    Admission {
        source: source.to_owned(),
        signature: Some(super::bundle::BundleSignature { public_key: *key }),
        require_signature: false,
    }
    .admit(plugins_dir)
    .map(drop)
}

/// Reads the bundle at `path` and installs it into `plugins_dir`.
pub fn install_file(
    path: &Path,
    plugins_dir: &PluginsDir,
    opts: &InstallOptions,
) -> Result<Installed, InstallError> {
    let bundle = Bundle::read(path, &opts.limits)?;
    install_bundle(&bundle, plugins_dir, opts)
}

/// Installs a bundle that has been read: checks its signature against the directory's
/// keyring and configuration, then places it atomically.
pub fn install_bundle(
    bundle: &Bundle,
    plugins_dir: &PluginsDir,
    opts: &InstallOptions,
) -> Result<Installed, InstallError> {
    let manifest = bundle.manifest().clone();
    let admission = Admission {
        source: bundle.path().to_owned(),
        signature: bundle.signature().cloned(),
        require_signature: opts.require_signature,
    };
    place::place(plugins_dir, &manifest, opts.force, admission, |tmp| {
        bundle.write_files(tmp)?;
        check_loads(&manifest, &tmp.join(crate::manifest::MANIFEST_FILE))?;
        Ok(())
    })
}

/// A `map_err` adapter for file operations during install.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    IoError::at(path)
}

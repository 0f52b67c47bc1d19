//! Placing a plugin directory atomically, repairing what a crash left, and uninstalling.
//!
//! One path puts every plugin copy in place, whether it came from a bundle, a build, a
//! staged directory or a git build: assemble it in a temporary sibling whose name starts with
//! `.` (so discovery never sees half of it), check it, then rename it in.

use std::path::{Path, PathBuf};

use semver::Version;

use super::{io, Admission, InstallError, Installed};
use crate::{
    error::IoError,
    manifest::{validate_name, Manifest, MANIFEST_FILE},
    plugins_dir::{temp_name, PluginsDir},
    runtime::check_loads,
};

/// Places `library` with `manifest` at `PLUGINS_DIR/NAME/VERSION`, checking that it loads.
/// Shared by `install_library` and `plg build`'s staging.
pub(crate) fn place_library(
    manifest: &Manifest,
    library: &Path,
    plugins_dir: &PluginsDir,
    force: bool,
    admission: Admission,
) -> Result<Installed, InstallError> {
    let staged = manifest.with_local_library(library_file_name(library));
    place(plugins_dir, &staged, force, admission, |tmp| {
        write_plugin::<InstallError>(tmp, manifest, library)?;
        check_loads(&staged, &tmp.join(MANIFEST_FILE))?;
        Ok(())
    })
}

/// The file name a library is placed under.
fn library_file_name(library: &Path) -> PathBuf {
    library
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("plugin"))
}

/// Copies `library` into `dir` and writes `manifest` beside it, its source rewritten to the
/// library's file name. Returns the manifest as written.
pub(crate) fn write_plugin<E: From<IoError>>(
    dir: &Path,
    manifest: &Manifest,
    library: &Path,
) -> Result<Manifest, E> {
    let file_name = library_file_name(library);
    let staged = manifest.with_local_library(&file_name);
    let lib = dir.join(&file_name);
    std::fs::copy(library, &lib).map_err(IoError::at::<E>(&lib))?;
    let manifest_path = dir.join(MANIFEST_FILE);
    std::fs::write(&manifest_path, staged.to_json() + "\n")
        .map_err(IoError::at::<E>(&manifest_path))?;
    Ok(staged)
}

/// Admits a copy under the directory's signature policy, assembles
/// `PLUGINS_DIR/NAME/VERSION` with `fill` and renames it into place (swapping out an existing
/// one when `force`). On any error the temporary directory is removed and the previous state
/// is untouched. The one way into a plugins directory.
pub(crate) fn place(
    plugins_dir: &PluginsDir,
    manifest: &Manifest,
    force: bool,
    admission: Admission,
    fill: impl FnOnce(&Path) -> Result<(), InstallError>,
) -> Result<Installed, InstallError> {
    let signed_by = admission.admit(plugins_dir)?;
    let parent = plugins_dir.plugin_dir(&manifest.name);
    let dest = plugins_dir.version_dir(&manifest.name, &manifest.version);
    recover(&parent, &dest);
    let exists = || InstallError::AlreadyInstalled {
        plugin: manifest.id(),
        dir: dest.clone(),
    };
    if dest.exists() && !force {
        return Err(exists());
    }
    let result = assemble(&dest, force, exists, fill);
    if result.is_err() && std::fs::read_dir(&parent).is_ok_and(|mut d| d.next().is_none()) {
        let _ = std::fs::remove_dir(&parent);
    }
    let replaced = result?;
    Ok(Installed {
        manifest: manifest.clone(),
        dir: dest,
        signed_by,
        replaced,
    })
}

/// Assembles the directory `dest` in a temporary sibling with `fill`, then renames it into
/// place. An existing `dest` is swapped out when `replace`, else `exists()` is the error.
/// Returns whether a copy was replaced. On error the temporary directory is removed and
/// `dest` is as it was.
pub(crate) fn assemble<E: From<IoError>>(
    dest: &Path,
    replace: bool,
    exists: impl FnOnce() -> E,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<bool, E> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(IoError::at::<E>(parent))?;
    let tmp = parent.join(temp_name("staging"));
    let result = (|| {
        std::fs::create_dir(&tmp).map_err(IoError::at::<E>(&tmp))?;
        fill(&tmp)?;
        if !dest.exists() {
            std::fs::rename(&tmp, dest).map_err(IoError::at::<E>(dest))?;
            return Ok(false);
        }
        if !replace {
            return Err(exists());
        }
        let version = dest.file_name().unwrap_or_default().to_string_lossy();
        let old = parent.join(temp_name(&format!("replaced-{version}")));
        std::fs::rename(dest, &old).map_err(IoError::at::<E>(dest))?;
        if let Err(source) = std::fs::rename(&tmp, dest) {
            // Put the old one back; the new one is discarded below.
            let _ = std::fs::rename(&old, dest);
            return Err(IoError::new(dest, source).into());
        }
        let _ = std::fs::remove_dir_all(&old);
        Ok(true)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Repairs what a crash during a `--force` swap can leave: the old copy renamed to
/// `.replaced-*` with nothing at `dest`. It is renamed back; leftovers beside an installed
/// copy are deleted.
fn recover(parent: &Path, dest: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let version = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".replaced-{version}-");
    for e in entries.filter_map(Result::ok) {
        if !e.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        if !dest.exists() && e.path().join(MANIFEST_FILE).is_file() {
            let _ = std::fs::rename(e.path(), dest);
        } else {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Removes `name` (one version, or all) from `plugins_dir`. Each version directory is first
/// renamed out of sight, then deleted, so a crash never leaves half a plugin discoverable.
pub fn uninstall(
    plugins_dir: &PluginsDir,
    name: &str,
    version: Option<&Version>,
) -> Result<Vec<PathBuf>, InstallError> {
    let not_installed = || InstallError::NotInstalled {
        name: name.to_owned(),
        version: version.cloned(),
        dir: plugins_dir.path().to_owned(),
    };
    validate_name(name).map_err(|_| not_installed())?;
    let parent = plugins_dir.plugin_dir(name);
    let targets: Vec<PathBuf> = match version {
        Some(v) => {
            let dest = plugins_dir.version_dir(name, v);
            recover(&parent, &dest);
            Some(dest)
                .filter(|d| d.join(MANIFEST_FILE).is_file())
                .into_iter()
                .collect()
        }
        None => plugins_dir.installed_versions(name),
    };
    if targets.is_empty() {
        return Err(not_installed());
    }
    for t in &targets {
        let trash = parent.join(temp_name("removing"));
        std::fs::rename(t, &trash).map_err(io(t))?;
        std::fs::remove_dir_all(&trash).map_err(io(&trash))?;
    }
    if std::fs::read_dir(&parent).is_ok_and(|mut d| d.next().is_none()) {
        let _ = std::fs::remove_dir(&parent);
    }
    Ok(targets)
}

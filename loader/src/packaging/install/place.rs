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

/// Refuses to work through a symbolic link: `PLUGINS_DIR/NAME` or a version directory that is
/// a link could lead writes and deletes out of the plugins directory.
fn refuse_links(paths: &[&Path]) -> Result<(), InstallError> {
    for p in paths {
        if p.symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(InstallError::Linked {
                path: p.to_path_buf(),
            });
        }
    }
    Ok(())
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
    refuse_links(&[&parent, &dest])?;
    recover(&parent);
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
            match std::fs::rename(&tmp, dest) {
                Ok(()) => return Ok(false),
                // Another process placed it first; with `replace`, swap ours in below.
                Err(_) if replace && dest.exists() => {}
                Err(e) => return Err(IoError::new(dest, e).into()),
            }
        }
        if !replace {
            return Err(exists());
        }
        if exchange(&tmp, dest).map_err(IoError::at::<E>(dest))? {
            // `tmp` now holds the old copy; readers saw the old or the new, never neither.
            let _ = std::fs::remove_dir_all(&tmp);
            return Ok(true);
        }
        // No atomic exchange here: move the old copy aside, then the new one in.
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

/// Swaps the directories `a` and `b` atomically (`renameat2(RENAME_EXCHANGE)`). `Ok(false)`
/// where the platform or file system cannot, so the caller falls back to two renames.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<bool> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> std::io::Result<bool> {
    Ok(false)
}

/// The process that made the temporary entry `name` (`.KIND-PID-NANOS-N`, from
/// `temp_name`), and the part before the PID (`.KIND` or `.replaced-VERSION`).
fn temp_owner(name: &str) -> Option<(&str, u32)> {
    let mut parts = name.rsplitn(4, '-');
    let (_n, _nanos, pid, head) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    Some((head, pid.parse().ok()?))
}

/// `true` unless the process `pid` is known to be gone. Only Linux can tell (through
/// `/proc`); elsewhere every owner counts as alive and nothing is swept.
fn owner_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Cleans what crashed installs left in `parent` (`PLUGINS_DIR/NAME`): a copy renamed aside
/// during a swap (`.replaced-VERSION-*`) is renamed back when its version is missing, else
/// deleted; half-assembled (`.staging-*`) and half-deleted (`.removing-*`) directories are
/// deleted. Only entries whose owning process is gone are touched, so a concurrent install
/// is never disturbed.
pub(crate) fn recover(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((head, pid)) = temp_owner(&name) else {
            continue;
        };
        if owner_alive(pid) {
            continue;
        }
        if let Some(version) = head.strip_prefix(".replaced-") {
            let dest = parent.join(version);
            if !dest.exists() && e.path().join(MANIFEST_FILE).is_file() {
                let _ = std::fs::rename(e.path(), &dest);
                continue;
            }
        } else if head != ".staging" && head != ".removing" {
            continue;
        }
        let _ = std::fs::remove_dir_all(e.path());
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
    refuse_links(&[&parent])?;
    recover(&parent);
    let targets: Vec<PathBuf> = match version {
        Some(v) => Some(plugins_dir.version_dir(name, v))
            .filter(|d| d.join(MANIFEST_FILE).is_file())
            .into_iter()
            .collect(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_carry_their_owner() {
        let name = temp_name("replaced-1.0.0-rc.1");
        let (head, pid) = temp_owner(&name).unwrap();
        assert_eq!(head, ".replaced-1.0.0-rc.1");
        assert_eq!(pid, std::process::id());
        assert_eq!(temp_owner("1.0.0"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn stale_leftovers_of_dead_owners_are_cleaned_and_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let parent = tmp.path();
        let dead = u32::MAX - 1; // no such process
        let write = |name: &str| {
            std::fs::create_dir_all(parent.join(name)).unwrap();
            std::fs::write(parent.join(name).join(MANIFEST_FILE), name).unwrap();
        };
        write("1.0.0-rc.1");
        write(&format!(".replaced-1.0.0-{dead}-1-0")); // its version is missing: restored
        write(&format!(".replaced-1.0.0-rc.1-{dead}-1-0")); // installed beside: deleted
        write(&format!(".staging-{dead}-1-0"));
        write(&format!(".removing-{dead}-1-0"));
        let live = temp_name("staging");
        write(&live);
        recover(parent);
        let mut left: Vec<String> = std::fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [live.as_str(), "1.0.0", "1.0.0-rc.1"]);
        let restored = std::fs::read_to_string(parent.join("1.0.0").join(MANIFEST_FILE)).unwrap();
        assert!(restored.starts_with(".replaced-1.0.0-"), "{restored}");
    }
}

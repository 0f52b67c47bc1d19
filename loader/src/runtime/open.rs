//! The narrow door into the runtime: open a plugin's library and check it against its
//! manifest, running no plugin hook. Loading builds on it; packaging uses it (and only it) to
//! check what it installs.

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use semver::Version;

use super::ffi::Library;
use crate::{
    error::LoadError,
    manifest::{
        note::{read_note, NoteError, PluginNote},
        preflight::{check_before_load, Unmappable},
        Manifest, Source,
    },
};

/// The canonical path of the library `manifest` (read from `manifest_path`) describes,
/// checked to exist and to stay inside the manifest's directory. Reads; runs nothing.
pub(crate) fn locate_library(
    manifest: &Manifest,
    manifest_path: &Path,
) -> Result<PathBuf, LoadError> {
    let Source::LocalSo { path: rel } = &manifest.source else {
        return Err(LoadError::UnsupportedSource {
            manifest: manifest_path.to_owned(),
            mode: manifest.source.mode(),
        });
    };
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let lib_path = dir.join(rel);
    if !lib_path.is_file() {
        return Err(LoadError::NotFound {
            path: lib_path,
            manifest: manifest_path.to_owned(),
        });
    }
    let (real_dir, real_lib) = match (dir.canonicalize(), lib_path.canonicalize()) {
        (Ok(d), Ok(l)) => (d, l),
        _ => {
            return Err(LoadError::NotFound {
                path: lib_path,
                manifest: manifest_path.to_owned(),
            })
        }
    };
    if !real_lib.starts_with(&real_dir) {
        return Err(LoadError::OutsideDir {
            path: lib_path,
            dir: dir.to_owned(),
        });
    }
    Ok(real_lib)
}

/// The canonical path of an exec plugin's program (`source.mode: "exec"`), checked to exist
/// and to stay inside the manifest's directory. Reads; runs nothing.
pub(crate) fn locate_program(
    manifest: &Manifest,
    manifest_path: &Path,
) -> Result<PathBuf, LoadError> {
    let Source::Exec { path, .. } = &manifest.source else {
        return Err(LoadError::UnsupportedSource {
            manifest: manifest_path.to_owned(),
            mode: manifest.source.mode(),
        });
    };
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let program = dir.join(path);
    let not_found = || LoadError::NotFound {
        path: program.clone(),
        manifest: manifest_path.to_owned(),
    };
    if !program.is_file() {
        return Err(not_found());
    }
    let (real_dir, real_program) = match (dir.canonicalize(), program.canonicalize()) {
        (Ok(d), Ok(p)) => (d, p),
        _ => return Err(not_found()),
    };
    if !real_program.starts_with(&real_dir) {
        return Err(LoadError::OutsideDir {
            path: program,
            dir: dir.to_owned(),
        });
    }
    Ok(real_program)
}

/// Checks the library `manifest` describes from its file alone: it exists inside the
/// plugin's directory, and its note (ABI version, name, version) agrees with the manifest.
/// Loads nothing and runs no plugin code. `Ok(None)`: the library has no note (built with an
/// older plg-api); only loading it can check it. Also returns the library's path.
pub(crate) fn inspect(
    manifest: &Manifest,
    manifest_path: &Path,
) -> Result<(Option<PluginNote>, PathBuf), LoadError> {
    let path = locate_library(manifest, manifest_path)?;
    let note = match read_note(&path) {
        Ok(note) => note,
        Err(NoteError::Missing) => return Ok((None, path)),
        Err(NoteError::NotAnObject(reason)) => {
            return Err(LoadError::NotSharedObject { path, reason })
        }
        Err(e @ (NoteError::Malformed(_) | NoteError::NotAPlugin)) => {
            return Err(LoadError::NotAPlugin {
                path,
                reason: e.to_string(),
            })
        }
    };
    if note.abi_version != plg_api::ABI_VERSION {
        return Err(LoadError::AbiVersion {
            path,
            expected: plg_api::ABI_VERSION,
            found: note.abi_version,
        });
    }
    check_identity(manifest, &path, &note.name, &note.version)?;
    Ok((Some(note), path))
}

/// The library's embedded name and version must be the manifest's.
fn check_identity(
    manifest: &Manifest,
    path: &Path,
    name: &str,
    version: &str,
) -> Result<(), LoadError> {
    if name != manifest.name {
        return Err(LoadError::Mismatch {
            path: path.to_owned(),
            field: "name",
            manifest: manifest.name.clone(),
            library: name.to_owned(),
        });
    }
    if Version::parse(version).ok().as_ref() != Some(&manifest.version) {
        return Err(LoadError::Mismatch {
            path: path.to_owned(),
            field: "version",
            manifest: manifest.version.to_string(),
            library: version.to_owned(),
        });
    }
    Ok(())
}

/// Opens the library at `library` and checks it against the manifest. Runs no plugin hook.
/// `library` is [`locate_library`]'s path, or a private copy of that file; either way
/// canonical. Returns the open file too: the file is opened once per load, for the checks
/// before the dynamic loader sees it and for the record of what was loaded.
pub(crate) fn open_checked(
    manifest: &Manifest,
    library: &Path,
) -> Result<(Library, Unmappable, File), LoadError> {
    let file = File::open(library).map_err(|_| LoadError::NotFound {
        path: library.to_owned(),
        manifest: PathBuf::new(),
    })?;
    // Read from the file before loading it: a file shorter than its headers say (half
    // written) never reaches the dynamic loader.
    let unmappable = check_before_load(&file).map_err(|reason| LoadError::NotSharedObject {
        path: library.to_owned(),
        reason,
    })?;
    let lib = Library::open(library, &file)?;
    check_identity(manifest, library, lib.name(), lib.version())?;
    Ok((lib, unmappable, file))
}

/// Opens and checks the library `manifest` describes, then closes it again: how the packaging
/// layer proves that a copy it placed loads. Opening runs the library's initializers (no
/// plugin hook), so where a `plg-worker` is found it happens in a throwaway one, under the
/// default [`WorkerPolicy`](super::WorkerPolicy): an initializer that crashes or hangs fails
/// the install instead of taking the installing process down.
pub(crate) fn check_loads(manifest: &Manifest, manifest_path: &Path) -> Result<(), LoadError> {
    let library = locate_library(manifest, manifest_path)?;
    #[cfg(feature = "isolation")]
    if let Ok(program) = super::worker::find_worker(None) {
        let policy = super::WorkerPolicy::default();
        return super::worker::check_in_worker(&program, manifest_path, &manifest.id(), &policy);
    }
    open_checked(manifest, &library).map(drop)
}

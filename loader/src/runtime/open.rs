//! The narrow door into the runtime: open a plugin's library and check it against its
//! manifest, running no plugin hook. Loading builds on it; packaging uses it (and only it) to
//! check what it installs.

use std::path::Path;

use semver::Version;

use super::ffi::Library;
use crate::{
    error::LoadError,
    manifest::{Manifest, Source},
};

/// Resolves the manifest's library, opens it and checks it against the manifest. Runs no
/// plugin hook.
pub(crate) fn open_checked(
    manifest: &Manifest,
    manifest_path: &Path,
) -> Result<Library, LoadError> {
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
    let lib = Library::open(&real_lib)?;
    if lib.name() != manifest.name {
        return Err(LoadError::Mismatch {
            path: real_lib,
            field: "name",
            manifest: manifest.name.clone(),
            library: lib.name().to_owned(),
        });
    }
    if Version::parse(lib.version()).ok().as_ref() != Some(&manifest.version) {
        return Err(LoadError::Mismatch {
            path: real_lib,
            field: "version",
            manifest: manifest.version.to_string(),
            library: lib.version().to_owned(),
        });
    }
    Ok(lib)
}

/// Opens and checks the library `manifest` describes, then closes it again: how the packaging
/// layer proves that a copy it placed loads. Runs the library's initializers, no plugin hook.
pub(crate) fn check_loads(manifest: &Manifest, manifest_path: &Path) -> Result<(), LoadError> {
    open_checked(manifest, manifest_path).map(drop)
}

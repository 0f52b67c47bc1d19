//! Looking at plugins without loading them into the registry: [`PluginManager::scan`] reads
//! files only, so no plugin code runs; [`PluginManager::check_loads`] opens a library as
//! loading would (its initializers run) but registers nothing.

use std::path::{Path, PathBuf};

use super::{
    manager::PluginManager,
    open::{inspect, locate_library, locate_program, open_checked},
};
use crate::{
    error::LoadError,
    manifest::{
        note::PluginNote,
        preflight::{preflight, Unmappable},
        Manifest,
    },
};

/// One plugin found by [`PluginManager::scan`], inspected from its files but not loaded.
#[derive(Debug)]
pub struct ScanEntry {
    /// The manifest file.
    pub manifest_path: PathBuf,
    /// The manifest, if it is valid.
    pub manifest: Option<Manifest>,
    /// `Ok` if everything that can be checked without loading holds (the manifest, the
    /// library file in place, its note's ABI version, name and version); otherwise why not.
    /// Only loading checks the rest (type layouts, initializers, `on_load`).
    pub status: Result<(), LoadError>,
    /// The library's note, when it has one (plugins built with an older plg-api have none).
    pub note: Option<PluginNote>,
    /// The unload-safety preflight of its library, when the library was found.
    pub unmappable: Option<Unmappable>,
}

impl PluginManager {
    /// Inspects every plugin under the plugins directory from its files (manifest, library in
    /// place, the note's ABI version, name and version) without loading any library, so no
    /// plugin code runs, and without registering anything. `remote_git` sources are looked up
    /// in the cache only.
    pub fn scan(&self) -> Result<Vec<ScanEntry>, LoadError> {
        let found = self.discover()?;
        let unreadable = found.failed.into_iter().map(|f| ScanEntry {
            manifest_path: f.path,
            manifest: None,
            status: Err(f.error),
            note: None,
            unmappable: None,
        });
        Ok(found
            .manifests
            .into_iter()
            .map(|path| match Manifest::from_path(&path) {
                Err(e) => ScanEntry {
                    manifest_path: path,
                    manifest: None,
                    status: Err(e.into()),
                    note: None,
                    unmappable: None,
                },
                Ok(m) if matches!(m.source, crate::manifest::Source::Exec { .. }) => ScanEntry {
                    status: locate_program(&m, &path).map(drop),
                    manifest_path: path,
                    manifest: Some(m),
                    note: None,
                    unmappable: None,
                },
                Ok(m) => {
                    let inspected = self
                        .localize(&m, &path, true)
                        .and_then(|(local, p)| inspect(&local, &p));
                    let unmappable = inspected
                        .as_ref()
                        .ok()
                        .and_then(|(_, library)| preflight(library).ok());
                    let inspected = inspected.map(|(note, _)| note);
                    let (status, note) = match inspected {
                        Ok(note) => (Ok(()), note),
                        Err(e) => (Err(e), None),
                    };
                    ScanEntry {
                        manifest_path: path,
                        manifest: Some(m),
                        status,
                        note,
                        unmappable,
                    }
                }
            })
            .chain(unreadable)
            .collect())
    }

    /// Checks that the plugin at `manifest_path` loads, as loading would, without running its
    /// hooks or registering it: the manifest, the library in place, every ABI and layout
    /// check. Opening the library runs its initializers, so where a `plg-worker` is found
    /// (and the policy does not say `never_isolate`) the library is opened in a throwaway
    /// worker, as [`check_loads_in_worker`](Self::check_loads_in_worker) does, and this
    /// process runs no plugin code; otherwise it is opened here, where an initializer may
    /// crash or hang this process. `remote_git` sources are looked up in the cache only.
    pub fn check_loads(&self, manifest_path: impl AsRef<Path>) -> Result<(), LoadError> {
        let manifest_path = manifest_path.as_ref();
        match self.check_loads_in_worker(manifest_path) {
            Some(checked) => checked,
            None => self.check_loads_here(manifest_path),
        }
    }

    /// [`check_loads`](Self::check_loads) in a throwaway `plg-worker`, under the worker
    /// policy's rules (cleared environment, limits, its own process group; the start timeout
    /// is the check's timeout). A crash or hang of the library's initializers is that
    /// plugin's error (`WorkerError::CheckCrashed`, `WorkerError::CheckTimeout`); a failed
    /// check is the same [`LoadError`] an in-process load gives. `None` when no worker can
    /// be used: plg-loader built without `isolation`, no `plg-worker` found, or a policy of
    /// `never_isolate`.
    pub fn check_loads_in_worker(
        &self,
        manifest_path: impl AsRef<Path>,
    ) -> Option<Result<(), LoadError>> {
        #[cfg(feature = "isolation")]
        {
            let manifest_path = manifest_path.as_ref();
            if self.worker_policy.never_isolate {
                return None;
            }
            let program = super::worker::find_worker(self.worker_policy.program.as_deref()).ok()?;
            let manifest = match Manifest::from_path(manifest_path) {
                Ok(m) => m,
                Err(e) => return Some(Err(e.into())),
            };
            if let crate::manifest::Source::Exec { .. } = manifest.source {
                return Some(locate_program(&manifest, manifest_path).map(drop));
            }
            let checked =
                self.localize(&manifest, manifest_path, true)
                    .and_then(|(local, local_path)| {
                        locate_library(&local, &local_path)?;
                        super::worker::check_in_worker(
                            &program,
                            &local_path,
                            &local.id(),
                            &self.worker_policy,
                        )
                    });
            Some(checked)
        }
        #[cfg(not(feature = "isolation"))]
        {
            let _ = manifest_path;
            None
        }
    }

    /// [`check_loads`](Self::check_loads) in this process.
    fn check_loads_here(&self, manifest_path: &Path) -> Result<(), LoadError> {
        let manifest = Manifest::from_path(manifest_path)?;
        if self
            .lookup(&manifest.name, &manifest.version)
            .is_some_and(|p| p.manifest_path() == manifest_path)
        {
            return Ok(()); // loaded from here already; a second open would be refused
        }
        if let crate::manifest::Source::Exec { .. } = manifest.source {
            // Starting it would run it: only its file is checked.
            return locate_program(&manifest, manifest_path).map(drop);
        }
        let (local, local_path) = self.localize(&manifest, manifest_path, true)?;
        open_here(&local, &local_path)
    }
}

/// Opens and checks `local`'s library in this process, then closes it.
fn open_here(local: &Manifest, local_path: &Path) -> Result<(), LoadError> {
    let library = locate_library(local, local_path)?;
    open_checked(local, &library).map(drop)
}

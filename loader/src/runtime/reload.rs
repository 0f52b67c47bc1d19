//! Hot upgrade: [`PluginManager::reload`] replaces a loaded plugin with the version now on
//! disk, with no failed call.
//!
//! The order is what makes it safe:
//! 1. Load the new version from a private copy ([`live_dir`]), with every load check,
//!    `on_load` and the plugin's `self_test`. Any failure leaves the old version serving.
//! 2. Hand the state over: the old version's `save_state` writes a context, the new
//!    version's `restore_state` reads it. A failure refuses the upgrade.
//! 3. Swap: the registry and every handle that follows the upgrade point at the new version.
//!    A call that read the old version just before the swap and finds it closed retries on
//!    the new one ([`Plugin::execute`]); calls already inside the old version finish there.
//! 4. Retire the old version once no handle stays on it: wait for its calls, unload it with
//!    the usual verification, and remove its private copy once its image is unmapped.

use std::{
    fs::File,
    path::{Path, PathBuf},
    sync::{Arc, Weak},
};

use plg_api::Context;

use super::{
    events::{EventKind, Retired},
    live_dir::LiveDir,
    manager::PluginManager,
    open::{locate_library, locate_program},
    plugin::{Hook, Instance, Plugin},
    provenance, UnloadReport,
};
use crate::{
    error::{IoError, LoadError, LookupError, UnloadError},
    manifest::{read_manifest_file, Manifest, Source},
};

/// A manifest found on disk: where, as parsed, and the text that was parsed. A reload
/// records that very text as what the new version was loaded from, so an edit landing after
/// the read is a change the next reload sees, never one recorded and missed.
pub(super) struct OnDisk {
    pub(super) path: PathBuf,
    pub(super) manifest: Manifest,
    text: String,
}

impl OnDisk {
    fn read(path: &Path) -> Result<Self, crate::error::ManifestError> {
        let text = read_manifest_file(path)?;
        let manifest = Manifest::from_json(&text, path)?;
        Ok(OnDisk {
            path: path.to_owned(),
            manifest,
            text,
        })
    }
}

/// What [`PluginManager::reload`] did.
#[derive(Debug, Clone)]
pub enum Reload {
    /// The newest version on disk is byte for byte what is loaded: nothing was done.
    Unchanged {
        /// `name@version` loaded.
        plugin: String,
    },
    /// The new version serves now.
    Upgraded {
        /// `name@version` replaced.
        from: String,
        /// `name@version` now serving.
        to: String,
        /// How many values the state hand-over carried; `None` if the two versions do not
        /// both export `save_state` and `restore_state`.
        state: Option<usize>,
        /// What became of the old version.
        retired: Retired,
    },
}

impl PluginManager {
    /// Replaces the loaded plugin `name` (its highest loaded version) with the highest version
    /// of it now under the plugins directory, with no failed call. See [`Plugin`], "Hot
    /// upgrade", for which handles follow.
    ///
    /// The new version is loaded from a private copy of its library under
    /// `PLUGINS_DIR/.plg/live/`, checked like any load, and started (`on_load`, then its
    /// `self_test` if it exports one). The old version's `save_state` and the new one's
    /// `restore_state` then hand the state over, if both export them. Only then do handles
    /// move. Calls running on the old version finish there; it is unloaded (and verified)
    /// once they drain, unless handles stay on it.
    ///
    /// Refused, with the old version still serving, if anything fails: the error is returned
    /// and sent as [`EventKind::ReloadFailed`] (shared, hence the `Arc`). A reload of unchanged bytes does nothing
    /// ([`Reload::Unchanged`]).
    ///
    /// State written by calls that finish on the old version after its `save_state` ran is
    /// not carried over: for an exact hand-over, reload when the plugin is idle.
    pub fn reload(&self, name: &str) -> Result<Reload, Arc<LoadError>> {
        self.reload_with(name, None)
    }

    /// [`reload`](Self::reload) to the plugin described by the manifest at `manifest_path`
    /// (under the plugins directory), whatever else is on disk: how `plg dev` upgrades to the
    /// build it just staged.
    pub fn reload_from(&self, manifest_path: impl AsRef<Path>) -> Result<Reload, Arc<LoadError>> {
        let found = OnDisk::read(manifest_path.as_ref()).map_err(|e| Arc::new(e.into()))?;
        let name = found.manifest.name.clone();
        self.reload_with(&name, Some(found))
    }

    /// [`reload`](Self::reload), to `target` (a manifest already read) when given.
    pub(super) fn reload_with(
        &self,
        name: &str,
        target: Option<OnDisk>,
    ) -> Result<Reload, Arc<LoadError>> {
        let _loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        self.retire_drained();
        let old = self.highest_loaded(name).map_err(Arc::new)?;
        let found = match target {
            Some(found) => Ok(found),
            None => self.newest_on_disk(name),
        };
        let OnDisk {
            path: manifest_path,
            manifest,
            text: manifest_text,
        } = match found {
            Ok(found) => found,
            Err(e) => return Err(self.refused(&old, &self.plugins_dir().path().join(name), e)),
        };
        if !old.is_loaded() {
            let e = LoadError::Lookup(LookupError::NotLoaded {
                name: name.to_owned(),
                available: Vec::new(),
            });
            return Err(self.refused(&old, &manifest_path, e));
        }
        if manifest.version < *old.version() {
            let e = LoadError::Downgrade {
                plugin: old.id().to_owned(),
                found: manifest.version.to_string(),
                manifest: manifest_path.clone(),
            };
            return Err(self.refused(&old, &manifest_path, e));
        }
        match self.upgrade(&old, &manifest_path, &manifest_text, manifest) {
            Ok(reload) => Ok(reload),
            Err(e) => Err(self.refused(&old, &manifest_path, e)),
        }
    }

    fn refused(&self, old: &Arc<Instance>, path: &Path, error: LoadError) -> Arc<LoadError> {
        let error = Arc::new(error);
        self.events.emit(EventKind::ReloadFailed {
            plugin: old.id().to_owned(),
            path: path.to_owned(),
            error: Arc::clone(&error),
        });
        error
    }

    fn upgrade(
        &self,
        old: &Arc<Instance>,
        manifest_path: &Path,
        manifest_text: &str,
        manifest: Manifest,
    ) -> Result<Reload, LoadError> {
        // An exec plugin's program is run from where it is (a new process for the new
        // version); any other source resolves to a library, loaded from a private copy.
        let (local_path, library) = match manifest.source {
            Source::Exec { .. } => (
                manifest_path.to_owned(),
                locate_program(&manifest, manifest_path)?,
            ),
            _ => {
                let (local, local_path) = self.localize(&manifest, manifest_path, false)?;
                let library = locate_library(&local, &local_path)?;
                (local_path, library)
            }
        };
        let unchanged = || {
            Ok(Reload::Unchanged {
                plugin: old.id().to_owned(),
            })
        };
        // The bytes the old version was loaded from, compared with the new ones until they
        // differ; hashed only when the old bytes cannot be read back.
        let description =
            provenance::description_of(manifest_text, manifest_path, &manifest, &local_path);
        let library_file = File::open(&library).map_err(|e| IoError::new(&library, e))?;
        let digest = match old.same_content(&description, &library_file) {
            Some(true) => return unchanged(),
            Some(false) => None,
            None => {
                let digest = provenance::digest(&description, &library, &library_file)?;
                let library_len = library_file.metadata().map_or(0, |m| m.len());
                if old.loaded_from(&digest, library_len) {
                    return unchanged();
                }
                Some(digest)
            }
        };
        self.check_dependencies(&manifest, &[])?;
        self.check_no_cycle(&manifest)?;
        let live = self.live_dir();
        let new = self.open_instance(
            manifest,
            manifest_path,
            Some((&live, digest)),
            Some(description),
        )?;
        let started = self.start(old, &new);
        let state = match started {
            Ok(state) => state,
            Err(e) => {
                let _ = new.unload(self.unload_timeout);
                return Err(e);
            }
        };
        self.swap(old, &new);
        let retired = self.retire(old);
        self.reclaim_moved(old.name());
        self.events.emit(EventKind::Reloaded {
            from: old.id().to_owned(),
            to: new.id().to_owned(),
            retired: retired.clone(),
        });
        Ok(Reload::Upgraded {
            from: old.id().to_owned(),
            to: new.id().to_owned(),
            state,
            retired,
        })
    }

    /// The new version's self-test, then the state hand-over. Returns how many values were
    /// handed over.
    fn start(&self, old: &Arc<Instance>, new: &Arc<Instance>) -> Result<Option<usize>, LoadError> {
        let hook_error =
            |instance: &Instance, hook: &'static str, e: crate::ExecError| LoadError::UpgradeHook {
                plugin: instance.id().to_owned(),
                hook,
                message: e.to_string(),
            };
        let mut ctx = Context::new().with_label("self_test");
        new.run_hook(Hook::SelfTest, &mut ctx)
            .map_err(|e| hook_error(new, "self_test", e))?;
        let hands_over =
            old.runtime().has_hook(Hook::SaveState) && new.runtime().has_hook(Hook::RestoreState);
        if !hands_over {
            return Ok(None);
        }
        let mut state = Context::new().with_label("save_state");
        old.run_hook(Hook::SaveState, &mut state)
            .map_err(|e| hook_error(old, "save_state", e))?;
        let values = state.values().len();
        let mut state = state.with_label("restore_state");
        new.run_hook(Hook::RestoreState, &mut state)
            .map_err(|e| hook_error(new, "restore_state", e))?;
        self.events.emit(EventKind::StateRestored {
            from: old.id().to_owned(),
            to: new.id().to_owned(),
            values,
        });
        Ok(Some(values))
    }

    /// Registers `new` and moves every handle that follows it off `old`. Holds the handles
    /// lock throughout, so a handle being handed out either exists before (and is moved) or
    /// sees `old`'s successor (see `hand_out`).
    fn swap(&self, old: &Arc<Instance>, new: &Arc<Instance>) {
        let handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        old.set_successor(new);
        {
            let mut map = self.plugins.write().unwrap_or_else(|e| e.into_inner());
            let versions = map.entry(new.name().to_owned()).or_default();
            match versions.get(new.version()) {
                // A rebuild of a loaded version: its registry entry moves to the rebuild.
                Some(entry) => {
                    entry.swap(&entry.instance(), new);
                }
                None => {
                    versions.insert(new.version().clone(), Plugin::pinned(Arc::clone(new)));
                }
            }
        }
        for handle in handles
            .iter()
            .filter_map(Weak::upgrade)
            .map(Plugin::from_slot)
        {
            if handle.name() == old.name() && handle.follows(new.version()) {
                handle.swap(old, new);
            }
        }
    }

    /// Unloads `old` unless a handle (other than its own registry entry) stays on it.
    fn retire(&self, old: &Arc<Instance>) -> Retired {
        // A dependent's need comes first: its handle for `Context::call` stays on `old` too,
        // and "needed by" says why.
        if new_version_differs(old, &self.highest_loaded(old.name()).ok()) {
            let entry = Plugin::pinned(Arc::clone(old));
            let needed_by = self.dependents_of(&entry, std::slice::from_ref(&entry));
            if !needed_by.is_empty() {
                return Retired::Needed { by: needed_by };
            }
        }
        let staying = self
            .live_handles(old.name())
            .iter()
            .filter(|h| Arc::ptr_eq(&h.instance(), old))
            .count();
        if staying > 0 {
            return Retired::Kept { handles: staying };
        }
        self.forget_instance(old);
        match old.unload(self.unload_timeout) {
            Ok(report) => Retired::Unloaded(report),
            Err(UnloadError::Busy { in_flight, .. }) => {
                self.retiring
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Arc::clone(old));
                Retired::Draining { in_flight }
            }
            Err(e) => {
                tracing::warn!(plugin = old.id(), error = %e, "retiring the old version failed");
                Retired::Draining { in_flight: 0 }
            }
        }
    }

    /// Unloads the retired versions whose calls have drained since.
    pub(super) fn retire_drained(&self) -> Vec<(Option<UnloadReport>, Option<UnloadError>)> {
        let waiting: Vec<Arc<Instance>> =
            std::mem::take(&mut *self.retiring.lock().unwrap_or_else(|e| e.into_inner()));
        let mut done = Vec::new();
        for instance in waiting {
            match instance.unload(std::time::Duration::ZERO) {
                Ok(report) => {
                    self.events.emit(EventKind::Unloaded {
                        report: report.clone(),
                    });
                    done.push((Some(report), None));
                }
                Err(UnloadError::Busy { .. }) => self
                    .retiring
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(instance),
                Err(e) => done.push((None, Some(e))),
            }
        }
        done
    }

    /// Removes `instance`'s registry entry, if the entry still points at it.
    fn forget_instance(&self, instance: &Arc<Instance>) {
        let mut map = self.plugins.write().unwrap_or_else(|e| e.into_inner());
        if let Some(versions) = map.get_mut(instance.name()) {
            if versions
                .get(instance.version())
                .is_some_and(|p| Arc::ptr_eq(&p.instance(), instance))
            {
                versions.remove(instance.version());
            }
            if versions.is_empty() {
                map.remove(instance.name());
            }
        }
    }

    /// Every handle given out for `name` that is still held.
    /// Drops, outside every lock, the instances the handles of `name` (and its registry
    /// entries) were moved off and no call uses any more. One still in use stays until the
    /// next upgrade of `name` or its handle's end.
    fn reclaim_moved(&self, name: &str) {
        let mut handles = self.live_handles(name);
        {
            let map = self.plugins.read().unwrap_or_else(|e| e.into_inner());
            handles.extend(map.get(name).into_iter().flat_map(|v| v.values().cloned()));
        }
        let freed: Vec<Arc<Instance>> = handles.iter().flat_map(Plugin::reclaim).collect();
        drop(handles);
        drop(freed);
    }

    fn live_handles(&self, name: &str) -> Vec<Plugin> {
        let mut handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        handles.retain(|w| w.strong_count() > 0);
        handles
            .iter()
            .filter_map(|w| w.upgrade())
            .map(Plugin::from_slot)
            .filter(|p| p.name() == name)
            .collect()
    }

    /// Whether a handle given out still points at what `entry` points at.
    pub(super) fn handed_out(&self, entry: &Plugin) -> bool {
        let instance = entry.instance();
        self.live_handles(entry.name())
            .iter()
            .any(|h| !h.is_internal() && Arc::ptr_eq(&h.instance(), &instance))
    }

    /// The highest loaded version of `name`.
    fn highest_loaded(&self, name: &str) -> Result<Arc<Instance>, LoadError> {
        let map = self.plugins.read().unwrap_or_else(|e| e.into_inner());
        map.get(name)
            .and_then(|v| v.values().next_back())
            .map(Plugin::instance)
            .ok_or_else(|| {
                LoadError::Lookup(LookupError::NotLoaded {
                    name: name.to_owned(),
                    available: map.keys().cloned().collect(),
                })
            })
    }

    /// The manifest of the highest version of `name` under the plugins directory.
    pub(super) fn newest_on_disk(&self, name: &str) -> Result<OnDisk, LoadError> {
        let found = self.plugins_dir().manifests_of(name);
        let mut best: Option<OnDisk> = None;
        let mut first_error = None;
        for path in found.manifests {
            match OnDisk::read(&path) {
                Ok(m) if m.manifest.name == name => {
                    if best
                        .as_ref()
                        .is_none_or(|b| m.manifest.version > b.manifest.version)
                    {
                        best = Some(m);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match (best, first_error) {
            (Some(found), _) => Ok(found),
            (None, Some(e)) => Err(e.into()),
            (None, None) => Err(LoadError::NotInstalled {
                name: name.to_owned(),
                requirement: None,
                plugins_dir: self.plugins_dir().path().to_owned(),
                versions: Vec::new(),
                broken: 0,
                others: Box::default(),
            }),
        }
    }

    /// This process's directory of private copies.
    pub(super) fn live_dir(&self) -> LiveDir {
        LiveDir::new(self.plugins_dir().path())
    }
}

/// Whether the upgrade moved to another version (so `old` leaves a version behind that
/// loaded plugins may depend on), rather than rebuilding the same one.
fn new_version_differs(old: &Instance, newest: &Option<Arc<Instance>>) -> bool {
    newest
        .as_ref()
        .is_some_and(|n| n.version() != old.version())
}

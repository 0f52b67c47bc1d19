//! [`PluginManager`]: discovery, loading, lookup by name and semver, and unloading.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock, Weak},
    time::Duration,
};

use plg_api::Context;
use semver::{Version, VersionReq};

use super::{
    events::{EventKind, Events, Subscription, DEFAULT_EVENT_CAPACITY},
    hooks::Hooks,
    live_dir,
    metrics::MetricsByVersion,
    open::{locate_library, open_checked},
    plugin::{Hook, Instance, Plugin, Slot, UnloadReport},
    provenance,
    resolve::{self, Candidate},
    schemas::Schemas,
    worker::WorkerPolicy,
};
use crate::{
    error::{LoadError, LoadFailure, LookupError, UnloadError},
    manifest::{Manifest, Source, SourceResolver},
    plugins_dir::{Discovery, PluginsDir},
};

/// The default bound on how long [`PluginManager::unload`] waits for calls in flight.
pub const DEFAULT_UNLOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// What [`PluginManager::load_all`] did: every plugin loaded, and every failure.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// The plugins now loaded from the plugins directory (including ones loaded before).
    pub loaded: Vec<Plugin>,
    /// The plugins that failed, each with its error. One failure never stops the others.
    pub failed: Vec<LoadFailure>,
}

/// Loads plugins from a plugins directory and hands out [`Plugin`] handles.
///
/// # Layout
/// A plugin is a directory holding `plugin.json` and its library. The manager finds them
/// through [`PluginsDir::discover`]: at `PLUGINS_DIR/NAME/VERSION/plugin.json` (the layout
/// `plg build` and `plg install` write, which keeps several versions side by side) and at
/// `PLUGINS_DIR/DIR/plugin.json`. Directories whose names start with `.` are skipped.
///
/// A manifest whose source is not a local library (`remote_git`) is turned into one by the
/// manager's [`SourceResolver`]. [`PluginManager::new`] wires in the git resolver when the
/// `git` feature is on; it is defined with the crate's other defaults, the one place where
/// the runtime meets the packaging layer.
///
/// All methods take `&self`; share a manager between threads in an `Arc`.
///
/// # Dropping
/// **Dropping the manager unloads every plugin it loaded.** A [`Plugin`] handle does not keep
/// its plugin loaded: once the manager is gone, the handle's `execute` returns
/// [`ExecError::Unloaded`](crate::ExecError::Unloaded). Keep the manager at least as long as
/// its handles. A manager dropped while handles are held logs a warning naming them.
///
/// ```no_run
/// use plg_loader::{Plugin, PluginManager};
///
/// // Wrong: the manager is dropped on return, so the handle comes back unloaded.
/// fn hello() -> Plugin {
///     let manager = PluginManager::new("plugins");
///     manager.load_matching("hello", None).unwrap()
/// }
///
/// // Right: the caller keeps the manager.
/// fn hello_from(manager: &PluginManager) -> Plugin {
///     manager.load_matching("hello", None).unwrap()
/// }
/// ```
#[derive(Debug)]
pub struct PluginManager {
    plugins_dir: PluginsDir,
    pub(super) unload_timeout: Duration,
    pub(super) plugins: RwLock<BTreeMap<String, BTreeMap<Version, Plugin>>>,
    /// Held while a plugin loads, so two threads loading the same plugin cannot both run its
    /// `on_load`: the second one finds it registered.
    pub(super) loading: Mutex<()>,
    /// Turns `remote_git` (and any other non-local) sources into local libraries.
    resolver: Option<Arc<dyn SourceResolver>>,
    /// Subscribers to what happens to the plugins.
    pub(super) events: Events,
    /// Every handle given out, so that a hot upgrade can move the ones that follow it.
    pub(super) handles: Mutex<Vec<Weak<Slot>>>,
    /// Retired versions whose calls had not drained within the unload timeout: unloaded at
    /// the next reload, `unload_all` or drop.
    pub(super) retiring: Mutex<Vec<Arc<Instance>>>,
    /// The host's call hooks, run around every call.
    pub(super) hooks: Hooks,
    /// Call metrics per plugin version; `None` when metrics are off.
    pub(super) metrics: Option<MetricsByVersion>,
    /// Time one call in this many per thread.
    pub(super) sample_every: u32,
    /// Which plugins run in worker processes, and how workers are supervised.
    pub(super) worker_policy: WorkerPolicy,
    /// A worker started ahead of need ([`WorkerPolicy::prestart`]).
    #[cfg(feature = "isolation")]
    pub(super) spares: Option<Arc<super::worker::Spares>>,
}

impl PluginManager {
    /// A manager for plugins under `plugins_dir` that loads only local libraries. Nothing is
    /// read until you load.
    pub fn local_only(plugins_dir: impl Into<PluginsDir>) -> Self {
        Self {
            plugins_dir: plugins_dir.into(),
            unload_timeout: DEFAULT_UNLOAD_TIMEOUT,
            plugins: RwLock::default(),
            loading: Mutex::new(()),
            resolver: None,
            events: Events::default(),
            handles: Mutex::new(Vec::new()),
            retiring: Mutex::new(Vec::new()),
            hooks: Hooks::default(),
            metrics: Some(Mutex::default()),
            sample_every: super::metrics::SAMPLE_EVERY,
            worker_policy: WorkerPolicy::default(),
            #[cfg(feature = "isolation")]
            spares: None,
        }
    }

    /// Sets which plugins run in supervised worker processes, and how those are supervised
    /// ([`WorkerPolicy`]). Running a plugin in a worker needs plg-loader's `isolation`
    /// feature and the `plg-worker` binary; callers' code does not change.
    pub fn with_worker_policy(mut self, policy: WorkerPolicy) -> Self {
        #[cfg(feature = "isolation")]
        {
            self.spares = super::worker::Spares::new(&policy);
        }
        self.worker_policy = policy;
        self
    }

    /// Whether a worker started ahead of need ([`WorkerPolicy::prestart`]) is waiting to be
    /// taken. Starting one takes a few milliseconds after the manager is made, or after the
    /// last one was taken.
    pub fn spare_worker_ready(&self) -> bool {
        #[cfg(feature = "isolation")]
        {
            self.spares.as_ref().is_some_and(|s| s.ready())
        }
        #[cfg(not(feature = "isolation"))]
        {
            false
        }
    }

    /// The worker policy ([`with_worker_policy`](Self::with_worker_policy)).
    pub fn worker_policy(&self) -> &WorkerPolicy {
        &self.worker_policy
    }

    /// Sets how sources that are not local libraries (`remote_git`) are fetched and built.
    pub fn with_source_resolver(mut self, resolver: Arc<dyn SourceResolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Resolves a manifest to the manifest and path of a local library: itself for
    /// `local_so`, the resolver's for anything else (fetching and building it unless
    /// `offline`). The local copy must be the same plugin: its name and version are checked.
    pub(super) fn localize(
        &self,
        manifest: &Manifest,
        manifest_path: &Path,
        offline: bool,
    ) -> Result<(Manifest, PathBuf), LoadError> {
        if let Source::LocalSo { .. } = manifest.source {
            return Ok((manifest.clone(), manifest_path.to_owned()));
        }
        let Some(resolver) = &self.resolver else {
            return Err(LoadError::UnsupportedSource {
                manifest: manifest_path.to_owned(),
                mode: manifest.source.mode(),
            });
        };
        let (local, local_path) = resolver.localize(manifest, manifest_path, offline)?;
        for (field, ours, theirs) in [
            ("name", manifest.name.clone(), local.name.clone()),
            (
                "version",
                manifest.version.to_string(),
                local.version.to_string(),
            ),
        ] {
            if ours != theirs {
                return Err(LoadError::Mismatch {
                    path: local_path,
                    field,
                    manifest: ours,
                    library: theirs,
                });
            }
        }
        Ok((local, local_path))
    }

    /// Sets how long [`unload`](Self::unload) waits for calls in flight.
    pub fn with_unload_timeout(mut self, timeout: Duration) -> Self {
        self.unload_timeout = timeout;
        self
    }

    /// The plugins directory.
    pub fn plugins_dir(&self) -> &PluginsDir {
        &self.plugins_dir
    }

    /// Every `plugin.json` under the plugins directory, and every entry that could not be
    /// looked into ([`PluginsDir::discover`]).
    pub fn discover(&self) -> Result<Discovery, LoadError> {
        self.plugins_dir.discover()
    }

    /// Loads every plugin under the plugins directory. Returns every failure; one broken plugin
    /// never stops the others. Plugins already loaded stay loaded and are listed as loaded.
    pub fn load_all(&self) -> LoadReport {
        let mut report = LoadReport::default();
        let found = match self.discover() {
            Ok(found) => found,
            Err(error) => {
                report.failed.push(LoadFailure {
                    path: self.plugins_dir.path().to_owned(),
                    error,
                });
                return report;
            }
        };
        let mut failures = found.failed;
        // Read every manifest first, so that dependencies are resolved over the whole set
        // before anything loads.
        let mut candidates = Vec::new();
        for path in found.manifests {
            match Manifest::from_path(&path) {
                Ok(manifest) => candidates.push(Candidate { path, manifest }),
                Err(e) => failures.push(LoadFailure {
                    path,
                    error: e.into(),
                }),
            }
        }
        let plan = resolve::plan(&candidates, &self.loaded_versions());
        for (i, error) in plan.refused {
            failures.push(LoadFailure {
                path: candidates[i].path.clone(),
                error,
            });
        }
        for f in &failures {
            self.events.emit(EventKind::LoadFailed {
                path: f.path.clone(),
                error: f.error.to_string(),
            });
        }
        report.failed.extend(failures);
        let names: Vec<&str> = candidates
            .iter()
            .map(|c| c.manifest.name.as_str())
            .collect();
        for i in plan.order {
            let Candidate { path, manifest } = &candidates[i];
            // A dependency that was to load first may have failed (its `on_load`, say).
            if self.lookup(&manifest.name, &manifest.version).is_none() {
                if let Err(error) = self.check_dependencies(manifest, &names) {
                    self.events.emit(EventKind::LoadFailed {
                        path: path.clone(),
                        error: error.to_string(),
                    });
                    report.failed.push(LoadFailure {
                        path: path.clone(),
                        error,
                    });
                    continue;
                }
            }
            match self.load_parsed(path, manifest.clone()) {
                Ok(p) => report.loaded.push(self.hand_out(&p, VersionReq::STAR)),
                Err(LoadError::AlreadyLoaded { plugin, existing }) if existing == *path => {
                    if let Some(p) = self.lookup_id(&plugin) {
                        report.loaded.push(self.hand_out(&p, VersionReq::STAR));
                    }
                }
                Err(error) => report.failed.push(LoadFailure {
                    path: path.clone(),
                    error,
                }),
            }
        }
        report
    }

    /// Loads the plugin described by the manifest at `manifest_path`: checks the library,
    /// runs its `on_load` hook and registers it.
    ///
    /// The handle follows every hot upgrade of the plugin ([`Plugin`], "Hot upgrade").
    pub fn load_manifest(&self, manifest_path: impl AsRef<Path>) -> Result<Plugin, LoadError> {
        let manifest_path = manifest_path.as_ref();
        match Manifest::from_path(manifest_path) {
            Ok(manifest) => self
                .load_parsed(manifest_path, manifest)
                .map(|p| self.hand_out(&p, VersionReq::STAR)),
            Err(e) => {
                let result = Err(e.into());
                self.report_load(manifest_path, &result);
                result
            }
        }
    }

    /// [`load_manifest`](Self::load_manifest) of a manifest already read from
    /// `manifest_path` (`load_all` reads them all first, to resolve dependencies).
    fn load_parsed(&self, manifest_path: &Path, manifest: Manifest) -> Result<Plugin, LoadError> {
        let result = self.load_quietly(manifest_path, manifest, None);
        self.report_load(manifest_path, &result);
        result
    }

    /// Loads a plugin from a private copy of its library (as a hot upgrade does), so that
    /// rewriting the file in place later cannot touch the running image. The watch loads
    /// new plugins this way.
    pub(super) fn load_live(
        &self,
        manifest_path: &Path,
        manifest: Manifest,
    ) -> Result<Plugin, LoadError> {
        let live = self.live_dir();
        let result = self.load_quietly(manifest_path, manifest, Some((&live, None)));
        self.report_load(manifest_path, &result);
        result
    }

    /// The event for a load's outcome.
    fn report_load(&self, manifest_path: &Path, result: &Result<Plugin, LoadError>) {
        match result {
            Ok(p) => self.events.emit(EventKind::Loaded {
                plugin: p.id().to_owned(),
                manifest: manifest_path.to_owned(),
                preflight: p.unload_preflight().clone(),
            }),
            // Loading what is already loaded from this very manifest is not a failure.
            Err(LoadError::AlreadyLoaded { existing, .. }) if existing == manifest_path => {}
            Err(e) => self.events.emit(EventKind::LoadFailed {
                path: manifest_path.to_owned(),
                error: e.to_string(),
            }),
        }
    }

    fn load_quietly(
        &self,
        manifest_path: &Path,
        manifest: Manifest,
        copy_to: Option<(&live_dir::LiveDir, Option<provenance::Digest>)>,
    ) -> Result<Plugin, LoadError> {
        let _loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = self.lookup(&manifest.name, &manifest.version) {
            return Err(LoadError::AlreadyLoaded {
                plugin: manifest.id(),
                existing: existing.manifest_path().to_owned(),
            });
        }
        self.check_dependencies(&manifest, &[])?;
        let instance = self.open_instance(manifest, manifest_path, copy_to, None)?;
        let plugin = Plugin::pinned(instance);
        let mut map = self.plugins.write().unwrap_or_else(|e| e.into_inner());
        let versions = map.entry(plugin.name().to_owned()).or_default();
        if let Some(existing) = versions.get(&plugin.version()) {
            return Err(LoadError::AlreadyLoaded {
                plugin: plugin.id().to_owned(),
                existing: existing.manifest_path().to_owned(),
            });
        }
        versions.insert(plugin.version().clone(), plugin.clone());
        Ok(plugin)
    }

    /// Opens, checks and starts one instance of a plugin: schemas, the source made local,
    /// the library opened and checked (from a private copy in `copy_to`'s directory when
    /// given, with the content hash if the caller already computed it: see [`live_dir`]),
    /// `on_load`. The instance is not registered.
    pub(super) fn open_instance(
        &self,
        manifest: Manifest,
        manifest_path: &Path,
        copy_to: Option<(&live_dir::LiveDir, Option<provenance::Digest>)>,
        described: Option<Vec<u8>>,
    ) -> Result<Arc<Instance>, LoadError> {
        let schemas = Schemas::load(&manifest, manifest_path)?;
        // What the instance records as loaded: a reload's is the very snapshot it compared
        // (and hashed, if it did); otherwise read now, before the library is opened.
        let describe = |local_path: &Path| {
            described
                .unwrap_or_else(|| provenance::description(manifest_path, &manifest, local_path))
        };
        if let Source::Exec { .. } = manifest.source {
            let description = describe(manifest_path);
            return self.open_exec(manifest, manifest_path, schemas, description);
        }
        let (local, local_path) = self.localize(&manifest, manifest_path, false)?;
        let description = describe(&local_path);
        if self.worker_policy.isolates(&manifest) {
            return self.open_in_worker(
                manifest,
                manifest_path,
                (&local, &local_path),
                schemas,
                description,
            );
        }
        let library = locate_library(&local, &local_path)?;
        // A private copy is named by its content hash when the caller computed one; no load
        // hashes anything itself (a later reload compares bytes, or hashes the copy).
        let (copy, digest) = match copy_to {
            Some((live, known)) => (
                Some(live.place(&manifest.name, &library, known.as_ref())?),
                known,
            ),
            None => (None, None),
        };
        let opened = open_checked(&local, copy.as_deref().unwrap_or(&library));
        let (lib, unmappable, file) = match opened {
            Ok(o) => o,
            Err(e) => {
                if let Some(copy) = &copy {
                    let _ = std::fs::remove_file(copy);
                }
                return Err(e);
            }
        };
        let id = manifest.id();
        let calls = self.call_site(&manifest.name, &manifest.version);
        let dependencies = self.dependency_handles(&manifest)?;
        let instance = Instance::in_process(
            manifest,
            manifest_path.to_owned(),
            lib,
            unmappable,
            schemas,
            match digest {
                Some(d) => provenance::Origin::opened_hashed(description, file, d),
                None => provenance::Origin::opened(description, file),
            },
            copy,
            calls,
            dependencies,
        );
        let mut ctx = Context::new().with_label("load");
        if let Err(e) = instance.run_hook(Hook::OnLoad, &mut ctx) {
            let _ = instance.unload(self.unload_timeout);
            return Err(LoadError::OnLoad {
                plugin: id,
                message: e.to_string(),
            });
        }
        instance.runtime().arm();
        if instance.runtime().panic_aborts() == Some(true) && self.worker_policy.refuse_panic_abort
        {
            let _ = instance.unload(self.unload_timeout);
            return Err(LoadError::PanicAborts { plugin: id });
        }
        if instance.runtime().panic_aborts() == Some(true) {
            tracing::warn!(
                plugin = instance.id(),
                "this plugin was built with panic = \"abort\": a panic in it aborts the whole \
                 host; rebuild it with the default panic = \"unwind\""
            );
        }
        Ok(instance)
    }

    /// A new handle to what `entry` points at, following upgrades that match `follows`.
    pub(super) fn hand_out(&self, entry: &Plugin, follows: VersionReq) -> Plugin {
        // Under the handles lock, which a hot upgrade holds while it moves handles: a handle
        // made from an entry read before an upgrade follows the upgrade's successor.
        let mut handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        let mut instance = entry.instance();
        while let Some(next) = instance.successor() {
            if !follows.matches(next.version()) {
                break;
            }
            instance = next;
        }
        let handle = Plugin::new(instance, follows);
        if handles.len() >= 64 && handles.len().is_power_of_two() {
            handles.retain(|w| w.strong_count() > 0);
        }
        handles.push(handle.downgrade());
        handle
    }

    /// Finds the highest version of `name` under the plugins directory that matches
    /// `requirement` (any version if `None`) and loads it, or returns it if already loaded.
    /// Only `name`'s own manifests are read ([`PluginsDir::manifests_of`]), so a broken or
    /// hostile neighbour does not matter.
    ///
    /// Dependencies it declares that are not loaded in a matching version are loaded first
    /// the same way (the highest installed version that matches), depth first; a problem
    /// with one is a [`LoadError::Dependency`] naming the chain.
    pub fn load_matching(
        &self,
        name: &str,
        requirement: Option<&str>,
    ) -> Result<Plugin, LoadError> {
        let before = self.loaded_versions();
        let result = self.load_matching_in(name, requirement, &mut Vec::new());
        if result.is_err() {
            // Nothing half-loaded: the dependencies this call loaded for a plugin that then
            // failed are unloaded again (dependents first, by the cascade).
            for (name, version) in self.loaded_versions() {
                if !before.contains(&(name.clone(), version.clone())) {
                    let _ = self.unload_cascade(&name, Some(&version));
                }
            }
        }
        result
    }

    /// [`load_matching`](Self::load_matching), for a dependency of the plugins in `chain`.
    pub(super) fn load_matching_in(
        &self,
        name: &str,
        requirement: Option<&str>,
        chain: &mut Vec<String>,
    ) -> Result<Plugin, LoadError> {
        let req = parse_req(requirement.unwrap_or("*"))?;
        let mut candidates: Vec<(Version, PathBuf)> = Vec::new();
        let found = self.plugins_dir.manifests_of(name);
        let mut broken = found.failed;
        for path in found.manifests {
            match Manifest::from_path(&path) {
                Ok(m) if m.name == name => candidates.push((m.version, path)),
                Ok(_) => {}
                Err(e) => broken.push(LoadFailure {
                    path,
                    error: e.into(),
                }),
            }
        }
        let versions: Vec<String> = candidates.iter().map(|(v, _)| v.to_string()).collect();
        let best = candidates
            .into_iter()
            .filter(|(v, _)| req.matches(v))
            .max_by(|a, b| a.0.cmp(&b.0));
        let Some((version, path)) = best else {
            return Err(LoadError::NotInstalled {
                name: name.to_owned(),
                requirement: requirement.map(str::to_owned),
                plugins_dir: self.plugins_dir.path().to_owned(),
                others: if versions.is_empty() {
                    self.plugins_dir.names().into()
                } else {
                    Box::default()
                },
                versions,
                broken: broken.len(),
            });
        };
        if let Some(p) = self.lookup(name, &version) {
            return Ok(self.hand_out(&p, req));
        }
        let manifest = Manifest::from_path(&path)?;
        chain.push(manifest.id());
        self.load_dependencies(&manifest, chain)?;
        chain.pop();
        self.load_parsed(&path, manifest)
            .map(|p| self.hand_out(&p, req))
    }

    /// The highest loaded version of `name`.
    pub fn get(&self, name: &str) -> Result<Plugin, LookupError> {
        self.get_matching(name, "*")
    }

    /// The highest loaded version of `name` matching a semver requirement such as `^1.2`.
    pub fn get_matching(&self, name: &str, requirement: &str) -> Result<Plugin, LookupError> {
        let req = parse_req(requirement)?;
        let map = self.plugins.read().unwrap_or_else(|e| e.into_inner());
        let Some(versions) = map.get(name).filter(|v| !v.is_empty()) else {
            return Err(LookupError::NotLoaded {
                name: name.to_owned(),
                available: map
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, _)| k.clone())
                    .collect(),
            });
        };
        let found = versions
            .iter()
            .rev()
            .find(|(v, _)| req.matches(v))
            .map(|(_, p)| p.clone());
        drop(map);
        found
            .map(|p| self.hand_out(&p, req))
            .ok_or_else(|| LookupError::NoMatch {
                name: name.to_owned(),
                requirement: requirement.to_owned(),
                versions: self
                    .loaded_versions()
                    .into_iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, v)| v.to_string())
                    .collect(),
            })
    }

    /// Every loaded plugin, by name then version. Each handle is pinned to its version (it
    /// follows rebuilds of that version only).
    pub fn plugins(&self) -> Vec<Plugin> {
        let map = self.plugins.read().unwrap_or_else(|e| e.into_inner());
        map.values().flat_map(|v| v.values().cloned()).collect()
    }

    /// Unloads `name` (one version, or every loaded version when `version` is `None`).
    ///
    /// For each: refuses new calls and signals cancellation (`Context::is_cancelled` turns
    /// true inside the plugin), waits up to the unload timeout for calls in flight, runs
    /// `on_unload`, closes the library and reports whether it is really unmapped. If calls are
    /// still running at the timeout, the plugin stays registered (refusing new calls) and
    /// [`UnloadError::Busy`] is returned; call `unload` again to wait longer. With several
    /// versions, every version is tried; those that unloaded are gone from the registry even
    /// when another returns an error.
    pub fn unload(
        &self,
        name: &str,
        version: Option<&Version>,
    ) -> Result<Vec<UnloadReport>, UnloadError> {
        // Serialised with loads and hot upgrades: a reload never hands over the state of a
        // plugin being unloaded, nor registers it again.
        let _loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        self.unload_locked(name, version)
    }

    /// [`unload`](Self::unload), with `loading` held by the caller.
    pub(super) fn unload_locked(
        &self,
        name: &str,
        version: Option<&Version>,
    ) -> Result<Vec<UnloadReport>, UnloadError> {
        let targets: Vec<Plugin> = {
            let map = self.plugins.read().unwrap_or_else(|e| e.into_inner());
            let versions =
                map.get(name)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| LookupError::NotLoaded {
                        name: name.to_owned(),
                        available: map.keys().cloned().collect(),
                    })?;
            match version {
                Some(v) => vec![versions
                    .get(v)
                    .cloned()
                    .ok_or_else(|| LookupError::NoMatch {
                        name: name.to_owned(),
                        requirement: format!("={v}"),
                        versions: versions.keys().map(Version::to_string).collect(),
                    })?],
                None => versions.values().cloned().collect(),
            }
        };
        for plugin in &targets {
            let dependents = self.dependents_of(plugin, &targets);
            if !dependents.is_empty() {
                return Err(UnloadError::Dependents {
                    plugin: plugin.id().to_owned(),
                    dependents,
                });
            }
        }
        let mut reports = Vec::with_capacity(targets.len());
        let mut first_error = None;
        for plugin in targets {
            match plugin.instance().unload(self.unload_timeout) {
                Ok(report) => {
                    self.forget(&plugin);
                    self.events.emit(EventKind::Unloaded {
                        report: report.clone(),
                    });
                    reports.push(report);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            None => Ok(reports),
            Some(e) => Err(e),
        }
    }

    /// A stream of what happens to this manager's plugins from now on: [`EventKind::Loaded`],
    /// [`EventKind::LoadFailed`], [`EventKind::Unloaded`], each numbered and timestamped. The
    /// subscriber's queue holds [`DEFAULT_EVENT_CAPACITY`] events; a subscriber that falls
    /// further behind loses the oldest ([`Subscription::lost`] counts them). It never slows a
    /// load, an unload or a call. Iterating ends when the manager is dropped.
    ///
    /// ```no_run
    /// use plg_loader::{EventKind, PluginManager};
    ///
    /// let manager = PluginManager::new("plugins");
    /// let events = manager.subscribe();
    /// manager.load_all();
    /// while let Some(e) = events.try_next() {
    ///     if let EventKind::Loaded { plugin, preflight, .. } = &e.kind {
    ///         println!("#{} loaded {plugin} ({preflight})", e.seq);
    ///     }
    /// }
    /// ```
    pub fn subscribe(&self) -> Subscription {
        self.events.subscribe(DEFAULT_EVENT_CAPACITY)
    }

    /// [`subscribe`](Self::subscribe) with a queue of `capacity` events (at least 1).
    pub fn subscribe_with_capacity(&self, capacity: usize) -> Subscription {
        self.events.subscribe(capacity)
    }

    /// Removes `plugin` from the registry, if that very instance is still registered (another
    /// thread may have unloaded it and loaded a new instance of the same version since).
    fn forget(&self, plugin: &Plugin) {
        let mut map = self.plugins.write().unwrap_or_else(|e| e.into_inner());
        if let Some(versions) = map.get_mut(plugin.name()) {
            if versions
                .get(&plugin.version())
                .is_some_and(|p| p.same_instance(plugin))
            {
                versions.remove(&plugin.version());
            }
            if versions.is_empty() {
                map.remove(plugin.name());
            }
        }
    }

    /// Unloads every plugin; returns the reports and the failures.
    /// Plugins that others need are unloaded after them (each through
    /// [`unload_cascade`](Self::unload_cascade)).
    pub fn unload_all(&self) -> (Vec<UnloadReport>, Vec<UnloadError>) {
        let names: Vec<String> = {
            let map = self.plugins.read().unwrap_or_else(|e| e.into_inner());
            map.keys().cloned().collect()
        };
        let (mut ok, mut failed): (Vec<UnloadReport>, Vec<UnloadError>) = (Vec::new(), Vec::new());
        for (report, error) in self.retire_drained() {
            ok.extend(report);
            failed.extend(error);
        }
        for name in names {
            let still_loaded = {
                let map = self.plugins.read().unwrap_or_else(|e| e.into_inner());
                map.get(&name).is_some_and(|v| !v.is_empty())
            };
            if !still_loaded {
                continue; // already unloaded by a cascade
            }
            match self.unload_cascade(&name, None) {
                Ok(r) => ok.extend(r),
                Err(e) => failed.push(e),
            }
        }
        (ok, failed)
    }

    pub(super) fn lookup(&self, name: &str, version: &Version) -> Option<Plugin> {
        let map = self.plugins.read().unwrap_or_else(|e| e.into_inner());
        map.get(name)?.get(version).cloned()
    }

    fn lookup_id(&self, id: &str) -> Option<Plugin> {
        let (name, version) = id.split_once('@')?;
        self.lookup(name, &Version::parse(version).ok()?)
    }
}

/// Dropping the manager unloads every plugin it loaded (waiting for calls in flight, as
/// [`PluginManager::unload`] does). Handles that outlive it return
/// [`ExecError::Unloaded`](crate::ExecError::Unloaded); a warning names the plugins that still
/// had handles, since that is usually a manager dropped by mistake (a local variable in a
/// function that returns a handle).
impl Drop for PluginManager {
    fn drop(&mut self) {
        let held: Vec<String> = {
            let map = self.plugins.read().unwrap_or_else(|e| e.into_inner());
            map.values()
                .flat_map(BTreeMap::values)
                .filter(|p| self.handed_out(p))
                .map(|p| p.id())
                .collect()
        };
        if !held.is_empty() {
            tracing::warn!(
                plugins = %held.join(", "),
                "a PluginManager was dropped while handles to its plugins are still held: the \
                 plugins are unloaded, and those handles now return ExecError::Unloaded; keep \
                 the manager alive as long as its handles (in an Arc, a struct field or a \
                 OnceLock)"
            );
        }
        let _ = self.unload_all();
        self.events.close();
        self.live_dir().remove_if_empty();
    }
}

fn parse_req(requirement: &str) -> Result<VersionReq, LookupError> {
    VersionReq::parse(requirement).map_err(|e| LookupError::BadRequirement {
        requirement: requirement.to_owned(),
        message: e.to_string(),
    })
}

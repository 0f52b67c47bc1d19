//! The author's loop behind `plg dev`: build a plugin crate, stage it, hot-upgrade it in a
//! running host, and do it again on every save. It sits above both layers: it builds
//! (packaging) and loads (runtime), and neither of them knows it.
//!
//! Building a crate runs its build script and proc macros: `plg dev` runs code from the
//! crate it watches, on every save.

use std::{
    path::{Path, PathBuf},
    sync::{mpsc, Arc},
    time::{Duration, Instant},
};

use notify::RecommendedWatcher;
use notify_debouncer_full::{DebounceEventResult, Debouncer, NoCache};
use serde::{Deserialize, Serialize};

use crate::{
    build::{build_crate, stage, BuildOptions},
    runtime::watch::watch_tree,
    BuildError, LoadError, Plugin, PluginManager, PluginMetrics, PluginsDir, Reload,
};

/// One turn of the loop.
#[derive(Debug)]
pub enum DevOutcome {
    /// Built, staged, and now serving (loaded the first time, hot-upgraded after).
    Serving {
        /// The handle (by name: it follows every later upgrade).
        plugin: Plugin,
        /// How long cargo took.
        build: Duration,
        /// What the upgrade did; `None` on the first load.
        reload: Option<Reload>,
    },
    /// The build failed (cargo's diagnostics went to stderr); the last good version, if
    /// any, stays loaded.
    BuildFailed(BuildError),
    /// Built, but loading or upgrading failed; the last good version, if any, stays loaded.
    LoadFailed(Arc<LoadError>),
}

/// A running host for one plugin crate under development.
pub struct DevSession {
    crate_dir: PathBuf,
    plugins_dir: PluginsDir,
    options: BuildOptions,
    manager: Arc<PluginManager>,
    name: Option<String>,
}

impl std::fmt::Debug for DevSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevSession")
            .field("crate_dir", &self.crate_dir)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl DevSession {
    /// A session for the crate in `crate_dir`, staging into `plugins_dir`.
    pub fn new(crate_dir: &Path, plugins_dir: PluginsDir, options: BuildOptions) -> Self {
        // A dev host makes few calls: time every one.
        let manager = Arc::new(PluginManager::new(plugins_dir.clone()).with_latency_sampling(1));
        Self {
            crate_dir: crate_dir.to_owned(),
            plugins_dir,
            options,
            manager,
            name: None,
        }
    }

    /// The host's manager (events, metrics).
    pub fn manager(&self) -> &Arc<PluginManager> {
        &self.manager
    }

    /// Builds, stages and loads (or hot-upgrades) the plugin.
    pub fn cycle(&mut self) -> DevOutcome {
        let started = Instant::now();
        let built = match build_crate(&self.crate_dir, &self.options) {
            Ok(b) => b,
            Err(e) => return DevOutcome::BuildFailed(e),
        };
        let build = started.elapsed();
        let staged = match stage(&built, &self.plugins_dir) {
            Ok(dir) => dir,
            Err(e) => return DevOutcome::BuildFailed(e),
        };
        let name = built.manifest.name.clone();
        let loaded = self.manager.get(&name).is_ok();
        let manifest = staged.join(crate::MANIFEST_FILE);
        let result = if loaded {
            self.manager.reload_from(&manifest).map(Some).and_then(|r| {
                self.manager
                    .get(&name)
                    .map(|p| (p, r))
                    .map_err(|e| Arc::new(e.into()))
            })
        } else {
            self.manager
                .load_manifest(&manifest)
                .map(|p| (p, None))
                .map_err(Arc::new)
        };
        self.name = Some(name);
        match result {
            Ok((plugin, reload)) => DevOutcome::Serving {
                plugin,
                build,
                reload,
            },
            Err(e) => DevOutcome::LoadFailed(e),
        }
    }

    /// Watches the crate's sources (everything but `target/`, `Cargo.lock` and hidden
    /// files): each debounced burst of saves arrives as the instant of its first change.
    pub fn watch_sources(&self, debounce: Duration) -> Result<SourceWatch, LoadError> {
        let (tx, rx) = mpsc::channel::<DebounceEventResult>();
        let error = |e: notify::Error| LoadError::Watch {
            dir: self.crate_dir.clone(),
            message: e.to_string(),
        };
        let debouncer = watch_tree(&self.crate_dir, debounce, tx).map_err(error)?;
        Ok(SourceWatch {
            _debouncer: debouncer,
            rx,
            root: self
                .crate_dir
                .canonicalize()
                .unwrap_or_else(|_| self.crate_dir.clone()),
        })
    }

    /// Writes the plugin's call metrics to `PLUGINS_DIR/.plg/dev/NAME.json`, where
    /// [`dev_stats`] (and `plg list --stats`) read them.
    pub fn write_stats(&self) -> std::io::Result<()> {
        let Some(name) = &self.name else {
            return Ok(());
        };
        let dir = stats_dir(&self.plugins_dir);
        std::fs::create_dir_all(&dir)?;
        let stats = DevStats {
            pid: std::process::id(),
            crate_dir: self.crate_dir.clone(),
            metrics: self
                .manager
                .metrics()
                .into_iter()
                .filter(|m| &m.plugin == name)
                .collect(),
        };
        let tmp = dir.join(format!(".{name}.json.partial"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(&stats)?)?;
        std::fs::rename(tmp, dir.join(format!("{name}.json")))
    }
}

/// The debounced changes to a crate's sources ([`DevSession::watch_sources`]).
pub struct SourceWatch {
    _debouncer: Debouncer<RecommendedWatcher, NoCache>,
    rx: mpsc::Receiver<DebounceEventResult>,
    root: PathBuf,
}

impl std::fmt::Debug for SourceWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceWatch")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl SourceWatch {
    /// Waits for the next burst of source changes made at or after `since` (changes from
    /// before, such as those a build made, are passed over); returns when it began (the
    /// save), or `None` if watching stopped.
    pub fn next_change(&self, since: Instant) -> Option<Instant> {
        for batch in &self.rx {
            let Ok(events) = batch else { continue };
            let first = events
                .iter()
                .filter(|e| e.time >= since && !e.event.kind.is_access())
                .filter(|e| e.event.paths.iter().any(|p| self.is_source(p)))
                .map(|e| e.time)
                .min();
            if first.is_some() {
                return first;
            }
        }
        None
    }

    fn is_source(&self, path: &Path) -> bool {
        let rest = path.strip_prefix(&self.root).unwrap_or(path);
        !rest.components().any(|c| {
            let c = c.as_os_str().to_string_lossy();
            // cargo writes Cargo.lock during a build: not a save.
            c == "target" || c == "Cargo.lock" || c.starts_with('.')
        })
    }
}

/// What a `plg dev` host last wrote about its plugin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevStats {
    /// The `plg dev` process.
    pub pid: u32,
    /// The crate it builds.
    pub crate_dir: PathBuf,
    /// Its plugin's call metrics.
    pub metrics: Vec<PluginMetrics>,
}

/// The largest stats file read (a real one is a few KiB).
const MAX_STATS: u64 = 1 << 20;

fn stats_dir(plugins_dir: &PluginsDir) -> PathBuf {
    plugins_dir.path().join(".plg").join("dev")
}

/// The stats every `plg dev` host wrote into `plugins_dir`, by plugin name. A file that
/// cannot be read is skipped.
pub fn dev_stats(plugins_dir: &PluginsDir) -> Vec<(String, DevStats)> {
    let mut out: Vec<(String, DevStats)> = std::fs::read_dir(stats_dir(plugins_dir))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.strip_suffix(".json")?.to_owned();
            if name.starts_with('.') {
                return None;
            }
            // Only regular files, and only so much: a FIFO, a device or a huge file planted
            // in the plugins directory must not hang or exhaust `plg list --stats`.
            if !std::fs::symlink_metadata(e.path()).ok()?.is_file() {
                return None;
            }
            let mut text = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(std::fs::File::open(e.path()).ok()?, MAX_STATS + 1),
                &mut text,
            )
            .ok()?;
            if text.len() as u64 > MAX_STATS {
                return None;
            }
            Some((name, serde_json::from_slice(&text).ok()?))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

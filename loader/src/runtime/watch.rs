//! Watching the plugins directory ([`PluginManager::watch`]): a new plugin directory is
//! loaded, a changed library or manifest is hot-upgraded ([`PluginManager::reload`]), a
//! removed plugin is unloaded.
//!
//! notify watches the *directory tree*, never single files: `plg build`, `plg install` and
//! most tools replace a file by renaming a new one over it, and the old inode stops giving
//! events. A compiler writes a library in many pieces, so events are debounced
//! (notify-debouncer-full): nothing happens until the plugin's files have been quiet for the
//! debounce time. Then the plugin is compared by content hash (an unchanged rebuild does
//! nothing), and a library still shorter than its own ELF headers is refused before the
//! dynamic loader sees it; the next write's events try again. Where notify has no native
//! backend (or it cannot be set up), the watcher polls.

use std::{
    collections::BTreeSet,
    path::{Component, Path},
    sync::{mpsc, Arc, Weak},
    thread::JoinHandle,
    time::Duration,
};

use notify::{PollWatcher, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{new_debouncer_opt, DebounceEventResult, Debouncer, NoCache};

use super::{events::EventKind, manager::PluginManager};
use crate::error::LoadError;

/// How [`PluginManager::watch_with`] watches.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// How long a plugin's files must be quiet before it is reloaded. Default 300 ms.
    pub debounce: Duration,
    /// Poll the directory at this interval instead of using the system's file events
    /// (inotify, FSEvents, …). `None` (the default) polls only where those cannot be used.
    pub poll: Option<Duration>,
    /// How often, with no event, the watch checks that every loaded version's files are
    /// still there (file events can be lost). Default 2 s; it only reads file metadata.
    pub rescan: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(300),
            poll: None,
            rescan: Duration::from_secs(2),
        }
    }
}

impl WatchOptions {
    /// Polls every `interval`, comparing file contents, instead of using file events.
    pub fn poll_every(mut self, interval: Duration) -> Self {
        self.poll = Some(interval);
        self
    }

    /// Sets the quiet time a burst of writes must end with before the plugin is reloaded.
    pub fn debounce(mut self, quiet: Duration) -> Self {
        self.debounce = quiet;
        self
    }
}

/// Which mechanism a [`WatchGuard`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchBackend {
    /// The system's file events (inotify on Linux, FSEvents on macOS, …).
    Events,
    /// Polling, at this interval.
    Poll(Duration),
}

enum AnyDebouncer {
    Events(#[allow(dead_code)] Debouncer<RecommendedWatcher, NoCache>),
    Poll(#[allow(dead_code)] Debouncer<PollWatcher, NoCache>),
}

/// Keeps the plugins directory watched; dropping it stops the watching (and waits for a
/// reload in progress to finish). Plugins already loaded stay loaded.
#[must_use = "the directory is watched only while the guard lives"]
pub struct WatchGuard {
    debouncer: Option<AnyDebouncer>,
    worker: Option<JoinHandle<()>>,
    backend: WatchBackend,
}

impl std::fmt::Debug for WatchGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchGuard")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl WatchGuard {
    /// Whether file events or polling drive this watch.
    pub fn backend(&self) -> WatchBackend {
        self.backend
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        // Stopping the debouncer drops its end of the channel; the worker then ends.
        drop(self.debouncer.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl PluginManager {
    /// Watches the plugins directory with the default [`WatchOptions`]; see
    /// [`watch_with`](Self::watch_with).
    pub fn watch(self: &Arc<Self>) -> Result<WatchGuard, LoadError> {
        self.watch_with(WatchOptions::default())
    }

    /// Watches the plugins directory while the returned guard lives:
    /// - a new plugin directory (`PLUGINS_DIR/NAME/…`) is loaded, from a private copy of its
    ///   library (so a later in-place rewrite of the file cannot touch the running image);
    /// - a changed library or manifest is hot-upgraded with [`reload`](Self::reload), with the
    ///   same guarantees (no failed call; a broken version keeps the old one serving);
    /// - a removed plugin is unloaded (refused, with a warning, while others depend on it).
    ///
    /// Each plugin is handled once its files have been quiet for `options.debounce`, and only
    /// if its content hash changed. What happens arrives as events ([`subscribe`](Self::subscribe)).
    /// Call [`load_all`](Self::load_all) first: the watch reacts to changes, it does not scan.
    /// The manager is held weakly: dropping the last `Arc` ends the watch's work.
    pub fn watch_with(self: &Arc<Self>, options: WatchOptions) -> Result<WatchGuard, LoadError> {
        let root = self.plugins_dir().path().to_owned();
        let error = |e: notify::Error| LoadError::Watch {
            dir: root.clone(),
            message: e.to_string(),
        };
        if !root.is_dir() {
            return Err(LoadError::Watch {
                dir: root.clone(),
                message: "it is not a directory; create it first".into(),
            });
        }
        let (tx, rx) = mpsc::channel::<DebounceEventResult>();
        let (debouncer, backend) = match options.poll {
            None => match watch_tree(&root, options.debounce, tx.clone()) {
                Ok(d) => (AnyDebouncer::Events(d), WatchBackend::Events),
                Err(e) => {
                    let interval = options.debounce.max(Duration::from_millis(100));
                    tracing::warn!(dir = %root.display(), error = %e,
                        "file events are unavailable; watching the plugins directory by polling");
                    poll(&root, options.debounce, interval, tx).map_err(error)?
                }
            },
            Some(interval) => poll(&root, options.debounce, interval, tx).map_err(error)?,
        };
        let manager = Arc::downgrade(self);
        let rescan = options.rescan;
        let worker = std::thread::Builder::new()
            .name("plg-watch".into())
            .spawn(move || work(&manager, &root, &rx, rescan))
            .map_err(|e| LoadError::Watch {
                dir: self.plugins_dir().path().to_owned(),
                message: e.to_string(),
            })?;
        Ok(WatchGuard {
            debouncer: Some(debouncer),
            worker: Some(worker),
            backend,
        })
    }

    /// Brings plugin `name` in line with the plugins directory: loads it if it is new,
    /// upgrades it if it changed, unloads it if it is gone.
    fn sync(&self, name: &str) {
        // A version whose directory is gone is unloaded, whatever else happens to the plugin
        // (a reload never downgrades to what is left).
        for version in self.plugins().iter().filter(|p| p.name() == name) {
            if !version.manifest_path().exists() {
                if let Err(e) = self.unload(name, Some(&version.version())) {
                    tracing::warn!(plugin = %version.id(), error = %e,
                        "its directory was removed but it stays loaded");
                }
            }
        }
        let loaded = self.get(name).is_ok();
        let on_disk = self.newest_on_disk(name);
        match (loaded, on_disk) {
            (true, Ok(found)) => {
                if let Err(e) = self.reload_with(name, Some(found)) {
                    tracing::info!(plugin = name, error = %e, "not upgraded");
                }
            }
            // Loaded from files outside the plugins directory; they were checked above.
            (true, Err(LoadError::NotInstalled { .. })) => {}
            // A broken manifest: the reload reports it (ReloadFailed).
            (true, Err(_)) => {
                if let Err(e) = self.reload(name) {
                    tracing::info!(plugin = name, error = %e, "not upgraded");
                }
            }
            (false, Ok(found)) => {
                let result = self.load_live(&found.path, found.manifest);
                if let Err(e) = &result {
                    tracing::info!(plugin = name, error = %e, "not loaded");
                }
            }
            (false, Err(LoadError::NotInstalled { .. })) => {}
            (false, Err(e)) => self.events.emit(EventKind::LoadFailed {
                path: self.plugins_dir().path().join(name),
                error: e.to_string(),
            }),
        }
    }
}

/// Watches the tree under `root` with the system's file events, debounced by `debounce`;
/// the batches go to `tx`. Links are not followed: one inside the tree must not spread the
/// watch (and its inotify watches) over whatever it points at.
pub(crate) fn watch_tree(
    root: &Path,
    debounce: Duration,
    tx: mpsc::Sender<DebounceEventResult>,
) -> Result<Debouncer<RecommendedWatcher, NoCache>, notify::Error> {
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut d = new_debouncer_opt::<_, RecommendedWatcher, _>(debounce, None, tx, NoCache, config)?;
    d.watch(root, RecursiveMode::Recursive)?;
    Ok(d)
}

fn poll(
    root: &Path,
    debounce: Duration,
    interval: Duration,
    tx: mpsc::Sender<DebounceEventResult>,
) -> Result<(AnyDebouncer, WatchBackend), notify::Error> {
    let config = notify::Config::default()
        .with_follow_symlinks(false)
        .with_poll_interval(interval)
        .with_compare_contents(true);
    let mut d = new_debouncer_opt::<_, PollWatcher, _>(debounce, None, tx, NoCache, config)?;
    d.watch(root, RecursiveMode::Recursive)?;
    Ok((AnyDebouncer::Poll(d), WatchBackend::Poll(interval)))
}

/// The watch's worker: each debounced batch names the plugins it touched; each is synced once.
fn work(
    manager: &Weak<PluginManager>,
    root: &Path,
    rx: &mpsc::Receiver<DebounceEventResult>,
    rescan: Duration,
) {
    let real_root = root.canonicalize().unwrap_or_else(|_| root.to_owned());
    loop {
        let batch = match rx.recv_timeout(rescan) {
            Ok(batch) => batch,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // File events can be lost (a full inotify queue, a directory removed before
                // its watch was set up): a loaded version whose files are gone is caught here.
                let Some(manager) = manager.upgrade() else {
                    return;
                };
                let vanished: BTreeSet<String> = manager
                    .plugins()
                    .iter()
                    .filter(|p| {
                        let path = p.manifest_path();
                        (path.starts_with(root) || path.starts_with(&real_root)) && !path.exists()
                    })
                    .map(|p| p.name().to_owned())
                    .collect();
                for name in vanished {
                    manager.sync(&name);
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let events = match batch {
            Ok(events) => events,
            Err(errors) => {
                for e in errors {
                    tracing::warn!(dir = %root.display(), error = %e, "watching the plugins directory");
                }
                continue;
            }
        };
        // Reads (ours included: hashing and loading open the files) are not changes.
        let names: BTreeSet<String> = events
            .iter()
            .filter(|e| !e.event.kind.is_access())
            .flat_map(|e| e.event.paths.iter())
            .filter_map(|p| plugin_name(root, p).or_else(|| plugin_name(&real_root, p)))
            .collect();
        let Some(manager) = manager.upgrade() else {
            return;
        };
        for name in names {
            manager.sync(&name);
        }
    }
}

/// The plugin a changed path belongs to: the first component under the plugins directory,
/// unless it is hidden (`.plg/`, where the private copies live, editor swap files).
fn plugin_name(root: &Path, path: &Path) -> Option<String> {
    let rest = path.strip_prefix(root).ok()?;
    let Some(Component::Normal(first)) = rest.components().next() else {
        return None;
    };
    let name = first.to_str()?;
    (!name.starts_with('.') && crate::manifest::validate_name(name).is_ok())
        .then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_belong_to_the_first_directory_under_the_root() {
        let root = Path::new("/p");
        assert_eq!(
            plugin_name(root, Path::new("/p/hello/1.2.0/libhello.so")),
            Some("hello".into())
        );
        assert_eq!(
            plugin_name(root, Path::new("/p/hello")),
            Some("hello".into())
        );
        assert_eq!(plugin_name(root, Path::new("/p/.plg/live/1/x.so")), None);
        assert_eq!(plugin_name(root, Path::new("/p")), None);
        assert_eq!(plugin_name(root, Path::new("/elsewhere/hello")), None);
        assert_eq!(plugin_name(root, Path::new("/p/.hello.swp")), None);
    }
}

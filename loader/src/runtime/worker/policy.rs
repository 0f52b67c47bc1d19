//! Which plugins run in workers, and how workers are supervised.

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

use crate::manifest::{Isolation, Manifest};

/// How a worker ended at unload (in [`UnloadReport::worker`](crate::UnloadReport::worker)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerStop {
    /// It answered `Shutdown` and exited within the grace period.
    ShutDown,
    /// It did not exit in time (or was not running cleanly) and was killed.
    Killed,
    /// It was not running (it had crashed, or stopped when idle).
    NotRunning,
}

/// The host's side of where plugins run, and how their workers are supervised. Set it with
/// [`PluginManager::with_worker_policy`](crate::PluginManager::with_worker_policy).
///
/// A plugin runs in a worker when its `plugin.json` says `"isolation": "process"`, when
/// [`isolate_all`](Self::isolate_all) is set, or when its name is in
/// [`isolate`](Self::isolate). Its [`Plugin`](crate::Plugin) handle and `execute` are the same
/// either way.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerPolicy {
    /// Run every plugin in a worker.
    pub isolate_all: bool,
    /// Run these plugins (by name) in a worker.
    pub isolate: BTreeSet<String>,
    /// Run every plugin in this process, whatever its manifest asks: what `plg-worker`
    /// itself uses. Overrides the two fields above.
    pub never_isolate: bool,
    /// Refuse in-process a plugin built with `panic = "abort"` (whose panic would abort the
    /// host) with [`LoadError::PanicAborts`](crate::LoadError::PanicAborts). Off by default:
    /// such a plugin loads with a warning.
    pub refuse_panic_abort: bool,
    /// The `plg-worker` binary. `None`: `$PLG_WORKER`, then next to this program, then `PATH`.
    pub program: Option<PathBuf>,
    /// How long a worker may take to print its handshake. Default 10 s.
    pub start_timeout: Duration,
    /// How long a call may run past its deadline (or its cancellation) before its worker is
    /// killed and restarted. Default 2 s.
    pub kill_grace: Duration,
    /// How long unload waits for a worker to exit after `Shutdown` before killing it.
    /// Default 2 s.
    pub shutdown_grace: Duration,
    /// The first restart waits this long after a crash; each further crash doubles it, up
    /// to [`max_backoff`](Self::max_backoff). Default 50 ms.
    pub initial_backoff: Duration,
    /// The longest wait before a restart. Default 5 s.
    pub max_backoff: Duration,
    /// After this many crashes within [`crash_window`](Self::crash_window), the plugin is
    /// marked failed and calls fail at once ([`ExecError::WorkerFailed`](crate::ExecError::WorkerFailed)).
    /// Default 5.
    pub max_crashes: u32,
    /// See [`max_crashes`](Self::max_crashes); also how long a worker must run without a
    /// crash for the backoff to reset. Default 60 s.
    pub crash_window: Duration,
    /// A worker with no call for this long is stopped; the next call starts it again.
    /// `None` (the default): never.
    pub idle_timeout: Option<Duration>,
    /// How often a running worker's health is checked (`grpc.health.v1`); a worker that
    /// fails it is restarted. `None` (the default): only calls find a dead worker.
    pub health_interval: Option<Duration>,
    /// Environment variables every worker gets. Workers start with an empty environment:
    /// the host's variables (and its secrets) do not reach plugins unless listed here.
    pub env: Vec<(String, String)>,
    /// `RLIMIT_AS` for each worker, in bytes. A plugin over it fails its allocation: in
    /// Rust, an abort, which is a crash of its worker only.
    pub memory_limit: Option<u64>,
    /// A cgroup v2 directory, delegated to the host with the `memory` controller in its
    /// `cgroup.subtree_control`, in which each worker gets a cgroup of its own with
    /// `memory.max` = `memory_limit` (on top of `RLIMIT_AS`). `None` (the default): the host's
    /// own cgroup when it delegates `memory`, else `RLIMIT_AS` alone (logged once). A
    /// directory set here that cannot be used fails the worker's start.
    pub memory_cgroup: Option<std::path::PathBuf>,
    /// `RLIMIT_CPU` for each worker, in seconds of CPU time.
    pub cpu_seconds: Option<u64>,
    /// `RLIMIT_NOFILE` for each worker.
    pub open_files: Option<u64>,
    /// How many workers each plugin in a worker gets (default 1). Calls run concurrently in
    /// each; with more than one, a call goes to the worker with the fewest calls in flight
    /// (passing over one marked failed), and each worker is supervised on its own: a crash
    /// fails the calls in flight on that worker only, and restarts it alone.
    pub pool_size: usize,
    /// Keep one `plg-worker` started ahead of need, with this policy's environment and
    /// limits: starting a plugin in a worker (a load, a restart after a crash, a start after
    /// an idle stop) takes it instead of starting a process, and a new one is started in the
    /// background. Costs one idle process per manager. Default off.
    pub prestart: bool,
}

impl Default for WorkerPolicy {
    fn default() -> Self {
        Self {
            isolate_all: false,
            isolate: BTreeSet::new(),
            never_isolate: false,
            refuse_panic_abort: false,
            program: None,
            start_timeout: Duration::from_secs(10),
            kill_grace: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(2),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            max_crashes: 5,
            crash_window: Duration::from_secs(60),
            idle_timeout: None,
            health_interval: None,
            env: Vec::new(),
            memory_limit: None,
            memory_cgroup: None,
            cpu_seconds: None,
            open_files: None,
            pool_size: 1,
            prestart: false,
        }
    }
}

impl WorkerPolicy {
    /// Every plugin in a worker.
    pub fn isolate_all() -> Self {
        Self {
            isolate_all: true,
            ..Self::default()
        }
    }

    /// Whether `manifest`'s plugin runs in a worker under this policy.
    pub fn isolates(&self, manifest: &Manifest) -> bool {
        !self.never_isolate
            && (self.isolate_all
                || self.isolate.contains(&manifest.name)
                || manifest.isolation == Some(Isolation::Process))
    }
}

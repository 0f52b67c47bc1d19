//! [`Plugin`]: the cheap, cloneable handle every call goes through.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use abi_stable::std_types::RStr;
use plg_api::{Context, LogLevel, LogSink, PluginErrorKind};
use semver::VersionReq;

pub(crate) use super::ffi::Hook;
use super::{
    ffi::{self, CallError, CallFailure, Library, PinCell},
    hooks::{CallInfo, Hooks},
    metrics::{CallMetrics, PluginMetrics},
    provenance::{Digest, Origin},
    route::{self, Dependency, Registration},
    schemas::Schemas,
    threads::{self, Local, Pin, SHARED_STRIPE},
};
use crate::{
    error::{ExecError, UnloadError},
    manifest::{preflight::Unmappable, Manifest},
    untrusted,
};

/// What [`PluginManager::unload`](crate::PluginManager::unload) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnloadReport {
    /// `name@version`.
    pub plugin: String,
    /// How long unload waited for calls in flight.
    pub waited: Duration,
    /// `Some(true)` if the library is verifiably no longer mapped; `Some(false)` if the
    /// dynamic loader kept it (on Linux, because it registered thread-local destructors);
    /// `None` where this platform cannot tell.
    pub unmapped: Option<bool>,
    /// The `on_unload` hook's error, if it failed (the library was closed anyway).
    pub on_unload_error: Option<String>,
    /// The dynamic loader's error from closing, if any.
    pub close_error: Option<String>,
    /// What the unload-safety preflight predicted before the library was loaded
    /// ([`Plugin::unload_preflight`]), to set beside `unmapped`.
    pub predicted: Unmappable,
    /// A hot upgrade's private copy of the library (under `.plg/live/`) that stays on disk
    /// because its image is still mapped; `None` when there was no copy or it was removed.
    pub kept_copy: Option<PathBuf>,
    /// For a plugin in a worker process, how the worker ended; `None` in-process.
    pub worker: Option<super::worker::WorkerStop>,
}

/// The result of a call inside plg-loader: the error boxed, so that the success path moves
/// one register between layers instead of a large `Result` through memory.
pub(crate) type Outcome = Result<(), Box<ExecError>>;

/// Where calls to a plugin go: the in-process library, a worker process or an executable
/// plugin, behind one trait so that callers do not change.
pub(crate) trait Runtime: Send + Sync + fmt::Debug {
    fn execute(&self, id: &str, ctx: &mut Context) -> Outcome;
    /// [`execute`](Self::execute) on the fast path, with the call's pin slot (see
    /// [`threads`]); a runtime that does not use it calls `execute`.
    fn execute_pinned(&self, id: &str, pin: &Pin<'_>, ctx: &mut Context) -> Outcome {
        let _ = pin;
        self.execute(id, ctx)
    }
    fn unload(&self, id: &str, timeout: Duration) -> Result<UnloadReport, UnloadError>;
    fn is_loaded(&self) -> bool;
    fn in_flight(&self) -> usize;
    fn library_path(&self) -> &Path;
    fn preflight(&self) -> &Unmappable;
    fn api_version(&self) -> &str;
    /// Runs one of the plugin's optional entry points (`Ok` if it has none).
    fn run_hook(&self, id: &str, hook: Hook, ctx: &mut Context) -> Result<(), ExecError>;
    fn has_hook(&self, hook: Hook) -> bool;
    fn panic_aborts(&self) -> Option<bool>;
    /// Marks `on_load` as done, so `on_unload` runs at unload.
    fn arm(&self);
    /// Whether calls go to a worker process.
    fn worker(&self) -> bool {
        false
    }
}

#[derive(Debug)]
struct InProcess {
    lib: Library,
    preflight: Unmappable,
}

/// Forwards plugin log lines to `tracing`, target `plg::plugin`, with a `plugin` field. The
/// plugin's text is escaped first ([`untrusted::escape`]): a log line cannot drive the
/// terminal or forge another line.
extern "C" fn tracing_sink(origin: RStr<'_>, level: LogLevel, message: RStr<'_>) {
    // A subscriber that panics must not unwind into the plugin; nor may dropping its payload.
    let outcome = std::panic::catch_unwind(|| {
        let plugin = untrusted::escape(origin.as_str());
        let message = untrusted::escape(message.as_str());
        let plugin = plugin.as_ref();
        match level {
            LogLevel::Error => tracing::error!(target: "plg::plugin", plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "plg::plugin", plugin, "{message}"),
            LogLevel::Info => tracing::info!(target: "plg::plugin", plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "plg::plugin", plugin, "{message}"),
            LogLevel::Trace => tracing::trace!(target: "plg::plugin", plugin, "{message}"),
        }
    });
    if let Err(payload) = outcome {
        std::mem::forget(payload);
    }
}

/// The log sink plg-loader installs in every context it passes to a plugin.
pub(crate) const HOST_SINK: LogSink = LogSink::new(tracing_sink);

pub(crate) fn map_call_error(id: &str, ctx: &Context, e: CallError) -> ExecError {
    let plugin = id.to_owned();
    match e.kind {
        PluginErrorKind::Failed => ExecError::Failed {
            plugin,
            message: e.message,
        },
        PluginErrorKind::InvalidInput => ExecError::InvalidInput {
            plugin,
            message: e.message,
        },
        PluginErrorKind::Panicked => ExecError::Panicked {
            plugin,
            message: e.message,
        },
        PluginErrorKind::Cancelled
            if ctx.deadline_passed() && !ctx.cancel_token().is_cancelled() =>
        {
            ExecError::DeadlineExceeded { plugin }
        }
        PluginErrorKind::Cancelled => ExecError::Cancelled { plugin },
    }
}

#[inline]
fn call_result(id: &str, ctx: &Context, outcome: Result<(), CallFailure>) -> Outcome {
    match outcome {
        Ok(()) => Ok(()),
        Err(failure) => Err(call_failure(id, ctx, failure)),
    }
}

#[cold]
fn call_failure(id: &str, ctx: &Context, failure: CallFailure) -> Box<ExecError> {
    Box::new(match failure {
        CallFailure::Failed(e) => map_call_error(id, ctx, *e),
        CallFailure::Closed => ExecError::Unloaded {
            plugin: id.to_owned(),
        },
    })
}

impl Runtime for InProcess {
    fn execute(&self, id: &str, ctx: &mut Context) -> Outcome {
        let outcome = self.lib.execute(ctx, HOST_SINK);
        call_result(id, ctx, outcome)
    }

    #[inline]
    fn execute_pinned(&self, id: &str, pin: &Pin<'_>, ctx: &mut Context) -> Outcome {
        let outcome = self.lib.execute_pinned(pin, ctx, HOST_SINK);
        call_result(id, ctx, outcome)
    }

    fn unload(&self, id: &str, timeout: Duration) -> Result<UnloadReport, UnloadError> {
        let start = Instant::now();
        self.lib.begin_close();
        if let Err(in_flight) = self.lib.wait_drained(timeout) {
            return Err(UnloadError::Busy {
                plugin: id.to_owned(),
                in_flight,
                waited: start.elapsed(),
            });
        }
        let waited = start.elapsed();
        let report = match self.lib.close(HOST_SINK) {
            Some(c) => UnloadReport {
                plugin: id.to_owned(),
                waited,
                unmapped: c.still_mapped.map(|m| !m),
                on_unload_error: c.on_unload.map(|e| e.message),
                close_error: c.close_error,
                predicted: self.preflight.clone(),
                kept_copy: None,
                worker: None,
            },
            None => UnloadReport {
                plugin: id.to_owned(),
                waited,
                unmapped: ffi::is_mapped(self.lib.path()).map(|m| !m),
                on_unload_error: None,
                close_error: None,
                predicted: self.preflight.clone(),
                kept_copy: None,
                worker: None,
            },
        };
        Ok(report)
    }

    fn is_loaded(&self) -> bool {
        !self.lib.is_closing()
    }

    fn in_flight(&self) -> usize {
        self.lib.in_flight()
    }

    fn library_path(&self) -> &Path {
        self.lib.path()
    }

    fn preflight(&self) -> &Unmappable {
        &self.preflight
    }

    fn api_version(&self) -> &str {
        self.lib.api_version()
    }

    fn run_hook(&self, id: &str, hook: Hook, ctx: &mut Context) -> Result<(), ExecError> {
        self.lib
            .run_hook(hook, ctx, HOST_SINK)
            .map_err(|e| map_call_error(id, ctx, e))
    }

    fn has_hook(&self, hook: Hook) -> bool {
        self.lib.has_hook(hook)
    }

    fn panic_aborts(&self) -> Option<bool> {
        self.lib.panic_aborts()
    }

    fn arm(&self) {
        self.lib.arm_hooks();
    }
}

/// An instance's runtime: the in-process library as itself, so that the call fast path
/// reaches it without a dynamic call, or any other behind the trait. Not boxed: it lives
/// once per loaded version inside an `Arc`, and a box would add a load to every call.
#[allow(clippy::large_enum_variant)]
enum Runner {
    InProcess(InProcess),
    #[cfg_attr(not(feature = "isolation"), allow(dead_code))]
    Other(Box<dyn Runtime>),
}

impl std::ops::Deref for Runner {
    type Target = dyn Runtime;

    fn deref(&self) -> &Self::Target {
        match self {
            Runner::InProcess(lib) => lib,
            Runner::Other(runtime) => &**runtime,
        }
    }
}

/// One loaded library: a version of a plugin, as loaded once. [`Plugin`] handles point at an
/// instance, and hot upgrade moves them to another.
pub(crate) struct Instance {
    id: String,
    manifest: Arc<Manifest>,
    manifest_path: PathBuf,
    runtime: Runner,
    /// The compiled `input_schema` and `output_schema`, if the manifest declares any.
    schemas: Option<Schemas>,
    /// What it was loaded from, and its content hash on demand: a reload of the same bytes
    /// does nothing.
    origin: Origin,
    /// The private copy under `.plg/live/` this instance was loaded from (hot upgrades load
    /// from one); removed once the image is verifiably unmapped.
    copy: Option<PathBuf>,
    /// The manager's call hooks, and this version's metrics.
    calls: CallSite,
    /// The instance a hot upgrade replaced this one with, once it has.
    successor: std::sync::OnceLock<Weak<Instance>>,
    /// Its entry in the table [`Context::call`] is routed through, with its dependencies.
    route: Registration,
}

/// What wraps every call: the manager's hooks and, when metrics are on, the counters of the
/// plugin version (shared by every instance of it, so a rebuild continues the series).
#[derive(Debug, Clone, Default)]
pub(crate) struct CallSite {
    pub(crate) hooks: Hooks,
    pub(crate) metrics: Option<Arc<CallMetrics>>,
    /// A call is timed when this thread's call count masked with this is 0: every call
    /// (0) when a hook needs the duration, else one in the sampling interval.
    pub(crate) timing_mask: u32,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance").field("id", &self.id).finish()
    }
}

impl Instance {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn in_process(
        manifest: Manifest,
        manifest_path: PathBuf,
        lib: Library,
        preflight: Unmappable,
        schemas: Option<Schemas>,
        origin: Origin,
        copy: Option<PathBuf>,
        calls: CallSite,
        dependencies: Vec<Dependency>,
    ) -> Arc<Self> {
        lib.install_router(route::ROUTER);
        Arc::new(Instance {
            route: Registration::new(manifest.id(), dependencies),
            id: manifest.id(),
            manifest: Arc::new(manifest),
            manifest_path,
            runtime: Runner::InProcess(InProcess { lib, preflight }),
            schemas,
            origin,
            copy,
            calls,
            successor: std::sync::OnceLock::new(),
        })
    }

    /// An instance whose calls go to `runtime` (a worker process).
    #[cfg(feature = "isolation")]
    pub(crate) fn with_runtime(
        manifest: Manifest,
        manifest_path: PathBuf,
        runtime: Box<dyn Runtime>,
        schemas: Option<Schemas>,
        origin: Origin,
        calls: CallSite,
    ) -> Arc<Self> {
        Arc::new(Instance {
            route: Registration::new(manifest.id(), Vec::new()),
            id: manifest.id(),
            manifest: Arc::new(manifest),
            manifest_path,
            runtime: Runner::Other(runtime),
            schemas,
            origin,
            copy: None,
            calls,
            successor: std::sync::OnceLock::new(),
        })
    }

    /// Records that a hot upgrade replaced this instance with `next`.
    pub(crate) fn set_successor(&self, next: &Arc<Instance>) {
        let _ = self.successor.set(Arc::downgrade(next));
    }

    /// The instance that replaced this one, if an upgrade did and it is still alive.
    pub(crate) fn successor(&self) -> Option<Arc<Instance>> {
        self.successor.get().and_then(Weak::upgrade)
    }

    pub(crate) fn is_loaded(&self) -> bool {
        self.runtime.is_loaded()
    }

    /// The call itself: schemas and the runtime, no hooks or metrics. With `pin`, on the
    /// fast path.
    #[inline]
    fn call(&self, pin: Option<&Pin<'_>>, ctx: &mut Context) -> Outcome {
        let _running = self.route.enter();
        let run = |ctx: &mut Context| match (pin, &self.runtime) {
            // Called directly, not through the trait object: the fast path inlines it.
            (Some(pin), Runner::InProcess(lib)) => lib.execute_pinned(&self.id, pin, ctx),
            (Some(pin), Runner::Other(runtime)) => runtime.execute_pinned(&self.id, pin, ctx),
            (None, runtime) => runtime.execute(&self.id, ctx),
        };
        let Some(schemas) = &self.schemas else {
            return run(ctx);
        };
        schemas.check_input(&self.id, ctx).map_err(Box::new)?;
        run(ctx)?;
        schemas.check_output(&self.id, ctx).map_err(Box::new)
    }

    fn call_info(&self) -> CallInfo<'_> {
        CallInfo {
            plugin: self.name(),
            version: self.version(),
        }
    }

    /// Counts a finished call in this version's metrics (in `stripe`), with its duration
    /// when it was timed, and runs the `after` hooks.
    #[inline]
    fn finish(
        &self,
        start: Option<Instant>,
        stripe: usize,
        ctx: &Context,
        result: Outcome,
    ) -> Outcome {
        let site = &self.calls;
        match start {
            None => {
                if let Some(m) = &site.metrics {
                    m.count(stripe, result.as_ref().err().map(|e| &**e));
                }
                result
            }
            Some(start) => self.finish_timed(start, stripe, ctx, result),
        }
    }

    /// [`finish`](Self::finish) for a timed call: the `after` hooks see the duration.
    #[inline(never)]
    fn finish_timed(
        &self,
        start: Instant,
        stripe: usize,
        ctx: &Context,
        result: Outcome,
    ) -> Outcome {
        let site = &self.calls;
        let took = start.elapsed();
        if let Some(m) = &site.metrics {
            m.record(stripe, took, result.as_ref().err().map(|e| &**e));
        }
        if site.hooks.is_empty() {
            return result;
        }
        let result = result.map_err(|e| *e);
        site.hooks.after(&self.call_info(), ctx, &result, took);
        result.map_err(Box::new)
    }

    /// A snapshot of this version's call metrics, if metrics are on.
    pub(crate) fn metrics(&self) -> Option<PluginMetrics> {
        let m = self.calls.metrics.as_ref()?;
        Some(m.snapshot(self.name(), self.version(), self.runtime.in_flight()))
    }

    /// Unloads (verified), and removes the private copy once its image is unmapped.
    pub(crate) fn unload(&self, timeout: Duration) -> Result<UnloadReport, UnloadError> {
        // `on_unload` may call dependencies, as this plugin.
        let _running = self.route.enter();
        let mut report = self.runtime.unload(&self.id, timeout)?;
        if let Some(copy) = &self.copy {
            if report.unmapped == Some(true) && std::fs::remove_file(copy).is_ok() {
                report.kept_copy = None;
            } else {
                report.kept_copy = Some(copy.clone());
            }
        }
        Ok(report)
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn name(&self) -> &str {
        &self.manifest.name
    }

    pub(crate) fn version(&self) -> &semver::Version {
        &self.manifest.version
    }

    /// Whether this instance was loaded from the content hashed as `digest` (a library of
    /// `library_len` bytes): see [`Origin::holds`].
    pub(crate) fn loaded_from(&self, digest: &Digest, library_len: u64) -> bool {
        self.origin.holds(digest, library_len)
    }

    /// Whether this instance was loaded from `description` and `library`'s bytes (see
    /// [`Origin::same_content`](super::provenance::Origin::same_content)).
    pub(crate) fn same_content(&self, description: &[u8], library: &std::fs::File) -> Option<bool> {
        self.origin.same_content(description, library)
    }

    /// Runs one of the plugin's optional entry points (`Ok` if it has none); it may call
    /// its dependencies, as `execute` may.
    pub(crate) fn run_hook(&self, hook: Hook, ctx: &mut Context) -> Result<(), ExecError> {
        let _running = self.route.enter();
        self.runtime.run_hook(&self.id, hook, ctx)
    }

    pub(crate) fn runtime(&self) -> &dyn Runtime {
        &*self.runtime
    }
}

/// Where a [`Plugin`] handle's calls go: the instance it points at now, and which upgrades it
/// follows.
pub(crate) struct Slot {
    name: String,
    /// The handle follows an upgrade to a version that matches this.
    follows: VersionReq,
    current: PinCell<Instance>,
    /// Held by plg-loader itself (a dependent's handle for `Context::call`), not by the host.
    internal: std::sync::atomic::AtomicBool,
}

/// A loaded plugin. Cheap to clone, `Send + Sync`: share it between threads and call
/// [`execute`](Self::execute) from all of them at once.
///
/// # Hot upgrade
/// A handle follows [`PluginManager::reload`](crate::PluginManager::reload): once the new
/// version is loaded, checked and has taken over the old one's state, the handle's next call
/// goes to it. Calls already running finish on the old version; no call waits for an upgrade
/// or fails because of one. Which upgrades a handle follows depends on how it was got:
/// - by name ([`get`](crate::PluginManager::get), `load_manifest`, `load_all`): every one;
/// - with a requirement ([`get_matching`](crate::PluginManager::get_matching)`(name, "^1")`):
///   those to a version that still matches it. An exact requirement (`=1.2.3`) pins the handle
///   to that version: it follows rebuilds of 1.2.3 itself, nothing else.
///
/// A version that some handle stays on is not retired by the upgrade: it stays loaded beside
/// the new one until it is unloaded. So the accessors (`version`, `id`, `library_path`, …)
/// describe the version the handle points at *now*, and return owned values.
///
/// # Lifetime
/// A handle never keeps a plugin alive past
/// [`PluginManager::unload`](crate::PluginManager::unload): after that, `execute` returns
/// [`ExecError::Unloaded`] instead of calling into the closed library. Nor past its
/// manager: dropping the [`PluginManager`](crate::PluginManager) unloads every plugin it
/// loaded, so keep the manager alive as long as you use its handles.
#[derive(Clone)]
pub struct Plugin(Arc<Slot>);

fn _assert_send_sync<T: Send + Sync>() {}
const _: fn() = _assert_send_sync::<Plugin>;

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("id", &self.id())
            .field("follows", &self.0.follows.to_string())
            .field("loaded", &self.is_loaded())
            .finish()
    }
}

impl Plugin {
    /// A handle to `instance` that follows upgrades matching `follows`.
    pub(crate) fn new(instance: Arc<Instance>, follows: VersionReq) -> Self {
        Plugin(Arc::new(Slot {
            name: instance.name().to_owned(),
            follows,
            current: PinCell::new(instance),
            internal: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// A handle that sees `instance` and follows nothing but rebuilds of its version.
    pub(crate) fn pinned(instance: Arc<Instance>) -> Self {
        let follows = exact(instance.version());
        Self::new(instance, follows)
    }

    pub(crate) fn downgrade(&self) -> Weak<Slot> {
        Arc::downgrade(&self.0)
    }

    pub(crate) fn from_slot(slot: Arc<Slot>) -> Self {
        Plugin(slot)
    }

    /// The instance this handle's calls go to now.
    pub(crate) fn instance(&self) -> Arc<Instance> {
        self.0.current.load_full()
    }

    /// Reads the instance this handle's calls go to now.
    fn read<R>(&self, f: impl FnOnce(&Instance) -> R) -> R {
        f(&self.instance())
    }

    /// Whether this handle follows an upgrade to `version`.
    pub(crate) fn follows(&self, version: &semver::Version) -> bool {
        self.0.follows.matches(version)
    }

    /// Points this handle at `to`, if it points at `from`. `true` if it moved.
    pub(crate) fn swap(&self, from: &Arc<Instance>, to: &Arc<Instance>) -> bool {
        self.0.current.compare_and_swap(from, to)
    }

    /// Marks this handle as plg-loader's own (a dependent's, for `Context::call`): the host
    /// does not hold it, so it is not reported as a handle the host kept.
    pub(crate) fn mark_internal(&self) {
        self.0
            .internal
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether plg-loader itself holds this handle ([`mark_internal`](Self::mark_internal)).
    pub(crate) fn is_internal(&self) -> bool {
        self.0.internal.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The instances this handle was moved off that no call uses any more, for the caller to
    /// drop outside its locks.
    pub(crate) fn reclaim(&self) -> Vec<Arc<Instance>> {
        self.0.current.reclaim()
    }

    /// What the unload-safety preflight read from the library file before it was loaded:
    /// whether its image can be unmapped at all ([`Unmappable`]). Every unload's
    /// [`UnloadReport`] carries it beside the verified result.
    pub fn unload_preflight(&self) -> Unmappable {
        self.read(|i| i.runtime.preflight().clone())
    }

    /// Calls the plugin's `execute` with `ctx`. The plugin reads and writes `ctx`'s values.
    ///
    /// Errors are typed: the plugin's own failure, a caught panic, cancellation, a passed
    /// deadline, or an unloaded plugin. None of them affects the host or other plugins.
    ///
    /// When the manifest declares `input_schema` or `output_schema`, the context is checked
    /// against them before and after the call: `ExecError::InvalidInput` (the plugin is not
    /// called) or `ExecError::InvalidOutput`, naming the JSON pointer of each mismatch.
    ///
    /// The error is boxed, as `std::io::Error` and wasmtime's `anyhow::Error` are, so that a
    /// call's result is one register: an [`ExecError`] is 72 bytes, and returning it by value
    /// cost a no-op call a third of its time (BENCHMARKS.md). Match on `*err`; `?` converts a
    /// `Box<ExecError>` into `Box<dyn Error>` or `anyhow::Error` as it is (to `downcast_ref`
    /// that to `ExecError` later, convert first: `.map_err(|e| *e)?`).
    ///
    /// ```no_run
    /// # fn demo(plugin: &plg_loader::Plugin) {
    /// use plg_loader::{Context, ExecError};
    /// let mut ctx = Context::new();
    /// match plugin.execute(&mut ctx) {
    ///     Ok(()) => {}
    ///     Err(e) => match *e {
    ///         ExecError::DeadlineExceeded { .. } => eprintln!("too slow"),
    ///         other => eprintln!("{other}"),
    ///     },
    /// }
    /// # }
    /// ```
    #[inline]
    pub fn execute(&self, ctx: &mut Context) -> Result<(), Box<ExecError>> {
        let fast = threads::with_local(|local| {
            let pin = local.pin()?;
            Some(self.execute_pinned(local, &pin, ctx))
        });
        match fast.flatten() {
            Some(result) => result,
            None => self.execute_slow(ctx),
        }
    }

    /// The fast path: the instance is read and the library entered through this thread's
    /// `pin`, with no shared counter touched (see [`threads`]).
    #[inline]
    fn execute_pinned(&self, local: &Local, pin: &Pin<'_>, ctx: &mut Context) -> Outcome {
        // The clock is read only for hooks (they get the duration) and sampled metrics,
        // decided by the version that gets the call first.
        let (mut start, mut decided) = (None, false);
        loop {
            let served = self.0.current.with(pin, |instance| {
                let site = &instance.calls;
                if !decided {
                    decided = true;
                    start = local.sampled(site.timing_mask).then(Instant::now);
                }
                let result = site
                    .hooks
                    .before(&instance.id, || instance.call_info(), ctx)
                    .and_then(|()| instance.call(Some(pin), ctx));
                match result {
                    // An upgrade retired this version between our read and our call, so the
                    // call never ran; the handle points elsewhere now: go there (the hooks
                    // run again, for the version that takes the call).
                    Err(e)
                        if matches!(*e, ExecError::Unloaded { .. })
                            && !self.0.current.is(instance) =>
                    {
                        None
                    }
                    result => Some(instance.finish(start, local.stripe(), ctx, result)),
                }
            });
            if let Some(result) = served {
                return result;
            }
        }
    }

    /// The slow path, for calls nested deeper than a thread has pins and for threads whose
    /// thread-locals are being torn down: the instance is cloned and the library's shared
    /// counter entered. Its loop repeats the fast path's on purpose: one shared helper, even
    /// `#[inline(always)]`, made the no-op call measurably slower (32 → 38–44 ns).
    #[cold]
    fn execute_slow(&self, ctx: &mut Context) -> Outcome {
        let mut instance = self.instance();
        let start = (!instance.calls.hooks.is_empty()).then(Instant::now);
        loop {
            let result = instance
                .calls
                .hooks
                .before(&instance.id, || instance.call_info(), ctx)
                .and_then(|()| instance.call(None, ctx));
            match result {
                Err(e)
                    if matches!(*e, ExecError::Unloaded { .. })
                        && !self.0.current.is(&instance) =>
                {
                    instance = self.instance();
                }
                result => return instance.finish(start, SHARED_STRIPE, ctx, result),
            }
        }
    }

    /// `true` if both handles point at the same loaded instance now.
    pub fn same_instance(&self, other: &Plugin) -> bool {
        Arc::ptr_eq(&self.instance(), &other.instance())
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The version this handle's calls go to now.
    pub fn version(&self) -> semver::Version {
        self.read(|i| i.version().clone())
    }

    /// The requirement of the upgrades this handle follows (`*` for a handle got by name).
    pub fn follows_requirement(&self) -> &VersionReq {
        &self.0.follows
    }

    /// `name@version`, of the version this handle's calls go to now.
    pub fn id(&self) -> String {
        self.read(|i| i.id.clone())
    }

    /// The validated manifest.
    pub fn manifest(&self) -> Arc<Manifest> {
        self.read(|i| Arc::clone(&i.manifest))
    }

    /// The manifest file it was loaded from.
    pub fn manifest_path(&self) -> PathBuf {
        self.read(|i| i.manifest_path.clone())
    }

    /// The library file it was loaded from (canonical path): the plugin's own, or, after a
    /// hot upgrade, the private copy under the plugins directory's `.plg/live/`.
    pub fn library_path(&self) -> PathBuf {
        self.read(|i| i.runtime.library_path().to_owned())
    }

    /// The plg-api version the plugin was built with.
    pub fn api_version(&self) -> String {
        self.read(|i| i.runtime.api_version().to_owned())
    }

    /// `Some(true)` if the plugin was built with `panic = "abort"`: a panic in it aborts the
    /// whole host, which in-process loading cannot prevent. `None` for a plugin built before
    /// plg-api recorded its panic strategy.
    pub fn aborts_on_panic(&self) -> Option<bool> {
        self.read(|i| i.runtime.panic_aborts())
    }

    /// Where its calls run: [`Isolation::Process`](crate::Isolation::Process) when in a
    /// supervised worker process, else [`Isolation::InProcess`](crate::Isolation::InProcess).
    pub fn isolation(&self) -> crate::manifest::Isolation {
        if self.read(|i| i.runtime.worker()) {
            crate::manifest::Isolation::Process
        } else {
            crate::manifest::Isolation::InProcess
        }
    }

    /// `false` once unloading began.
    pub fn is_loaded(&self) -> bool {
        self.read(|i| i.runtime.is_loaded())
    }

    /// Calls running right now, on the version this handle points at.
    pub fn in_flight(&self) -> usize {
        self.read(|i| i.runtime.in_flight())
    }
}

/// The requirement `=version`.
pub(crate) fn exact(version: &semver::Version) -> VersionReq {
    VersionReq {
        comparators: vec![semver::Comparator {
            op: semver::Op::Exact,
            major: version.major,
            minor: Some(version.minor),
            patch: Some(version.patch),
            pre: version.pre.clone(),
        }],
    }
}

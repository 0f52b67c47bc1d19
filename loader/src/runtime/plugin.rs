//! [`Plugin`]: the cheap, cloneable handle every call goes through.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use abi_stable::std_types::RStr;
use plg_api::{Context, LogLevel, LogSink, PluginErrorKind};

use super::{
    ffi::{self, CallError, Closed, Library},
    schemas::Schemas,
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
}

/// Where calls to a plugin go. Today there is one runtime, the in-process library; a worker
/// process or an executable plugin fits behind the same trait without changing callers.
trait Runtime: Send + Sync + fmt::Debug {
    fn execute(&self, id: &str, ctx: &mut Context) -> Result<(), ExecError>;
    fn unload(&self, id: &str, timeout: Duration) -> Result<UnloadReport, UnloadError>;
    fn is_loaded(&self) -> bool;
    fn in_flight(&self) -> usize;
    fn library_path(&self) -> &Path;
    fn preflight(&self) -> &Unmappable;
    fn api_version(&self) -> &str;
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

impl Runtime for InProcess {
    fn execute(&self, id: &str, ctx: &mut Context) -> Result<(), ExecError> {
        match self.lib.execute(ctx, HOST_SINK) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(map_call_error(id, ctx, e)),
            Err(Closed) => Err(ExecError::Unloaded {
                plugin: id.to_owned(),
            }),
        }
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
            },
            None => UnloadReport {
                plugin: id.to_owned(),
                waited,
                unmapped: ffi::is_mapped(self.lib.path()).map(|m| !m),
                on_unload_error: None,
                close_error: None,
                predicted: self.preflight.clone(),
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
}

struct Inner {
    id: String,
    manifest: Manifest,
    manifest_path: PathBuf,
    runtime: Box<dyn Runtime>,
    /// The compiled `input_schema` and `output_schema`, if the manifest declares any.
    schemas: Option<Schemas>,
}

/// A loaded plugin. Cheap to clone, `Send + Sync`: share it between threads and call
/// [`execute`](Self::execute) from all of them at once.
///
/// A handle never keeps a plugin alive past
/// [`PluginManager::unload`](crate::PluginManager::unload): after that, `execute` returns
/// [`ExecError::Unloaded`] instead of calling into the closed library. Nor past its
/// manager: dropping the [`PluginManager`](crate::PluginManager) unloads every plugin it
/// loaded, so keep the manager alive as long as you use its handles.
#[derive(Clone)]
pub struct Plugin(Arc<Inner>);

fn _assert_send_sync<T: Send + Sync>() {}
const _: fn() = _assert_send_sync::<Plugin>;

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("id", &self.0.id)
            .field("loaded", &self.is_loaded())
            .finish()
    }
}

impl Plugin {
    /// How many handles to this plugin exist, the manager's own included.
    pub(crate) fn handles(&self) -> usize {
        Arc::strong_count(&self.0)
    }

    pub(crate) fn in_process(
        manifest: Manifest,
        manifest_path: PathBuf,
        lib: Library,
        preflight: Unmappable,
        schemas: Option<Schemas>,
    ) -> Self {
        Plugin(Arc::new(Inner {
            id: manifest.id(),
            manifest,
            manifest_path,
            runtime: Box::new(InProcess { lib, preflight }),
            schemas,
        }))
    }

    /// What the unload-safety preflight read from the library file before it was loaded:
    /// whether its image can be unmapped at all ([`Unmappable`]). Every unload's
    /// [`UnloadReport`] carries it beside the verified result.
    pub fn unload_preflight(&self) -> &Unmappable {
        self.0.runtime.preflight()
    }

    /// Calls the plugin's `execute` with `ctx`. The plugin reads and writes `ctx`'s values.
    ///
    /// Errors are typed: the plugin's own failure, a caught panic, cancellation, a passed
    /// deadline, or an unloaded plugin. None of them affects the host or other plugins.
    ///
    /// When the manifest declares `input_schema` or `output_schema`, the context is checked
    /// against them before and after the call: `ExecError::InvalidInput` (the plugin is not
    /// called) or `ExecError::InvalidOutput`, naming the JSON pointer of each mismatch.
    pub fn execute(&self, ctx: &mut Context) -> Result<(), ExecError> {
        let Some(schemas) = &self.0.schemas else {
            return self.0.runtime.execute(&self.0.id, ctx);
        };
        schemas.check_input(&self.0.id, ctx)?;
        self.0.runtime.execute(&self.0.id, ctx)?;
        schemas.check_output(&self.0.id, ctx)
    }

    pub(crate) fn unload(&self, timeout: Duration) -> Result<UnloadReport, UnloadError> {
        self.0.runtime.unload(&self.0.id, timeout)
    }

    /// `true` if both handles refer to the same loaded instance.
    pub fn same_instance(&self, other: &Plugin) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.0.manifest.name
    }

    /// The plugin's version.
    pub fn version(&self) -> &semver::Version {
        &self.0.manifest.version
    }

    /// `name@version`.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The validated manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.0.manifest
    }

    /// The manifest file it was loaded from.
    pub fn manifest_path(&self) -> &Path {
        &self.0.manifest_path
    }

    /// The library file (canonical path).
    pub fn library_path(&self) -> &Path {
        self.0.runtime.library_path()
    }

    /// The plg-api version the plugin was built with.
    pub fn api_version(&self) -> &str {
        self.0.runtime.api_version()
    }

    /// `false` once unloading began.
    pub fn is_loaded(&self) -> bool {
        self.0.runtime.is_loaded()
    }

    /// Calls running right now.
    pub fn in_flight(&self) -> usize {
        self.0.runtime.in_flight()
    }
}

//! The runtime: open and check a library (`open`), call it through a [`Plugin`] handle,
//! keep a registry in the [`PluginManager`], and unload with verification. `ffi` is the one
//! home of `unsafe` in the crate.
//!
//! The runtime imports only the shared bottom (manifest, errors, plugins directory), never the
//! packaging layer. Packaging reaches in through one door, [`check_loads`].

mod depends;
mod events;
mod ffi;
mod hooks;
mod isolated;
mod live_dir;
mod manager;
mod metrics;
mod observe;
mod open;
mod plugin;
mod provenance;
mod reload;
mod resolve;
mod route;
mod scan;
mod schemas;
mod threads;
pub(crate) mod watch;
mod worker;

pub use events::{Event, EventKind, Retired, Subscription, DEFAULT_EVENT_CAPACITY};
pub use hooks::{CallHook, CallInfo, Rejection};
pub use manager::{LoadReport, PluginManager, DEFAULT_UNLOAD_TIMEOUT};
pub use metrics::{render_prometheus, PluginMetrics, ERROR_KINDS, SAMPLE_EVERY};
pub(crate) use open::check_loads;
pub use plugin::{Plugin, UnloadReport};
pub use reload::Reload;
pub use scan::ScanEntry;
pub(crate) use threads::init_fences;
pub use watch::{WatchBackend, WatchGuard, WatchOptions};
#[doc(hidden)]
pub use worker::{adopt_from_env, Adopted};
pub use worker::{WorkerPolicy, WorkerStop};

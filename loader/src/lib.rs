//! Load plg plugins from shared objects, call them through one entry point, and unload them
//! for real.
//!
//! ```no_run
//! use plg_loader::{Context, PluginManager};
//!
//! let manager = PluginManager::new("/var/lib/myapp/plugins");
//! let report = manager.load_all();
//! for failure in &report.failed {
//!     eprintln!("skipped {}: {}", failure.path.display(), failure.error);
//! }
//! let hello = manager.get_matching("hello", "^1")?;
//! let mut ctx = Context::new();
//! ctx.set("name", "Ada");
//! hello.execute(&mut ctx)?;
//! println!("{}", ctx.get_str("greeting")?);
//! for r in manager.unload("hello", None)? {
//!     println!("{} unmapped: {:?}", r.plugin, r.unmapped);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Core concepts
//! - [`PluginsDir`]: a plugins directory. It owns the layout (`NAME/VERSION`, `.plg/…`), the
//!   default location (`$PLG_PLUGINS_DIR`, else the per-user data directory) and discovery.
//! - [`PluginManager`]: configuration (the plugins directory, the unload timeout) and the
//!   registry of loaded plugins. Share it in an `Arc`; every method takes `&self`.
//! - A loaded library: opened once per `name@version`, checked (shared object, plg
//!   declaration, ABI version, abi_stable type layouts, embedded name and version), and
//!   closed on unload. It is private; all calls reach it through
//! - [`Plugin`]: a cheap handle (`Clone + Send + Sync`). [`Plugin::execute`] is the one call
//!   path. A handle cannot call into an unloaded library: after unload it returns
//!   [`ExecError::Unloaded`].
//! - [`Manifest`]: a validated `plugin.json`.
//!
//! # Layers
//! The source tree is the architecture. Imports flow one way, downwards:
//!
//! ```text
//! lib.rs, defaults.rs        the crate root; defaults.rs wires git sources into PluginManager::new
//!   ├── packaging/           bundle, keys, install, origin, git, build, scaffold
//!   │     │  uses runtime only through runtime::check_loads ("open and check")
//!   │     ▼
//!   ├── runtime/             open, ffi (all unsafe), plugin, manager
//!   │     ▼
//!   └── manifest/, plugins_dir/, error/, untrusted.rs   the shared bottom
//! ```
//!
//! The runtime never imports packaging; a `remote_git` manifest reaches the git code through
//! the [`SourceResolver`] seam that `defaults.rs` fills.
//!
//! # Unloading
//! [`PluginManager::unload`] refuses new calls, raises the plugin's stop flag (so
//! `Context::is_cancelled` turns true inside it), waits (bounded) for calls in flight, runs
//! `on_unload`, closes the library and then checks whether the library is really gone
//! (on Linux, nothing mapped any more where it was, else `/proc/self/maps`;
//! `dlopen(RTLD_NOLOAD)` on other Unixes), reporting it in
//! [`UnloadReport::unmapped`]. glibc keeps a library mapped while it has thread-local
//! destructors registered; plg reports that rather than assuming success.
//!
//! # Crate features
//! None is on by default: loading, calling and unloading local plugins, and reading and
//! installing bundles, need none. The `plg` CLI turns them all on.
//! - `build`: `build` builds plugin crates with cargo and stages them, `scaffold`
//!   writes new plugin crates, and `dev` is `plg dev`'s build-and-hot-upgrade loop. Pulls in `cargo_metadata`.
//! - `git` (implies `build`): `git` clones `remote_git` sources with libgit2 and builds
//!   them. Without it, a `remote_git` manifest fails to load with
//!   [`LoadError::UnsupportedSource`].
//! - `schemas`: checks the context against a plugin's `input_schema` and `output_schema`
//!   (JSON Schema, with the jsonschema crate). Without it, a plugin that declares schemas
//!   fails to load with [`LoadError::Schema`].
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod defaults;
#[cfg(feature = "build")]
pub mod dev;
mod error;
pub mod manifest;
mod packaging;
mod plugins_dir;
mod runtime;
pub mod untrusted;

#[cfg(feature = "git")]
pub use packaging::git;
#[cfg(feature = "build")]
pub use packaging::{build, scaffold};
pub use packaging::{bundle, install, keys, origin};

pub use error::{
    BuildError, BundleError, DependencyProblem, ExecError, GitError, HandshakeProblem,
    InstallError, IoError, LoadError, LoadFailure, LookupError, ManifestError, ScaffoldError,
    UnloadError, WorkerError, MAX_DEPENDENCY_DEPTH,
};
/// What `plg-worker` and its host share beyond the protocol crate; not for other users.
#[doc(hidden)]
pub mod __worker {
    pub use crate::error::{load_error_line, CHECK_OK, LOAD_ERROR_PREFIX};
    pub use crate::runtime::{adopt_from_env, Adopted};
}

/// Readies this process for loading plugins: registers it for `membarrier(2)`, the fence
/// that keeps every call's fast path free of atomic read-modify-writes. Optional: the first
/// load does it otherwise. Call it first thing in `main`, while the process has one thread:
/// with several threads, the kernel makes the registration wait for an RCU grace period
/// (about 10 ms on a 2-core VM), with one it is immediate. `plg` and `plg-worker` do.
pub fn prepare_process() {
    runtime::init_fences();
}
pub use manifest::{
    HttpServices, Isolation, Manifest, Route, SchemaSource, Source, SourceResolver, MANIFEST_FILE,
};
pub use plugins_dir::{Config, ConfigError, Discovery, NoDefaultDir, PluginsDir, PLUGINS_DIR_ENV};
pub use runtime::{
    render_prometheus, CallHook, CallInfo, Event, EventKind, LoadReport, Plugin, PluginManager,
    PluginMetrics, Rejection, Reload, Retired, ScanEntry, Subscription, UnloadReport, WatchBackend,
    WatchGuard, WatchOptions, WorkerPolicy, WorkerStop, DEFAULT_EVENT_CAPACITY,
    DEFAULT_UNLOAD_TIMEOUT, ERROR_KINDS, SAMPLE_EVERY,
};

pub use plg_api::{
    CancelToken, Context, ContextError, LogLevel, PluginErrorKind, Value, ValueKind, ValueMap,
};
/// The semver crate, whose `Version` the API uses.
pub use semver;

/// The README's Rust snippets, compiled as doctests so they stay true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

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
//! - [`PluginManager`]: configuration (the base directory, the unload timeout) and the
//!   registry of loaded plugins. Share it in an `Arc`; every method takes `&self`.
//! - A loaded library: opened once per `name@version`, checked (shared object, plg
//!   declaration, ABI version, abi_stable type layouts, embedded name and version), and
//!   closed on unload. It is private; all calls reach it through
//! - [`Plugin`]: a cheap handle (`Clone + Send + Sync`). [`Plugin::execute`] is the one call
//!   path. A handle cannot call into an unloaded library: after unload it returns
//!   [`ExecError::Unloaded`].
//! - [`Manifest`]: a validated `plugin.json`.
//!
//! # Unloading
//! [`PluginManager::unload`] refuses new calls, raises the plugin's stop flag (so
//! `Context::is_cancelled` turns true inside it), waits (bounded) for calls in flight, runs
//! `on_unload`, closes the library and then checks whether the library is really gone
//! (`/proc/self/maps` on Linux, `dlopen(RTLD_NOLOAD)` on other Unixes), reporting it in
//! [`UnloadReport::unmapped`]. glibc keeps a library mapped while it has thread-local
//! destructors registered; plg reports that rather than assuming success.
//!
//! # Crate features
//! - `build` (default): [`build`] builds plugin crates with cargo and stages them, and
//!   [`scaffold`] writes new plugin crates. Pulls in `cargo_metadata`.
//! - `git` (default, implies `build`): [`git`] clones `remote_git` sources with libgit2 and
//!   builds them. A host that only loads local libraries can turn it off and skip libgit2.
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

#[cfg(feature = "build")]
pub mod build;
pub mod bundle;
mod error;
mod ffi;
#[cfg(feature = "git")]
pub mod git;
pub mod install;
mod manager;
pub mod manifest;
mod plugin;
#[cfg(feature = "build")]
pub mod scaffold;

pub use error::{ExecError, LoadError, LookupError, ManifestError, UnloadError};
pub use manager::{LoadFailure, LoadReport, PluginManager, ScanEntry, DEFAULT_UNLOAD_TIMEOUT};
pub use manifest::{HttpServices, Manifest, Route, Source, MANIFEST_FILE};
pub use plugin::{Plugin, UnloadReport};

pub use plg_api::{
    CancelToken, Context, ContextError, LogLevel, PluginErrorKind, Value, ValueKind, ValueMap,
};
/// The semver crate, whose `Version` the API uses.
pub use semver;

/// The README's Rust snippets, compiled as doctests so they stay true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

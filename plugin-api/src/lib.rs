//! The interface shared by plg hosts and plugins.
//!
//! A plg plugin is an ordinary `cdylib` crate that depends on this crate and invokes
//! [`export_plugin!`] once. The host (usually through `plg-loader`) loads it at run time and
//! calls its one entry point, `execute(&mut Context)`.
//!
//! ```
//! use plg_api::{Context, PluginError};
//!
//! /// The plugin's entry point: read `name`, write `greeting`.
//! fn execute(ctx: &mut Context) -> Result<(), PluginError> {
//!     let name = ctx.get_str("name").unwrap_or("world").to_owned();
//!     ctx.info(format!("greeting {name}"));
//!     ctx.set("greeting", format!("Hello, {name}!"));
//!     Ok(())
//! }
//! // In the plugin crate: plg_api::export_plugin!(execute: execute);
//!
//! let mut ctx = Context::new();
//! ctx.set("name", "Ada");
//! execute(&mut ctx).unwrap();
//! assert_eq!(ctx.get_str("greeting"), Ok("Hello, Ada!"));
//! ```
//!
//! # Core concepts
//! - [`export_plugin!`]: turns your `execute` (and optional `on_load` and `on_unload`)
//!   functions into the plugin's exported entry points.
//! - [`Value`]: a JSON-like value (null, bool, i64, f64, string, bytes, list, map) whose
//!   layout is checked at load time. It converts to and from Rust types (`From`, `TryFrom`)
//!   and to and from any serde format.
//! - [`Context`]: a string-keyed [`ValueMap`] both sides read and write, plus a `label`
//!   naming the operation, an optional deadline, a [`CancelToken`], and logging to the host
//!   ([`LogLevel`]). Typed reads fail with a [`ContextError`].
//! - [`PluginError`]: what an entry point returns on failure, with a [`PluginErrorKind`].
//! - [`PluginModule`]: the entry points (`execute`, optional `on_load` and `on_unload`), laid
//!   out as an abi_stable prefix type, reached through the `PLG_PLUGIN_DECLARATION` symbol
//!   ([`PluginDeclaration`]).
//!
//! Hosts additionally use the [`host`] module ([`host::HostContext`]), which holds the
//! operations only a host performs on a [`Context`]; plugins never need it.
//!
//! # Concurrency
//! A host may call `execute` from many threads at once. Keep plugin state in `Sync` types
//! (atomics, `Mutex`, `OnceLock`), never in `static mut`.
//!
//! # Panics
//! [`export_plugin!`] wraps every entry point in `catch_unwind`: a panic reaches the host as a
//! [`PluginErrorKind::Panicked`] error carrying the panic message, and the host keeps running.
//! **A plugin built with `panic = "abort"` cannot be protected**: its panic aborts the whole
//! host process. Keep the default `panic = "unwind"` for plugin crates, or run such a plugin
//! in a separate process.
//!
//! # Cancellation and unloading
//! [`Context::is_cancelled`] turns true when the host cancels the context's token, when the
//! deadline passes, or when the host starts unloading the plugin. A plugin that runs for long
//! polls it and returns [`PluginError::cancelled`]. The host cannot preempt a plugin that does
//! not poll.
//!
//! Linux (glibc) does not unmap a library that registered thread-local destructors (a
//! `thread_local!` holding a type with `Drop`, used on a host thread). Such a plugin stays
//! mapped after unload; the host reports it. Avoid `Drop` types in thread-locals if your
//! plugin should be unloadable.
//!
//! # ABI and compatibility
//! - The declaration starts with [`MAGIC`] and [`ABI_VERSION`], at fixed offsets forever. A
//!   host refuses any other ABI version.
//! - The layout of [`PluginModuleRef`] (and through it [`Context`], [`Value`] and
//!   [`PluginError`]) is checked with abi_stable at load time; any difference is refused.
//! - [`PluginModule`] only ever grows by appending fields after the `last_prefix_field`;
//!   hosts treat appended fields as optional, so plugins built today keep loading. A host
//!   reads an appended field a plugin predates as `None`; a plugin newer than its host has
//!   fields the host never reads. [`MODULE_REVISION`] counts the appends. The test
//!   `load::a_plugin_built_against_the_frozen_abi_loads_and_runs` loads a plugin built
//!   against a frozen copy of the revision-1 plg-api (`tests/frozen-abi`).
//! - Changing [`Value`], [`Context`] or [`PluginError`] (a field, a variant) is a layout
//!   change: it needs a new [`ABI_VERSION`], and plugins must be rebuilt.
//!
//! # Memory across the boundary
//! Strings and vectors a plugin creates free themselves through code in the plugin. A host
//! brackets each call with [`HostContext::begin_call`](host::HostContext::begin_call) and
//! [`HostContext::end_call`](host::HostContext::end_call) (plg-loader does): `end_call`
//! moves everything the plugin may have written into host memory, so that nothing in the
//! context points into a library that may later be unloaded. A context the plugin did not
//! write to is left alone; one it wrote to is walked, and only the buffers that are not
//! already the host's are copied. [`HostContext::end_call_with`](host::HostContext::end_call_with)
//! lets a host tell its own buffers apart at a glance ([`host::BufferOwner`]); plg-loader
//! does, so a call that writes one string costs the copy of that string, and nothing when
//! the plugin writes into the buffer it took back with [`Context::take_string`].
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]
// No hand-written unsafe code. Two exceptions: abi_stable's derive for the plugin module
// writes unsafe accessors for the fields appended after its prefix, so that module allows
// it; and `owner::BufferOwner` is an `unsafe trait` (a wrong claim is a host's unsoundness),
// declared there with no unsafe block.
#![deny(unsafe_code)]

mod calls;
mod context;
mod convert;
mod error;
pub mod host;
#[allow(unsafe_code)]
mod module;
mod owner;
mod serde_impls;
pub mod untrusted;
mod value;

pub use calls::{CallRouter, RouteFn};
pub use context::{CancelToken, Context, ContextError, LogFn, LogLevel, LogSink};
pub use convert::{
    from_value,
    out::{FromValue, ValueError},
    to_value,
};
pub use error::{PluginError, PluginErrorKind};
#[doc(hidden)]
pub use module::__private;
pub use module::{
    ExecuteFn, HookFn, PluginDeclaration, PluginModule, PluginModuleRef, ABI_VERSION,
    DECLARATION_SYMBOL, MAGIC, MODULE_REVISION, NOTE_SYMBOL,
};
pub use value::{Value, ValueKind, ValueMap};

/// Re-exported for hosts that check layouts themselves.
pub use abi_stable;

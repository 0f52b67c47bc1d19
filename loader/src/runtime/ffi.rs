//! The one home of `unsafe` in plg-loader (this file and its submodules): opening a library,
//! reading and checking its declaration, calling into it, and closing it.
//!
//! [`Library`] is safe to use: it refuses calls once closing has begun ([`Gate`]), waits for
//! calls in flight before closing, and moves every buffer the plugin allocated into host
//! storage before a call returns, so no host data points into a closed library.
//!
//! - `entry`: entry points copied out of the module, and `call_and_rehome`;
//! - `gate`: the shared in-flight counter and closing flag;
//! - `host_buffers`: which buffers of a context are already the host's;
//! - `pin_cell`: the hazard-pointer cell behind `Plugin` handles;
//! - `layout`: abi_stable's layout check;
//! - `open_images`: one open image per file;
//! - `os`: `dlopen`, header sniffing, `membarrier(2)`, where an object is mapped, whether a
//!   span is free, `/proc/self/maps`.

use std::{
    fs::File,
    path::{Path, PathBuf},
    ptr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use plg_api::{
    CallRouter, Context, LogSink, PluginDeclaration, PluginErrorKind, ABI_VERSION,
    DECLARATION_SYMBOL, MAGIC,
};

use super::threads::{self, Pin};
use crate::error::LoadError;

mod entry;
mod gate;
mod host_buffers;
mod layout;
mod open_images;
mod os;
mod pin_cell;

pub(crate) use entry::{adopt, CallError, CallFailure};
use entry::{call_and_rehome, EntryFn, PluginFn, RouterFn, StopFn};
use gate::{Gate, CLOSING};
use layout::{check_module_layout, summarize_layout_errors};
use open_images::{release_image, ImageKey, OPEN_IMAGES};
#[cfg(feature = "isolation")]
pub(crate) use os::die_with_parent;
use os::span_is_free;
pub(crate) use os::{adopt_parent, close_inherited, set_limits, ChildLimits};
pub(crate) use os::{is_mapped, membarrier_expedited, membarrier_register};
use os::{not_a_shared_object, open_library};
pub(crate) use pin_cell::PinCell;

/// The optional entry points a host runs outside `execute` (`on_unload` runs only in
/// [`Library::close`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hook {
    OnLoad,
    SaveState,
    RestoreState,
    SelfTest,
}

/// What closing a library found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Closing {
    /// The `on_unload` hook's error, if it failed.
    pub(crate) on_unload: Option<CallError>,
    /// `dlclose`'s error, if any.
    pub(crate) close_error: Option<String>,
    /// Whether the library is still mapped; `None` where that cannot be checked.
    pub(crate) still_mapped: Option<bool>,
}

/// A loaded, checked plugin library.
pub(crate) struct Library {
    /// What a call publishes in its thread's pin slot while it runs (see [`threads`]): unique,
    /// with the top bit set so that it never equals an object's address.
    id: usize,
    path: PathBuf,
    name: String,
    version: String,
    api_version: String,
    gate: Gate,
    /// Set once `on_load` succeeded; `on_unload` runs only then.
    hooks_armed: std::sync::atomic::AtomicBool,
    /// `Some` until closed. Only [`Library::close`] and `Drop` take it.
    lib: Mutex<Option<libloading::Library>>,
    // Entry points copied out of the checked module. They point into `lib`; each call site
    // shows that `lib` is open (the gate is entered, or `lib` is locked and `Some`).
    execute: EntryFn,
    on_load: Option<EntryFn>,
    on_unload: Option<EntryFn>,
    set_stop: StopFn,
    save_state: Option<EntryFn>,
    restore_state: Option<EntryFn>,
    self_test: Option<EntryFn>,
    /// `Some(true)`: built with `panic = "abort"`; `None`: built before plg-api recorded it.
    panic_aborts: Option<bool>,
    /// `None` from a plugin built before module revision 3.
    set_router: Option<RouterFn>,
    /// This library's entry in [`OPEN_IMAGES`], released once it is closed.
    image: ImageKey,
    /// The address span the dynamic loader mapped the library at, if found: after closing,
    /// nothing mapped there means the image is gone, without reading `/proc/self/maps`.
    span: Option<(usize, usize)>,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("path", &self.path)
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Library {
    /// Opens `path` and checks everything a later call relies on: that it is a shared object,
    /// that it exports a plg declaration, its ABI version and its type layouts. Runs no plugin
    /// code other than the library's own initializers.
    ///
    /// `path` is canonical (the dynamic loader's and `/proc/self/maps`' spelling of it, which
    /// the unload check compares), and `file` is that file, open.
    pub(crate) fn open(path: &Path, file: &File) -> Result<Self, LoadError> {
        let path = path.to_owned();
        if let Some(reason) = not_a_shared_object(file) {
            return Err(LoadError::NotSharedObject { path, reason });
        }
        threads::init_fences();
        let image = ImageKey::of(&path, file);
        {
            let mut open = OPEN_IMAGES.lock().unwrap_or_else(|e| e.into_inner());
            if open.iter().any(|k| k.same_image(&image)) {
                return Err(LoadError::ImageInUse { path });
            }
            open.push(image.clone());
        }
        let opened = Self::open_image(path, image.clone());
        if opened.is_err() {
            release_image(&image);
        }
        opened
    }

    fn open_image(path: PathBuf, image: ImageKey) -> Result<Self, LoadError> {
        let lib = open_library(&path).map_err(|e| LoadError::Open {
            path: path.clone(),
            message: e.to_string(),
        })?;
        // SAFETY: we only take the symbol's address here; its type is checked below before
        // anything but the two fixed header fields is read.
        let decl_ptr: *const PluginDeclaration =
            match unsafe { lib.get::<*const PluginDeclaration>(DECLARATION_SYMBOL.as_bytes()) } {
                Ok(sym) => *sym,
                Err(_) => {
                    return Err(LoadError::NotAPlugin {
                        path,
                        reason: format!("it exports no `{DECLARATION_SYMBOL}` symbol"),
                    })
                }
            };
        if decl_ptr.is_null() {
            return Err(LoadError::NotAPlugin {
                path,
                reason: format!("`{DECLARATION_SYMBOL}` is null"),
            });
        }
        // SAFETY: `magic` and `abi_version` sit at fixed offsets in every version of the
        // declaration (plg-api's compatibility rule), and the symbol is a static of at least
        // that size in any plg plugin. `read_unaligned` makes no alignment assumption about a
        // foreign symbol of the same name.
        let (magic, abi_version) = unsafe {
            (
                ptr::addr_of!((*decl_ptr).magic).read_unaligned(),
                ptr::addr_of!((*decl_ptr).abi_version).read_unaligned(),
            )
        };
        if magic != MAGIC {
            return Err(LoadError::NotAPlugin {
                path,
                reason: format!("`{DECLARATION_SYMBOL}` does not start with plg's magic bytes"),
            });
        }
        if abi_version != ABI_VERSION {
            return Err(LoadError::AbiVersion {
                path,
                expected: ABI_VERSION,
                found: abi_version,
            });
        }
        // SAFETY: magic and ABI version match, so the symbol is a `PluginDeclaration` of this
        // ABI version; it lives in `lib`, which outlives every use of `decl` in this function.
        let decl: &PluginDeclaration = unsafe { &*decl_ptr };
        // A fresh CheckingGlobals per load: abi_stable's process-wide one would keep pointers
        // into this library's layouts after it is unloaded.
        if let Err(details) = check_module_layout(decl.module_layout) {
            return Err(LoadError::AbiLayout {
                path,
                api_version: decl.api_version.to_string(),
                summary: summarize_layout_errors(&details),
                details,
            });
        }
        let module = decl.module;
        let span = os::placement_of(decl_ptr as usize).map(|p| p.object);
        static NEXT_ID: AtomicUsize = AtomicUsize::new(1);
        let library = Library {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed) | CLOSING,
            name: decl.name.to_string(),
            version: decl.version.to_string(),
            api_version: decl.api_version.to_string(),
            gate: Gate(AtomicUsize::new(0)),
            hooks_armed: std::sync::atomic::AtomicBool::new(false),
            execute: PluginFn(module.execute()),
            on_load: module.on_load().map(PluginFn),
            on_unload: module.on_unload().map(PluginFn),
            set_stop: PluginFn(module.set_stop()),
            // Appended fields: `None` from a plugin built before they existed.
            save_state: module.save_state().flatten().map(PluginFn),
            restore_state: module.restore_state().flatten().map(PluginFn),
            self_test: module.self_test().flatten().map(PluginFn),
            panic_aborts: module.panic_aborts(),
            set_router: module.set_router().flatten().map(PluginFn),
            lib: Mutex::new(Some(lib)),
            path,
            image,
            span,
        };
        // A library image that was not unmapped last time is reused by dlopen, stop flag and
        // all; clear it.
        // SAFETY: `library` owns the open `lib` and nothing can close it before it is returned.
        unsafe { library.set_stop.call(false) };
        Ok(library)
    }

    /// The canonical path the library was opened from.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The name embedded in the library.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The version embedded in the library.
    pub(crate) fn version(&self) -> &str {
        &self.version
    }

    /// The plg-api version the plugin was built with.
    pub(crate) fn api_version(&self) -> &str {
        &self.api_version
    }

    /// Calls in flight: those counted by the gate and those pinned on their threads.
    pub(crate) fn in_flight(&self) -> usize {
        self.gate.in_flight() + threads::pins_of_library(self.id)
    }

    /// `true` once closing began.
    pub(crate) fn is_closing(&self) -> bool {
        self.gate.is_closing()
    }

    /// Calls `execute`. Before returning, every value the plugin left in `ctx` is moved into
    /// host memory and `ctx`'s log sink is reset to `sink`.
    pub(crate) fn execute(&self, ctx: &mut Context, sink: LogSink) -> Result<(), CallFailure> {
        if !self.gate.enter() {
            return Err(CallFailure::Closed);
        }
        // SAFETY: the gate is entered, so `close` cannot take `lib` until `exit` below:
        // `close` runs only after `begin_close` and a drained gate, and `Drop` needs `&mut`.
        let result = unsafe { call_and_rehome(self.execute, ctx, sink) };
        self.gate.exit();
        result.map_err(CallFailure::from)
    }

    /// Calls `execute`, like [`execute`](Self::execute), on the fast path: instead of
    /// counting itself in the gate's shared counter, the call publishes this library in
    /// `pin` (its thread's slot) and checks the closing flag after that.
    #[inline]
    pub(crate) fn execute_pinned(
        &self,
        pin: &Pin<'_>,
        ctx: &mut Context,
        sink: LogSink,
    ) -> Result<(), CallFailure> {
        // Once closing is visible, refuse before publishing anything: a stream of refused
        // calls must never look like calls in flight to the unload waiting for them.
        if self.gate.is_closing_relaxed() {
            return Err(CallFailure::Closed);
        }
        pin.enter(self.id);
        if self.gate.is_closing_relaxed() {
            pin.leave();
            return Err(CallFailure::Closed);
        }
        // SAFETY: `pin` holds this library's id, published with a light fence before we saw
        // the closing flag clear. `begin_close` sets the flag and then issues the heavy
        // fence, and `close` runs only after `wait_drained` found no pin holding the id: so
        // either we saw the flag (and returned above), or the unloader sees our pin and
        // waits until the pin is cleared, after this call.
        let result = unsafe { call_and_rehome(self.execute, ctx, sink) };
        // Nothing of the plugin's is in use any more (the context was moved into host
        // memory): stop counting as in flight before the caller's metrics and hooks run.
        pin.leave();
        result.map_err(CallFailure::from)
    }

    /// Runs one of the plugin's optional entry points, if it exports it (`Ok` if not).
    pub(crate) fn run_hook(
        &self,
        hook: Hook,
        ctx: &mut Context,
        sink: LogSink,
    ) -> Result<(), CallError> {
        let entry = match hook {
            Hook::OnLoad => self.on_load,
            Hook::SaveState => self.save_state,
            Hook::RestoreState => self.restore_state,
            Hook::SelfTest => self.self_test,
        };
        match entry {
            Some(entry) if self.gate.enter() => {
                // SAFETY: the gate is entered, so the library stays open until `exit`, as in
                // `execute`.
                let r = unsafe { call_and_rehome(entry, ctx, sink) };
                self.gate.exit();
                r.map_err(|f| *f.0)
            }
            Some(_) => Err(CallError {
                kind: PluginErrorKind::Cancelled,
                message: "the library is being unloaded".into(),
            }),
            None => Ok(()),
        }
    }

    /// Whether the plugin exports `hook`.
    pub(crate) fn has_hook(&self, hook: Hook) -> bool {
        match hook {
            Hook::OnLoad => self.on_load.is_some(),
            Hook::SaveState => self.save_state.is_some(),
            Hook::RestoreState => self.restore_state.is_some(),
            Hook::SelfTest => self.self_test.is_some(),
        }
    }

    /// `Some(true)` if the plugin was built with `panic = "abort"`; `None` if it was built
    /// before plg-api recorded that.
    pub(crate) fn panic_aborts(&self) -> Option<bool> {
        self.panic_aborts
    }

    /// Installs `router` in the plugin, so its `Context::call` reaches the host. Does
    /// nothing for a plugin built before module revision 3, or once closing began.
    pub(crate) fn install_router(&self, router: CallRouter) {
        let Some(set_router) = self.set_router else {
            return;
        };
        if self.gate.enter() {
            // SAFETY: the gate is entered, so the library stays open until `exit`, as in
            // `execute`.
            unsafe { set_router.call(router) };
            self.gate.exit();
        }
    }

    /// Marks `on_load` as done, so `on_unload` runs when the library is closed.
    pub(crate) fn arm_hooks(&self) {
        self.hooks_armed.store(true, Ordering::Release);
    }

    /// Refuses new calls and raises the plugin's stop flag, so calls in flight see
    /// `Context::is_cancelled`.
    pub(crate) fn begin_close(&self) {
        self.gate.close();
        // Every call that pins this library from now on sees the flag; every earlier pin is
        // visible to `wait_drained`'s scans.
        threads::heavy_fence();
        let lib = self.lib.lock().unwrap_or_else(|e| e.into_inner());
        if lib.is_some() {
            // SAFETY: `lib` is locked and `Some`, so `close` (which takes it under the same
            // lock) cannot unmap the library during this call.
            unsafe { self.set_stop.call(true) };
        }
    }

    /// Waits up to `timeout` for calls in flight to return. `Err` carries how many still run.
    pub(crate) fn wait_drained(&self, timeout: Duration) -> Result<(), usize> {
        let start = Instant::now();
        let mut pause = Duration::from_micros(50);
        loop {
            let n = self.in_flight();
            if n == 0 {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(n);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    /// Runs `on_unload`, closes the library and checks whether it is still mapped. Call only
    /// after [`begin_close`](Self::begin_close) and a successful
    /// [`wait_drained`](Self::wait_drained). Returns `None` if it was already closed.
    pub(crate) fn close(&self, sink: LogSink) -> Option<Closing> {
        // Only the gate: a refused fast-path call may show its pin for a moment.
        debug_assert!(self.gate.is_closing() && self.gate.in_flight() == 0);
        let mut slot = self.lib.lock().unwrap_or_else(|e| e.into_inner());
        let lib = slot.take()?;
        let armed = self.hooks_armed.load(Ordering::Acquire);
        let on_unload = self.on_unload.filter(|_| armed).and_then(|hook| {
            let mut ctx = Context::new().with_label("unload");
            // SAFETY: `lib` was taken out of the slot but not yet closed (that happens below),
            // and the slot's lock is held, so the library is open for the whole call.
            unsafe { call_and_rehome(hook, &mut ctx, sink) }
                .err()
                .map(|f| *f.0)
        });
        let close_error = lib.close().err().map(|e| e.to_string());
        release_image(&self.image);
        // Nothing mapped where the image was: it is gone. Anything there (the image, or
        // whatever took the addresses since): the maps say whether it is this library.
        let still_mapped = match self.span {
            Some(span) if span_is_free(span) => Some(false),
            _ => is_mapped(&self.path),
        };
        Some(Closing {
            on_unload,
            close_error,
            still_mapped,
        })
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        // No `&self` exists any more, so no call is in flight.
        self.begin_close();
        let _ = self.close(LogSink::stderr());
    }
}

//! The one home of `unsafe` in plg-loader: opening a library, reading and checking its
//! declaration, calling into it, and closing it.
//!
//! [`Library`] is safe to use: it refuses calls once closing has begun ([`Gate`]), waits for
//! calls in flight before closing, and moves every buffer the plugin allocated into host
//! storage before a call returns, so no host data points into a closed library.

use std::{
    fs::File,
    io::Read,
    path::{Path, PathBuf},
    ptr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use abi_stable::{
    abi_stability::abi_checking::{check_layout_compatibility_with_globals, CheckingGlobals},
    std_types::RResult,
    type_layout::TypeLayout,
    StableAbi,
};
use plg_api::host::HostContext;
use plg_api::{
    CallRouter, Context, LogSink, PluginDeclaration, PluginError, PluginErrorKind, PluginModuleRef,
    ABI_VERSION, DECLARATION_SYMBOL, MAGIC,
};

use super::threads::{self, Pin};
use crate::error::LoadError;

mod pin_cell;
pub(crate) use pin_cell::PinCell;

/// An entry point copied out of a plugin's checked module. The pointer is typed as a safe
/// `extern "C" fn`, but it points into the plugin's library and is valid only while that
/// library is open; so the only way to call it is the `unsafe` [`PluginFn::call`], whose
/// caller must show the library is open.
#[derive(Clone, Copy)]
struct PluginFn<F>(F);

type EntryFn = PluginFn<extern "C" fn(&mut Context) -> RResult<(), PluginError>>;
type StopFn = PluginFn<extern "C" fn(bool)>;
type RouterFn = PluginFn<extern "C" fn(CallRouter)>;

impl EntryFn {
    /// Calls the entry point. `export_plugin!` catches every panic inside it.
    ///
    /// # Safety
    /// The library this entry point was read from must stay open for the whole call.
    unsafe fn call(self, ctx: &mut Context) -> RResult<(), PluginError> {
        (self.0)(ctx)
    }
}

impl RouterFn {
    /// Installs the host's call router in the plugin's copy of plg-api.
    ///
    /// # Safety
    /// The library this entry point was read from must stay open for the whole call.
    unsafe fn call(self, router: CallRouter) {
        (self.0)(router)
    }
}

impl StopFn {
    /// Raises or lowers the plugin's stop flag.
    ///
    /// # Safety
    /// The library this entry point was read from must stay open for the whole call.
    unsafe fn call(self, stop: bool) {
        (self.0)(stop)
    }
}

/// An error returned by a call into the plugin, copied into host memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallError {
    pub(crate) kind: PluginErrorKind,
    pub(crate) message: String,
}

/// A failed call, boxed so that a call's result fits in registers: the success path then
/// moves no large value between the layers of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failed(pub(crate) Box<CallError>);

impl Failed {
    #[cold]
    fn new(e: &PluginError) -> Self {
        Failed(Box::new(CallError {
            kind: e.kind(),
            message: e.message().to_owned(),
        }))
    }
}

/// Why a call into `execute` returned no success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallFailure {
    /// The call was refused: the library is closing or closed.
    Closed,
    /// The plugin returned an error (or panicked, caught by its shim).
    Failed(Box<CallError>),
}

impl From<Failed> for CallFailure {
    fn from(f: Failed) -> Self {
        CallFailure::Failed(f.0)
    }
}

/// Counts calls in flight and refuses new ones once closing has begun.
///
/// One atomic word: the top bit says "closing", the rest count calls in flight. Entering is
/// a compare-and-swap that adds one only while the closing bit is clear, so a refused call
/// never counts itself in flight, even for a moment, and cannot delay an unload. Once the
/// closing bit is set and the count reaches zero, no call is running or can start.
struct Gate(AtomicUsize);

const CLOSING: usize = 1 << (usize::BITS - 1);

impl Gate {
    fn enter(&self) -> bool {
        self.0
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| {
                (n & CLOSING == 0).then_some(n + 1)
            })
            .is_ok()
    }

    fn exit(&self) {
        self.0.fetch_sub(1, Ordering::Release);
    }

    fn close(&self) {
        self.0.fetch_or(CLOSING, Ordering::AcqRel);
    }

    fn in_flight(&self) -> usize {
        self.0.load(Ordering::Acquire) & !CLOSING
    }

    fn is_closing(&self) -> bool {
        self.0.load(Ordering::Acquire) & CLOSING != 0
    }

    /// [`is_closing`](Self::is_closing) for the pinned fast path, which orders it with a
    /// fence of its own.
    #[inline]
    fn is_closing_relaxed(&self) -> bool {
        self.0.load(Ordering::Relaxed) & CLOSING != 0
    }
}

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
    pub(crate) fn open(path: &Path) -> Result<Self, LoadError> {
        let path = path.canonicalize().map_err(|_| LoadError::NotFound {
            path: path.to_owned(),
            manifest: PathBuf::new(),
        })?;
        if let Some(reason) = not_a_shared_object(&path) {
            return Err(LoadError::NotSharedObject { path, reason });
        }
        threads::init_fences();
        let image = ImageKey::of(&path);
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
        Some(Closing {
            on_unload,
            close_error,
            still_mapped: is_mapped(&self.path),
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

/// Calls `f` and copies everything the plugin may have allocated into host memory, while the
/// library is known to be open.
///
/// # Safety
/// `f`'s library must stay open for the whole call (see [`PluginFn::call`]).
unsafe fn call_and_rehome(f: EntryFn, ctx: &mut Context, sink: LogSink) -> Result<(), Failed> {
    let key = next_call_key();
    ctx.set_log_sink(sink);
    ctx.begin_call(key);
    // SAFETY: this function's own contract: the library is open for the whole call.
    let result = unsafe { f.call(ctx) };
    // Every method that can leave plugin memory in the context drops the key; only a context
    // that still holds it is provably untouched and skips rehoming.
    ctx.end_call(key);
    ctx.set_log_sink(sink);
    match result {
        RResult::ROk(()) => Ok(()),
        RResult::RErr(e) => Err(Failed::new(&e)),
    }
}

/// A non-zero key no plugin can predict: each thread walks a Weyl sequence (adding an odd
/// constant) from a random start, so keys never repeat within 2^64 calls on a thread.
fn next_call_key() -> u64 {
    use std::{
        cell::Cell,
        hash::{BuildHasher, RandomState},
    };
    const STEP: u64 = 0x9e37_79b9_7f4a_7c15;
    thread_local! {
        static NEXT: Cell<u64> = const { Cell::new(0) };
    }
    NEXT.with(|next| {
        let mut key = next.get();
        if key == 0 {
            key = RandomState::new().hash_one(next as *const Cell<u64> as usize);
        }
        next.set(key.wrapping_add(STEP));
        key | 1
    })
}

/// The images this process has open through [`Library`]. glibc returns the same image for
/// the same path string or the same file (device and inode), and an image has one set of
/// statics (the plugin's state and stop flag), so plg opens each image at most once.
static OPEN_IMAGES: Mutex<Vec<ImageKey>> = Mutex::new(Vec::new());

#[derive(Debug, Clone, PartialEq, Eq)]
struct ImageKey {
    path: PathBuf,
    file: Option<(u64, u64)>,
}

impl ImageKey {
    fn of(path: &Path) -> Self {
        #[cfg(unix)]
        let file = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
        };
        #[cfg(not(unix))]
        let file = None;
        ImageKey {
            path: path.to_owned(),
            file,
        }
    }

    fn same_image(&self, other: &ImageKey) -> bool {
        self.path == other.path || (self.file.is_some() && self.file == other.file)
    }
}

fn release_image(key: &ImageKey) {
    let mut open = OPEN_IMAGES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = open.iter().position(|k| k == key) {
        open.swap_remove(i);
    }
}

/// Checks a plugin's module layout against this host's. abi_stable's checker lets the
/// *implementation* have more prefix-type fields than the *interface*, so a plugin built
/// against a later plg-api (which appended fields) passes as it is. A plugin built against an
/// earlier plg-api has fewer fields; for it, the roles are swapped, which checks that its
/// fields are exactly this host's first ones. Either way every type the two share is checked
/// field by field; the fields a plugin lacks are read as `None` by its own prefix metadata.
/// `Err` carries abi_stable's report of the first check.
fn check_module_layout(plugin: &'static TypeLayout) -> Result<(), String> {
    let host = <PluginModuleRef as StableAbi>::LAYOUT;
    // A fresh CheckingGlobals per check: abi_stable's process-wide one would keep pointers
    // into this library's layouts after it is unloaded.
    let newer_or_same =
        check_layout_compatibility_with_globals(host, plugin, &CheckingGlobals::new());
    let Err(errors) = newer_or_same else {
        return Ok(());
    };
    match check_layout_compatibility_with_globals(plugin, host, &CheckingGlobals::new()) {
        Ok(()) => Ok(()),
        Err(_) => Err(errors.to_string()),
    }
}

/// Condenses abi_stable's report (blocks of `Error:<what>` / `Expected:` / `Found:`) into
/// one line: `incompatible type size (expected 128, found 120); …`.
fn summarize_layout_errors(report: &str) -> String {
    let lines: Vec<&str> = report.lines().map(str::trim).collect();
    let mut items: Vec<String> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(what) = line.strip_prefix("Error:") {
            let after = |label: &str| {
                lines[i..]
                    .iter()
                    .position(|l| *l == label)
                    .and_then(|j| lines.get(i + j + 1))
                    .copied()
                    .unwrap_or("?")
            };
            let item = format!(
                "{} (expected {}, found {})",
                what.trim(),
                after("Expected:"),
                after("Found:")
            );
            if !items.contains(&item) {
                items.push(item);
            }
        }
    }
    if items.is_empty() {
        "see the full report".to_owned()
    } else {
        items.join("; ")
    }
}

#[cfg(unix)]
fn open_library(path: &Path) -> Result<libloading::Library, libloading::Error> {
    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
    // SAFETY: loading a library runs its initializers. That is the point of a plugin system:
    // the user chose to load this file. RTLD_NOW resolves every symbol now, so a missing
    // dependency fails here rather than at the first call.
    unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map(Into::into)
}

#[cfg(not(unix))]
fn open_library(path: &Path) -> Result<libloading::Library, libloading::Error> {
    // SAFETY: as above, loading runs the library's initializers, which the user asked for.
    unsafe { libloading::Library::new(path) }
}

/// Says why `path` is not a shared object, judging by its first bytes; `None` if it looks
/// like one (ELF, Mach-O or PE).
fn not_a_shared_object(path: &Path) -> Option<String> {
    let mut head = [0u8; 4];
    let n = match File::open(path).and_then(|mut f| f.read(&mut head)) {
        Ok(n) => n,
        Err(e) => return Some(format!("cannot read it: {e}")),
    };
    let head = &head[..n];
    const MAGICS: &[&[u8]] = &[
        b"\x7fELF",
        &[0xfe, 0xed, 0xfa, 0xce],
        &[0xfe, 0xed, 0xfa, 0xcf],
        &[0xce, 0xfa, 0xed, 0xfe],
        &[0xcf, 0xfa, 0xed, 0xfe],
        &[0xca, 0xfe, 0xba, 0xbe],
        b"MZ",
    ];
    if MAGICS.iter().any(|m| head.starts_with(m)) {
        None
    } else if n == 0 {
        Some("the file is empty".into())
    } else if head
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        Some("it is a text file".into())
    } else {
        Some(format!(
            "it starts with bytes {head:02x?}, not an ELF, Mach-O or PE header"
        ))
    }
}

/// Registers this process for `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, the heavy
/// fence of [`threads`]. `false` where the kernel does not offer it.
#[cfg(target_os = "linux")]
pub(crate) fn membarrier_register() -> bool {
    const QUERY: libc::c_int = 0;
    const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;
    // SAFETY: membarrier(2) with QUERY and REGISTER_PRIVATE_EXPEDITED reads and writes no
    // memory of ours; it returns a bit mask, or -1 with errno set.
    let supported = unsafe { libc::syscall(libc::SYS_membarrier, QUERY, 0 as libc::c_int) };
    if supported < 0 || supported & PRIVATE_EXPEDITED == 0 {
        return false;
    }
    // SAFETY: as above.
    let registered = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            REGISTER_PRIVATE_EXPEDITED,
            0 as libc::c_int,
        )
    };
    registered == 0
}

/// Not available here: the fences of [`threads`] are full fences on both sides.
#[cfg(not(target_os = "linux"))]
pub(crate) fn membarrier_register() -> bool {
    false
}

/// Makes every running thread of this process execute a full memory barrier. Call only
/// after [`membarrier_register`] returned `true`. `false` if the kernel refused.
#[cfg(target_os = "linux")]
pub(crate) fn membarrier_expedited() -> bool {
    const PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    // SAFETY: membarrier(2) with PRIVATE_EXPEDITED, after this process registered for it,
    // only interrupts this process's threads with a barrier; it touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED, 0 as libc::c_int) == 0 }
}

/// Not available here.
#[cfg(not(target_os = "linux"))]
pub(crate) fn membarrier_expedited() -> bool {
    false
}

/// Whether a library at `path` is still mapped into this process.
#[cfg(target_os = "linux")]
pub(crate) fn is_mapped(path: &Path) -> Option<bool> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let needle = path.to_str()?;
    Some(maps.lines().any(|line| {
        line.split_once('/')
            .map(|(_, rest)| {
                let p = format!("/{rest}");
                p == needle || p.strip_suffix(" (deleted)") == Some(needle)
            })
            .unwrap_or(false)
    }))
}

/// Whether a library at `path` is still loaded, asked with `dlopen(RTLD_NOLOAD)`.
#[cfg(all(unix, not(target_os = "linux")))]
pub(crate) fn is_mapped(path: &Path) -> Option<bool> {
    use libloading::os::unix::{Library, RTLD_LAZY};
    // SAFETY: RTLD_NOLOAD never loads anything, so no initializer runs; it only returns a
    // handle (with one more reference) if the library is already loaded, which we drop at once.
    match unsafe { Library::open(Some(path), RTLD_LAZY | libc::RTLD_NOLOAD) } {
        Ok(lib) => {
            let _ = lib.close();
            Some(true)
        }
        Err(_) => Some(false),
    }
}

/// Not checked on this platform.
#[cfg(not(unix))]
pub(crate) fn is_mapped(_path: &Path) -> Option<bool> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_refuses_entry_once_closing_and_counts_in_flight() {
        let gate = Gate(AtomicUsize::new(0));
        assert!(gate.enter());
        assert!(gate.enter());
        gate.close();
        assert!(!gate.enter());
        assert_eq!(gate.in_flight(), 2);
        gate.exit();
        gate.exit();
        assert_eq!(gate.in_flight(), 0);
        assert!(gate.is_closing());
    }

    #[test]
    fn layout_reports_are_summarized_on_one_line() {
        let report = "noise\nError:incompatible type size\nExpected:\n    128\nFound:\n    120\n\
                      more\nError:mismatched type\nExpected:\n    A\nFound:\n    B\n";
        assert_eq!(
            summarize_layout_errors(report),
            "incompatible type size (expected 128, found 120); mismatched type (expected A, found B)"
        );
    }

    #[test]
    fn text_and_empty_files_are_not_shared_objects() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("a.so");
        std::fs::write(&text, "hello").unwrap();
        assert_eq!(
            not_a_shared_object(&text).as_deref(),
            Some("it is a text file")
        );
        let empty = dir.path().join("b.so");
        std::fs::write(&empty, "").unwrap();
        assert_eq!(
            not_a_shared_object(&empty).as_deref(),
            Some("the file is empty")
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn libc_is_mapped_and_a_random_path_is_not() {
        assert_eq!(is_mapped(Path::new("/nonexistent/libx.so")), Some(false));
    }
}

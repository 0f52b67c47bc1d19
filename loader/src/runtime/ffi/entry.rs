//! Entry points copied out of a plugin's checked module, and the one function that calls
//! into them: [`call_and_rehome`], which moves what the plugin left in the context into host
//! memory before it returns.

use abi_stable::std_types::RResult;
use plg_api::{host::HostContext, CallRouter, Context, LogSink, PluginError, PluginErrorKind};

use super::host_buffers::HostBuffers;

/// An entry point copied out of a plugin's checked module. The pointer is typed as a safe
/// `extern "C" fn`, but it points into the plugin's library and is valid only while that
/// library is open; so the only way to call it is the `unsafe` [`PluginFn::call`], whose
/// caller must show the library is open.
#[derive(Clone, Copy)]
pub(super) struct PluginFn<F>(pub(super) F);

pub(super) type EntryFn = PluginFn<extern "C" fn(&mut Context) -> RResult<(), PluginError>>;
pub(super) type StopFn = PluginFn<extern "C" fn(bool)>;
pub(super) type RouterFn = PluginFn<extern "C" fn(CallRouter)>;

impl EntryFn {
    /// Calls the entry point. `export_plugin!` catches every panic inside it.
    ///
    /// # Safety
    /// The library this entry point was read from must stay open for the whole call.
    pub(super) unsafe fn call(self, ctx: &mut Context) -> RResult<(), PluginError> {
        (self.0)(ctx)
    }
}

impl RouterFn {
    /// Installs the host's call router in the plugin's copy of plg-api.
    ///
    /// # Safety
    /// The library this entry point was read from must stay open for the whole call.
    pub(super) unsafe fn call(self, router: CallRouter) {
        (self.0)(router)
    }
}

impl StopFn {
    /// Raises or lowers the plugin's stop flag.
    ///
    /// # Safety
    /// The library this entry point was read from must stay open for the whole call.
    pub(super) unsafe fn call(self, stop: bool) {
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

/// Calls `f` and copies everything the plugin may have allocated into host memory, while the
/// library is known to be open.
///
/// # Safety
/// `f`'s library must stay open for the whole call (see [`PluginFn::call`]).
pub(super) unsafe fn call_and_rehome(
    f: EntryFn,
    ctx: &mut Context,
    sink: LogSink,
) -> Result<(), Failed> {
    let key = next_call_key();
    ctx.set_log_sink(sink);
    ctx.begin_call(key);
    // SAFETY: this function's own contract: the library is open for the whole call.
    let result = unsafe { f.call(ctx) };
    // Every method that can leave plugin memory in the context drops the key; only a context
    // that still holds it is provably untouched and skips rehoming. Otherwise the buffers
    // that are still the host's are skipped at a glance and the rest copied.
    ctx.end_call_with(key, HostBuffers::get());
    ctx.set_log_sink(sink);
    match result {
        RResult::ROk(()) => Ok(()),
        RResult::RErr(e) => Err(Failed::new(&e)),
    }
}

/// Makes a context a plugin built the host's before any host code sees it: its buffers moved
/// into host memory, the host's log `sink`, no log tag. For the sub-context of a call between
/// plugins, which the dependency's `before` hooks get before the call starts: one the plugin
/// made with `Context::new`, `clone` or a swap carries the plugin's log sink, its log tag or
/// its buffers, and a hook that kept a copy would reach into the plugin's image after an
/// unload.
pub(crate) fn adopt(ctx: &mut Context, sink: LogSink) {
    ctx.end_call_with(0, HostBuffers::get());
    ctx.set_log_sink(sink);
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

//! For plg hosts (plg-loader); plugins never need it.
//!
//! A host brackets every call into a plugin with bookkeeping on the [`Context`] it passes:
//! it installs its log sink, marks the call with a key, and afterwards moves whatever the
//! plugin may have written into host memory (see "Memory across the boundary" in the
//! [crate docs](crate#memory-across-the-boundary)). Those operations live here, on the
//! [`HostContext`] extension trait, rather than on [`Context`] itself, so that the API a
//! plugin author sees is only what a plugin uses: reading and writing values, the label,
//! the deadline and cancellation, and logging.
//!
//! Keeping them out of view is about clarity, not protection: a plugin that imports the
//! trait and calls these methods gains nothing, because the host does not trust the context
//! a plugin hands back: rehoming drops the call key, a key set by the plugin never matches
//! the host's, and the host reinstalls its log sink after every call. The trait is sealed:
//! only [`Context`] implements it, so methods can be added to it without breaking anyone.
//!
//! ```
//! use plg_api::{host::HostContext, Context, LogSink};
//!
//! let mut ctx = Context::new();
//! ctx.set_log_sink(LogSink::stderr());
//! ctx.begin_call(0x5eed); // a key the plugin cannot predict, different for every call
//! // ... call the plugin's `execute` with `&mut ctx` ...
//! ctx.end_call(0x5eed); // nothing in `ctx` points into the plugin any more
//! ```

use crate::{Context, LogSink};

pub use crate::owner::{BufferOwner, NoBuffers};

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::Context {}
}

/// The host-side operations on a [`Context`]: call bracketing, rehoming and the log sink.
///
/// For plg hosts (plg-loader); plugins never need it. Sealed: implemented only for
/// [`Context`]. See the [module docs](self) for why it is separate.
pub trait HostContext: sealed::Sealed {
    /// Starts a call: records `key` (non-zero, unpredictable, different for every call) and
    /// clears the log tag. A host calls this right before passing the context to a plugin.
    fn begin_call(&mut self, key: u64);

    /// Ends a call started with `key`: resets the log tag and, unless the context is provably
    /// untouched (the key is still there), [`rehome`](Self::rehome)s it. After this, nothing
    /// in the context points into the plugin.
    fn end_call(&mut self, key: u64);

    /// [`end_call`](Self::end_call), skipping the buffers `owner` claims as the host's
    /// own: the same result, with less work when the plugin wrote little. See
    /// [`BufferOwner`] for what a claim promises.
    fn end_call_with<O: BufferOwner>(&mut self, key: u64, owner: &O);

    /// Moves every buffer another library may have allocated (values, label, cancel token)
    /// into the calling library's memory, value by value and buffer by buffer. Drops the
    /// call key.
    fn rehome(&mut self);

    /// The function log lines are sent to.
    fn log_sink(&self) -> LogSink;

    /// Installs the function log lines are sent to.
    fn set_log_sink(&mut self, sink: LogSink);
}

impl HostContext for Context {
    #[inline]
    fn begin_call(&mut self, key: u64) {
        Context::begin_call(self, key);
    }

    #[inline]
    fn end_call(&mut self, key: u64) {
        Context::end_call(self, key, &NoBuffers);
    }

    #[inline]
    fn end_call_with<O: BufferOwner>(&mut self, key: u64, owner: &O) {
        Context::end_call(self, key, owner);
    }

    fn rehome(&mut self) {
        Context::rehome(self, &NoBuffers);
    }

    fn log_sink(&self) -> LogSink {
        Context::log_sink(self)
    }

    #[inline]
    fn set_log_sink(&mut self, sink: LogSink) {
        Context::set_log_sink(self, sink);
    }
}

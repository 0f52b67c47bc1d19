//! [`Context`]: the value map, label, deadline, cancellation and logging a call carries.

use std::{
    fmt,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use abi_stable::{
    std_types::{RArc, ROption, RStr, RString},
    StableAbi,
};

use crate::{owner::BufferOwner, FromValue, Value, ValueError, ValueKind, ValueMap};

/// The flag a [`CancelToken`] shares. `Clone` copies the state into a new, unshared flag; it
/// is what lets a host move a token a plugin allocated into its own memory.
#[repr(transparent)]
#[derive(StableAbi, Default)]
#[doc(hidden)]
pub struct CancelFlag(AtomicBool);

impl Clone for CancelFlag {
    fn clone(&self) -> Self {
        CancelFlag(AtomicBool::new(self.0.load(Ordering::Acquire)))
    }
}

/// A shared cancellation flag. Clone it, hand the clone to another thread, and call
/// [`cancel`](Self::cancel) there; every [`Context`] holding the token sees it.
#[repr(transparent)]
#[derive(StableAbi, Clone, Default)]
pub struct CancelToken(RArc<CancelFlag>);

impl CancelToken {
    /// A fresh token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests cancellation.
    pub fn cancel(&self) {
        self.0 .0.store(true, Ordering::Release);
    }

    /// `true` once [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0 .0.load(Ordering::Acquire)
    }

    /// `true` if both tokens share one flag.
    pub fn same_as(&self, other: &CancelToken) -> bool {
        std::ptr::eq(&*self.0, &*other.0)
    }

    /// Moves the flag into memory owned by the calling library: a flag this library
    /// allocated stays the same flag (clones elsewhere stay connected); one another library
    /// allocated is copied, state and all.
    fn rehome<O: BufferOwner>(&mut self, owner: &O) {
        if owner.owns_arc(&self.0) {
            return;
        }
        // Through a clone rather than a placeholder: no allocation when the flag is already
        // ours (the common case: the host's own token), only a count up and down.
        let ours = RArc::into_arc(self.0.clone());
        self.0 = RArc::from(ours);
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CancelToken")
            .field(&self.is_cancelled())
            .finish()
    }
}

/// The level of a log line a plugin sends to its host.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something looks wrong.
    Warn,
    /// Normal progress.
    Info,
    /// Detail for debugging.
    Debug,
    /// Very fine detail.
    Trace,
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogLevel::Error => "ERROR",
            LogLevel::Warn => "WARN",
            LogLevel::Info => "INFO",
            LogLevel::Debug => "DEBUG",
            LogLevel::Trace => "TRACE",
        })
    }
}

/// The signature of a host's log function: `(plugin name, level, message)`.
///
/// It is called on the plugin's thread while the call is in progress. It must not unwind.
pub type LogFn = extern "C" fn(origin: RStr<'_>, level: LogLevel, message: RStr<'_>);

/// Where a [`Context`]'s log lines go. A host installs its own with
/// [`HostContext::set_log_sink`](crate::host::HostContext::set_log_sink);
/// plg-loader installs one that forwards to `tracing`. The default writes to stderr.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy)]
pub struct LogSink(extern "C" fn(RStr<'_>, LogLevel, RStr<'_>));

impl LogSink {
    /// A sink that calls `f`.
    pub const fn new(f: LogFn) -> Self {
        Self(f)
    }

    /// The sink that writes `[LEVEL origin] message` to stderr.
    pub const fn stderr() -> Self {
        Self(stderr_log)
    }
}

impl Default for LogSink {
    fn default() -> Self {
        Self::stderr()
    }
}

impl fmt::Debug for LogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogSink")
    }
}

extern "C" fn stderr_log(origin: RStr<'_>, level: LogLevel, message: RStr<'_>) {
    use std::io::Write;
    // Ignore write errors: logging must never fail or unwind across the boundary.
    let _ = writeln!(std::io::stderr(), "[{level} {origin}] {message}");
}

/// Why [`Context::get`] and friends could not return a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextError {
    /// The key is not in the context.
    Missing {
        /// The key asked for.
        key: String,
    },
    /// The key holds a value of another kind.
    WrongKind {
        /// The key asked for.
        key: String,
        /// The kind the caller asked for.
        expected: ValueKind,
        /// The kind stored.
        found: ValueKind,
    },
    /// The key holds a number that does not fit the requested type.
    OutOfRange {
        /// The key asked for.
        key: String,
        /// Why it does not fit.
        reason: String,
    },
    /// A serde conversion ([`Context::put`], [`Context::get_as`]) failed.
    Convert {
        /// The key.
        key: String,
        /// Why: a missing field, an unknown variant, a number too large.
        reason: String,
    },
}

impl ContextError {
    fn from_value_error(key: &str, e: ValueError) -> Self {
        match e {
            ValueError::WrongKind { expected, found } => ContextError::WrongKind {
                key: key.to_owned(),
                expected,
                found,
            },
            e @ ValueError::OutOfRange { .. } => ContextError::OutOfRange {
                key: key.to_owned(),
                reason: e.to_string(),
            },
            ValueError::Serde(reason) => ContextError::Convert {
                key: key.to_owned(),
                reason,
            },
        }
    }
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContextError::Missing { key } => write!(f, "context key `{key}` is missing"),
            ContextError::WrongKind {
                key,
                expected,
                found,
            } => write!(
                f,
                "context key `{key}` holds {}, but {} was expected",
                found.with_article(),
                expected.with_article()
            ),
            ContextError::OutOfRange { key, reason } | ContextError::Convert { key, reason } => {
                write!(f, "context key `{key}`: {reason}")
            }
        }
    }
}

impl std::error::Error for ContextError {}

/// What a host passes to a plugin's `execute`, and gets back.
///
/// - a string-keyed [`ValueMap`] that host and plugin both read and write;
/// - a `label` naming the operation the host is asking for;
/// - an optional deadline and a [`CancelToken`], which long-running plugins poll through
///   [`is_cancelled`](Self::is_cancelled) (it also turns true when the host unloads the plugin);
/// - logging back to the host.
///
/// ```
/// use plg_api::{Context, ContextError};
///
/// let mut ctx = Context::new().with_label("greet");
/// ctx.set("name", "Ada");
/// ctx.set("n", 3);
/// assert_eq!(ctx.get_str("name"), Ok("Ada"));
/// assert_eq!(ctx.get::<i64>("n"), Ok(3));
/// assert!(matches!(ctx.get::<i64>("name"), Err(ContextError::WrongKind { .. })));
/// assert!(matches!(ctx.get_str("nope"), Err(ContextError::Missing { .. })));
/// assert_eq!(ctx.label(), "greet");
/// ```
#[repr(C)]
#[derive(StableAbi)]
pub struct Context {
    values: ValueMap,
    label: RString,
    deadline_unix_nanos: ROption<u64>,
    cancel: CancelToken,
    log: LogSink,
    /// Set by the plugin-side shim to the plugin's name for the duration of a call, so log
    /// lines are tagged; reset by the host afterwards.
    origin: RStr<'static>,
    /// The key of the call in progress, set by the host in [`Context::begin_call`]. Every
    /// method that can put memory of the calling library into the context resets it to 0, and
    /// so do `new`, `clone` and `rehome`; the host moves the context's buffers into its own
    /// memory unless the key it set is still there. There is no getter, so a plugin cannot
    /// restore it.
    call_key: u64,
}

impl Default for Context {
    fn default() -> Self {
        Self {
            values: ValueMap::default(),
            label: RString::default(),
            deadline_unix_nanos: ROption::RNone,
            cancel: CancelToken::default(),
            log: LogSink::default(),
            origin: RStr::from_str(""),
            call_key: 0,
        }
    }
}

impl Clone for Context {
    /// Clones the values and label; the clone shares the cancel token.
    fn clone(&self) -> Self {
        Self {
            values: self.values.clone(),
            label: self.label.clone(),
            deadline_unix_nanos: self.deadline_unix_nanos,
            cancel: self.cancel.clone(),
            log: self.log,
            origin: self.origin,
            call_key: 0,
        }
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("label", &self.label.as_str())
            .field("values", &self.values)
            .field("deadline", &self.deadline())
            .field("cancelled", &self.cancel.is_cancelled())
            .finish()
    }
}

impl Context {
    /// An empty context with no label, no deadline and a fresh cancel token.
    pub fn new() -> Self {
        Self::default()
    }

    /// A context holding `values`.
    pub fn from_values(values: ValueMap) -> Self {
        Self {
            values,
            ..Self::default()
        }
    }

    /// Builder form of [`set_label`](Self::set_label).
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.set_label(label);
        self
    }

    /// The operation the host asks for; empty when the host did not say.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Sets the operation label.
    pub fn set_label(&mut self, label: impl Into<String>) {
        self.call_key = 0;
        self.label = RString::from(label.into());
    }

    // --- values -------------------------------------------------------------------------------

    /// The value under `key`.
    pub fn get_value(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    /// The value under `key`, mutably.
    pub fn get_value_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.call_key = 0;
        self.values.get_mut(key)
    }

    /// The value under `key` converted to `T`. A missing key and a key of the wrong kind are
    /// different errors.
    pub fn get<T: FromValue>(&self, key: &str) -> Result<T, ContextError> {
        let v = self.values.get(key).ok_or_else(|| ContextError::Missing {
            key: key.to_owned(),
        })?;
        T::from_value(v).map_err(|e| ContextError::from_value_error(key, e))
    }

    /// The string under `key`, borrowed.
    #[inline]
    pub fn get_str(&self, key: &str) -> Result<&str, ContextError> {
        match self.values.get(key) {
            None => Err(ContextError::Missing {
                key: key.to_owned(),
            }),
            Some(Value::Str(s)) => Ok(s.as_str()),
            Some(other) => Err(ContextError::WrongKind {
                key: key.to_owned(),
                expected: ValueKind::Str,
                found: other.kind(),
            }),
        }
    }

    /// The value under `key` converted to any serde type `T` ([`from_value`](crate::from_value)).
    ///
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    /// struct Stats { words: usize, top: Vec<String> }
    ///
    /// let mut ctx = plg_api::Context::new();
    /// ctx.put("stats", &Stats { words: 2, top: vec!["a".into()] })?;
    /// assert_eq!(ctx.get_as::<Stats>("stats")?, Stats { words: 2, top: vec!["a".into()] });
    /// # Ok::<(), plg_api::ContextError>(())
    /// ```
    pub fn get_as<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T, ContextError> {
        let v = self.values.get(key).ok_or_else(|| ContextError::Missing {
            key: key.to_owned(),
        })?;
        crate::from_value(v.clone()).map_err(|e| ContextError::from_value_error(key, e))
    }

    /// Sets `key` to any serde-serializable value ([`to_value`](crate::to_value)): a
    /// `usize`, a `Vec<String>`, a `BTreeMap<String, i64>`, your own struct. Returns the
    /// value it replaced. A number too large for an `i64`, or a map key that is not a string
    /// or an integer, is an error and leaves the context as it was.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    ///
    /// let mut ctx = plg_api::Context::new();
    /// let words = vec!["a".to_string(), "b".to_string()];
    /// ctx.put("count", &words.len())?;
    /// ctx.put("words", &words)?;
    /// ctx.put("lengths", &BTreeMap::from([("a".to_string(), 1_i64)]))?;
    /// assert_eq!(ctx.get::<usize>("count")?, 2);
    /// assert!(ctx.put("big", &u64::MAX).is_err());
    /// # Ok::<(), plg_api::ContextError>(())
    /// ```
    pub fn put<T: serde::Serialize + ?Sized>(
        &mut self,
        key: impl AsRef<str> + Into<String>,
        value: &T,
    ) -> Result<Option<Value>, ContextError> {
        // Like `set`, the key is copied only when it is new.
        let value =
            crate::to_value(value).map_err(|e| ContextError::from_value_error(key.as_ref(), e))?;
        Ok(self.set(key, value))
    }

    /// Sets `key` to `value`, returning the value it replaced.
    pub fn set(
        &mut self,
        key: impl AsRef<str> + Into<String>,
        value: impl Into<Value>,
    ) -> Option<Value> {
        self.call_key = 0;
        self.values.insert(key, value)
    }

    /// Takes the string under `key` out for reuse: it comes back emptied, with its buffer, and
    /// an empty string stays under `key` until it is [`set`](Self::set) again. A plugin that
    /// writes a string output on every call can write into the buffer the previous call left
    /// (already the host's) instead of allocating a new one, and the host then has nothing to
    /// copy: no allocation at all once the buffer is large enough. Without a string under
    /// `key`, a new empty one.
    ///
    /// Take it after the checks that can fail: a call that takes the string and then returns
    /// an error leaves the empty string under `key` (in a worker, where values travel back
    /// only on success, the caller keeps the old one).
    ///
    /// ```
    /// # use plg_api::{Context, ContextError};
    /// # fn main() -> Result<(), ContextError> {
    /// let mut ctx = Context::new();
    /// ctx.set("name", "Ada");
    /// for _ in 0..2 {
    ///     let mut greeting = ctx.take_string("greeting");
    ///     greeting.push_str("hello ");
    ///     greeting.push_str(ctx.get_str("name")?);
    ///     ctx.set("greeting", greeting);
    /// }
    /// assert_eq!(ctx.get_str("greeting")?, "hello Ada");
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn take_string(&mut self, key: &str) -> RString {
        self.call_key = 0;
        match self.values.get_mut(key) {
            Some(Value::Str(s)) => {
                let mut taken = std::mem::take(s);
                taken.clear();
                taken
            }
            _ => RString::new(),
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.call_key = 0;
        self.values.remove(key)
    }

    /// `true` if `key` is present.
    pub fn contains(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// `true` if there are no values.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The keys, in insertion order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.values.keys()
    }

    /// The entries, in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> + '_ {
        self.values.iter()
    }

    /// The whole value map.
    pub fn values(&self) -> &ValueMap {
        &self.values
    }

    /// The whole value map, mutably.
    pub fn values_mut(&mut self) -> &mut ValueMap {
        self.call_key = 0;
        &mut self.values
    }

    /// Takes the value map out, leaving this context empty of values.
    pub fn take_values(&mut self) -> ValueMap {
        self.call_key = 0;
        std::mem::take(&mut self.values)
    }

    // --- deadline and cancellation -------------------------------------------------------------

    /// The deadline, if any.
    pub fn deadline(&self) -> Option<SystemTime> {
        self.deadline_unix_nanos
            .into_option()
            .map(|n| UNIX_EPOCH + Duration::from_nanos(n))
    }

    /// Sets or clears the deadline.
    pub fn set_deadline(&mut self, deadline: Option<SystemTime>) {
        self.deadline_unix_nanos = deadline
            .map(|t| {
                let nanos = t
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or(Duration::ZERO)
                    .as_nanos();
                u64::try_from(nanos).unwrap_or(u64::MAX)
            })
            .into();
    }

    /// Sets the deadline to `timeout` from now.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.set_deadline(Some(SystemTime::now() + timeout));
    }

    /// Time left before the deadline: `None` without a deadline, zero once it passed.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline().map(|d| {
            d.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        })
    }

    /// `true` once the deadline passed.
    pub fn deadline_passed(&self) -> bool {
        self.remaining() == Some(Duration::ZERO)
    }

    /// `true` when the plugin should stop: the cancel token was cancelled, the deadline
    /// passed, or the host is unloading the plugin. Long-running plugins poll this and return
    /// [`PluginError::cancelled`](crate::PluginError::cancelled).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled() || crate::module::stop_requested() || self.deadline_passed()
    }

    /// The context's cancel token; cancel a clone of it from another thread.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// Replaces the cancel token, for example with one shared by several contexts.
    pub fn set_cancel_token(&mut self, token: CancelToken) {
        self.call_key = 0;
        self.cancel = token;
    }

    // --- logging -------------------------------------------------------------------------------

    /// The function log lines are sent to. Public as
    /// [`HostContext::log_sink`](crate::host::HostContext::log_sink).
    pub(crate) fn log_sink(&self) -> LogSink {
        self.log
    }

    /// Installs the function log lines are sent to. Public as
    /// [`HostContext::set_log_sink`](crate::host::HostContext::set_log_sink).
    #[inline]
    pub(crate) fn set_log_sink(&mut self, sink: LogSink) {
        self.log = sink;
    }

    /// The name log lines are tagged with: the plugin's name while it runs, empty otherwise.
    pub fn origin(&self) -> &str {
        self.origin.as_str()
    }

    /// Sets the log tag; called by the [`export_plugin!`](crate::export_plugin) shim.
    pub(crate) fn __set_origin(&mut self, origin: &'static str) {
        self.origin = RStr::from_str(origin);
    }

    /// Sends a log line to the host.
    pub fn log(&self, level: LogLevel, message: impl AsRef<str>) {
        (self.log.0)(self.origin, level, RStr::from_str(message.as_ref()));
    }

    /// Logs at [`LogLevel::Error`].
    pub fn error(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Error, message);
    }
    /// Logs at [`LogLevel::Warn`].
    pub fn warn(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Warn, message);
    }
    /// Logs at [`LogLevel::Info`].
    pub fn info(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Info, message);
    }
    /// Logs at [`LogLevel::Debug`].
    pub fn debug(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Debug, message);
    }
    /// Logs at [`LogLevel::Trace`].
    pub fn trace(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Trace, message);
    }

    /// Moves every buffer another library may have allocated (values, label, cancel token)
    /// into the calling library's memory; see [`Value::rehome`]. Public as
    /// [`HostContext::rehome`](crate::host::HostContext::rehome).
    #[inline]
    pub(crate) fn rehome<O: BufferOwner>(&mut self, owner: &O) {
        self.call_key = 0;
        self.values.rehome(owner);
        crate::value::rehome_string(&mut self.label, owner);
        self.cancel.rehome(owner);
    }

    /// Starts a call: records `key` (non-zero, unpredictable, different for every call) and
    /// clears the log tag. A host calls this right before passing the context to a plugin.
    /// Public as [`HostContext::begin_call`](crate::host::HostContext::begin_call).
    #[inline]
    pub(crate) fn begin_call(&mut self, key: u64) {
        self.call_key = key;
        self.origin = RStr::from_str("");
    }

    /// Ends a call started with `key`: resets the log tag and, unless the context is provably
    /// untouched (the key is still there), [`rehome`](Self::rehome)s it. After this, nothing
    /// in the context points into the plugin. Public as
    /// [`HostContext::end_call`](crate::host::HostContext::end_call).
    #[inline]
    pub(crate) fn end_call<O: BufferOwner>(&mut self, key: u64, owner: &O) {
        self.origin = RStr::from_str("");
        if key == 0 || self.call_key != key {
            self.rehome(owner);
        }
        self.call_key = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_wrong_kind_are_different_errors() {
        let mut ctx = Context::new();
        ctx.set("n", "seven");
        assert_eq!(
            ctx.get::<i64>("n"),
            Err(ContextError::WrongKind {
                key: "n".into(),
                expected: ValueKind::Int,
                found: ValueKind::Str
            })
        );
        assert_eq!(
            ctx.get::<i64>("m"),
            Err(ContextError::Missing { key: "m".into() })
        );
        ctx.set("big", i64::MAX);
        assert!(matches!(
            ctx.get::<u8>("big"),
            Err(ContextError::OutOfRange { .. })
        ));
    }

    #[test]
    fn deadline_in_the_past_cancels() {
        let mut ctx = Context::new();
        assert!(!ctx.is_cancelled());
        ctx.set_deadline(Some(SystemTime::now() - Duration::from_secs(1)));
        assert!(ctx.is_cancelled());
        assert_eq!(ctx.remaining(), Some(Duration::ZERO));
    }

    #[test]
    fn cancel_token_is_shared_by_clones() {
        let ctx = Context::new();
        let token = ctx.cancel_token().clone();
        std::thread::spawn(move || token.cancel()).join().unwrap();
        assert!(ctx.is_cancelled());
    }

    /// `true` if `end_call` would rehome after `op`.
    fn rehomes_after(op: impl FnOnce(&mut Context)) -> bool {
        let mut ctx = Context::new();
        ctx.set("k", 1);
        ctx.begin_call(0x5eed);
        op(&mut ctx);
        ctx.call_key != 0x5eed
    }

    #[test]
    fn every_mutation_forces_a_rehome() {
        let ops: [fn(&mut Context); 12] = [
            |c| {
                c.set("k", 2);
            },
            |c| {
                c.take_string("k");
            },
            |c| {
                c.take_string("absent");
            },
            |c| {
                c.remove("k");
            },
            |c| {
                let _ = c.get_value_mut("k");
            },
            |c| {
                let _ = c.values_mut();
            },
            |c| {
                c.take_values();
            },
            |c| c.set_label("x"),
            |c| c.set_cancel_token(CancelToken::new()),
            |c| c.rehome(&crate::owner::NoBuffers),
            |c| c.begin_call(1),
            |c| *c = c.clone(),
        ];
        for (i, op) in ops.into_iter().enumerate() {
            assert!(rehomes_after(op), "op {i}");
        }
        assert!(rehomes_after(|c| *c = Context::new()));
        assert!(!rehomes_after(|c| {
            let _ = c.get::<i64>("k");
            let _ = c.is_cancelled();
            c.set_timeout(Duration::from_secs(1));
            c.info("reads, logs and deadlines do not touch memory");
        }));
    }

    #[test]
    fn the_host_trait_forwards_to_the_context() {
        use crate::host::HostContext;
        use std::sync::atomic::AtomicUsize;

        static LINES: AtomicUsize = AtomicUsize::new(0);
        extern "C" fn count(_: RStr<'_>, _: LogLevel, _: RStr<'_>) {
            LINES.fetch_add(1, Ordering::Relaxed);
        }

        let mut ctx = Context::new();
        ctx.set("k", 1);
        HostContext::begin_call(&mut ctx, 0x5eed);
        assert_eq!(ctx.call_key, 0x5eed);
        HostContext::end_call(&mut ctx, 0x5eed);
        assert_eq!(ctx.call_key, 0);

        HostContext::begin_call(&mut ctx, 0x5eed);
        HostContext::rehome(&mut ctx);
        assert_eq!(ctx.call_key, 0);
        assert_eq!(ctx.get::<i64>("k"), Ok(1));

        HostContext::set_log_sink(&mut ctx, LogSink::new(count));
        let mut other = Context::new();
        HostContext::set_log_sink(&mut other, HostContext::log_sink(&ctx));
        ctx.info("one");
        other.info("two");
        assert_eq!(LINES.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn rehoming_keeps_the_callers_token_connected() {
        let mut ctx = Context::new();
        let token = ctx.cancel_token().clone();
        ctx.rehome(&crate::owner::NoBuffers);
        token.cancel();
        assert!(ctx.is_cancelled());
        assert!(ctx.cancel_token().same_as(&token));
    }

    #[test]
    fn map_operations_keep_order() {
        let mut ctx = Context::new();
        ctx.set("a", 1);
        ctx.set("b", 2);
        ctx.set("a", 3);
        assert_eq!(ctx.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(ctx.remove("a"), Some(Value::Int(3)));
        assert!(!ctx.contains("a"));
        assert_eq!(ctx.len(), 1);
    }
}

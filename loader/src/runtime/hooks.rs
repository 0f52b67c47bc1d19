//! Host-side call hooks (interceptors) around every `execute`: the place for auth, audit
//! logging and custom metrics. A hook runs in the host, so it sees the host's statics.

use std::{fmt, sync::Arc, time::Duration};

use plg_api::Context;

use crate::error::ExecError;

/// What a hook is told about a call.
#[derive(Debug, Clone, Copy)]
pub struct CallInfo<'a> {
    /// The plugin's name.
    pub plugin: &'a str,
    /// The version the call goes to.
    pub version: &'a semver::Version,
}

/// A hook's refusal of a call: the plugin is not called, and the caller gets
/// [`ExecError::Rejected`] with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection(pub String);

impl<T: fmt::Display> From<T> for Rejection {
    fn from(message: T) -> Self {
        Rejection(message.to_string())
    }
}

/// An interceptor around every call a manager's plugins take, added with
/// [`PluginManager::with_call_hook`](crate::PluginManager::with_call_hook). Hooks run in the
/// order they were added, on the calling thread; keep them short.
///
/// ```
/// use std::time::Duration;
/// use plg_loader::{CallHook, CallInfo, Context, ExecError, PluginManager, Rejection};
///
/// /// Refuses calls that carry no `token`, and logs every call's duration.
/// struct Auth;
///
/// impl CallHook for Auth {
///     fn name(&self) -> &str {
///         "auth"
///     }
///     fn before(&self, _call: &CallInfo<'_>, ctx: &mut Context) -> Result<(), Rejection> {
///         match ctx.get_str("token") {
///             Ok("let-me-in") => Ok(()),
///             _ => Err("a valid `token` is required".into()),
///         }
///     }
///     fn after(&self, call: &CallInfo<'_>, _: &Context, result: &Result<(), ExecError>, took: Duration) {
///         tracing::info!(plugin = call.plugin, ok = result.is_ok(), ?took, "call");
///     }
/// }
///
/// let manager = PluginManager::new("plugins").with_call_hook(Auth);
/// ```
pub trait CallHook: Send + Sync + 'static {
    /// The hook's name, for [`ExecError::Rejected`].
    fn name(&self) -> &str;

    /// Runs before the plugin is called; may change the context, or refuse the call.
    fn before(&self, call: &CallInfo<'_>, ctx: &mut Context) -> Result<(), Rejection> {
        let _ = (call, ctx);
        Ok(())
    }

    /// Runs after the call (or its refusal, by this or another hook) with its result and
    /// how long it took.
    fn after(
        &self,
        call: &CallInfo<'_>,
        ctx: &Context,
        result: &Result<(), ExecError>,
        took: Duration,
    ) {
        let _ = (call, ctx, result, took);
    }
}

/// The hooks of one manager, shared by every instance it loads.
#[derive(Clone, Default)]
pub(crate) struct Hooks(Arc<[Arc<dyn CallHook>]>);

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|h| h.name()))
            .finish()
    }
}

impl Hooks {
    pub(crate) fn with(&self, hook: Arc<dyn CallHook>) -> Self {
        let mut all: Vec<Arc<dyn CallHook>> = self.0.to_vec();
        all.push(hook);
        Hooks(all.into())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Runs every `before` hook; the first refusal stops the call. `call` is built only when
    /// there are hooks to see it.
    #[inline]
    pub(crate) fn before<'a>(
        &self,
        id: &str,
        call: impl FnOnce() -> CallInfo<'a>,
        ctx: &mut Context,
    ) -> Result<(), Box<ExecError>> {
        if self.0.is_empty() {
            return Ok(());
        }
        self.run_before(id, &call(), ctx)
    }

    #[inline(never)]
    fn run_before(
        &self,
        id: &str,
        call: &CallInfo<'_>,
        ctx: &mut Context,
    ) -> Result<(), Box<ExecError>> {
        for hook in self.0.iter() {
            if let Err(Rejection(message)) = hook.before(call, ctx) {
                return Err(Box::new(ExecError::Rejected {
                    plugin: id.to_owned(),
                    hook: hook.name().to_owned(),
                    message,
                }));
            }
        }
        Ok(())
    }

    pub(crate) fn after(
        &self,
        call: &CallInfo<'_>,
        ctx: &Context,
        result: &Result<(), ExecError>,
        took: Duration,
    ) {
        for hook in self.0.iter() {
            hook.after(call, ctx, result, took);
        }
    }
}

/// A shared hook: keep an `Arc` to read what the hook collected.
impl<T: CallHook> CallHook for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn before(&self, call: &CallInfo<'_>, ctx: &mut Context) -> Result<(), Rejection> {
        (**self).before(call, ctx)
    }

    fn after(
        &self,
        call: &CallInfo<'_>,
        ctx: &Context,
        result: &Result<(), ExecError>,
        took: Duration,
    ) {
        (**self).after(call, ctx, result, took)
    }
}

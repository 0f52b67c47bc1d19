//! Calls from one plugin to another through the host: [`Context::call`] on the plugin's side,
//! the [`CallRouter`] a host installs on the other.

use std::sync::RwLock;

use abi_stable::{
    std_types::{RResult, RStr},
    StableAbi,
};

use crate::{Context, PluginError};

/// The signature of a host's router: `(target plugin, caller's context, sub-context)`.
///
/// It runs on the calling plugin's thread, inside the caller's `execute`. It must not unwind.
pub type RouteFn = extern "C" fn(
    target: RStr<'_>,
    parent: &Context,
    sub: &mut Context,
) -> RResult<(), PluginError>;

/// How a host routes [`Context::call`]: it finds the calling plugin, checks that `target` is
/// among its declared dependencies, and calls it with the caller's deadline and cancellation.
/// A host installs it through the module's `set_router` entry point when it loads a plugin.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy)]
pub struct CallRouter(extern "C" fn(RStr<'_>, &Context, &mut Context) -> RResult<(), PluginError>);

impl CallRouter {
    /// A router that calls `f`.
    pub const fn new(f: RouteFn) -> Self {
        Self(f)
    }
}

impl std::fmt::Debug for CallRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallRouter")
    }
}

/// The router of the host that loaded this copy of plg-api (each plugin library links its
/// own copy, so each has its own). `None` until a host installs one.
static ROUTER: RwLock<Option<CallRouter>> = RwLock::new(None);

pub(crate) fn set_router(router: CallRouter) {
    *ROUTER.write().unwrap_or_else(|e| e.into_inner()) = Some(router);
}

impl Context {
    /// Calls the plugin `target`, one of this plugin's declared dependencies
    /// (`"dependencies"` in `plugin.json`), with `sub` as its context.
    ///
    /// The host routes the call like any other: through its call gates, hooks, metrics and
    /// schemas, to the version of `target` loaded now (an upgrade in progress does not make it
    /// fail). `sub` gets this context's cancellation and the earlier of the two deadlines.
    /// Afterwards `sub` holds what `target` wrote.
    ///
    /// Errors: `target` is not a declared dependency; the call was made from another thread
    /// than the one running this plugin's entry point, or outside a call; the host does not
    /// route calls (it was built against a plg-api older than module revision 3); or
    /// `target`'s own error, with its kind kept (`Cancelled` when the deadline passed or the
    /// caller was cancelled; a panic in `target` reaches the caller as `Failed`).
    ///
    /// ```no_run
    /// use plg_api::{Context, PluginError};
    ///
    /// fn execute(ctx: &mut Context) -> Result<(), PluginError> {
    ///     let mut sub = Context::new();
    ///     sub.set("name", ctx.get_str("name")?);
    ///     ctx.call("greeter", &mut sub)?; // "dependencies": {"greeter": "^1"}
    ///     let greeting = sub.get_str("greeting")?.to_owned();
    ///     ctx.set("greeting", greeting);
    ///     Ok(())
    /// }
    /// ```
    pub fn call(&self, target: &str, sub: &mut Context) -> Result<(), PluginError> {
        let router = *ROUTER.read().unwrap_or_else(|e| e.into_inner());
        let Some(CallRouter(route)) = router else {
            return Err(PluginError::failed(format!(
                "cannot call `{target}`: the host did not install a call router (it needs \
                 plg-loader with plg-api module revision 3 or later)"
            )));
        };
        route(RStr::from_str(target), self, sub).into_result()
    }
}

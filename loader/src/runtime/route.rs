//! Calls from one plugin to another ([`Context::call`]): the router plg-loader installs in
//! every plugin it loads, and the record of which plugin runs on which thread.
//!
//! A plugin's `Context::call(target, sub)` reaches [`route`] on the plugin's own thread. The
//! router finds the calling plugin from a thread-local set around every entry point the host
//! runs (so a plugin cannot claim to be another), checks that `target` is among its declared
//! dependencies, and calls it through an ordinary [`Plugin`] handle: the same gates, hooks,
//! metrics and schemas as any call, following hot upgrades. The sub-call shares the caller's
//! cancellation and gets the earlier of the two deadlines.

use std::{
    cell::Cell,
    collections::HashMap,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, RwLock,
    },
};

use abi_stable::std_types::{RResult, RStr};
use plg_api::{CallRouter, Context, PluginError, PluginErrorKind};
use semver::VersionReq;

use super::plugin::Plugin;
use crate::{error::ExecError, untrusted};

/// The router plg-loader installs in every plugin it loads.
pub(crate) const ROUTER: CallRouter = CallRouter::new(route);

/// How deep calls between plugins may nest on one thread. Declared dependencies cannot form
/// a cycle, so only a pathological chain gets here.
const MAX_DEPTH: u32 = 64;

thread_local! {
    /// The route of the plugin whose entry point runs on this thread now; 0 outside any.
    static CURRENT: Cell<u64> = const { Cell::new(0) };
    /// Calls between plugins in progress on this thread.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// A declared dependency, with the handle its calls go through.
#[derive(Debug)]
pub(crate) struct Dependency {
    pub(crate) name: String,
    pub(crate) requirement: VersionReq,
    pub(crate) handle: Plugin,
}

#[derive(Debug)]
struct Routes {
    caller: String,
    dependencies: Vec<Dependency>,
}

static ROUTES: RwLock<Option<HashMap<u64, Arc<Routes>>>> = RwLock::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One loaded instance's entry in the routing table; removed when dropped.
#[derive(Debug)]
pub(crate) struct Registration(u64);

impl Registration {
    /// Registers `caller` (`name@version`) with the handles of its dependencies.
    pub(crate) fn new(caller: String, dependencies: Vec<Dependency>) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let routes = Arc::new(Routes {
            caller,
            dependencies,
        });
        ROUTES
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(HashMap::new)
            .insert(id, routes);
        Registration(id)
    }

    /// Marks this thread as running the registered instance until the scope is dropped.
    #[inline]
    pub(crate) fn enter(&self) -> Scope {
        Scope(CURRENT.with(|c| c.replace(self.0)))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let removed = ROUTES
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .and_then(|map| map.remove(&self.0));
        // Dropped after the lock is released: the routes hold dependency handles, whose
        // instances may be the last ones and drop their own registrations.
        drop(removed);
    }
}

/// Restores the thread's previous route when dropped.
pub(crate) struct Scope(u64);

impl Drop for Scope {
    #[inline]
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// The router itself. Never unwinds: a panic (in a host's call hook, say) becomes an error.
extern "C" fn route(
    target: RStr<'_>,
    parent: &Context,
    sub: &mut Context,
) -> RResult<(), PluginError> {
    match catch_unwind(AssertUnwindSafe(|| {
        route_call(target.as_str(), parent, sub)
    })) {
        Ok(result) => result.into(),
        Err(payload) => {
            // Dropping the payload could panic again; leak it instead.
            std::mem::forget(payload);
            RResult::RErr(PluginError::failed(format!(
                "the host panicked while routing the call to `{}`",
                untrusted::escape(target.as_str())
            )))
        }
    }
}

fn route_call(target: &str, parent: &Context, sub: &mut Context) -> Result<(), PluginError> {
    let shown = untrusted::escape(target);
    let id = CURRENT.with(Cell::get);
    let routes = (id != 0)
        .then(|| {
            let map = ROUTES.read().unwrap_or_else(|e| e.into_inner());
            map.as_ref().and_then(|m| m.get(&id)).cloned()
        })
        .flatten();
    let Some(routes) = routes else {
        return Err(PluginError::failed(format!(
            "cannot call `{shown}`: Context::call works only on the thread that runs the \
             plugin's entry point, while it runs"
        )));
    };
    let Some(dependency) = routes.dependencies.iter().find(|d| d.name == target) else {
        let declared: Vec<String> = routes
            .dependencies
            .iter()
            .map(|d| format!("{} {}", d.name, d.requirement))
            .collect();
        return Err(PluginError::failed(format!(
            "`{}` called `{shown}`, which is not among the dependencies in its plugin.json \
             ({}); a plugin may call only what it declares: add `\"{shown}\": \"<requirement>\"` \
             to \"dependencies\"",
            routes.caller,
            if declared.is_empty() {
                "it declares none".to_owned()
            } else {
                format!("it declares {}", declared.join(", "))
            }
        )));
    };
    if parent.cancel_token().is_cancelled() || parent.deadline_passed() {
        return Err(PluginError::cancelled());
    }
    let depth = DEPTH.with(Cell::get);
    if depth >= MAX_DEPTH {
        return Err(PluginError::failed(format!(
            "cannot call `{shown}`: calls between plugins nest {MAX_DEPTH} deep on this thread"
        )));
    }
    let deadline = match (parent.deadline(), sub.deadline()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    sub.set_deadline(deadline);
    sub.set_cancel_token(parent.cancel_token().clone());
    // The sub-context is the plugin's making: make it the host's before the dependency's
    // hooks see it.
    super::ffi::adopt(sub, super::plugin::HOST_SINK);
    let result = {
        let _nested = Nested::enter(depth);
        dependency.handle.execute(sub)
    };
    result.map_err(|e| PluginError::new(kind_of(&e), e))
}

/// One more call between plugins on this thread, until dropped (even by a panic).
struct Nested(u32);

impl Nested {
    fn enter(depth: u32) -> Self {
        DEPTH.with(|d| d.set(depth + 1));
        Nested(depth)
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(self.0));
    }
}

/// The kind a dependency's error keeps when it reaches the calling plugin.
fn kind_of(e: &ExecError) -> PluginErrorKind {
    match e {
        ExecError::InvalidInput { .. } => PluginErrorKind::InvalidInput,
        ExecError::Cancelled { .. } | ExecError::DeadlineExceeded { .. } => {
            PluginErrorKind::Cancelled
        }
        _ => PluginErrorKind::Failed,
    }
}

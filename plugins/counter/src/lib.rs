//! The `counter` sample plugin: a counter shared by every call, from every thread.
//!
//! Labels: `increment` (the default) adds `by` (default 1), `get` reads, `reset` sets it to 0.
//! Every call sets `count`, and `version` (the build that served the call). The hooks log when
//! the plugin is loaded and unloaded, and hand the count over to a new version on a hot
//! upgrade: `save_state` writes it, the new version's `restore_state` reads it.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicI64, Ordering};

use plg_api::{export_plugin, Context, ContextError, PluginError};

/// State lives in a `Sync` type: execute may run on many threads at once.
static COUNT: AtomicI64 = AtomicI64::new(0);

fn execute(ctx: &mut Context) -> Result<(), PluginError> {
    let count = match ctx.label() {
        "" | "increment" => {
            let by = match ctx.get::<i64>("by") {
                Ok(by) => by,
                Err(ContextError::Missing { .. }) => 1,
                Err(e) => return Err(e.into()),
            };
            COUNT.fetch_add(by, Ordering::SeqCst) + by
        }
        "get" => COUNT.load(Ordering::SeqCst),
        "reset" => {
            COUNT.store(0, Ordering::SeqCst);
            0
        }
        other => {
            return Err(PluginError::invalid_input(format!(
                "unknown label `{other}`: use increment, get or reset"
            )))
        }
    };
    ctx.set("count", count);
    ctx.set("version", env!("CARGO_PKG_VERSION"));
    Ok(())
}

fn on_load(ctx: &mut Context) -> Result<(), PluginError> {
    COUNT.store(0, Ordering::SeqCst);
    ctx.info("counter loaded");
    Ok(())
}

fn on_unload(ctx: &mut Context) -> Result<(), PluginError> {
    ctx.info(format!(
        "counter unloading at count {}",
        COUNT.load(Ordering::SeqCst)
    ));
    Ok(())
}

/// Runs on the old version during a hot upgrade: what it writes reaches `restore_state`.
fn save_state(ctx: &mut Context) -> Result<(), PluginError> {
    ctx.set("count", COUNT.load(Ordering::SeqCst));
    Ok(())
}

/// Runs on the new version after `on_load`, before it serves its first call.
fn restore_state(ctx: &mut Context) -> Result<(), PluginError> {
    let count = ctx.get::<i64>("count")?;
    COUNT.store(count, Ordering::SeqCst);
    ctx.info(format!("counter restored at count {count}"));
    Ok(())
}

export_plugin!(
    execute: execute,
    on_load: on_load,
    on_unload: on_unload,
    save_state: save_state,
    restore_state: restore_state,
);

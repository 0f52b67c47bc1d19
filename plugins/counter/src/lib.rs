//! The `counter` sample plugin: a counter shared by every call, from every thread.
//!
//! Labels: `increment` (the default) adds `by` (default 1), `get` reads, `reset` sets it to 0.
//! Every call sets `count`. The hooks log when the plugin is loaded and unloaded.
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

export_plugin!(execute: execute, on_load: on_load, on_unload: on_unload);

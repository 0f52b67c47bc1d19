//! Fixture: loops until `Context::is_cancelled` turns true, then returns `Cancelled`.
//! `iterations` counts the polls. With label `ignore-stop` it polls only its cancel token.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use plg_api::{export_plugin, Context, PluginError};

/// Set while a call is inside the loop; tests read it through `get`-labelled calls.
static RUNNING: AtomicBool = AtomicBool::new(false);

fn execute(ctx: &mut Context) -> Result<(), PluginError> {
    if ctx.label() == "running" {
        ctx.set("running", RUNNING.load(Ordering::SeqCst));
        return Ok(());
    }
    if ctx.label() == "is-cancelled" {
        ctx.set("cancelled", ctx.is_cancelled());
        return Ok(());
    }
    RUNNING.store(true, Ordering::SeqCst);
    // `ignore-stop` polls only the context's own token, not the host's stop flag or the
    // deadline: a plugin that does not cooperate with unloading.
    let ignore_stop = ctx.label() == "ignore-stop";
    let mut iterations = 0i64;
    while !(if ignore_stop {
        ctx.cancel_token().is_cancelled()
    } else {
        ctx.is_cancelled()
    }) {
        iterations += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    RUNNING.store(false, Ordering::SeqCst);
    ctx.set("iterations", iterations);
    Err(PluginError::cancelled())
}

export_plugin!(execute: execute);

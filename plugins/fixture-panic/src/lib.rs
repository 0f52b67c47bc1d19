//! Fixture: `execute` panics with a known message, unless the label is `ok`.

use plg_api::{export_plugin, Context, PluginError};

fn execute(ctx: &mut Context) -> Result<(), PluginError> {
    if ctx.label() == "ok" {
        ctx.set("survived", true);
        return Ok(());
    }
    let n = ctx.get::<i64>("n").unwrap_or(7);
    panic!("fixture-panic was told to panic (n = {n})");
}

export_plugin!(execute: execute);

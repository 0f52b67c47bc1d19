//! `hello`, built against the frozen copy of plg-api in `../vendor/plg-api`.
#![forbid(unsafe_code)]

use plg_api::{export_plugin, Context, PluginError};

fn execute(ctx: &mut Context) -> Result<(), PluginError> {
    let name = ctx.get_str("name").unwrap_or("world").to_owned();
    ctx.set("greeting", format!("Hello from the frozen ABI, {name}!"));
    Ok(())
}

fn on_load(ctx: &mut Context) -> Result<(), PluginError> {
    ctx.info("frozen-hello loaded");
    Ok(())
}

export_plugin!(execute: execute, on_load: on_load);

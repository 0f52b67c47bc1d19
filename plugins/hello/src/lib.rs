//! The `hello` sample plugin: reads `name` (default `"world"`) and sets `greeting`.
#![forbid(unsafe_code)]

use plg_api::{export_plugin, Context, ContextError, PluginError};

fn execute(ctx: &mut Context) -> Result<(), PluginError> {
    let name = match ctx.get_str("name") {
        Ok(name) => name.to_owned(),
        Err(ContextError::Missing { .. }) => "world".to_owned(),
        Err(e) => return Err(e.into()),
    };
    ctx.info(format!("greeting {name}"));
    ctx.set("greeting", format!("Hello, {name}!"));
    Ok(())
}

export_plugin!(execute: execute);

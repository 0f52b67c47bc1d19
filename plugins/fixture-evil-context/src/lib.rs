//! Fixture: tries, with safe plg-api calls only, to leave memory it allocated (whose vtables
//! live in this library) in the host's context, so that the host would crash when it drops
//! the context after unloading this plugin. The label picks the trick.

use plg_api::{export_plugin, CancelToken, Context, PluginError, Value};

fn execute(ctx: &mut Context) -> Result<(), PluginError> {
    match ctx.label() {
        // Write, then try to make the context look untouched.
        "forge-key" => {
            ctx.set("planted", "plugin-owned string");
            ctx.begin_call(0x1234_5678);
        }
        // Move every host buffer into this library's memory.
        "rehome" => ctx.rehome(),
        // Replace the token twice: the second allocation may reuse the first's address.
        "token" => {
            ctx.set_cancel_token(CancelToken::new());
            ctx.set_cancel_token(CancelToken::new());
        }
        // Replace the whole context with one built here.
        "replace" => {
            let mut fresh = Context::new();
            fresh.set("planted", Value::from(vec![Value::from("deep")]));
            *ctx = fresh;
        }
        // Every trick at once, through a clone.
        "clone" => {
            let mut copy = ctx.clone();
            copy.set("planted", "via clone");
            copy.rehome();
            std::mem::swap(ctx, &mut copy);
        }
        other => {
            return Err(PluginError::invalid_input(format!(
                "unknown label `{other}`"
            )))
        }
    }
    Ok(())
}

export_plugin!(execute: execute);

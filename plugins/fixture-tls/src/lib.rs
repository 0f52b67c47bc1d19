//! Fixture: uses a `thread_local!` holding a type with `Drop` on the caller's thread. glibc
//! then keeps the library mapped after `dlclose` until that thread exits, and plg must report
//! the plugin as not unmapped.

use std::cell::RefCell;

use plg_api::{export_plugin, Context, PluginError};

thread_local! {
    static SCRATCH: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn execute(ctx: &mut Context) -> Result<(), PluginError> {
    let len = SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        s.push("call".to_owned());
        s.len()
    });
    ctx.set("calls_on_this_thread", len as i64);
    Ok(())
}

export_plugin!(execute: execute);

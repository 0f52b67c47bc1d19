//! Fixture: `execute` does nothing. The subject of the call-overhead benchmarks.

use plg_api::{export_plugin, Context, PluginError};

fn execute(_ctx: &mut Context) -> Result<(), PluginError> {
    Ok(())
}

export_plugin!(execute: execute);

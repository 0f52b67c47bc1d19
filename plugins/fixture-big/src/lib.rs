//! Bench fixture: about 5 MB of embedded data, so bundle and install figures use a library
//! of realistic size. `execute` reads one byte of it (`index`), keeping it linked in.

use plg_api::{export_plugin, Context, PluginError};

#[used]
static BLOB: [u8; 5_000_000] = *include_bytes!(concat!(env!("OUT_DIR"), "/blob.bin"));

fn execute(ctx: &mut Context) -> Result<(), PluginError> {
    let i = ctx.get::<usize>("index").unwrap_or(0) % BLOB.len();
    ctx.set("byte", i64::from(BLOB[i]));
    Ok(())
}

export_plugin!(execute: execute);

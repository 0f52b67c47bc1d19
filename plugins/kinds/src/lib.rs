//! The `kinds` sample plugin: uses every `Value` kind.
//!
//! It writes one value of each kind under `out_*`, and `seen`: a map from each input key to
//! the kind of its value.
#![forbid(unsafe_code)]

use plg_api::{export_plugin, Context, PluginError, Value, ValueMap};

fn execute(ctx: &mut Context) -> Result<(), PluginError> {
    let seen: ValueMap = ctx
        .iter()
        .map(|(k, v)| (k.to_owned(), v.kind().to_string()))
        .collect();
    ctx.set("seen", seen);
    ctx.set("out_null", ());
    ctx.set("out_bool", true);
    ctx.set("out_int", -42i64);
    ctx.set("out_float", 2.5f64);
    ctx.set("out_str", "text");
    ctx.set("out_bytes", vec![0u8, 1, 255]);
    ctx.set("out_list", vec![Value::from(1), Value::from("two")]);
    let nested: ValueMap = [("inner", Value::from(vec![Value::from(false)]))]
        .into_iter()
        .collect();
    ctx.set("out_map", nested);
    Ok(())
}

export_plugin!(execute: execute);

//! Word statistics of `text`, written into the context as plain Rust values: a `usize`, a
//! `Vec<String>`, a `BTreeMap<String, i64>` and a serde struct, with no conversions.
//! `options` (optional) is read back into a struct the same way.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use plg_api::{export_plugin, Context, ContextError, PluginError};
use serde::{Deserialize, Serialize};

/// What the plugin reports under `stats`.
#[derive(Serialize)]
struct Stats {
    words: usize,
    longest: Option<String>,
    mean_length: f64,
}

/// What the host may pass under `options`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Options {
    lowercase: bool,
}

fn execute(ctx: &mut Context) -> Result<(), PluginError> {
    let options: Options = match ctx.get_as("options") {
        Ok(o) => o,
        Err(ContextError::Missing { .. }) => Options::default(),
        Err(e) => return Err(e.into()),
    };
    let text = ctx.get_str("text")?;
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            if options.lowercase {
                w.to_lowercase()
            } else {
                w.to_owned()
            }
        })
        .collect();
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for w in &words {
        *counts.entry(w.clone()).or_default() += 1;
    }
    let stats = Stats {
        words: words.len(),
        longest: words.iter().max_by_key(|w| w.len()).cloned(),
        mean_length: words.iter().map(String::len).sum::<usize>() as f64
            / words.len().max(1) as f64,
    };
    let distinct: Vec<String> = counts.keys().cloned().collect();

    ctx.put("words", &words.len())?;
    ctx.put("distinct", &distinct)?;
    ctx.put("counts", &counts)?;
    ctx.put("stats", &stats)?;
    Ok(())
}

export_plugin!(execute: execute);

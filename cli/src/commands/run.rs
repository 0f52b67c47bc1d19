//! `plg run`: load one plugin, execute it once, print the context as JSON.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;
use clap::Args;
use plg_loader::{Context, PluginManager, Value, ValueMap, WorkerPolicy};

use crate::{
    args::{parse_set, PluginSpec},
    failure::Failure,
    output::Output,
    Global,
};

#[derive(Args)]
pub struct RunArgs {
    /// The plugin, optionally with a semver requirement: `hello`, `hello@^1.2`, `hello@=1.2.0`.
    plugin: PluginSpec,
    /// Run the plugin in a supervised worker process (`plg-worker`), whatever its
    /// plugin.json says: a crash, an abort or a hang in it cannot take `plg` down.
    #[arg(long)]
    isolate: bool,
    #[command(flatten)]
    call: CallArgs,
}

/// The context of a call: what `plg run` and `plg dev` pass to `execute`.
#[derive(Args)]
pub struct CallArgs {
    /// Set a context value. VALUE is read as JSON if it parses (`n=5`, `ok=true`,
    /// `l=[1,2]`), otherwise as a string (`name=Ada`). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_set)]
    set: Vec<(String, Value)>,
    /// Read the initial context from a JSON object file (`-` for stdin). `--set` applies
    /// on top.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// The operation label passed to the plugin.
    #[arg(long)]
    label: Option<String>,
    /// Cancel the call after this many seconds (the plugin must poll `is_cancelled`).
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    timeout: Option<Duration>,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("`{s}` is not a number of seconds"))
}

/// The `--input` file's JSON object. A file that cannot be read is an I/O error (exit 10);
/// one that is not a JSON object is a usage error (exit 2), like any bad argument.
fn read_input(path: &Path) -> Result<ValueMap, Failure> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading --input from stdin")
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading --input {}", path.display()))
    }
    .map_err(|e| Failure { code: 10, error: e })?;
    serde_json::from_str(&text).map_err(|e| {
        Failure::new(
            2,
            format!("--input {}: expected a JSON object ({e})", path.display()),
        )
    })
}

impl CallArgs {
    /// The context these arguments describe.
    pub fn context(&self) -> Result<Context, Failure> {
        let mut values = match &self.input {
            Some(p) => read_input(p)?,
            None => ValueMap::new(),
        };
        for (k, v) in &self.set {
            values.insert(k.clone(), v.clone());
        }
        let mut ctx = Context::from_values(values);
        if let Some(label) = &self.label {
            ctx.set_label(label.clone());
        }
        if let Some(timeout) = self.timeout {
            ctx.set_timeout(timeout);
        }
        Ok(ctx)
    }
}

pub fn run(g: &Global, a: RunArgs, out: &Output) -> Result<(), Failure> {
    let mut ctx = a.call.context()?;
    let mut policy = WorkerPolicy::default();
    if a.isolate {
        policy.isolate.insert(a.plugin.name.clone());
    }
    let manager = PluginManager::new(g.plugins_dir()?).with_worker_policy(policy);
    let plugin = manager.load_matching(&a.plugin.name, a.plugin.requirement.as_deref())?;
    plugin.execute(&mut ctx)?;
    out.json(ctx.values())
}

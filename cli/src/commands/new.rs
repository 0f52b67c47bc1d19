//! `plg new`: scaffold a plugin crate.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use plg_loader::scaffold::{scaffold, scaffold_python, PlgApiSource};

use crate::{args::plugin_name, failure::Failure, output::Output};

#[derive(Args)]
pub struct NewArgs {
    /// The plugin's name: lowercase letters, digits, `_` and `-`.
    #[arg(value_parser = plugin_name)]
    name: String,
    /// Where to create the crate [default: ./NAME].
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
    /// The plg checkout's `plugin-api` directory. Default: $PLG_API_PATH, else the checkout
    /// this `plg` was built from.
    #[arg(long, value_name = "DIR", env = "PLG_API_PATH")]
    plg_api: Option<PathBuf>,
    /// The plugin's language: `rust` (a cdylib crate) or `python` (an exec plugin on grpcio
    /// that runs as it is: no build step).
    #[arg(long, value_name = "LANG", default_value = "rust", value_parser = ["rust", "python"])]
    lang: String,
}

pub fn run(a: NewArgs, out: &Output) -> Result<(), Failure> {
    let dir = a.path.clone().unwrap_or_else(|| PathBuf::from(&a.name));
    if a.lang == "python" {
        let dir = scaffold_python(&a.name, &dir)?;
        if out.is_json() {
            return out.json(&serde_json::json!({ "name": a.name, "path": dir }));
        }
        out.line(format!(
            "created Python plugin `{}` in {}",
            a.name,
            dir.display()
        ));
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        out.line(format!(
            "next: pip install -r {}  &&  plg run {} --plugins-dir {} --set name=you",
            dir.join("requirements.txt").display(),
            a.name,
            parent.display()
        ));
        return Ok(());
    }
    let api = match a.plg_api {
        Some(p) => p,
        None => {
            let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-api");
            if !built_from.join("Cargo.toml").is_file() {
                return Err(Failure::new(
                    1,
                    "cannot find plg-api: pass --plg-api PATH_TO_CHECKOUT/plugin-api (or set PLG_API_PATH)",
                ));
            }
            built_from
        }
    };
    let api = api
        .canonicalize()
        .with_context(|| format!("--plg-api {}", api.display()))?;
    let dir = scaffold(&a.name, &dir, &PlgApiSource::Path(api))?;
    if out.is_json() {
        return out.json(&serde_json::json!({ "name": a.name, "path": dir }));
    }
    out.line(format!(
        "created plugin crate `{}` in {}",
        a.name,
        dir.display()
    ));
    out.line(format!(
        "next: plg build {}  &&  plg run {} --set name=you",
        dir.display(),
        a.name
    ));
    Ok(())
}

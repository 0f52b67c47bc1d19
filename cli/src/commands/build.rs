//! `plg build`: build a plugin crate and stage it in the plugins directory.

use std::path::PathBuf;

use clap::Args;
use plg_loader::{
    build::{build_crate, stage, stage_signed, BuildOptions},
    install::{admits_signed_by, admits_unsigned, InstallOptions},
    keys::read_signing_key,
};

use crate::{failure::Failure, output::Output, Global};

#[derive(Args)]
pub struct BuildArgs {
    /// The plugin crate.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Build in debug mode instead of release.
    #[arg(long)]
    debug: bool,
    /// Sign the staged plugin with this secret key (from `plg keygen`). Needed in a plugins
    /// directory that requires signatures; the key's public half must be trusted there.
    #[arg(long, value_name = "KEY")]
    sign: Option<PathBuf>,
    /// The cargo target directory [default: $PLG_TARGET_DIR, else $CARGO_TARGET_DIR, else
    /// plg/target in the per-user cache directory, shared by every plugin build]
    #[arg(long, value_name = "DIR")]
    target_dir: Option<PathBuf>,
}

pub fn run(g: &Global, a: BuildArgs, out: &Output) -> Result<(), Failure> {
    let defaults = BuildOptions::default();
    let opts = BuildOptions {
        release: !a.debug,
        target_dir: a.target_dir.or(defaults.target_dir.clone()),
        ..defaults
    };
    let plugins_dir = g.plugins_dir()?;
    let key = a.sign.as_deref().map(read_signing_key).transpose()?;
    // Refuse before cargo runs (build scripts, proc macros) what could not be staged here.
    match &key {
        Some(key) => admits_signed_by(&a.dir, &key.verifying_key(), &plugins_dir)?,
        None => admits_unsigned(&a.dir, &plugins_dir, &InstallOptions::default())?,
    }
    let built = build_crate(&a.dir, &opts)?;
    let dest = match &key {
        Some(key) => stage_signed(&built, &plugins_dir, key)?,
        None => stage(&built, &plugins_dir)?,
    };
    if out.is_json() {
        return out.json(&serde_json::json!({
            "name": built.manifest.name,
            "version": built.manifest.version.to_string(),
            "library": built.library,
            "staged": dest,
            "signed": key.is_some(),
        }));
    }
    out.line(format!(
        "staged {} in {}",
        built.manifest.id(),
        dest.display()
    ));
    Ok(())
}

//! plg's integration tests, one binary, a module per area. They go through plg-loader's
//! public API and the `plg` binary, with fixture plugins built once per run.
#![forbid(unsafe_code)]

mod author;
mod bundle;
mod calls;
mod claims;
mod cli;
mod cli_experience;
mod cli_hardening;
mod dependencies;
mod dev;
mod events;
mod execute;
mod fuzz_corpus;
mod git;
mod git_credentials;
mod git_more;
mod hostile_dir;
mod isolation;
mod layers;
mod load;
mod logging;
mod observe;
mod preflight;
mod reload;
mod schemas;
mod unload;
mod watch;

use plg_loader::{Plugin, PluginManager};
use plg_tests::TempPluginsDir;

/// Stages `package`, loads it and returns the manager, the handle and the directory.
pub fn load_one(package: &str) -> (PluginManager, Plugin, TempPluginsDir) {
    let dir = TempPluginsDir::default();
    dir.stage(package);
    let manager = PluginManager::new(dir.path());
    let report = manager.load_all();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let plugin = manager.get(package).expect("just loaded");
    (manager, plugin, dir)
}

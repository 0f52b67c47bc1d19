//! Finding `plg-worker`, and load checks in a throwaway one: `plg install` and
//! `plg list --check` open a library to check it, which runs its initializers; in a worker,
//! the checking process never runs plugin code.

use std::path::{Path, PathBuf};

use super::{
    policy::WorkerPolicy,
    process::{self, Launch},
};
use crate::error::{LoadError, WorkerError};

/// The `plg-worker` binary: `configured`, else `$PLG_WORKER`, else next to this program (or
/// one directory up, where cargo puts a test's binaries), else on `PATH`.
pub(crate) fn find_worker(configured: Option<&Path>) -> Result<PathBuf, WorkerError> {
    let name = format!("plg-worker{}", std::env::consts::EXE_SUFFIX);
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = configured {
        candidates.push(p.to_owned());
    } else {
        if let Some(p) = std::env::var_os("PLG_WORKER") {
            candidates.push(p.into());
        }
        if let Ok(exe) = std::env::current_exe() {
            if let Some(dir) = exe.parent() {
                candidates.push(dir.join(&name));
                if let Some(up) = dir.parent() {
                    candidates.push(up.join(&name));
                }
            }
        }
        if let Some(path) = std::env::var_os("PATH") {
            // Only absolute entries: an empty or relative one would resolve against the
            // current directory.
            candidates.extend(
                std::env::split_paths(&path)
                    .filter(|d| d.is_absolute())
                    .map(|d| d.join(&name)),
            );
        }
    }
    match candidates.iter().find(|p| p.is_file()) {
        Some(found) => Ok(found.clone()),
        None => Err(WorkerError::NotFound {
            searched: candidates,
        }),
    }
}

/// Checks, in a throwaway `plg-worker` (`program`, from [`find_worker`]) run by `policy`'s
/// rules (cleared environment, limits, its own process group, the start timeout as the
/// check's timeout), that the plugin `id` at `manifest_path` (a local manifest: `local_so`)
/// passes every load check.
pub(crate) fn check_in_worker(
    program: &Path,
    manifest_path: &Path,
    id: &str,
    policy: &WorkerPolicy,
) -> Result<(), LoadError> {
    let launch = Launch {
        program,
        args: vec!["--check".into(), manifest_path.as_os_str().to_owned()],
        env: Vec::new(),
        plugin: id,
        reports_load_errors: true,
        spares: None,
    };
    process::check(&launch, policy).map_err(|e| e.into_load_error(id))
}

//! How a host starts `plg-worker` without a fork: instead of a pre-exec hook in the child
//! (which makes std fork the whole host, page tables and all), the host passes its process
//! id and the worker's limits in the environment, and `plg-worker` applies them to itself
//! first thing in `main` ([`adopt_from_env`]). An exec plugin, a program plg does not
//! control, still gets them from the hook.

use crate::runtime::ffi::{adopt_worker, ChildLimits};

/// The host's process id: the worker dies with it.
pub(crate) const PARENT_ENV: &str = "PLG_WORKER_PARENT_PID";
/// `RLIMIT_AS` in bytes.
const ADDRESS_SPACE_ENV: &str = "PLG_WORKER_RLIMIT_AS";
/// `RLIMIT_CPU` in seconds.
const CPU_ENV: &str = "PLG_WORKER_RLIMIT_CPU";
/// `RLIMIT_NOFILE`.
const OPEN_FILES_ENV: &str = "PLG_WORKER_RLIMIT_NOFILE";
/// The `cgroup.procs` of the worker's cgroup, which it joins.
const CGROUP_ENV: &str = "PLG_WORKER_CGROUP_PROCS";

/// The environment a host gives `plg-worker` for [`adopt_from_env`].
#[cfg(feature = "isolation")]
pub(crate) fn env_for(
    limits: ChildLimits,
    cgroup_procs: Option<&std::path::Path>,
) -> Vec<(&'static str, std::ffi::OsString)> {
    let mut env = vec![(PARENT_ENV, std::process::id().to_string().into())];
    if let Some(procs) = cgroup_procs {
        env.push((CGROUP_ENV, procs.into()));
    }
    for (key, value) in [
        (ADDRESS_SPACE_ENV, limits.address_space),
        (CPU_ENV, limits.cpu_seconds),
        (OPEN_FILES_ENV, limits.open_files),
    ] {
        if let Some(v) = value {
            env.push((key, v.to_string().into()));
        }
    }
    env
}

/// In `plg-worker`, before anything else: if the host passed its process id, die with it,
/// close the descriptors it let through, join the cgroup it made, and set the limits it
/// passed. A worker whose host
/// is already gone, or whose limits cannot be set, must not go on: the error says why.
pub fn adopt_from_env() -> Result<(), String> {
    let Some(parent) = std::env::var_os(PARENT_ENV) else {
        // Started with the pre-exec hook, or by hand.
        return Ok(());
    };
    let number = |key: &str| -> Result<Option<u64>, String> {
        match std::env::var(key) {
            Err(_) => Ok(None),
            Ok(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("{key} is not a whole number: {v:?}")),
        }
    };
    let parent: u32 = parent
        .to_str()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("{PARENT_ENV} is not a process id: {parent:?}"))?;
    let limits = ChildLimits {
        address_space: number(ADDRESS_SPACE_ENV)?,
        cpu_seconds: number(CPU_ENV)?,
        open_files: number(OPEN_FILES_ENV)?,
    };
    adopt_worker(parent, limits).map_err(|e| match e.raw_os_error() {
        Some(libc::ESRCH) => "the host that started this worker has exited".to_owned(),
        _ => format!("cannot set up the worker process: {e}"),
    })?;
    if let Some(procs) = std::env::var_os(CGROUP_ENV) {
        join_cgroup(std::path::Path::new(&procs))
            .map_err(|e| format!("cannot join the worker's cgroup ({procs:?}): {e}"))?;
    }
    Ok(())
}

/// Moves this process into the cgroup whose `cgroup.procs` is `procs`.
fn join_cgroup(procs: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(procs)?
        .write_all(b"0")
}

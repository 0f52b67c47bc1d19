//! How a host starts `plg-worker` without a fork: instead of a pre-exec hook in the child
//! (which makes std fork the whole host, page tables and all), the host passes its process
//! id and the worker's limits in the environment, and `plg-worker` applies them to itself
//! first thing in `main` ([`adopt_from_env`]). An exec plugin, a program plg does not
//! control, still gets them from the hook.

use crate::runtime::ffi::{adopt_parent, close_inherited, set_limits, ChildLimits};

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
/// A private directory (mode 0700) the host made for the worker's sockets, and removes when
/// it has reaped the worker: nothing is left in `/tmp` however the worker ends.
const SOCKET_DIR_ENV: &str = "PLG_WORKER_SOCKET_DIR";
/// Set when the worker's stdin is one end of a socket pair whose other end the host holds:
/// the worker's first frames connection, open before the worker starts (PROTOCOL.md,
/// "Frames"), so the first call needs no connect and no accept.
const FRAMES_ON_STDIN_ENV: &str = "PLG_WORKER_FRAMES_ON_STDIN";

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

/// The environment saying the worker's stdin is its first frames connection.
#[cfg(feature = "isolation")]
pub(crate) fn frames_on_stdin_env() -> (&'static str, std::ffi::OsString) {
    (FRAMES_ON_STDIN_ENV, "1".into())
}

/// The environment naming the worker's socket directory.
#[cfg(feature = "isolation")]
pub(crate) fn socket_dir_env(dir: &std::path::Path) -> (&'static str, std::ffi::OsString) {
    (SOCKET_DIR_ENV, dir.into())
}

/// What the host asked of a worker that [`adopt_from_env`] leaves to the worker.
#[derive(Debug, Default)]
pub struct Adopted {
    /// Where to bind the sockets (the host removes it); `None`: a private temporary one.
    pub socket_dir: Option<std::path::PathBuf>,
    /// Its stdin is a connection to the host: the first frames connection, which a spare
    /// also reads its manifest's path from.
    pub frames_on_stdin: bool,
}

/// In `plg-worker`, before anything else: if the host passed its process id, die with it,
/// close the descriptors it let through, join the cgroup it made, and set the limits it
/// passed. A worker whose host
/// is already gone, or whose limits cannot be set, must not go on: the error says why.
pub fn adopt_from_env() -> Result<Adopted, String> {
    let adopted = Adopted {
        socket_dir: std::env::var_os(SOCKET_DIR_ENV).map(Into::into),
        frames_on_stdin: std::env::var_os(FRAMES_ON_STDIN_ENV).is_some_and(|v| v == "1"),
    };
    std::env::remove_var(SOCKET_DIR_ENV);
    std::env::remove_var(FRAMES_ON_STDIN_ENV);
    let Some(parent) = std::env::var_os(PARENT_ENV) else {
        // Started with the pre-exec hook (through a wrapper), or by hand.
        return Ok(adopted);
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
    if let Some(actual) =
        adopt_parent(parent).map_err(|e| format!("cannot ask for the parent-death signal: {e}"))?
    {
        return Err(format!(
            "this worker's parent is process {actual}, not the host (process {parent}) that \
             asked for it: the host has exited, or a wrapper started plg-worker without `exec` \
             (a wrapper must `exec` it)"
        ));
    }
    close_inherited()
        .map_err(|e| format!("cannot close the descriptors the host let through: {e}"))?;
    // The cgroup before the limits: a low RLIMIT_NOFILE could refuse opening cgroup.procs.
    if let Some(procs) = std::env::var_os(CGROUP_ENV) {
        join_cgroup(std::path::Path::new(&procs))
            .map_err(|e| format!("cannot join the worker's cgroup ({procs:?}): {e}"))?;
    }
    set_limits(limits).map_err(|(limit, e)| format!("cannot set {limit}: {e}"))?;
    // The plugin sees the environment the host declared, not plg's own variables. This
    // process has one thread here, so changing its environment races with nothing.
    for key in [
        PARENT_ENV,
        ADDRESS_SPACE_ENV,
        CPU_ENV,
        OPEN_FILES_ENV,
        CGROUP_ENV,
    ] {
        std::env::remove_var(key);
    }
    Ok(adopted)
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

//! A cgroup v2 of its own for each worker, with `memory.max`: the kernel's accounting of what
//! the worker's processes really use (resident pages, page cache, kernel memory), where
//! `RLIMIT_AS` only caps address space. Used when `WorkerPolicy::memory_limit` is set and a
//! cgroup v2 directory with the `memory` controller is delegated to the host: the policy's
//! `memory_cgroup`, or else the host's own cgroup if it delegates `memory`. Otherwise the
//! limit is `RLIMIT_AS` alone, and the host's log says why, once.
//!
//! The worker joins its cgroup itself before any plugin code runs (`plg-worker` first thing
//! in `main`, an exec plugin between fork and exec). When the worker is reaped, everything
//! left in the cgroup is killed (`cgroup.kill`) and the cgroup removed.

use std::{
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        OnceLock,
    },
    time::Duration,
};

use super::policy::WorkerPolicy;

/// One worker's cgroup, removed when dropped.
#[derive(Debug)]
pub(crate) struct WorkerCgroup {
    dir: PathBuf,
    bytes: u64,
}

impl WorkerCgroup {
    /// The cgroup for a worker under `policy`: `Ok(None)` when there is no memory limit, or
    /// when no cgroup was configured and the host's own cannot be used (logged once).
    pub(crate) fn for_policy(policy: &WorkerPolicy) -> io::Result<Option<Self>> {
        let Some(bytes) = policy.memory_limit else {
            return Ok(None);
        };
        let root = match &policy.memory_cgroup {
            Some(root) => root.clone(),
            None => match own_cgroup() {
                Ok(root) => root.clone(),
                Err(reason) => {
                    static SAID: OnceLock<()> = OnceLock::new();
                    SAID.get_or_init(|| {
                        tracing::info!(
                            "worker memory limits are RLIMIT_AS only, not cgroup v2 memory.max: \
                             {reason}; set WorkerPolicy::memory_cgroup to a delegated cgroup"
                        )
                    });
                    return Ok(None);
                }
            },
        };
        Self::create(&root, bytes).map(Some).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot create the worker's cgroup under {} for its memory limit: {e}",
                    crate::untrusted::escape(&root.display().to_string())
                ),
            )
        })
    }

    /// A new cgroup under `root` with `memory.max` = `bytes` (and no swap beyond it).
    fn create(root: &Path, bytes: u64) -> io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        if NEXT.load(Ordering::Relaxed) == 0 {
            remove_stale(root);
        }
        let name = format!(
            "plg-worker-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = root.join(name);
        std::fs::create_dir(&dir)?;
        let cgroup = WorkerCgroup { dir, bytes };
        write(&cgroup.dir.join("memory.max"), &bytes.to_string())?;
        // Without this, pages over memory.max go to swap instead of failing. Not every
        // kernel has swap accounting: best effort.
        let _ = write(&cgroup.dir.join("memory.swap.max"), "0");
        Ok(cgroup)
    }

    /// Its `cgroup.procs`: a process that writes `0` there joins it.
    pub(crate) fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// What to add to a worker's exit status when the kernel's OOM killer killed a process
    /// in its cgroup.
    pub(crate) fn oom_note(&self) -> Option<String> {
        self.oom_killed().then(|| {
            format!(
                " by the kernel's OOM killer: over its memory limit (cgroup memory.max, {} bytes)",
                self.bytes
            )
        })
    }

    /// Whether the kernel's OOM killer killed a process in it (`memory.events`).
    fn oom_killed(&self) -> bool {
        std::fs::read_to_string(self.dir.join("memory.events")).is_ok_and(|events| {
            events.lines().any(|l| {
                l.strip_prefix("oom_kill ")
                    .is_some_and(|n| n.trim().parse::<u64>().is_ok_and(|n| n > 0))
            })
        })
    }
}

impl Drop for WorkerCgroup {
    /// Kills what is left in it (a process the plugin started and detached), then removes
    /// it. The kill takes a moment: the removal is retried for up to 100 ms.
    fn drop(&mut self) {
        let _ = write(&self.dir.join("cgroup.kill"), "1");
        for _ in 0..100 {
            match std::fs::remove_dir(&self.dir) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                _ => return,
            }
        }
        tracing::warn!(
            "cannot remove the worker cgroup {}: it still has processes",
            self.dir.display()
        );
    }
}

/// Removes the cgroups under `root` that a host which no longer runs left behind (killed
/// with SIGKILL, its `Drop`s never ran): what is left in each is killed first. Best effort,
/// once per process, before its first worker cgroup.
fn remove_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        if !super::socket_dir::left_by_exited_host(&entry.file_name()) {
            continue;
        }
        let stale = entry.path();
        // Only where the file exists (cgroupfs makes it): nothing is created in a directory
        // that is not a cgroup.
        if let Ok(mut kill) = std::fs::OpenOptions::new()
            .write(true)
            .open(stale.join("cgroup.kill"))
        {
            let _ = kill.write_all(b"1");
        }
        if std::fs::remove_dir(&stale).is_ok() {
            tracing::info!(
                "removed the worker cgroup {} that an exited host left",
                stale.display()
            );
        }
    }
}

/// Writes `value` to a cgroup interface file (created, for a directory that is not cgroupfs).
fn write(path: &Path, value: &str) -> io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?
        .write_all(value.as_bytes())
}

/// The host's own cgroup v2 directory, if it delegates the `memory` controller to its
/// children; why not, otherwise. Looked up once.
fn own_cgroup() -> &'static Result<PathBuf, String> {
    static OWN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    OWN.get_or_init(|| {
        let cgroups = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let path = cgroups
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or("the host is in no cgroup v2 hierarchy")?;
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let mount = cgroup2_mount(&mounts).ok_or("no cgroup v2 filesystem is mounted")?;
        let dir = mount.join(path.trim_start_matches('/'));
        let control = std::fs::read_to_string(dir.join("cgroup.subtree_control"))
            .map_err(|e| format!("cannot read {}/cgroup.subtree_control: {e}", dir.display()))?;
        if !control.split_whitespace().any(|c| c == "memory") {
            return Err(format!(
                "the host's cgroup {} does not delegate the memory controller",
                dir.display()
            ));
        }
        Ok(dir)
    })
}

/// Where the cgroup v2 filesystem is mounted, from `/proc/self/mountinfo`'s text.
fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        (after.split_whitespace().next()? == "cgroup2")
            .then(|| before.split_whitespace().nth(4).map(PathBuf::from))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup2_mount_is_found_in_a_hybrid_layout() {
        let mountinfo = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
34 30 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw";
        assert_eq!(
            cgroup2_mount(mountinfo),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(cgroup2_mount("1 2 0:1 / / rw - ext4 /dev/vda rw"), None);
    }

    #[test]
    fn cgroups_left_by_a_host_that_no_longer_runs_are_removed() {
        let root = tempfile::tempdir().unwrap();
        // No process has pid u32::MAX - 1 (pid_max is at most 2^22).
        let stale = root.path().join(format!("plg-worker-{}-0", u32::MAX - 1));
        let ours = root
            .path()
            .join(format!("plg-worker-{}-99", std::process::id()));
        let other = root.path().join("someone-else");
        for dir in [&stale, &ours, &other] {
            std::fs::create_dir(dir).unwrap();
        }
        remove_stale(root.path());
        assert!(!stale.exists(), "the stale cgroup is removed");
        assert!(
            ours.exists() && other.exists(),
            "a live host's and others' stay"
        );
    }

    #[test]
    fn a_cgroup_gets_its_limit_and_reports_an_oom_kill() {
        let root = tempfile::tempdir().unwrap();
        let cgroup = WorkerCgroup::create(root.path(), 1 << 30).unwrap();
        assert_eq!(
            std::fs::read_to_string(cgroup.dir.join("memory.max")).unwrap(),
            (1u64 << 30).to_string()
        );
        assert!(!cgroup.oom_killed());
        assert_eq!(cgroup.oom_note(), None);
        std::fs::write(
            cgroup.dir.join("memory.events"),
            "low 0\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert!(cgroup.oom_note().unwrap().contains("1073741824 bytes"));
        let dir = cgroup.dir.clone();
        drop(cgroup);
        assert_eq!(
            std::fs::read_to_string(dir.join("cgroup.kill")).unwrap(),
            "1"
        );
    }
}

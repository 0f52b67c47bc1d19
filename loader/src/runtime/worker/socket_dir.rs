//! The private directory a host makes for each `plg-worker`'s sockets, named after the host
//! (`plg-worker-HOSTPID-RANDOM` in the temporary directory) and removed when the worker is
//! reaped. A host killed outright cannot remove its own: the next host's first worker
//! removes those of hosts that are gone.

use std::{
    ffi::OsStr,
    io,
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
};

/// The sockets plg-worker binds; a directory holding anything else is left alone.
const SOCKETS: [&str; 2] = ["plugin.sock", "frames.sock"];

/// A new socket directory (mode 0700) for a worker of this host.
pub(super) fn make() -> io::Result<tempfile::TempDir> {
    static SWEPT: AtomicBool = AtomicBool::new(false);
    let temp = std::env::temp_dir();
    if !SWEPT.swap(true, Ordering::Relaxed) {
        remove_stale(&temp);
    }
    tempfile::Builder::new()
        .prefix(&format!("plg-worker-{}-", std::process::id()))
        .tempdir_in(temp)
}

/// Whether `name` is `plg-worker-PID-...` for a process `PID` that is gone.
pub(super) fn left_by_exited_host(name: &OsStr) -> bool {
    let Some(pid) = name
        .to_str()
        .and_then(|n| n.strip_prefix("plg-worker-"))
        .and_then(|rest| rest.split_once('-'))
        .and_then(|(pid, _)| pid.parse::<u32>().ok())
    else {
        return false;
    };
    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the socket directories in `temp` that exited hosts left: only directories (not
/// links) owned by this user that hold nothing but plg-worker's sockets. The temporary
/// directory is shared, so anything else is left as it is.
fn remove_stale(temp: &Path) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(entries) = std::fs::read_dir(temp) else {
            return;
        };
        let uid = rustix::process::getuid().as_raw();
        for entry in entries.flatten() {
            if !left_by_exited_host(&entry.file_name()) {
                continue;
            }
            let dir = entry.path();
            let ours = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == uid);
            let Ok(inside) = std::fs::read_dir(&dir) else {
                continue;
            };
            let inside: Vec<_> = inside.flatten().map(|e| e.file_name()).collect();
            if !ours || !inside.iter().all(|n| SOCKETS.iter().any(|s| n == *s)) {
                continue;
            }
            for name in &inside {
                let _ = std::fs::remove_file(dir.join(name));
            }
            if std::fs::remove_dir(&dir).is_ok() {
                tracing::debug!(
                    "removed the worker socket directory {} that an exited host left",
                    dir.display()
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = temp;
}

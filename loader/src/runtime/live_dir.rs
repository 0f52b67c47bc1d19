//! Private copies of libraries for hot upgrade.
//!
//! glibc matches a loaded library by its path string (and by file), so opening a rebuilt
//! library at the path of a loaded one returns the *old* image. A hot upgrade therefore loads
//! each new version from a copy with a path of its own: `PLUGINS_DIR/.plg/live/PID-NS/` holds
//! them, one directory per process, so two hosts sharing a plugins directory never touch each
//! other's copies. A copy is removed once its image is verifiably unmapped
//! ([`Instance::unload`](super::plugin::Instance::unload)); a copy whose image stays mapped
//! (thread-local destructors) is kept and reported. Directories of processes that no longer
//! run are swept the next time a live directory is opened.

use std::{
    fs::File,
    io,
    path::{Path, PathBuf},
};

use super::provenance::Digest;
use crate::error::{IoError, LoadError};

/// This process's directory of private copies, `PLUGINS_DIR/.plg/live/PID-NS/` (see
/// [`own_dir_name`]).
#[derive(Debug, Clone)]
pub(crate) struct LiveDir {
    dir: PathBuf,
}

impl LiveDir {
    pub(crate) fn new(plugins_dir: &Path) -> Self {
        LiveDir {
            dir: plugins_dir.join(".plg").join("live").join(own_dir_name()),
        }
    }

    /// Copies `library` to a new file here, named after the plugin and its content hash
    /// (`NAME-HASH16[-N].so`) when the caller has one, or a number and a random token
    /// (`NAME-cN-TOKEN.so`), and returns its canonical path. The copy is written to a
    /// temporary file of its own (created exclusively) and linked into place, which fails
    /// rather than replace a name already taken, so a half-written copy never has a loadable
    /// name and no two hosts (two containers both PID 1 sharing a plugins directory, say)
    /// write or load each other's copy; a taken name gets the next `-N`.
    pub(crate) fn place(
        &self,
        name: &str,
        library: &Path,
        digest: Option<&Digest>,
    ) -> Result<PathBuf, LoadError> {
        use std::hash::BuildHasher;
        if !self.dir.is_dir() {
            sweep_dead(self.dir.parent().unwrap_or(&self.dir));
            std::fs::create_dir_all(&self.dir).map_err(|e| IoError::new(&self.dir, e))?;
        }
        let ext = library
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or(std::env::consts::DLL_EXTENSION);
        static COPIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = std::hash::RandomState::new().hash_one(n) as u32;
        let stem = match digest {
            Some(digest) => format!("{name}-{}", hex::encode(&digest[..8])),
            None => format!("{name}-c{n}-{token:08x}"),
        };
        let tmp = self.dir.join(format!(".{stem}.{token:08x}.partial"));
        let copied = (|| {
            let mut from = File::open(library)?;
            let mut to = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            // `io::copy` between two files uses copy_file_range where the kernel offers it.
            io::copy(&mut from, &mut to)?;
            Ok(())
        })();
        let placed = copied.map_err(|e| IoError::new(&tmp, e)).and_then(|()| {
            for n in 0u32.. {
                let target = match n {
                    0 => self.dir.join(format!("{stem}.{ext}")),
                    n => self.dir.join(format!("{stem}-{n}.{ext}")),
                };
                match std::fs::hard_link(&tmp, &target) {
                    Ok(()) => return Ok(target),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(IoError::new(&target, e)),
                }
            }
            unreachable!("u32 names run out")
        });
        let _ = std::fs::remove_file(&tmp);
        let target = placed?;
        // Canonical, as the dynamic loader and `/proc/self/maps` spell it.
        target
            .canonicalize()
            .map_err(|e| IoError::new(&target, e).into())
    }

    /// Removes this process's directory if no copy is left in it (at the manager's drop).
    pub(crate) fn remove_if_empty(&self) {
        let _ = std::fs::remove_dir(&self.dir);
        if let Some(live) = self.dir.parent() {
            let _ = std::fs::remove_dir(live);
        }
    }
}

/// Removes the live directories of processes that no longer run. Best effort: a directory
/// that cannot be read or removed is left.
fn sweep_dead(live: &Path) {
    let Ok(entries) = std::fs::read_dir(live) else {
        return;
    };
    let own = pid_namespace();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, namespace)) = name.to_str().and_then(parse_dir_name) else {
            continue;
        };
        // A process of another PID namespace (another container sharing the directory)
        // cannot be looked up from here: its directory is left alone.
        if namespace.is_some() && namespace != own {
            continue;
        }
        if pid != std::process::id() && !process_runs(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// This process's directory name: `PID-NS`, NS being its PID namespace's inode number where
/// it can be read, else `PID`. Two containers sharing a plugins directory may both be PID 1;
/// their namespaces tell them apart.
fn own_dir_name() -> String {
    match pid_namespace() {
        Some(ns) => format!("{}-{ns}", std::process::id()),
        None => std::process::id().to_string(),
    }
}

/// `PID-NS` or `PID`, as [`own_dir_name`] writes them.
fn parse_dir_name(name: &str) -> Option<(u32, Option<u64>)> {
    match name.split_once('-') {
        Some((pid, ns)) => Some((pid.parse().ok()?, Some(ns.parse().ok()?))),
        None => Some((name.parse().ok()?, None)),
    }
}

/// The inode number of this process's PID namespace (`/proc/self/ns/pid`), if readable.
fn pid_namespace() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
        let link = link.to_str()?;
        link.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
    }
    #[cfg(not(target_os = "linux"))]
    None
}

#[cfg(target_os = "linux")]
fn process_runs(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(not(target_os = "linux"))]
fn process_runs(_pid: u32) -> bool {
    // Without /proc, assume it runs: never remove another process's copies.
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::provenance::digest;

    #[test]
    fn copies_get_content_names_and_never_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let lib = tmp.path().join("libx.so");
        std::fs::write(&lib, b"bytes").unwrap();
        let d = digest(b"{}", &lib, &File::open(&lib).unwrap()).unwrap();
        let live = LiveDir::new(tmp.path());
        let a = live.place("x", &lib, Some(&d)).unwrap();
        let b = live.place("x", &lib, Some(&d)).unwrap();
        assert_ne!(a, b);
        assert!(a.file_name().unwrap().to_str().unwrap().starts_with("x-"));
        let (c, e) = (live.place("x", &lib, None), live.place("x", &lib, None));
        assert_ne!(
            c.unwrap(),
            e.unwrap(),
            "copies without a hash get names of their own"
        );
        assert_eq!(std::fs::read(&b).unwrap(), b"bytes");
        std::fs::write(&lib, b"other").unwrap();
        assert_ne!(digest(b"{}", &lib, &File::open(&lib).unwrap()).unwrap(), d);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn dead_processes_directories_are_swept() {
        let tmp = tempfile::tempdir().unwrap();
        let live = tmp.path().join(".plg/live");
        // pid_max is at most 2^22 on Linux: this pid cannot run.
        let own_ns = pid_namespace().expect("/proc/self/ns/pid");
        let ours_dead = format!("4194305-{own_ns}");
        let other_container = format!("4194305-{}", own_ns + 1);
        for name in ["4194305", &ours_dead, &other_container, "not-a-pid", "1-x"] {
            std::fs::create_dir_all(live.join(name)).unwrap();
        }
        let lib = tmp.path().join("libx.so");
        std::fs::write(&lib, b"bytes").unwrap();
        let copy = LiveDir::new(tmp.path())
            .place("x", &lib, Some(&[0; 32]))
            .unwrap();
        assert!(!live.join("4194305").exists());
        assert!(!live.join(&ours_dead).exists());
        // Another PID namespace's process cannot be looked up from here: kept.
        assert!(live.join(&other_container).exists());
        assert!(live.join("not-a-pid").exists());
        assert!(live.join("1-x").exists());
        let own = copy
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(own, format!("{}-{own_ns}", std::process::id()));
    }
}

//! Private copies of libraries for hot upgrade, and how a reload tells whether a plugin
//! changed (the bytes compared with what was loaded, or a content hash).
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
    io::{self, Read},
    path::{Path, PathBuf},
};

use crate::error::{IoError, LoadError};

/// The content hash of what a plugin was loaded from.
pub(crate) type Digest = [u8; 32];

/// The BLAKE3 hash of a plugin as loaded: its manifest's bytes, then its library's (`file`,
/// open at `library`, read from its start).
pub(crate) fn digest(manifest: &[u8], library: &Path, file: &File) -> Result<Digest, LoadError> {
    let mut reader = file;
    io::Seek::seek(&mut reader, io::SeekFrom::Start(0))
        .and_then(|_| hash(manifest, &mut reader))
        .map_err(|e| IoError::new(library, e).into())
}

fn hash(manifest: &[u8], library: &mut impl Read) -> io::Result<Digest> {
    // BLAKE3: a cryptographic hash (no crafted collision can pass a changed library off as
    // unchanged), and several times faster than SHA-256 on a debug library of megabytes.
    let mut ctx = blake3::Hasher::new();
    ctx.update(manifest);
    // A separator, so that bytes cannot move between the two files unnoticed.
    ctx.update(&[0xff]);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match library.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        ctx.update(&buf[..n]);
    }
    ctx.update(&[0xff]);
    Ok(*ctx.finalize().as_bytes())
}

/// What a plugin was loaded from, so that a reload can tell whether the version on disk is
/// the same bytes. Hashing a library costs milliseconds, more than the rest of a load, so a
/// load keeps the manifest's bytes and an open handle on the library file instead; the hash
/// is computed the first time a reload asks. The handle still reads the loaded file after a
/// new one is renamed over its path; if the file itself was rewritten since (its length or
/// modification time changed), the loaded bytes are gone and the answer is `None`.
#[derive(Debug)]
pub(crate) struct Origin {
    manifest: Vec<u8>,
    library: Option<(File, Stamp)>,
    digest: std::sync::OnceLock<Digest>,
}

impl Origin {
    /// Records the manifest and the file at `library` as they are now.
    #[cfg(feature = "isolation")]
    pub(crate) fn new(manifest: &Path, library: &Path) -> Self {
        match File::open(library) {
            Ok(file) => Origin::opened(manifest, file),
            Err(_) => Origin {
                manifest: std::fs::read(manifest).unwrap_or_default(),
                library: None,
                digest: std::sync::OnceLock::new(),
            },
        }
    }

    /// Records the manifest as it is now and `library`, the library file the load opened.
    pub(crate) fn opened(manifest: &Path, library: File) -> Self {
        Origin {
            manifest: std::fs::read(manifest).unwrap_or_default(),
            library: Stamp::of(&library).map(|s| (library, s)),
            digest: std::sync::OnceLock::new(),
        }
    }

    /// [`opened`](Self::opened), with the content hash the caller already computed (so a
    /// later reload can compare bytes rather than hash again).
    pub(crate) fn opened_hashed(manifest: &Path, library: File, digest: Digest) -> Self {
        let origin = Origin::opened(manifest, library);
        let _ = origin.digest.set(digest);
        origin
    }

    /// The content hash of what was loaded, or `None` if it can no longer be read.
    pub(crate) fn digest(&self) -> Option<Digest> {
        if let Some(d) = self.digest.get() {
            return Some(*d);
        }
        let (file, stamp) = self.library.as_ref()?;
        if !stamp.still_holds(file) {
            return None;
        }
        let mut reader = file;
        io::Seek::seek(&mut reader, io::SeekFrom::Start(0)).ok()?;
        let d = hash(&self.manifest, &mut reader).ok()?;
        Some(*self.digest.get_or_init(|| d))
    }

    /// Whether `manifest` and the open `library` hold the same bytes as what was loaded,
    /// compared byte for byte: a rebuild usually differs within its first pages (the ELF
    /// build ID is near the start), so this reads a fraction of what hashing the new library
    /// would. `None` when the loaded bytes cannot be read back (loaded from content known
    /// only by its hash, or a file rewritten since): then the caller hashes.
    pub(crate) fn same_content(&self, manifest: &[u8], library: &File) -> Option<bool> {
        let (loaded, stamp) = self.library.as_ref()?;
        if !stamp.still_holds(loaded) {
            return None;
        }
        if self.manifest != manifest {
            return Some(false);
        }
        let len = library.metadata().ok()?.len();
        if len != stamp.0 {
            return Some(false);
        }
        let same = same_bytes(loaded, library, len)?;
        // Rewritten while being compared: what was loaded is gone.
        if !stamp.still_holds(loaded) {
            return None;
        }
        Some(same)
    }
}

/// Whether the first `len` bytes of `a` and `b` are equal, read in pieces that stop at the
/// first difference. `None` if either cannot be read to `len`.
#[cfg(unix)]
fn same_bytes(a: &File, b: &File, len: u64) -> Option<bool> {
    use std::os::unix::fs::FileExt;
    const PIECE: usize = 64 * 1024;
    let (mut x, mut y) = (vec![0u8; PIECE], vec![0u8; PIECE]);
    let mut at = 0u64;
    while at < len {
        let n = PIECE.min(usize::try_from(len - at).unwrap_or(PIECE));
        a.read_exact_at(&mut x[..n], at).ok()?;
        b.read_exact_at(&mut y[..n], at).ok()?;
        if x[..n] != y[..n] {
            return Some(false);
        }
        at += n as u64;
    }
    Some(true)
}

/// Not compared here: the caller hashes.
#[cfg(not(unix))]
fn same_bytes(_: &File, _: &File, _: u64) -> Option<bool> {
    None
}

impl Origin {
    /// Whether the content hashed as `digest`, whose library is `library_len` bytes long, is
    /// what this instance was loaded from. A library of another length differs without
    /// hashing anything; otherwise the loaded file is hashed (once) and compared.
    pub(crate) fn holds(&self, digest: &Digest, library_len: u64) -> bool {
        if let Some(known) = self.digest.get() {
            return known == digest;
        }
        if let Some((_, Stamp(len, ..))) = &self.library {
            if *len != library_len {
                return false;
            }
        }
        self.digest().as_ref() == Some(digest)
    }
}

/// What tells whether an open file still holds the bytes it held: its length and
/// modification time, and on Unix its device, inode and status-change time, which no
/// program can set back (`cp -p` or `rsync -t --inplace` over a file keep the first two).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(u64, Option<std::time::SystemTime>, [i64; 4]);

impl Stamp {
    fn of(file: &File) -> Option<Stamp> {
        Some(Stamp::with_links(file)?.0)
    }

    /// The stamp, and how many names the file has now.
    fn with_links(file: &File) -> Option<(Stamp, u64)> {
        let m = file.metadata().ok()?;
        #[cfg(unix)]
        let (identity, links) = {
            use std::os::unix::fs::MetadataExt;
            (
                [m.dev() as i64, m.ino() as i64, m.ctime(), m.ctime_nsec()],
                m.nlink(),
            )
        };
        #[cfg(not(unix))]
        let (identity, links) = ([0; 4], 1);
        Some((Stamp(m.len(), m.modified().ok(), identity), links))
    }

    /// Whether `file`, stamped `self` earlier, still holds the same bytes. Losing its last
    /// name (a new file renamed over it, as builds and `plg install` do) changes its
    /// status-change time but not its bytes, and no program can open it by name to write it
    /// after that: so for a file with no name left only the rest must match.
    fn still_holds(&self, file: &File) -> bool {
        match Stamp::with_links(file) {
            Some((now, links)) => {
                now.0 == self.0
                    && now.1 == self.1
                    && now.2[..2] == self.2[..2]
                    && (now.2[2..] == self.2[2..] || links == 0)
            }
            None => false,
        }
    }
}

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

    #[cfg(unix)]
    #[test]
    fn a_reload_compares_bytes_with_what_was_loaded() {
        let tmp = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = tmp.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let manifest = write("plugin.json", b"{}");
        let loaded = write("loaded.so", &big);
        let origin = Origin::opened(&manifest, File::open(&loaded).unwrap());
        let same = |m: &[u8], lib: &Path| origin.same_content(m, &File::open(lib).unwrap());

        assert_eq!(same(b"{}", &write("same.so", &big)), Some(true));
        let mut last = big.clone();
        *last.last_mut().unwrap() ^= 1;
        assert_eq!(same(b"{}", &write("last.so", &last)), Some(false));
        assert_eq!(same(b"{}", &write("short.so", &big[1..])), Some(false));
        assert_eq!(same(b"{ }", &write("again.so", &big)), Some(false));
        // A new file renamed over the loaded one (as builds do): the loaded bytes stay
        // readable through the handle, and still compare.
        let renamed = Origin::opened(&manifest, File::open(write("r.so", &big)).unwrap());
        std::fs::rename(write("incoming.so", &last), tmp.path().join("r.so")).unwrap();
        let fresh = File::open(write("fresh.so", &big)).unwrap();
        assert_eq!(renamed.same_content(b"{}", &fresh), Some(true));
        // The loaded file rewritten in place with the same length and its modification time
        // put back (`cp -p`, `rsync -t --inplace`): its bytes are gone, so the caller hashes.
        let mtime = std::fs::metadata(&loaded).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&loaded)
                .unwrap();
            f.write_all(&last).unwrap();
            f.set_modified(mtime).unwrap();
        }
        assert_eq!(same(b"{}", &loaded), None);
        assert_eq!(same(b"{}", &write("after.so", &big)), None);
    }
}

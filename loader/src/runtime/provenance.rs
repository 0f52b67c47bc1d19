//! What a plugin was loaded from, so that a reload can tell whether the version on disk
//! changed: its [`description`] (manifest and the files it names) and its library, compared
//! byte for byte with what was loaded, or by content hash when the loaded bytes cannot be
//! read back.

use std::{
    fs::File,
    io::{self, Read},
    path::Path,
};

use crate::{
    error::{IoError, LoadError},
    manifest::{read_manifest_file, Manifest, SchemaSource},
};

/// The bytes that describe a plugin besides its library, as a reload compares them: its
/// manifest file, the manifest its source resolved to when that is another file (a
/// `remote_git` build's, at `local_path`), and each schema file the manifest names (its
/// path, then its bytes). An edited schema file or outer manifest is then an upgrade, as an
/// edited library is. A file that cannot be read counts as a marker of its own (the load
/// that follows reports why).
pub(crate) fn description(manifest_path: &Path, manifest: &Manifest, local_path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    append_file(&mut bytes, manifest_path);
    append_rest(bytes, manifest_path, manifest, local_path)
}

/// [`description`], with the manifest's text as the caller read (and parsed) it: what is
/// recorded as loaded is then exactly what was parsed.
pub(crate) fn description_of(
    manifest_text: &str,
    manifest_path: &Path,
    manifest: &Manifest,
    local_path: &Path,
) -> Vec<u8> {
    let mut bytes = Vec::new();
    append_framed(&mut bytes, manifest_text.as_bytes());
    append_rest(bytes, manifest_path, manifest, local_path)
}

/// The parts after the manifest: the built manifest, then the schema files.
fn append_rest(
    mut bytes: Vec<u8>,
    manifest_path: &Path,
    manifest: &Manifest,
    local_path: &Path,
) -> Vec<u8> {
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let local = (local_path != manifest_path).then(|| (b"local".to_vec(), local_path.to_owned()));
    let schema_files = [&manifest.input_schema, &manifest.output_schema]
        .into_iter()
        .filter_map(|s| match s {
            Some(SchemaSource::File(rel)) => Some((
                rel.to_string_lossy().into_owned().into_bytes(),
                dir.join(rel),
            )),
            _ => None,
        });
    for (label, path) in local.into_iter().chain(schema_files) {
        append_framed(&mut bytes, &label);
        append_file(&mut bytes, &path);
    }
    bytes
}

/// One part of a description, framed so that no bytes can move between parts: a tag (1 read,
/// 0 unreadable), then the length and the bytes. Read as manifests are: no link followed,
/// nothing but a regular file, a bounded size (a schema "file" that is a link to
/// `/dev/zero`, or a FIFO, must not hang or fill the host).
fn append_file(bytes: &mut Vec<u8>, path: &Path) {
    match read_manifest_file(path) {
        Ok(content) => append_framed(bytes, content.as_bytes()),
        Err(_) => bytes.push(0),
    }
}

fn append_framed(bytes: &mut Vec<u8>, part: &[u8]) {
    bytes.push(1);
    bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
    bytes.extend_from_slice(part);
}

/// The content hash of what a plugin was loaded from.
pub(crate) type Digest = [u8; 32];

/// The BLAKE3 hash of a plugin as loaded: its [`description`], then its library's (`file`,
/// open at `library`, read from its start).
pub(crate) fn digest(description: &[u8], library: &Path, file: &File) -> Result<Digest, LoadError> {
    let mut reader = file;
    io::Seek::seek(&mut reader, io::SeekFrom::Start(0))
        .and_then(|_| hash(description, &mut reader))
        .map_err(|e| IoError::new(library, e).into())
}

fn hash(description: &[u8], library: &mut impl Read) -> io::Result<Digest> {
    // BLAKE3: a cryptographic hash (no crafted collision can pass a changed library off as
    // unchanged), and several times faster than SHA-256 on a debug library of megabytes.
    let mut ctx = blake3::Hasher::new();
    ctx.update(description);
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
/// load keeps the plugin's [`description`] and an open handle on the library file instead;
/// the hash is computed only when a reload cannot compare bytes. The handle still reads the
/// loaded file after a new one is renamed over its path; if the file itself was rewritten
/// since (its [`Stamp`] changed), the loaded bytes are gone.
#[derive(Debug)]
pub(crate) struct Origin {
    /// The plugin's [`description`]: its manifest and the files the manifest names.
    description: Vec<u8>,
    library: Option<(File, Stamp)>,
    digest: std::sync::OnceLock<Digest>,
}

impl Origin {
    /// Records the plugin's [`description`] and the file at `library` as it is now.
    #[cfg(feature = "isolation")]
    pub(crate) fn new(description: Vec<u8>, library: &Path) -> Self {
        match File::open(library) {
            Ok(file) => Origin::opened(description, file),
            Err(_) => Origin {
                description,
                library: None,
                digest: std::sync::OnceLock::new(),
            },
        }
    }

    /// Records the plugin's [`description`] and `library`, the library file the load opened.
    pub(crate) fn opened(description: Vec<u8>, library: File) -> Self {
        Origin {
            description,
            library: Stamp::of(&library).map(|s| (library, s)),
            digest: std::sync::OnceLock::new(),
        }
    }

    /// [`opened`](Self::opened), with the content hash the caller already computed (so a
    /// later reload can compare bytes rather than hash again).
    pub(crate) fn opened_hashed(description: Vec<u8>, library: File, digest: Digest) -> Self {
        let origin = Origin::opened(description, library);
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
        let d = hash(&self.description, &mut reader).ok()?;
        Some(*self.digest.get_or_init(|| d))
    }

    /// Whether `description` (see [`description`]) and the open `library` hold the same bytes
    /// as what was loaded, compared byte for byte: a rebuild usually differs within its first
    /// page (the ELF build ID is near the start), so this reads a fraction of what hashing
    /// the new library would. `None` when the loaded bytes cannot be read back (loaded from content known
    /// only by its hash, or a file rewritten since): then the caller hashes.
    pub(crate) fn same_content(&self, description: &[u8], library: &File) -> Option<bool> {
        let (loaded, stamp) = self.library.as_ref()?;
        if !stamp.still_holds(loaded) {
            return None;
        }
        if self.description != description {
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
    // The first piece is small: two builds usually differ in their first page (the ELF
    // build ID), and two reads of 4 KiB cost less than two of 64 KiB.
    const FIRST: usize = 4 * 1024;
    const PIECE: usize = 64 * 1024;
    let (mut x, mut y) = (vec![0u8; FIRST], vec![0u8; FIRST]);
    let mut at = 0u64;
    while at < len {
        if at > 0 && x.len() < PIECE {
            x.resize(PIECE, 0);
            y.resize(PIECE, 0);
        }
        let n = x.len().min(usize::try_from(len - at).unwrap_or(x.len()));
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let origin = Origin::opened(
            std::fs::read(&manifest).unwrap(),
            File::open(&loaded).unwrap(),
        );
        let same = |m: &[u8], lib: &Path| origin.same_content(m, &File::open(lib).unwrap());

        assert_eq!(same(b"{}", &write("same.so", &big)), Some(true));
        let mut last = big.clone();
        *last.last_mut().unwrap() ^= 1;
        assert_eq!(same(b"{}", &write("last.so", &last)), Some(false));
        assert_eq!(same(b"{}", &write("short.so", &big[1..])), Some(false));
        assert_eq!(same(b"{ }", &write("again.so", &big)), Some(false));
        // A new file renamed over the loaded one (as builds do): the loaded bytes stay
        // readable through the handle, and still compare.
        let renamed = Origin::opened(
            std::fs::read(&manifest).unwrap(),
            File::open(write("r.so", &big)).unwrap(),
        );
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

    #[test]
    fn a_description_holds_the_manifest_the_built_manifest_and_schema_files() {
        let tmp = tempfile::tempdir().unwrap();
        let manifest_path = tmp.path().join("plugin.json");
        let local_path = tmp.path().join("built.json");
        std::fs::write(&manifest_path, "outer").unwrap();
        std::fs::write(&local_path, "built").unwrap();
        std::fs::write(tmp.path().join("in.json"), "{}").unwrap();
        let json = r#"{"name": "x", "version": "1.0.0",
            "source": {"mode": "local_so", "path": "libx.so"}, "input_schema": "in.json"}"#;
        let mut manifest = Manifest::from_json(json, &manifest_path).unwrap();
        let of = |m: &Manifest, local: &Path| description(&manifest_path, m, local);
        let before = of(&manifest, &local_path);
        assert_eq!(before, of(&manifest, &local_path));
        assert_eq!(
            before,
            description_of("outer", &manifest_path, &manifest, &local_path),
            "the manifest's text as read, or read here: the same description"
        );
        assert_ne!(
            before,
            of(&manifest, &manifest_path),
            "the built manifest counts"
        );
        std::fs::write(&local_path, "built again").unwrap();
        assert_ne!(before, of(&manifest, &local_path));
        let before = of(&manifest, &local_path);
        std::fs::write(tmp.path().join("in.json"), "{ }").unwrap();
        assert_ne!(before, of(&manifest, &local_path), "a schema file counts");
        let before = of(&manifest, &local_path);
        std::fs::remove_file(tmp.path().join("in.json")).unwrap();
        assert_ne!(
            before,
            of(&manifest, &local_path),
            "a missing schema file counts"
        );
        // Neither a link to an endless file nor a FIFO is read (either would hang the host).
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/dev/zero", tmp.path().join("in.json")).unwrap();
            assert!(of(&manifest, &local_path).ends_with(&[0]));
            std::fs::remove_file(tmp.path().join("in.json")).unwrap();
            let made = std::process::Command::new("mkfifo")
                .arg(tmp.path().join("in.json"))
                .status()
                .unwrap();
            assert!(made.success());
            assert!(of(&manifest, &local_path).ends_with(&[0]));
        }
        manifest.input_schema = None;
        assert!(of(&manifest, &local_path).ends_with(b"built again"));
    }
}

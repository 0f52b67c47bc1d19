//! Unpacking a checked bundle: each file is streamed from the archive to disk and hashed
//! again, so a bundle that changed since it was read is refused, and memory stays small.

use std::{
    io::{self, Read, Write},
    path::Path,
};

use super::{
    archive::{copy_hashing, walk},
    Bundle, BundleError, CHECKSUMS_FILE, SIGNATURE_FILE,
};
use crate::{
    error::IoError,
    manifest::preflight::{preflight, Unmappable},
    plugins_dir::temp_name,
};

impl Bundle {
    /// The unload-safety preflight of the bundle's library
    /// ([`preflight`](crate::manifest::preflight::preflight)): the files are unpacked (and
    /// checked again) into a private temporary directory, the library is read, and the
    /// directory is removed. Nothing is loaded or run.
    pub fn unload_preflight(&self) -> Result<Unmappable, BundleError> {
        let dir = std::env::temp_dir().join(temp_name("plg-inspect"));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&dir)
            .map_err(IoError::at::<BundleError>(&dir))?;
        let result = self
            .write_files(&dir)
            .map(|()| preflight(&dir.join(self.library_name())).unwrap_or(Unmappable::Unknown));
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    /// Unpacks the files into `dir` (which must exist and be empty), creating each new and
    /// streaming it from the archive while hashing it again: if the bundle changed since it
    /// was read, the mismatch is refused (`ChecksumMismatch`).
    pub fn write_files(&self, dir: &Path) -> Result<(), BundleError> {
        let mut written = 0;
        walk(
            &self.source,
            &self.path,
            &self.limits,
            self.compressed_size,
            |name, reader, classify| {
                let Some(entry) = self.entries.iter().find(|e| e.name == name) else {
                    return if name == CHECKSUMS_FILE || name == SIGNATURE_FILE {
                        Ok(())
                    } else {
                        Err(BundleError::BadChecksums {
                            path: self.path.clone(),
                            problem: format!("`{name}` appeared since the bundle was read"),
                        })
                    };
                };
                let target = dir.join(name);
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(IoError::at::<BundleError>(&target))?;
                let mut out = io::BufWriter::new(file);
                let mut counted = CountingReader(reader, Ok(()));
                let copied = copy_hashing(&mut counted, &mut out);
                if let Err(e) = counted.1 {
                    return Err(classify(e));
                }
                let (_, found) = copied.map_err(IoError::at::<BundleError>(&target))?;
                out.flush().map_err(IoError::at::<BundleError>(&target))?;
                if found != entry.sha256 {
                    return Err(BundleError::ChecksumMismatch {
                        path: self.path.clone(),
                        entry: name.to_owned(),
                        expected: entry.sha256.clone(),
                        found,
                    });
                }
                written += 1;
                Ok(())
            },
        )?;
        if written != self.entries.len() {
            return Err(BundleError::BadChecksums {
                path: self.path.clone(),
                problem: "entries vanished since the bundle was read".into(),
            });
        }
        Ok(())
    }
}

/// Passes reads through, but keeps a read error aside so it is told apart from a write
/// error (a decompression problem is the bundle's fault; a write problem is the disk's).
struct CountingReader<'a>(&'a mut dyn Read, io::Result<()>);

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf) {
            Ok(n) => Ok(n),
            Err(e) => {
                let kind = e.kind();
                self.1 = Err(e);
                Err(io::Error::from(kind))
            }
        }
    }
}

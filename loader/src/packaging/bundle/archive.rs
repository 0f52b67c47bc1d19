//! The streaming layer under reading and unpacking: a bundle's bytes (a file or memory),
//! decompressed under the caps, walked entry by entry with every structural check (names,
//! types, duplicates, counts, sizes, trailing bytes) before an entry is seen.

use std::{
    collections::BTreeSet,
    fmt,
    io::{self, BufRead, Read, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{read::check_name, BundleError, Limits};
use crate::error::IoError;

/// Where a bundle's bytes are, so they can be streamed again to unpack.
#[derive(Debug, Clone)]
pub(super) enum Source {
    File(PathBuf),
    Bytes(Arc<[u8]>),
}

impl Source {
    fn open(&self) -> io::Result<Box<dyn BufRead + '_>> {
        Ok(match self {
            Source::File(p) => Box::new(io::BufReader::with_capacity(
                64 << 10,
                std::fs::File::open(p)?,
            )),
            Source::Bytes(b) => Box::new(&b[..]),
        })
    }
}

/// Counts decompressed bytes and fails past `limit`.
struct Capped<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::other(CapExceeded));
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct CapExceeded;

impl fmt::Display for CapExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("decompressed size limit exceeded")
    }
}

impl std::error::Error for CapExceeded {}

/// Copies `from` to `to`, returning the size and SHA-256 (lowercase hex) of what passed.
pub(super) fn copy_hashing(from: &mut dyn Read, to: &mut dyn Write) -> io::Result<(u64, String)> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 << 10];
    let mut size = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        ctx.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        size += n as u64;
    }
    Ok((size, hex::encode(ctx.finish())))
}

/// Turns a read error while decompressing into the bundle error it means.
pub(super) type Classify<'a> = &'a dyn Fn(io::Error) -> BundleError;

/// Streams the archive in `source` entry by entry, refusing hostile structure (names, types,
/// duplicates, counts, sizes, trailing bytes) before `visit` sees an entry.
pub(super) fn walk(
    source: &Source,
    path: &Path,
    limits: &Limits,
    compressed_size: u64,
    mut visit: impl FnMut(&str, &mut dyn Read, Classify<'_>) -> Result<(), BundleError>,
) -> Result<(), BundleError> {
    let by_ratio = compressed_size
        .saturating_mul(limits.max_ratio)
        .max(1 << 20);
    let (limit, why) = if by_ratio < limits.max_unpacked {
        (by_ratio, "its ratio to the compressed size")
    } else {
        (limits.max_unpacked, "the absolute cap")
    };
    let classify = |e: io::Error| {
        if e.get_ref().is_some_and(|inner| inner.is::<CapExceeded>()) {
            BundleError::TooLarge {
                path: path.to_owned(),
                limit,
                why,
            }
        } else {
            BundleError::Corrupt {
                path: path.to_owned(),
                message: e.to_string(),
            }
        }
    };
    let input = source.open().map_err(IoError::at::<BundleError>(path))?;
    let reader = Capped {
        inner: flate2::bufread::GzDecoder::new(input),
        read: 0,
        limit,
    };
    let mut archive = tar::Archive::new(reader);
    let mut seen = BTreeSet::new();
    for entry in archive.entries().map_err(classify)? {
        let mut entry = entry.map_err(classify)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        check_name(&name, path)?;
        let path = path.to_owned();
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                return Err(BundleError::Link { path, entry: name })
            }
            tar::EntryType::Directory => return Err(BundleError::NotFlat { path, entry: name }),
            other => {
                return Err(BundleError::SpecialFile {
                    path,
                    entry: name,
                    kind: format!("{other:?}"),
                })
            }
        }
        if seen.contains(&name) {
            return Err(BundleError::Duplicate { path, entry: name });
        }
        if seen.len() >= limits.max_entries {
            return Err(BundleError::TooLarge {
                path,
                limit: limits.max_entries as u64,
                why: "the entry count",
            });
        }
        visit(&name, &mut entry, &classify)?;
        seen.insert(name);
    }
    // Drain the rest of the stream, so a truncated or corrupt trailer is noticed too, and
    // refuse bytes after the gzip stream (they would be covered by no checksum).
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(classify)?;
    let mut input = rest.inner.into_inner();
    let trailing = input
        .fill_buf()
        .map_err(IoError::at::<BundleError>(path))?
        .len();
    if trailing > 0 {
        return Err(BundleError::Corrupt {
            path: path.to_owned(),
            message: "bytes follow the gzip stream".into(),
        });
    }
    Ok(())
}

//! Packing a `.plg`, deterministically: entries sorted by name, mode 0644, uid/gid 0,
//! mtime 0, empty owner names, and a gzip header with no name and mtime 0.

use std::{collections::BTreeMap, path::Path};

use flate2::{write::GzEncoder, Compression, GzBuilder};

use super::{
    checksums_text, signature, BundleError, SigningKey, CHECKSUMS_FILE, EXTENSION, SIGNATURE_FILE,
};
use crate::{
    error::IoError,
    manifest::{Manifest, MANIFEST_FILE},
};

/// A packed bundle.
#[derive(Debug, Clone)]
pub struct Packed {
    /// The manifest.
    pub manifest: Manifest,
    /// The `.plg` bytes.
    pub bytes: Vec<u8>,
}

impl Packed {
    /// `NAME-VERSION.plg`.
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}.{EXTENSION}",
            self.manifest.name, self.manifest.version
        )
    }
}

/// Packs the staged plugin directory `dir` (see [`library_of`](crate::origin::library_of)), signing it with `key` if
/// given.
pub fn pack_dir(dir: &Path, key: Option<&SigningKey>) -> Result<Packed, BundleError> {
    let (manifest, library) = crate::packaging::origin::library_of(dir)?;
    pack_library(&manifest, &library, key)
}

/// Packs `manifest` with the library at `library` (for example straight from cargo's output),
/// signing it with `key` if given. The packed manifest's `source.path` is the library's file
/// name.
pub fn pack_library(
    manifest: &Manifest,
    library: &Path,
    key: Option<&SigningKey>,
) -> Result<Packed, BundleError> {
    let lib_bytes = std::fs::read(library).map_err(IoError::at::<BundleError>(library))?;
    let lib_name = library
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| BundleError::NotPackable {
            path: library.to_owned(),
            problem: "has no file name".into(),
        })?;
    let manifest = manifest.with_local_library(&lib_name);
    let mut files = BTreeMap::new();
    files.insert(
        MANIFEST_FILE.to_owned(),
        (manifest.to_json() + "\n").into_bytes(),
    );
    files.insert(lib_name, lib_bytes);
    Ok(Packed {
        bytes: pack_files(files, key),
        manifest,
    })
}

/// Writes `files` (plus checksums and, with `key`, a signature) as a deterministic `.plg`.
pub(super) fn pack_files(
    mut files: BTreeMap<String, Vec<u8>>,
    key: Option<&SigningKey>,
) -> Vec<u8> {
    let checksums = checksums_text(&files);
    if let Some(key) = key {
        let text = signature::sign(checksums.as_bytes(), key);
        files.insert(SIGNATURE_FILE.to_owned(), text.into_bytes());
    }
    files.insert(CHECKSUMS_FILE.to_owned(), checksums.into_bytes());
    let gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    for (name, data) in &files {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, data.as_slice())
            .expect("writing to memory cannot fail");
    }
    let gz: GzEncoder<Vec<u8>> = tar.into_inner().expect("writing to memory cannot fail");
    gz.finish().expect("writing to memory cannot fail")
}

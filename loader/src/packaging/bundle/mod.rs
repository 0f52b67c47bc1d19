//! `.plg` bundles: the format (here), reading and checking ([`Bundle::read`]), packing
//! ([`pack_library`]) and signatures.
//!
//! # Format
//! A `.plg` file is a gzip-compressed tar archive, flat (no directories), holding:
//!
//! | entry | what |
//! |---|---|
//! | `plugin.json` | the manifest; `source.mode` is `local_so` and `source.path` names the library entry |
//! | the library | e.g. `libhello.so` |
//! | `CHECKSUMS.sha256` | one line per other entry: `<sha256 hex>  <name>`, sorted by name |
//! | `SIGNATURE.ed25519` (optional) | `plg-signature-v1`, the signer's public key and an ed25519 signature over `plg-bundle-v1\n` followed by the bytes of `CHECKSUMS.sha256` |
//!
//! A bundle is valid when every entry is a regular file with a plain name, no name repeats,
//! the checksums file lists exactly the other entries (signature aside) with matching hashes,
//! the manifest is valid and points at an entry of the bundle, and the unpacked library loads
//! as the plugin the manifest describes.
//!
//! Packing is deterministic: entries sorted by name, mode 0644, uid/gid 0, mtime 0, empty
//! user and group names, and a gzip header with no name and mtime 0. The same input gives the
//! same bytes.
//!
//! ```no_run
//! use plg_loader::bundle::{pack_dir, Bundle, Limits};
//!
//! let packed = pack_dir("plugins-dir/hello/1.2.0".as_ref(), None)?;
//! std::fs::write("hello-1.2.0.plg", &packed.bytes).unwrap();
//! let bundle = Bundle::read("hello-1.2.0.plg".as_ref(), &Limits::default())?;
//! println!("{} with {} entries", bundle.manifest().id(), bundle.entries().len());
//! # Ok::<(), plg_loader::bundle::BundleError>(())
//! ```

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

pub use ed25519_dalek::{SigningKey, VerifyingKey};

pub use crate::error::BundleError;
use crate::manifest::Manifest;

mod archive;
mod pack;
mod read;
mod signature;
mod unpack;

pub use pack::{pack_dir, pack_library, Packed};
pub use signature::BundleSignature;

/// The checksums entry.
pub const CHECKSUMS_FILE: &str = "CHECKSUMS.sha256";
/// The signature entry.
pub const SIGNATURE_FILE: &str = "SIGNATURE.ed25519";
/// The bundle file extension.
pub const EXTENSION: &str = "plg";

/// Caps on what reading a bundle may unpack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes the archive may decompress to, whatever its size (default 512 MiB).
    pub max_unpacked: u64,
    /// The most the archive may expand relative to its compressed size (default 200×;
    /// small bundles may always reach 1 MiB).
    pub max_ratio: u64,
    /// The most entries (default 16).
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_unpacked: 512 << 20,
            max_ratio: 200,
            max_entries: 16,
        }
    }
}

/// One file of a bundle, as checked (its contents stay in the bundle until unpacked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file name.
    pub name: String,
    /// The size, in bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// A checked bundle: entry names and types, sizes, checksums, manifest, and the signature's
/// validity (when it has one). Reading streams the archive and keeps only the small entries
/// plg parses (manifest, checksums, signature), so memory does not grow with the bundle; the
/// files are streamed again, and their hashes checked again, when unpacked
/// ([`write_files`](Self::write_files)). Loading the library is left to install.
#[derive(Debug, Clone)]
pub struct Bundle {
    path: PathBuf,
    source: archive::Source,
    manifest: Manifest,
    entries: Vec<Entry>,
    library: String,
    signature: Option<BundleSignature>,
    compressed_size: u64,
    /// The caps it was read under, applied again when it is unpacked.
    limits: Limits,
}

impl Bundle {
    /// Where the bundle was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The files, sorted by name (without the checksums and signature entries).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The library entry's name.
    pub fn library_name(&self) -> &str {
        &self.library
    }

    /// The signature, if the bundle is signed (already verified against the checksums).
    pub fn signature(&self) -> Option<&BundleSignature> {
        self.signature.as_ref()
    }

    /// The size of the compressed bundle.
    pub fn compressed_size(&self) -> u64 {
        self.compressed_size
    }
}

pub(super) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
}

pub(super) fn checksums_text(files: &BTreeMap<String, Vec<u8>>) -> String {
    files
        .iter()
        .map(|(name, data)| format!("{}  {name}\n", sha256_hex(data)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{pack::pack_files, read::check_name, *};
    use crate::manifest::MANIFEST_FILE;
    use std::collections::BTreeMap;

    fn sample() -> BTreeMap<String, Vec<u8>> {
        let manifest =
            r#"{"name":"x","version":"1.0.0","source":{"mode":"local_so","path":"libx.so"}}"#;
        BTreeMap::from([
            (MANIFEST_FILE.to_owned(), manifest.as_bytes().to_vec()),
            ("libx.so".to_owned(), b"\x7fELF pretend".to_vec()),
        ])
    }

    #[test]
    fn packing_is_deterministic_and_reads_back() {
        let a = pack_files(sample(), None);
        let b = pack_files(sample(), None);
        assert_eq!(a, b);
        let bundle = Bundle::from_bytes(&a, Path::new("x.plg"), &Limits::default()).unwrap();
        assert_eq!(bundle.library_name(), "libx.so");
        assert_eq!(bundle.entries().len(), 2);
        assert!(bundle.signature().is_none());
    }

    #[test]
    fn a_signature_verifies_and_names_its_key() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let bytes = pack_files(sample(), Some(&key));
        let bundle = Bundle::from_bytes(&bytes, Path::new("x.plg"), &Limits::default()).unwrap();
        assert_eq!(bundle.signature().unwrap().public_key, key.verifying_key());
    }

    #[test]
    fn bytes_after_the_gzip_stream_are_refused() {
        let mut bytes = pack_files(sample(), None);
        bytes.extend_from_slice(b"junk");
        assert!(matches!(
            Bundle::from_bytes(&bytes, Path::new("x.plg"), &Limits::default()),
            Err(BundleError::Corrupt { .. })
        ));
    }

    #[test]
    fn names_are_checked() {
        let p = Path::new("b.plg");
        assert!(matches!(
            check_name("../x", p),
            Err(BundleError::PathTraversal { .. })
        ));
        assert!(matches!(
            check_name("a/../../x", p),
            Err(BundleError::PathTraversal { .. })
        ));
        assert!(matches!(
            check_name("/etc/x", p),
            Err(BundleError::AbsolutePath { .. })
        ));
        assert!(matches!(
            check_name("C:x", p),
            Err(BundleError::AbsolutePath { .. })
        ));
        assert!(matches!(
            check_name("a/b", p),
            Err(BundleError::NotFlat { .. })
        ));
        assert!(check_name("libx.so", p).is_ok());
    }
}

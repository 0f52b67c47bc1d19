//! How deep an install got: the layer that refused it, in the order install checks them.
//! Used to show that fuzz inputs reach the inner layers (`examples/reach.rs`, the corpus
//! test), not only the gzip and tar readers.

use plg_loader::{
    bundle::BundleError,
    install::{InstallError, Installed},
};

/// The layers of `plg install`, outermost first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    /// gzip and tar: a corrupt stream, a size cap.
    Archive,
    /// Entry names and types: `..`, absolute, nested, links, devices, duplicates.
    Entries,
    /// The checksums file: missing, malformed, not matching.
    Checksums,
    /// The manifest: missing, invalid.
    Manifest,
    /// `source.path` names no entry of the bundle.
    SourcePath,
    /// The signature entry: malformed or not matching.
    Signature,
    /// The plugins directory's signature policy and keyring.
    Policy,
    /// Placing: already installed, a linked directory, I/O.
    Place,
    /// The unpacked library does not load as the manifest says.
    LoadCheck,
    /// Installed.
    Installed,
}

impl Layer {
    /// Every layer, outermost first.
    pub const ALL: [Layer; 10] = [
        Layer::Archive,
        Layer::Entries,
        Layer::Checksums,
        Layer::Manifest,
        Layer::SourcePath,
        Layer::Signature,
        Layer::Policy,
        Layer::Place,
        Layer::LoadCheck,
        Layer::Installed,
    ];

    /// The layer that ended an install.
    pub fn of(result: &Result<Installed, InstallError>) -> Layer {
        let e = match result {
            Ok(_) => return Layer::Installed,
            Err(e) => e,
        };
        match e {
            InstallError::Bundle(b) => match b {
                BundleError::Corrupt { .. } | BundleError::TooLarge { .. } => Layer::Archive,
                BundleError::PathTraversal { .. }
                | BundleError::AbsolutePath { .. }
                | BundleError::Link { .. }
                | BundleError::SpecialFile { .. }
                | BundleError::NotFlat { .. }
                | BundleError::BadName { .. }
                | BundleError::Duplicate { .. } => Layer::Entries,
                BundleError::Missing { entry, .. } if entry == "CHECKSUMS.sha256" => {
                    Layer::Checksums
                }
                BundleError::BadChecksums { .. } | BundleError::ChecksumMismatch { .. } => {
                    Layer::Checksums
                }
                BundleError::Missing { .. } | BundleError::Manifest(_) => Layer::Manifest,
                BundleError::SourceOutsideBundle { .. } => Layer::SourcePath,
                BundleError::BadSignature { .. } => Layer::Signature,
                _ => Layer::Place,
            },
            InstallError::Unsigned { .. } | InstallError::UnknownKey { .. } => Layer::Policy,
            InstallError::Load(_) => Layer::LoadCheck,
            _ => Layer::Place,
        }
    }
}

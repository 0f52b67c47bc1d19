//! What a fuzz case is: a bundle described by its structure, not by its compressed bytes, so
//! that mutations reach checksum parsing, manifest validation, the `source.path` check,
//! signature parsing, unpacking and placing, instead of dying at the gzip CRC.

use arbitrary::Arbitrary;

/// One install of one bundle into a scratch plugins directory.
#[derive(Arbitrary, Debug, Clone)]
pub struct Case {
    /// The `plugin.json` entry.
    pub manifest: ManifestCase,
    /// The library entry.
    pub library: LibraryCase,
    /// More entries, hostile or not (at most [`MAX_EXTRA`] are used).
    pub extra: Vec<EntryCase>,
    /// The `CHECKSUMS.sha256` entry.
    pub checksums: ChecksumsCase,
    /// The `SIGNATURE.ed25519` entry.
    pub signature: SignatureCase,
    /// The fixed signing key is in the plugins directory's keyring.
    pub trust_signer: bool,
    /// `.plg/config.json` says `require_signature`.
    pub require_signature: bool,
    /// A copy of the same name and version is installed before.
    pub installed_before: bool,
    /// Install with `force`.
    pub force: bool,
    /// A crashed install's leftovers (`.staging-*`, `.replaced-*` of a dead process) lie in
    /// the plugin's directory.
    pub debris: bool,
    /// How the tar stream is wrapped.
    pub wrapping: Wrapping,
    /// Rotates the entry order by this much.
    pub rotate: u8,
}

impl Case {
    /// A bundle as `plg bundle` makes it, of the real plugin, unsigned, into an empty plugins
    /// directory: the starting point for hand-written cases.
    pub fn well_formed() -> Self {
        Case {
            manifest: ManifestCase::Matching,
            library: LibraryCase::Real,
            extra: vec![],
            checksums: ChecksumsCase::Correct,
            signature: SignatureCase::None,
            trust_signer: false,
            require_signature: false,
            installed_before: false,
            force: false,
            debris: false,
            wrapping: Wrapping::Gzip,
            rotate: 0,
        }
    }
}

/// The most extra entries a case adds (the bundle format allows 16 entries in all).
pub const MAX_EXTRA: usize = 6;

/// The manifest entry.
#[derive(Arbitrary, Debug, Clone)]
pub enum ManifestCase {
    /// A manifest that matches the library (the real plugin's name and version when there is
    /// one).
    Matching,
    /// Chosen fields.
    Fields {
        /// `name`.
        name: String,
        /// `version`.
        version: String,
        /// `source.path`.
        path: PathCase,
        /// `source.mode` is `remote_git` with this URL instead of `local_so`.
        remote_git: Option<String>,
    },
    /// Any bytes.
    Raw(Vec<u8>),
    /// No manifest entry.
    Missing,
}

/// A manifest's `source.path`.
#[derive(Arbitrary, Debug, Clone)]
pub enum PathCase {
    /// The library entry's name.
    Library,
    /// The library's name without its extension (as a crate's manifest says it).
    Stem,
    /// `../` and the library's name.
    Parent,
    /// An absolute path outside the plugins directory.
    Absolute,
    /// Any text.
    Text(String),
}

/// The library entry.
#[derive(Arbitrary, Debug, Clone)]
pub enum LibraryCase {
    /// The real plugin library, when the harness has one (else these bytes: `b"\x7fELF"`).
    Real,
    /// Any bytes, as `libfz.so`.
    Bytes(Vec<u8>),
    /// No library entry.
    Missing,
}

/// An extra entry.
#[derive(Arbitrary, Debug, Clone)]
pub struct EntryCase {
    /// Its name.
    pub name: NameCase,
    /// Its type.
    pub kind: KindCase,
    /// Its contents (for a file).
    pub data: Vec<u8>,
    /// The name goes in a pax `path` record rather than the header.
    pub pax: bool,
}

/// An entry's name.
#[derive(Arbitrary, Debug, Clone)]
pub enum NameCase {
    /// A plain name (made plain if it is not).
    Plain(String),
    /// `..`.
    Parent,
    /// `../NAME`.
    ParentOf(String),
    /// The absolute path of a file outside the plugins directory.
    Absolute,
    /// `A/B`.
    Nested(String, String),
    /// A name longer than the 100 bytes a tar header holds (a GNU long name).
    Long(u8),
    /// The empty name.
    Empty,
    /// `./plugin.json`, `plugin.json` again, the library's name again.
    Duplicate(DuplicateOf),
    /// Any bytes.
    Raw(Vec<u8>),
}

/// Which name a duplicate repeats.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum DuplicateOf {
    /// `plugin.json`.
    Manifest,
    /// `./plugin.json`.
    DotManifest,
    /// The library.
    Library,
    /// `CHECKSUMS.sha256`.
    Checksums,
    /// `SIGNATURE.ed25519`.
    Signature,
}

/// An entry's type.
#[derive(Arbitrary, Debug, Clone)]
pub enum KindCase {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink(LinkTarget),
    /// A hard link.
    Hardlink(LinkTarget),
    /// A named pipe.
    Fifo,
    /// A character device.
    CharDevice,
}

/// Where a link points.
#[derive(Arbitrary, Debug, Clone)]
pub enum LinkTarget {
    /// A file outside the plugins directory, by absolute path.
    Outside,
    /// `../../..`.
    Parent,
    /// `plugin.json`.
    Manifest,
    /// Any text.
    Text(String),
}

/// The checksums entry.
#[derive(Arbitrary, Debug, Clone)]
pub enum ChecksumsCase {
    /// What `plg bundle` writes.
    Correct,
    /// No checksums entry.
    Missing,
    /// One hash with one digit changed.
    WrongHash(u8),
    /// One line left out.
    DropLine(u8),
    /// A line for a name that is not in the bundle.
    ExtraLine(String),
    /// Lines in reverse order.
    Reversed,
    /// `\r\n` line ends.
    CrLf,
    /// One space between hash and name.
    OneSpace,
    /// Any bytes.
    Raw(Vec<u8>),
}

/// The signature entry.
#[derive(Arbitrary, Debug, Clone)]
pub enum SignatureCase {
    /// None.
    None,
    /// A good signature by the fixed key.
    Good,
    /// A good signature by another key.
    OtherKey,
    /// A good signature with one bit flipped.
    FlipBit(u16),
    /// A good signature cut short.
    Truncated(u8),
    /// Any bytes.
    Raw(Vec<u8>),
}

/// How the tar stream is wrapped.
#[derive(Arbitrary, Debug, Clone)]
pub enum Wrapping {
    /// gzip, as `plg bundle` writes.
    Gzip,
    /// gzip, cut short by this many bytes.
    Truncated(u16),
    /// gzip followed by these bytes.
    Trailing(Vec<u8>),
    /// No compression.
    Plain,
    /// gzip with the tar stream's end-of-archive blocks left out.
    NoEnd,
}

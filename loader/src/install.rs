//! Installing and uninstalling plugins, and the trust configuration of a plugins directory.
//!
//! Installing verifies a bundle, unpacks it into a temporary directory inside the plugins
//! directory (the same file system), checks there that the library loads as the manifest
//! says, and renames the directory into `PLUGINS_DIR/NAME/VERSION`. A crash at any point
//! leaves the old state or the new one: the temporary directory's name starts with `.`, so
//! discovery ignores a leftover one. Verifying loads the library, which runs its
//! initializers: install only bundles you mean to run.
//!
//! Configuration lives in `PLUGINS_DIR/.plg/`: `config.json` (`{"require_signature": true}`)
//! and `keyring.json` (the trusted public keys).
//!
//! ```no_run
//! use plg_loader::install::{install_file, InstallOptions};
//!
//! let installed = install_file("hello-1.2.0.plg".as_ref(), "plugins".as_ref(), &InstallOptions::default())?;
//! println!("installed {} in {}", installed.manifest.id(), installed.dir.display());
//! # Ok::<(), plg_loader::install::InstallError>(())
//! ```

use std::{
    io,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use ed25519_dalek::{SigningKey, VerifyingKey};
use semver::Version;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{
    bundle::{Bundle, BundleError, Limits},
    error::LoadError,
    manager::open_checked,
    manifest::{Manifest, Source, MANIFEST_FILE},
};

/// The configuration directory inside a plugins directory.
pub const CONFIG_DIR: &str = ".plg";

/// Why an install, uninstall or key operation failed. Nothing was changed.
#[derive(Debug, Error)]
pub enum InstallError {
    /// The bundle is invalid or hostile.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The unpacked library does not load as the manifest says.
    #[error("the bundle's library does not load")]
    Load(#[from] LoadError),
    /// That name and version is installed already.
    #[error("{plugin} is already installed in {}; pass --force to replace it", dir.display())]
    AlreadyInstalled {
        /// `name@version`.
        plugin: String,
        /// Where.
        dir: PathBuf,
    },
    /// A signature is required and the bundle has none.
    #[error("{} is not signed, and this plugins directory requires signatures; sign it with `plg pack --sign KEY`", bundle.display())]
    Unsigned {
        /// The bundle.
        bundle: PathBuf,
    },
    /// The bundle is signed by a key the keyring does not trust.
    #[error("{} is signed by key {key}, which is not in the keyring {}; add it with `plg trust` if you trust its owner", bundle.display(), keyring.display())]
    UnknownKey {
        /// The bundle.
        bundle: PathBuf,
        /// The signer's public key, hex.
        key: String,
        /// The keyring consulted.
        keyring: PathBuf,
    },
    /// No such plugin is installed.
    #[error("{name}{} is not installed in {}", version.as_ref().map(|v| format!("@{v}")).unwrap_or_default(), dir.display())]
    NotInstalled {
        /// The name.
        name: String,
        /// The version, if one was given.
        version: Option<Version>,
        /// The plugins directory.
        dir: PathBuf,
    },
    /// A configuration, key or keyring file is invalid.
    #[error("{}: {problem}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> InstallError + '_ {
    move |source| InstallError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `PLUGINS_DIR/.plg/config.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Refuse unsigned bundles and bundles signed by unknown keys.
    #[serde(default)]
    pub require_signature: bool,
    /// URL schemes `remote_git` sources may use (default `https` and `ssh`; add `file` for
    /// local repositories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_schemes: Option<Vec<String>>,
}

impl Config {
    /// The config file of `plugins_dir`.
    pub fn path(plugins_dir: &Path) -> PathBuf {
        plugins_dir.join(CONFIG_DIR).join("config.json")
    }

    /// Reads the config; a missing file is the default.
    pub fn load(plugins_dir: &Path) -> Result<Self, InstallError> {
        read_json_or_default(&Self::path(plugins_dir))
    }
}

/// One trusted key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedKey {
    /// A name for people.
    pub name: String,
    /// The ed25519 public key, hex.
    pub public_key: String,
}

/// `PLUGINS_DIR/.plg/keyring.json`: the public keys whose signatures are trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keyring {
    /// The keys.
    #[serde(default)]
    pub keys: Vec<TrustedKey>,
}

impl Keyring {
    /// The keyring file of `plugins_dir`.
    pub fn path(plugins_dir: &Path) -> PathBuf {
        plugins_dir.join(CONFIG_DIR).join("keyring.json")
    }

    /// Reads the keyring; a missing file is empty.
    pub fn load(plugins_dir: &Path) -> Result<Self, InstallError> {
        let path = Self::path(plugins_dir);
        let ring: Keyring = read_json_or_default(&path)?;
        for k in &ring.keys {
            parse_public_key(&k.public_key).map_err(|problem| InstallError::Config {
                path: path.clone(),
                problem: format!("key `{}`: {problem}", k.name),
            })?;
        }
        Ok(ring)
    }

    /// The trusted key's name, if `key` is trusted.
    pub fn trusts(&self, key: &VerifyingKey) -> Option<&str> {
        let hex = hex::encode(key.as_bytes());
        self.keys
            .iter()
            .find(|k| k.public_key.eq_ignore_ascii_case(&hex))
            .map(|k| k.name.as_str())
    }

    /// Adds `key` under `name` (replacing a key of the same name) and saves the keyring.
    pub fn add(plugins_dir: &Path, name: &str, key: &VerifyingKey) -> Result<(), InstallError> {
        let mut ring = Self::load(plugins_dir)?;
        ring.keys.retain(|k| k.name != name);
        ring.keys.push(TrustedKey {
            name: name.to_owned(),
            public_key: hex::encode(key.as_bytes()),
        });
        write_atomically(
            &Self::path(plugins_dir),
            serde_json::to_string_pretty(&ring)
                .expect("serializes")
                .as_bytes(),
        )
    }
}

fn read_json_or_default<T: Default + for<'de> Deserialize<'de>>(
    path: &Path,
) -> Result<T, InstallError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| InstallError::Config {
            path: path.to_owned(),
            problem: e.to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(T::default()),
        Err(source) => Err(InstallError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn write_atomically(path: &Path, data: &[u8]) -> Result<(), InstallError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(format!(".tmp-{}", unique()));
    std::fs::write(&tmp, data).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

// --- keys -------------------------------------------------------------------------------------

const SECRET_HEADER: &str = "plg-secret-key-v1";
const PUBLIC_HEADER: &str = "plg-public-key-v1";

/// Creates a new ed25519 key pair.
pub fn generate_key() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

/// Writes `PREFIX.key` (secret, mode 0600) and `PREFIX.pub`; refuses to overwrite either.
pub fn write_key_pair(key: &SigningKey, prefix: &Path) -> Result<(PathBuf, PathBuf), InstallError> {
    let secret = prefix.with_extension("key");
    let public = prefix.with_extension("pub");
    for p in [&secret, &public] {
        if p.exists() {
            return Err(InstallError::Config {
                path: p.clone(),
                problem: "already exists; choose another name".into(),
            });
        }
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&secret).map_err(io_err(&secret))?;
    io::Write::write_all(
        &mut f,
        format!("{SECRET_HEADER}\n{}\n", hex::encode(key.to_bytes())).as_bytes(),
    )
    .map_err(io_err(&secret))?;
    std::fs::write(
        &public,
        format!(
            "{PUBLIC_HEADER}\n{}\n",
            hex::encode(key.verifying_key().as_bytes())
        ),
    )
    .map_err(io_err(&public))?;
    Ok((secret, public))
}

fn read_key_file(path: &Path, header: &str) -> Result<[u8; 32], InstallError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let bad = |problem: &str| InstallError::Config {
        path: path.to_owned(),
        problem: problem.to_owned(),
    };
    let mut lines = text.lines();
    if lines.next() != Some(header) {
        return Err(bad(&format!("does not start with `{header}`")));
    }
    let bytes =
        hex::decode(lines.next().unwrap_or("").trim()).map_err(|_| bad("the key is not hex"))?;
    bytes.try_into().map_err(|_| bad("the key is not 32 bytes"))
}

/// Reads a secret key written by [`write_key_pair`].
pub fn read_signing_key(path: &Path) -> Result<SigningKey, InstallError> {
    read_key_file(path, SECRET_HEADER).map(|b| SigningKey::from_bytes(&b))
}

/// Reads a public key written by [`write_key_pair`].
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, InstallError> {
    let bytes = read_key_file(path, PUBLIC_HEADER)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| InstallError::Config {
        path: path.to_owned(),
        problem: "not a valid ed25519 public key".into(),
    })
}

fn parse_public_key(hex_key: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = hex::decode(hex_key)
        .map_err(|_| "not hex".to_owned())?
        .try_into()
        .map_err(|_| "not 32 bytes".to_owned())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "not a valid ed25519 key".to_owned())
}

// --- install ----------------------------------------------------------------------------------

/// How to install.
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// Replace an installed plugin of the same name and version.
    pub force: bool,
    /// Require a trusted signature. `false` still applies the directory's `require_signature`
    /// configuration.
    pub require_signature: bool,
    /// Caps on unpacking.
    pub limits: Limits,
}

/// What was installed.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The manifest.
    pub manifest: Manifest,
    /// `PLUGINS_DIR/NAME/VERSION`.
    pub dir: PathBuf,
    /// The trusted key's name, if the bundle was signed by one.
    pub signed_by: Option<String>,
    /// `true` if an installed copy was replaced (`force`).
    pub replaced: bool,
}

/// Installs a built library with its manifest (cargo's output, a staged directory, a git
/// build) without packing it: the library is copied and the manifest written into the
/// temporary directory, checked and renamed into place like a bundle. Such a library carries
/// no signature, so this refuses when signatures are required.
pub fn install_library(
    manifest: &Manifest,
    library: &Path,
    plugins_dir: &Path,
    opts: &InstallOptions,
) -> Result<Installed, InstallError> {
    if opts.require_signature || Config::load(plugins_dir)?.require_signature {
        return Err(InstallError::Unsigned {
            bundle: library.to_owned(),
        });
    }
    let (manifest, dir, replaced) = place_library(manifest, library, plugins_dir, opts.force)?;
    Ok(Installed {
        manifest,
        dir,
        signed_by: None,
        replaced,
    })
}

/// Places `library` with `manifest` (its `source.path` rewritten to the library's file name)
/// at `PLUGINS_DIR/NAME/VERSION`, checking that it loads. Shared by `install_library` and
/// `plg build`'s staging.
pub(crate) fn place_library(
    manifest: &Manifest,
    library: &Path,
    plugins_dir: &Path,
    force: bool,
) -> Result<(Manifest, PathBuf, bool), InstallError> {
    let file_name = library
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("plugin"));
    let mut staged = manifest.clone();
    staged.source = Source::LocalSo {
        path: file_name.clone(),
    };
    let (dir, replaced) = place(plugins_dir, &staged, force, |tmp| {
        let lib = tmp.join(&file_name);
        std::fs::copy(library, &lib).map_err(io_err(&lib))?;
        let manifest_path = tmp.join(MANIFEST_FILE);
        std::fs::write(&manifest_path, staged.to_json() + "\n").map_err(io_err(&manifest_path))?;
        drop(open_checked(&staged, &manifest_path)?);
        Ok(())
    })?;
    Ok((staged, dir, replaced))
}

/// Reads the bundle at `path` and installs it into `plugins_dir`.
pub fn install_file(
    path: &Path,
    plugins_dir: &Path,
    opts: &InstallOptions,
) -> Result<Installed, InstallError> {
    let bundle = Bundle::read(path, &opts.limits)?;
    install_bundle(&bundle, plugins_dir, opts)
}

/// Installs a bundle that has been read: checks its signature against the directory's
/// keyring and configuration, then places it atomically.
pub fn install_bundle(
    bundle: &Bundle,
    plugins_dir: &Path,
    opts: &InstallOptions,
) -> Result<Installed, InstallError> {
    let config = Config::load(plugins_dir)?;
    let keyring = Keyring::load(plugins_dir)?;
    let require = opts.require_signature || config.require_signature;
    let signed_by = match bundle.signature() {
        Some(sig) => match keyring.trusts(&sig.public_key) {
            Some(name) => Some(name.to_owned()),
            None if require => {
                return Err(InstallError::UnknownKey {
                    bundle: bundle.path().to_owned(),
                    key: sig.key_hex(),
                    keyring: Keyring::path(plugins_dir),
                })
            }
            None => None,
        },
        None if require => {
            return Err(InstallError::Unsigned {
                bundle: bundle.path().to_owned(),
            })
        }
        None => None,
    };
    let manifest = bundle.manifest().clone();
    let (dir, replaced) = place(plugins_dir, &manifest, opts.force, |tmp| {
        bundle.write_files(tmp)?;
        drop(open_checked(&manifest, &tmp.join(MANIFEST_FILE))?);
        Ok(())
    })?;
    Ok(Installed {
        manifest,
        dir,
        signed_by,
        replaced,
    })
}

/// A name suffix unique to this process and moment, for temporary directories.
pub(crate) fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

/// Repairs what a crash during a `--force` swap can leave: the old copy renamed to
/// `.replaced-*` with nothing at `dest`. It is renamed back; leftovers beside an installed
/// copy are deleted.
fn recover(parent: &Path, dest: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let version = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(".replaced-") else {
            continue;
        };
        if !rest.starts_with(&format!("{version}-")) {
            continue;
        }
        if !dest.exists() && e.path().join(MANIFEST_FILE).is_file() {
            let _ = std::fs::rename(e.path(), dest);
        } else {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Assembles `PLUGINS_DIR/NAME/VERSION` in a temporary sibling directory with `fill`, then
/// renames it into place (swapping out an existing one when `force`). On any error the
/// temporary directory is removed and the previous state is untouched.
pub(crate) fn place(
    plugins_dir: &Path,
    manifest: &Manifest,
    force: bool,
    fill: impl FnOnce(&Path) -> Result<(), InstallError>,
) -> Result<(PathBuf, bool), InstallError> {
    let parent = plugins_dir.join(&manifest.name);
    let dest = parent.join(manifest.version.to_string());
    recover(&parent, &dest);
    if dest.exists() && !force {
        return Err(InstallError::AlreadyInstalled {
            plugin: manifest.id(),
            dir: dest,
        });
    }
    std::fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    let tmp = parent.join(format!(".staging-{}", unique()));
    let result = (|| {
        std::fs::create_dir(&tmp).map_err(io_err(&tmp))?;
        fill(&tmp)?;
        if dest.exists() {
            if !force {
                return Err(InstallError::AlreadyInstalled {
                    plugin: manifest.id(),
                    dir: dest.clone(),
                });
            }
            let old = parent.join(format!(".replaced-{}-{}", manifest.version, unique()));
            std::fs::rename(&dest, &old).map_err(io_err(&dest))?;
            if let Err(source) = std::fs::rename(&tmp, &dest) {
                // Put the old one back; the new one is discarded below.
                let _ = std::fs::rename(&old, &dest);
                return Err(InstallError::Io {
                    path: dest.clone(),
                    source,
                });
            }
            let _ = std::fs::remove_dir_all(&old);
            Ok((dest.clone(), true))
        } else {
            std::fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
            Ok((dest.clone(), false))
        }
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        if std::fs::read_dir(&parent).is_ok_and(|mut d| d.next().is_none()) {
            let _ = std::fs::remove_dir(&parent);
        }
    }
    result
}

/// Removes `name` (one version, or all) from `plugins_dir`. Each version directory is first
/// renamed out of sight, then deleted, so a crash never leaves half a plugin discoverable.
pub fn uninstall(
    plugins_dir: &Path,
    name: &str,
    version: Option<&Version>,
) -> Result<Vec<PathBuf>, InstallError> {
    crate::manifest::validate_name(name).map_err(|_| InstallError::NotInstalled {
        name: name.to_owned(),
        version: version.cloned(),
        dir: plugins_dir.to_owned(),
    })?;
    let parent = plugins_dir.join(name);
    let targets: Vec<PathBuf> = match version {
        Some(v) => {
            recover(&parent, &parent.join(v.to_string()));
            vec![parent.join(v.to_string())]
        }
        // Only version directories: never an install in progress (`.staging-*`) or a copy
        // being swapped (`.replaced-*`).
        None => std::fs::read_dir(&parent)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| Version::parse(&e.file_name().to_string_lossy()).is_ok())
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default(),
    };
    let targets: Vec<PathBuf> = targets
        .into_iter()
        .filter(|p| p.join(MANIFEST_FILE).is_file())
        .collect();
    if targets.is_empty() {
        return Err(InstallError::NotInstalled {
            name: name.to_owned(),
            version: version.cloned(),
            dir: plugins_dir.to_owned(),
        });
    }
    for t in &targets {
        let trash = parent.join(format!(".removing-{}", unique()));
        std::fs::rename(t, &trash).map_err(io_err(t))?;
        std::fs::remove_dir_all(&trash).map_err(io_err(&trash))?;
    }
    if std::fs::read_dir(&parent).is_ok_and(|mut d| d.next().is_none()) {
        let _ = std::fs::remove_dir(&parent);
    }
    Ok(targets)
}

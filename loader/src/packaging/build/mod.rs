//! Build a plugin crate with cargo and stage it as a loadable plugin directory.
//!
//! ```no_run
//! use plg_loader::build::{build_crate, stage, BuildOptions};
//!
//! let built = build_crate("plugins/hello".as_ref(), &BuildOptions::default())?;
//! let dir = stage(&built, &"/tmp/plugins".into())?;
//! println!("staged {} in {}", built.manifest.id(), dir.display());
//! # Ok::<(), plg_loader::build::BuildError>(())
//! ```

use std::{
    io::BufReader,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use cargo_metadata::Message;

mod identity;
mod shared;

pub use crate::error::BuildError;
use crate::{
    error::InstallError,
    error::IoError,
    manifest::{Manifest, MANIFEST_FILE},
    packaging::{
        bundle::{pack_library, Bundle, Limits, SigningKey},
        install::{install_bundle, place_library, Admission, InstallOptions},
    },
    plugins_dir::PluginsDir,
};

/// How to run cargo.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Build with `--release` (the default).
    pub release: bool,
    /// The cargo program: `$CARGO` if set, else `cargo`.
    pub cargo: String,
    /// Pass `--locked` (use the crate's Cargo.lock as it is).
    pub locked: bool,
    /// Build into this target directory instead of cargo's default (the crate's `target/`,
    /// or `$CARGO_TARGET_DIR`). The default is [`shared_target_dir`].
    pub target_dir: Option<PathBuf>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            release: true,
            cargo: std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
            locked: false,
            target_dir: shared_target_dir(),
        }
    }
}

/// The environment variable that sets the target directory plugin builds share.
pub const TARGET_DIR_ENV: &str = "PLG_TARGET_DIR";

/// The target directory plugin builds share, so that abi_stable and the rest compile once
/// per user rather than once per plugin: `$PLG_TARGET_DIR`; else `None` when
/// `$CARGO_TARGET_DIR` is set (cargo uses that itself); else `plg/target` in the per-user
/// cache directory (`~/.cache/plg/target` on Linux); else `None` (the crate's own `target/`).
///
/// Git builds do not use it: each commit builds in its own directory in the git cache, so
/// a repository's build scripts cannot reach other builds' output.
pub fn shared_target_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(TARGET_DIR_ENV).filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if std::env::var_os("CARGO_TARGET_DIR").is_some_and(|d| !d.is_empty()) {
        return None;
    }
    dirs::cache_dir().map(|d| d.join("plg").join("target"))
}

/// A built plugin: its manifest and the library cargo produced.
#[derive(Debug, Clone)]
pub struct Built {
    /// The crate's manifest.
    pub manifest: Manifest,
    /// The cdylib, as cargo reported it.
    pub library: PathBuf,
}

/// Builds the plugin crate in `dir` and finds its cdylib from cargo's JSON messages.
/// cargo's human-readable output goes to this process's stderr.
///
/// The crate's `plugin.json` may leave out `name` and `version`: they are taken from
/// Cargo.toml, which is what the library declares. If it has them and they differ from
/// Cargo.toml's, that is [`BuildError::Disagrees`], before anything is built.
pub fn build_crate(dir: &Path, opts: &BuildOptions) -> Result<Built, BuildError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    if !manifest_path.is_file() {
        return Err(BuildError::NoManifest {
            dir: dir.to_owned(),
        });
    }
    let cargo_toml = dir.join("Cargo.toml");
    if !cargo_toml.is_file() {
        Manifest::from_path(&manifest_path)?; // a broken manifest is the first thing to fix
        return Err(BuildError::NoCargoToml {
            dir: dir.to_owned(),
        });
    }
    let cargo_toml = cargo_toml
        .canonicalize()
        .map_err(IoError::at::<BuildError>(&cargo_toml))?;
    let manifest = identity::crate_manifest(&manifest_path, &cargo_toml, opts)?;
    let mut cmd = Command::new(&opts.cargo);
    cmd.arg("build")
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(&cargo_toml);
    if opts.release {
        cmd.arg("--release");
    }
    if opts.locked {
        cmd.arg("--locked");
    }
    if let Some(t) = &opts.target_dir {
        shared::claim(t, &manifest.name, &cargo_toml, opts)?;
        cmd.env("CARGO_TARGET_DIR", t);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| BuildError::CargoSpawn {
            cargo: opts.cargo.clone(),
            source,
        })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut libs = Vec::new();
    for message in Message::parse_stream(BufReader::new(stdout)).flatten() {
        if let Message::CompilerArtifact(a) = message {
            // The crate itself, or (for a workspace root) any member inside it.
            let crate_dir = cargo_toml.parent().unwrap_or(Path::new("/"));
            let ours = a.manifest_path.as_std_path().starts_with(crate_dir);
            if ours && a.target.kind.iter().any(|k| k.to_string() == "cdylib") {
                libs.extend(
                    a.filenames
                        .into_iter()
                        .map(|f| f.into_std_path_buf())
                        .filter(|f| {
                            f.extension().and_then(|e| e.to_str())
                                == Some(std::env::consts::DLL_EXTENSION)
                        }),
                );
            }
        }
    }
    let status = child.wait().map_err(|source| BuildError::CargoSpawn {
        cargo: opts.cargo.clone(),
        source,
    })?;
    if !status.success() {
        return Err(BuildError::CargoFailed {
            dir: dir.to_owned(),
            status: status.to_string(),
        });
    }
    libs.dedup();
    match libs.len() {
        0 => Err(BuildError::NoCdylib {
            dir: dir.to_owned(),
        }),
        1 => Ok(Built {
            manifest,
            library: libs.remove(0),
        }),
        _ => Err(BuildError::SeveralCdylibs {
            dir: dir.to_owned(),
            files: libs,
        }),
    }
}

/// Stages `built` as `PLUGINS_DIR/NAME/VERSION/` (manifest plus library) and checks that it
/// loads. The directory is assembled beside its final place and renamed in, so a failure
/// leaves the previous state; an existing staged copy of the same version is replaced.
///
/// A staged copy carries no signature, so this is refused (`Stage(Unsigned)`) in a plugins
/// directory that requires signatures; use [`stage_signed`] there.
pub fn stage(built: &Built, plugins_dir: &PluginsDir) -> Result<PathBuf, BuildError> {
    let admission = Admission::unsigned(&built.library, false);
    let placed = place_library(
        &built.manifest,
        &built.library,
        plugins_dir,
        true,
        admission,
    )?;
    Ok(placed.dir)
}

/// Stages `built` signed with `key`: packs it into a signed bundle in memory and installs
/// that (replacing a staged copy of the same version), so it passes a plugins directory that
/// requires signatures when `key`'s public half is in its keyring.
pub fn stage_signed(
    built: &Built,
    plugins_dir: &PluginsDir,
    key: &SigningKey,
) -> Result<PathBuf, BuildError> {
    let packed =
        pack_library(&built.manifest, &built.library, Some(key)).map_err(InstallError::from)?;
    let bundle = Bundle::from_bytes(&packed.bytes, &built.library, &Limits::default())
        .map_err(InstallError::from)?;
    let opts = InstallOptions {
        force: true,
        ..InstallOptions::default()
    };
    Ok(install_bundle(&bundle, plugins_dir, &opts)?.dir)
}

//! A target directory shared by several plugin crates. cargo puts no hash in a cdylib's file
//! name, so two crates with the same package name (two `plg new hello`, two worktrees of one
//! plugin) write the same `libNAME.so`. Building one after the other leaves the second's
//! file, and cargo may then call the first fresh and point at the second's library. So plg
//! records which crate last built each name in a shared directory, and before building a
//! different crate of that name it has cargo clean that package's outputs there, so the crate
//! is really rebuilt.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use super::{BuildError, BuildOptions};
use crate::error::IoError;

/// The record of which crate (its canonical `Cargo.toml`) last built `name` with this
/// profile into `target`.
fn owner_file(target: &Path, release: bool, name: &str) -> PathBuf {
    let profile = if release { "release" } else { "debug" };
    target.join("plg-owners").join(format!("{profile}-{name}"))
}

/// Makes the crate at `cargo_toml` the owner of `name`'s outputs in the shared `target`,
/// cleaning another crate's outputs of the same name first.
pub(super) fn claim(
    target: &Path,
    name: &str,
    cargo_toml: &Path,
    opts: &BuildOptions,
) -> Result<(), BuildError> {
    let owner = owner_file(target, opts.release, name);
    let ours = cargo_toml.to_string_lossy();
    match std::fs::read_to_string(&owner) {
        Ok(previous) if previous == ours => return Ok(()),
        Ok(_) => {
            let mut clean = Command::new(&opts.cargo);
            clean
                .args(["clean", "--quiet", "--package", name, "--manifest-path"])
                .arg(cargo_toml)
                .env("CARGO_TARGET_DIR", target);
            if opts.release {
                clean.arg("--release");
            }
            let status = clean.status().map_err(|source| BuildError::CargoSpawn {
                cargo: opts.cargo.clone(),
                source,
            })?;
            if !status.success() {
                return Err(BuildError::CargoFailed {
                    dir: cargo_toml.parent().unwrap_or(Path::new("/")).to_owned(),
                    status: format!("cargo clean --package {name}: {status}"),
                });
            }
        }
        Err(_) => {} // first build of this name here
    }
    let dir = owner.parent().unwrap_or(target);
    std::fs::create_dir_all(dir).map_err(IoError::at::<BuildError>(dir))?;
    std::fs::write(&owner, ours.as_bytes()).map_err(IoError::at::<BuildError>(&owner))?;
    Ok(())
}

//! A target directory shared by several plugin crates. cargo puts no hash in a cdylib's file
//! name, so two crates with the same package name (two `plg new hello`, two worktrees of one
//! plugin) write the same `libNAME.so`. Building one after the other leaves the second's
//! file, and cargo may then call the first fresh and point at the second's library. So plg
//! records which crate last built each name in a shared directory, and before building a
//! different crate of that name it removes cargo's fingerprints of that package name there,
//! so the crate is really rebuilt. (Not `cargo clean -p`: that resolves the crate's
//! dependencies and may rewrite its Cargo.lock, which `--locked` builds must not see.)

use std::path::{Path, PathBuf};

use super::{BuildError, BuildOptions};
use crate::error::IoError;

/// The record of which crate (its canonical `Cargo.toml`) last built `name` with this
/// profile into `target`.
fn owner_file(target: &Path, profile: &str, name: &str) -> PathBuf {
    target.join("plg-owners").join(format!("{profile}-{name}"))
}

/// `true` for cargo's fingerprint directory of a package called `name`: `NAME-HASH`.
fn is_fingerprint_of(entry: &str, name: &str) -> bool {
    entry
        .strip_prefix(name)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hash| !hash.is_empty() && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Makes the crate at `cargo_toml` the owner of `name`'s outputs in the shared `target`,
/// making cargo rebuild it if another crate of that name built there last.
pub(super) fn claim(
    target: &Path,
    name: &str,
    cargo_toml: &Path,
    opts: &BuildOptions,
) -> Result<(), BuildError> {
    let profile = if opts.release { "release" } else { "debug" };
    let owner = owner_file(target, profile, name);
    let ours = cargo_toml.to_string_lossy();
    match std::fs::read_to_string(&owner) {
        Ok(previous) if previous == ours => return Ok(()),
        Ok(_) => {
            let fingerprints = target.join(profile).join(".fingerprint");
            for entry in std::fs::read_dir(&fingerprints)
                .into_iter()
                .flatten()
                .flatten()
            {
                if is_fingerprint_of(&entry.file_name().to_string_lossy(), name) {
                    let path = entry.path();
                    std::fs::remove_dir_all(&path).map_err(IoError::at::<BuildError>(&path))?;
                }
            }
        }
        Err(_) => {} // first build of this name here
    }
    let dir = owner.parent().unwrap_or(target);
    std::fs::create_dir_all(dir).map_err(IoError::at::<BuildError>(dir))?;
    std::fs::write(&owner, ours.as_bytes()).map_err(IoError::at::<BuildError>(&owner))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_fingerprint_of;

    #[test]
    fn only_the_named_packages_fingerprints_match() {
        assert!(is_fingerprint_of("hello-0123abcd0123abcd", "hello"));
        assert!(!is_fingerprint_of("hello-world-0123abcd0123abcd", "hello"));
        assert!(!is_fingerprint_of("hello", "hello"));
        assert!(is_fingerprint_of("hello-world-0123abcd", "hello-world"));
    }
}

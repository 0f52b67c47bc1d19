//! Cargo.toml is the one source of a plugin crate's name and version: the library declares
//! `CARGO_PKG_NAME` and `CARGO_PKG_VERSION`, so `plugin.json` may leave both out and `plg
//! build` fills them in. If it has them, they must agree, and the error says which file to
//! change before anything is built.

use std::path::Path;

use super::{BuildError, BuildOptions};
use crate::{
    error::ManifestError,
    manifest::{read_manifest_file, Manifest},
};

/// The crate's package name and version, from `cargo metadata --no-deps`. `None` for a
/// virtual workspace manifest (no `[package]`).
fn package_identity(
    cargo_toml: &Path,
    opts: &BuildOptions,
) -> Result<Option<(String, String)>, BuildError> {
    let mut command = cargo_metadata::MetadataCommand::new();
    command
        .cargo_path(&opts.cargo)
        .manifest_path(cargo_toml)
        .no_deps();
    if opts.locked {
        command.other_options(vec!["--locked".to_owned()]);
    }
    let metadata = command.exec().map_err(|e| BuildError::Metadata {
        cargo_toml: cargo_toml.to_owned(),
        problem: e.to_string(),
    })?;
    Ok(metadata
        .packages
        .into_iter()
        .find(|p| p.manifest_path.as_std_path() == cargo_toml)
        .map(|p| (p.name.to_string(), p.version.to_string())))
}

/// Reads the crate's `plugin.json`, fills in `name` and `version` from Cargo.toml where it
/// leaves them out, and checks them where it has them.
pub(super) fn crate_manifest(
    manifest_path: &Path,
    cargo_toml: &Path,
    opts: &BuildOptions,
) -> Result<Manifest, BuildError> {
    let text = read_manifest_file(manifest_path)?;
    let Some((name, version)) = package_identity(cargo_toml, opts)? else {
        return Ok(Manifest::from_json(&text, manifest_path)?);
    };
    let mut json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ManifestError::Invalid {
            path: manifest_path.to_owned(),
            field: "(top level)".into(),
            problem: e.to_string(),
        })?;
    if let Some(object) = json.as_object_mut() {
        for (field, from_cargo) in [("name", &name), ("version", &version)] {
            match object.get(field) {
                None => {
                    object.insert(field.into(), from_cargo.clone().into());
                }
                Some(serde_json::Value::String(s)) if s != from_cargo => {
                    return Err(BuildError::Disagrees {
                        field,
                        manifest: manifest_path.to_owned(),
                        in_manifest: s.clone(),
                        cargo_toml: cargo_toml.to_owned(),
                        in_cargo_toml: from_cargo.clone(),
                    });
                }
                Some(_) => {}
            }
        }
    }
    Ok(Manifest::from_json(&json.to_string(), manifest_path)?)
}

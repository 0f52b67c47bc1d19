//! Write a new plugin crate that builds as it is.
//!
//! ```
//! use plg_loader::scaffold::{scaffold, PlgApiSource};
//!
//! let tmp = tempfile::tempdir().unwrap();
//! let dir = tmp.path().join("demo");
//! scaffold("demo", &dir, &PlgApiSource::Path("/src/plg/plugin-api".into())).unwrap();
//! assert!(dir.join("plugin.json").is_file());
//! assert!(dir.join("src/lib.rs").is_file());
//! ```

use std::path::{Path, PathBuf};

pub use crate::error::ScaffoldError;
use crate::{error::IoError, manifest::validate_name};

/// Where the new crate gets plg-api from.
#[derive(Debug, Clone)]
pub enum PlgApiSource {
    /// A path to a checkout's `plugin-api` directory.
    Path(PathBuf),
    /// A version requirement on crates.io.
    Version(String),
}

/// Creates the crate `name` in `dir` (which must not exist): `Cargo.toml` (a cdylib with its
/// own `[workspace]`, so it builds anywhere), `plugin.json` (without `name` and `version`,
/// which come from Cargo.toml), `src/lib.rs` with a working `execute`, and a `Cargo.lock`
/// pinning the versions plg is tested with. Files are written to a sibling temporary directory and renamed into place.
pub fn scaffold(name: &str, dir: &Path, api: &PlgApiSource) -> Result<PathBuf, ScaffoldError> {
    let dep = match api {
        // The version requirement a published crate needs, with the checkout's path as the
        // override while plg-api is not on crates.io.
        PlgApiSource::Path(p) => format!(
            "plg-api = {{ version = {API_REQ:?}, path = {:?} }}",
            p.display().to_string()
        ),
        PlgApiSource::Version(v) => format!("plg-api = {v:?}"),
    };
    let lib = name.replace('-', "_");
    create(
        name,
        dir,
        vec![
            ("Cargo.toml", cargo_toml(name, &dep), false),
            ("plugin.json", manifest(name, &lib), false),
            ("src/lib.rs", LIB_RS.to_owned(), false),
            (".gitignore", "/target\n".to_owned(), false),
            ("Cargo.lock", CARGO_LOCK.to_owned(), false),
        ],
    )
}

/// Writes `files` (path, text, executable) into a sibling temporary directory of `dir` and
/// renames it into place: a new plugin appears whole or not at all. `name` must be a valid
/// plugin name and `dir` must not exist.
fn create(
    name: &str,
    dir: &Path,
    files: Vec<(&str, String, bool)>,
) -> Result<PathBuf, ScaffoldError> {
    validate_name(name).map_err(|problem| ScaffoldError::InvalidName {
        name: name.to_owned(),
        problem,
    })?;
    if dir.exists() {
        return Err(ScaffoldError::Exists {
            path: dir.to_owned(),
        });
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let io = IoError::at::<ScaffoldError>;
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let tmp = parent.join(format!(".plg-new-{name}-{}", std::process::id()));
    let result = (|| {
        for (file, text, executable) in files {
            let path = tmp.join(file);
            if let Some(d) = path.parent() {
                std::fs::create_dir_all(d).map_err(io(d))?;
            }
            std::fs::write(&path, text).map_err(io(&path))?;
            #[cfg(unix)]
            if executable {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                    .map_err(io(&path))?;
            }
            #[cfg(not(unix))]
            let _ = executable;
        }
        std::fs::rename(&tmp, dir).map_err(io(dir))?;
        Ok(dir.to_owned())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Creates a Python plugin `name` in `dir` (which must not exist), an exec plugin that runs as
/// it is once grpcio is installed: `plugin.json` (`source.mode: "exec"`), `plugin.py` (the
/// `greet-python` sample, renamed), `requirements.txt`, and `proto/plg/v1/plugin.proto`.
#[cfg(feature = "isolation")]
pub fn scaffold_python(name: &str, dir: &Path) -> Result<PathBuf, ScaffoldError> {
    let manifest = format!(
        "{{\n  \"name\": {name:?},\n  \"version\": \"0.1.0\",\n  \"description\": \"Reads `name` and sets `greeting`, over plg's protocol.\",\n  \"source\": {{ \"mode\": \"exec\", \"path\": \"plugin.py\" }}\n}}\n"
    );
    create(
        name,
        dir,
        vec![
            ("plugin.json", manifest, false),
            ("plugin.py", PLUGIN_PY.replace("greet-python", name), true),
            ("requirements.txt", REQUIREMENTS.to_owned(), false),
            (
                "proto/plg/v1/plugin.proto",
                plg_protocol::PROTO.to_owned(),
                false,
            ),
        ],
    )
}

/// The Python plugin's program: `plugins/greet-python/plugin.py` (a test keeps them equal).
#[cfg(feature = "isolation")]
const PLUGIN_PY: &str = include_str!("plugin.py");

/// What the Python plugin needs from PyPI.
#[cfg(feature = "isolation")]
const REQUIREMENTS: &str = "grpcio>=1.60\ngrpcio-tools>=1.60\ngrpcio-health-checking>=1.60\n";

fn cargo_toml(name: &str, dep: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

# A plugin is a cdylib: a shared object the host loads at run time.
[lib]
crate-type = ["cdylib"]

[dependencies]
{dep}

# Keep unwinding: plg turns a panic into an error only if the plugin can unwind.
[profile.release]
panic = "unwind"

# Its own workspace, so it builds wherever it lives.
[workspace]
"#
    )
}

/// The crate's `plugin.json`: no `name` or `version`, which `plg build` takes from
/// Cargo.toml, so a version bump is one edit.
fn manifest(_name: &str, lib: &str) -> String {
    format!(
        r#"{{
  "description": "A plg plugin.",
  "maintainers": [],
  "source": {{ "mode": "local_so", "path": "lib{lib}" }}
}}
"#
    )
}

/// The plg-api requirement a new crate gets: this plg's own version.
const API_REQ: &str = env!("CARGO_PKG_VERSION");

/// The new crate's `Cargo.lock`: plg's own lock, pruned to what a plugin crate needs, so a new
/// plugin builds with the versions plg is tested with (regenerate it with
/// `scripts/scaffold_lock.sh`).
const CARGO_LOCK: &str = include_str!("plugin.Cargo.lock");

const LIB_RS: &str = r#"//! A plg plugin. `plg build` builds and stages it; `plg run` calls it.

use plg_api::{export_plugin, Context, ContextError, PluginError};

/// Reads `name` (default "world") and sets `greeting`.
///
/// The host may call this from many threads at once: keep any state in `Sync` types.
fn execute(ctx: &mut Context) -> Result<(), PluginError> {
    let name = match ctx.get_str("name") {
        Ok(name) => name.to_owned(),
        Err(ContextError::Missing { .. }) => "world".to_owned(),
        Err(e) => return Err(e.into()),
    };
    ctx.info(format!("greeting {name}"));
    ctx.set("greeting", format!("Hello, {name}!"));
    Ok(())
}

export_plugin!(execute: execute);
"#;

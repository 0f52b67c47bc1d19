//! [`PluginsDir`]: the one owner of a plugins directory's layout, its default location and
//! discovery. Nobody else joins path strings under it.
//!
//! ```text
//! PLUGINS_DIR/
//!   NAME/VERSION/plugin.json      installed, built or staged plugins, side by side
//!   NAME/VERSION/libNAME.so
//!   DIR/plugin.json               a plugin directory placed by hand
//!   NAME/.staging-*               an install being assembled (ignored by discovery)
//!   .plg/config.json              the directory's policy (require_signature, git_schemes)
//!   .plg/keyring.json             trusted public keys
//!   .plg/git-cache/               remote_git clones and builds
//! ```
//!
//! Every name that starts with `.` is plg's own and is skipped by discovery.
//!
//! ```
//! use plg_loader::PluginsDir;
//!
//! let dir = PluginsDir::new("/var/lib/myapp/plugins");
//! let v = plg_loader::semver::Version::new(1, 2, 0);
//! assert!(dir.version_dir("hello", &v).ends_with("hello/1.2.0"));
//! assert!(dir.config_file().ends_with(".plg/config.json"));
//! ```

use std::{
    fmt, io,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use semver::Version;

use crate::{
    error::{IoError, LoadError, LoadFailure},
    manifest::MANIFEST_FILE,
};

mod config;

pub(crate) use config::read_json_or_default;
pub use config::{Config, ConfigError};

/// The environment variable that names the default plugins directory.
pub const PLUGINS_DIR_ENV: &str = "PLG_PLUGINS_DIR";

/// plg's own directory inside a plugins directory.
const CONFIG_DIR: &str = ".plg";

/// A plugins directory: where plugins are installed, staged, discovered and loaded from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PluginsDir {
    root: PathBuf,
}

impl PluginsDir {
    /// The plugins directory at `root`. Nothing is read or created.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The default plugins directory: `$PLG_PLUGINS_DIR` when set and not empty, else
    /// `plg/plugins` under the per-user data directory (`~/.local/share/plg/plugins` on
    /// Linux, `~/Library/Application Support/plg/plugins` on macOS).
    pub fn from_env() -> Result<Self, NoDefaultDir> {
        if let Some(d) = std::env::var_os(PLUGINS_DIR_ENV).filter(|d| !d.is_empty()) {
            return Ok(Self::new(d));
        }
        dirs::data_dir()
            .map(|d| Self::new(d.join("plg").join("plugins")))
            .ok_or(NoDefaultDir)
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `PLUGINS_DIR/NAME`: every version of one plugin.
    pub fn plugin_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `PLUGINS_DIR/NAME/VERSION`: where one version is installed or staged.
    pub fn version_dir(&self, name: &str, version: &Version) -> PathBuf {
        self.plugin_dir(name).join(version.to_string())
    }

    /// `PLUGINS_DIR/.plg`: plg's configuration and caches.
    pub fn config_dir(&self) -> PathBuf {
        self.root.join(CONFIG_DIR)
    }

    /// `PLUGINS_DIR/.plg/config.json`.
    pub fn config_file(&self) -> PathBuf {
        self.config_dir().join("config.json")
    }

    /// `PLUGINS_DIR/.plg/keyring.json`.
    pub fn keyring_file(&self) -> PathBuf {
        self.config_dir().join("keyring.json")
    }

    /// `PLUGINS_DIR/.plg/git-cache`: `remote_git` clones and builds.
    pub fn git_cache(&self) -> PathBuf {
        self.config_dir().join("git-cache")
    }

    /// Reads `.plg/config.json`; a missing file is the default configuration.
    pub fn config(&self) -> Result<Config, ConfigError> {
        Config::read(&self.config_file())
    }

    /// Every `plugin.json` under the directory, in a stable order: at
    /// `PLUGINS_DIR/DIR/plugin.json`, else at `PLUGINS_DIR/NAME/VERSION/plugin.json`. A
    /// missing directory holds no plugins; names starting with `.` are skipped. An entry that
    /// cannot be read, or a link that leads out of the plugins directory, fails that entry
    /// alone (in [`Discovery::failed`]); only an unreadable plugins directory is an error.
    pub fn discover(&self) -> Result<Discovery, LoadError> {
        let mut found = Discovery::default();
        let root = self.subdirs(&self.root, &mut found.failed)?;
        for dir in root {
            self.look_into(&dir, &mut found);
        }
        Ok(found)
    }

    /// The manifests of the plugin `name` alone: `PLUGINS_DIR/NAME/plugin.json` and
    /// `PLUGINS_DIR/NAME/VERSION/plugin.json`. Nothing else in the directory is read, so a
    /// broken or hostile neighbour cannot get in the way. An invalid name finds nothing.
    pub fn manifests_of(&self, name: &str) -> Discovery {
        let mut found = Discovery::default();
        if crate::manifest::validate_name(name).is_ok() {
            let dir = self.plugin_dir(name);
            match self.checked_dir(&dir) {
                Ok(true) => self.look_into(&dir, &mut found),
                Ok(false) => {}
                Err(error) => found.failed.push(LoadFailure { path: dir, error }),
            }
        }
        found
    }

    /// The names of the plugin directories here (`PLUGINS_DIR/NAME`), sorted, without
    /// reading any manifest: for "did you mean" hints. A missing directory has none.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| crate::manifest::validate_name(n).is_ok())
            .collect();
        names.sort();
        names
    }

    /// Adds `dir/plugin.json` and each `dir/SUB/plugin.json` to `found`. Both are read: a
    /// broken or planted `NAME/plugin.json` must not hide the versions installed in
    /// `NAME/VERSION`.
    ///
    /// In a directory with its own manifest, the other entries are the plugin's files (its
    /// library, maybe a link to it): those that are not directories plg can enter are
    /// skipped without complaint.
    fn look_into(&self, dir: &Path, found: &mut Discovery) {
        let manifest = dir.join(MANIFEST_FILE);
        let flat = manifest.symlink_metadata().is_ok();
        if flat {
            found.manifests.push(manifest);
        }
        let mut failed = Vec::new();
        let subdirs = self.subdirs(dir, &mut failed);
        if flat {
            // The plugin is its manifest; its directory's other entries are not plugins.
            found.manifests.extend(
                subdirs
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| s.join(MANIFEST_FILE))
                    .filter(|m| m.symlink_metadata().is_ok()),
            );
            return;
        }
        found.failed.append(&mut failed);
        match subdirs {
            Ok(subs) => found.manifests.extend(
                subs.into_iter()
                    .map(|sub| sub.join(MANIFEST_FILE))
                    .filter(|m| m.symlink_metadata().is_ok()),
            ),
            Err(error) => found.failed.push(LoadFailure {
                path: dir.to_owned(),
                error,
            }),
        }
    }

    /// Subdirectories of `dir`, sorted, skipping names that start with `.` and entries that
    /// are not directories. A missing `dir` has none; a link out of the plugins directory
    /// goes to `failed`.
    fn subdirs(
        &self,
        dir: &Path,
        failed: &mut Vec<LoadFailure>,
    ) -> Result<Vec<PathBuf>, LoadError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(LoadError::Dir {
                    path: dir.to_owned(),
                    source,
                })
            }
        };
        let mut dirs = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            match self.checked_dir(&path) {
                Ok(true) => dirs.push(path),
                Ok(false) => {}
                Err(error) => failed.push(LoadFailure { path, error }),
            }
        }
        dirs.sort();
        Ok(dirs)
    }

    /// `Ok(true)` for a directory, `Ok(false)` for anything else, and an error for a link
    /// that leads out of the plugins directory (plg follows links only within it).
    fn checked_dir(&self, path: &Path) -> Result<bool, LoadError> {
        let Ok(meta) = path.symlink_metadata() else {
            return Ok(false);
        };
        if !meta.file_type().is_symlink() {
            return Ok(meta.is_dir());
        }
        let inside = path
            .canonicalize()
            .ok()
            .zip(self.root.canonicalize().ok())
            .is_some_and(|(target, root)| target.starts_with(root));
        if !inside {
            return Err(LoadError::OutsideDir {
                path: path.to_owned(),
                dir: self.root.clone(),
            });
        }
        Ok(path.is_dir())
    }

    /// The installed version directories of `name` (`PLUGINS_DIR/NAME/VERSION` holding a
    /// `plugin.json`), never an install in progress or a copy being swapped.
    pub fn installed_versions(&self, name: &str) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.plugin_dir(name)) else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| Version::parse(&e.file_name().to_string_lossy()).is_ok())
            .map(|e| e.path())
            .filter(|p| p.join(MANIFEST_FILE).is_file())
            .collect();
        found.sort();
        found
    }
}

impl AsRef<Path> for PluginsDir {
    fn as_ref(&self) -> &Path {
        &self.root
    }
}

impl From<&PluginsDir> for PluginsDir {
    fn from(dir: &PluginsDir) -> Self {
        dir.clone()
    }
}

impl From<PathBuf> for PluginsDir {
    fn from(root: PathBuf) -> Self {
        Self::new(root)
    }
}

impl From<&Path> for PluginsDir {
    fn from(root: &Path) -> Self {
        Self::new(root)
    }
}

impl From<&PathBuf> for PluginsDir {
    fn from(root: &PathBuf) -> Self {
        Self::new(root)
    }
}

impl From<String> for PluginsDir {
    fn from(root: String) -> Self {
        Self::new(root)
    }
}

impl From<&str> for PluginsDir {
    fn from(root: &str) -> Self {
        Self::new(root)
    }
}

/// What discovery found: every manifest, and every entry it could not look into.
#[derive(Debug, Default)]
pub struct Discovery {
    /// The `plugin.json` files found, in a stable order (not yet read).
    pub manifests: Vec<PathBuf>,
    /// Entries that could not be looked into, each with its reason.
    pub failed: Vec<LoadFailure>,
}

/// Neither `$PLG_PLUGINS_DIR` nor a per-user data directory is available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoDefaultDir;

impl fmt::Display for NoDefaultDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot find a per-user data directory; pass --plugins-dir or set {PLUGINS_DIR_ENV}"
        )
    }
}

impl std::error::Error for NoDefaultDir {}

/// A name for a temporary file or directory beside its final place, unique to this process
/// and moment: `.PREFIX-PID-NANOS-N`. Temporary names start with `.`, so discovery skips them.
pub(crate) fn temp_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(".{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// Writes `data` to `path` through a temporary sibling and a rename, so readers see the old
/// file or the new one, never half of one. Creates the parent directory.
pub(crate) fn write_atomically(path: &Path, data: &[u8]) -> Result<(), IoError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| IoError::new(dir, e))?;
    let tmp = dir.join(temp_name("tmp"));
    std::fs::write(&tmp, data).map_err(|e| IoError::new(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        IoError::new(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_manifest(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(MANIFEST_FILE), "{}").unwrap();
    }

    #[test]
    fn layout_paths_sit_under_the_root() {
        let d = PluginsDir::new("/p");
        let v = Version::new(1, 2, 3);
        assert_eq!(d.plugin_dir("x"), Path::new("/p/x"));
        assert_eq!(d.version_dir("x", &v), Path::new("/p/x/1.2.3"));
        assert_eq!(d.config_dir(), Path::new("/p/.plg"));
        assert_eq!(d.config_file(), Path::new("/p/.plg/config.json"));
        assert_eq!(d.keyring_file(), Path::new("/p/.plg/keyring.json"));
        assert_eq!(d.git_cache(), Path::new("/p/.plg/git-cache"));
    }

    #[test]
    fn discovery_finds_both_layouts_in_order_and_skips_dot_names() {
        let tmp = tempfile::tempdir().unwrap();
        let d = PluginsDir::new(tmp.path());
        write_manifest(&tmp.path().join("b/2.0.0"));
        write_manifest(&tmp.path().join("b/1.0.0"));
        write_manifest(&tmp.path().join("a"));
        write_manifest(&tmp.path().join("b/.staging-1"));
        write_manifest(&tmp.path().join(".plg/x"));
        std::fs::create_dir_all(tmp.path().join("empty")).unwrap();
        let found: Vec<PathBuf> = d
            .discover()
            .unwrap()
            .manifests
            .into_iter()
            .map(|p| p.strip_prefix(tmp.path()).unwrap().to_owned())
            .collect();
        assert_eq!(
            found,
            [
                "a/plugin.json",
                "b/1.0.0/plugin.json",
                "b/2.0.0/plugin.json"
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn a_missing_directory_holds_no_plugins() {
        let d = PluginsDir::new("/nonexistent/plg-test-dir");
        assert!(d.discover().unwrap().manifests.is_empty());
        assert!(d.manifests_of("x").manifests.is_empty());
        assert!(d.installed_versions("x").is_empty());
    }

    #[test]
    fn installed_versions_are_version_directories_with_a_manifest() {
        let tmp = tempfile::tempdir().unwrap();
        let d = PluginsDir::new(tmp.path());
        write_manifest(&tmp.path().join("x/1.0.0"));
        write_manifest(&tmp.path().join("x/.replaced-1.0.0-1"));
        std::fs::create_dir_all(tmp.path().join("x/2.0.0")).unwrap();
        assert_eq!(d.installed_versions("x"), [tmp.path().join("x/1.0.0")]);
    }

    #[test]
    fn the_environment_variable_names_the_default() {
        // The only test in this crate that touches the variable.
        std::env::set_var(PLUGINS_DIR_ENV, "/from/env");
        assert_eq!(
            PluginsDir::from_env().unwrap().path(),
            Path::new("/from/env")
        );
        std::env::set_var(PLUGINS_DIR_ENV, "");
        let fallback = PluginsDir::from_env();
        std::env::remove_var(PLUGINS_DIR_ENV);
        if let Ok(d) = fallback {
            assert!(d.path().ends_with("plg/plugins"));
        }
    }

    #[test]
    fn temporary_names_are_hidden_from_discovery() {
        let n = temp_name("staging");
        assert!(n.starts_with(".staging-"));
        assert_ne!(n, temp_name("staging"));
    }
}

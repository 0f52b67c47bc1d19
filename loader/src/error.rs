//! Typed errors. Each names the file, plugin or field involved and says what to do next.

use std::{io, path::PathBuf, time::Duration};

use thiserror::Error;

/// A `plugin.json` could not be read or is invalid.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read manifest {}: {source}", path.display())]
    Read {
        /// The manifest.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file is not valid JSON.
    #[error("{}:{line}:{column}: invalid JSON: {message}", path.display())]
    Syntax {
        /// The manifest.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// A field is missing, of the wrong type, unknown, or has a value plg refuses.
    #[error("{}: field `{field}`: {problem}", path.display())]
    Invalid {
        /// The manifest.
        path: PathBuf,
        /// The field path, e.g. `source.path` or `maintainers[1]`.
        field: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

/// A plugin could not be loaded. Nothing of it stays loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The manifest is invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The plugin directory could not be read.
    #[error("cannot read plugin directory {}: {source}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The library file does not exist.
    #[error("library {} does not exist; run `plg build` in the plugin crate, or fix `source.path` in {}", path.display(), manifest.display())]
    NotFound {
        /// The library path the manifest points at.
        path: PathBuf,
        /// The manifest.
        manifest: PathBuf,
    },
    /// The library resolves to a file outside the plugin's directory (through a symlink).
    #[error("library {} resolves outside the plugin directory {}; keep the library inside it", path.display(), dir.display())]
    OutsideDir {
        /// The library path.
        path: PathBuf,
        /// The plugin directory.
        dir: PathBuf,
    },
    /// The file is not a shared object at all.
    #[error("{} is not a shared object ({reason}); point `source.path` at the plugin's .so/.dylib", path.display())]
    NotSharedObject {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The shared object could not be opened (a missing dependency, a wrong architecture…).
    #[error("cannot open {}: {message}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What the dynamic loader said.
        message: String,
    },
    /// This library image is already open in this process (the same path, or the same file
    /// under another name). The dynamic loader would hand back the same image, whose state is
    /// shared, so plg refuses a second instance.
    #[error("{} is already open in this process (as a loaded plugin, or the same file under another path); unload it first, or load a copy of the file", path.display())]
    ImageInUse {
        /// The file.
        path: PathBuf,
    },
    /// The shared object has no plg declaration.
    #[error("{} is a shared object but not a plg plugin ({reason}); a plugin crate must invoke `plg_api::export_plugin!`", path.display())]
    NotAPlugin {
        /// The file.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The plugin was built for another plg ABI version.
    #[error("{} was built for plg ABI version {found}, this host speaks version {expected}; rebuild the plugin against this plg-api", path.display())]
    AbiVersion {
        /// The file.
        path: PathBuf,
        /// The host's ABI version.
        expected: u32,
        /// The plugin's.
        found: u32,
    },
    /// The plugin's types have another layout than the host's.
    #[error("{} was built against an incompatible plg-api {api_version} (type layouts differ: {summary}); rebuild the plugin against this plg-api", path.display())]
    AbiLayout {
        /// The file.
        path: PathBuf,
        /// The plg-api version the plugin reports.
        api_version: String,
        /// The differences, one line: `incompatible type size (expected 128, found 120); …`.
        summary: String,
        /// abi_stable's full report (long).
        details: String,
    },
    /// The library's embedded name or version differs from the manifest's.
    #[error("{} embeds {field} `{library}` but the manifest says `{manifest}`; rebuild the plugin or fix {field} in plugin.json", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// `name` or `version`.
        field: &'static str,
        /// The manifest's value.
        manifest: String,
        /// The library's value.
        library: String,
    },
    /// The plugin's `on_load` hook failed; the library was closed again.
    #[error("plugin {plugin}: on_load failed: {message}")]
    OnLoad {
        /// `name@version`.
        plugin: String,
        /// The plugin's message.
        message: String,
    },
    /// This name and version is already loaded.
    #[error("plugin {plugin} is already loaded (from {}); unload it first", existing.display())]
    AlreadyLoaded {
        /// `name@version`.
        plugin: String,
        /// Where the loaded one came from.
        existing: PathBuf,
    },
    /// No plugin of that name (and matching version) is under the base directory.
    #[error("no plugin `{name}`{} under {}{}{}", requirement.as_deref().map(|r| format!(" matching `{r}`")).unwrap_or_default(), base_dir.display(), if versions.is_empty() { String::new() } else { format!(" (found versions: {})", versions.join(", ")) }, if *broken > 0 { format!("; {broken} manifest(s) there are invalid, run `plg list` to see why") } else { String::new() })]
    NotInstalled {
        /// The name asked for.
        name: String,
        /// The version requirement, if any.
        requirement: Option<String>,
        /// Where the manager looked.
        base_dir: PathBuf,
        /// Versions of that name that were found but did not match.
        versions: Vec<String>,
        /// How many manifests could not be read.
        broken: usize,
    },
    /// A version requirement could not be parsed.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// Fetching or building a `remote_git` source failed.
    #[cfg(feature = "git")]
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    /// The plugins directory's configuration is invalid.
    #[error("{}: {problem}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The source mode cannot be loaded directly.
    #[error("{}: source mode `{mode}` cannot be loaded directly; install it with `plg install` first", manifest.display())]
    UnsupportedSource {
        /// The manifest.
        manifest: PathBuf,
        /// The mode.
        mode: &'static str,
    },
}

/// A call to `execute` failed. The host and the other plugins keep running.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ExecError {
    /// The plugin returned an error.
    #[error("plugin {plugin} failed: {message}")]
    Failed {
        /// `name@version`.
        plugin: String,
        /// The plugin's message.
        message: String,
    },
    /// The plugin refused its input.
    #[error("plugin {plugin} refused its input: {message}")]
    InvalidInput {
        /// `name@version`.
        plugin: String,
        /// The plugin's message.
        message: String,
    },
    /// The plugin panicked; the panic was caught inside the plugin.
    #[error("plugin {plugin} panicked: {message}")]
    Panicked {
        /// `name@version`.
        plugin: String,
        /// The panic message.
        message: String,
    },
    /// The plugin stopped because its context was cancelled or it is being unloaded.
    #[error("plugin {plugin} was cancelled")]
    Cancelled {
        /// `name@version`.
        plugin: String,
    },
    /// The plugin stopped because the context's deadline passed.
    #[error("plugin {plugin} stopped: its deadline passed")]
    DeadlineExceeded {
        /// `name@version`.
        plugin: String,
    },
    /// The plugin was unloaded (or is being unloaded); load it again to call it.
    #[error("plugin {plugin} is unloaded; load it again to call it")]
    Unloaded {
        /// `name@version`.
        plugin: String,
    },
}

/// No loaded plugin answers a lookup.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// No plugin of that name is loaded.
    #[error("no plugin named `{name}` is loaded{}", hint(available))]
    NotLoaded {
        /// The name asked for.
        name: String,
        /// The names that are loaded.
        available: Vec<String>,
    },
    /// Plugins of that name are loaded, but none matches the requirement.
    #[error("no loaded version of `{name}` matches `{requirement}` (loaded: {})", versions.join(", "))]
    NoMatch {
        /// The name.
        name: String,
        /// The requirement.
        requirement: String,
        /// The versions loaded.
        versions: Vec<String>,
    },
    /// The requirement is not a semver requirement.
    #[error("`{requirement}` is not a version requirement ({message}); write e.g. ^1.2 or =1.2.3")]
    BadRequirement {
        /// What was given.
        requirement: String,
        /// The parser's message.
        message: String,
    },
}

fn hint(available: &[String]) -> String {
    if available.is_empty() {
        "; no plugins are loaded".into()
    } else {
        format!(" (loaded: {})", available.join(", "))
    }
}

/// A plugin could not be unloaded.
#[derive(Debug, Error)]
pub enum UnloadError {
    /// No such plugin is loaded.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// Calls were still running when the timeout ran out. The plugin refuses new calls and
    /// stays loaded; call `unload` again to wait longer.
    #[error("plugin {plugin}: {in_flight} call(s) still running after {waited:?}; it refuses new calls and stays loaded until they return (call unload again to wait longer)")]
    Busy {
        /// `name@version`.
        plugin: String,
        /// Calls still running.
        in_flight: usize,
        /// How long unload waited.
        waited: Duration,
    },
}

//! Errors of loading, installing, building and fetching a plugin. These four contain one
//! another, so they live in one file: loading a `remote_git` manifest fetches and builds it
//! ([`LoadError::Git`] → [`GitError::Build`]), building stages through install
//! ([`BuildError::Stage`]), and install checks a copy by loading it ([`InstallError::Load`]).

use std::path::{Path, PathBuf};

use semver::Version;
use thiserror::Error;

use super::{
    call::LookupError,
    io::{ConfigError, IoError},
    manifest::ManifestError,
    pack::BundleError,
    worker::WorkerError,
};

/// One plugin (or plugin directory) that failed to load, and why.
#[derive(Debug)]
pub struct LoadFailure {
    /// The manifest (or directory) involved.
    pub path: PathBuf,
    /// Why it failed.
    pub error: LoadError,
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
        source: std::io::Error,
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
    /// No plugin of that name (and matching version) is under the plugins directory.
    #[error("{}", not_installed(name, requirement.as_deref(), plugins_dir, versions, *broken, others))]
    NotInstalled {
        /// The name asked for.
        name: String,
        /// The version requirement, if any.
        requirement: Option<String>,
        /// Where the manager looked.
        plugins_dir: PathBuf,
        /// Versions of that name that were found but did not match.
        versions: Vec<String>,
        /// How many manifests could not be read.
        broken: usize,
        /// The other plugin names in the directory (for a "did you mean"); empty when the
        /// directory does not exist.
        others: Box<[String]>,
    },
    /// A `remote_git` manifest in a plugins directory that requires signatures: a git build
    /// carries none, so it is refused before anything is fetched or built.
    #[error("{} builds {url} from git, but {} requires signatures and a git build carries none; install a signed bundle of it instead (`plg pack --sign KEY`, then `plg install`)", manifest.display(), config.display())]
    UnsignedSource {
        /// The manifest.
        manifest: PathBuf,
        /// The repository URL, without credentials.
        url: String,
        /// The configuration that requires signatures.
        config: PathBuf,
    },
    /// A plugin's dependencies cannot be met: one is missing, matches no version, failed to
    /// load, or they form a cycle. `chain` runs from the plugin refused to the one with the
    /// problem (for a cycle, round the cycle).
    #[error("{}", dependency_message(chain, problem))]
    Dependency {
        /// `name@version` of each plugin on the way, the refused one first.
        chain: Vec<String>,
        /// What is wrong at the end of the chain.
        problem: DependencyProblem,
    },
    /// A schema of the manifest could not be read or compiled, or this host cannot check
    /// schemas.
    #[error("{}: {field}: {problem}", manifest.display())]
    Schema {
        /// The manifest.
        manifest: PathBuf,
        /// `input_schema` or `output_schema`.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// During a hot upgrade, the new version's `self_test`, the old version's `save_state` or
    /// the new version's `restore_state` failed: the upgrade was refused and the old version
    /// keeps serving.
    #[error("plugin {plugin}: {hook} failed during a hot upgrade, so the running version keeps serving: {message}")]
    UpgradeHook {
        /// `name@version` of the version whose hook failed.
        plugin: String,
        /// `self_test`, `save_state` or `restore_state`.
        hook: &'static str,
        /// The hook's error.
        message: String,
    },
    /// A hot upgrade found only an older version on disk than the one loaded.
    #[error("plugin {plugin}: the version on disk ({found}, {}) is older than the loaded one; a reload never downgrades: unload the loaded version, then load the older one", manifest.display())]
    Downgrade {
        /// `name@version` loaded.
        plugin: String,
        /// The version found on disk.
        found: String,
        /// Its manifest.
        manifest: PathBuf,
    },
    /// The plugins directory could not be watched for changes.
    #[error("cannot watch {} for plugin changes: {message}; if the system is out of inotify watches, raise fs.inotify.max_user_watches or watch by polling (WatchOptions::poll_every)", dir.display())]
    Watch {
        /// The plugins directory.
        dir: PathBuf,
        /// What notify said.
        message: String,
    },
    /// The plugin runs in a worker process, and the worker did not start.
    #[error("plugin {plugin}: {source}")]
    Worker {
        /// `name@version`.
        plugin: String,
        /// What went wrong.
        source: WorkerError,
    },
    /// The plugin is built with `panic = "abort"`, and the host's policy refuses such a
    /// plugin in-process: a panic in it would abort the host.
    #[error("plugin {plugin} is built with panic = \"abort\": a panic in it would abort this host. Rebuild it with the default panic = \"unwind\", or run it in a worker (\"isolation\": \"process\" in its plugin.json)")]
    PanicAborts {
        /// `name@version`.
        plugin: String,
    },
    /// A file could not be read or written (a hot upgrade's private copy, a content hash).
    #[error(transparent)]
    Io(#[from] IoError),
    /// A version requirement could not be parsed, or the plugin is not loaded.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// Fetching or building a `remote_git` source failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// The plugins directory's configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The source mode cannot be loaded directly.
    #[error("{}: source mode `{mode}` cannot be loaded by this host (plg-loader was built without its `git` feature, or the manager has no source resolver); install it with `plg install` first", manifest.display())]
    UnsupportedSource {
        /// The manifest.
        manifest: PathBuf,
        /// The mode.
        mode: &'static str,
    },
}

/// Why fetching or building a repository failed.
#[derive(Debug, Error)]
pub enum GitError {
    /// The URL cannot be parsed.
    #[error(
        "`{url}` is not a git URL ({reason}); use https://…, ssh://…, user@host:path or file://…"
    )]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The URL's scheme is not in the allowlist.
    #[error("`{url}` uses scheme `{scheme}`, which is not allowed (allowed: {}); allow it explicitly (`--allow-scheme {scheme}`, or `git_schemes` in the plugins dir's .plg/config.json) if you mean it", allowed.join(", "))]
    SchemeNotAllowed {
        /// The URL.
        url: String,
        /// Its scheme.
        scheme: String,
        /// The allowlist.
        allowed: Vec<String>,
    },
    /// The remote could not be reached or cloned.
    #[error("cannot fetch `{url}`: {message}")]
    Fetch {
        /// The URL.
        url: String,
        /// libgit2's message.
        message: String,
    },
    /// The branch, tag or commit does not exist.
    #[error("`{url}` has no branch, tag or commit `{rev}`")]
    UnknownRev {
        /// The URL.
        url: String,
        /// The rev.
        rev: String,
    },
    /// `source.subdir` is not a directory of the repository.
    #[error("`{url}` at {commit} has no directory `{}`", subdir.display())]
    NoSubdir {
        /// The URL.
        url: String,
        /// The commit.
        commit: String,
        /// The subdirectory.
        subdir: PathBuf,
    },
    /// Building failed (no plugin.json, a compile error, no cdylib or several).
    #[error("building `{url}` at {commit}: {source}")]
    Build {
        /// The URL.
        url: String,
        /// The commit.
        commit: String,
        /// What went wrong.
        #[source]
        source: Box<BuildError>,
    },
    /// The requested build is not in the cache and fetching was not allowed.
    #[error("`{url}`{} is not in the cache; run `plg run` or `plg install` to fetch and build it", rev.as_deref().map(|r| format!("#{r}")).unwrap_or_default())]
    NotCached {
        /// The URL.
        url: String,
        /// The rev.
        rev: Option<String>,
    },
    /// A cache file could not be written or read.
    #[error(transparent)]
    Io(#[from] IoError),
}

/// Why a build or stage failed.
#[derive(Debug, Error)]
pub enum BuildError {
    /// The directory has no `plugin.json`.
    #[error("{} has no plugin.json; run `plg new` to create a plugin crate, or add a manifest", dir.display())]
    NoManifest {
        /// The crate directory.
        dir: PathBuf,
    },
    /// The directory has no `Cargo.toml`.
    #[error("{} has no Cargo.toml; `plg build` builds a plugin crate", dir.display())]
    NoCargoToml {
        /// The crate directory.
        dir: PathBuf,
    },
    /// The manifest is invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// `plugin.json` and Cargo.toml give different names or versions.
    #[error("{} says {field} `{in_manifest}`, but {} says `{in_cargo_toml}`; the library declares Cargo.toml's. Remove `{field}` from plugin.json (plg build fills it in from Cargo.toml), or make the two agree", manifest.display(), cargo_toml.display())]
    Disagrees {
        /// `name` or `version`.
        field: &'static str,
        /// The crate's plugin.json.
        manifest: PathBuf,
        /// What plugin.json says.
        in_manifest: String,
        /// The crate's Cargo.toml.
        cargo_toml: PathBuf,
        /// What Cargo.toml says.
        in_cargo_toml: String,
    },
    /// `cargo metadata` could not read the crate's Cargo.toml.
    #[error("cannot read {}: {problem}", cargo_toml.display())]
    Metadata {
        /// The crate's Cargo.toml.
        cargo_toml: PathBuf,
        /// cargo's message.
        problem: String,
    },
    /// cargo could not be started.
    #[error("cannot run `{cargo}`: {source}; is Rust installed and on PATH?")]
    CargoSpawn {
        /// The cargo command.
        cargo: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// cargo failed.
    #[error("cargo build failed in {} ({status}); its errors are printed above", dir.display())]
    CargoFailed {
        /// The crate directory.
        dir: PathBuf,
        /// cargo's exit status.
        status: String,
    },
    /// The build produced no cdylib.
    #[error("building {} produced no cdylib; add `[lib] crate-type = [\"cdylib\"]` to its Cargo.toml", dir.display())]
    NoCdylib {
        /// The crate directory.
        dir: PathBuf,
    },
    /// The build produced several cdylibs.
    #[error("building {} produced several cdylibs ({}); a plugin crate must produce exactly one", dir.display(), files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "))]
    SeveralCdylibs {
        /// The crate directory.
        dir: PathBuf,
        /// The libraries.
        files: Vec<PathBuf>,
    },
    /// Writing the staged plugin failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The built library does not load as the manifest describes, or staging failed.
    #[error(transparent)]
    Stage(#[from] InstallError),
}

/// Why an install, uninstall or key operation failed. Nothing was changed.
#[derive(Debug, Error)]
pub enum InstallError {
    /// `PLUGINS_DIR/NAME` (or a version directory in it) is a symbolic link. plg writes and
    /// deletes only inside the plugins directory, so it will not follow it.
    #[error("{} is a symbolic link; plg writes and deletes only inside the plugins directory, so remove the link (or install into the directory it points to with --plugins-dir)", path.display())]
    Linked {
        /// The link.
        path: PathBuf,
    },
    /// The bundle is invalid or hostile.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The unpacked library does not load as the manifest says.
    #[error("the plugin's library does not load")]
    Load(#[from] LoadError),
    /// Building the plugin crate to install failed.
    #[error(transparent)]
    Build(Box<BuildError>),
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
    #[error(transparent)]
    Io(#[from] IoError),
}

impl From<BuildError> for InstallError {
    fn from(e: BuildError) -> Self {
        InstallError::Build(Box::new(e))
    }
}

impl From<ConfigError> for InstallError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Invalid { path, problem } => InstallError::Config { path, problem },
            ConfigError::Io(io) => InstallError::Io(io),
        }
    }
}

/// [`LoadError::NotInstalled`]'s message: says when the directory itself is missing, which
/// versions did not match, the closest name, and what is installed.
fn not_installed(
    name: &str,
    requirement: Option<&str>,
    plugins_dir: &Path,
    versions: &[String],
    broken: usize,
    others: &[String],
) -> String {
    let dir = plugins_dir.display();
    if !plugins_dir.is_dir() {
        return format!(
            "no plugin `{name}`: the plugins directory {dir} does not exist; pass --plugins-dir \
             or set PLG_PLUGINS_DIR to the right one, or install a plugin into it"
        );
    }
    let mut msg = format!("no plugin `{name}`");
    if let Some(r) = requirement {
        msg += &format!(" matching `{r}`");
    }
    msg += &format!(" under {dir}");
    if !versions.is_empty() {
        msg += &format!(" (found versions: {})", versions.join(", "));
    } else {
        let closest = others
            .iter()
            .filter(|o| o.as_str() != name)
            .map(|o| (strsim::damerau_levenshtein(name, o), o))
            .filter(|(d, o)| *d <= (name.len().max(o.len()) / 3).max(1))
            .min();
        if let Some((_, o)) = closest {
            msg += &format!(". Did you mean `{o}`?");
        }
        match others.len() {
            0 => msg += ". It holds no plugins",
            n if n <= 10 => msg += &format!(". Installed: {}", others.join(", ")),
            n => msg += &format!(". {n} plugins are installed: `plg list` shows them"),
        }
    }
    if broken > 0 {
        msg += &format!("; {broken} manifest(s) there are invalid, run `plg list` to see why");
    }
    msg
}

/// What is wrong with a dependency ([`LoadError::Dependency`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencyProblem {
    /// No plugin of that name is installed (or loaded).
    Missing {
        /// The plugin needed.
        name: String,
        /// The requirement.
        requirement: String,
    },
    /// Versions of it exist, but none matches the requirement.
    NoMatch {
        /// The plugin needed.
        name: String,
        /// The requirement.
        requirement: String,
        /// The versions found.
        versions: Vec<String>,
    },
    /// It matched, but failed to load.
    Failed {
        /// The plugin needed.
        name: String,
        /// The requirement.
        requirement: String,
    },
    /// The chain is a cycle.
    Cycle,
    /// The chain is longer than plg follows ([`MAX_DEPENDENCY_DEPTH`]).
    TooDeep {
        /// The limit.
        limit: usize,
    },
}

/// How long a chain of dependencies plg follows before it refuses the plugin at its head.
pub const MAX_DEPENDENCY_DEPTH: usize = 64;

impl DependencyProblem {
    /// `name` (wanted as `requirement`) is not there in a matching version: `Missing` when no
    /// version of it is (`versions` empty), else `NoMatch`.
    pub(crate) fn unmet(name: &str, requirement: String, versions: Vec<String>) -> Self {
        if versions.is_empty() {
            DependencyProblem::Missing {
                name: name.to_owned(),
                requirement,
            }
        } else {
            DependencyProblem::NoMatch {
                name: name.to_owned(),
                requirement,
                versions,
            }
        }
    }
}

fn dependency_message(chain: &[String], problem: &DependencyProblem) -> String {
    let path = chain.join(" → ");
    match problem {
        DependencyProblem::Missing { name, requirement } => format!(
            "{path} needs plugin `{name}` {requirement}, which is not installed; install it, or remove it from `dependencies`"
        ),
        DependencyProblem::NoMatch {
            name,
            requirement,
            versions,
        } => format!(
            "{path} needs plugin `{name}` {requirement}, but only {} is installed; install a matching version, or change the requirement",
            versions.join(", ")
        ),
        DependencyProblem::Failed { name, requirement } => format!(
            "{path} needs plugin `{name}` {requirement}, which failed to load (see its own error)"
        ),
        DependencyProblem::Cycle => format!(
            "dependency cycle {path}; plugins cannot depend on each other in a circle"
        ),
        DependencyProblem::TooDeep { limit } => format!(
            "the dependency chain {path} is longer than {limit} plugins, which plg does not follow; shorten it"
        ),
    }
}

//! `plugin.json`: parsing and validation.
//!
//! Every error names the manifest file and the field path (`source.path`,
//! `maintainers[1]`, …) and says what is wrong.

use std::path::{Path, PathBuf};

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::error::ManifestError;

pub mod git_url;
pub mod note;
mod positional;
pub mod preflight;
mod validate;

pub use validate::{validate_name, with_platform_extension};

/// The file name plg looks for in every plugin directory.
pub const MANIFEST_FILE: &str = "plugin.json";

/// The largest `plugin.json` plg reads (1 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// The longest plugin name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// A validated `plugin.json`.
///
/// ```
/// use plg_loader::{Manifest, Source};
///
/// let m = Manifest::from_json(r#"{
///     "name": "hello", "version": "1.2.0",
///     "source": { "mode": "local_so", "path": "libhello" }
/// }"#, "plugin.json").unwrap();
/// assert_eq!(m.name, "hello");
/// assert!(matches!(m.source, Source::LocalSo { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `[a-z0-9_-]{1,64}`.
    pub name: String,
    /// A semver 2 version.
    pub version: Version,
    /// One line on what the plugin does.
    pub description: Option<String>,
    /// E-mail addresses, optionally as `Name <addr>`.
    pub maintainers: Vec<String>,
    /// An http(s) URL.
    pub home: Option<String>,
    /// Where the library comes from.
    pub source: Source,
    /// HTTP routes the plugin serves; parsed and validated, used by the management server.
    pub http_services: Option<HttpServices>,
    /// Other plugins this one needs, each with a semver requirement: `{"base": "^1.2"}`.
    /// [`PluginManager::load_all`](crate::PluginManager::load_all) loads them first, and
    /// refuses this plugin when one is missing, does not match, failed, or forms a cycle.
    pub dependencies: std::collections::BTreeMap<String, semver::VersionReq>,
    /// A JSON Schema the context must match before `execute` (`input_schema`).
    pub input_schema: Option<SchemaSource>,
    /// A JSON Schema the context must match after a successful `execute` (`output_schema`).
    pub output_schema: Option<SchemaSource>,
    /// Where the plugin asks to run (`isolation`): `None` leaves it to the host's policy.
    pub isolation: Option<Isolation>,
}

/// Where a plugin's code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isolation {
    /// `"in_process"`: the library is loaded into the host. The fastest call; a crash in the
    /// plugin is a crash of the host.
    InProcess,
    /// `"process"`: the library is loaded by a `plg-worker` process the host supervises. A
    /// crash, a hang or an abort costs the plugin's calls, never the host.
    Process,
}

impl Isolation {
    /// The manifest's spelling: `in_process` or `process`.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::InProcess => "in_process",
            Isolation::Process => "process",
        }
    }
}

/// Where a manifest's JSON Schema is: written in the manifest, or in a file next to it.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaSource {
    /// The schema itself.
    Inline(serde_json::Value),
    /// A file relative to the manifest's directory (no `..`, not absolute).
    File(PathBuf),
}

/// `source`: where the plugin's library comes from. `Debug` shows a `remote_git` URL without
/// its credentials ([`git_url::redact`]).
#[derive(Clone, PartialEq, Eq)]
pub enum Source {
    /// `local_so`: a library next to the manifest.
    LocalSo {
        /// Relative to the manifest's directory, with the platform extension filled in.
        path: PathBuf,
    },
    /// `remote_git`: a git repository to clone and build.
    RemoteGit {
        /// The repository URL.
        url: String,
        /// A branch, tag or commit.
        rev: Option<String>,
        /// The crate's directory inside the repository.
        subdir: Option<PathBuf>,
    },
    /// `exec`: an executable next to the manifest, in any language, that speaks plg's
    /// protocol (PROTOCOL.md). It always runs as a supervised process of its own.
    Exec {
        /// Relative to the manifest's directory.
        path: PathBuf,
        /// Its arguments.
        args: Vec<String>,
        /// Variables added to its (otherwise cleared) environment.
        env: std::collections::BTreeMap<String, String>,
    },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::LocalSo { path } => f.debug_struct("LocalSo").field("path", path).finish(),
            Source::RemoteGit { url, rev, subdir } => f
                .debug_struct("RemoteGit")
                .field("url", &git_url::redact(url))
                .field("rev", rev)
                .field("subdir", subdir)
                .finish(),
            Source::Exec { path, args, env } => f
                .debug_struct("Exec")
                .field("path", path)
                .field("args", args)
                .field("env", &env.keys().collect::<Vec<_>>())
                .finish(),
        }
    }
}

// JSON numbers are never NaN, so equality on a schema is reflexive.
impl Eq for SchemaSource {}

impl SchemaSource {
    fn to_json(&self) -> serde_json::Value {
        match self {
            SchemaSource::Inline(v) => v.clone(),
            SchemaSource::File(p) => p.to_string_lossy().into_owned().into(),
        }
    }
}

impl Source {
    /// `local_so`, `remote_git` or `exec`.
    pub fn mode(&self) -> &'static str {
        match self {
            Source::LocalSo { .. } => "local_so",
            Source::RemoteGit { .. } => "remote_git",
            Source::Exec { .. } => "exec",
        }
    }
}

/// `http_services`: the routes a plugin serves through the host's HTTP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServices {
    /// The HTTP driver the routes are meant for.
    pub driver: String,
    /// The routes.
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// One route: requests to `method route` call `execute` with `label`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The path, starting with `/`.
    pub route: String,
    /// An HTTP method.
    pub method: String,
    /// The context label the call carries.
    pub label: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    maintainers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    home: Option<String>,
    source: RawSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http_services: Option<HttpServices>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    dependencies: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input_schema: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output_schema: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    isolation: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    mode: String,
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rev: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subdir: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    args: Vec<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    env: std::collections::BTreeMap<String, String>,
}

impl Manifest {
    /// Reads and validates the manifest at `path`. The file must be a regular file of at most
    /// [`MAX_MANIFEST_BYTES`]; a symbolic link is refused rather than followed, and opening
    /// never blocks (a FIFO or device is refused, not read).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, ManifestError> {
        let path = path.as_ref();
        let text = read_manifest_file(path)?;
        Self::from_json(&text, path)
    }

    /// Parses and validates manifest text; `path` is only used in error messages.
    pub fn from_json(text: &str, path: impl AsRef<Path>) -> Result<Self, ManifestError> {
        let path = path.as_ref();
        let de = &mut serde_json::Deserializer::from_str(text);
        let raw: RawManifest = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_data() {
                ManifestError::Invalid {
                    path: path.to_owned(),
                    field: if field == "." {
                        "(top level)".into()
                    } else {
                        field
                    },
                    problem: strip_position(&inner.to_string()),
                }
            } else {
                ManifestError::Syntax {
                    path: path.to_owned(),
                    line: inner.line(),
                    column: inner.column(),
                    message: strip_position(&inner.to_string()),
                }
            }
        })?;
        raw.validate(path)
    }

    /// The manifest as pretty JSON, in the same format it is read from.
    pub fn to_json(&self) -> String {
        let (path, rev, subdir) = match &self.source {
            Source::LocalSo { path } | Source::Exec { path, .. } => {
                (path.to_string_lossy().into_owned(), None, None)
            }
            Source::RemoteGit { url, rev, subdir } => (
                url.clone(),
                rev.clone(),
                subdir.as_ref().map(|s| s.to_string_lossy().into_owned()),
            ),
        };
        let (args, env) = match &self.source {
            Source::Exec { args, env, .. } => (args.clone(), env.clone()),
            _ => Default::default(),
        };
        let raw = RawManifest {
            name: self.name.clone(),
            version: self.version.to_string(),
            description: self.description.clone(),
            maintainers: self.maintainers.clone(),
            home: self.home.clone(),
            source: RawSource {
                mode: self.source.mode().to_owned(),
                path,
                rev,
                subdir,
                args,
                env,
            },
            http_services: self.http_services.clone(),
            dependencies: self
                .dependencies
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            input_schema: self.input_schema.as_ref().map(SchemaSource::to_json),
            output_schema: self.output_schema.as_ref().map(SchemaSource::to_json),
            isolation: self.isolation.map(|i| i.as_str().to_owned()),
        };
        serde_json::to_string_pretty(&raw).expect("a manifest always serializes")
    }

    /// `name@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// This manifest with its source rewritten to a `local_so` library named `file_name`,
    /// next to the manifest: what every staged, installed, packed or git-built copy holds.
    pub fn with_local_library(&self, file_name: impl Into<PathBuf>) -> Manifest {
        Manifest {
            source: Source::LocalSo {
                path: file_name.into(),
            },
            ..self.clone()
        }
    }
}

/// Reads a manifest file: no link followed, nothing but a regular file, at most
/// [`MAX_MANIFEST_BYTES`].
pub(crate) fn read_manifest_file(path: &Path) -> Result<String, ManifestError> {
    use std::io::Read;
    let read_err = |source| ManifestError::Read {
        path: path.to_owned(),
        source,
    };
    let not_a_file = |kind| ManifestError::NotAFile {
        path: path.to_owned(),
        kind,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut opts, libc::O_NOFOLLOW | libc::O_NONBLOCK);
    let file = match opts.open(path) {
        Ok(f) => f,
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(not_a_file("a symbolic link"))
        }
        Err(e) => return Err(read_err(e)),
    };
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(not_a_file(if meta.is_dir() {
            "a directory"
        } else {
            "a special file (FIFO, socket or device)"
        }));
    }
    let too_large = || ManifestError::TooLarge {
        path: path.to_owned(),
        limit: MAX_MANIFEST_BYTES,
    };
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(too_large());
    }
    let mut text = String::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    if text.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(too_large());
    }
    Ok(text)
}

/// serde_json appends " at line L column C"; the path already says where.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Turns a manifest whose library is not next to it (`remote_git`) into one that is, by
/// fetching and building it. The runtime asks; the packaging layer answers
/// (`git::GitSources`). Plain `local_so` manifests never reach a resolver.
pub trait SourceResolver: Send + Sync + std::fmt::Debug {
    /// The manifest and manifest path of a local copy of the plugin `manifest` (read from
    /// `manifest_path`) describes. With `offline`, only what is already cached may be used.
    fn localize(
        &self,
        manifest: &Manifest,
        manifest_path: &Path,
        offline: bool,
    ) -> Result<(Manifest, PathBuf), crate::error::LoadError>;
}

//! `remote_git` sources: clone with libgit2, build with cargo, cache by URL and commit.
//!
//! **Building a repository runs its code**: its `build.rs`, proc macros and
//! `.cargo/config.toml` run with your permissions. Only build repositories you trust.
//!
//! [`fetch_and_build`] goes resolve → clone → build → stage:
//! 1. a branch or tag is resolved to a commit by asking the remote for its refs (no clone);
//!    a full 40-hex commit needs no network;
//! 2. the commit is cloned with libgit2 into the cache (under [`GitOptions::cache_dir`]:
//!    `URLKEY/COMMIT/src`);
//! 3. the crate is built with cargo (`--locked` when a `Cargo.lock` exists);
//! 4. the library, its manifest and `provenance.json` (the URL, the resolved commit, rustc's
//!    version and the target triple) are staged in `URLKEY/COMMIT/build-KEY`, one per subdir
//!    and profile, through the same assemble-and-rename path installs use.
//!
//! A second build of the same commit reuses the staged build: no clone, no build.
//!
//! ```no_run
//! use plg_loader::git::{fetch_and_build, GitOptions, NoProgress};
//!
//! let mut opts = GitOptions::new("/tmp/plg-git-cache");
//! opts.allowed_schemes.push("file".into());
//! let built = fetch_and_build("file:///srv/git/hello.git", Some("v1.2.0"), None, &opts, &NoProgress)?;
//! println!("{} at {}", built.manifest.id(), built.provenance.commit);
//! # Ok::<(), plg_loader::git::GitError>(())
//! ```

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    manifest::{git_url::GitUrl, Manifest, Source, MANIFEST_FILE},
    packaging::build::{build_crate, BuildOptions},
    plugins_dir::{ConfigError, PluginsDir},
};

mod cache;
mod progress;
mod remote;
mod sources;

pub use crate::error::GitError;
pub use progress::{GitProgress, NoProgress, Phase};
pub use sources::GitSources;

use cache::RepoCache;

/// The schemes allowed unless configured otherwise.
pub const DEFAULT_SCHEMES: &[&str] = &["https", "ssh"];

/// How to fetch and build.
#[derive(Debug, Clone)]
pub struct GitOptions {
    /// URL schemes allowed (`https`, `ssh`; add `file` for local repositories).
    pub allowed_schemes: Vec<String>,
    /// Where clones and builds are cached.
    pub cache_dir: PathBuf,
    /// Also fetch submodules (off by default).
    pub fetch_submodules: bool,
    /// Never touch the network: only a cached build of a full commit is used.
    pub offline: bool,
    /// How cargo runs (release by default; `--locked` is added when a Cargo.lock exists;
    /// the target directory defaults to one per cached commit).
    pub build: BuildOptions,
}

impl GitOptions {
    /// The options a plugins directory asks for: caching in `PLUGINS_DIR/.plg/git-cache`,
    /// with the schemes of its `.plg/config.json` (`git_schemes`; default https and ssh).
    pub fn for_plugins_dir(plugins_dir: &PluginsDir) -> Result<Self, ConfigError> {
        let mut opts = Self::new(plugins_dir.git_cache());
        if let Some(schemes) = plugins_dir.config()?.git_schemes {
            opts.allowed_schemes = schemes;
        }
        Ok(opts)
    }

    /// Checks `url` against these options' scheme allowlist; returns its scheme.
    pub fn check_url(&self, url: &str) -> Result<String, GitError> {
        check_url(url, &self.allowed_schemes)
    }

    /// The defaults, caching in `cache_dir`.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            allowed_schemes: DEFAULT_SCHEMES.iter().map(|s| s.to_string()).collect(),
            cache_dir: cache_dir.into(),
            fetch_submodules: false,
            offline: false,
            // Each commit builds in its own target directory in the cache, never in the
            // shared one: a repository's build scripts must not reach other builds' output.
            build: BuildOptions {
                target_dir: None,
                ..BuildOptions::default()
            },
        }
    }
}

/// Where a build came from, stored as `provenance.json` beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The repository URL.
    pub url: String,
    /// The rev asked for.
    pub rev: Option<String>,
    /// The commit it resolved to.
    pub commit: String,
    /// The crate's directory in the repository.
    pub subdir: Option<PathBuf>,
    /// `rustc -V`.
    pub rustc: String,
    /// The target triple built for.
    pub target: String,
    /// `name@version` of the plugin built.
    pub plugin: String,
}

/// A built plugin from a repository.
#[derive(Debug, Clone)]
pub struct GitBuild {
    /// The manifest of the built plugin (`local_so`, pointing at the library in `dir`).
    pub manifest: Manifest,
    /// The staged directory: `plugin.json`, the library, `provenance.json`.
    pub dir: PathBuf,
    /// Where it came from.
    pub provenance: Provenance,
    /// `true` if the cache was used (no clone, no build).
    pub reused: bool,
}

impl GitBuild {
    /// The staged manifest's path.
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST_FILE)
    }

    /// The built library's path.
    pub fn library_path(&self) -> PathBuf {
        match &self.manifest.source {
            Source::LocalSo { path } => self.dir.join(path),
            Source::RemoteGit { .. } | Source::Exec { .. } => {
                unreachable!("a git build is staged as local_so")
            }
        }
    }
}

/// Checks `url` against the allowlist and returns its scheme.
pub fn check_url(url: &str, allowed: &[String]) -> Result<String, GitError> {
    check_git_url(&GitUrl::new(url), allowed)
}

fn check_git_url(url: &GitUrl, allowed: &[String]) -> Result<String, GitError> {
    let scheme = url.scheme().ok_or_else(|| GitError::BadUrl {
        url: url.redacted(),
        reason: "no scheme".into(),
    })?;
    if url.clean().contains("://") {
        if let Err(e) = url::Url::parse(url.clean()) {
            return Err(GitError::BadUrl {
                url: url.redacted(),
                reason: e.to_string(),
            });
        }
    }
    if !allowed.iter().any(|a| a.eq_ignore_ascii_case(&scheme)) {
        return Err(GitError::SchemeNotAllowed {
            url: url.redacted(),
            scheme,
            allowed: allowed.to_vec(),
        });
    }
    Ok(scheme)
}

/// Fetches `url` at `rev`, builds the plugin crate at `subdir`, and stages it in the cache;
/// or returns the cached build of that commit.
///
/// Credentials in `url` (`https://user:password@host/…`) are taken out first ([`GitUrl`]):
/// libgit2 gets the URL without them, and them only through its credentials callback, so
/// they are never written to the cache (`.git/config`, the reflog, `provenance.json`) nor
/// shown in an error.
pub fn fetch_and_build(
    url: &str,
    rev: Option<&str>,
    subdir: Option<&Path>,
    opts: &GitOptions,
    progress: &dyn GitProgress,
) -> Result<GitBuild, GitError> {
    fetch_and_build_url(&GitUrl::new(url), rev, subdir, opts, progress)
}

fn fetch_and_build_url(
    url: &GitUrl,
    rev: Option<&str>,
    subdir: Option<&Path>,
    opts: &GitOptions,
    progress: &dyn GitProgress,
) -> Result<GitBuild, GitError> {
    check_git_url(url, &opts.allowed_schemes)?;
    let cache = RepoCache::new(&opts.cache_dir, url);
    let release = opts.build.release;
    let not_cached = || GitError::NotCached {
        url: url.redacted(),
        rev: rev.map(str::to_owned),
    };

    progress.phase(Phase::Resolve);
    let known = match rev {
        Some(r) if remote::is_full_commit(r) => Some(r.to_ascii_lowercase()),
        _ if opts.offline => return Err(not_cached()),
        _ => remote::resolve_remotely(url, rev)?,
    };
    if let Some(hit) = known
        .as_deref()
        .and_then(|c| cache.cached(c, subdir, release))
    {
        progress.phase(Phase::Done);
        return Ok(hit);
    }
    if opts.offline {
        return Err(not_cached());
    }

    progress.phase(Phase::Clone);
    cache.make_dir()?;
    let (commit, checkout) =
        remote::clone_at(url, rev, known.as_deref(), cache.dir(), opts, progress)?;
    let src = cache.keep_checkout(&commit, &checkout)?;
    if let Some(hit) = cache.cached(&commit, subdir, release) {
        progress.phase(Phase::Done);
        return Ok(hit);
    }

    progress.phase(Phase::Build);
    let crate_dir = crate_dir(&src, subdir).ok_or_else(|| GitError::NoSubdir {
        url: url.redacted(),
        commit: commit.clone(),
        subdir: subdir.map(Path::to_owned).unwrap_or_default(),
    })?;
    let mut build = opts.build.clone();
    build.locked = crate_dir.join("Cargo.lock").is_file() || src.join("Cargo.lock").is_file();
    if build.target_dir.is_none() {
        build.target_dir = Some(cache.target_dir(&commit));
    }
    let built = build_crate(&crate_dir, &build).map_err(|source| GitError::Build {
        url: url.redacted(),
        commit: commit.clone(),
        source: Box::new(source),
    })?;

    let staged = cache.stage(&commit, rev, subdir, release, &built)?;
    progress.phase(Phase::Done);
    Ok(staged)
}

/// The crate directory `subdir` of the checkout `src`, if it is a directory that stays
/// inside the checkout (no `..`, no absolute path, no symlink out).
fn crate_dir(src: &Path, subdir: Option<&Path>) -> Option<PathBuf> {
    let Some(subdir) = subdir else {
        return Some(src.to_owned());
    };
    let relative = subdir
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    let dir = src.join(subdir);
    let inside = dir
        .canonicalize()
        .ok()
        .zip(src.canonicalize().ok())
        .is_some_and(|(d, s)| d.starts_with(s));
    (relative && inside && dir.is_dir()).then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(extra: &[&str]) -> Vec<String> {
        DEFAULT_SCHEMES
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn schemes_are_checked_against_the_allowlist() {
        assert_eq!(
            check_url("https://example.invalid/r.git", &allowed(&[])).unwrap(),
            "https"
        );
        assert_eq!(
            check_url("git@example.invalid:r.git", &allowed(&[])).unwrap(),
            "ssh"
        );
        assert!(matches!(
            check_url("file:///srv/r.git", &allowed(&[])),
            Err(GitError::SchemeNotAllowed { .. })
        ));
        assert!(check_url("file:///srv/r.git", &allowed(&["file"])).is_ok());
        assert!(matches!(
            check_url("http://example.invalid/r.git", &allowed(&[])),
            Err(GitError::SchemeNotAllowed { .. })
        ));
        assert!(matches!(
            check_url("/srv/r.git", &allowed(&["file"])),
            Err(GitError::BadUrl { .. })
        ));
        assert!(matches!(
            check_url("not a url", &allowed(&[])),
            Err(GitError::BadUrl { .. })
        ));
    }
}

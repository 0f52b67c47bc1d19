//! `remote_git` sources: clone with libgit2, build with cargo, cache by URL and commit.
//!
//! **Building a repository runs its code**: its `build.rs`, proc macros and
//! `.cargo/config.toml` run with your permissions. Only build repositories you trust.
//!
//! Cache layout, under [`GitOptions::cache_dir`]:
//! `URLKEY/COMMIT/src` (the checkout), `URLKEY/COMMIT/target` (cargo's), and
//! `URLKEY/COMMIT/build-KEY` (one per subdir and profile: `plugin.json`, the library and
//! `provenance.json`, which records the
//! URL, the resolved commit, rustc's version and the target triple). A second build of the
//! same commit reuses `build` with no clone and no build. A branch or tag is resolved to a
//! commit by asking the remote for its refs (no clone); a full 40-hex commit needs no network.
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

use std::path::{Path, PathBuf};

use git2::{build::CheckoutBuilder, Direction, FetchOptions, RemoteCallbacks, Repository};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{
    build::{build_crate, BuildError, BuildOptions},
    install::unique,
    manifest::{Manifest, Source, MANIFEST_FILE},
};

/// The schemes allowed unless configured otherwise.
pub const DEFAULT_SCHEMES: &[&str] = &["https", "ssh"];

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
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> GitError + '_ {
    move |source| GitError::Io {
        path: path.to_owned(),
        source,
    }
}

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
    /// The defaults, caching in `cache_dir`.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            allowed_schemes: DEFAULT_SCHEMES.iter().map(|s| s.to_string()).collect(),
            cache_dir: cache_dir.into(),
            fetch_submodules: false,
            offline: false,
            build: BuildOptions::default(),
        }
    }
}

/// Progress reports; the CLI draws bars from them.
pub trait GitProgress: Sync {
    /// A phase starts: `resolve`, `clone`, `build` or `done`.
    fn phase(&self, _phase: &str) {}
    /// Objects received while cloning.
    fn transfer(&self, _received: usize, _total: usize) {}
}

/// Reports nothing.
pub struct NoProgress;

impl GitProgress for NoProgress {}

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
}

/// Checks `url` against the allowlist and returns its scheme.
pub fn check_url(url: &str, allowed: &[String]) -> Result<String, GitError> {
    let scheme = match url::Url::parse(url) {
        Ok(u) if u.scheme().len() > 1 => u.scheme().to_owned(),
        _ => match url.split_once(':') {
            // scp-like `user@host:path`
            Some((host, path)) if host.contains('@') && !host.contains('/') && !path.is_empty() => {
                "ssh".to_owned()
            }
            _ => {
                return Err(GitError::BadUrl {
                    url: redact(url),
                    reason: "no scheme".into(),
                })
            }
        },
    };
    if !allowed.iter().any(|a| a.eq_ignore_ascii_case(&scheme)) {
        return Err(GitError::SchemeNotAllowed {
            url: redact(url),
            scheme,
            allowed: allowed.to_vec(),
        });
    }
    Ok(scheme)
}

/// `url` without any user name or password, for storing and printing.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

fn is_full_commit(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

fn url_key(url: &str) -> String {
    hex::encode(&ring::digest::digest(&ring::digest::SHA256, url.as_bytes()).as_ref()[..12])
}

/// Resolves `rev` (None: the remote's HEAD) to a commit by listing the remote's refs.
/// `Ok(None)` means the rev is not a ref name (it may still be an abbreviated commit).
fn resolve_remotely(url: &str, rev: Option<&str>) -> Result<Option<String>, GitError> {
    let fetch_err = |e: git2::Error| GitError::Fetch {
        url: redact(url),
        message: e.message().to_owned(),
    };
    let mut remote = git2::Remote::create_detached(url).map_err(fetch_err)?;
    remote.connect(Direction::Fetch).map_err(fetch_err)?;
    let heads = remote.list().map_err(fetch_err)?;
    let wanted: Vec<String> = match rev {
        None => vec!["HEAD".into()],
        Some(r) => vec![
            format!("refs/tags/{r}^{{}}"),
            format!("refs/tags/{r}"),
            format!("refs/heads/{r}"),
            r.to_owned(),
        ],
    };
    for w in &wanted {
        if let Some(h) = heads.iter().find(|h| h.name() == w) {
            return Ok(Some(h.oid().to_string()));
        }
    }
    Ok(None)
}

fn rustc_facts() -> (String, String) {
    let out = std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let field = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into())
    };
    (
        out.lines().next().unwrap_or("rustc (unknown)").to_owned(),
        field("host:"),
    )
}

/// The build directory of one (subdir, profile) of a cached commit.
fn build_dir(commit_dir: &Path, subdir: Option<&Path>, release: bool) -> PathBuf {
    let key = format!(
        "{}|{}",
        subdir
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        if release { "release" } else { "debug" }
    );
    commit_dir.join(format!(
        "build-{}",
        &hex::encode(ring::digest::digest(&ring::digest::SHA256, key.as_bytes()))[..16]
    ))
}

/// A cached build, if there is one for exactly this URL, commit and subdir.
fn cached(build_dir: &Path, url: &str, commit: &str, subdir: Option<&Path>) -> Option<GitBuild> {
    let provenance: Provenance =
        serde_json::from_str(&std::fs::read_to_string(build_dir.join("provenance.json")).ok()?)
            .ok()?;
    if provenance.url != redact(url)
        || provenance.commit != commit
        || provenance.subdir.as_deref() != subdir
    {
        return None;
    }
    let manifest = Manifest::from_path(build_dir.join(MANIFEST_FILE)).ok()?;
    Some(GitBuild {
        manifest,
        dir: build_dir.to_owned(),
        provenance,
        reused: true,
    })
}

/// Fetches `url` at `rev`, builds the plugin crate at `subdir`, and stages it in the cache;
/// or returns the cached build of that commit.
pub fn fetch_and_build(
    url: &str,
    rev: Option<&str>,
    subdir: Option<&Path>,
    opts: &GitOptions,
    progress: &dyn GitProgress,
) -> Result<GitBuild, GitError> {
    check_url(url, &opts.allowed_schemes)?;
    let repo_dir = opts.cache_dir.join(url_key(url));
    progress.phase("resolve");
    let known = match rev {
        Some(r) if is_full_commit(r) => Some(r.to_ascii_lowercase()),
        _ if opts.offline => {
            return Err(GitError::NotCached {
                url: redact(url),
                rev: rev.map(str::to_owned),
            })
        }
        _ => resolve_remotely(url, rev)?,
    };
    if let Some(commit) = &known {
        let dir = build_dir(&repo_dir.join(commit), subdir, opts.build.release);
        if let Some(hit) = cached(&dir, url, commit, subdir) {
            progress.phase("done");
            return Ok(hit);
        }
    }
    if opts.offline {
        return Err(GitError::NotCached {
            url: redact(url),
            rev: rev.map(str::to_owned),
        });
    }

    // Clone into a temporary directory, then check out the commit.
    progress.phase("clone");
    std::fs::create_dir_all(&repo_dir).map_err(io_err(&repo_dir))?;
    let tmp = repo_dir.join(format!(".clone-{}", unique()));
    let result = (|| {
        let mut callbacks = RemoteCallbacks::new();
        callbacks.transfer_progress(|p| {
            progress.transfer(p.received_objects(), p.total_objects());
            true
        });
        let mut fetch = FetchOptions::new();
        fetch.remote_callbacks(callbacks);
        let repo = git2::build::RepoBuilder::new()
            .fetch_options(fetch)
            .clone(url, &tmp)
            .map_err(|e| GitError::Fetch {
                url: redact(url),
                message: e.message().to_owned(),
            })?;
        let commit = match &known {
            Some(c) => c.clone(),
            None => resolve_locally(&repo, rev.unwrap_or("HEAD")).ok_or_else(|| {
                GitError::UnknownRev {
                    url: redact(url),
                    rev: rev.unwrap_or("HEAD").to_owned(),
                }
            })?,
        };
        let oid = git2::Oid::from_str(&commit).map_err(|_| GitError::UnknownRev {
            url: redact(url),
            rev: commit.clone(),
        })?;
        if repo.find_commit(oid).is_err() {
            return Err(GitError::UnknownRev {
                url: redact(url),
                rev: rev.unwrap_or(&commit).to_owned(),
            });
        }
        let git = |e: git2::Error| GitError::Fetch {
            url: redact(url),
            message: e.message().to_owned(),
        };
        repo.set_head_detached(oid).map_err(git)?;
        repo.checkout_head(Some(CheckoutBuilder::new().force()))
            .map_err(git)?;
        if opts.fetch_submodules {
            for mut sm in repo.submodules().map_err(git)? {
                // Submodule URLs obey the same allowlist as the repository's own.
                if let Some(sub_url) = sm.url() {
                    if !sub_url.starts_with("./") && !sub_url.starts_with("../") {
                        check_url(sub_url, &opts.allowed_schemes)?;
                    }
                }
                sm.update(true, None).map_err(git)?;
            }
        }
        Ok(commit)
    })();
    let commit = match result {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let commit_dir = repo_dir.join(&commit);
    let src = commit_dir.join("src");
    std::fs::create_dir_all(&commit_dir).map_err(io_err(&commit_dir))?;
    if src.exists() {
        let _ = std::fs::remove_dir_all(&tmp); // another process checked it out meanwhile
    } else {
        std::fs::rename(&tmp, &src).map_err(io_err(&src))?;
    }
    let dest = build_dir(&commit_dir, subdir, opts.build.release);
    if let Some(hit) = cached(&dest, url, &commit, subdir) {
        progress.phase("done");
        return Ok(hit);
    }

    // Build.
    progress.phase("build");
    let crate_dir = match subdir {
        Some(s) => src.join(s),
        None => src.clone(),
    };
    let inside = crate_dir
        .canonicalize()
        .ok()
        .zip(src.canonicalize().ok())
        .is_some_and(|(c, s)| c.starts_with(s));
    let relative = subdir.is_none_or(|s| {
        s.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
    });
    if !crate_dir.is_dir() || !inside || !relative {
        return Err(GitError::NoSubdir {
            url: redact(url),
            commit,
            subdir: subdir.map(Path::to_owned).unwrap_or_default(),
        });
    }
    let mut build = opts.build.clone();
    build.locked = crate_dir.join("Cargo.lock").is_file() || src.join("Cargo.lock").is_file();
    if build.target_dir.is_none() {
        build.target_dir = Some(commit_dir.join("target"));
    }
    let built = build_crate(&crate_dir, &build).map_err(|source| GitError::Build {
        url: redact(url),
        commit: commit.clone(),
        source: Box::new(source),
    })?;

    // Stage the library, the manifest and the provenance, then rename into place.
    let lib_name = built
        .library
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("plugin"));
    let mut manifest = built.manifest.clone();
    manifest.source = Source::LocalSo {
        path: lib_name.clone(),
    };
    let (rustc, target) = rustc_facts();
    let provenance = Provenance {
        url: redact(url),
        rev: rev.map(str::to_owned),
        commit: commit.clone(),
        subdir: subdir.map(Path::to_owned),
        rustc,
        target,
        plugin: manifest.id(),
    };
    let stage = commit_dir.join(format!(".build-{}", unique()));
    let write = || -> Result<(), GitError> {
        std::fs::create_dir_all(&stage).map_err(io_err(&stage))?;
        std::fs::copy(&built.library, stage.join(&lib_name)).map_err(io_err(&stage))?;
        std::fs::write(stage.join(MANIFEST_FILE), manifest.to_json() + "\n")
            .map_err(io_err(&stage))?;
        std::fs::write(
            stage.join("provenance.json"),
            serde_json::to_string_pretty(&provenance).expect("serializes") + "\n",
        )
        .map_err(io_err(&stage))?;
        if dest.exists() {
            let _ = std::fs::remove_dir_all(&dest);
        }
        std::fs::rename(&stage, &dest).map_err(io_err(&dest))
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_dir_all(&stage);
        return Err(e);
    }
    progress.phase("done");
    Ok(GitBuild {
        manifest,
        dir: dest,
        provenance,
        reused: false,
    })
}

fn resolve_locally(repo: &Repository, rev: &str) -> Option<String> {
    let candidates = [
        format!("refs/remotes/origin/{rev}"),
        format!("refs/tags/{rev}"),
        rev.to_owned(),
    ];
    candidates.iter().find_map(|c| {
        repo.revparse_single(c)
            .ok()?
            .peel_to_commit()
            .ok()
            .map(|c| c.id().to_string())
    })
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
    fn credentials_are_stripped() {
        assert_eq!(
            redact("https://u:tok@h.invalid/r.git"),
            "https://h.invalid/r.git"
        );
        assert_eq!(redact("https://h.invalid/r.git"), "https://h.invalid/r.git");
        assert_eq!(redact("git@h.invalid:r.git"), "git@h.invalid:r.git");
    }

    #[test]
    fn builds_are_keyed_by_subdir_and_profile() {
        let c = Path::new("/c");
        assert_ne!(
            build_dir(c, Some(Path::new("a")), true),
            build_dir(c, Some(Path::new("b")), true)
        );
        assert_ne!(build_dir(c, None, true), build_dir(c, None, false));
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

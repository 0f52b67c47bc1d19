//! The git cache of one repository, under [`GitOptions::cache_dir`](super::GitOptions):
//! `URLKEY/COMMIT/src` (the checkout), `URLKEY/COMMIT/target` (cargo's), and
//! `URLKEY/COMMIT/build-KEY` (one per subdir and profile: `plugin.json`, the library and
//! `provenance.json`).
//!
//! The cache directory and every directory plg makes in it are readable by their owner only
//! (0700 on Unix): the cache holds what private repositories contain. Everything else in it
//! (libgit2's checkout, cargo's target directory, staged builds) lies inside those.

use std::path::{Path, PathBuf};

use super::{GitBuild, GitError, Provenance};
use crate::{
    error::IoError,
    manifest::{git_url::GitUrl, Manifest, MANIFEST_FILE},
    packaging::{
        build::Built,
        install::place::{assemble, write_plugin},
    },
};

const PROVENANCE_FILE: &str = "provenance.json";

/// The cache of one repository URL.
pub(super) struct RepoCache {
    /// The whole cache ([`GitOptions::cache_dir`](super::GitOptions::cache_dir)).
    root: PathBuf,
    /// This URL's directory in it.
    dir: PathBuf,
    /// The URL without credentials, as recorded in provenance.
    url: String,
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
}

impl RepoCache {
    pub(super) fn new(cache_dir: &Path, url: &GitUrl) -> Self {
        // Keyed by the URL without user information, which is also what provenance records:
        // the same key as `redact(raw URL)` gave, so existing caches stay valid.
        let url = url.redacted();
        Self {
            root: cache_dir.to_owned(),
            dir: cache_dir.join(&sha256_hex(url.as_bytes())[..24]),
            url,
        }
    }

    /// Makes the cache directory (if missing) and this URL's directory in it, both 0700. The
    /// cache directory's parents are made as usual (they may be shared, like the plugins
    /// directory's `.plg`); an existing directory's mode is left as it is.
    pub(super) fn make_dir(&self) -> Result<(), GitError> {
        if let Some(parent) = self.root.parent() {
            std::fs::create_dir_all(parent).map_err(IoError::at::<GitError>(parent))?;
        }
        private_dir(&self.root).map_err(IoError::at::<GitError>(&self.root))?;
        private_dir(&self.dir).map_err(IoError::at::<GitError>(&self.dir))
    }

    /// The repository's directory, holding one directory per commit.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn commit_dir(&self, commit: &str) -> PathBuf {
        self.dir.join(commit)
    }

    /// The checkout of `commit`.
    pub(super) fn src(&self, commit: &str) -> PathBuf {
        self.commit_dir(commit).join("src")
    }

    /// cargo's target directory for builds of `commit`.
    pub(super) fn target_dir(&self, commit: &str) -> PathBuf {
        self.commit_dir(commit).join("target")
    }

    /// The build directory of one (subdir, profile) of `commit`.
    fn build_dir(&self, commit: &str, subdir: Option<&Path>, release: bool) -> PathBuf {
        let key = format!(
            "{}|{}",
            subdir
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            if release { "release" } else { "debug" }
        );
        self.commit_dir(commit)
            .join(format!("build-{}", &sha256_hex(key.as_bytes())[..16]))
    }

    /// Moves a fresh checkout of `commit` into place; if another process placed one
    /// meanwhile, the fresh one is dropped.
    pub(super) fn keep_checkout(&self, commit: &str, checkout: &Path) -> Result<PathBuf, GitError> {
        let commit_dir = self.commit_dir(commit);
        let src = self.src(commit);
        private_dir(&commit_dir).map_err(IoError::at::<GitError>(&commit_dir))?;
        if src.exists() {
            let _ = std::fs::remove_dir_all(checkout);
        } else {
            std::fs::rename(checkout, &src).map_err(IoError::at::<GitError>(&src))?;
        }
        Ok(src)
    }

    /// The cached build of exactly this URL, commit, subdir and profile, if there is one.
    pub(super) fn cached(
        &self,
        commit: &str,
        subdir: Option<&Path>,
        release: bool,
    ) -> Option<GitBuild> {
        let dir = self.build_dir(commit, subdir, release);
        let text = std::fs::read_to_string(dir.join(PROVENANCE_FILE)).ok()?;
        let provenance: Provenance = serde_json::from_str(&text).ok()?;
        if provenance.url != self.url
            || provenance.commit != commit
            || provenance.subdir.as_deref() != subdir
        {
            return None;
        }
        let manifest = Manifest::from_path(dir.join(MANIFEST_FILE)).ok()?;
        Some(GitBuild {
            manifest,
            dir,
            provenance,
            reused: true,
        })
    }

    /// Stages a build of `commit` (the library, its manifest and `provenance.json`) in its
    /// build directory, through the same assemble-and-rename path installs use.
    pub(super) fn stage(
        &self,
        commit: &str,
        rev: Option<&str>,
        subdir: Option<&Path>,
        release: bool,
        built: &Built,
    ) -> Result<GitBuild, GitError> {
        let dest = self.build_dir(commit, subdir, release);
        let (rustc, target) = rustc_facts();
        let mut staged = None;
        assemble::<GitError>(
            &dest,
            true,
            || unreachable!("a git build replaces its stale copy"),
            |tmp| {
                let manifest = write_plugin::<GitError>(tmp, &built.manifest, &built.library)?;
                let provenance = Provenance {
                    url: self.url.clone(),
                    rev: rev.map(str::to_owned),
                    commit: commit.to_owned(),
                    subdir: subdir.map(Path::to_owned),
                    rustc,
                    target,
                    plugin: manifest.id(),
                };
                let path = tmp.join(PROVENANCE_FILE);
                let json = serde_json::to_string_pretty(&provenance).expect("serializes") + "\n";
                std::fs::write(&path, json).map_err(IoError::at::<GitError>(&path))?;
                staged = Some((manifest, provenance));
                Ok(())
            },
        )?;
        let (manifest, provenance) = staged.expect("assemble ran fill");
        Ok(GitBuild {
            manifest,
            dir: dest,
            provenance,
            reused: false,
        })
    }
}

/// Creates `dir` and any missing parents with mode 0700 on Unix; an existing directory is left
/// as it is.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// `rustc -vV`'s first line and host triple, for provenance.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_are_keyed_by_subdir_and_profile() {
        let c = RepoCache::new(Path::new("/c"), &GitUrl::new("https://h.invalid/r.git"));
        assert_ne!(
            c.build_dir("abc", Some(Path::new("a")), true),
            c.build_dir("abc", Some(Path::new("b")), true)
        );
        assert_ne!(
            c.build_dir("abc", None, true),
            c.build_dir("abc", None, false)
        );
    }

    #[test]
    fn the_cache_key_and_provenance_never_hold_credentials() {
        let with = RepoCache::new(
            Path::new("/c"),
            &GitUrl::new("https://u:S3CRET@h.invalid/r.git"),
        );
        let without = RepoCache::new(Path::new("/c"), &GitUrl::new("https://h.invalid/r.git"));
        assert!(!with.dir().to_string_lossy().contains("S3CRET"));
        assert_eq!(with.url, "https://h.invalid/r.git");
        // Keyed by the clean URL: with or without credentials, one cache.
        assert_eq!(with.dir(), without.dir());
    }

    #[cfg(unix)]
    #[test]
    fn the_cache_directories_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("shared/git-cache");
        let c = RepoCache::new(&root, &GitUrl::new("https://h.invalid/r.git"));
        c.make_dir().unwrap();
        c.make_dir().unwrap(); // again: nothing to do
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(c.dir()), 0o700);
        // The parents are not the cache's: made as usual (by the umask), not forced private.
        std::fs::create_dir(tmp.path().join("usual")).unwrap();
        assert_eq!(
            mode(&tmp.path().join("shared")),
            mode(&tmp.path().join("usual"))
        );
    }
}

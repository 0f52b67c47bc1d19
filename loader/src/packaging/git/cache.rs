//! The git cache of one repository, under [`GitOptions::cache_dir`](super::GitOptions):
//! `URLKEY/COMMIT/src` (the checkout), `URLKEY/COMMIT/target` (cargo's), and
//! `URLKEY/COMMIT/build-KEY` (one per subdir and profile: `plugin.json`, the library and
//! `provenance.json`).

use std::path::{Path, PathBuf};

use super::{GitBuild, GitError, Provenance};
use crate::{
    error::IoError,
    manifest::{git_url::redact, Manifest, MANIFEST_FILE},
    packaging::{
        build::Built,
        install::place::{assemble, write_plugin},
    },
};

const PROVENANCE_FILE: &str = "provenance.json";

/// The cache of one repository URL.
pub(super) struct RepoCache {
    dir: PathBuf,
    /// The URL without credentials, as recorded in provenance.
    url: String,
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
}

impl RepoCache {
    pub(super) fn new(cache_dir: &Path, url: &str) -> Self {
        // Keyed by the URL without credentials: the key is a directory name anyone can list.
        let url = redact(url);
        Self {
            dir: cache_dir.join(&sha256_hex(url.as_bytes())[..24]),
            url,
        }
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
        super::remote::private_dir(&commit_dir).map_err(IoError::at::<GitError>(&commit_dir))?;
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
        let c = RepoCache::new(Path::new("/c"), "https://h.invalid/r.git");
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
        let c = RepoCache::new(Path::new("/c"), "https://u:S3CRET@h.invalid/r.git");
        assert!(!c.dir().to_string_lossy().contains("S3CRET"));
        assert_eq!(c.url, "https://h.invalid/r.git");
    }
}

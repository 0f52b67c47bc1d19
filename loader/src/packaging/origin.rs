//! What a user hands `plg install` or `plg pack`: a bundle file, a plugin crate, a staged
//! plugin directory, or a git URL with an optional `#REV`. Told apart here, once.

use std::{
    convert::Infallible,
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
};

#[cfg(feature = "build")]
use crate::error::InstallError;
use crate::{
    error::BundleError,
    manifest::{git_url, Manifest, Source, MANIFEST_FILE},
};

/// Where a plugin to install or pack comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A `.plg` bundle file.
    Bundle(PathBuf),
    /// A plugin crate (it has a `Cargo.toml`; it is built first) or a staged plugin directory
    /// (`plugin.json` and its library).
    Dir(PathBuf),
    /// A git repository.
    Git(GitRef),
}

/// A git URL and an optional branch, tag or commit: `URL#REV`.
#[derive(Clone, PartialEq, Eq)]
pub struct GitRef {
    /// The repository URL (it may carry credentials: print it with `Display`, which redacts).
    pub url: String,
    /// The branch, tag or commit; `None`: the remote's HEAD.
    pub rev: Option<String>,
}

impl fmt::Display for GitRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&git_url::redact(&self.url))?;
        match &self.rev {
            Some(rev) => write!(f, "#{rev}"),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for GitRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GitRef({self})")
    }
}

impl FromStr for GitRef {
    type Err = Infallible;

    /// Splits `URL#REV`; an empty `#` is no rev.
    fn from_str(s: &str) -> Result<Self, Infallible> {
        Ok(match s.rsplit_once('#') {
            Some((url, rev)) if !rev.is_empty() => GitRef {
                url: url.to_owned(),
                rev: Some(rev.to_owned()),
            },
            Some((url, _)) => GitRef {
                url: url.to_owned(),
                rev: None,
            },
            None => GitRef {
                url: s.to_owned(),
                rev: None,
            },
        })
    }
}

impl FromStr for Origin {
    type Err = Infallible;

    /// An existing path is a directory or a bundle; otherwise a git URL (`scheme://…` or
    /// `user@host:path`, with an optional `#REV`) is a repository; anything else is taken
    /// as a bundle path, which reading then reports missing.
    fn from_str(s: &str) -> Result<Self, Infallible> {
        let path = Path::new(s);
        if path.is_dir() {
            return Ok(Origin::Dir(path.to_owned()));
        }
        if !path.exists() {
            let git: GitRef = s.parse()?;
            if git_url::scheme(&git.url).is_some() {
                return Ok(Origin::Git(git));
            }
        }
        Ok(Origin::Bundle(path.to_owned()))
    }
}

/// The manifest and library path of the staged plugin directory `dir` (a `plugin.json` and
/// its `local_so` library, as `plg build` and `plg install` write them).
pub fn library_of(dir: &Path) -> Result<(Manifest, PathBuf), BundleError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    if !manifest_path.is_file() {
        return Err(BundleError::NotPackable {
            path: dir.to_owned(),
            problem: "has no plugin.json; use a staged plugin directory or a plugin crate".into(),
        });
    }
    let manifest = Manifest::from_path(&manifest_path)?;
    let Source::LocalSo { path: lib } = &manifest.source else {
        return Err(BundleError::NotPackable {
            path: dir.to_owned(),
            problem: "only `local_so` plugins can be packed or installed from a directory; build it first".into(),
        });
    };
    let lib_path = dir.join(lib);
    Ok((manifest, lib_path))
}

/// The manifest and library of the directory `dir`: a plugin crate is built with `build`
/// first; a staged plugin directory is read as it is.
#[cfg(feature = "build")]
pub fn library_in(
    dir: &Path,
    build: &super::build::BuildOptions,
) -> Result<(Manifest, PathBuf), InstallError> {
    if dir.join("Cargo.toml").is_file() {
        let built = super::build::build_crate(dir, build)?;
        Ok((built.manifest, built.library))
    } else {
        Ok(library_of(dir)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_refs_split_at_the_last_hash_and_redact_when_printed() {
        let r: GitRef = "https://u:S3CRET@h.invalid/x.git#v1.2".parse().unwrap();
        assert_eq!(r.url, "https://u:S3CRET@h.invalid/x.git");
        assert_eq!(r.rev.as_deref(), Some("v1.2"));
        assert_eq!(r.to_string(), "https://h.invalid/x.git#v1.2");
        assert!(!format!("{r:?}").contains("S3CRET"));
        let r: GitRef = "git@h.invalid:x.git#".parse().unwrap();
        assert_eq!((r.url.as_str(), r.rev), ("git@h.invalid:x.git", None));
    }

    #[test]
    fn origins_are_told_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_str().unwrap();
        assert_eq!(dir.parse(), Ok(Origin::Dir(tmp.path().to_owned())));
        assert!(matches!(
            "https://h.invalid/x.git#main".parse(),
            Ok(Origin::Git(GitRef { rev: Some(_), .. }))
        ));
        assert!(matches!("git@h.invalid:x.git".parse(), Ok(Origin::Git(_))));
        assert_eq!(
            "hello-1.0.0.plg".parse(),
            Ok(Origin::Bundle("hello-1.0.0.plg".into()))
        );
        // An existing file is a bundle even when its name looks like a URL.
        let odd = tmp.path().join("a@b:c");
        std::fs::write(&odd, "").unwrap();
        assert_eq!(
            odd.to_str().unwrap().parse(),
            Ok(Origin::Bundle(odd.clone()))
        );
    }
}

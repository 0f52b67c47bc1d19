//! Talking to the remote with libgit2: resolve a rev to a commit, clone and check it out.

use std::path::{Path, PathBuf};

use git2::{build::CheckoutBuilder, Direction, FetchOptions, RemoteCallbacks, Repository};

use super::{check_url, progress::GitProgress, GitError, GitOptions};
use crate::{error::IoError, manifest::git_url::redact, plugins_dir::temp_name};

/// `true` for a full 40-hex commit id, which needs no network to resolve.
pub(super) fn is_full_commit(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

fn fetch_err(url: &str) -> impl Fn(git2::Error) -> GitError + '_ {
    move |e| GitError::Fetch {
        url: redact(url),
        message: e.message().to_owned(),
    }
}

/// Resolves `rev` (None: the remote's HEAD) to a commit by listing the remote's refs.
/// `Ok(None)` means the rev is not a ref name (it may still be an abbreviated commit).
pub(super) fn resolve_remotely(url: &str, rev: Option<&str>) -> Result<Option<String>, GitError> {
    let mut remote = git2::Remote::create_detached(url).map_err(fetch_err(url))?;
    remote.connect(Direction::Fetch).map_err(fetch_err(url))?;
    let heads = remote.list().map_err(fetch_err(url))?;
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

/// Clones `url` into a temporary directory under `repo_dir` and checks out `known` (or
/// `rev`, resolved in the clone). Returns the commit and the checkout; the caller moves it
/// into place. On error nothing is left behind.
pub(super) fn clone_at(
    url: &str,
    rev: Option<&str>,
    known: Option<&str>,
    repo_dir: &Path,
    opts: &GitOptions,
    progress: &dyn GitProgress,
) -> Result<(String, PathBuf), GitError> {
    std::fs::create_dir_all(repo_dir).map_err(IoError::at::<GitError>(repo_dir))?;
    let tmp = repo_dir.join(temp_name("clone"));
    match clone_into(&tmp, url, rev, known, opts, progress) {
        Ok(commit) => Ok((commit, tmp)),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

fn clone_into(
    dir: &Path,
    url: &str,
    rev: Option<&str>,
    known: Option<&str>,
    opts: &GitOptions,
    progress: &dyn GitProgress,
) -> Result<String, GitError> {
    let mut callbacks = RemoteCallbacks::new();
    callbacks.transfer_progress(|p| {
        progress.transfer(p.received_objects(), p.total_objects());
        true
    });
    let mut fetch = FetchOptions::new();
    fetch.remote_callbacks(callbacks);
    let repo = git2::build::RepoBuilder::new()
        .fetch_options(fetch)
        .clone(url, dir)
        .map_err(fetch_err(url))?;
    let unknown = |rev: &str| GitError::UnknownRev {
        url: redact(url),
        rev: rev.to_owned(),
    };
    let commit = match known {
        Some(c) => c.to_owned(),
        None => resolve_locally(&repo, rev.unwrap_or("HEAD"))
            .ok_or_else(|| unknown(rev.unwrap_or("HEAD")))?,
    };
    let oid = git2::Oid::from_str(&commit).map_err(|_| unknown(&commit))?;
    if repo.find_commit(oid).is_err() {
        return Err(unknown(rev.unwrap_or(&commit)));
    }
    repo.set_head_detached(oid).map_err(fetch_err(url))?;
    repo.checkout_head(Some(CheckoutBuilder::new().force()))
        .map_err(fetch_err(url))?;
    if opts.fetch_submodules {
        for mut sm in repo.submodules().map_err(fetch_err(url))? {
            // Submodule URLs obey the same allowlist as the repository's own.
            if let Some(sub_url) = sm.url() {
                if !sub_url.starts_with("./") && !sub_url.starts_with("../") {
                    check_url(sub_url, &opts.allowed_schemes)?;
                }
            }
            sm.update(true, None).map_err(fetch_err(url))?;
        }
    }
    Ok(commit)
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

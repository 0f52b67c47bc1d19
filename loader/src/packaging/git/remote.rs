//! Talking to the remote with libgit2: resolve a rev to a commit, clone and check it out.

use std::path::{Path, PathBuf};

use git2::{build::CheckoutBuilder, Direction, FetchOptions, RemoteCallbacks, Repository};

use super::{check_url, progress::GitProgress, GitError, GitOptions};
use crate::{
    error::IoError,
    manifest::git_url::{redact, GitUrl},
    plugins_dir::temp_name,
};

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

/// Callbacks that answer libgit2's credentials request with the URL's user name and
/// password, once (a refused password is not retried forever). libgit2 never sees the
/// password inside a URL, so it cannot store it in `.git/config`, the reflog or a message.
fn callbacks(url: &GitUrl) -> RemoteCallbacks<'_> {
    let mut callbacks = RemoteCallbacks::new();
    if let Some((user, password)) = url.credentials() {
        let mut tried = false;
        callbacks.credentials(move |_url, _user_from_url, allowed| {
            if tried || !allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) {
                return Err(git2::Error::from_str("the URL's credentials were refused"));
            }
            tried = true;
            git2::Cred::userpass_plaintext(user, password.expose())
        });
    }
    callbacks
}

/// Resolves `rev` (None: the remote's HEAD) to a commit by listing the remote's refs.
/// `Ok(None)` means the rev is not a ref name (it may still be an abbreviated commit).
pub(super) fn resolve_remotely(url: &str, rev: Option<&str>) -> Result<Option<String>, GitError> {
    let git_url = GitUrl::new(url);
    let mut remote = git2::Remote::create_detached(git_url.clean()).map_err(fetch_err(url))?;
    // The connection lasts as long as `connection`: list the refs through it.
    let connection = remote
        .connect_auth(Direction::Fetch, Some(callbacks(&git_url)), None)
        .map_err(fetch_err(url))?;
    let heads = connection.list().map_err(fetch_err(url))?;
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
    private_dir(repo_dir).map_err(IoError::at::<GitError>(repo_dir))?;
    let tmp = repo_dir.join(temp_name("clone"));
    match clone_into(&tmp, url, rev, known, opts, progress) {
        Ok(commit) => Ok((commit, tmp)),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            // Nothing was fetched: leave no empty directory for this URL behind.
            let _ = std::fs::remove_dir(repo_dir);
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
    let git_url = GitUrl::new(url);
    let mut callbacks = callbacks(&git_url);
    callbacks.transfer_progress(|p| {
        progress.transfer(p.received_objects(), p.total_objects());
        true
    });
    let mut fetch = FetchOptions::new();
    fetch.remote_callbacks(callbacks);
    let repo = git2::build::RepoBuilder::new()
        .fetch_options(fetch)
        .clone(git_url.clean(), dir)
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

/// Creates `dir` and its missing parents, readable only by their owner (0700 on Unix): the
/// git cache holds what private repositories contain.
pub(super) fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
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

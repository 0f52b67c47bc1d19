//! Talking to the remote with libgit2: resolve a rev to a commit, clone and check it out.

use std::path::{Path, PathBuf};

use git2::{
    build::CheckoutBuilder, Cred, CredentialType, Direction, FetchOptions, RemoteCallbacks,
    Repository,
};

use super::{check_url, progress::GitProgress, GitError, GitOptions};
use crate::{
    manifest::git_url::{redact, GitUrl},
    plugins_dir::temp_name,
};

/// `true` for a full 40-hex commit id, which needs no network to resolve.
pub(super) fn is_full_commit(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

/// libgit2's error, with the URL as [`GitUrl`] prints it. libgit2 only ever saw the clean
/// URL, so its message cannot hold a password either.
fn fetch_err(url: &GitUrl) -> impl Fn(git2::Error) -> GitError + '_ {
    move |e| GitError::Fetch {
        url: url.redacted(),
        message: e.message().to_owned(),
    }
}

/// Callbacks that answer libgit2's credentials request with the user name and password the
/// URL carried: only for the URL's own scheme, host and port (not after a redirect
/// elsewhere), and only once, so a refused password ends the fetch instead of being retried
/// forever. libgit2 never sees them inside a URL, so it cannot store them in `.git/config`,
/// the reflog or a message. A URL that carried none (`ssh://git@host/…` keeps its user name
/// in the URL) gets no callback, as before.
fn callbacks(url: &GitUrl) -> RemoteCallbacks<'_> {
    let mut callbacks = RemoteCallbacks::new();
    if let Some(credentials) = url.credentials() {
        let mut tried = false;
        callbacks.credentials(move |asking, _user_from_url, allowed| {
            if !url.same_origin(asking) {
                return Err(git2::Error::from_str(&format!(
                    "the URL's credentials are sent to {url} only, not to {}",
                    redact(asking)
                )));
            }
            if tried {
                return Err(git2::Error::from_str(
                    "authentication failed: the server refused the URL's user name and password",
                ));
            }
            if !allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
                return Err(git2::Error::from_str(
                    "authentication failed: the server does not take a user name and password",
                ));
            }
            tried = true;
            Cred::userpass_plaintext(credentials.user(), credentials.password().expose())
        });
    }
    callbacks
}

/// Resolves `rev` (None: the remote's HEAD) to a commit by listing the remote's refs.
/// `Ok(None)` means the rev is not a ref name (it may still be an abbreviated commit).
pub(super) fn resolve_remotely(
    url: &GitUrl,
    rev: Option<&str>,
) -> Result<Option<String>, GitError> {
    let mut remote = git2::Remote::create_detached(url.clean()).map_err(fetch_err(url))?;
    // The connection lasts as long as `connection`: list the refs through it.
    let connection = remote
        .connect_auth(Direction::Fetch, Some(callbacks(url)), None)
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
/// into place. `repo_dir` must exist (the cache makes it); on error nothing is left behind,
/// not even an empty `repo_dir`.
pub(super) fn clone_at(
    url: &GitUrl,
    rev: Option<&str>,
    known: Option<&str>,
    repo_dir: &Path,
    opts: &GitOptions,
    progress: &dyn GitProgress,
) -> Result<(String, PathBuf), GitError> {
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
    url: &GitUrl,
    rev: Option<&str>,
    known: Option<&str>,
    opts: &GitOptions,
    progress: &dyn GitProgress,
) -> Result<String, GitError> {
    let mut callbacks = callbacks(url);
    callbacks.transfer_progress(|p| {
        progress.transfer(p.received_objects(), p.total_objects());
        true
    });
    let mut fetch = FetchOptions::new();
    fetch.remote_callbacks(callbacks);
    let repo = git2::build::RepoBuilder::new()
        .fetch_options(fetch)
        .clone(url.clean(), dir)
        .map_err(fetch_err(url))?;
    let unknown = |rev: &str| GitError::UnknownRev {
        url: url.redacted(),
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

//! Credentials in a git URL never reach the terminal, logs, errors or disk: libgit2 gets the
//! URL without them and them only through its credentials callback, for the URL's own host
//! and once. The repository is served over smart HTTP on loopback by `git http-backend`,
//! behind Basic auth.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::mpsc,
    time::Duration,
};

use plg_loader::{
    git::{fetch_and_build, GitBuild, GitError, GitOptions, NoProgress},
    Context, PluginManager,
};
use plg_tests::{
    git_repo, hello_crate_files, plg_bin, target_dir, GitHttpServer, Profile, TempPluginsDir,
};

use crate::logging::capture_logs;
// --- credentials in the URL: a smart-HTTP server on loopback that wants Basic auth ------------

/// The password the server wants. Every wrong password used below contains it too, so one
/// search finds any of them.
const PASSWORD: &str = "S3CRET";

/// The hello crate in a bare repository (`bare.git`), served over HTTP on 127.0.0.1 to
/// `user:password` only. Returns the repository's guard, the server and the commit.
fn http_hello(user: &str, password: &str) -> (tempfile::TempDir, GitHttpServer, String) {
    let (repo, _file_url, commit) = git_repo(&hello_crate_files());
    let server = GitHttpServer::start(repo.path(), user, password);
    (repo, server, commit)
}

/// Options for these tests: `http` allowed, debug builds in the git tests' target dir.
fn http_options(cache: &Path) -> GitOptions {
    let mut o = GitOptions::new(cache);
    o.allowed_schemes.push("http".into());
    o.build.release = false;
    o.build.target_dir = Some(target_dir().join("plg-git-tests"));
    o
}

/// Every regular file under `dir` (links are not followed).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.map(Result::unwrap) {
        let (path, kind) = (e.path(), e.file_type().unwrap());
        if kind.is_dir() {
            out.extend(files_under(&path));
        } else if kind.is_file() {
            out.push(path);
        }
    }
    out
}

fn holds_password(bytes: &[u8]) -> bool {
    bytes
        .windows(PASSWORD.len())
        .any(|w| w == PASSWORD.as_bytes())
}

/// No file under `dir` and none of `texts` holds [`PASSWORD`]; returns how many files were
/// searched.
fn assert_no_password(dir: &Path, texts: &[&[u8]]) -> usize {
    let files = files_under(dir);
    for f in &files {
        assert!(
            !holds_password(&std::fs::read(f).unwrap()),
            "{} holds the password:\n{}",
            f.display(),
            String::from_utf8_lossy(&std::fs::read(f).unwrap())
        );
    }
    for t in texts {
        assert!(
            !holds_password(t),
            "the password is shown: {}",
            String::from_utf8_lossy(t)
        );
    }
    files.len()
}

/// The mode bits of `path`.
#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `fetch_and_build` on another thread: a client that retries a refused password forever
/// fails the test instead of hanging it.
fn fetch_with_deadline(url: &str, rev: &str, opts: &GitOptions) -> Result<GitBuild, GitError> {
    let (tx, rx) = mpsc::channel();
    let (url, rev, opts) = (url.to_owned(), rev.to_owned(), opts.clone());
    std::thread::spawn(move || {
        let _ = tx.send(fetch_and_build(&url, Some(&rev), None, &opts, &NoProgress));
    });
    rx.recv_timeout(Duration::from_secs(300))
        .expect("the fetch did not end: is a refused password retried forever?")
}

#[test]
fn an_http_password_is_used_but_never_stored_shown_or_logged() {
    let (_repo, server, commit) = http_hello("alice", PASSWORD);
    let url = server.url(&format!("alice:{PASSWORD}@"), "bare.git");
    let clean = server.url("", "bare.git");
    let plugins = TempPluginsDir::default();
    let cache = plugins.path().join(".plg/git-cache");
    let opts = http_options(&cache);

    // A branch: resolved by listing the remote's refs (the callback answers there too).
    let mut fetched = None;
    let logs = capture_logs(|| {
        fetched = Some(fetch_and_build(
            &url,
            Some("main"),
            None,
            &opts,
            &NoProgress,
        ))
    });
    let built = fetched.unwrap().unwrap();
    assert!(!built.reused);
    assert_eq!(built.manifest.name, "hello");
    assert_eq!(built.provenance.commit, commit);
    assert_eq!(built.provenance.url, clean);

    // The clone knows its remote by the clean URL: libgit2 never saw the password.
    let commit_dir = built.dir.parent().unwrap().to_owned();
    let src = commit_dir.join("src");
    let config = std::fs::read_to_string(src.join(".git/config")).unwrap();
    assert!(config.contains(&format!("url = {clean}")), "{config}");
    // So do the reflogs (`clone: from URL`).
    let reflogs: String = files_under(&src.join(".git/logs"))
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(
        reflogs.contains(&format!("clone: from {clean}")),
        "{reflogs}"
    );
    assert!(!reflogs.contains("alice"), "{reflogs}");

    let shown = format!("{built:?} {opts:?}");
    let searched = assert_no_password(plugins.path(), &[logs.as_bytes(), shown.as_bytes()]);
    assert!(searched > 10, "only {searched} files under the plugins dir");

    #[cfg(unix)]
    for dir in [
        &cache,
        &commit_dir.parent().unwrap().to_owned(),
        &commit_dir,
    ] {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
    }

    // The same repository without the credentials in the URL: the same cache (keyed by the
    // clean URL), so a full commit is found there without asking the server.
    let again = fetch_and_build(&clean, Some(&commit), None, &opts, &NoProgress).unwrap();
    assert!(again.reused);
    assert_eq!(again.dir, built.dir);

    // A remote_git manifest with the credentials in its URL, loaded by a PluginManager with
    // a cache of its own: it clones and builds, and only the user's own manifest holds the
    // password.
    let plugins = TempPluginsDir::default();
    let cache = plugins.path().join(".plg/git-cache");
    plugins.write_manifest(
        "hello",
        &format!(
            r#"{{"name":"hello","version":"1.2.0","source":{{"mode":"remote_git","path":"{url}","rev":"v1"}}}}"#
        ),
    );
    let manager = PluginManager::new(plugins.path()).with_git_options(http_options(&cache));
    let mut report = None;
    let logs = capture_logs(|| report = Some(manager.load_all()));
    let report = report.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let mut ctx = Context::new();
    ctx.set("name", "Http");
    manager.get("hello").unwrap().execute(&mut ctx).unwrap();
    assert_eq!(ctx.get_str("greeting"), Ok("Hello, Http!"));
    let shown = format!("{:?}", report.loaded);
    let searched = assert_no_password(&cache, &[logs.as_bytes(), shown.as_bytes()]);
    assert!(searched > 10, "only {searched} files in the cache");
    #[cfg(unix)]
    assert_eq!(mode(&cache), 0o700);
}

#[test]
fn a_refused_password_or_a_missing_rev_over_http_shows_and_leaves_no_password() {
    let (_repo, server, commit) = http_hello("alice", PASSWORD);
    let plugins = TempPluginsDir::default();
    let cache = plugins.path().join(".plg/git-cache");
    let opts = http_options(&cache);
    let mut shown = String::new();

    // No credentials: the server refuses.
    let anonymous = server.url("", "bare.git");
    let e = fetch_with_deadline(&anonymous, "main", &opts).unwrap_err();
    assert!(matches!(e, GitError::Fetch { .. }), "{e:?}");

    // A wrong password (which contains the right one, so any leak of either shows): refused
    // once and not retried, whether the rev is resolved on the server first (a branch) or
    // the clone is what asks (a full commit).
    let wrong = server.url(&format!("alice:not-{PASSWORD}@"), "bare.git");
    for rev in ["main", commit.as_str()] {
        let e = fetch_with_deadline(&wrong, rev, &opts).unwrap_err();
        let GitError::Fetch { ref message, .. } = e else {
            panic!("expected a fetch error, got {e:?}");
        };
        assert!(message.contains("refused"), "{message}");
        shown += &format!("{e}\n{e:?}\n");
    }

    // The right password, a rev the repository does not have: a tag or branch name (not on
    // the server, so the clone looks for it) and a full commit (cloned, then not found).
    let url = server.url(&format!("alice:{PASSWORD}@"), "bare.git");
    let missing = "0123456789abcdef0123456789abcdef01234567";
    for rev in ["no-such-rev", missing] {
        let e = fetch_with_deadline(&url, rev, &opts).unwrap_err();
        assert!(
            matches!(e, GitError::UnknownRev { rev: ref r, .. } if r == rev),
            "{e:?}"
        );
        shown += &format!("{e}\n{e:?}\n");
    }
    assert!(shown.contains(&anonymous), "{shown}");
    assert_no_password(plugins.path(), &[shown.as_bytes()]);
    // Nothing was kept: no directory for the URL is left in the cache.
    let left: Vec<_> = std::fs::read_dir(&cache)
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_token_as_the_http_user_name_is_given_through_the_callback_and_not_stored() {
    // `https://TOKEN@host/…`: the user name is the secret. The server wants `TOKEN:` (an
    // empty password).
    let token = format!("tok-{PASSWORD}");
    let (_repo, server, _) = http_hello(&token, "");
    let plugins = TempPluginsDir::default();
    let cache = plugins.path().join(".plg/git-cache");
    let url = server.url(&format!("{token}@"), "bare.git");
    let built = fetch_with_deadline(&url, "v1", &http_options(&cache)).unwrap();
    let config =
        std::fs::read_to_string(built.dir.parent().unwrap().join("src/.git/config")).unwrap();
    assert!(
        config.contains(&format!("url = {}", server.url("", "bare.git"))),
        "{config}"
    );
    assert_no_password(plugins.path(), &[format!("{built:?}").as_bytes()]);
}

fn plg_with_logs(plugins: &TempPluginsDir, args: &[&str]) -> Output {
    Command::new(plg_bin(Profile::Debug))
        .args(args)
        .arg("--plugins-dir")
        .arg(plugins.path())
        .env("CARGO_TARGET_DIR", target_dir().join("plg-git-tests"))
        .env("RUST_LOG", "trace")
        .output()
        .unwrap()
}

#[test]
fn plg_install_over_http_prints_and_keeps_no_password() {
    let (_repo, server, _) = http_hello("alice", PASSWORD);
    let plugins = TempPluginsDir::default();

    // A refused password: exit 9, the reason said, the password not.
    let wrong = server.url(&format!("alice:not-{PASSWORD}@"), "bare.git");
    let out = plg_with_logs(
        &plugins,
        &["install", &format!("{wrong}#v1"), "--allow-scheme", "http"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(9), "{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
    assert_no_password(plugins.path(), &[&out.stdout, &out.stderr]);

    let url = server.url(&format!("alice:{PASSWORD}@"), "bare.git");
    let out = plg_with_logs(
        &plugins,
        &[
            "install",
            &format!("{url}#main"),
            "--allow-scheme",
            "http",
            "--json",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&server.url("", "bare.git")), "{stderr}");
    let searched = assert_no_password(plugins.path(), &[&out.stdout, &out.stderr]);
    assert!(searched > 10, "only {searched} files under the plugins dir");
    #[cfg(unix)]
    assert_eq!(mode(&plugins.path().join(".plg/git-cache")), 0o700);

    let out = plg_with_logs(&plugins, &["list", "--json"]);
    assert!(out.status.success());
    assert_no_password(plugins.path(), &[&out.stdout, &out.stderr]);
}

#[test]
fn a_manifest_or_a_bundle_naming_a_url_with_a_password_never_shows_it() {
    use plg_fuzz_harness::{
        case::{LibraryCase, ManifestCase, PathCase},
        Case, Harness,
    };
    use plg_loader::{bundle::BundleError, install::InstallError, Manifest};

    let url = format!("https://alice:{PASSWORD}@example.invalid/x.git");
    let json = format!(
        r#"{{"name":"x","version":"1.0.0","source":{{"mode":"remote_git","path":"{url}"}}}}"#
    );
    let m = Manifest::from_json(&json, "x/plugin.json").unwrap();
    assert!(!holds_password(format!("{m:?}").as_bytes()), "{m:?}");

    // A bundle whose manifest is `remote_git` is refused, naming the URL without the password.
    let case = Case {
        manifest: ManifestCase::Fields {
            name: "x".into(),
            version: "1.0.0".into(),
            path: PathCase::Library,
            remote_git: Some(url),
        },
        library: LibraryCase::Bytes(b"lib".to_vec()),
        ..Case::well_formed()
    };
    let err = Harness::new(None).run(&case).unwrap_err();
    assert!(
        matches!(
            err,
            InstallError::Bundle(BundleError::SourceOutsideBundle { .. })
        ),
        "{err:?}"
    );
    let shown = format!("{err} {err:?}");
    assert!(!holds_password(shown.as_bytes()), "{shown}");
    assert!(shown.contains("example.invalid"), "{shown}");
}

#[test]
fn a_url_that_does_not_parse_is_refused_without_showing_its_token() {
    let plugins = TempPluginsDir::default();
    let out = plg_with_logs(
        &plugins,
        &["install", "https://ghp_T0KEN-77@github.com:99999/o/r.git"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(9), "{err}");
    assert!(
        err.contains("is not a git URL (invalid port number)"),
        "{err}"
    );
    assert!(!err.contains("T0KEN") && !String::from_utf8_lossy(&out.stdout).contains("T0KEN"));
}

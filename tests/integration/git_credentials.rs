//! Credentials in a git URL never reach the terminal, logs, errors or disk: libgit2 gets the
//! URL without them and the password through its credentials callback. The repository is
//! served over smart HTTP on loopback by `git http-backend`, behind Basic auth.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use plg_loader::git::{fetch_and_build, GitError, GitOptions, NoProgress};
use plg_tests::{
    git_repo, hello_crate_files, plg_bin, target_dir, GitHttpServer, Profile, TempPluginsDir,
};

const PASSWORD: &str = "S3CRET-pw-7731";

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.map(Result::unwrap) {
        let (p, t) = (e.path(), e.file_type().unwrap());
        if t.is_dir() {
            out.extend(files(&p));
        } else if t.is_file() {
            out.push(p);
        }
    }
    out
}

/// No file under `dir`, and none of `texts`, holds the password.
fn assert_no_secret(dir: &Path, texts: &[&[u8]]) {
    let needle = PASSWORD.as_bytes();
    let holds = |b: &[u8]| b.windows(needle.len()).any(|w| w == needle);
    for f in files(dir) {
        assert!(
            !holds(&std::fs::read(&f).unwrap()),
            "{} holds the password",
            f.display()
        );
    }
    for t in texts {
        assert!(
            !holds(t),
            "output holds the password: {}",
            String::from_utf8_lossy(t)
        );
    }
}

fn serve() -> (tempfile::TempDir, GitHttpServer) {
    let (repo, _file_url, _commit) = git_repo(&hello_crate_files());
    let server = GitHttpServer::start(repo.path(), "alice", PASSWORD);
    (repo, server)
}

fn options(cache: &Path) -> GitOptions {
    let mut o = GitOptions::new(cache);
    o.allowed_schemes.push("http".into());
    o.build.release = false;
    o.build.target_dir = Some(target_dir().join("plg-git-tests"));
    o
}

#[test]
fn a_password_in_the_url_is_used_but_never_stored() {
    let (_repo, server) = serve();
    let plugins = TempPluginsDir::default();
    let cache = plugins.path().join(".plg/git-cache");
    let url = server.url(&format!("alice:{PASSWORD}@"), "bare.git");

    // Without credentials the server refuses: the callback path is what lets the fetch in.
    let anonymous = server.url("", "bare.git");
    assert!(matches!(
        fetch_and_build(&anonymous, Some("v1"), None, &options(&cache), &NoProgress),
        Err(GitError::Fetch { .. })
    ));

    let built = fetch_and_build(&url, Some("v1"), None, &options(&cache), &NoProgress).unwrap();
    assert_eq!(built.manifest.name, "hello");
    assert!(!built.provenance.url.contains(PASSWORD));
    let debug = format!("{built:?}");
    assert_no_secret(plugins.path(), &[debug.as_bytes()]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for dir in [
            cache.clone(),
            cache.read_dir().unwrap().next().unwrap().unwrap().path(),
        ] {
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", dir.display());
        }
    }

    // A wrong password: refused, and neither password shows anywhere.
    let wrong = server.url("alice:WRONG-pw-1@", "bare.git");
    let e = fetch_and_build(&wrong, Some("main"), None, &options(&cache), &NoProgress).unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains("WRONG-pw-1"), "{shown}");
    assert_no_secret(plugins.path(), &[shown.as_bytes()]);
}

fn plg(plugins: &TempPluginsDir, args: &[&str]) -> Output {
    Command::new(plg_bin(Profile::Debug))
        .args(args)
        .arg("--plugins-dir")
        .arg(plugins.path())
        .env("CARGO_TARGET_DIR", target_dir().join("plg-git-tests"))
        .env("RUST_LOG", "debug")
        .output()
        .unwrap()
}

#[test]
fn plg_install_over_http_with_a_password_prints_and_stores_none_of_it() {
    let (_repo, server) = serve();
    let plugins = TempPluginsDir::default();
    let url = server.url(&format!("alice:{PASSWORD}@"), "bare.git");

    // A rev that does not exist: a failed install leaves no secret either.
    let out = plg(
        &plugins,
        &[
            "install",
            &format!("{url}#no-such-rev"),
            "--allow-scheme",
            "http",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_secret(plugins.path(), &[&out.stdout, &out.stderr]);

    let out = plg(
        &plugins,
        &["install", &format!("{url}#v1"), "--allow-scheme", "http"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("runs code from that repository"),
        "{stderr}"
    );
    assert_no_secret(plugins.path(), &[&out.stdout, &out.stderr]);

    let out = plg(&plugins, &["run", "hello"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

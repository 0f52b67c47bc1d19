//! `remote_git`: clone-and-build from local bare repositories made here, the cache, and every
//! way it can fail.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use plg_loader::{
    build::BuildError,
    git::{fetch_and_build, GitError, GitOptions, NoProgress},
    Context, PluginManager,
};
use plg_tests::{git, git_repo, hello_crate_files, plg_bin, target_dir, Profile, TempPluginsDir};

fn cargo_toml(name: &str, deps: &str) -> String {
    format!(
        "[package]\nname = \"{name}\"\nversion = \"1.2.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\n{deps}\n\n[workspace]\n"
    )
}

fn manifest(name: &str, lib: &str) -> String {
    format!(
        r#"{{"name":"{name}","version":"1.2.0","source":{{"mode":"local_so","path":"{lib}"}}}}"#
    )
}

fn repo(files: &[(&str, String)]) -> (tempfile::TempDir, String, String) {
    git_repo(files)
}

fn hello_repo() -> (tempfile::TempDir, String, String) {
    git_repo(&hello_crate_files())
}

/// Options for tests: `file` allowed, debug builds in one shared target dir.
fn options(cache: &Path) -> GitOptions {
    let mut o = GitOptions::new(cache);
    o.allowed_schemes.push("file".into());
    o.build.release = false;
    o.build.target_dir = Some(target_dir().join("plg-git-tests"));
    o
}

fn build_err(e: GitError) -> BuildError {
    match e {
        GitError::Build { source, .. } => *source,
        other => panic!("expected a build error, got {other:?}"),
    }
}

#[test]
fn urls_and_schemes_are_checked_before_any_fetch() {
    let cache = tempfile::tempdir().unwrap();
    let (_r, url, _) = repo(&[("README", "x".into())]);
    let default = GitOptions::new(cache.path());
    assert!(matches!(
        fetch_and_build(&url, None, None, &default, &NoProgress),
        Err(GitError::SchemeNotAllowed { ref scheme, .. }) if scheme == "file"
    ));
    assert!(matches!(
        fetch_and_build(
            "no scheme here",
            None,
            None,
            &options(cache.path()),
            &NoProgress
        ),
        Err(GitError::BadUrl { .. })
    ));
    assert!(matches!(
        fetch_and_build(
            "file:///nonexistent/repo.git",
            None,
            None,
            &options(cache.path()),
            &NoProgress
        ),
        Err(GitError::Fetch { .. })
    ));
}

#[test]
fn an_unknown_rev_is_reported() {
    let cache = tempfile::tempdir().unwrap();
    let (_r, url, _) = repo(&[("README", "x".into())]);
    for rev in ["no-such-branch", "0123456789012345678901234567890123456789"] {
        match fetch_and_build(&url, Some(rev), None, &options(cache.path()), &NoProgress) {
            Err(GitError::UnknownRev { rev: r, .. }) => assert_eq!(r, rev),
            other => panic!("{rev}: {other:?}"),
        }
    }
}

#[test]
fn build_failures_are_clear() {
    let cache = tempfile::tempdir().unwrap();
    let opts = options(cache.path());

    let (_a, url, _) = repo(&[
        ("Cargo.toml", cargo_toml("broken", "")),
        ("plugin.json", manifest("broken", "libbroken")),
        ("src/lib.rs", "this is not rust".into()),
    ]);
    assert!(matches!(
        build_err(fetch_and_build(&url, None, None, &opts, &NoProgress).unwrap_err()),
        BuildError::CargoFailed { .. }
    ));

    let (_b, url, _) = repo(&[
        (
            "Cargo.toml",
            cargo_toml("lib-only", "").replace("cdylib", "rlib"),
        ),
        ("plugin.json", manifest("lib-only", "liblib_only")),
        ("src/lib.rs", "pub fn f() {}".into()),
    ]);
    assert!(matches!(
        build_err(fetch_and_build(&url, None, None, &opts, &NoProgress).unwrap_err()),
        BuildError::NoCdylib { .. }
    ));

    let member = |name: &str| {
        format!("[package]\nname = \"{name}\"\nversion = \"1.2.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n")
    };
    let (_c, url, _) = repo(&[
        (
            "Cargo.toml",
            "[workspace]\nmembers = [\"a\", \"b\"]\nresolver = \"2\"\n".into(),
        ),
        ("plugin.json", manifest("a", "liba")),
        ("a/Cargo.toml", member("a")),
        ("a/src/lib.rs", "".into()),
        ("b/Cargo.toml", member("b")),
        ("b/src/lib.rs", "".into()),
    ]);
    match build_err(fetch_and_build(&url, None, None, &opts, &NoProgress).unwrap_err()) {
        BuildError::SeveralCdylibs { files, .. } => assert_eq!(files.len(), 2),
        e => panic!("{e:?}"),
    }

    let (_d, url, _) = repo(&[("README", "no crate".into())]);
    for outside in ["..", "../..", "/etc"] {
        assert!(
            matches!(
                fetch_and_build(&url, None, Some(Path::new(outside)), &opts, &NoProgress),
                Err(GitError::NoSubdir { .. })
            ),
            "{outside}"
        );
    }
    assert!(matches!(
        build_err(fetch_and_build(&url, None, None, &opts, &NoProgress).unwrap_err()),
        BuildError::NoManifest { .. }
    ));
    assert!(matches!(
        fetch_and_build(&url, None, Some(Path::new("nope")), &opts, &NoProgress),
        Err(GitError::NoSubdir { .. })
    ));
}

#[test]
fn a_remote_git_manifest_loads_builds_once_and_reuses_the_cache() {
    let (repo_dir, url, commit) = hello_repo();
    let plugins = TempPluginsDir::default();
    let cache = plugins.path().join(".plg/git-cache");
    let write_manifest = |rev: &str| {
        plugins.write_manifest(
            "hello",
            &format!(
                r#"{{"name":"hello","version":"1.2.0","source":{{"mode":"remote_git","path":"{url}","rev":"{rev}"}}}}"#
            ),
        )
    };
    write_manifest("v1");
    let manager = PluginManager::new(plugins.path()).with_git_options(options(&cache));
    let report = manager.load_all();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let mut ctx = Context::new();
    ctx.set("name", "Git");
    manager.get("hello").unwrap().execute(&mut ctx).unwrap();
    assert_eq!(ctx.get_str("greeting"), Ok("Hello, Git!"));
    drop(manager);

    // Provenance sits next to the build.
    let build_dir = find_build_dir(&cache, &commit);
    let provenance: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(build_dir.join("provenance.json")).unwrap())
            .unwrap();
    assert_eq!(provenance["commit"], commit.as_str());
    assert_eq!(provenance["rev"], "v1");
    assert!(provenance["rustc"].as_str().unwrap().starts_with("rustc "));
    assert!(!provenance["target"].as_str().unwrap().is_empty());

    // The same commit again: the origin is gone, yet it loads from the cache.
    drop(repo_dir);
    write_manifest(&commit);
    let built = fetch_and_build(&url, Some(&commit), None, &options(&cache), &NoProgress).unwrap();
    assert!(built.reused);
    let manager = PluginManager::new(plugins.path()).with_git_options(options(&cache));
    assert!(manager.load_all().failed.is_empty());
    assert!(manager.get("hello").is_ok());
}

fn find_build_dir(cache: &Path, commit: &str) -> PathBuf {
    for e in std::fs::read_dir(cache).unwrap() {
        let Ok(builds) = std::fs::read_dir(e.unwrap().path().join(commit)) else {
            continue;
        };
        for b in builds {
            let p = b.unwrap().path();
            if p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("build-")
            {
                return p;
            }
        }
    }
    panic!("no build for {commit} under {}", cache.display());
}

#[test]
fn plg_install_from_a_git_url_then_run() {
    let (_repo, url, _) = hello_repo();
    let plugins = TempPluginsDir::default();
    let run = |args: &[&str]| {
        Command::new(plg_bin(Profile::Debug))
            .args(args)
            .arg("--plugins-dir")
            .arg(plugins.path())
            .env("CARGO_TARGET_DIR", target_dir().join("plg-git-tests"))
            .output()
            .unwrap()
    };
    let refused = run(&["install", &format!("{url}#v1")]);
    assert_eq!(
        refused.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not allowed"));
    assert!(!String::from_utf8_lossy(&refused.stderr).contains("runs code"));

    let out = run(&[
        "install",
        &format!("{url}#v1"),
        "--allow-scheme",
        "file",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("runs code from that repository"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "hello");

    let out = run(&["run", "hello", "--set", "name=Repo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["greeting"], "Hello, Repo!");

    let unknown = run(&["install", &format!("{url}#nope"), "--allow-scheme", "file"]);
    assert_eq!(unknown.status.code(), Some(9));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no branch, tag or commit `nope`"));
}

#[test]
fn submodules_obey_the_allowlist_and_are_off_by_default() {
    let (_sub, sub_url, _) = repo(&[("README", "sub".into())]);
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q"]);
    git(&work, &["submodule", "add", "-q", &sub_url, "sub"]);
    // Point the submodule at a scheme the allowlist does not have.
    git(
        &work,
        &[
            "config",
            "-f",
            ".gitmodules",
            "submodule.sub.url",
            "http://127.0.0.1:9/secret.git",
        ],
    );
    git(&work, &["commit", "-qam", "with a submodule"]);
    git(tmp.path(), &["clone", "-q", "--bare", "work", "bare.git"]);
    let url = format!("file://{}", tmp.path().join("bare.git").display());

    let cache = tempfile::tempdir().unwrap();
    let mut opts = options(cache.path());
    opts.fetch_submodules = true;
    assert!(matches!(
        fetch_and_build(&url, None, None, &opts, &NoProgress),
        Err(GitError::SchemeNotAllowed { ref scheme, .. }) if scheme == "http"
    ));
    // By default submodules are not fetched at all: the build step is reached (and finds no
    // plugin.json), without any attempt on the submodule's URL.
    let cache = tempfile::tempdir().unwrap();
    assert!(matches!(
        build_err(
            fetch_and_build(&url, None, None, &options(cache.path()), &NoProgress).unwrap_err()
        ),
        BuildError::NoManifest { .. }
    ));
}

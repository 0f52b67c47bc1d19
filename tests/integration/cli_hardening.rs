//! The `plg` binary against hostile plugins, manifests and directories: listing runs no
//! plugin code, a crash or hang in `list --check` is one plugin's error, untrusted text is
//! escaped, the signature policy covers `plg build`, and I/O errors have their own code.

use std::process::Command;

use plg_tests::{plg_bin, target_dir, worker_bin, workspace_root, Profile, TempPluginsDir};

use crate::cli::{plg, plg_env};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn list_runs_no_plugin_code_and_check_contains_crashes_and_hangs() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-bad-init");
    dir.stage("hello");
    // Without --check nothing is loaded: the aborting initializer never runs.
    let out = plg(&dir, &["list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert!(rows.iter().all(|r| r["status"] == "found"), "{rows:?}");

    // --check loads each library in a throwaway plg-worker: the crash is that plugin's
    // error, and plg itself runs no plugin code.
    let out = plg(&dir, &["list", "--check", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text(&out.stdout)).unwrap();
    let row = |name: &str| rows.iter().find(|r| r["name"] == name).unwrap().clone();
    assert_eq!(row("hello")["status"], "ok");
    assert_eq!(row("fixture-bad-init")["status"], "error");
    let error = row("fixture-bad-init")["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("crashed the worker that checked it") && error.contains("SIGABRT"),
        "{rows:?}"
    );

    // The worker's environment is cleared: the fixture's mode reaches it through a wrapper
    // named by PLG_WORKER, as a host's declared variables would.
    let wrappers = tempfile::tempdir().unwrap();
    let with_mode = |mode: &str| {
        use std::os::unix::fs::PermissionsExt;
        let path = wrappers.path().join(format!("worker-{mode}"));
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nPLG_FIXTURE_INIT={mode} exec {} \"$@\"\n",
                worker_bin(Profile::Debug).display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_string_lossy().into_owned()
    };

    // `plg list --check` with the fixture in `mode` and the check timeout `timeout`: the
    // fixture's row.
    let checked = |mode: &str, timeout: &str| -> serde_json::Value {
        let out = plg_env(
            &dir,
            &["list", "--check", "--check-timeout", timeout, "--json"],
            &[("PLG_WORKER", &with_mode(mode))],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let rows: Vec<serde_json::Value> = serde_json::from_str(&text(&out.stdout)).unwrap();
        rows.into_iter()
            .find(|r| r["name"] == "fixture-bad-init")
            .unwrap()
    };

    // A hanging initializer is stopped at the timeout and reported.
    let bad = checked("hang", "1");
    assert!(
        bad["error"].as_str().unwrap().contains("did not finish"),
        "{bad}"
    );

    // A crash that leaves a process holding the check's stderr open: the check still ends,
    // and the leftover process (in the check's process group) is stopped with it.
    let bad = checked("spawn-then-crash", "5");
    assert_eq!(bad["status"], "error", "{bad}");
    assert!(
        gone("614"),
        "the crashed check's helper process outlived it"
    );

    // An initializer that starts a helper and returns: the check passes, and the helper (in
    // the check's process group) is stopped with the throwaway worker.
    let row = checked("spawn", "5");
    assert_eq!(row["status"], "ok", "{row}");
    assert!(gone("613"), "the passed check's helper process outlived it");

    // Where no plg-worker is found, each check runs in a child plg instead, with the same
    // containment: a copy of plg alone in a directory, with a PATH that has no worker.
    let alone = tempfile::tempdir().unwrap();
    let plg_alone = alone.path().join("plg");
    std::fs::copy(plg_bin(Profile::Debug), &plg_alone).unwrap();
    let out = Command::new(&plg_alone)
        .args(["list", "--check", "--json", "--plugins-dir"])
        .arg(dir.path())
        .env("PATH", "/usr/bin:/bin")
        .env_remove("PLG_WORKER")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text(&out.stdout)).unwrap();
    let row = |name: &str| rows.iter().find(|r| r["name"] == name).unwrap().clone();
    assert_eq!(row("hello")["status"], "ok");
    assert!(
        row("fixture-bad-init")["error"]
            .as_str()
            .unwrap()
            .contains("crashed the process that loaded it"),
        "{rows:?}"
    );
}

#[test]
fn install_checks_the_library_in_a_worker_so_a_crashing_initializer_fails_only_the_install() {
    let src = TempPluginsDir::default();
    let staged = src.stage("fixture-bad-init");
    let dir = TempPluginsDir::default();
    let out = plg(&dir, &["install", staged.to_str().unwrap()]);
    assert!(
        out.status.code().is_some(),
        "plg itself was killed: {out:?}"
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("crashed the worker that checked it"),
        "{stderr}"
    );
    // Nothing half-installed: the plugins dir has no trace of it.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().contains("fixture-bad-init"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // A library that loads installs as before, checked in a worker too.
    let good = src.stage("hello");
    let out = plg(&dir, &["install", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Terminal control from a manifest or a plugin never reaches the terminal raw.
#[test]
fn untrusted_text_is_escaped_in_every_command() {
    const NASTY: &str = "\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}1m\u{7f}\u{202e}";
    let dir = TempPluginsDir::default();
    // An invalid manifest whose values and unknown keys carry escapes.
    let manifest = serde_json::json!({
        "name": format!("x{NASTY}"),
        "version": format!("1{NASTY}"),
        "home": format!("ftp://{NASTY}"),
        "maintainers": [NASTY],
        "source": { "mode": format!("zip{NASTY}"), "path": format!("../{NASTY}") },
        format!("unknown{NASTY}"): 1,
    });
    dir.write_manifest("nasty", &manifest.to_string());
    let staged = dir.stage("hello");
    dir.stage("fixture-panic");
    let panic_message = format!("message=boom{NASTY}");
    // A valid plugin whose description carries escapes, for `inspect`.
    let mut good: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(staged.join("plugin.json")).unwrap())
            .unwrap();
    good["description"] = serde_json::Value::from(format!("d{NASTY}"));
    std::fs::write(staged.join("plugin.json"), good.to_string()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("h.plg");
    let packed = plg(
        &dir,
        &[
            "pack",
            staged.to_str().unwrap(),
            "-o",
            bundle.to_str().unwrap(),
        ],
    );
    assert!(packed.status.success(), "{}", text(&packed.stderr));
    for args in [
        vec!["list"],
        vec!["list", "--check"],
        vec!["run", "nasty"],
        vec!["run", "fixture-panic", "--set", &panic_message],
        vec!["inspect", bundle.to_str().unwrap()],
        vec!["install", "nasty/plugin.json"],
    ] {
        // Text output, and `--json`, whose strings escape them as \uXXXX.
        for json in [false, true] {
            let mut args = args.clone();
            if json {
                args.push("--json");
            }
            let out = plg(&dir, &args);
            for stream in [&out.stdout, &out.stderr] {
                let s = text(stream);
                assert!(
                    !s.contains(['\u{1b}', '\u{7}', '\u{9b}', '\u{7f}', '\u{202e}']),
                    "{args:?} printed a raw control character: {s:?}"
                );
            }
        }
    }
}

#[test]
fn build_obeys_require_signature_unless_signed_with_a_trusted_key() {
    let dir = TempPluginsDir::default();
    let config = dir.path().join(".plg/config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, r#"{"require_signature": true}"#).unwrap();
    let hello = workspace_root().join("plugins/hello");
    let build = |extra: &[&str]| {
        Command::new(plg_bin(Profile::Debug))
            .args(["build", "--debug", hello.to_str().unwrap()])
            .args(extra)
            .arg("--plugins-dir")
            .arg(dir.path())
            .env("CARGO_TARGET_DIR", target_dir())
            .output()
            .unwrap()
    };
    let out = build(&[]);
    assert_eq!(out.status.code(), Some(8), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("requires signatures"));
    // Refused before cargo ran (building runs the crate's build scripts and proc macros).
    assert!(
        !text(&out.stderr).contains("Finished"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("hello").exists(), "nothing was staged");

    let work = tempfile::tempdir().unwrap();
    let key = work.path().join("alice");
    assert!(plg(&dir, &["keygen", key.to_str().unwrap()])
        .status
        .success());
    let secret = key.with_extension("key");
    // Signed with a key the directory does not trust: still refused, before building.
    let out = build(&["--sign", secret.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(8), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("Finished"),
        "{}",
        text(&out.stderr)
    );
    let public = key.with_extension("pub");
    assert!(plg(&dir, &["trust", public.to_str().unwrap()])
        .status
        .success());
    let out = build(&["--sign", secret.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(plg(&dir, &["run", "hello"]).status.success());
}

#[cfg(unix)]
#[test]
fn a_write_failure_is_an_io_error_not_a_hostile_bundle() {
    let dir = TempPluginsDir::default();
    let staged = dir.stage("hello");
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("h.plg");
    assert!(plg(
        &dir,
        &[
            "pack",
            staged.to_str().unwrap(),
            "-o",
            bundle.to_str().unwrap()
        ]
    )
    .status
    .success());
    // The plugins directory is a file: nothing can be written under it.
    let blocked = work.path().join("not-a-dir");
    std::fs::write(&blocked, "").unwrap();
    let out = Command::new(plg_bin(Profile::Debug))
        .args(["install", bundle.to_str().unwrap(), "--plugins-dir"])
        .arg(&blocked)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(10), "{}", text(&out.stderr));
}

/// Installing streams: a gzip bomb is refused without its contents ever being held in
/// memory. Peak memory of the `plg` process is read with GNU time (`/usr/bin/time`).
#[cfg(target_os = "linux")]
#[test]
fn a_gzip_bomb_is_refused_in_bounded_memory() {
    use std::io::Write;
    let time = std::path::Path::new("/usr/bin/time");
    assert!(time.exists(), "GNU time is needed (Debian package `time`)");
    let work = tempfile::tempdir().unwrap();
    let bomb = work.path().join("bomb.plg");
    // 512 MiB of zeros in one entry: about 0.5 MB compressed, refused by the ratio cap
    // (200x) after about 100 MB, which the old reader held in memory.
    let mut tar = Vec::new();
    let mut header = tar::Header::new_ustar();
    header.set_path("libbomb.so").unwrap();
    header.set_size(512 << 20);
    header.set_mode(0o644);
    header.set_cksum();
    tar.extend_from_slice(header.as_bytes());
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&bomb).unwrap(),
        flate2::Compression::best(),
    );
    gz.write_all(&tar).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..512 {
        gz.write_all(&zeros).unwrap();
    }
    gz.finish().unwrap();
    let dir = TempPluginsDir::default();
    let rss = work.path().join("rss");
    let out = Command::new(time)
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss)
        .arg(plg_bin(Profile::Debug))
        .args(["install", bomb.to_str().unwrap(), "--plugins-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("exceed"),
        "{}",
        text(&out.stderr)
    );
    let kib: u64 = std::fs::read_to_string(&rss)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(kib < 64 << 10, "plg install peaked at {kib} KiB");
}

#[cfg(unix)]
#[test]
fn keygen_writes_the_secret_key_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempPluginsDir::default();
    let work = tempfile::tempdir().unwrap();
    let prefix = work.path().join("k");
    assert!(plg(&dir, &["keygen", prefix.to_str().unwrap()])
        .status
        .success());
    let mode = |p: std::path::PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(prefix.with_extension("key")), 0o600);
    // Keygen refuses to overwrite a key.
    let again = plg(&dir, &["keygen", prefix.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
}

#[test]
fn json_errors_are_one_object_on_stderr_and_the_env_var_names_the_dir() {
    let dir = TempPluginsDir::default();
    let out = plg(&dir, &["run", "nope", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    let v: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(v["exit_code"], 3);
    assert!(v["error"].as_str().unwrap().contains("no plugin `nope`"));

    // Without --plugins-dir, $PLG_PLUGINS_DIR is the plugins directory.
    dir.stage("hello");
    let out = Command::new(plg_bin(Profile::Debug))
        .args(["run", "hello", "--set", "name=Env"])
        .env("PLG_PLUGINS_DIR", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Hello, Env!"));
}

#[test]
fn dot_directories_are_never_plugins() {
    let dir = TempPluginsDir::default();
    let staged = dir.stage("hello");
    // A copy under a dot name (as an install in progress or plg's own .plg would be).
    let hidden = dir.path().join(".hidden/1.2.0");
    std::fs::create_dir_all(&hidden).unwrap();
    for e in std::fs::read_dir(&staged).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), hidden.join(e.file_name())).unwrap();
    }
    let manager = plg_loader::PluginManager::new(dir.path());
    let report = manager.load_all();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.loaded.len(), 1);
    assert_eq!(report.loaded[0].manifest_path(), staged.join("plugin.json"));
}

/// Waits (bounded) until no `sleep ARG` process is left (a zombie counts as gone).
fn gone(arg: &str) -> bool {
    let wanted = format!("sleep\0{arg}\0");
    let alive = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            let dir = e.path();
            std::fs::read(dir.join("cmdline")).is_ok_and(|c| c == wanted.as_bytes())
                && !std::fs::read_to_string(dir.join("stat")).is_ok_and(|s| {
                    s.rsplit(')')
                        .next()
                        .is_some_and(|r| r.trim_start().starts_with('Z'))
                })
        })
    };
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(10) {
        if !alive() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

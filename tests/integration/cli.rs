//! The `plg` binary, driven as a user would, including the new-user path
//! `plg new` → `plg build` → `plg run`.

use std::process::{Command, Output};

use plg_tests::{plg_bin, target_dir, workspace_root, Profile, TempPluginsDir};

/// Runs `plg ARGS --plugins-dir DIR` (without `--plugins-dir` for the commands that write no
/// plugins directory and refuse it: `new`, `pack`, `keygen`), with `PLG_PLUGINS_DIR` unset
/// and `extra` set in its environment.
pub fn plg_env(dir: &TempPluginsDir, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(plg_bin(Profile::Debug));
    cmd.args(args);
    if !matches!(args.first(), Some(&("new" | "pack" | "keygen"))) {
        cmd.arg("--plugins-dir").arg(dir.path());
    }
    cmd.env_remove("PLG_PLUGINS_DIR")
        .env("RUST_LOG", "info")
        .envs(extra.iter().copied())
        .output()
        .expect("run plg")
}

/// Runs `plg ARGS --plugins-dir DIR`.
pub fn plg(dir: &TempPluginsDir, args: &[&str]) -> Output {
    plg_env(dir, args, &[])
}

/// `plg pack STAGED -o BUNDLE`, asserting it succeeds.
pub fn pack(dir: &TempPluginsDir, staged: &std::path::Path, bundle: &std::path::Path) {
    let out = plg(
        dir,
        &[
            "pack",
            staged.to_str().unwrap(),
            "-o",
            bundle.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn run_prints_the_resulting_context_as_json() {
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    let out = plg(&dir, &["run", "hello", "--set", "name=x"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v, serde_json::json!({"name": "x", "greeting": "Hello, x!"}));
    // The plugin's log line reaches stderr through the host's logger.
    assert!(stderr(&out).contains("greeting x"), "{}", stderr(&out));
}

#[test]
fn run_reads_input_json_and_applies_set_on_top() {
    let dir = TempPluginsDir::default();
    dir.stage("counter");
    let input = dir.path().join("ctx.json");
    std::fs::write(&input, r#"{"by": 5, "note": "kept"}"#).unwrap();
    let out = plg(
        &dir,
        &[
            "run",
            "counter@^0.1",
            "--input",
            input.to_str().unwrap(),
            "--set",
            "by=7",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"by": 7, "note": "kept", "count": 7, "version": "0.1.0"})
    );
}

#[test]
fn exit_codes_follow_the_failure() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-panic");
    dir.stage("fixture-not-plugin");
    dir.stage("fixture-hang");

    let out = plg(&dir, &["run", "nope"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("no plugin `nope`"));

    let out = plg(&dir, &["run", "fixture-not-plugin"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a plg plugin"));

    let out = plg(&dir, &["run", "fixture-panic"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("panicked: fixture-panic was told to panic"));
    assert!(stdout(&out).is_empty());

    let out = plg(&dir, &["run", "fixture-hang", "--timeout", "0.05"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("deadline passed"));

    // Bad arguments are usage errors: exit 2, as `plg --help` says.
    let out = plg(&dir, &["run", "fixture-panic", "--set", "novalue"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("expected KEY=VALUE"));

    let out = plg(&dir, &["uninstall", "hello@one"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("write hello@1.2.3"),
        "{}",
        stderr(&out)
    );

    let out = plg(&dir, &["run", "--bogus-flag"]);
    assert_eq!(out.status.code(), Some(2));

    // Every value clap parses is a usage error when it does not parse: exit 2, and the
    // message names the value.
    for (args, names) in [
        (&["run", "hello@notareq"][..], "notareq"),
        (&["run", "hello", "--timeout", "soon"][..], "soon"),
        (&["list", "--check-timeout", "ten"][..], "ten"),
        (&["uninstall", "Bad@1.0.0"][..], "Bad"),
        (&["install"][..], "<SOURCE>"),
    ] {
        let out = plg(&dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(names), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn list_shows_status_and_why_each_failure_failed() {
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    dir.stage("fixture-bad-layout");
    dir.write_manifest("broken", "{");
    // Listing reads files: both libraries are found (their notes agree with their manifests),
    // the broken manifest is an error. Only --check loads, and finds the bad layout.
    let out = plg(&dir, &["list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(rows.len(), 3);
    let by_status = |s: &str| rows.iter().filter(|r| r["status"] == s).count();
    assert_eq!((by_status("found"), by_status("error")), (2, 1));
    let status_of = |rows: &[serde_json::Value], name: &str| {
        let row = rows.iter().find(|r| r["name"] == name).expect(name);
        row["status"].as_str().unwrap().to_owned()
    };
    assert_eq!(status_of(&rows, "hello"), "found");
    assert_eq!(status_of(&rows, "fixture-bad-layout"), "found");
    let out = plg(&dir, &["list", "--check", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(rows.len(), 3);
    let by_status = |s: &str| rows.iter().filter(|r| r["status"] == s).count();
    assert_eq!((by_status("ok"), by_status("error")), (1, 2));
    assert_eq!(status_of(&rows, "hello"), "ok");
    assert_eq!(status_of(&rows, "fixture-bad-layout"), "error");
    let bad = rows
        .iter()
        .find(|r| r["name"] == "fixture-bad-layout")
        .unwrap();
    assert!(bad["error"]
        .as_str()
        .unwrap()
        .contains("incompatible plg-api"));

    // Text: one line per plugin, NAME VERSION STATUS; the status column is exact (an error
    // message may well contain "found" or "ok").
    let text = stdout(&plg(&dir, &["list"]));
    let columns = |name: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no line for {name}: {text}"));
        line.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(
        columns("hello"),
        [
            "hello",
            "1.2.0",
            "found",
            "runtime=in-process",
            "unload=depends"
        ],
        "{text}"
    );
    assert_eq!(columns("fixture-bad-layout")[2], "found", "{text}");
    let broken = columns("?");
    assert_eq!(broken[2], "error:", "{text}");
    assert!(broken.join(" ").contains("invalid JSON"), "{text}");
    let text = stdout(&plg(&dir, &["list", "--check"]));
    let status = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or_else(|| panic!("no line for {name}: {text}"))
            .to_owned()
    };
    assert_eq!(status("hello"), "ok", "{text}");
    assert_eq!(status("fixture-bad-layout"), "error:", "{text}");
}

#[test]
fn list_on_an_empty_dir_says_what_to_do() {
    let dir = TempPluginsDir::default();
    let out = plg(&dir, &["list"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("no plugins in"));
}

#[test]
fn help_explains_each_command() {
    let dir = TempPluginsDir::default();
    for cmd in [
        "new",
        "build",
        "list",
        "run",
        "pack",
        "inspect",
        "install",
        "uninstall",
        "keygen",
        "trust",
    ] {
        let out = plg(&dir, &[cmd, "--help"]);
        assert!(out.status.success());
        assert!(stdout(&out).contains("--plugins-dir"), "{cmd}");
    }
    let run = stdout(&plg(&dir, &["run", "--help"]));
    assert!(run.contains("--set") && run.contains("--input") && run.contains("--label"));
}

#[test]
fn new_build_run_as_a_new_user() {
    let dir = TempPluginsDir::default();
    let work = tempfile::tempdir().unwrap();
    let crate_dir = work.path().join("demo");
    let out = plg(
        &dir,
        &["new", "demo", "--path", crate_dir.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(crate_dir.join("Cargo.toml").is_file());

    // A second `new` at the same place is refused and changes nothing.
    let again = plg(
        &dir,
        &["new", "demo", "--path", crate_dir.to_str().unwrap()],
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("already exists"));

    // Debug build, sharing the workspace's target dir so dependencies are not rebuilt.
    let out = Command::new(plg_bin(Profile::Debug))
        .args([
            "build",
            "--debug",
            crate_dir.to_str().unwrap(),
            "--plugins-dir",
        ])
        .arg(dir.path())
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("staged demo@0.1.0"));
    assert!(dir.path().join("demo/0.1.0/plugin.json").is_file());

    let out = plg(&dir, &["run", "demo", "--set", "name=x"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["greeting"], "Hello, x!");

    // Pack the staged plugin, inspect it, install it elsewhere, run it there, uninstall it.
    let bundle = work.path().join("demo.plg");
    let staged = dir.path().join("demo/0.1.0");
    let out = plg(
        &dir,
        &[
            "pack",
            staged.to_str().unwrap(),
            "-o",
            bundle.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = plg(&dir, &["inspect", bundle.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["manifest"]["name"], "demo");
    assert_eq!(v["entries"].as_array().unwrap().len(), 2);
    assert!(v["signature"].is_null());
    let other = TempPluginsDir::default();
    let out = plg(&other, &["install", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = plg(&other, &["run", "demo", "--set", "name=y"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Hello, y!"));
    let out = plg(&other, &["uninstall", "demo@0.1.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(plg(&other, &["run", "demo"]).status.code(), Some(3));
}

#[test]
fn signing_through_the_cli() {
    let dir = TempPluginsDir::default();
    let staged = dir.stage("hello");
    let work = tempfile::tempdir().unwrap();
    let key = work.path().join("alice");
    assert!(plg(&dir, &["keygen", key.to_str().unwrap()])
        .status
        .success());
    assert_eq!(
        plg(&dir, &["keygen", key.to_str().unwrap()]).status.code(),
        Some(1)
    );
    let signed = work.path().join("signed.plg");
    let out = plg(
        &dir,
        &[
            "pack",
            staged.to_str().unwrap(),
            "--sign",
            work.path().join("alice.key").to_str().unwrap(),
            "-o",
            signed.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let target = TempPluginsDir::default();
    let inspect = stdout(&plg(&target, &["inspect", signed.to_str().unwrap()]));
    assert!(inspect.contains("not in the keyring"), "{inspect}");
    let out = plg(
        &target,
        &["install", "--require-signature", signed.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(stderr(&out).contains("plg trust"));
    let out = plg(
        &target,
        &["trust", work.path().join("alice.pub").to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let inspect = stdout(&plg(&target, &["inspect", signed.to_str().unwrap()]));
    assert!(inspect.contains("trusted key `alice`"), "{inspect}");
    let out = plg(
        &target,
        &["install", "--require-signature", signed.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("signed by `alice`"));

    // A corrupted copy: exit 7, nothing changed.
    let mut bytes = std::fs::read(&signed).unwrap();
    let n = bytes.len();
    bytes.truncate(n / 2);
    let broken = work.path().join("broken.plg");
    std::fs::write(&broken, bytes).unwrap();
    let out = plg(&target, &["install", "--force", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(plg(&target, &["run", "hello"]).status.success());
}

#[test]
fn new_refuses_a_bad_name() {
    let dir = TempPluginsDir::default();
    let work = tempfile::tempdir().unwrap();
    let out = plg(
        &dir,
        &[
            "new",
            "Bad Name",
            "--path",
            work.path().join("x").to_str().unwrap(),
        ],
    );
    assert!(
        matches!(out.status.code(), Some(c) if c != 0),
        "{:?}",
        out.status
    );
    assert!(stderr(&out).contains("not a valid plugin name"));
    assert!(!work.path().join("x").exists());
}

/// An invalid plugin name is a bad argument wherever it is given: exit 2, as for
/// `plg uninstall Bad@1.0.0`.
#[test]
fn a_bad_plugin_name_is_a_usage_error_in_every_command() {
    let dir = TempPluginsDir::default();
    let work = tempfile::tempdir().unwrap();
    let out = plg(&dir, &["uninstall", "Bad@1.0.0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = plg(
        &dir,
        &[
            "new",
            "Bad Name",
            "--path",
            work.path().join("x").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn build_without_a_manifest_says_what_to_do() {
    let dir = TempPluginsDir::default();
    let out = plg(
        &dir,
        &["build", workspace_root().join("loader").to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(6));
    assert!(stderr(&out).contains("has no plugin.json"));
}

#[test]
fn the_sample_host_loads_all_and_greets() {
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    dir.stage("fixture-not-plugin");
    let host = plg_tests::artifacts(Profile::Debug).join("sample-host");
    let out = Command::new(host)
        .arg(dir.path())
        .arg("Sam")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("loaded 1 plugin(s)"), "{text}");
    assert!(text.contains("Hello, Sam!"), "{text}");
    assert!(text.contains("unmapped: Some(true)"), "{text}");
    assert!(stderr(&out).contains("skipped"), "{}", stderr(&out));
}

#[test]
fn inspect_escapes_control_characters_from_the_bundle() {
    let dir = TempPluginsDir::default();
    let staged = dir.stage_with("hello", "hello", |m| {
        m["description"] = "hi\n  signature:   valid, by trusted key `release`\u{1b}[8m".into()
    });
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("spoof.plg");
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
    let text = stdout(&plg(&dir, &["inspect", bundle.to_str().unwrap()]));
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert_eq!(text.matches("\n  signature:").count(), 1, "{text}");
    assert!(text.contains("signature:   none (unsigned)"));
}

//! The CLI's small promises (issue 8 §7): bad arguments exit 2, help text says each default
//! once, options a command would ignore are refused, and "not found" says why and what
//! exists.

use std::process::Command;

use plg_tests::{plg_bin, Profile, TempPluginsDir};

use crate::cli::{plg, stderr};

fn code(o: &std::process::Output) -> i32 {
    o.status.code().expect("plg exited")
}

#[test]
fn a_bad_set_or_input_is_a_usage_error_and_a_missing_input_file_an_io_error() {
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    let out = plg(&dir, &["run", "hello", "--set", "text"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("expected KEY=VALUE"),
        "{}",
        stderr(&out)
    );

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    let out = plg(&dir, &["run", "hello", "--input", bad.to_str().unwrap()]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("expected a JSON object"),
        "{}",
        stderr(&out)
    );

    let array = dir.path().join("array.json");
    std::fs::write(&array, "[1, 2]").unwrap();
    let out = plg(&dir, &["run", "hello", "--input", array.to_str().unwrap()]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));

    let missing = dir.path().join("missing.json");
    let out = plg(
        &dir,
        &["run", "hello", "--input", missing.to_str().unwrap()],
    );
    assert_eq!(code(&out), 10, "{}", stderr(&out));
    assert!(stderr(&out).contains("missing.json"), "{}", stderr(&out));
}

#[test]
fn help_says_each_default_once() {
    for cmd in ["build", "pack", "new", "run", "install", "list"] {
        let out = Command::new(plg_bin(Profile::Debug))
            .args([cmd, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        for line in help.lines() {
            assert!(
                line.matches("[default:").count() <= 1,
                "`plg {cmd} --help` repeats a default: {line}"
            );
        }
    }
}

#[test]
fn plugins_dir_is_refused_where_it_would_be_ignored() {
    let dir = TempPluginsDir::default();
    let key = dir.path().join("k");
    for args in [
        vec!["new", "x"],
        vec!["keygen", key.to_str().unwrap()],
        vec!["pack", "."],
    ] {
        let out = Command::new(plg_bin(Profile::Debug))
            .args(&args)
            .arg("--plugins-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--plugins-dir does not apply"),
            "{}",
            stderr(&out)
        );
    }
    assert!(
        !dir.path().join("x").exists() && !key.exists(),
        "nothing was written"
    );
}

#[test]
fn not_found_says_a_missing_directory_or_the_closest_name_and_what_is_installed() {
    let out = Command::new(plg_bin(Profile::Debug))
        .args(["--plugins-dir", "/nonexistent/plg-plugins", "run", "hello"])
        .env_remove("PLG_PLUGINS_DIR")
        .output()
        .unwrap();
    assert_eq!(code(&out), 3);
    assert!(
        stderr(&out).contains("/nonexistent/plg-plugins does not exist"),
        "{}",
        stderr(&out)
    );

    let dir = TempPluginsDir::default();
    dir.stage("hello");
    dir.stage("counter");
    let out = plg(&dir, &["run", "helo"]);
    assert_eq!(code(&out), 3);
    let err = stderr(&out);
    assert!(err.contains("Did you mean `hello`?"), "{err}");
    assert!(err.contains("Installed: counter, hello"), "{err}");
    // Nothing close: no guess, but the list.
    let err = stderr(&plg(&dir, &["run", "zzzzzz"]));
    assert!(!err.contains("Did you mean"), "{err}");
    assert!(err.contains("Installed: counter, hello"), "{err}");
}

//! `plg dev` (issue 9 §3): on every save the crate is rebuilt, hot-upgraded in the running
//! host and executed; a failed build prints cargo's errors and keeps the last good version;
//! `plg list --stats` shows the host's call metrics.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use plg_tests::{plg_bin, target_dir, Profile, TempPluginsDir};

use crate::cli::{plg, stderr, stdout};

#[test]
fn an_edit_is_picked_up_within_one_rebuild_and_a_broken_build_keeps_the_last_good_version() {
    let dir = TempPluginsDir::default();
    let work = tempfile::tempdir().unwrap();
    let krate = work.path().join("devme");
    let out = plg(&dir, &["new", "devme", "--path", krate.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let source = krate.join("src/lib.rs");
    let original = std::fs::read_to_string(&source).unwrap();
    assert!(original.contains("Hello, {name}!"), "{original}");

    let mut child = Command::new(plg_bin(Profile::Debug))
        .arg("--plugins-dir")
        .arg(dir.path())
        .args(["dev", "--set", "name=Ada", "--max-builds", "3"])
        .arg(&krate)
        .env("PLG_TARGET_DIR", target_dir().join("plg-author-tests"))
        .env_remove("CARGO_TARGET_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stdout_pipe = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout_pipe).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let stderr_pipe = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || std::io::read_to_string(stderr_pipe).unwrap());
    let wait_line = |want: &str| -> String {
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(300))
                .unwrap_or_else(|_| panic!("no line with {want:?}"));
            if line.contains(want) {
                return line;
            }
        }
    };

    assert!(wait_line("loaded devme@0.1.0").contains("save to result"));
    assert!(wait_line("greeting").contains("Hello, Ada!"));

    // A save that does not compile: cargo's errors on stderr, nothing printed as a result.
    std::fs::write(
        &source,
        original.replace("fn execute(", "fn execute broken("),
    )
    .unwrap();
    // Give the broken build time to run before the fix lands (two separate saves).
    std::thread::sleep(Duration::from_secs(3));
    std::fs::write(
        &source,
        original.replace("Hello, {name}!", "Howdy, {name}!"),
    )
    .unwrap();
    assert!(wait_line("upgraded devme@0.1.0 -> devme@0.1.0").contains("built in"));
    assert!(wait_line("greeting").contains("Howdy, Ada!"));

    // The third build was the last (--max-builds 3); stop it anyway if the two saves
    // were taken as one burst on a stalled machine.
    if child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_secs(1));
        let _ = child.kill();
    }
    child.wait().unwrap();
    let errors = errors.join().unwrap();
    assert!(
        errors.contains("build failed (the last good version stays loaded)"),
        "{errors}"
    );
    assert!(errors.contains("error"), "cargo's diagnostics: {errors}");

    let out = plg(&dir, &["list", "--stats"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("stats devme") && stdout(&out).contains("calls=2"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn dev_on_a_path_that_is_not_a_directory_says_so() {
    let dir = TempPluginsDir::default();
    let missing = dir.path().join("no-such-crate");
    let out = plg(
        &dir,
        &["dev", missing.to_str().unwrap(), "--max-builds", "1"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not a directory") && stderr(&out).contains("no-such-crate"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn list_stats_skips_planted_files_without_hanging() {
    let dir = TempPluginsDir::default();
    let stats = dir.path().join(".plg/dev");
    std::fs::create_dir_all(&stats).unwrap();
    // A FIFO would block a plain read forever; junk and a wrong layout are skipped.
    let fifo = Command::new("mkfifo")
        .arg(stats.join("fifo.json"))
        .status()
        .unwrap();
    assert!(fifo.success());
    std::fs::write(stats.join("junk.json"), "{ not json").unwrap();
    std::fs::write(
        stats.join("odd.json"),
        r#"{"pid":1,"crate_dir":"x","metrics":[{"plugin":"odd\u001b]0;t\u0007","version":"1.0.0",
            "calls":18446744073709551615,"timed":5,"errors":[["error",18446744073709551615],["panic",9]],
            "in_flight":0,"total":{"secs":1,"nanos":0},"max":{"secs":1,"nanos":0},"buckets":[1,2,3]}]}"#,
    )
    .unwrap();
    let out = plg(&dir, &["list", "--stats"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("stats odd"), "{text}");
    assert!(!text.contains('\u{1b}'), "escaped: {text}");
    assert!(
        text.contains("p50=-"),
        "a wrong bucket layout gives no percentiles: {text}"
    );
}

//! The unload-safety preflight (issue 9 §7): what plg reads from a library file before
//! loading it, set against the verified unload of the same fixtures.
#![cfg(target_os = "linux")]

use plg_loader::{manifest::preflight::Unmappable, Context};
use plg_tests::{library, Profile, TempPluginsDir};

use crate::{
    cli::{pack, plg, stderr, stdout},
    load_one,
};

/// Loads `package`, calls it once on this (still running) thread, unloads it, and returns
/// what the preflight predicted and whether the image was verifiably unmapped.
fn predicted_and_verified(package: &str) -> (Unmappable, Option<bool>) {
    let (manager, plugin, _dir) = load_one(package);
    let predicted = plugin.unload_preflight().clone();
    assert_eq!(
        predicted,
        plg_loader::manifest::preflight::preflight(&library(Profile::Debug, package)).unwrap(),
        "the handle carries what the file says"
    );
    plugin.execute(&mut Context::new()).unwrap();
    let report = manager.unload(package, None).unwrap().remove(0);
    assert_eq!(
        report.predicted, predicted,
        "the report carries the prediction"
    );
    (predicted, report.unmapped)
}

#[test]
fn the_preflight_agrees_with_the_verified_unload_wherever_it_commits_itself() {
    // Linked with -z nodelete: certain, before loading, that it is never unmapped.
    let (p, unmapped) = predicted_and_verified("fixture-nodelete");
    assert!(
        matches!(&p, Unmappable::No(why) if why.iter().any(|w| w.contains("DF_1_NODELETE"))),
        "{p:?}"
    );
    assert_eq!(unmapped, Some(false));

    // Every Rust cdylib imports __cxa_thread_atexit_impl (std's thread-local support), so for
    // these the file cannot tell; the verified unload does: the plugin that registers a
    // thread-local destructor on this live thread stays mapped, the others are unmapped.
    for (package, expected) in [
        ("fixture-tls", Some(false)),
        ("fixture-noop", Some(true)),
        ("hello", Some(true)),
    ] {
        let (p, unmapped) = predicted_and_verified(package);
        assert_eq!(p, Unmappable::Depends, "{package}");
        assert_eq!(unmapped, expected, "{package}");
    }
}

#[test]
fn list_and_inspect_show_the_verdict_without_loading() {
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    let staged = dir.stage("fixture-nodelete");
    let out = plg(&dir, &["list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    let row = |name: &str| rows.iter().find(|r| r["name"] == name).unwrap().clone();
    assert_eq!(row("hello")["unload"], "depends");
    assert_eq!(row("fixture-nodelete")["unload"], "no");
    assert!(row("fixture-nodelete")["unload_reasons"][0]
        .as_str()
        .unwrap()
        .contains("DF_1_NODELETE"));
    let text = stdout(&plg(&dir, &["list"]));
    assert!(
        text.contains("unload=no (it is marked DF_1_NODELETE"),
        "{text}"
    );

    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("n.plg");
    pack(&dir, &staged, &bundle);
    let out = plg(&dir, &["inspect", bundle.to_str().unwrap()]);
    assert!(
        stdout(&out).contains("unload:      never unmapped: it is marked DF_1_NODELETE"),
        "{}",
        stdout(&out)
    );
}

/// Compiles `source` (C or C++, by `compiler`) into a shared object with `flags`.
fn shared_object(
    compiler: &str,
    ext: &str,
    source: &str,
    flags: &[&str],
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join(format!("x.{ext}"));
    std::fs::write(&src, source).unwrap();
    let lib = dir.path().join("libx.so");
    let out = std::process::Command::new(compiler)
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .args(flags)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, lib)
}

#[test]
fn each_obstacle_is_read_from_the_file() {
    use plg_loader::manifest::preflight::preflight;

    let c = "int f(void) { return 1; }";
    let (_d, plain) = shared_object("cc", "c", c, &[]);
    assert_eq!(preflight(&plain).unwrap(), Unmappable::Yes);
    let (_d, nodelete) = shared_object("cc", "c", c, &["-Wl,-z,nodelete"]);
    assert!(matches!(preflight(&nodelete).unwrap(), Unmappable::No(_)));
    // A C++ inline function's static is an STB_GNU_UNIQUE symbol.
    let cpp =
        "inline int& counter() { static int n; return n; }\nint* get() { return &counter(); }";
    let (_d, unique) = shared_object("c++", "cpp", cpp, &[]);
    match preflight(&unique).unwrap() {
        Unmappable::No(why) => assert!(why.iter().any(|w| w.contains("STB_GNU_UNIQUE")), "{why:?}"),
        other => panic!("expected No, got {other:?}"),
    }
    // A thread-local with a destructor: the import that makes it depend.
    let tls = "struct D { ~D() {} }; thread_local D d; D* get() { return &d; }";
    let (_d, tls) = shared_object("c++", "cpp", tls, &[]);
    assert_eq!(preflight(&tls).unwrap(), Unmappable::Depends);
}

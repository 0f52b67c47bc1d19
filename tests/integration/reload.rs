//! Hot upgrade (issue 9 §1): `PluginManager::reload` swaps in the version on disk with no
//! failed call, hands state over, keeps the old version serving when the new one is broken,
//! retires the old image through the verified unload and cleans its private copy.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
};

use plg_loader::{
    Context, EventKind, ExecError, LoadError, Plugin, PluginManager, Reload, Retired, UnloadReport,
};
use plg_tests::{build_edited, library_file_name, Profile, TempPluginsDir};

/// A rebuild of `hello` 1.2.0 whose greeting says `word` instead of `Hello`.
fn hello_saying(word: &str) -> PathBuf {
    let greeting = format!("{word}, {{name}}!");
    build_edited(
        "hello",
        "1.2.0",
        &format!("-{word}"),
        &[("Hello, {name}!", &greeting)],
    )
}

fn greet(plugin: &Plugin) -> String {
    let mut ctx = Context::new();
    ctx.set("name", "plg");
    plugin.execute(&mut ctx).expect("hello never fails");
    ctx.get_str("greeting").unwrap().to_owned()
}

fn upgraded(reload: Reload) -> (String, String, Option<usize>, Retired) {
    match reload {
        Reload::Upgraded {
            from,
            to,
            state,
            retired,
        } => (from, to, state, retired),
        other => panic!("expected an upgrade, got {other:?}"),
    }
}

/// The files under `DIR/.plg/live/` (the private copies), recursively.
fn live_copies(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.join(".plg").join("live")];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

fn staged_hello() -> (TempPluginsDir, PathBuf, PluginManager) {
    let dir = TempPluginsDir::default();
    let version_dir = dir.stage("hello");
    let manager = PluginManager::new(dir.path());
    let report = manager.load_all();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    (dir, version_dir, manager)
}

#[test]
fn a_handle_got_by_name_calls_the_new_version_after_a_reload() {
    let (dir, version_dir, manager) = staged_hello();
    let hello = manager.get("hello").unwrap();
    assert_eq!(greet(&hello), "Hello, plg!");
    let events = manager.subscribe();

    dir.replace_library(&version_dir, "hello", &hello_saying("Howdy"));
    let (from, to, state, retired) = upgraded(manager.reload("hello").unwrap());
    assert_eq!((from.as_str(), to.as_str()), ("hello@1.2.0", "hello@1.2.0"));
    assert_eq!(state, None, "hello exports no state hooks");
    match retired {
        Retired::Unloaded(UnloadReport { unmapped, .. }) => {
            assert_eq!(
                unmapped,
                Some(true),
                "hello has no thread-local destructors"
            )
        }
        other => panic!("the old image is retired at once: {other:?}"),
    }
    assert_eq!(greet(&hello), "Howdy, plg!", "the same handle follows");
    assert_eq!(greet(&manager.get("hello").unwrap()), "Howdy, plg!");
    assert!(
        hello
            .library_path()
            .starts_with(dir.path().join(".plg/live")),
        "the new version runs from a private copy: {}",
        hello.library_path().display()
    );
    let reloaded = std::iter::from_fn(|| events.try_next()).find_map(|e| match e.kind {
        EventKind::Reloaded { from, to, retired } => Some((from, to, retired)),
        _ => None,
    });
    assert!(
        matches!(reloaded, Some((_, _, Retired::Unloaded(_)))),
        "{reloaded:?}"
    );
}

#[test]
fn reloading_unchanged_bytes_does_nothing() {
    let (dir, version_dir, manager) = staged_hello();
    let before = manager.get("hello").unwrap();
    // The same bytes, written anew (a rebuild that changed nothing).
    let same = dir.path().join("same-bytes.so");
    std::fs::copy(version_dir.join(library_file_name("hello")), &same).unwrap();
    dir.replace_library(&version_dir, "hello", &same);
    match manager.reload("hello").unwrap() {
        Reload::Unchanged { plugin } => assert_eq!(plugin, "hello@1.2.0"),
        other => panic!("expected Unchanged, got {other:?}"),
    }
    assert!(before.same_instance(&manager.get("hello").unwrap()));
    assert!(live_copies(dir.path()).is_empty(), "nothing was copied");
}

#[test]
fn counter_keeps_its_count_across_an_upgrade() {
    let dir = TempPluginsDir::default();
    let version_dir = dir.stage("counter");
    let manager = PluginManager::new(dir.path());
    assert!(manager.load_all().failed.is_empty());
    let counter = manager.get("counter").unwrap();
    for _ in 0..5 {
        counter.execute(&mut Context::new()).unwrap();
    }
    let events = manager.subscribe();
    let rebuilt = build_edited(
        "counter",
        "0.1.0",
        "-rebuilt",
        &[("counter loaded", "counter (rebuilt) loaded")],
    );
    dir.replace_library(&version_dir, "counter", &rebuilt);
    let (_, _, state, _) = upgraded(manager.reload("counter").unwrap());
    assert_eq!(state, Some(1), "save_state handed over one value");

    let mut ctx = Context::new().with_label("get");
    counter.execute(&mut ctx).unwrap();
    assert_eq!(ctx.get::<i64>("count"), Ok(5), "the count survived");
    let restored = std::iter::from_fn(|| events.try_next()).find_map(|e| match e.kind {
        EventKind::StateRestored { from, to, values } => Some((from, to, values)),
        _ => None,
    });
    assert_eq!(
        restored,
        Some(("counter@0.1.0".into(), "counter@0.1.0".into(), 1))
    );
}

#[test]
fn a_broken_new_version_keeps_the_old_one_serving() {
    let (dir, version_dir, manager) = staged_hello();
    let hello = manager.get("hello").unwrap();
    let events = manager.subscribe();

    // Not a library at all.
    let junk = dir.path().join("junk.so");
    std::fs::write(&junk, b"\x7fELF but not really").unwrap();
    dir.replace_library(&version_dir, "hello", &junk);
    let err = manager.reload("hello").unwrap_err();
    assert!(matches!(*err, LoadError::NotSharedObject { .. }), "{err:?}");

    // A library cut short, as a build or a copy still writing it leaves it: refused from its
    // headers, before the dynamic loader maps pages past its end.
    let whole = std::fs::read(plg_tests::library(Profile::Debug, "hello")).unwrap();
    let half = dir.path().join("half.so");
    std::fs::write(&half, &whole[..whole.len() / 2]).unwrap();
    dir.replace_library(&version_dir, "hello", &half);
    let err = manager.reload("hello").unwrap_err();
    match &*err {
        LoadError::NotSharedObject { reason, .. } => {
            assert!(reason.contains("truncated"), "{reason}")
        }
        other => panic!("expected NotSharedObject, got {other:?}"),
    }
    assert_eq!(greet(&hello), "Hello, plg!", "the old version still serves");
    assert_eq!(greet(&hello), "Hello, plg!", "the old version still serves");

    // A library whose self-test fails: loaded, started, refused, closed again.
    let failing = build_edited(
        "hello",
        "1.2.0",
        "-failing-self-test",
        &[(
            "export_plugin!(execute: execute);",
            "fn self_test(_: &mut Context) -> Result<(), PluginError> {\n    \
             Err(PluginError::failed(\"the greeting table is missing\"))\n}\n\n\
             export_plugin!(execute: execute, self_test: self_test);",
        )],
    );
    dir.replace_library(&version_dir, "hello", &failing);
    let err = manager.reload("hello").unwrap_err();
    match &*err {
        LoadError::UpgradeHook { hook, message, .. } => {
            assert_eq!(*hook, "self_test");
            assert!(message.contains("greeting table"), "{message}");
        }
        other => panic!("expected UpgradeHook, got {other:?}"),
    }
    assert_eq!(greet(&hello), "Hello, plg!", "the old version still serves");
    assert!(
        live_copies(dir.path()).is_empty(),
        "the refused copies were removed: {:?}",
        live_copies(dir.path())
    );

    let failures: Vec<_> = std::iter::from_fn(|| events.try_next())
        .filter_map(|e| match e.kind {
            EventKind::ReloadFailed { plugin, error, .. } => Some((plugin, error)),
            _ => None,
        })
        .collect();
    assert_eq!(failures.len(), 3, "{failures:?}");
    assert!(failures.iter().all(|(p, _)| p == "hello@1.2.0"));
}

#[test]
fn handles_with_a_requirement_follow_only_matching_upgrades() {
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    let manager = PluginManager::new(dir.path());
    assert!(manager.load_all().failed.is_empty());
    let by_name = manager.get("hello").unwrap();
    let caret = manager.get_matching("hello", "^1").unwrap();
    let pinned = manager.get_matching("hello", "=1.2.0").unwrap();

    dir.stage_variant("hello", "2.0.0");
    let (from, to, _, retired) = upgraded(manager.reload("hello").unwrap());
    assert_eq!((from.as_str(), to.as_str()), ("hello@1.2.0", "hello@2.0.0"));
    assert!(
        matches!(retired, Retired::Kept { handles: 2 }),
        "{retired:?}"
    );
    assert_eq!(by_name.version().to_string(), "2.0.0");
    assert_eq!(
        caret.version().to_string(),
        "1.2.0",
        "2.0.0 does not match ^1"
    );
    assert_eq!(pinned.version().to_string(), "1.2.0");
    assert_eq!(greet(&caret), "Hello, plg!");
    assert_eq!(manager.get("hello").unwrap().version().to_string(), "2.0.0");
}

#[test]
fn a_pinned_handle_stays_until_its_version_is_unloaded() {
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    let manager = PluginManager::new(dir.path());
    assert!(manager.load_all().failed.is_empty());
    let pinned = manager.get_matching("hello", "=1.2.0").unwrap();
    dir.stage_variant("hello", "2.0.0");
    upgraded(manager.reload("hello").unwrap());
    assert_eq!(pinned.version().to_string(), "1.2.0");
    manager
        .unload("hello", Some(&semver::Version::new(1, 2, 0)))
        .unwrap();
    let err = pinned.execute(&mut Context::new()).unwrap_err();
    assert!(matches!(*err, ExecError::Unloaded { .. }), "{err:?}");
}

#[test]
fn eight_threads_calling_through_upgrades_never_fail_and_never_go_back() {
    const UPGRADES: usize = 20;
    let (dir, version_dir, manager) = staged_hello();
    let builds = [hello_saying("Hello"), hello_saying("Howdy")];
    // `begun` counts reloads begun, `done` reloads finished. A call that starts when `done`
    // is g and ends before reload g+1 begins must be served by build g % 2 (generation 0 is
    // the staged original, which says Hello like build 0): never by an older version.
    let begun = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let hello = manager.get("hello").unwrap();
            let (begun, done, stop) = (Arc::clone(&begun), Arc::clone(&done), Arc::clone(&stop));
            std::thread::spawn(move || {
                let (mut calls, mut failed, mut stale) = (0usize, 0usize, Vec::new());
                while !stop.load(Ordering::SeqCst) {
                    let generation = done.load(Ordering::SeqCst);
                    let mut ctx = Context::new();
                    ctx.set("name", "plg");
                    match hello.execute(&mut ctx) {
                        Ok(()) => {
                            let said = ctx.get_str("greeting").unwrap().to_owned();
                            let expected = ["Hello, plg!", "Howdy, plg!"][generation % 2];
                            let quiet = begun.load(Ordering::SeqCst) == generation;
                            if quiet && said != expected && stale.len() < 10 {
                                stale.push((generation, said));
                            }
                        }
                        Err(e) => {
                            failed += 1;
                            eprintln!("call failed: {e}");
                        }
                    }
                    calls += 1;
                }
                (calls, failed, stale)
            })
        })
        .collect();
    for g in 1..=UPGRADES {
        dir.replace_library(&version_dir, "hello", &builds[g % 2]);
        begun.store(g, Ordering::SeqCst);
        let reload = manager.reload("hello").unwrap();
        assert!(matches!(reload, Reload::Upgraded { .. }), "{reload:?}");
        done.store(g, Ordering::SeqCst);
    }
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for t in threads {
        let (calls, failed, stale) = t.join().unwrap();
        assert_eq!(failed, 0, "no call fails during an upgrade");
        assert!(
            stale.is_empty(),
            "a call went back to an old version: {stale:?}"
        );
        total += calls;
    }
    assert!(total > 0);
    let _ = manager.unload_all();
    drop(manager);
    assert!(
        live_copies(dir.path()).is_empty(),
        "every private copy is gone: {:?}",
        live_copies(dir.path())
    );
}

#[test]
fn many_reloads_leave_one_private_copy_and_verify_every_unload() {
    let (dir, version_dir, manager) = staged_hello();
    let builds = [hello_saying("Hello"), hello_saying("Howdy")];
    let events = manager.subscribe();
    for g in 1..=30 {
        dir.replace_library(&version_dir, "hello", &builds[g % 2]);
        upgraded(manager.reload("hello").unwrap());
        let copies = live_copies(dir.path());
        assert_eq!(copies.len(), 1, "after reload {g}: {copies:?}");
    }
    let retired: Vec<_> = std::iter::from_fn(|| events.try_next())
        .filter_map(|e| match e.kind {
            EventKind::Reloaded { retired, .. } => Some(retired),
            _ => None,
        })
        .collect();
    assert_eq!(retired.len(), 30);
    for r in retired {
        match r {
            Retired::Unloaded(report) => {
                assert_eq!(report.unmapped, Some(true), "{report:?}");
                assert_eq!(report.kept_copy, None);
            }
            other => panic!("{other:?}"),
        }
    }
    drop(manager);
    assert!(live_copies(dir.path()).is_empty());
}

#[test]
fn reloading_a_plugin_that_is_not_loaded_is_a_lookup_error() {
    let dir = TempPluginsDir::default();
    let manager = PluginManager::new(dir.path());
    let err = manager.reload("hello").unwrap_err();
    assert!(matches!(*err, LoadError::Lookup(_)), "{err:?}");
}

#[test]
fn a_reload_never_downgrades() {
    let dir = TempPluginsDir::default();
    let two = dir.stage_variant("hello", "2.0.0");
    let manager = PluginManager::new(dir.path());
    assert!(manager.load_all().failed.is_empty());
    dir.stage("hello"); // 1.2.0
    std::fs::remove_dir_all(&two).unwrap();
    let err = manager.reload("hello").unwrap_err();
    match &*err {
        LoadError::Downgrade { plugin, found, .. } => {
            assert_eq!((plugin.as_str(), found.as_str()), ("hello@2.0.0", "1.2.0"))
        }
        other => panic!("expected Downgrade, got {other:?}"),
    }
    assert_eq!(manager.get("hello").unwrap().version().to_string(), "2.0.0");
}

#[test]
fn an_old_version_that_a_loaded_plugin_needs_stays_loaded() {
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    dir.stage_with("counter", "counter", |m| {
        m["dependencies"] = serde_json::json!({ "hello": "^1" })
    });
    let manager = PluginManager::new(dir.path());
    let report = manager.load_all();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    drop(report);
    dir.stage_variant("hello", "2.0.0");
    let (_, to, _, retired) = upgraded(manager.reload("hello").unwrap());
    assert_eq!(to, "hello@2.0.0");
    match retired {
        Retired::Needed { by } => assert_eq!(by, ["counter@0.1.0"]),
        other => panic!("expected Needed, got {other:?}"),
    }
    assert!(
        manager.get_matching("hello", "^1").is_ok(),
        "1.2.0 stays loaded"
    );
}

//! Unloading: cancellation of calls in flight, the bounded wait, handles after unload, and
//! verified unmapping (including the thread-local-destructor case glibc keeps mapped).

use std::{sync::mpsc, time::Duration};

use plg_loader::{Context, ExecError, LookupError, PluginManager, UnloadError};
use plg_tests::TempPluginsDir;

use crate::load_one;

#[test]
fn unload_unmaps_and_handles_refuse_calls_afterwards() {
    let (manager, hello, _d) = load_one("hello");
    hello.execute(&mut Context::new()).unwrap();
    let path = hello.library_path().to_owned();
    let reports = manager.unload("hello", None).unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].plugin, "hello@1.2.0");
    #[cfg(target_os = "linux")]
    {
        assert_eq!(reports[0].unmapped, Some(true));
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(!maps.contains(path.to_str().unwrap()));
    }
    let _ = path;
    assert!(!hello.is_loaded());
    assert_eq!(
        hello.execute(&mut Context::new()),
        Err(Box::new(ExecError::Unloaded {
            plugin: "hello@1.2.0".into()
        }))
    );
    assert!(matches!(
        manager.get("hello"),
        Err(LookupError::NotLoaded { .. })
    ));
    assert!(matches!(
        manager.unload("hello", None),
        Err(UnloadError::Lookup(LookupError::NotLoaded { .. }))
    ));
}

/// `fixture-greet` writes into the string the previous call left (`Context::take_string`):
/// what a context keeps after the calls is the host's, and outlives the plugin's image.
#[test]
fn strings_written_into_a_reused_buffer_outlive_the_plugin() {
    let (manager, greet, _d) = load_one("fixture-greet");
    // A fresh context: the first greeting's buffer is the plugin's own allocation, handed
    // over at the end of the call; the next calls write into it.
    let mut first = Context::new();
    first.set("name", "Ada");
    greet.execute(&mut first).unwrap();
    let mut reused = Context::new();
    for name in [
        "Ada",
        "a much longer name than the first, to make the buffer grow",
        "Bo",
    ] {
        reused.set("name", name);
        greet.execute(&mut reused).unwrap();
        assert_eq!(reused.get_str("greeting").unwrap(), format!("hello {name}"));
    }
    // Taken, then the call fails: the empty string left under the key is the host's too.
    let mut failed = Context::new();
    failed.set("name", "Ada");
    greet.execute(&mut failed).unwrap();
    failed.set("name", 5);
    assert!(greet.execute(&mut failed).is_err());

    let reports = manager.unload("fixture-greet", None).unwrap();
    #[cfg(target_os = "linux")]
    assert_eq!(reports[0].unmapped, Some(true));
    let _ = reports;
    // Each string grows (a reallocation through its buffer's functions) and is dropped, with
    // the plugin gone: any of them still the plugin's would crash here.
    for mut ctx in [first, reused, failed] {
        let mut kept = ctx.take_string("greeting");
        kept.push_str(&"after the unload ".repeat(64));
        ctx.set("greeting", kept);
        assert!(ctx
            .get_str("greeting")
            .unwrap()
            .starts_with("after the unload"));
        drop(ctx);
    }
}

#[test]
fn unload_cancels_a_call_in_flight_and_waits_for_it() {
    let (manager, hang, _d) = load_one("fixture-hang");
    let (tx, rx) = mpsc::channel();
    let worker = {
        let hang = hang.clone();
        std::thread::spawn(move || {
            let mut ctx = Context::new();
            tx.send(()).unwrap();
            hang.execute(&mut ctx)
        })
    };
    rx.recv().unwrap();
    wait_until(|| hang.in_flight() > 0, "the call never started");
    let reports = manager.unload("fixture-hang", None).unwrap();
    assert_eq!(
        worker.join().unwrap(),
        Err(Box::new(ExecError::Cancelled {
            plugin: "fixture-hang@0.1.0".into()
        }))
    );
    #[cfg(target_os = "linux")]
    assert_eq!(reports[0].unmapped, Some(true));
    let _ = reports;
}

#[test]
fn a_call_that_ignores_cancellation_makes_unload_busy_not_unsafe() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-hang");
    let manager = PluginManager::new(dir.path()).with_unload_timeout(Duration::from_millis(100));
    manager.load_all();
    let hang = manager.get("fixture-hang").unwrap();
    let mut ctx = Context::new().with_label("ignore-stop");
    let token = ctx.cancel_token().clone();
    let worker = {
        let hang = hang.clone();
        std::thread::spawn(move || hang.execute(&mut ctx))
    };
    wait_until(|| hang.in_flight() > 0, "the call never started");
    match manager.unload("fixture-hang", None) {
        Err(UnloadError::Busy { in_flight, .. }) => assert_eq!(in_flight, 1),
        other => panic!("expected Busy, got {other:?}"),
    }
    // Still registered, but refusing new calls.
    assert_eq!(
        hang.execute(&mut Context::new()),
        Err(Box::new(ExecError::Unloaded {
            plugin: "fixture-hang@0.1.0".into()
        }))
    );
    token.cancel();
    assert!(matches!(
        worker.join().unwrap().map_err(|e| *e),
        Err(ExecError::Cancelled { .. })
    ));
    let reports = manager.unload("fixture-hang", None).unwrap();
    #[cfg(target_os = "linux")]
    assert_eq!(reports[0].unmapped, Some(true));
    let _ = reports;
}

/// Spins until `done` holds; fails (never hangs) after a generous bound.
fn wait_until(done: impl Fn() -> bool, what: &str) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(60), "{what}");
        std::thread::yield_now();
    }
}

/// Both hooks run, each observed by its log line: `on_load` when the plugin loads (before
/// any call), `on_unload` at unload, seeing the state the calls left.
#[test]
fn hooks_run_on_load_and_on_unload() {
    let dir = TempPluginsDir::default();
    dir.stage("counter");
    let manager = PluginManager::new(dir.path());
    let loaded = crate::logging::capture_logs(|| {
        manager.load_matching("counter", None).unwrap();
    });
    assert!(
        loaded.contains("counter loaded"),
        "on_load did not run: {loaded}"
    );
    let counter = manager.get("counter").unwrap();
    let mut ctx = Context::new();
    counter.execute(&mut ctx).unwrap();
    assert_eq!(ctx.get::<i64>("count"), Ok(1));
    let mut reports = Vec::new();
    let unloaded = crate::logging::capture_logs(|| {
        reports = manager.unload("counter", None).unwrap();
    });
    assert!(
        unloaded.contains("counter unloading at count 1"),
        "on_unload did not run: {unloaded}"
    );
    assert_eq!(reports[0].on_unload_error, None);
}

/// glibc keeps a library mapped while a live thread has thread-local destructors registered
/// in it. plg must report that, not assume success.
#[cfg(target_os = "linux")]
#[test]
fn thread_local_destructors_on_a_live_thread_keep_the_library_mapped() {
    let (manager, tls, _d) = load_one("fixture-tls");
    tls.execute(&mut Context::new()).unwrap(); // on this (still running) test thread
    let reports = manager.unload("fixture-tls", None).unwrap();
    assert_eq!(reports[0].unmapped, Some(false));
}

#[cfg(target_os = "linux")]
#[test]
fn thread_local_destructors_of_a_finished_thread_do_not_keep_it_mapped() {
    let (manager, tls, _d) = load_one("fixture-tls");
    let t = tls.clone();
    std::thread::spawn(move || t.execute(&mut Context::new()))
        .join()
        .unwrap()
        .unwrap();
    let reports = manager.unload("fixture-tls", None).unwrap();
    assert_eq!(reports[0].unmapped, Some(true));
}

#[test]
fn dropping_the_manager_unloads_everything() {
    let (manager, hello, _d) = load_one("hello");
    drop(manager);
    assert!(!hello.is_loaded());
    assert!(matches!(
        hello.execute(&mut Context::new()).map_err(|e| *e),
        Err(ExecError::Unloaded { .. })
    ));
}

/// A plugin that tries every safe-API trick to leave its own allocations in the host's
/// context. After unload (verified), the host touches, serializes and drops the context: if
/// any buffer still pointed into the plugin, this test would crash.
#[test]
fn no_plugin_memory_survives_in_the_context_after_unload() {
    for trick in ["forge-key", "rehome", "token", "replace", "clone"] {
        let (manager, evil, _d) = load_one("fixture-evil-context");
        let mut ctx = Context::new().with_label(trick);
        ctx.set("host", "host-owned string");
        ctx.set("list", vec![plg_loader::Value::from("x")]);
        let caller_token = ctx.cancel_token().clone();
        evil.execute(&mut ctx).unwrap();
        let reports = manager.unload("fixture-evil-context", None).unwrap();
        #[cfg(target_os = "linux")]
        assert_eq!(reports[0].unmapped, Some(true), "{trick}");
        let _ = reports;

        let json = serde_json::to_string(ctx.values()).unwrap();
        // The log tag and sink are the host's again: logging after the unload reads no
        // plugin memory.
        assert_eq!(ctx.origin(), "", "{trick}");
        ctx.info("logged after the unload");
        ctx.set("after", "unload");
        let copy = ctx.clone();
        ctx.cancel_token().cancel();
        assert!(ctx.is_cancelled());
        // Only a plugin that left the token alone keeps the caller's clone connected;
        // replacing or rehoming it inside the plugin necessarily makes a new flag.
        assert_eq!(caller_token.is_cancelled(), trick == "forge-key", "{trick}");
        drop(copy);
        drop(ctx);
        assert!(!json.is_empty());
    }
}

#[test]
fn scanning_does_not_disturb_loaded_plugins() {
    let (manager, hang, _d) = load_one("fixture-hang");
    let entries = manager.scan().unwrap();
    assert_eq!(entries.len(), 1);
    assert!(entries[0].status.is_ok(), "{:?}", entries[0].status);
    let mut ctx = Context::new().with_label("is-cancelled");
    hang.execute(&mut ctx).unwrap();
    assert_eq!(ctx.get::<bool>("cancelled"), Ok(false));
}

#[test]
fn one_image_is_opened_once_per_process() {
    let (_manager, hang, dir) = load_one("fixture-hang");
    // A second manager over the same files, and the same file under another path.
    let other = PluginManager::new(dir.path());
    let report = other.load_all();
    assert!(matches!(
        report.failed[0].error,
        plg_loader::LoadError::ImageInUse { .. }
    ));
    let linked = TempPluginsDir::default();
    let d = linked.path().join("fixture-hang/0.1.0");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(hang.manifest_path(), d.join("plugin.json")).unwrap();
    std::fs::hard_link(
        hang.library_path(),
        d.join(plg_tests::library_file_name("fixture-hang")),
    )
    .unwrap();
    let third = PluginManager::new(linked.path());
    assert!(matches!(
        third.load_all().failed[0].error,
        plg_loader::LoadError::ImageInUse { .. }
    ));
    // The loaded instance was not disturbed.
    let mut ctx = Context::new().with_label("is-cancelled");
    hang.execute(&mut ctx).unwrap();
    assert_eq!(ctx.get::<bool>("cancelled"), Ok(false));
}

#[test]
fn concurrent_loads_of_one_plugin_load_it_once() {
    let dir = TempPluginsDir::default();
    let manifest = dir.stage("fixture-hang").join("plugin.json");
    let manager = std::sync::Arc::new(PluginManager::new(dir.path()));
    let results: Vec<_> = (0..8)
        .map(|_| {
            let (m, p) = (manager.clone(), manifest.clone());
            std::thread::spawn(move || m.load_manifest(&p).map(|_| ()))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .all(|r| matches!(r, Ok(()) | Err(plg_loader::LoadError::AlreadyLoaded { .. }))));
    let mut ctx = Context::new().with_label("is-cancelled");
    manager
        .get("fixture-hang")
        .unwrap()
        .execute(&mut ctx)
        .unwrap();
    assert_eq!(ctx.get::<bool>("cancelled"), Ok(false));
}

/// A refused call never counts itself in flight: under 64 threads calling a no-op plugin in a
/// loop, unload drains at once instead of timing out with `Busy`. Every call returns Ok or
/// Unloaded, and the library is verified unmapped. (Before the fix a refused call briefly
/// counted itself in flight, and with this many callers the count rarely reached zero.)
#[test]
fn refused_calls_never_keep_unload_busy_under_64_threads() {
    use std::sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Barrier,
    };
    const THREADS: usize = 64;
    for _round in 0..3 {
        let dir = TempPluginsDir::default();
        dir.stage("fixture-noop");
        let manager = PluginManager::new(dir.path()); // the default 5 s unload timeout
        let noop = manager.load_matching("fixture-noop", None).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(THREADS + 1));
        let callers: Vec<_> = (0..THREADS)
            .map(|_| {
                let (noop, stop, ok, start) =
                    (noop.clone(), stop.clone(), ok.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    // Bounded: a caller stops by itself if the test failed before `stop`.
                    let begun = std::time::Instant::now();
                    while !stop.load(Ordering::Relaxed) && begun.elapsed().as_secs() < 300 {
                        match noop.execute(&mut Context::new()).map_err(|e| *e) {
                            Ok(()) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(ExecError::Unloaded { .. }) => {}
                            Err(other) => panic!("unexpected {other}"),
                        }
                    }
                })
            })
            .collect();
        start.wait();
        let warm_up = std::time::Instant::now();
        while ok.load(Ordering::Relaxed) < 10_000 {
            assert!(
                warm_up.elapsed() < Duration::from_secs(60),
                "the callers made no progress"
            );
            std::thread::yield_now();
        }
        let reports = manager.unload("fixture-noop", None);
        stop.store(true, Ordering::Relaxed);
        for t in callers {
            t.join().unwrap();
        }
        let reports = reports.expect("unload drained; no refused call kept it busy");
        #[cfg(target_os = "linux")]
        assert_eq!(reports[0].unmapped, Some(true));
        let _ = reports;
    }
}

#[test]
fn dropping_the_manager_unloads_its_plugins_and_warns_about_handles_still_held() {
    use crate::logging::capture_logs;

    let (manager, hello, _dir) = crate::load_one("hello");
    let logs = capture_logs(|| drop(manager));
    assert!(
        logs.contains("dropped while handles to its plugins are still held")
            && logs.contains("hello@1.2.0"),
        "{logs}"
    );
    assert!(matches!(
        hello
            .execute(&mut plg_loader::Context::new())
            .map_err(|e| *e),
        Err(plg_loader::ExecError::Unloaded { .. })
    ));

    // No handles held: no warning.
    let (manager, hello, _dir) = crate::load_one("hello");
    drop(hello);
    let logs = capture_logs(|| drop(manager));
    assert!(!logs.contains("still held"), "{logs}");
}

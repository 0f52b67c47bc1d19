//! Unloading: cancellation of calls in flight, the bounded wait, handles after unload, and
//! verified unmapping (including the thread-local-destructor case glibc keeps mapped).

use std::{sync::mpsc, time::Duration};

use plg_loader::{Context, ExecError, LookupError, PluginManager, UnloadError};
use plg_tests::PluginsDir;

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
        Err(ExecError::Unloaded {
            plugin: "hello@1.2.0".into()
        })
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
    while hang.in_flight() == 0 {
        std::thread::yield_now();
    }
    let reports = manager.unload("fixture-hang", None).unwrap();
    assert_eq!(
        worker.join().unwrap(),
        Err(ExecError::Cancelled {
            plugin: "fixture-hang@0.1.0".into()
        })
    );
    #[cfg(target_os = "linux")]
    assert_eq!(reports[0].unmapped, Some(true));
    let _ = reports;
}

#[test]
fn a_call_that_ignores_cancellation_makes_unload_busy_not_unsafe() {
    let dir = PluginsDir::default();
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
    while hang.in_flight() == 0 {
        std::thread::yield_now();
    }
    match manager.unload("fixture-hang", None) {
        Err(UnloadError::Busy { in_flight, .. }) => assert_eq!(in_flight, 1),
        other => panic!("expected Busy, got {other:?}"),
    }
    // Still registered, but refusing new calls.
    assert_eq!(
        hang.execute(&mut Context::new()),
        Err(ExecError::Unloaded {
            plugin: "fixture-hang@0.1.0".into()
        })
    );
    token.cancel();
    assert!(matches!(
        worker.join().unwrap(),
        Err(ExecError::Cancelled { .. })
    ));
    let reports = manager.unload("fixture-hang", None).unwrap();
    #[cfg(target_os = "linux")]
    assert_eq!(reports[0].unmapped, Some(true));
    let _ = reports;
}

#[test]
fn hooks_run_on_load_and_on_unload() {
    let (manager, counter, _d) = load_one("counter");
    let mut ctx = Context::new();
    counter.execute(&mut ctx).unwrap();
    assert_eq!(ctx.get::<i64>("count"), Ok(1));
    let reports = manager.unload("counter", None).unwrap();
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
        hello.execute(&mut Context::new()),
        Err(ExecError::Unloaded { .. })
    ));
}

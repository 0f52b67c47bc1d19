//! Events (issue 9 §4, the load and unload half): every subscriber gets what happens to the
//! manager's plugins, in order, numbered and timestamped, and a slow subscriber loses the
//! oldest events (counted) instead of slowing anything down.

use std::time::Duration;

use plg_loader::{manifest::preflight::Unmappable, Event, EventKind, PluginManager};
use plg_tests::TempPluginsDir;

fn drain(sub: &plg_loader::Subscription) -> Vec<Event> {
    std::iter::from_fn(|| sub.try_next()).collect()
}

#[test]
fn loads_failures_and_unloads_arrive_in_order_with_the_preflight_verdict() {
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    dir.write_manifest("broken", "{ not json");
    let manager = PluginManager::new(dir.path());
    let events = manager.subscribe();
    let report = manager.load_all();
    assert_eq!((report.loaded.len(), report.failed.len()), (1, 1));
    manager.load_all(); // hello is already loaded from the same manifest: not a failure
    manager.unload("hello", None).unwrap();

    let got = drain(&events);
    let kinds: Vec<&str> = got
        .iter()
        .map(|e| match &e.kind {
            EventKind::Loaded { .. } => "loaded",
            EventKind::LoadFailed { .. } => "failed",
            EventKind::Unloaded { .. } => "unloaded",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "loaded").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "failed").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"unloaded"), "{kinds:?}");
    for pair in got.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1, "numbered without gaps");
        assert!(pair[1].at >= pair[0].at, "timestamps in order");
    }
    let loaded = got.iter().find_map(|e| match &e.kind {
        EventKind::Loaded {
            plugin, preflight, ..
        } => Some((plugin.clone(), preflight.clone())),
        _ => None,
    });
    assert_eq!(
        loaded,
        Some(("hello@1.2.0".to_owned(), Unmappable::Depends))
    );
    let failed = got.iter().find_map(|e| match &e.kind {
        EventKind::LoadFailed { path, error } => Some((path.clone(), error.clone())),
        _ => None,
    });
    let (path, error) = failed.unwrap();
    assert!(
        path.ends_with("broken/plugin.json") && error.contains("JSON"),
        "{error}"
    );
    match &got.last().unwrap().kind {
        EventKind::Unloaded { report } => {
            assert_eq!(report.plugin, "hello@1.2.0");
            assert_eq!(report.unmapped, Some(true));
            assert_eq!(report.predicted, Unmappable::Depends);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(events.lost(), 0);
}

#[test]
fn a_slow_subscriber_loses_the_oldest_events_and_blocks_nothing() {
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    let manager = PluginManager::new(dir.path());
    let slow = manager.subscribe_with_capacity(2);
    let other = manager.subscribe();
    for _ in 0..5 {
        manager.load_all();
        manager.unload("hello", None).unwrap();
    }
    // Ten events happened; the slow subscriber kept the last two and counted eight lost.
    let kept = drain(&slow);
    assert_eq!(kept.len(), 2);
    assert_eq!(slow.lost(), 8);
    assert_eq!(kept.last().unwrap().seq, 9);
    // Another subscriber is not affected.
    assert_eq!(drain(&other).len(), 10);
    assert_eq!(other.lost(), 0);
}

#[test]
fn a_subscription_ends_when_its_manager_is_dropped() {
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    let manager = PluginManager::new(dir.path());
    let events = manager.subscribe();
    let reader = std::thread::spawn(move || events.map(|e| e.seq).collect::<Vec<_>>());
    manager.load_all();
    drop(manager); // unloads hello, then ends the stream
    let seqs = reader.join().unwrap();
    assert_eq!(seqs, [0, 1], "loaded, then unloaded on drop");

    // `next_timeout` returns at once on an empty, ended stream.
    let dir = TempPluginsDir::default();
    let manager = PluginManager::new(dir.path());
    let events = manager.subscribe();
    drop(manager);
    assert!(events.next_timeout(Duration::from_secs(600)).is_none());
}

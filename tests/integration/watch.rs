//! Watching the plugins directory (issue 9 §2): new plugins load, changed ones are
//! hot-upgraded once per burst, removed ones unload, and a half-written library never loads.
//! Each test waits for events with a generous bound (a wait, not a timing assertion).

use std::{sync::Arc, time::Duration};

use plg_loader::{
    Context, Event, EventKind, LoadError, PluginManager, Subscription, WatchBackend, WatchGuard,
    WatchOptions,
};
use plg_tests::{build_edited, library_file_name, Profile, TempPluginsDir};

const PATIENCE: Duration = Duration::from_secs(60);

/// Waits for the first event `want` accepts; returns it and every event before it.
fn wait_for(events: &Subscription, want: impl Fn(&EventKind) -> bool) -> (Event, Vec<Event>) {
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut before = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match events.next_timeout(left) {
            Some(e) if want(&e.kind) => return (e, before),
            Some(e) => before.push(e),
            None => {}
        }
    }
    panic!("no such event within {PATIENCE:?}; got {before:?}");
}

fn greet(manager: &PluginManager) -> String {
    let mut ctx = Context::new();
    ctx.set("name", "plg");
    manager.get("hello").unwrap().execute(&mut ctx).unwrap();
    ctx.get_str("greeting").unwrap().to_owned()
}

fn howdy() -> std::path::PathBuf {
    build_edited(
        "hello",
        "1.2.0",
        "-Howdy",
        &[("Hello, {name}!", "Howdy, {name}!")],
    )
}

fn watched(
    options: WatchOptions,
) -> (TempPluginsDir, Arc<PluginManager>, Subscription, WatchGuard) {
    let dir = TempPluginsDir::default();
    let manager = Arc::new(PluginManager::new(dir.path()));
    let events = manager.subscribe();
    let guard = manager.watch_with(options).expect("watch");
    (dir, manager, events, guard)
}

#[test]
fn a_new_plugin_loads_a_change_upgrades_and_a_removal_unloads() {
    let (dir, manager, events, _guard) = watched(WatchOptions::default());
    let version_dir = dir.stage("hello");
    wait_for(
        &events,
        |k| matches!(k, EventKind::Loaded { plugin, .. } if plugin == "hello@1.2.0"),
    );
    assert_eq!(greet(&manager), "Hello, plg!");
    let hello = manager.get("hello").unwrap();
    assert!(
        hello
            .library_path()
            .starts_with(dir.path().join(".plg/live")),
        "a watched load runs from a private copy"
    );

    dir.replace_library(&version_dir, "hello", &howdy());
    wait_for(&events, |k| matches!(k, EventKind::Reloaded { .. }));
    assert_eq!(greet(&manager), "Howdy, plg!");

    std::fs::remove_dir_all(dir.path().join("hello")).unwrap();
    wait_for(
        &events,
        |k| matches!(k, EventKind::Unloaded { report } if report.plugin == "hello@1.2.0"),
    );
    assert!(manager.get("hello").is_err());
}

/// A schema file next to the manifest is part of the plugin: the watch upgrades on its edit.
#[test]
fn an_edited_schema_file_is_upgraded() {
    let (dir, manager, events, _guard) = watched(WatchOptions::default());
    let version_dir = dir.stage_with("hello", "hello", |m| {
        m["input_schema"] = "in.schema.json".into();
    });
    let schema = version_dir.join("in.schema.json");
    std::fs::write(&schema, r#"{"properties": {"name": {"maxLength": 10}}}"#).unwrap();
    wait_for(
        &events,
        |k| matches!(k, EventKind::Loaded { plugin, .. } if plugin == "hello@1.2.0"),
    );
    assert_eq!(greet(&manager), "Hello, plg!");

    std::fs::write(&schema, r#"{"properties": {"name": {"maxLength": 2}}}"#).unwrap();
    wait_for(&events, |k| matches!(k, EventKind::Reloaded { .. }));
    let mut ctx = Context::new();
    ctx.set("name", "plg");
    assert!(matches!(
        manager
            .get("hello")
            .unwrap()
            .execute(&mut ctx)
            .map_err(|e| *e),
        Err(plg_loader::ExecError::InvalidInput { .. })
    ));
}

#[test]
fn a_half_written_library_is_never_loaded() {
    let (dir, manager, events, _guard) =
        watched(WatchOptions::default().debounce(Duration::from_millis(200)));
    let version_dir = dir.stage("hello");
    wait_for(&events, |k| matches!(k, EventKind::Loaded { .. }));

    // Write the new library in place, in two halves with a pause longer than the debounce
    // between them: the watch sees a quiet, half-written file.
    let whole = std::fs::read(howdy()).unwrap();
    let target = version_dir.join(library_file_name("hello"));
    std::fs::write(&target, &whole[..whole.len() / 2]).unwrap();
    let (refused, _) = wait_for(&events, |k| matches!(k, EventKind::ReloadFailed { .. }));
    match refused.kind {
        EventKind::ReloadFailed { error, .. } => match &*error {
            LoadError::NotSharedObject { reason, .. } => {
                assert!(reason.contains("truncated"), "{reason}")
            }
            other => panic!("expected NotSharedObject, got {other:?}"),
        },
        _ => unreachable!(),
    }
    assert_eq!(
        greet(&manager),
        "Hello, plg!",
        "the old version still serves"
    );

    std::fs::write(&target, &whole).unwrap();
    let (_, before) = wait_for(&events, |k| matches!(k, EventKind::Reloaded { .. }));
    assert!(
        !before
            .iter()
            .any(|e| matches!(e.kind, EventKind::Loaded { .. })),
        "{before:?}"
    );
    assert_eq!(greet(&manager), "Howdy, plg!");
}

#[test]
fn a_burst_of_writes_gives_one_upgrade_and_an_unchanged_rebuild_none() {
    let (dir, manager, events, _guard) =
        watched(WatchOptions::default().debounce(Duration::from_millis(1000)));
    let version_dir = dir.stage("hello");
    wait_for(&events, |k| matches!(k, EventKind::Loaded { .. }));

    // The same bytes written again: the content hash is unchanged, nothing happens. Then a
    // burst of five writes ending with a new build: exactly one upgrade.
    let original = plg_tests::library(Profile::Debug, "hello");
    dir.replace_library(&version_dir, "hello", &original);
    let howdy = howdy();
    for i in 0..5 {
        let lib = if i % 2 == 0 { &howdy } else { &original };
        dir.replace_library(&version_dir, "hello", lib);
    }
    let (_, before) = wait_for(&events, |k| matches!(k, EventKind::Reloaded { .. }));
    assert!(
        !before
            .iter()
            .any(|e| matches!(e.kind, EventKind::ReloadFailed { .. })),
        "{before:?}"
    );
    assert_eq!(greet(&manager), "Howdy, plg!");
    // A marker change after the burst: the next upgrade event must be the marker's, so no
    // second upgrade came from the burst.
    let marker = build_edited(
        "hello",
        "1.2.0",
        "-Marker",
        &[("Hello, {name}!", "Marker, {name}!")],
    );
    dir.replace_library(&version_dir, "hello", &marker);
    wait_for(&events, |k| matches!(k, EventKind::Reloaded { .. }));
    assert_eq!(
        greet(&manager),
        "Marker, plg!",
        "the burst gave one upgrade"
    );
}

#[test]
fn polling_works_where_file_events_do_not() {
    let (dir, manager, events, _guard) = watched(
        WatchOptions::default()
            .poll_every(Duration::from_millis(100))
            .debounce(Duration::from_millis(200)),
    );
    let version_dir = dir.stage("hello");
    wait_for(&events, |k| matches!(k, EventKind::Loaded { .. }));
    dir.replace_library(&version_dir, "hello", &howdy());
    wait_for(&events, |k| matches!(k, EventKind::Reloaded { .. }));
    assert_eq!(greet(&manager), "Howdy, plg!");
}

#[test]
fn the_backend_is_reported_and_a_missing_directory_is_a_watch_error() {
    let dir = TempPluginsDir::default();
    let manager = Arc::new(PluginManager::new(dir.path()));
    let guard = manager.watch().unwrap();
    assert_eq!(guard.backend(), WatchBackend::Events);
    let poll = manager
        .watch_with(WatchOptions::default().poll_every(Duration::from_secs(1)))
        .unwrap();
    assert_eq!(poll.backend(), WatchBackend::Poll(Duration::from_secs(1)));

    let missing = Arc::new(PluginManager::new(dir.path().join("nope")));
    let err = missing.watch().unwrap_err();
    assert!(matches!(err, LoadError::Watch { .. }), "{err:?}");
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn removing_the_newest_version_unloads_it_and_loads_what_is_left() {
    let (dir, manager, events, _guard) = watched(WatchOptions::default());
    dir.stage("hello");
    wait_for(
        &events,
        |k| matches!(k, EventKind::Loaded { plugin, .. } if plugin == "hello@1.2.0"),
    );
    let two = dir.stage_variant("hello", "2.0.0");
    wait_for(
        &events,
        |k| matches!(k, EventKind::Reloaded { to, .. } if to == "hello@2.0.0"),
    );
    std::fs::remove_dir_all(&two).unwrap();
    wait_for(
        &events,
        |k| matches!(k, EventKind::Unloaded { report } if report.plugin == "hello@2.0.0"),
    );
    // The upgrade retired 1.2.0; removing 2.0.0 unloads it and loads what is left.
    wait_for(
        &events,
        |k| matches!(k, EventKind::Loaded { plugin, .. } if plugin == "hello@1.2.0"),
    );
    assert_eq!(manager.get("hello").unwrap().version().to_string(), "1.2.0");
}

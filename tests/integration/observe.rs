//! Call hooks and metrics (issue 9 §4 and §5): host-side interceptors around every call,
//! and per-version call metrics measured at the host boundary.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use plg_loader::{CallHook, CallInfo, Context, ExecError, PluginManager, Rejection, ERROR_KINDS};
use plg_tests::TempPluginsDir;

/// Refuses calls without `token = "ok"`, doubles `by`, and records what it saw after.
#[derive(Default)]
struct Gate {
    seen: Mutex<Vec<(String, bool, Duration)>>,
}

impl CallHook for Gate {
    fn name(&self) -> &str {
        "gate"
    }
    fn before(&self, _: &CallInfo<'_>, ctx: &mut Context) -> Result<(), Rejection> {
        if ctx.get_str("token") != Ok("ok") {
            return Err("no token".into());
        }
        ctx.set("by", 2i64);
        Ok(())
    }
    fn after(&self, call: &CallInfo<'_>, _: &Context, r: &Result<(), ExecError>, took: Duration) {
        let id = format!("{}@{}", call.plugin, call.version);
        self.seen.lock().unwrap().push((id, r.is_ok(), took));
    }
}

#[test]
fn a_before_hook_can_refuse_or_change_a_call_and_the_after_hook_sees_each_result() {
    let dir = TempPluginsDir::default();
    dir.stage("counter");
    let gate = Arc::new(Gate::default());
    let manager = PluginManager::new(dir.path()).with_call_hook(Arc::clone(&gate));
    assert!(manager.load_all().failed.is_empty());
    let counter = manager.get("counter").unwrap();

    let err = counter.execute(&mut Context::new()).unwrap_err();
    match &*err {
        ExecError::Rejected { hook, message, .. } => {
            assert_eq!((hook.as_str(), message.as_str()), ("gate", "no token"))
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    let mut ctx = Context::new();
    ctx.set("token", "ok");
    counter.execute(&mut ctx).unwrap();
    assert_eq!(
        ctx.get::<i64>("count"),
        Ok(2),
        "the refused call never ran, and the hook set by = 2"
    );

    let seen = gate.seen.lock().unwrap();
    let outcomes: Vec<_> = seen.iter().map(|(id, ok, _)| (id.as_str(), *ok)).collect();
    assert_eq!(
        outcomes,
        [("counter@0.1.0", false), ("counter@0.1.0", true)]
    );
}

#[test]
fn metrics_count_calls_and_errors_by_kind_per_version() {
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    dir.stage("fixture-panic");
    dir.stage("counter");
    let manager = PluginManager::new(dir.path());
    assert!(manager.load_all().failed.is_empty());
    let hello = manager.get("hello").unwrap();
    for _ in 0..64 {
        hello.execute(&mut Context::new()).unwrap();
    }
    let panicky = manager.get("fixture-panic").unwrap();
    assert!(panicky.execute(&mut Context::new()).is_err());
    let counter = manager.get("counter").unwrap();
    let err = counter
        .execute(&mut Context::new().with_label("no-such-label"))
        .unwrap_err();
    assert!(matches!(*err, ExecError::InvalidInput { .. }));

    let metrics = manager.metrics();
    let of = |name: &str| metrics.iter().find(|m| m.plugin == name).unwrap();
    let h = of("hello");
    assert_eq!((h.calls, h.failed(), h.in_flight), (64, 0, 0));
    // One call in SAMPLE_EVERY per thread is timed (no hook needs every duration).
    let sampled = 64 / u64::from(plg_loader::SAMPLE_EVERY);
    assert!((sampled..=sampled + 1).contains(&h.timed), "{h:?}");
    assert_eq!(h.version.to_string(), "1.2.0");
    let (p50, p90, p99) = (h.p50().unwrap(), h.p90().unwrap(), h.p99().unwrap());
    assert!(p50 <= p90 && p90 <= p99 && p99 <= h.max, "{h:?}");
    assert_eq!(h.errors.len(), ERROR_KINDS.len(), "every kind is listed");
    let kinds = |m: &plg_loader::PluginMetrics| -> Vec<(String, u64)> {
        m.errors.iter().filter(|(_, n)| *n > 0).cloned().collect()
    };
    assert_eq!(kinds(of("fixture-panic")), [("panic".to_owned(), 1)]);
    assert_eq!(kinds(of("counter")), [("invalid_input".to_owned(), 1)]);

    let text = manager.prometheus();
    for needle in [
        "plg_calls_total{plugin=\"hello\",version=\"1.2.0\"} 64",
        "plg_call_errors_total{plugin=\"fixture-panic\",version=\"0.1.0\",kind=\"panic\"} 1",
        "plg_call_duration_seconds_bucket{",
        "# TYPE plg_calls_in_flight gauge",
    ] {
        assert!(text.contains(needle), "no {needle} in:\n{text}");
    }
}

#[test]
fn metrics_can_be_turned_off() {
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    let manager = PluginManager::new(dir.path()).with_metrics(false);
    assert!(manager.load_all().failed.is_empty());
    manager
        .get("hello")
        .unwrap()
        .execute(&mut Context::new())
        .unwrap();
    assert!(manager.metrics().is_empty());
}

#[test]
fn a_rebuild_hot_upgraded_in_place_continues_its_series() {
    let dir = TempPluginsDir::default();
    let version_dir = dir.stage("hello");
    let manager = PluginManager::new(dir.path());
    assert!(manager.load_all().failed.is_empty());
    let hello = manager.get("hello").unwrap();
    for _ in 0..3 {
        hello.execute(&mut Context::new()).unwrap();
    }
    let rebuilt = plg_tests::build_edited(
        "hello",
        "1.2.0",
        "-Howdy",
        &[("Hello, {name}!", "Howdy, {name}!")],
    );
    dir.replace_library(&version_dir, "hello", &rebuilt);
    manager.reload("hello").unwrap();
    for _ in 0..2 {
        hello.execute(&mut Context::new()).unwrap();
    }
    assert_eq!(manager.metrics()[0].calls, 5);
}

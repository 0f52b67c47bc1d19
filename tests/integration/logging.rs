//! Plugin log lines reach the host's `tracing` subscriber, tagged with the plugin's name.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use plg_loader::Context;

use crate::load_one;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` with a `tracing` subscriber that records everything, and returns what it wrote.
pub(crate) fn capture_logs(f: impl FnOnce()) -> String {
    let buf = Buffer::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let out = buf.0.lock().unwrap().clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn plugin_logs_reach_tracing_with_the_plugin_name() {
    let (_manager, hello, _d) = load_one("hello");
    let out = capture_logs(|| {
        let mut ctx = Context::new();
        ctx.set("name", "Log");
        hello.execute(&mut ctx).unwrap();
    });
    assert!(out.contains("INFO"), "{out}");
    assert!(out.contains("greeting Log"), "{out}");
    assert!(out.contains("plugin=\"hello\""), "{out}");
    assert!(out.contains("plg::plugin"), "{out}");
}

/// `on_load` runs when the plugin loads (its log line is the proof), and `on_unload` sees
/// the state the calls left.
#[test]
fn on_load_runs_at_load_and_on_unload_sees_the_calls() {
    let dir = plg_tests::TempPluginsDir::default();
    dir.stage("counter");
    let manager = plg_loader::PluginManager::new(dir.path());
    let loaded = capture_logs(|| {
        manager.load_matching("counter", None).unwrap();
    });
    assert!(loaded.contains("counter loaded"), "{loaded}");
    let counter = manager.get("counter").unwrap();
    for _ in 0..3 {
        counter.execute(&mut Context::new()).unwrap();
    }
    let unloaded = capture_logs(|| {
        manager.unload("counter", None).unwrap();
    });
    assert!(
        unloaded.contains("counter unloading at count 3"),
        "{unloaded}"
    );
}

#[test]
fn hooks_can_log_too() {
    let (manager, _counter, _d) = load_one("counter");
    let out = capture_logs(|| {
        manager.unload("counter", None).unwrap();
    });
    assert!(out.contains("counter unloading at count 0"), "{out}");
}

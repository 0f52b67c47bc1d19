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

#[test]
fn plugin_logs_reach_tracing_with_the_plugin_name() {
    let (manager, hello, _d) = load_one("hello");
    let buf = Buffer::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let mut ctx = Context::new();
        ctx.set("name", "Log");
        hello.execute(&mut ctx).unwrap();
        drop(manager); // counter-style hooks log on unload; hello has none
    });
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("INFO"), "{out}");
    assert!(out.contains("greeting Log"), "{out}");
    assert!(out.contains("plugin=\"hello\""), "{out}");
    assert!(out.contains("plg::plugin"), "{out}");
}

#[test]
fn hooks_can_log_too() {
    let (manager, _counter, _d) = load_one("counter");
    let buf = Buffer::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        manager.unload("counter", None).unwrap();
    });
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("counter unloading at count 0"), "{out}");
}

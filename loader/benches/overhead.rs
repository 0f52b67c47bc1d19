//! Call overhead, each against a baseline measured in the same run:
//! - `noop_execute`: a no-op `execute` with an empty context vs a raw `dlsym`'d
//!   `extern "C" fn()` from a plain cdylib;
//! - `context_8_keys`: `execute` with an 8-key context vs cloning the same native
//!   `HashMap<String, Value>`.
//!
//! `cargo bench -p plg-loader --bench overhead`, then `python3 scripts/bench_ratios.py`.

mod common;

use std::{collections::HashMap, hint::black_box};

use criterion::{criterion_group, criterion_main, Criterion};
use plg_loader::{Context, PluginManager, Value};
use plg_tests::{library, Profile, TempPluginsDir};

fn noop_execute(c: &mut Criterion) {
    let raw = common::RawNoop::open(&library(Profile::Release, "fixture-not-plugin"));
    let dir = TempPluginsDir::new(Profile::Release);
    dir.stage("fixture-noop");
    let manager = PluginManager::new(dir.path());
    assert!(manager.load_all().failed.is_empty());
    let plugin = manager.get("fixture-noop").unwrap();
    // The same plugin from a second copy (one image cannot be loaded twice), metrics off.
    let dir_off = TempPluginsDir::new(Profile::Release);
    dir_off.stage("fixture-noop");
    let off = PluginManager::new(dir_off.path()).with_metrics(false);
    let plugin_off = off.load_matching("fixture-noop", None).unwrap();
    let mut ctx = Context::new();

    let mut g = c.benchmark_group("noop_execute");
    g.bench_function("baseline_raw_dlsym_call", |b| b.iter(|| black_box(raw.f)()));
    // Everything compiled in: upgrade support, hooks (none added), schemas (none declared),
    // metrics on (the default).
    g.bench_function("plg_execute", |b| {
        b.iter(|| black_box(&plugin).execute(black_box(&mut ctx)))
    });
    g.bench_function("plg_execute_metrics_off", |b| {
        b.iter(|| black_box(&plugin_off).execute(black_box(&mut ctx)))
    });
    g.finish();
}

fn context_8_keys(c: &mut Criterion) {
    let dir = TempPluginsDir::new(Profile::Release);
    dir.stage("fixture-noop");
    let manager = PluginManager::new(dir.path());
    assert!(manager.load_all().failed.is_empty());
    let plugin = manager.get("fixture-noop").unwrap();
    // The same plugin from a second copy (one image cannot be loaded twice), metrics off.
    let dir_off = TempPluginsDir::new(Profile::Release);
    dir_off.stage("fixture-noop");
    let off = PluginManager::new(dir_off.path()).with_metrics(false);
    let plugin_off = off.load_matching("fixture-noop", None).unwrap();

    let entries: Vec<(String, Value)> = (0..8)
        .map(|i| {
            let v = if i % 2 == 0 {
                Value::from(format!("value number {i}"))
            } else {
                Value::from(i64::from(i) * 1000)
            };
            (format!("key_{i}"), v)
        })
        .collect();
    let native: HashMap<String, Value> = entries.iter().cloned().collect();
    let mut ctx = Context::new();
    for (k, v) in &entries {
        ctx.set(k.clone(), v.clone());
    }

    let mut g = c.benchmark_group("context_8_keys");
    g.bench_function("baseline_clone_native_hashmap", |b| {
        b.iter(|| black_box(&native).clone())
    });
    g.bench_function("plg_execute", |b| {
        b.iter(|| black_box(&plugin).execute(black_box(&mut ctx)))
    });
    g.bench_function("plg_execute_metrics_off", |b| {
        b.iter(|| black_box(&plugin_off).execute(black_box(&mut ctx)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = noop_execute, context_8_keys
}
criterion_main!(benches);

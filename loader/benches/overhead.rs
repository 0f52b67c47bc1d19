//! Call overhead, each against a baseline measured in the same run:
//! - `noop_execute`: a no-op `execute` with an empty context vs a raw `dlsym`'d
//!   `extern "C" fn()` from a plain cdylib;
//! - `context_8_keys`: `execute` with an 8-key context vs cloning the same native
//!   `HashMap<String, Value>`.
//!
//! After criterion, `noop_blocks` and `metrics_blocks` measure the no-op ratio and the
//! metrics on/off ratio again in 16 short interleaved blocks (a few rounds of each side, the
//! order alternating), printing each block's ratio and their median: this VM switches
//! between a fast and a slow speed for seconds at a time, which moves criterion's
//! back-to-back estimates of the two sides apart.
//!
//! `cargo bench -p plg-loader --bench overhead`, then `python3 scripts/bench_ratios.py`.

mod common;

use std::{collections::HashMap, hint::black_box};

use criterion::{criterion_group, Criterion};
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
/// Nanoseconds per call of `f`, the median of `ROUNDS` rounds of `CALLS` calls.
fn ns_per_call(mut f: impl FnMut()) -> f64 {
    const CALLS: u32 = 2_000_000;
    const ROUNDS: usize = 3;
    let mut per: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = std::time::Instant::now();
            for _ in 0..CALLS {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(CALLS)
        })
        .collect();
    per.sort_by(f64::total_cmp);
    per[ROUNDS / 2]
}

/// The ratio of `a`'s time per call to `b`'s, in `BLOCKS` short blocks (the order
/// alternating), printed per block and as the median.
fn blocks(
    name: &str,
    target: &str,
    (a_name, mut a): (&str, impl FnMut()),
    (b_name, mut b): (&str, impl FnMut()),
) {
    const BLOCKS: usize = 16;
    let mut ratios = Vec::new();
    for block in 1..=BLOCKS {
        let (a_ns, b_ns) = if block % 2 == 0 {
            let b_ns = ns_per_call(&mut b);
            (ns_per_call(&mut a), b_ns)
        } else {
            let a_ns = ns_per_call(&mut a);
            (a_ns, ns_per_call(&mut b))
        };
        println!(
            "{name} block {block}: {a_name} {a_ns:.2} ns/call, {b_name} {b_ns:.2} ns/call: ratio {:.2}x",
            a_ns / b_ns
        );
        ratios.push(a_ns / b_ns);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "{name}: median block ratio {:.2}x (blocks {:.2}x to {:.2}x; target {target})",
        ratios[BLOCKS / 2],
        ratios[0],
        ratios[BLOCKS - 1]
    );
}

/// A no-op `execute` against the raw `dlsym`'d call, and the 8-key call with metrics on
/// against off, in interleaved blocks.
fn interleaved_blocks() {
    let raw = common::RawNoop::open(&library(Profile::Release, "fixture-not-plugin"));
    let (_d, _m, plugin) = noop_plugin(true);
    let (_d_off, _m_off, plugin_off) = noop_plugin(false);
    let mut ctx = Context::new();
    blocks(
        "noop_blocks",
        "<= 5x",
        ("plg", || {
            let _ = black_box(black_box(&plugin).execute(black_box(&mut ctx)));
        }),
        ("raw dlsym'd call", || black_box(raw.f)()),
    );
    let (mut on, mut off) = (eight_keys(), eight_keys());
    blocks(
        "metrics_blocks",
        "<= 1.1x",
        ("8 keys, metrics on", || {
            let _ = black_box(black_box(&plugin).execute(black_box(&mut on)));
        }),
        ("metrics off", || {
            let _ = black_box(black_box(&plugin_off).execute(black_box(&mut off)));
        }),
    );
}

/// `fixture-noop` loaded from a plugins directory of its own, with metrics on or off.
fn noop_plugin(metrics: bool) -> (TempPluginsDir, PluginManager, plg_loader::Plugin) {
    let dir = TempPluginsDir::new(Profile::Release);
    dir.stage("fixture-noop");
    let manager = PluginManager::new(dir.path()).with_metrics(metrics);
    let plugin = manager.load_matching("fixture-noop", None).unwrap();
    (dir, manager, plugin)
}

/// A context of 8 keys, as `context_8_keys` uses.
fn eight_keys() -> Context {
    let mut ctx = Context::new();
    for i in 0..8 {
        if i % 2 == 0 {
            ctx.set(format!("key_{i}"), format!("value number {i}"));
        } else {
            ctx.set(format!("key_{i}"), i64::from(i) * 1000);
        }
    }
    ctx
}

fn main() {
    benches();
    // The filter is the first argument that is not a flag (`cargo bench -- FILTER`).
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let listing = std::env::args().any(|a| a == "--list");
    let wanted = ["noop_blocks", "metrics_blocks"]
        .iter()
        .any(|name| name.contains(filter.as_str()) || filter.starts_with(&name[..4]));
    if !listing && wanted {
        interleaved_blocks();
    }
    Criterion::default().configure_from_args().final_summary();
}

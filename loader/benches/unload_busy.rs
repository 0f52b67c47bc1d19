//! Unloading while 64 threads call the plugin in a loop, against unloading it idle, in the
//! same run. Calls refused during the unload must not delay it: the ratio shows what callers
//! cost an unload (issue: a refused call used to count itself in flight, and unload waited
//! out its whole timeout).
//!
//! `cargo bench -p plg-loader --bench unload_busy`, then `python3 scripts/bench_ratios.py`.

mod common;

use std::{
    hint::black_box,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, RwLock,
    },
    time::{Duration, Instant},
};

use criterion::{criterion_group, criterion_main, Criterion};
use plg_loader::{Context, Plugin, PluginManager};
use plg_tests::{Profile, TempPluginsDir};

const CALLERS: usize = 64;

/// Loads fixture-noop, runs `iters` unloads (each after a fresh load), and returns the time
/// spent in `unload` alone; with `callers`, 64 threads call the current handle throughout.
fn unloads(iters: u64, callers: bool) -> Duration {
    let dir = TempPluginsDir::new(Profile::Release);
    dir.stage("fixture-noop");
    let manager = PluginManager::new(dir.path());
    let current: Arc<RwLock<Option<Plugin>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    // The longest wall time of one real call, in ns: on 2 cores, 64 busy threads are
    // preempted mid-call, and unload must wait for such a call to return.
    let longest_call = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..if callers { CALLERS } else { 0 })
        .map(|_| {
            let (current, stop, calls, longest) = (
                current.clone(),
                stop.clone(),
                calls.clone(),
                longest_call.clone(),
            );
            std::thread::spawn(move || {
                let mut ctx = Context::new();
                while !stop.load(Ordering::Relaxed) {
                    let plugin = current.read().unwrap().clone();
                    if let Some(p) = plugin {
                        let start = Instant::now();
                        if black_box(p.execute(&mut ctx)).is_ok() {
                            let ns = start.elapsed().as_nanos() as u64;
                            longest.fetch_max(ns, Ordering::Relaxed);
                        }
                        calls.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let mut spent = Duration::ZERO;
    let mut slowest_unload = Duration::ZERO;
    for _ in 0..iters {
        let plugin = manager.load_matching("fixture-noop", None).unwrap();
        *current.write().unwrap() = Some(plugin);
        if callers {
            let seen = calls.load(Ordering::Relaxed);
            while calls.load(Ordering::Relaxed) < seen + CALLERS as u64 {
                std::thread::yield_now();
            }
        }
        let start = Instant::now();
        let reports = manager.unload("fixture-noop", None).expect("unload drains");
        let took = start.elapsed();
        spent += took;
        slowest_unload = slowest_unload.max(took);
        black_box(reports);
        *current.write().unwrap() = None;
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    if callers {
        eprintln!(
            "{iters} unloads under {CALLERS} callers: slowest unload {slowest_unload:?}, \
             longest single real call {:?}",
            Duration::from_nanos(longest_call.load(Ordering::Relaxed))
        );
    }
    spent
}

fn unload_64_callers(c: &mut Criterion) {
    let mut g = c.benchmark_group("unload_64_callers");
    g.sample_size(10).measurement_time(Duration::from_secs(2));
    g.bench_function("baseline_unload_idle", |b| {
        b.iter_custom(|iters| unloads(iters, false))
    });
    g.bench_function("plg_unload_under_64_callers", |b| {
        b.iter_custom(|iters| unloads(iters, true))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = unload_64_callers
}
criterion_main!(benches);

//! Load time, each against a baseline measured in the same run:
//! - `load_one`: `PluginManager::load_manifest` (open plus every check) vs
//!   `libloading::Library::new` plus `get` of the same file;
//! - `load_all_100`: `load_all` of 100 distinct plugins vs 100 single `load_manifest` calls.
//!
//! Unloading happens outside the timed region in both arms.
//! `cargo bench -p plg-loader --bench load`, then `python3 scripts/bench_ratios.py`.

mod common;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use plg_loader::PluginManager;
use plg_tests::{build_many_noops, Profile, TempPluginsDir};

fn load_one(c: &mut Criterion) {
    let dir = TempPluginsDir::new(Profile::Release);
    let staged = dir.stage("fixture-noop");
    let manifest = staged.join("plugin.json");
    let lib = staged.join(plg_tests::library_file_name("fixture-noop"));
    let manager = PluginManager::new(dir.path());

    let mut g = c.benchmark_group("load_one");
    g.bench_function("baseline_libloading_new_and_get", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let l = common::raw_open_and_get(&lib, b"PLG_PLUGIN_DECLARATION");
                total += t.elapsed();
                drop(l);
            }
            total
        })
    });
    g.bench_function("plg_load_manifest", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let p = manager.load_manifest(&manifest).unwrap();
                total += t.elapsed();
                drop(p);
                manager.unload("fixture-noop", None).unwrap();
            }
            total
        })
    });
    g.finish();
}

fn load_all_100(c: &mut Criterion) {
    let libs = build_many_noops(100);
    let dir = TempPluginsDir::new(Profile::Release);
    let manifests: Vec<_> = libs
        .iter()
        .map(|(name, lib)| dir.stage_library(name, "0.1.0", lib))
        .collect();

    let mut g = c.benchmark_group("load_all_100");
    g.sample_size(10);
    g.bench_function("baseline_100_single_loads", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let manager = PluginManager::new(dir.path());
                let t = Instant::now();
                for m in &manifests {
                    manager.load_manifest(m).unwrap();
                }
                total += t.elapsed();
                drop(manager);
            }
            total
        })
    });
    g.bench_function("plg_load_all", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let manager = PluginManager::new(dir.path());
                let t = Instant::now();
                let report = manager.load_all();
                total += t.elapsed();
                assert_eq!(report.loaded.len(), 100, "{:?}", report.failed);
                drop(manager);
            }
            total
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = load_one, load_all_100
}
criterion_main!(benches);

//! Unload memory: RSS growth over 1,000 cycles of load → execute → unload, against 1,000
//! raw libloading open/close cycles of the same file in the same run.
//!
//! Cases:
//! - `noop`: a plugin without thread-local destructors, loaded from one path;
//! - `noop_unique_copies`: the same, but each cycle loads a fresh copy (as hot reload does);
//! - `tls`: fixture-tls, which registers a thread-local destructor on the calling thread,
//!   loaded from one path (glibc keeps the image mapped; dlopen reuses it);
//! - `tls_unique_copies`: fixture-tls from a fresh copy each cycle (each copy stays mapped).
//!
//! `cargo bench -p plg-loader --bench unload_memory` prints a table and writes
//! `target/plg-bench/unload_memory.json`.

mod common;

use std::path::{Path, PathBuf};

use plg_loader::{Context, PluginManager};
use plg_tests::{library, target_dir, Profile, TempPluginsDir};

const CYCLES: usize = 1000;
const WARMUP: usize = 20;

/// (virtual size, resident set size) in bytes.
fn mem() -> (i64, i64) {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc/self/statm");
    let mut f = statm
        .split_whitespace()
        .map(|n| n.parse::<i64>().unwrap() * 4096);
    (f.next().unwrap(), f.next().unwrap())
}

fn mapped_copies(dir: &Path) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let needle = dir.to_string_lossy().into_owned();
    // Distinct (inode, path): replaced copies all read `PATH (deleted)`.
    let mut files: Vec<(&str, &str)> = maps
        .lines()
        .filter_map(|l| {
            let inode = l.split_whitespace().nth(4)?;
            l.find('/').map(|i| (inode, &l[i..]))
        })
        .filter(|(_, p)| p.starts_with(&needle))
        .collect();
    files.sort();
    files.dedup();
    files.len()
}

struct Row {
    case: &'static str,
    growth: i64,
    vm_growth: i64,
    not_unmapped: usize,
    still_mapped_at_end: usize,
}

fn raw_cycles(lib: &Path) -> (i64, i64) {
    let cycle = || drop(common::raw_open_and_get(lib, b"PLG_PLUGIN_DECLARATION"));
    for _ in 0..WARMUP {
        cycle();
    }
    let before = mem();
    for _ in 0..CYCLES {
        cycle();
    }
    let after = mem();
    (after.0 - before.0, after.1 - before.1)
}

fn plg_cycles(case: &'static str, package: &str, unique: bool) -> Row {
    let dir = TempPluginsDir::new(Profile::Release);
    let manager = PluginManager::new(dir.path());
    let mut not_unmapped = 0;
    let mut n = 0usize;
    let mut previous: Option<PathBuf> = None;
    if !unique {
        dir.stage(package);
    }
    let mut cycle = |count: bool| {
        if unique {
            // A fresh copy at a fresh path each time, as hot reload does: glibc matches loaded
            // objects by path string first, so a replaced file at the same path would return
            // the old image if it is still mapped.
            n += 1;
            if let Some(p) = previous.take() {
                std::fs::remove_dir_all(p).unwrap();
            }
            let sub = format!("{package}-{n}");
            dir.stage_with(package, &sub, |_| {});
            previous = Some(dir.path().join(sub));
        }
        let plugin = manager.load_all().loaded.pop().expect("loaded");
        plugin.execute(&mut Context::new()).unwrap();
        let reports = manager.unload(plugin.name(), None).unwrap();
        if count && reports[0].unmapped != Some(true) {
            not_unmapped += 1;
        }
    };
    for _ in 0..WARMUP {
        cycle(false);
    }
    let before = mem();
    for _ in 0..CYCLES {
        cycle(true);
    }
    let after = mem();
    Row {
        case,
        growth: after.1 - before.1,
        vm_growth: after.0 - before.0,
        not_unmapped,
        still_mapped_at_end: mapped_copies(&dir.path().canonicalize().unwrap()),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` compatibility
    }
    let raw_lib: PathBuf = library(Profile::Release, "fixture-noop");
    let (baseline_vm, baseline) = raw_cycles(&raw_lib);
    let rows = [
        plg_cycles("noop", "fixture-noop", false),
        plg_cycles("noop_unique_copies", "fixture-noop", true),
        plg_cycles("tls", "fixture-tls", false),
        plg_cycles("tls_unique_copies", "fixture-tls", true),
    ];
    println!("unload_memory: RSS growth over {CYCLES} cycles (after {WARMUP} warm-up cycles)");
    println!(
        "  baseline raw libloading open/close: RSS {:>8.1} KiB, virtual {:>9.1} KiB",
        baseline as f64 / 1024.0,
        baseline_vm as f64 / 1024.0
    );
    let mut json = Vec::new();
    for r in &rows {
        println!(
            "  plg {:<20} RSS {:>8.1} KiB, virtual {:>9.1} KiB ({:.0} B/cycle RSS; {} cycle(s) not unmapped; {} file(s) still mapped at the end)",
            r.case,
            r.growth as f64 / 1024.0,
            r.vm_growth as f64 / 1024.0,
            r.growth as f64 / CYCLES as f64,
            r.not_unmapped,
            r.still_mapped_at_end
        );
        json.push(format!(
            "{{\"case\":\"{}\",\"growth_bytes\":{},\"vm_growth_bytes\":{},\"baseline_growth_bytes\":{},\"baseline_vm_growth_bytes\":{},\"cycles\":{},\"not_unmapped\":{},\"still_mapped_at_end\":{}}}",
            r.case, r.growth, r.vm_growth, baseline, baseline_vm, CYCLES, r.not_unmapped, r.still_mapped_at_end
        ));
    }
    let out = target_dir().join("plg-bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("unload_memory.json"),
        format!("[{}]\n", json.join(",")),
    )
    .unwrap();
}

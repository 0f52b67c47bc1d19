//! Hot upgrade (issue 9 §8), each figure against a baseline from the same run:
//! - `swap`: from the new library landing on disk to the first call it serves
//!   (`reload` + one `execute`, no debounce) vs a cold `load_manifest` + one `execute` of the
//!   same library (criterion), for debug libraries (`swap`, as `plg dev` builds them) and
//!   release libraries (`swap_release`);
//! - `under_load`: 8 threads call `counter` through handles got by name while 100 upgrades
//!   alternate two builds: failed calls, stale versions, and throughput against the same 8
//!   threads with no upgrades;
//! - `memory`: 1,000 hot upgrades of `hello` (no thread-local destructors): RSS growth, images
//!   verified unmapped, and `.plg/` size at the end vs at the start.
//!
//! `cargo bench -p plg-loader --bench upgrade` prints the last two and writes
//! `target/plg-bench/upgrade.json`; `python3 scripts/bench_ratios.py` shows the first.

mod common;

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use criterion::Criterion;
use plg_loader::{Context, EventKind, PluginManager, Reload, Retired};
use plg_tests::{build_edited, build_edited_in, target_dir, Profile, TempPluginsDir};

/// Two builds of `package` 0.1.0/1.2.0 that differ in what `from` becomes.
fn two_builds(package: &str, version: &str, from: &str, a: &str, b: &str) -> [PathBuf; 2] {
    [
        build_edited(package, version, "-bench-a", &[(from, a)]),
        build_edited(package, version, "-bench-b", &[(from, b)]),
    ]
}

fn hello_builds() -> [PathBuf; 2] {
    hello_builds_in(Profile::Debug)
}

fn hello_builds_in(profile: Profile) -> [PathBuf; 2] {
    let (from, a, b) = ("Hello, {name}!", "Hello (a), {name}!", "Hello (b), {name}!");
    [
        build_edited_in(profile, "hello", "1.2.0", "-bench-a", &[(from, a)]),
        build_edited_in(profile, "hello", "1.2.0", "-bench-b", &[(from, b)]),
    ]
}

/// `swap` (debug libraries, as `plg dev` builds them) and `swap_release` (release libraries,
/// as shipped): the same two arms each.
fn swap(c: &mut Criterion) {
    for (group, profile) in [("swap", Profile::Debug), ("swap_release", Profile::Release)] {
        swap_in(c, group, profile);
    }
}

fn swap_in(c: &mut Criterion, group: &str, profile: Profile) {
    let builds = hello_builds_in(profile);
    let dir = TempPluginsDir::new(profile);
    let version_dir = dir.stage("hello");
    std::fs::copy(
        &builds[0],
        version_dir.join(plg_tests::library_file_name("hello")),
    )
    .unwrap();
    let manifest = version_dir.join("plugin.json");
    let manager = PluginManager::new(dir.path()).with_metrics(true);
    let hello = manager.load_manifest(&manifest).unwrap();
    let mut g = c.benchmark_group(group);
    g.sample_size(30);
    let mut next = 0;
    g.bench_function("plg_first_call_served", |b| {
        b.iter_custom(|iters| {
            first_calls_served(&manager, &dir, &version_dir, &builds, &mut next, iters)
        })
    });
    g.bench_function("plg_reload_then_call", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                next += 1;
                dir.replace_library(&version_dir, "hello", &builds[next % 2]);
                let start = Instant::now();
                let r = manager.reload("hello").unwrap();
                hello.execute(&mut Context::new()).unwrap();
                total += start.elapsed();
                assert!(matches!(r, Reload::Upgraded { .. }));
            }
            total
        })
    });
    drop(hello);
    manager.unload_all();
    g.bench_function("baseline_cold_load_manifest", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let p = manager.load_manifest(&manifest).unwrap();
                p.execute(&mut Context::new()).unwrap();
                total += start.elapsed();
                drop(p);
                manager.unload("hello", None).unwrap();
            }
            total
        })
    });
    g.finish();
}

/// The swap figure, as a host with traffic sees it: one thread calls `hello` through
/// a handle got by name without pause, while this one lands each new build and calls
/// `reload`. The clock runs from the library landing to the first call that returns the new
/// build's greeting. Retiring the old version happens after the swap, inside `reload`, and is
/// not on that path; `plg_reload_then_call` times a caller that waits for `reload` to return.
fn first_calls_served(
    manager: &PluginManager,
    dir: &TempPluginsDir,
    version_dir: &Path,
    builds: &[PathBuf; 2],
    next: &mut usize,
    iters: u64,
) -> Duration {
    let caller = manager.get("hello").unwrap();
    let landed = std::sync::Mutex::new(None::<Instant>);
    let stop = AtomicBool::new(false);
    let (served, first_served) = std::sync::mpsc::channel();
    // Which build a greeting came from: builds[0] says "(a)".
    let build_of = |ctx: &Context| usize::from(!ctx.get_str("greeting").unwrap().contains("(a)"));
    let mut total = Duration::ZERO;
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut ctx = Context::new();
            caller.execute(&mut ctx).unwrap();
            let mut seen = build_of(&ctx);
            while !stop.load(Ordering::Relaxed) {
                let mut ctx = Context::new();
                caller.execute(&mut ctx).unwrap();
                let build = build_of(&ctx);
                if build != seen {
                    seen = build;
                    let since = landed
                        .lock()
                        .unwrap()
                        .take()
                        .expect("a swap without a landing");
                    served.send(since.elapsed()).unwrap();
                }
            }
        });
        // Stops the caller however this thread leaves (a failed assertion must fail the
        // bench, not leave the scope waiting for the caller forever).
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = StopOnDrop(&stop);
        for _ in 0..iters {
            *next += 1;
            dir.replace_library(version_dir, "hello", &builds[*next % 2]);
            *landed.lock().unwrap() = Some(Instant::now());
            let r = manager.reload("hello").unwrap();
            assert!(matches!(r, Reload::Upgraded { .. }));
            total += first_served
                .recv_timeout(Duration::from_secs(60))
                .expect("the caller saw the new build");
        }
    });
    total
}

struct UnderLoad {
    upgrades: usize,
    calls_during: usize,
    failed: usize,
    stale: usize,
    count_went_back: usize,
    seconds_during: f64,
    calls_per_sec_during: f64,
    calls_per_sec_idle: f64,
}

/// 8 threads calling `counter` for `run`; returns (calls, failed, stale, count went back).
fn callers(
    manager: &PluginManager,
    stop: &Arc<AtomicBool>,
    begun: &Arc<AtomicUsize>,
    done: &Arc<AtomicUsize>,
) -> Vec<std::thread::JoinHandle<(usize, usize, usize, usize)>> {
    (0..8)
        .map(|_| {
            let counter = manager.get("counter").unwrap();
            let (stop, begun, done) = (Arc::clone(stop), Arc::clone(begun), Arc::clone(done));
            std::thread::spawn(move || {
                let (mut calls, mut failed, mut stale, mut back) = (0, 0, 0, 0);
                let mut last = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    let generation = done.load(Ordering::SeqCst);
                    let mut ctx = Context::new();
                    match counter.execute(&mut ctx) {
                        Ok(()) => {
                            let served = ctx.get_str("version").unwrap().to_owned();
                            let expected = ["build-a", "build-b"][generation % 2];
                            if begun.load(Ordering::SeqCst) == generation
                                && generation > 0
                                && served != expected
                            {
                                stale += 1;
                            }
                            let count = ctx.get::<i64>("count").unwrap();
                            if count <= last {
                                back += 1;
                            }
                            last = count;
                        }
                        Err(_) => failed += 1,
                    }
                    calls += 1;
                }
                (calls, failed, stale, back)
            })
        })
        .collect()
}

fn under_load() -> UnderLoad {
    const UPGRADES: usize = 100;
    let builds = two_builds(
        "counter",
        "0.1.0",
        "ctx.set(\"version\", env!(\"CARGO_PKG_VERSION\"));",
        "ctx.set(\"version\", \"build-a\");",
        "ctx.set(\"version\", \"build-b\");",
    );
    let dir = TempPluginsDir::new(Profile::Debug);
    let version_dir = dir.stage("counter");
    dir.replace_library(&version_dir, "counter", &builds[0]);
    let manager = PluginManager::new(dir.path());
    assert!(manager.load_all().failed.is_empty());
    let (begun, done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));

    // Idle throughput: the same 8 threads, no upgrades, for about as long.
    let stop = Arc::new(AtomicBool::new(false));
    let threads = callers(&manager, &stop, &begun, &done);
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let idle: usize = threads.into_iter().map(|t| t.join().unwrap().0).sum();
    let idle_secs = start.elapsed().as_secs_f64();

    let stop = Arc::new(AtomicBool::new(false));
    let threads = callers(&manager, &stop, &begun, &done);
    let start = Instant::now();
    for g in 1..=UPGRADES {
        dir.replace_library(&version_dir, "counter", &builds[g % 2]);
        begun.store(g, Ordering::SeqCst);
        assert!(matches!(
            manager.reload("counter").unwrap(),
            Reload::Upgraded { .. }
        ));
        done.store(g, Ordering::SeqCst);
    }
    stop.store(true, Ordering::Relaxed);
    let seconds = start.elapsed().as_secs_f64();
    let mut r = UnderLoad {
        upgrades: UPGRADES,
        calls_during: 0,
        failed: 0,
        stale: 0,
        count_went_back: 0,
        seconds_during: seconds,
        calls_per_sec_during: 0.0,
        calls_per_sec_idle: idle as f64 / idle_secs,
    };
    for t in threads {
        let (calls, failed, stale, back) = t.join().unwrap();
        r.calls_during += calls;
        r.failed += failed;
        r.stale += stale;
        r.count_went_back += back;
    }
    r.calls_per_sec_during = r.calls_during as f64 / seconds;
    r
}

struct Memory {
    upgrades: usize,
    rss_growth: i64,
    not_unmapped: usize,
    plg_bytes_start: u64,
    plg_bytes_end: u64,
    plg_files_end: usize,
}

fn rss() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc/self/statm");
    statm
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<i64>()
        .unwrap()
        * 4096
}

fn tree_size(dir: &Path) -> (u64, usize) {
    let mut bytes = 0;
    let mut files = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            let (b, f) = tree_size(&entry.path());
            bytes += b;
            files += f;
        } else {
            bytes += meta.len();
            files += 1;
        }
    }
    (bytes, files)
}

fn memory() -> Memory {
    const UPGRADES: usize = 1000;
    const WARMUP: usize = 20;
    let builds = hello_builds();
    let dir = TempPluginsDir::new(Profile::Debug);
    let version_dir = dir.stage("hello");
    let manager = PluginManager::new(dir.path());
    assert!(manager.load_all().failed.is_empty());
    let hello = manager.get("hello").unwrap();
    let events = manager.subscribe_with_capacity(UPGRADES + 100);
    let plg = dir.path().join(".plg");
    let upgrade = |g: usize| {
        dir.replace_library(&version_dir, "hello", &builds[g % 2]);
        manager.reload("hello").unwrap();
        hello.execute(&mut Context::new()).unwrap();
    };
    for g in 0..WARMUP {
        upgrade(g);
    }
    while events.try_next().is_some() {}
    let (plg_bytes_start, _) = tree_size(&plg);
    let before = rss();
    for g in WARMUP..WARMUP + UPGRADES {
        upgrade(g);
    }
    let rss_growth = rss() - before;
    let not_unmapped = std::iter::from_fn(|| events.try_next())
        .filter(|e| match &e.kind {
            EventKind::Reloaded { retired, .. } => {
                !matches!(retired, Retired::Unloaded(r) if r.unmapped == Some(true) && r.kept_copy.is_none())
            }
            _ => false,
        })
        .count();
    let (plg_bytes_end, plg_files_end) = tree_size(&plg);
    Memory {
        upgrades: UPGRADES,
        rss_growth,
        not_unmapped,
        plg_bytes_start,
        plg_bytes_end,
        plg_files_end,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mut c = common::criterion().configure_from_args();
    swap(&mut c);
    let load = under_load();
    println!(
        "under_load: {} upgrades in {:.2}s under 8 callers: {} calls, {} failed, {} served by a stale version, count went back {} times; {:.0} calls/s during vs {:.0} idle ({:.2}x)",
        load.upgrades,
        load.seconds_during,
        load.calls_during,
        load.failed,
        load.stale,
        load.count_went_back,
        load.calls_per_sec_during,
        load.calls_per_sec_idle,
        load.calls_per_sec_during / load.calls_per_sec_idle
    );
    let mem = memory();
    println!(
        "memory: {} upgrades: RSS growth {:.1} KiB, {} old image(s) not verified unmapped, .plg/ {} -> {} bytes ({} file(s) at the end)",
        mem.upgrades,
        mem.rss_growth as f64 / 1024.0,
        mem.not_unmapped,
        mem.plg_bytes_start,
        mem.plg_bytes_end,
        mem.plg_files_end
    );
    let out = target_dir().join("plg-bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("upgrade.json"),
        format!(
            "{{\"under_load\":{{\"upgrades\":{},\"calls\":{},\"failed\":{},\"stale\":{},\"count_went_back\":{},\"calls_per_sec_during\":{:.0},\"calls_per_sec_idle\":{:.0}}},\"memory\":{{\"upgrades\":{},\"rss_growth_bytes\":{},\"not_unmapped\":{},\"plg_bytes_start\":{},\"plg_bytes_end\":{}}}}}\n",
            load.upgrades, load.calls_during, load.failed, load.stale, load.count_went_back,
            load.calls_per_sec_during, load.calls_per_sec_idle,
            mem.upgrades, mem.rss_growth, mem.not_unmapped, mem.plg_bytes_start, mem.plg_bytes_end
        ),
    )
    .unwrap();
    c.final_summary();
}

//! Plugins in worker processes (issue 10 §6), against their peers, measured in one run:
//! - no-op `execute` in a worker, against a bare Unix-socket ping-pong (Rust, two threads)
//!   and against hashicorp/go-plugin's net/rpc no-op round trip;
//! - an 8-key context in a worker, against go-plugin's gRPC with the same 8-key map
//!   (plg.v1 `Execute`, the very message plg sends);
//! - worker start to first reply, against go-plugin's start to first call;
//! - crash to serving again (the first restart), reported;
//! - throughput of 8 threads calling one worker, against the same in-process.
//!
//! `cargo bench -p plg-loader --features isolation --bench isolation`. The go-plugin peer
//! (scripts/peers/go-plugin) needs Debian's golang-go, golang-github-hashicorp-go-plugin-dev
//! and golang-google-grpc-dev; without them only plg's figures are printed.

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    process::Command,
    time::{Duration, Instant},
};

use plg_loader::{Context, Plugin, PluginManager, WorkerPolicy};
use plg_tests::{target_dir, worker_bin, workspace_root, Profile, TempPluginsDir};

const ROUNDS: usize = 5;

/// The median round's ns per call of `f`, `n` calls a round.
fn rounds(n: usize, mut f: impl FnMut()) -> f64 {
    let mut per: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..n {
                f();
            }
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    per.sort_by(f64::total_cmp);
    per[ROUNDS / 2]
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// A bare Unix-socket round trip of 8 bytes, between two threads.
fn rust_ping_pong(n: usize) -> f64 {
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 8];
        while b.read_exact(&mut buf).is_ok() {
            if b.write_all(&buf).is_err() {
                break;
            }
        }
    });
    let mut buf = [0u8; 8];
    let ns = rounds(n, || {
        a.write_all(&buf).unwrap();
        a.read_exact(&mut buf).unwrap();
    });
    drop(a);
    echo.join().unwrap();
    ns
}

fn policy() -> WorkerPolicy {
    let mut p = WorkerPolicy::isolate_all();
    p.program = Some(worker_bin(Profile::Release));
    p.initial_backoff = Duration::from_millis(1);
    p.max_backoff = Duration::from_millis(1);
    p.max_crashes = 1_000_000;
    p
}

fn loaded(dir: &TempPluginsDir, name: &str, policy: WorkerPolicy) -> (PluginManager, Plugin) {
    let manager = PluginManager::local_only(dir.path()).with_worker_policy(policy);
    let report = manager.load_all();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let plugin = manager.get(name).unwrap();
    (manager, plugin)
}

fn eight_keys() -> Context {
    let mut ctx = Context::new();
    for i in 0..8 {
        ctx.set(format!("key{i}"), format!("value number {i}"));
    }
    ctx
}

/// Calls per second of 8 threads calling `plugin` for `per_thread` calls each.
fn throughput(plugin: &Plugin, per_thread: usize) -> f64 {
    let start = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let plugin = plugin.clone();
            std::thread::spawn(move || {
                let mut ctx = Context::new();
                for _ in 0..per_thread {
                    plugin.execute(&mut ctx).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    (8 * per_thread) as f64 / start.elapsed().as_secs_f64()
}

/// Builds the go-plugin peer; `None` without Go.
fn go_peer_binary() -> Option<std::path::PathBuf> {
    let out = target_dir().join("plg-bench/plgpeer");
    std::fs::create_dir_all(out.parent()?).ok()?;
    let built = Command::new(workspace_root().join("scripts/build-go-peer.sh"))
        .arg(&out)
        .status()
        .ok()?
        .success();
    built.then_some(out)
}

fn go_peer(calls: u32) -> Option<serde_json::Value> {
    let out = go_peer_binary()?;
    let output = Command::new(&out)
        .args(["bench", &calls.to_string()])
        .output()
        .ok()?;
    serde_json::from_slice(&output.stdout).ok()
}

/// Start to first reply, cold and taking a spare: medians of 21 starts each.
fn start_figures(dir: &TempPluginsDir, noop_manifest: &std::path::Path) -> (f64, f64) {
    let (cold, spare) = start_samples(dir, noop_manifest, 21);
    (median(cold), median(spare))
}

/// `n` starts to first reply, cold and taking a spare, in ns.
fn start_samples(
    dir: &TempPluginsDir,
    noop_manifest: &std::path::Path,
    n: usize,
) -> (Vec<f64>, Vec<f64>) {
    // Start to first reply: load (spawn, handshake, connect, Describe) plus one call, of one
    // plugin. Cold: a process is started. With a spare (`WorkerPolicy::prestart`): the
    // manager's pre-started worker is taken (its start is paid before the clock starts, as
    // a host that keeps one pays it before it is asked).
    let start_once = |policy: WorkerPolicy, wait_for_spare: bool| {
        let manager = PluginManager::local_only(dir.path()).with_worker_policy(policy);
        if wait_for_spare {
            let waited = Instant::now();
            while !manager.spare_worker_ready() {
                assert!(waited.elapsed() < Duration::from_secs(20), "no spare");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let began = Instant::now();
        let plugin = manager.load_manifest(noop_manifest).unwrap();
        plugin.execute(&mut Context::new()).unwrap();
        began.elapsed().as_nanos() as f64
    };
    let cold = (0..n).map(|_| start_once(policy(), false)).collect();
    let mut with_spare = policy();
    with_spare.prestart = true;
    let spare = (0..n)
        .map(|_| start_once(with_spare.clone(), true))
        .collect();
    (cold, spare)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = TempPluginsDir::new(Profile::Release);
    let noop_manifest = dir.stage("fixture-noop").join("plugin.json");
    dir.stage("fixture-crash");
    // `-- start`: only the start figures, interleaved with go-plugin's (six blocks of 10
    // starts each) so that both sides see the same drift in this VM's load; each block's
    // ratio is printed too, to show the spread.
    if std::env::args().any(|a| a == "start") {
        let peer = go_peer_binary().expect("the go-plugin peer (see the go_peer message)");
        let (mut plg, mut spare, mut go) = (Vec::new(), Vec::new(), Vec::new());
        let mut blocks = Vec::new();
        for _ in 0..6 {
            let (cold, with_spare) = start_samples(&dir, &noop_manifest, 10);
            let out = Command::new(&peer).args(["starts", "10"]).output().unwrap();
            let ns: Vec<f64> = serde_json::from_slice(&out.stdout).expect("plgpeer starts");
            blocks.push(format!("{:.2}", median(cold.clone()) / median(ns.clone())));
            plg.extend(cold);
            spare.extend(with_spare);
            go.extend(ns);
        }
        let (cold, spare, go) = (median(plg), median(spare), median(go));
        println!(
            "start to first reply (medians of 60, interleaved): cold {:.2} ms, taking a spare {:.2} ms; go-plugin gRPC {:.2} ms; ratios {:.2}x cold, {:.2}x with a spare (target <= 0.5x); cold by block: {}",
            cold / 1e6,
            spare / 1e6,
            go / 1e6,
            cold / go,
            spare / go,
            blocks.join(", ")
        );
        return;
    }

    let ping = rust_ping_pong(100_000);

    let (_m, noop) = loaded(&dir, "fixture-noop", policy());
    let mut empty = Context::new();
    let worker_noop = rounds(20_000, || noop.execute(&mut empty).unwrap());
    let mut eight = eight_keys();
    let worker_8key = rounds(20_000, || noop.execute(&mut eight).unwrap());
    let worker_tput = throughput(&noop, 5_000);
    drop(_m);

    let (_m, in_process) = loaded(&dir, "fixture-noop", WorkerPolicy::default());
    let in_process_tput = throughput(&in_process, 500_000);
    drop(_m);

    let (start_ns, spare_start_ns) = start_figures(&dir, &noop_manifest);
    let mut with_spare = policy();
    with_spare.prestart = true;

    // Crash to serving: the call that crashes the worker returns; time from then to the next
    // successful reply (a restart, 1 ms of backoff included), cold and taking a spare.
    let restart = |policy: WorkerPolicy| {
        let prestart = policy.prestart;
        let (manager, crash) = loaded(&dir, "fixture-crash", policy);
        median(
            (0..11)
                .map(|_| {
                    while prestart && !manager.spare_worker_ready() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    let mut ctx = Context::new();
                    ctx.set("do", "exit");
                    assert!(crash.execute(&mut ctx).is_err());
                    let began = Instant::now();
                    crash.execute(&mut Context::new()).unwrap();
                    began.elapsed().as_nanos() as f64
                })
                .collect(),
        )
    };
    let restart_ns = restart(policy());
    let spare_restart_ns = restart(with_spare.clone());

    println!("bare Unix-socket ping-pong (Rust, 8 bytes): {ping:.0} ns");
    println!(
        "no-op execute in a worker: {worker_noop:.0} ns: {:.2}x the ping-pong (target <= 2x)",
        worker_noop / ping
    );
    println!("8-key context in a worker: {worker_8key:.0} ns");
    println!("worker start to first reply: {:.2} ms", start_ns / 1e6);
    println!(
        "worker start to first reply, taking a pre-started spare: {:.2} ms",
        spare_start_ns / 1e6
    );
    println!(
        "crash to serving again: {:.2} ms; taking a spare: {:.2} ms",
        restart_ns / 1e6,
        spare_restart_ns / 1e6
    );
    println!(
        "8 callers, one worker: {worker_tput:.0} calls/s; in-process: {in_process_tput:.0} calls/s ({:.4}x)",
        worker_tput / in_process_tput
    );
    match go_peer(20_000) {
        Some(go) => {
            let f = |k: &str| go[k].as_f64().unwrap_or(f64::NAN);
            println!(
                "go-plugin: net/rpc no-op {:.0} ns, gRPC no-op {:.0} ns, gRPC 8-key {:.0} ns, start to first call {:.2} ms (gRPC), Go Unix ping-pong {:.0} ns",
                f("netrpc_noop_ns"),
                f("grpc_noop_ns"),
                f("grpc_8key_ns"),
                f("grpc_start_to_first_ns") / 1e6,
                f("go_unix_pingpong_ns"),
            );
            println!(
                "ratios: no-op vs net/rpc {:.2}x (target <= 0.33x); 8-key vs gRPC 8-key {:.2}x (target <= 0.5x); start vs go-plugin gRPC start {:.2}x cold, {:.2}x with a spare (target <= 0.5x)",
                worker_noop / f("netrpc_noop_ns"),
                worker_8key / f("grpc_8key_ns"),
                start_ns / f("grpc_start_to_first_ns"),
                spare_start_ns / f("grpc_start_to_first_ns"),
            );
        }
        None => println!(
            "go-plugin peer not measured (apt-get install golang-go golang-github-hashicorp-go-plugin-dev golang-google-grpc-dev)"
        ),
    }
}

//! A call that writes (issue 9 §8): `fixture-greet` reads `name` and sets `greeting` to
//! `"hello " + name`, against the same work in a Go `-buildmode=plugin` plugin called
//! through `plugin.Lookup`, measured in the same run with the same method (rounds of
//! 1,000,000 calls; the median round's ns per call).
//!
//! `cargo bench -p plg-loader --bench greet`. Needs Debian's `golang-go` (built offline,
//! `GO111MODULE=off`); without `go` it says so and measures plg alone.

use std::{path::Path, process::Command, time::Instant};

use plg_loader::{Context, PluginManager};
use plg_tests::{target_dir, workspace_root, Profile, TempPluginsDir};

const CALLS: usize = 1_000_000;
const ROUNDS: usize = 7;

fn plg_ns_per_call() -> f64 {
    let dir = TempPluginsDir::new(Profile::Release);
    dir.stage("fixture-greet");
    let manager = PluginManager::new(dir.path());
    assert!(manager.load_all().failed.is_empty());
    let greet = manager.get("fixture-greet").unwrap();
    let mut ctx = Context::new();
    ctx.set("name", "Ada");
    let mut per: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..CALLS {
                greet.execute(std::hint::black_box(&mut ctx)).unwrap();
            }
            start.elapsed().as_nanos() as f64 / CALLS as f64
        })
        .collect();
    assert_eq!(ctx.get_str("greeting"), Ok("hello Ada"));
    per.sort_by(f64::total_cmp);
    per[ROUNDS / 2]
}

fn go(args: &[&str], dir: &Path) -> bool {
    Command::new("go")
        .args(args)
        .current_dir(dir)
        .env("GO111MODULE", "off")
        .status()
        .is_ok_and(|s| s.success())
}

fn go_ns_per_call() -> Option<f64> {
    let src = workspace_root().join("scripts/go-greet");
    let out = target_dir().join("plg-bench/go-greet");
    std::fs::create_dir_all(&out).ok()?;
    let plugin = out.join("greet.so");
    let host = out.join("host");
    if !go(
        &[
            "build",
            "-buildmode=plugin",
            "-o",
            plugin.to_str()?,
            "./plugin",
        ],
        &src,
    ) || !go(&["build", "-o", host.to_str()?, "./host"], &src)
    {
        return None;
    }
    let output = Command::new(&host)
        .arg(&plugin)
        .arg(CALLS.to_string())
        .arg(ROUNDS.to_string())
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let plg = plg_ns_per_call();
    match go_ns_per_call() {
        Some(go) => println!(
            "greet: plg {plg:.1} ns/call, Go plugin.Lookup {go:.1} ns/call: ratio {:.2}x (target <= 0.5x)",
            plg / go
        ),
        None => println!(
            "greet: plg {plg:.1} ns/call; Go not measured (install golang-go: apt-get install golang-go)"
        ),
    }
}

//! A call that writes (issue 9 §8): `fixture-greet` reads `name` and sets `greeting` to
//! `"hello " + name`, against the same work in a Go `-buildmode=plugin` plugin called
//! through `plugin.Lookup`, measured in the same run with the same method (rounds of
//! 1,000,000 calls; the median round's ns per call).
//!
//! This VM switches between a fast and a slow speed for seconds at a time, moving both
//! sides alike, so the two are measured in many short interleaved blocks (a few rounds of
//! each side, the order alternating from block to block so that a drift favours neither),
//! and each block's ratio is printed along with the median of the block ratios.
//!
//! `cargo bench -p plg-loader --bench greet`. Needs Debian's `golang-go` (built offline,
//! `GO111MODULE=off`); without `go` it says so and measures plg alone.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use plg_loader::{Context, Plugin, PluginManager};
use plg_tests::{build_edited_in, target_dir, workspace_root, Profile, TempPluginsDir};

const CALLS: usize = 1_000_000;
const ROUNDS: usize = 3;
const BLOCKS: usize = 16;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn plg_ns_per_call(greet: &Plugin) -> f64 {
    let mut ctx = Context::new();
    ctx.set("name", "Ada");
    let per: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..CALLS {
                greet.execute(std::hint::black_box(&mut ctx)).unwrap();
            }
            start.elapsed().as_nanos() as f64 / CALLS as f64
        })
        .collect();
    assert_eq!(ctx.get_str("greeting"), Ok("hello Ada"));
    median(per)
}

fn go(args: &[&str], dir: &Path) -> bool {
    Command::new("go")
        .args(args)
        .current_dir(dir)
        .env("GO111MODULE", "off")
        .status()
        .is_ok_and(|s| s.success())
}

/// The Go host and plugin, built; `None` without a Go toolchain.
fn go_build() -> Option<(PathBuf, PathBuf)> {
    let src = workspace_root().join("scripts/go-greet");
    let out = target_dir().join("plg-bench/go-greet");
    std::fs::create_dir_all(&out).ok()?;
    let plugin = out.join("greet.so");
    let host = out.join("host");
    let built = go(
        &[
            "build",
            "-buildmode=plugin",
            "-o",
            plugin.to_str()?,
            "./plugin",
        ],
        &src,
    ) && go(&["build", "-o", host.to_str()?, "./host"], &src);
    built.then_some((host, plugin))
}

fn go_ns_per_call((host, plugin): &(PathBuf, PathBuf)) -> Option<f64> {
    let output = Command::new(host)
        .arg(plugin)
        .arg(CALLS.to_string())
        .arg(ROUNDS.to_string())
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

/// `fixture-greet` as written (it writes into the buffer the previous call left), and a
/// build of it that allocates a new string each call, as the Go plugin does.
type Loaded = (TempPluginsDir, PluginManager, Plugin);

fn plugins() -> (Loaded, Loaded) {
    let dir = TempPluginsDir::new(Profile::Release);
    dir.stage("fixture-greet");
    let reuse = PluginManager::new(dir.path());
    assert!(reuse.load_all().failed.is_empty());
    let concat = build_edited_in(
        Profile::Release,
        "fixture-greet",
        "0.1.0",
        "-concat",
        &[(
            "let mut greeting = ctx.take_string(\"greeting\");\n    \
             greeting.push_str(\"hello \");\n    \
             greeting.push_str(ctx.get_str(\"name\")?);",
            "let greeting = [\"hello \", ctx.get_str(\"name\")?].concat();",
        )],
    );
    let concat_dir = TempPluginsDir::new(Profile::Release);
    let manifest = concat_dir.stage_library("fixture-greet", "0.1.0", &concat);
    let allocating = PluginManager::new(concat_dir.path());
    allocating.load_manifest(&manifest).unwrap();
    let (a, b) = (
        reuse.get("fixture-greet").unwrap(),
        allocating.get("fixture-greet").unwrap(),
    );
    ((dir, reuse, a), (concat_dir, allocating, b))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let ((_dir, _reuse, greet), (_concat_dir, _allocating, greet_concat)) = plugins();
    let Some(go) = go_build() else {
        println!(
            "greet: plg {:.1} ns/call ({:.1} allocating a new string); Go not measured (install golang-go: apt-get install golang-go)",
            plg_ns_per_call(&greet),
            plg_ns_per_call(&greet_concat)
        );
        return;
    };
    let (mut ratios, mut concat_ratios) = (Vec::new(), Vec::new());
    for block in 1..=BLOCKS {
        let go_first = block % 2 == 0;
        let go_before = if go_first { go_ns_per_call(&go) } else { None };
        let plg = plg_ns_per_call(&greet);
        let plg_concat = plg_ns_per_call(&greet_concat);
        let go_after = if go_first { None } else { go_ns_per_call(&go) };
        let Some(go) = go_before.or(go_after) else {
            println!("greet: the Go host failed");
            return;
        };
        println!(
            "greet block {block}: plg {plg:.1} ns/call (a new string each call: {plg_concat:.1}), \
             Go plugin.Lookup {go:.1} ns/call: ratio {:.2}x ({:.2}x)",
            plg / go,
            plg_concat / go
        );
        ratios.push(plg / go);
        concat_ratios.push(plg_concat / go);
    }
    println!(
        "greet: median block ratio {:.2}x (target <= 0.5x); allocating a new string each call {:.2}x",
        median(ratios),
        median(concat_ratios)
    );
}

//! Calls one fixture plugin N times in a loop, for counting instructions per call with
//! valgrind, which this VM's noise cannot move: `scripts/instructions_per_call.sh`.
//!
//! `cargo run --release -p plg-loader --example call_loop -- 100000 fixture-greet`

use plg_loader::{Context, PluginManager};
use plg_tests::{Profile, TempPluginsDir};

fn main() {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let fixture = args.next().unwrap_or_else(|| "fixture-noop".into());
    let dir = TempPluginsDir::new(Profile::Release);
    dir.stage(&fixture);
    let manager = PluginManager::new(dir.path());
    let report = manager.load_all();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let plugin = manager.get(&fixture).expect("loaded");
    let mut ctx = Context::new();
    ctx.set("name", "Ada");
    for _ in 0..calls {
        let _ = std::hint::black_box(plugin.execute(std::hint::black_box(&mut ctx)));
    }
}

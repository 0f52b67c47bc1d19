//! A minimal plg host, the shape of go-plugin's `main`: set the plugins dir, load all, get
//! `hello`, set a value, execute, print.
//!
//! ```text
//! cargo run -p sample-host -- [PLUGINS_DIR] [NAME]
//! ```
//! PLUGINS_DIR defaults to `$PLG_PLUGINS_DIR`, else the per-user data directory; NAME to
//! `world`.
#![forbid(unsafe_code)]

use plg_loader::{Context, PluginManager, PluginsDir};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Optional, and best first, while the process has one thread (see its docs).
    plg_loader::prepare_process();
    // Plugin log lines arrive as `tracing` events; print them.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();

    let mut args = std::env::args().skip(1);
    let plugins_dir = match args.next() {
        Some(dir) => PluginsDir::new(dir),
        None => PluginsDir::from_env()?,
    };
    let name = args.next().unwrap_or_else(|| "world".into());

    let manager = PluginManager::new(plugins_dir);
    let report = manager.load_all();
    for failure in &report.failed {
        eprintln!("skipped {}: {}", failure.path.display(), failure.error);
    }
    println!("loaded {} plugin(s)", report.loaded.len());

    let hello = manager.get("hello")?;
    let mut ctx = Context::new();
    ctx.set("name", name);
    hello.execute(&mut ctx)?;
    println!("{}", ctx.get_str("greeting")?);

    for r in manager.unload("hello", None)? {
        println!("unloaded {} (unmapped: {:?})", r.plugin, r.unmapped);
    }
    Ok(())
}

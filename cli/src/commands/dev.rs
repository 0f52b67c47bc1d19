//! `plg dev`: the author's loop. Build the crate, hot-upgrade it in this running host,
//! execute it, print the result and the timings; again on every save.

use std::{path::PathBuf, time::Instant};

use clap::Args;
use plg_loader::{
    build::BuildOptions,
    dev::{DevOutcome, DevSession},
    Reload,
};

use crate::{commands::run::CallArgs, failure::Failure, output::Output, Global};

#[derive(Args)]
pub struct DevArgs {
    /// The plugin crate.
    #[arg(default_value = ".")]
    dir: PathBuf,
    #[command(flatten)]
    call: CallArgs,
    /// Build in release mode (the default is debug, which compiles faster).
    #[arg(long)]
    release: bool,
    /// How long the sources must be quiet after a save before rebuilding, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    debounce_ms: u64,
    /// Stop after this many builds (for scripts and tests), exiting with the last one's
    /// outcome (6: build failed, 4: not loaded, 5: execute failed); the default runs until
    /// Ctrl-C.
    #[arg(long, value_name = "N")]
    max_builds: Option<usize>,
}

pub fn run(g: &Global, a: DevArgs, out: &Output) -> Result<(), Failure> {
    if !a.dir.is_dir() {
        return Err(Failure::new(
            2,
            format!(
                "{} is not a directory; give the plugin crate's directory (`plg new NAME` creates one)",
                a.dir.display()
            ),
        ));
    }
    a.call.context()?; // a bad --input fails now, not after the first build
    let defaults = BuildOptions::default();
    let options = BuildOptions {
        release: a.release,
        ..defaults
    };
    let mut session = DevSession::new(&a.dir, g.plugins_dir()?, options);
    let watch = session.watch_sources(std::time::Duration::from_millis(a.debounce_ms))?;
    out.note(format!(
        "plg dev: watching {} (building runs the crate's build script and proc macros on every save; Ctrl-C stops)",
        a.dir.display()
    ));
    let mut saved_at = Instant::now();
    let mut builds = 0;
    let mut served = false;
    loop {
        let started = Instant::now();
        let last = turn(&mut session, &a.call, saved_at, &mut served, out)?;
        builds += 1;
        if a.max_builds.is_some_and(|max| builds >= max.max(1)) {
            // A script that stops plg dev gets the last turn's outcome as the exit code.
            return last;
        }
        match watch.next_change(started) {
            Some(at) => saved_at = at,
            None => return last,
        }
    }
}

/// One build, upgrade and call, printed. The outer error (output failed) stops the loop; the
/// inner one is this turn's outcome, the exit code if the loop ends here.
fn turn(
    session: &mut DevSession,
    call: &CallArgs,
    saved_at: Instant,
    served: &mut bool,
    out: &Output,
) -> Result<Result<(), Failure>, Failure> {
    let kept = if *served {
        "the last good version stays loaded"
    } else {
        "nothing is loaded yet"
    };
    let (plugin, build, reload) = match session.cycle() {
        DevOutcome::Serving {
            plugin,
            build,
            reload,
        } => (plugin, build, reload),
        DevOutcome::BuildFailed(e) => {
            out.note(format!("build failed ({kept}): {e}"));
            return Ok(Err(e.into()));
        }
        DevOutcome::LoadFailed(e) => {
            out.note(format!("not loaded ({kept}): {e}"));
            return Ok(Err(Failure::new(4, e)));
        }
    };
    *served = true;
    let what = match &reload {
        None => format!("loaded {}", plugin.id()),
        Some(Reload::Upgraded { from, to, .. }) => format!("upgraded {from} -> {to}"),
        Some(Reload::Unchanged { plugin }) => format!("{plugin} unchanged"),
    };
    let mut ctx = call.context()?;
    let result = plugin.execute(&mut ctx);
    let to_result = saved_at.elapsed();
    if let Err(e) = session.write_stats() {
        out.note(format!(
            "cannot write the stats `plg list --stats` reads: {e}"
        ));
    }
    if out.is_json() {
        out.json(&serde_json::json!({
            "plugin": plugin.id(),
            "event": what,
            "build_ms": build.as_millis(),
            "save_to_result_ms": to_result.as_millis(),
            "result": result.as_ref().map(|()| ctx.values()).map_err(ToString::to_string),
        }))?;
    } else {
        out.line(format!(
            "{what}: built in {:.2}s, save to result {:.2}s",
            build.as_secs_f64(),
            to_result.as_secs_f64()
        ));
        match &result {
            Ok(()) => out.line(serde_json::to_string(ctx.values()).unwrap_or_default()),
            Err(e) => out.line(format!("execute failed: {e}")),
        }
    }
    Ok(result.map_err(Failure::from))
}

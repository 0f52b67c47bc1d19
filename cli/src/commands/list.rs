//! `plg list`: every plugin found, read from its files (no library is loaded, so no plugin
//! code runs); with `--check`, each library is also loaded in a throwaway `plg-worker` (or,
//! where none is found, a child `plg`) with a timeout, so a crashing or hanging initializer
//! is that plugin's error, not plg's, and plg itself runs no plugin code.

use std::{
    io::Read,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use clap::Args;
use plg_loader::{manifest::preflight::Unmappable, PluginManager, ScanEntry, WorkerPolicy};
use serde::Serialize;

use crate::{failure::Failure, output::Output, Global};

#[derive(Args)]
pub struct ListArgs {
    /// Also load each library to check it fully (type layouts, initializers), each in a child
    /// process. Loading runs the library's initializers.
    #[arg(long)]
    check: bool,
    /// With --check: how long one library may take to load before it counts as hung.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    check_timeout: u64,
    /// Also show the call metrics (calls, errors, p50/p90/p99/max latency) of plugins that a
    /// `plg dev` host is running (or last ran) against this plugins directory.
    #[arg(long)]
    stats: bool,
}

#[derive(Args)]
pub struct CheckLoadArgs {
    /// The manifest to check.
    manifest: PathBuf,
}

#[derive(Serialize)]
struct Row {
    name: Option<String>,
    version: Option<String>,
    /// `found` (its files are in order; not loaded), `ok` (loaded in a check) or `error`.
    status: &'static str,
    error: Option<String>,
    /// As text: a path that is not UTF-8 must not break the listing of every other entry.
    manifest: String,
    /// The unload-safety preflight, read from the library file: `yes`, `depends` (only if it
    /// leaves thread-local destructors registered), `no` or `unknown`.
    unload: Option<&'static str>,
    /// Why `no`.
    unload_reasons: Vec<String>,
    /// Where it runs, as its manifest asks: `in-process`, `worker` (a `plg-worker` process)
    /// or `exec` (its own executable). A host's policy can still isolate an in-process one.
    runtime: Option<&'static str>,
}

pub fn run(g: &Global, a: ListArgs, out: &Output) -> Result<(), Failure> {
    let dir = g.plugins_dir()?;
    let timeout = Duration::from_secs(a.check_timeout);
    let mut policy = WorkerPolicy::default();
    policy.start_timeout = timeout;
    let manager = PluginManager::new(&dir).with_worker_policy(policy);
    let rows: Vec<Row> = manager
        .scan()?
        .into_iter()
        .map(|e| row(e, a.check.then_some((&manager, &dir, timeout))))
        .collect();
    let stats = a.stats.then(|| plg_loader::dev::dev_stats(&dir));
    if out.is_json() {
        return match stats {
            Some(stats) => out.json(&serde_json::json!({
                "plugins": rows,
                "stats": stats.iter().map(|(_, s)| s).collect::<Vec<_>>(),
            })),
            None => out.json(&rows),
        };
    }
    if rows.is_empty() {
        out.line(format!(
            "no plugins in {}; build one with `plg build DIR` (see `plg new --help`)",
            dir.path().display()
        ));
    }
    for r in &rows {
        let name = r.name.as_deref().unwrap_or("?");
        let version = r.version.as_deref().unwrap_or("?");
        match &r.error {
            None if r.unload_reasons.is_empty() => out.line(format!(
                "{name:<24} {version:<12} {:<6} runtime={:<10} unload={}",
                r.status,
                r.runtime.unwrap_or("?"),
                r.unload.unwrap_or("unknown")
            )),
            None => out.line(format!(
                "{name:<24} {version:<12} {:<6} runtime={:<10} unload=no ({})",
                r.status,
                r.runtime.unwrap_or("?"),
                r.unload_reasons.join("; ")
            )),
            Some(e) => out.line(format!("{name:<24} {version:<12} error: {e}")),
        }
    }
    if let Some(stats) = stats {
        print_stats(&stats, out);
    }
    Ok(())
}

fn print_stats(stats: &[(String, plg_loader::dev::DevStats)], out: &Output) {
    if stats.is_empty() {
        out.line("stats: no `plg dev` host has written any here");
        return;
    }
    let ms = |d: Option<Duration>| {
        d.map_or("-".to_owned(), |d| {
            format!("{:.3}ms", d.as_secs_f64() * 1e3)
        })
    };
    for (_, s) in stats {
        for m in &s.metrics {
            out.line(format!(
                "stats {:<18} {:<10} calls={} errors={} in_flight={} p50={} p90={} p99={} max={} (plg dev pid {})",
                m.plugin,
                m.version,
                m.calls,
                m.failed(),
                m.in_flight,
                ms(m.p50()),
                ms(m.p90()),
                ms(m.p99()),
                ms(Some(m.max)),
                s.pid
            ));
        }
    }
}

/// With `--check`: the manager whose worker policy runs the checks, the plugins dir and the
/// timeout of one check.
type Check<'a> = (&'a PluginManager, &'a plg_loader::PluginsDir, Duration);

fn row(e: ScanEntry, check: Option<Check<'_>>) -> Row {
    let status = match (e.status, check) {
        (Err(err), _) => Err(err.to_string()),
        (Ok(()), None) => Ok("found"),
        // In a throwaway plg-worker where one is found; else in a child plg.
        (Ok(()), Some((manager, dir, timeout))) => {
            match manager.check_loads_in_worker(&e.manifest_path) {
                Some(checked) => checked.map_err(|err| err.to_string()),
                None => check_in_child(dir.path(), &e.manifest_path, timeout),
            }
            .map(|()| "ok")
        }
    };
    Row {
        runtime: e.manifest.as_ref().map(|m| match (&m.source, m.isolation) {
            (plg_loader::Source::Exec { .. }, _) => "exec",
            (_, Some(plg_loader::Isolation::Process)) => "worker",
            _ => "in-process",
        }),
        name: e.manifest.as_ref().map(|m| m.name.clone()),
        version: e.manifest.as_ref().map(|m| m.version.to_string()),
        status: status.as_ref().copied().unwrap_or("error"),
        error: status.err(),
        manifest: e.manifest_path.to_string_lossy().into_owned(),
        unload: e.unmappable.as_ref().map(|u| match u {
            Unmappable::Yes => "yes",
            Unmappable::Depends => "depends",
            Unmappable::No(_) => "no",
            Unmappable::Unknown => "unknown",
        }),
        unload_reasons: match e.unmappable {
            Some(Unmappable::No(reasons)) => reasons,
            _ => Vec::new(),
        },
    }
}

/// Runs `plg __check-load MANIFEST` and waits at most `timeout`. Its crash, its hang or its
/// error becomes this plugin's error message.
fn check_in_child(
    plugins_dir: &std::path::Path,
    manifest: &std::path::Path,
    timeout: Duration,
) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find plg itself: {e}"))?;
    let mut command = Command::new(exe);
    // Its own process group: whatever the library's initializer forks is stopped with it.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .arg("__check-load")
        .arg(manifest)
        .arg("--plugins-dir")
        .arg(plugins_dir)
        .arg("--json")
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start a check: {e}"))?;
    // Read stderr as it comes, so a chatty library cannot fill the pipe and stall the check.
    // The text arrives through a channel, so a process that keeps the pipe open cannot make
    // us wait past the deadline either.
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(mut pipe) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.by_ref().take(64 * 1024).read_to_string(&mut text);
            let _ = tx.send(text);
            let _ = std::io::copy(&mut pipe, &mut std::io::sink());
        });
    }
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() >= timeout => {
                stop_group(&mut child);
                return Err(format!(
                    "loading did not finish within {}s (an initializer hangs?); it was stopped",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("cannot wait for the check: {e}")),
        }
    };
    // The check is over: nothing it started may outlive it.
    stop_group(&mut child);
    if status.success() {
        return Ok(());
    }
    let left = timeout
        .saturating_sub(start.elapsed())
        .max(Duration::from_millis(100));
    let stderr = rx.recv_timeout(left).unwrap_or_default();
    let reported = stderr
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v["error"].as_str().map(str::to_owned));
    Err(match (reported, signal_of(&status)) {
        (Some(message), _) => message,
        (None, Some(sig)) => {
            format!("loading the library crashed the process that loaded it (signal {sig})")
        }
        (None, None) => format!("loading the library failed ({status})"),
    })
}

/// Kills the check's whole process group (the child and anything its library forked) and
/// reaps the child.
fn stop_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(unix)]
fn signal_of(status: &std::process::ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(status)
}

#[cfg(not(unix))]
fn signal_of(_status: &std::process::ExitStatus) -> Option<i32> {
    None
}

/// The child's side: load-check one manifest in this process.
pub fn check_load(g: &Global, a: CheckLoadArgs, out: &Output) -> Result<(), Failure> {
    let manager = PluginManager::new(g.plugins_dir()?);
    manager.check_loads(&a.manifest)?;
    if out.is_json() {
        return out.json(&serde_json::json!({ "ok": true }));
    }
    Ok(())
}

//! `plg-worker`: runs one plugin library, loaded with plg-loader's own checks, in a process of
//! its own, and serves it over plg's protocol (PROTOCOL.md). A plg host starts it; it is not
//! meant to be run by hand.
//!
//! `plg-worker MANIFEST`: checks the magic cookie, loads the plugin `MANIFEST` describes,
//! listens on a Unix socket in a private directory, prints the handshake line on stdout and
//! serves until `Shutdown`, or until the host dies (the host asks the kernel to kill it then).
//! `plg-worker --check MANIFEST` only opens the library with every load check (its
//! initializers run, no plugin hook), prints `plg-check-ok` or the failed check, and exits:
//! a throwaway worker for `plg install` and `plg list --check`. `plg-worker --spare` starts
//! ahead of need (`WorkerPolicy::prestart`): it readies its runtime, then reads the
//! manifest's path from the host (first on its stdin, which the host makes a connection) and
//! serves it as above.
//! Everything else it writes goes to stderr, as JSON lines.

mod frames;
mod reply;
mod serve;
mod service;

use std::process::ExitCode;

use plg_protocol::{COOKIE_KEY, COOKIE_VALUE};

/// What the worker was started for.
enum Mode {
    /// Load the plugin and serve it.
    Serve(std::path::PathBuf),
    /// Only check that the library loads.
    Check(std::path::PathBuf),
    /// Start, then wait for the manifest to serve.
    Spare,
}

/// Exit code when the plugin fails to load; stderr's last line says why.
const EXIT_LOAD_FAILED: u8 = 3;
/// Exit code when started without the cookie or arguments.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    // First of all: die with the host, drop descriptors it let through, take its limits.
    let adopted = match plg_loader::__worker::adopt_from_env() {
        Ok(adopted) => adopted,
        Err(e) => {
            eprintln!("plg-worker: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // Next, while this process has one thread (see `prepare_process`).
    plg_loader::prepare_process();
    if std::env::var(COOKIE_KEY).as_deref() != Ok(COOKIE_VALUE) {
        eprintln!(
            "plg-worker runs one plugin for a plg host, which starts it with {COOKIE_KEY} set. \
             It is not meant to be run by hand: to run a plugin in a worker, use \
             `plg run NAME --isolate` or set \"isolation\": \"process\" in its plugin.json."
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let mode = match args.as_slice() {
        [flag] if flag == "--spare" => Mode::Spare,
        [manifest] => Mode::Serve(manifest.into()),
        [flag, manifest] if flag == "--check" => Mode::Check(manifest.into()),
        _ => {
            eprintln!("usage: plg-worker [--check] MANIFEST | plg-worker --spare");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // The connection the host passed on stdin leaves fd 0 before any plugin code runs.
    let first = match adopted.frames_on_stdin.then(serve::take_stdin).transpose() {
        Ok(first) => first.flatten(),
        Err(e) => {
            eprintln!("plg-worker: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // Started before anything else (see `Readying`).
    let readying = match mode {
        Mode::Serve(_) | Mode::Spare => Some(serve::Readying::start(adopted.socket_dir)),
        Mode::Check(_) => None,
    };
    let logs = tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr);
    // `PLG_LOG` takes `RUST_LOG`'s directives; without it, a plain level filter (a directive
    // filter costs a worker's start a tenth of a millisecond).
    match tracing_subscriber::EnvFilter::try_from_env("PLG_LOG") {
        Ok(filter) => logs.with_env_filter(filter).init(),
        Err(_) => logs.with_max_level(tracing::Level::INFO).init(),
    }
    let outcome = match (mode, readying) {
        (Mode::Serve(manifest), Some(readying)) => serve::run(&manifest, readying, first),
        (Mode::Spare, Some(readying)) => serve::spare(readying, first),
        (Mode::Check(manifest), _) => serve::check(&manifest),
        (Mode::Serve(_) | Mode::Spare, None) => unreachable!("readied above"),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(serve::Failure::Load(e)) => {
            tracing::error!(kind = "load", "{e}");
            ExitCode::from(EXIT_LOAD_FAILED)
        }
        Err(serve::Failure::Serve(e)) => {
            tracing::error!(kind = "serve", "{e}");
            ExitCode::FAILURE
        }
    }
}

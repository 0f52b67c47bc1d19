//! Errors of starting a plugin's worker process (or an executable plugin) and shaking hands
//! with it. Each carries the tail of what it wrote on stderr, escaped.

use std::{path::PathBuf, time::Duration};

use thiserror::Error;

/// What was wrong with the handshake line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeProblem {
    /// The first line on stdout is not `CORE|APP|NETWORK|ADDRESS|PROTOCOL`: the plugin wrote
    /// something else to stdout first.
    Garbage,
    /// A core or application protocol version this host does not speak.
    Version,
    /// A network or protocol other than `unix` and `grpc`.
    Transport,
}

/// A plugin's worker did not start, or did not shake hands.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WorkerError {
    /// The `plg-worker` binary was not found.
    #[error("cannot find the plg-worker binary (looked at {}); install it next to your program or on PATH with `cargo install plg-worker`, or set PLG_WORKER to its path", searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NotFound {
        /// Where it looked.
        searched: Vec<PathBuf>,
    },
    /// This plugin cannot run in a worker, or this host cannot run workers.
    #[error("cannot run in a worker: {reason}")]
    Unsupported {
        /// Why, and what to do.
        reason: String,
    },
    /// The program could not be started.
    #[error("cannot start {}: {reason}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// No handshake line within the start timeout; the process was killed.
    #[error("{} printed no handshake within {timeout:?} (raise the start timeout if it is slow to start){}", program.display(), tail(stderr))]
    HandshakeTimeout {
        /// The program.
        program: PathBuf,
        /// The start timeout.
        timeout: Duration,
        /// Its stderr tail.
        stderr: String,
    },
    /// It exited before its handshake (a wrong magic cookie, a plugin that failed to load).
    #[error("{} {status} before its handshake{}", program.display(), tail(stderr))]
    ExitedBeforeHandshake {
        /// The program.
        program: PathBuf,
        /// How it ended.
        status: String,
        /// Its stderr tail.
        stderr: String,
    },
    /// A load check run in a throwaway worker (`plg install`, `plg list --check`) did not
    /// finish within the start timeout (an initializer hangs?); the worker was killed.
    #[error("loading the library did not finish within {timeout:?} (an initializer hangs?); the worker checking it ({}) was stopped{}", program.display(), tail(stderr))]
    CheckTimeout {
        /// The worker program.
        program: PathBuf,
        /// The timeout.
        timeout: Duration,
        /// Its stderr tail.
        stderr: String,
    },
    /// Loading the library crashed the throwaway worker that checked it (an initializer
    /// aborted, segfaulted or exited); the host was not touched.
    #[error("loading the library crashed the worker that checked it ({}: {status}){}", program.display(), tail(stderr))]
    CheckCrashed {
        /// The worker program.
        program: PathBuf,
        /// How it ended.
        status: String,
        /// Its stderr tail.
        stderr: String,
    },
    /// Its handshake line was refused.
    #[error("{}: {reason}{}", program.display(), tail(stderr))]
    BadHandshake {
        /// The program.
        program: PathBuf,
        /// Which part was wrong.
        problem: HandshakeProblem,
        /// Why, with the line escaped.
        reason: String,
        /// Its stderr tail.
        stderr: String,
    },
    /// The handshake was fine but the socket did not answer, or `Describe` failed.
    #[error("{}: {reason}", program.display())]
    Connect {
        /// The program.
        program: PathBuf,
        /// Why.
        reason: String,
    },
    /// `Describe` names another plugin than the manifest.
    #[error("{} says it is {described}, but its manifest says {manifest}", program.display())]
    Mismatch {
        /// The program.
        program: PathBuf,
        /// `name@version` from `Describe`, escaped.
        described: String,
        /// `name@version` from the manifest.
        manifest: String,
    },
}

fn tail(stderr: &str) -> String {
    if stderr.is_empty() {
        "; it wrote nothing on stderr".into()
    } else {
        format!("; its stderr ended with:\n{stderr}")
    }
}

//! Start up: ready the runtime and sockets while the plugin loads, then print the handshake
//! and serve `plg.v1.Plugin` (`service`), `grpc.health.v1.Health` and the frames socket.

use std::{
    io::Write,
    os::fd::OwnedFd,
    os::unix::net::UnixListener,
    path::{Path, PathBuf},
    sync::Arc,
};

use plg_loader::{LoadError, Plugin, PluginManager, WorkerPolicy};
use plg_protocol::{
    frames::WORKER_FRAMES_SOCKET,
    pb::{self, plugin_server::PluginServer},
    Handshake, MAX_MESSAGE_BYTES, PROTOCOL_VERSION,
};
use tokio::sync::Notify;

use crate::service::Service;

/// Why the worker stopped before serving, or while serving.
pub(crate) enum Failure {
    /// The plugin did not load.
    Load(LoadError),
    /// The socket or the server failed.
    Serve(String),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Serve(e.to_string())
    }
}

/// Keeps the real stdout for the handshake and points fd 1 at stderr, so that nothing a
/// plugin prints (in `on_load` or later) can come before or after the handshake line.
fn take_stdout() -> std::io::Result<OwnedFd> {
    // Close-on-exec: a program the plugin runs must not inherit the handshake pipe.
    let stdout = rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stdout(), 3)?;
    rustix::stdio::dup2_stdout(rustix::stdio::stderr())?;
    Ok(stdout)
}

/// A manager that loads in this process, for the plugins dir around `manifest`.
fn manager_here(manifest: &Path) -> PluginManager {
    let dir = manifest.parent().unwrap_or(Path::new("."));
    let mut here = WorkerPolicy::default();
    here.never_isolate = true;
    PluginManager::local_only(dir).with_worker_policy(here)
}

/// In place of the handshake: which check failed, for the host to return as the same
/// `LoadError` an in-process load gives. stderr gets the message too.
fn report_load_error(out: OwnedFd, e: LoadError) -> Failure {
    if let Some(line) = plg_loader::__worker::load_error_line(&e) {
        let mut out = std::fs::File::from(out);
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }
    Failure::Load(e)
}

/// `--check`: opens the library with every load check, closes it, and says how it went.
pub(crate) fn check(manifest: &Path) -> Result<(), Failure> {
    let out = take_stdout()?;
    match manager_here(manifest).check_loads(manifest) {
        Ok(()) => {
            let mut out = std::fs::File::from(out);
            writeln!(out, "{}", plg_loader::__worker::CHECK_OK)?;
            out.flush()?;
            Ok(())
        }
        Err(e) => Err(report_load_error(out, e)),
    }
}

pub(crate) fn run(manifest: &Path, socket_dir: Option<PathBuf>) -> Result<(), Failure> {
    let handshake_out = take_stdout()?;
    // The runtime and the sockets are readied on another core while this one loads the
    // plugin.
    let ready = std::thread::spawn(move || Ready::new(socket_dir));
    let manager = manager_here(manifest);
    let plugin = manager.load_manifest(manifest);
    let ready = ready
        .join()
        .map_err(|_| Failure::Serve("the thread readying the sockets panicked".into()))??;
    serve_loaded(&manager, plugin, handshake_out, ready)
}

/// `--spare`: everything that does not depend on the plugin first (the process, its
/// libraries, the async runtime, the sockets), then the manifest's path from stdin. A host
/// that drops the spare closes stdin: the worker exits quietly.
pub(crate) fn spare(socket_dir: Option<PathBuf>) -> Result<(), Failure> {
    let handshake_out = take_stdout()?;
    let ready = Ready::new(socket_dir)?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::stdin().lock(), &mut line)?;
    let manifest = Path::new(line.trim_end_matches(['\n', '\r']));
    if manifest.as_os_str().is_empty() {
        return Ok(());
    }
    let manager = manager_here(manifest);
    let plugin = manager.load_manifest(manifest);
    serve_loaded(&manager, plugin, handshake_out, ready)
}

/// What serving needs besides the plugin: the async runtime, and both sockets bound in a
/// private directory (mode 0700): the host's, which it removes once it has reaped this
/// process (so nothing is left however this process ends), or else one of its own, removed
/// when it exits cleanly.
struct Ready {
    /// One thread: the gRPC side serves only `Describe`, health, `Cancel` and `Shutdown`
    /// (and `Execute` through the blocking pool); calls go to the frames socket's threads.
    runtime: tokio::runtime::Runtime,
    dir: SocketDir,
    grpc: UnixListener,
    frames: UnixListener,
}

/// Where the sockets are.
enum SocketDir {
    Host(PathBuf),
    Own(tempfile::TempDir),
}

impl SocketDir {
    fn path(&self) -> &Path {
        match self {
            SocketDir::Host(dir) => dir,
            SocketDir::Own(dir) => dir.path(),
        }
    }
}

impl Ready {
    fn new(socket_dir: Option<PathBuf>) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let dir = match socket_dir {
            Some(dir) => SocketDir::Host(dir),
            None => SocketDir::Own(tempfile::Builder::new().prefix("plg-worker-").tempdir()?),
        };
        let grpc = UnixListener::bind(dir.path().join(GRPC_SOCKET))?;
        grpc.set_nonblocking(true)?;
        let frames = UnixListener::bind(dir.path().join(WORKER_FRAMES_SOCKET))?;
        Ok(Ready {
            runtime,
            dir,
            grpc,
            frames,
        })
    }
}

/// The gRPC socket's file name in the worker's directory.
const GRPC_SOCKET: &str = "plugin.sock";

fn serve_loaded(
    manager: &PluginManager,
    plugin: Result<Plugin, LoadError>,
    handshake_out: OwnedFd,
    ready: Ready,
) -> Result<(), Failure> {
    let plugin = match plugin {
        Ok(plugin) => plugin,
        Err(e) => return Err(report_load_error(handshake_out, e)),
    };
    let Ready {
        runtime,
        dir,
        grpc,
        frames,
    } = ready;
    let served = runtime.block_on(serve(plugin, handshake_out, dir.path(), grpc, frames));
    let (_, failed) = manager.unload_all();
    for e in failed {
        tracing::warn!("{e}");
    }
    served
}

async fn serve(
    plugin: Plugin,
    handshake_out: OwnedFd,
    dir: &Path,
    grpc: UnixListener,
    frames_listener: UnixListener,
) -> Result<(), Failure> {
    let socket = dir.join(GRPC_SOCKET);
    let frames_socket = dir.join(WORKER_FRAMES_SOCKET);
    let listener = tokio::net::UnixListener::from_std(grpc)?;
    let running = crate::frames::Running::default();
    let describe = pb::DescribeResponse {
        name: plugin.name().to_owned(),
        version: plugin.version().to_string(),
        protocol_version: PROTOCOL_VERSION,
        frames_socket: frames_socket.to_string_lossy().into_owned(),
    };
    {
        let mut hello = Vec::new();
        plg_protocol::frames::encode_hello(&describe, &mut hello);
        let (plugin, running) = (plugin.clone(), running.clone());
        std::thread::Builder::new()
            .name("plg-worker-accept".into())
            .spawn(move || crate::frames::accept(frames_listener, plugin, running, hello.into()))?;
    }
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<PluginServer<Service>>().await;
    let shutdown = Arc::new(Notify::new());
    let service = PluginServer::new(Service {
        plugin,
        shutdown: shutdown.clone(),
        describe,
        running,
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let line = Handshake {
        app_version: PROTOCOL_VERSION,
        socket,
    };
    // One write: the host reads the line as soon as it lands. stdout carries the handshake
    // and nothing else: the `File` closes it.
    std::fs::File::from(handshake_out).write_all(format!("{line}\n").as_bytes())?;
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(service)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::UnixListenerStream::new(listener),
            async move { shutdown.notified().await },
        )
        .await
        .map_err(|e| Failure::Serve(e.to_string()))
}

//! Start up: ready the runtime and sockets while the plugin loads, then print the handshake
//! and serve `plg.v1.Plugin` (`service`), `grpc.health.v1.Health` and the frames socket.

use std::{
    io::Write,
    os::fd::OwnedFd,
    os::unix::net::{UnixListener, UnixStream},
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

/// Takes stdin, when the host made it the first frames connection (a stream socket), and
/// points fd 0 at `/dev/null`: plugin code reading stdin reads nothing of the host's. `None`,
/// with stdin left as it is, when stdin is anything else (a wrapper script gave the worker
/// its own stdin): the host, finding no hello on its end, connects to `frames.sock`.
pub(crate) fn take_stdin() -> std::io::Result<Option<UnixStream>> {
    let stdin = rustix::stdio::stdin();
    let stream = rustix::net::sockopt::socket_type(stdin)
        .is_ok_and(|kind| kind == rustix::net::SocketType::STREAM);
    if !stream {
        return Ok(None);
    }
    let conn = UnixStream::from(rustix::io::fcntl_dupfd_cloexec(stdin, 3)?);
    let null = std::fs::File::open("/dev/null")?;
    rustix::stdio::dup2_stdin(&null)?;
    Ok(Some(conn))
}

/// The runtime and sockets being readied on a thread of their own, started before anything
/// else in `main`: while another thread is inside `dlopen`, glibc holds the lock that a new
/// thread's first thread-local destructor registration waits for, so a thread started just
/// before the plugin loads would wait for the load instead of running beside it.
pub(crate) struct Readying(std::sync::mpsc::Receiver<std::io::Result<Ready>>);

impl Readying {
    pub(crate) fn start(socket_dir: Option<PathBuf>) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        // Taken by a channel, not a join: the thread's exit is no one's wait.
        std::thread::spawn(move || tx.send(Ready::new(socket_dir)));
        Readying(rx)
    }

    fn join(self) -> Result<Ready, Failure> {
        self.0
            .recv()
            .map_err(|_| Failure::Serve("the thread readying the sockets panicked".into()))?
            .map_err(Failure::from)
    }
}

pub(crate) fn run(
    manifest: &Path,
    readying: Readying,
    first: Option<UnixStream>,
) -> Result<(), Failure> {
    let handshake_out = take_stdout()?;
    let manager = manager_here(manifest);
    let plugin = manager.load_manifest(manifest);
    let ready = readying.join()?;
    serve_loaded(&manager, plugin, handshake_out, ready, first)
}

/// `--spare`: everything that does not depend on the plugin first (the process, its
/// libraries, the async runtime, the sockets), then the manifest's path: one line on the
/// first frames connection (or on stdin, from a host that did not pass one). A host that
/// drops the spare closes it: the worker exits quietly.
pub(crate) fn spare(readying: Readying, first: Option<UnixStream>) -> Result<(), Failure> {
    let handshake_out = take_stdout()?;
    let ready = readying.join()?;
    let line = match &first {
        Some(conn) => read_line_only(conn)?,
        None => {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::stdin().lock(), &mut line)?;
            line
        }
    };
    let manifest = Path::new(line.trim_end_matches(['\n', '\r']));
    if manifest.as_os_str().is_empty() {
        return Ok(());
    }
    let manager = manager_here(manifest);
    let plugin = manager.load_manifest(manifest);
    serve_loaded(&manager, plugin, handshake_out, ready, first)
}

/// One line from `conn`, and not a byte more: what follows is frames. Empty at the end of
/// the stream.
fn read_line_only(conn: &UnixStream) -> std::io::Result<String> {
    use std::io::Read;
    const MAX: usize = 64 * 1024;
    let (mut line, mut buf) = (Vec::new(), [0u8; 4096]);
    loop {
        let (_, seen) = rustix::net::recv(conn, &mut buf, rustix::net::RecvFlags::PEEK)?;
        let seen = seen.min(buf.len());
        if seen == 0 {
            return Ok(String::new());
        }
        let end = buf[..seen].iter().position(|&b| b == b'\n').map(|i| i + 1);
        let take = end.unwrap_or(seen);
        (&mut &*conn).read_exact(&mut buf[..take])?;
        line.extend_from_slice(&buf[..take]);
        if end.is_some() {
            break;
        }
        if line.len() > MAX {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the manifest's path from the host is longer than 64 KiB",
            ));
        }
    }
    String::from_utf8(line).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the manifest's path from the host is not UTF-8",
        )
    })
}

/// What serving needs besides the plugin: the async runtime, and both sockets bound in a
/// private directory (mode 0700): the host's, which it removes once it has reaped this
/// process (so nothing is left however this process ends), or else one of its own, removed
/// when it exits cleanly.
pub(crate) struct Ready {
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
    first: Option<UnixStream>,
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
    let served = runtime.block_on(serve(
        plugin,
        handshake_out,
        dir.path(),
        grpc,
        frames,
        first,
    ));
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
    first: Option<UnixStream>,
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
    let mut hello = Vec::new();
    plg_protocol::frames::encode_hello(&describe, &mut hello);
    let hello: Arc<[u8]> = hello.into();
    // The hello goes on the host's own connection before the handshake line, so that the
    // host, once it has the line, finds the hello already waiting there.
    if let Some(conn) = first {
        crate::frames::open(conn, &hello, &plugin, &running);
    }
    {
        let (plugin, running) = (plugin.clone(), running.clone());
        std::thread::Builder::new()
            .name("plg-worker-accept".into())
            .spawn(move || crate::frames::accept(frames_listener, plugin, running, hello))?;
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

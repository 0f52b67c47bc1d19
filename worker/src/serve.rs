//! Load the plugin, then serve `plg.v1.Plugin` and `grpc.health.v1.Health` on a Unix socket.

use std::{
    io::Write,
    os::fd::OwnedFd,
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use plg_api::{CancelToken, Context};
use plg_loader::{LoadError, Plugin, PluginManager, WorkerPolicy};
use plg_protocol::{
    from_wire, parse_grpc_timeout,
    pb::{
        self,
        plugin_server::{Plugin as PluginService, PluginServer},
    },
    Handshake, MAX_MESSAGE_BYTES, PROTOCOL_VERSION,
};
use tokio::sync::Notify;
use tonic::{Request, Response, Status};

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

pub(crate) fn run(manifest: &Path) -> Result<(), Failure> {
    let handshake_out = take_stdout()?;
    serve_manifest(manifest, handshake_out, runtime()?)
}

/// `--spare`: everything that does not depend on the plugin first (the process, its
/// libraries, the async runtime), then the manifest's path from stdin. A host that drops
/// the spare closes stdin: the worker exits quietly.
pub(crate) fn spare() -> Result<(), Failure> {
    let handshake_out = take_stdout()?;
    let runtime = runtime()?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::stdin().lock(), &mut line)?;
    let manifest = line.trim_end_matches(['\n', '\r']);
    if manifest.is_empty() {
        return Ok(());
    }
    serve_manifest(Path::new(manifest), handshake_out, runtime)
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

fn serve_manifest(
    manifest: &Path,
    handshake_out: OwnedFd,
    runtime: tokio::runtime::Runtime,
) -> Result<(), Failure> {
    let manager = manager_here(manifest);
    let plugin = match manager.load_manifest(manifest) {
        Ok(plugin) => plugin,
        Err(e) => return Err(report_load_error(handshake_out, e)),
    };
    let served = runtime.block_on(serve(plugin, handshake_out));
    let (_, failed) = manager.unload_all();
    for e in failed {
        tracing::warn!("{e}");
    }
    served
}

async fn serve(plugin: Plugin, handshake_out: OwnedFd) -> Result<(), Failure> {
    // A private directory (mode 0700), removed when the worker exits.
    let dir = tempfile::Builder::new().prefix("plg-worker-").tempdir()?;
    let socket = dir.path().join("plugin.sock");
    let listener = tokio::net::UnixListener::bind(&socket)?;
    let frames_socket = dir.path().join("frames.sock");
    let frames_listener = std::os::unix::net::UnixListener::bind(&frames_socket)?;
    let running = crate::frames::Running::default();
    {
        let (plugin, running) = (plugin.clone(), running.clone());
        std::thread::Builder::new()
            .name("plg-worker-accept".into())
            .spawn(move || crate::frames::accept(frames_listener, plugin, running))?;
    }
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<PluginServer<Service>>().await;
    let shutdown = Arc::new(Notify::new());
    let service = PluginServer::new(Service {
        plugin,
        shutdown: shutdown.clone(),
        frames_socket: frames_socket.to_string_lossy().into_owned(),
        running,
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let line = Handshake {
        app_version: PROTOCOL_VERSION,
        socket: socket.clone(),
    };
    let mut out = std::fs::File::from(handshake_out);
    writeln!(out, "{line}")?;
    out.flush()?;
    // stdout carries the handshake and nothing else: close it.
    drop(out);
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

struct Service {
    plugin: Plugin,
    shutdown: Arc<Notify>,
    frames_socket: String,
    running: crate::frames::Running,
}

/// Cancels the call's context if the RPC is dropped (the host cancelled it, or its deadline
/// passed) before the plugin returned. If the plugin then ignores the cancellation for the
/// host's kill grace, the worker exits: a thread stuck in plugin code cannot be stopped any
/// other way, and the host starts a fresh worker for the next call.
struct CancelOnDrop {
    token: Option<CancelToken>,
    finished: Arc<AtomicBool>,
    grace: Duration,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            cancel_and_guard(&token, self.finished.clone(), self.grace);
        }
    }
}

/// Cancels a call; if it has not finished after `grace`, the worker exits.
fn cancel_and_guard(token: &CancelToken, finished: Arc<AtomicBool>, grace: Duration) {
    token.cancel();
    std::thread::spawn(move || {
        std::thread::sleep(grace);
        if !finished.load(Ordering::Acquire) {
            tracing::error!(
                "a call ignored its cancellation for {grace:?}; the worker exits so that the \
                 host can start a fresh one"
            );
            std::process::exit(EXIT_HUNG);
        }
    });
}

/// The exit code of a worker that stopped itself because a call would not end.
const EXIT_HUNG: i32 = 70;

/// The host's kill grace (`PLG_WORKER_KILL_GRACE_MS`), 2 s if unset.
fn kill_grace() -> Duration {
    std::env::var("PLG_WORKER_KILL_GRACE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(2), Duration::from_millis)
}

#[tonic::async_trait]
impl PluginService for Service {
    async fn describe(
        &self,
        _: Request<pb::DescribeRequest>,
    ) -> Result<Response<pb::DescribeResponse>, Status> {
        Ok(Response::new(pb::DescribeResponse {
            name: self.plugin.name().to_owned(),
            version: self.plugin.version().to_string(),
            protocol_version: PROTOCOL_VERSION,
            frames_socket: self.frames_socket.clone(),
        }))
    }

    async fn cancel(
        &self,
        request: Request<pb::CancelRequest>,
    ) -> Result<Response<pb::CancelResponse>, Status> {
        let id = request.into_inner().call_id;
        let call = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned();
        if let Some((token, finished)) = call {
            cancel_and_guard(&token, finished, kill_grace());
        }
        Ok(Response::new(pb::CancelResponse {}))
    }

    async fn execute(
        &self,
        request: Request<pb::ExecuteRequest>,
    ) -> Result<Response<pb::ExecuteResponse>, Status> {
        let timeout = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        let request = request.into_inner();
        let values = from_wire(request.values.unwrap_or_default())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut ctx = Context::from_values(values).with_label(request.label);
        if let Some(timeout) = timeout {
            ctx.set_timeout(timeout);
        }
        let finished = Arc::new(AtomicBool::new(false));
        let mut cancel = CancelOnDrop {
            token: Some(ctx.cancel_token().clone()),
            finished: finished.clone(),
            grace: kill_grace(),
        };
        let plugin = self.plugin.clone();
        let (result, ctx) = tokio::task::spawn_blocking(move || {
            let result = plugin.execute(&mut ctx);
            finished.store(true, Ordering::Release);
            (result, ctx)
        })
        .await
        .map_err(|e| Status::internal(format!("the call's thread failed: {e}")))?;
        cancel.token = None;
        let outcome = crate::reply::outcome(result, &ctx)?;
        Ok(Response::new(pb::ExecuteResponse {
            outcome: Some(outcome),
        }))
    }

    async fn shutdown(
        &self,
        _: Request<pb::ShutdownRequest>,
    ) -> Result<Response<pb::ShutdownResponse>, Status> {
        // Answer first; the server then stops taking calls and lets those in flight finish.
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            shutdown.notify_one();
        });
        Ok(Response::new(pb::ShutdownResponse {}))
    }
}

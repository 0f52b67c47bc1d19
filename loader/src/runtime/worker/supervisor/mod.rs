//! One plugin's worker, supervised: started on first use, restarted with backoff after a
//! crash, marked failed after too many, killed when a call overruns its deadline, stopped
//! when idle, and shut down at unload. It is the plugin's [`Runtime`]: callers cannot tell it
//! from the in-process one.
//!
//! `crashes` records crashes (backoff, the failed state) and kills overrunning workers;
//! `pool` spreads one plugin's calls over several such workers;
//! `watch` runs the health checks and the idle timeout; `frames_call` is the call path over
//! the lean frames socket, with its cancellation.

use std::{
    collections::VecDeque,
    ffi::OsString,
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc, Arc, Mutex, MutexGuard, OnceLock,
    },
    time::{Duration, Instant},
};

use plg_api::Context;
use plg_protocol::{frames::WORKER_FRAMES_SOCKET, pb, to_wire};

use super::{
    client::{self, Client},
    frames::Frames,
    policy::{WorkerPolicy, WorkerStop},
    process::{self, Launch, Process, StartError},
    reply::apply,
    spare::Spares,
};
use crate::{
    error::{ExecError, UnloadError, WorkerError},
    manifest::{preflight::Unmappable, Manifest},
    runtime::plugin::{Hook, Outcome, Runtime, UnloadReport},
};

mod crashes;
mod frames_call;
mod pool;
mod watch;

use watch::{stop, watch};

/// How often a waiting caller looks at its context's cancellation flag.
const CANCEL_POLL: Duration = Duration::from_millis(10);

/// What a worker runs: the `plg-worker` binary with a manifest, or an executable plugin.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    pub(crate) path: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) env: Vec<(String, String)>,
    /// It is `plg-worker`, which reports a failed load check as such (an exec plugin's
    /// stdout carries the handshake and nothing else).
    pub(crate) is_plg_worker: bool,
    /// The manager's pre-started workers, taken from when they run this program.
    pub(crate) spares: Option<Arc<Spares>>,
}

/// Refills the manager's spare worker when dropped.
struct ReplaceSpare<'a>(Option<&'a Arc<Spares>>);

impl Drop for ReplaceSpare<'_> {
    fn drop(&mut self) {
        if let Some(spares) = self.0 {
            spares.refill();
        }
    }
}

/// Starts `manifest`'s plugin in a worker running `program` (or in a pool of
/// `WorkerPolicy::pool_size` workers), shakes hands, checks `Describe` against the manifest,
/// and returns its runtime.
pub(crate) fn start(
    manifest: &Manifest,
    program: Program,
    library: PathBuf,
    preflight: Unmappable,
    policy: WorkerPolicy,
) -> Result<Box<dyn Runtime>, StartError> {
    if policy.pool_size <= 1 {
        return Ok(Box::new(start_one(
            manifest, program, library, preflight, policy,
        )?));
    }
    let members = (0..policy.pool_size)
        .map(|_| {
            start_one(
                manifest,
                program.clone(),
                library.clone(),
                preflight.clone(),
                policy.clone(),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Box::new(pool::Pool::new(members)))
}

/// One supervised worker.
fn start_one(
    manifest: &Manifest,
    program: Program,
    library: PathBuf,
    preflight: Unmappable,
    policy: WorkerPolicy,
) -> Result<WorkerRuntime, StartError> {
    let inner = Arc::new(Inner {
        id: manifest.id(),
        name: manifest.name.clone(),
        version: manifest.version.to_string(),
        program,
        policy,
        state: Mutex::new(State::default()),
        in_flight: AtomicUsize::new(0),
        closing: AtomicBool::new(false),
    });
    let live = inner.start_worker()?;
    inner.lock().worker = Some(live);
    if inner.policy.idle_timeout.is_some() || inner.policy.health_interval.is_some() {
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("plg-worker-watch".into())
            .spawn(move || watch(weak))
            .map_err(|e| WorkerError::Spawn {
                program: inner.program.path.clone(),
                reason: format!("cannot start its health thread: {e}"),
            })?;
    }
    Ok(WorkerRuntime {
        inner,
        library,
        preflight,
    })
}

#[derive(Debug)]
struct WorkerRuntime {
    inner: Arc<Inner>,
    library: PathBuf,
    preflight: Unmappable,
}

struct Inner {
    id: String,
    name: String,
    version: String,
    program: Program,
    policy: WorkerPolicy,
    state: Mutex<State>,
    in_flight: AtomicUsize,
    closing: AtomicBool,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("plugin", &self.id).finish()
    }
}

/// A running worker.
struct Live {
    process: Mutex<Process>,
    /// The gRPC socket from the handshake.
    socket: PathBuf,
    /// The gRPC client: connected at start for an exec plugin, at first use for plg-worker.
    client: OnceLock<Client>,
    /// The frames socket, when the worker offers one (plg-worker does): calls go there.
    frames: Option<Frames>,
    generation: u64,
    started: Instant,
}

#[derive(Default)]
struct State {
    worker: Option<Arc<Live>>,
    generation: u64,
    /// Crash times within the window.
    crashes: VecDeque<Instant>,
    /// The wait before the next start, and when it may happen.
    backoff: Duration,
    next_start: Option<Instant>,
    /// The last crash: its worker's generation, status and stderr tail.
    last_crash: Option<(u64, String, String)>,
    /// Set after too many crashes: calls fail at once.
    failed: bool,
    last_call: Option<Instant>,
}

impl Live {
    /// The gRPC client, connected (lazily, on the I/O runtime) if it was not yet.
    fn client(&self) -> &Client {
        self.client.get_or_init(|| client::lazy(&self.socket))
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start_worker(&self) -> Result<Arc<Live>, StartError> {
        // Whatever happens, a spare taken for this start is replaced once it is done.
        let _replace = ReplaceSpare(self.program.spares.as_ref());
        let launch = Launch {
            program: &self.program.path,
            args: self.program.args.clone(),
            env: self.program.env.clone(),
            plugin: &self.id,
            reports_load_errors: self.program.is_plg_worker,
            spares: self.program.spares.as_ref(),
        };
        let (mut proc, handshake) = process::start(&launch, &self.policy)?;
        let first_frames = proc.first_frames.take();
        let (described, client, frames) = match self.connect(&handshake.socket, first_frames) {
            Ok(c) => c,
            Err(reason) => {
                proc.kill();
                return Err(StartError::Worker(WorkerError::Connect {
                    program: self.program.path.clone(),
                    reason,
                }));
            }
        };
        if described.name != self.name || described.version != self.version {
            proc.kill();
            return Err(StartError::Worker(WorkerError::Mismatch {
                program: self.program.path.clone(),
                described: crate::untrusted::escape(&format!(
                    "{}@{}",
                    described.name, described.version
                ))
                .into_owned(),
                manifest: self.id.clone(),
            }));
        }
        let mut state = self.lock();
        state.generation += 1;
        Ok(Arc::new(Live {
            process: Mutex::new(proc),
            socket: handshake.socket,
            client: client.map(OnceLock::from).unwrap_or_default(),
            frames,
            generation: state.generation,
            started: Instant::now(),
        }))
    }

    /// Reaches a worker that shook hands on `socket`: its `Describe`, the gRPC client if one
    /// was connected, and the frames socket if it offers one. `first_frames` is plg-worker's
    /// first frames connection, made before it started.
    fn connect(
        &self,
        socket: &Path,
        first_frames: Option<UnixStream>,
    ) -> Result<(pb::DescribeResponse, Option<Client>, Option<Frames>), String> {
        let timeout = self.policy.start_timeout;
        let open_frames = |path: PathBuf, first: Option<UnixStream>| {
            Frames::open(path, timeout, first)
                .map_err(|e| format!("cannot open its frames socket: {e}"))
        };
        if self.program.is_plg_worker {
            // plg-worker serves frames beside its gRPC socket, and its hello is `Describe`:
            // nothing goes over gRPC before the first call. The gRPC client (health, cancel,
            // shutdown) connects when it is first used.
            let frames = open_frames(socket.with_file_name(WORKER_FRAMES_SOCKET), first_frames)?;
            return Ok((frames.described().clone(), None, Some(frames)));
        }
        let client = client::connect(socket, timeout)?;
        let described = client.describe(timeout)?;
        // Only a frames socket beside the gRPC one is used: a plugin cannot point the host
        // at some other service's socket.
        let frames_socket = PathBuf::from(&described.frames_socket);
        let frames =
            if !described.frames_socket.is_empty() && frames_socket.parent() == socket.parent() {
                Some(open_frames(frames_socket, None)?)
            } else {
                None
            };
        Ok((described, Some(client), frames))
    }

    /// The running worker, started (after its backoff) if there is none.
    fn live(&self) -> Result<Arc<Live>, Box<ExecError>> {
        let mut state = self.lock();
        state.last_call = Some(Instant::now());
        if let Some(live) = state.worker.clone() {
            // A worker that exited between calls (killed for a hung call, or by the OOM
            // killer) is a crash found now: the call goes to a new one.
            let exited = live
                .process
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .try_reap();
            match exited {
                None => return Ok(live),
                Some(status) => {
                    let (status, stderr) = {
                        let process = live.process.lock().unwrap_or_else(|e| e.into_inner());
                        (
                            process.describe_exit(&status),
                            process.stderr.text(Duration::ZERO),
                        )
                    };
                    self.record_crash(&mut state, &live, status, stderr);
                }
            }
        }
        if state.failed {
            return Err(Box::new(self.failed_error(&state)));
        }
        let wait = state
            .next_start
            .map(|at| at.saturating_duration_since(Instant::now()));
        // The backoff is slept without the lock: other callers, the health thread and
        // unload are not held up by it.
        drop(state);
        if let Some(wait) = wait {
            std::thread::sleep(wait);
        }
        let live = self.start_worker().map_err(|e| {
            Box::new(ExecError::Worker {
                plugin: self.id.clone(),
                message: format!("cannot restart it: {e}"),
            })
        })?;
        let mut state = self.lock();
        if let Some(other) = &state.worker {
            // Another caller started one meanwhile: use it, stop ours.
            let other = other.clone();
            drop(state);
            stop(&live, &self.policy);
            return Ok(other);
        }
        state.worker = Some(live.clone());
        Ok(live)
    }
}

impl WorkerRuntime {
    /// `execute`, for a call already counted in `in_flight` (the count is dropped here).
    fn execute_counted(&self, id: &str, ctx: &mut Context) -> Outcome {
        let inner = &self.inner;
        let _counted = InFlight(&inner.in_flight);
        if inner.closing.load(Ordering::SeqCst) {
            return Err(Box::new(ExecError::Unloaded {
                plugin: id.to_owned(),
            }));
        }
        let live = inner.live()?;
        if let Some(frames) = &live.frames {
            return self.execute_frames(id, ctx, &live, frames);
        }
        let mut request = tonic::Request::new(pb::ExecuteRequest {
            values: Some(to_wire(ctx.values())),
            label: ctx.label().to_owned(),
        });
        let deadline = ctx.remaining().map(|r| Instant::now() + r);
        if let Some(remaining) = ctx.remaining() {
            if remaining.is_zero() {
                return Err(Box::new(ExecError::DeadlineExceeded {
                    plugin: id.to_owned(),
                }));
            }
            request.set_timeout(remaining);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let mut plugin = live.client().plugin.clone();
        let task = client::runtime().spawn(async move {
            let result = plugin.execute(request).await;
            let _ = done_tx.send(());
            let _ = tx.send(result);
        });
        let result = loop {
            let slice = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(CANCEL_POLL),
                None => CANCEL_POLL,
            };
            match rx.recv_timeout(slice) {
                Ok(result) => break result,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break Err(tonic::Status::unknown(
                        "the call's task ended without a result",
                    ))
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            let overran = deadline.is_some_and(|d| Instant::now() >= d);
            if overran {
                // The RPC carries the deadline, so the worker ends the call too; answer now,
                // and kill the worker if the call is still running after the grace period.
                inner.watch_overrun(live.clone(), move |_, grace| {
                    !matches!(
                        done_rx.recv_timeout(grace),
                        Err(mpsc::RecvTimeoutError::Timeout)
                    )
                });
                return Err(Box::new(ExecError::DeadlineExceeded {
                    plugin: id.to_owned(),
                }));
            }
            if ctx.is_cancelled() {
                // Dropping the RPC is gRPC cancellation: the worker cancels the plugin's
                // context, and exits if the plugin ignores that for the grace period.
                task.abort();
                return Err(Box::new(ExecError::Cancelled {
                    plugin: id.to_owned(),
                }));
            }
        };
        match result {
            Ok(response) => apply(id, ctx, response.into_inner()),
            Err(status) => Err(Box::new(match status.code() {
                tonic::Code::DeadlineExceeded => ExecError::DeadlineExceeded {
                    plugin: id.to_owned(),
                },
                tonic::Code::Cancelled if ctx.is_cancelled() => ExecError::Cancelled {
                    plugin: id.to_owned(),
                },
                tonic::Code::ResourceExhausted | tonic::Code::InvalidArgument => {
                    ExecError::Worker {
                        plugin: id.to_owned(),
                        message: crate::untrusted::escape(status.message()).into_owned(),
                    }
                }
                _ => inner.crashed(
                    &live,
                    crate::untrusted::escape(&format!("{}: {}", status.code(), status.message()))
                        .into_owned(),
                ),
            })),
        }
    }
}

impl Runtime for WorkerRuntime {
    fn execute(&self, id: &str, ctx: &mut Context) -> Outcome {
        // Counted before the check, both SeqCst: unload either sees this call or this call
        // sees unload.
        self.inner.in_flight.fetch_add(1, Ordering::SeqCst);
        self.execute_counted(id, ctx)
    }

    fn unload(&self, id: &str, timeout: Duration) -> Result<UnloadReport, UnloadError> {
        let waited = drain(id, std::slice::from_ref(self), timeout)?;
        Ok(self.stop_after_drain(id, waited))
    }

    fn is_loaded(&self) -> bool {
        !self.inner.closing.load(Ordering::Acquire)
    }

    fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Acquire)
    }

    fn library_path(&self) -> &Path {
        &self.library
    }

    fn preflight(&self) -> &Unmappable {
        &self.preflight
    }

    fn api_version(&self) -> &str {
        "(in a worker)"
    }

    /// `on_load` ran in the worker when it loaded the plugin; the state hooks of hot upgrade
    /// are not carried over the protocol.
    fn run_hook(&self, _id: &str, _hook: Hook, _ctx: &mut Context) -> Result<(), ExecError> {
        Ok(())
    }

    fn has_hook(&self, _hook: Hook) -> bool {
        false
    }

    fn panic_aborts(&self) -> Option<bool> {
        None
    }

    fn arm(&self) {}

    fn worker(&self) -> bool {
        true
    }
}

/// Refuses new calls to every one of `members` and waits until none has a call in flight;
/// after `timeout`, lets calls in again and fails with `Busy`. Returns how long it waited.
fn drain(id: &str, members: &[WorkerRuntime], timeout: Duration) -> Result<Duration, UnloadError> {
    let start = Instant::now();
    for m in members {
        m.inner.closing.store(true, Ordering::SeqCst);
    }
    let in_flight = || -> usize {
        members
            .iter()
            .map(|m| m.inner.in_flight.load(Ordering::SeqCst))
            .sum()
    };
    while in_flight() > 0 {
        if start.elapsed() >= timeout {
            for m in members {
                m.inner.closing.store(false, Ordering::Release);
            }
            return Err(UnloadError::Busy {
                plugin: id.to_owned(),
                in_flight: in_flight(),
                waited: start.elapsed(),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(start.elapsed())
}

impl WorkerRuntime {
    /// Stops the worker once [`drain`] has emptied it.
    fn stop_after_drain(&self, id: &str, waited: Duration) -> UnloadReport {
        let live = self.inner.lock().worker.take();
        let stopped = match live {
            Some(live) => stop(&live, &self.inner.policy),
            None => WorkerStop::NotRunning,
        };
        UnloadReport {
            plugin: id.to_owned(),
            waited,
            // The library was never mapped into this process; its worker has exited.
            unmapped: Some(true),
            on_unload_error: None,
            close_error: None,
            predicted: self.preflight.clone(),
            kept_copy: None,
            worker: Some(stopped),
        }
    }
}

impl Drop for WorkerRuntime {
    fn drop(&mut self) {
        self.inner.closing.store(true, Ordering::Release);
        if let Some(live) = self.inner.lock().worker.take() {
            stop(&live, &self.inner.policy);
        }
    }
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

//! Start a plugin process and shake hands with it: the magic cookie in a cleared environment,
//! one line on stdout (read by `output`, which also forwards stderr), and for plg-worker its
//! first frames connection, made before it starts.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{mpsc, Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use plg_protocol::{Handshake, HandshakeError, COOKIE_KEY, COOKIE_VALUE};

use super::{
    cgroup::WorkerCgroup,
    output::{self, FirstLine, Label, NoLine, Tail, LINE_CHARS},
    policy::WorkerPolicy,
    socket_dir,
    spare::Spares,
};
use crate::{
    error::{parse_load_error_line, HandshakeProblem, LoadError, WorkerError, CHECK_OK},
    runtime::ffi::{die_with_parent, ChildLimits},
    runtime::worker::adopt,
    untrusted,
};

/// A started plugin process.
pub(super) struct Process {
    pub(super) child: Child,
    pub(super) program: PathBuf,
    pub(super) stderr: Arc<Tail>,
    label: Label,
    /// Its cgroup, if its memory limit has one: dropped (emptied and removed) after the
    /// process is reaped.
    cgroup: Option<WorkerCgroup>,
    /// plg-worker's socket directory, removed after the process is reaped.
    _socket_dir: Option<tempfile::TempDir>,
    /// The host's end of plg-worker's first frames connection, which is the worker's stdin:
    /// connected before the worker starts, so the first call needs no connect or accept.
    /// Taken by whoever opens the worker's frames.
    pub(super) first_frames: Option<std::os::unix::net::UnixStream>,
}

/// What a plugin process runs: a program with its arguments and declared environment.
pub(super) struct Launch<'a> {
    pub(super) program: &'a Path,
    pub(super) args: Vec<std::ffi::OsString>,
    pub(super) env: Vec<(String, String)>,
    /// `name@version`, for the logs.
    pub(super) plugin: &'a str,
    /// The program is `plg-worker`: a first stdout line that is a load-error line
    /// ([`LOAD_ERROR_PREFIX`](crate::error::LOAD_ERROR_PREFIX)) is read as the load check
    /// that failed.
    pub(super) reports_load_errors: bool,
    /// Workers started ahead ([`WorkerPolicy::prestart`]): one is taken, if it runs this
    /// program, instead of starting a process.
    pub(super) spares: Option<&'a Arc<Spares>>,
}

/// Why a worker did not start.
#[derive(Debug)]
pub(crate) enum StartError {
    /// Starting or reaching it failed.
    Worker(WorkerError),
    /// `plg-worker` started and said which of plg-loader's load checks the library failed.
    Load(LoadError),
}

impl StartError {
    /// The error of loading plugin `plugin` (`name@version`): a failed load check as
    /// itself, anything else as [`LoadError::Worker`].
    pub(crate) fn into_load_error(self, plugin: &str) -> LoadError {
        match self {
            StartError::Load(e) => e,
            StartError::Worker(source) => LoadError::Worker {
                plugin: plugin.to_owned(),
                source,
            },
        }
    }
}

impl From<WorkerError> for StartError {
    fn from(e: WorkerError) -> Self {
        StartError::Worker(e)
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Worker(e) => e.fmt(f),
            StartError::Load(e) => e.fmt(f),
        }
    }
}

/// Starts `launch` and waits for its handshake.
pub(super) fn start(
    launch: &Launch<'_>,
    policy: &WorkerPolicy,
) -> Result<(Process, Handshake), StartError> {
    let taken = launch
        .spares
        .and_then(|spares| spares.take(launch.program))
        .and_then(|spare| assign(spare, launch));
    let (mut process, mut first) = match taken {
        Some(started) => started,
        None => spawn(launch, policy, Worker::Serve)?,
    };
    let line = first_line(&mut process, &mut first, policy)?;
    if launch.reports_load_errors {
        if let Some(error) = parse_load_error_line(&line, launch.plugin, manifest_of(launch)) {
            // It exits once it has said so: reap it.
            process.reap_soon();
            return Err(StartError::Load(error));
        }
    }
    match Handshake::parse(&line) {
        Ok(handshake) => Ok((process, handshake)),
        Err(e) => {
            process.kill();
            let problem = match e {
                HandshakeError::Garbage { .. } => HandshakeProblem::Garbage,
                HandshakeError::Version { .. } => HandshakeProblem::Version,
                HandshakeError::Transport { .. } => HandshakeProblem::Transport,
            };
            Err(StartError::Worker(bad_handshake(
                &process,
                problem,
                &e.to_string(),
            )))
        }
    }
}

/// Starts `launch`'s process: a cleared environment plus the cookie and what is declared,
/// its own process group, killed with the host, stderr forwarded; its first stdout line is
/// read from what is returned.
fn spawn(launch: &Launch<'_>, policy: &WorkerPolicy, kind: Worker) -> Result<Started, WorkerError> {
    let label = Label::default();
    let _ = label.set(launch.plugin.to_owned());
    spawn_with(
        launch.program,
        &launch.args,
        &launch.env,
        label,
        launch.reports_load_errors.then_some(kind),
        policy,
    )
}

/// What a plg-worker process is started for.
#[derive(Clone, Copy, PartialEq)]
enum Worker {
    /// A plugin: plg-worker's first frames connection is its stdin.
    Serve,
    /// A spare: the same, and the manifest's path comes first on it (on a piped stdin for a
    /// wrapper script).
    Spare,
    /// A throwaway load check: no connection.
    Check,
}

/// Whether `program` is an ELF executable (plg-worker itself), not a script around it.
fn is_elf(program: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(program)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok_and(|()| magic == *b"\x7fELF")
}

/// A process and where its first stdout line comes from.
pub(super) type Started = (Process, FirstLine);

/// Starts `plg-worker --spare` at `program`: it waits for the manifest to serve.
pub(super) fn spawn_spare(program: &Path, policy: &WorkerPolicy) -> Result<Started, WorkerError> {
    spawn_with(
        program,
        &["--spare".into()],
        &[],
        Label::default(),
        Some(Worker::Spare),
        policy,
    )
}

/// `process`'s first line was refused: `reason` (untrusted, cut and escaped here) and the
/// tail of its stderr.
fn bad_handshake(process: &Process, problem: HandshakeProblem, reason: &str) -> WorkerError {
    WorkerError::BadHandshake {
        program: process.program.clone(),
        problem,
        reason: untrusted::escape(&reason.chars().take(LINE_CHARS).collect::<String>())
            .into_owned(),
        stderr: process.stderr.text(Duration::from_millis(500)),
    }
}

/// The manifest a `plg-worker` launch serves or checks: its last argument.
fn manifest_of<'a>(launch: &'a Launch<'_>) -> &'a Path {
    launch.args.last().map_or(Path::new(""), Path::new)
}

/// Hands a spare its plugin: the manifest's path (the launch's one argument), one line on
/// its first frames connection, before any frame. `None` if it cannot take it (it exited
/// meanwhile): the caller starts a process instead.
fn assign((mut process, first): Started, launch: &Launch<'_>) -> Option<Started> {
    use std::io::Write;
    let [manifest] = launch.args.as_slice() else {
        return None;
    };
    // Absolute: the spare's working directory is the host's as it was when it started.
    let manifest = std::path::absolute(Path::new(manifest)).ok()?;
    let manifest = manifest.to_str()?;
    // One line: then the connection carries frames (a wrapper's piped stdin closes).
    if manifest.contains(['\n', '\r']) {
        return None;
    }
    let _ = process.label.set(launch.plugin.to_owned());
    let line = format!("{manifest}\n");
    match process.first_frames.as_mut() {
        Some(conn) => conn.write_all(line.as_bytes()).ok()?,
        None => process
            .child
            .stdin
            .take()?
            .write_all(line.as_bytes())
            .ok()?,
    }
    Some((process, first))
}

fn spawn_with(
    program: &Path,
    args: &[std::ffi::OsString],
    env: &[(String, String)],
    label: Label,
    plg_worker: Option<Worker>,
    policy: &WorkerPolicy,
) -> Result<Started, WorkerError> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        // PATH is not a secret, and an interpreter (`#!/usr/bin/env python3`) needs it.
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
        )
        .envs(policy.env.iter().map(|(k, v)| (k, v)))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env(COOKIE_KEY, COOKIE_VALUE)
        .env(
            "PLG_WORKER_KILL_GRACE_MS",
            policy.kill_grace.as_millis().to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let limits = ChildLimits {
        address_space: policy.memory_limit,
        cpu_seconds: policy.cpu_seconds,
        open_files: policy.open_files,
    };
    let cgroup = WorkerCgroup::for_policy(policy).map_err(|e| WorkerError::Spawn {
        program: program.to_owned(),
        reason: e.to_string(),
    })?;
    let procs = cgroup.as_ref().map(WorkerCgroup::procs);
    // plg-worker itself, not a wrapper script around it.
    let elf = plg_worker.is_some() && is_elf(program);
    let first_frames = if elf && matches!(plg_worker, Some(Worker::Serve | Worker::Spare)) {
        let (host_end, worker_end) =
            std::os::unix::net::UnixStream::pair().map_err(|e| WorkerError::Spawn {
                program: program.to_owned(),
                reason: format!("cannot make its first connection: {e}"),
            })?;
        cmd.stdin(std::os::fd::OwnedFd::from(worker_end));
        let (key, value) = adopt::frames_on_stdin_env();
        cmd.env(key, value);
        Some(host_end)
    } else {
        // A wrapper's commands may read stdin, or outlive the worker holding a copy of it:
        // it gets none, and the host connects to the worker's socket. A wrapped spare reads
        // its manifest's path on a pipe.
        if plg_worker == Some(Worker::Spare) {
            cmd.stdin(Stdio::piped());
        }
        None
    };
    let plg_worker = plg_worker.is_some();
    let socket_dir = if plg_worker {
        let dir = socket_dir::make().map_err(|e| WorkerError::Spawn {
            program: program.to_owned(),
            reason: format!("cannot make a directory for its sockets: {e}"),
        })?;
        let (key, value) = adopt::socket_dir_env(dir.path());
        cmd.env(key, value);
        Some(dir)
    } else {
        None
    };
    if elf {
        // plg-worker applies these itself before it reads the manifest, so std can start it
        // with posix_spawn (vfork and exec) instead of forking the whole host: a fork of a
        // host with a few hundred MB resident costs milliseconds on its own. A configured
        // wrapper (a script) gets them from the hook, as any program does.
        cmd.envs(adopt::env_for(limits, procs.as_deref()));
    } else {
        let procs = procs
            .map(|p| std::ffi::CString::new(p.into_os_string().into_encoded_bytes()))
            .transpose()
            .map_err(|e| WorkerError::Spawn {
                program: program.to_owned(),
                reason: format!("its cgroup's path cannot be passed to the kernel: {e}"),
            })?;
        die_with_parent(&mut cmd, limits, procs);
    }
    let mut child = spawn_from_lasting_thread(cmd).map_err(|e| WorkerError::Spawn {
        program: program.to_owned(),
        reason: e.to_string(),
    })?;
    // plg-worker closes its stdout after the handshake line: the caller reads that line
    // itself. Any other program's stdout (an exec plugin, a wrapper script) is watched by a
    // thread, which logs what follows the line.
    let (stderr, first) = output::watch(&mut child, &label, elf);
    let process = Process {
        child,
        program: program.to_owned(),
        stderr,
        label,
        cgroup,
        _socket_dir: socket_dir,
        first_frames,
    };
    Ok((process, first))
}

/// The first line `process` prints on stdout, within the start timeout. A process that
/// prints none is killed (timeout) or reaped (exit), and the error carries its stderr's tail.
fn first_line(
    process: &mut Process,
    first: &mut FirstLine,
    policy: &WorkerPolicy,
) -> Result<String, WorkerError> {
    let started = Instant::now();
    match first.wait(policy.start_timeout) {
        Ok(line) => Ok(line),
        Err(NoLine::Timeout) => {
            process.kill();
            Err(WorkerError::HandshakeTimeout {
                program: process.program.clone(),
                timeout: policy.start_timeout,
                stderr: process.stderr.text(Duration::from_millis(500)),
            })
        }
        // stdout closed without a line: the process is exiting.
        Err(NoLine::Closed) => {
            let left = policy.start_timeout.saturating_sub(started.elapsed());
            let status = process.wait_for_exit(left.max(Duration::from_millis(200)));
            Err(WorkerError::ExitedBeforeHandshake {
                program: process.program.clone(),
                status: status.map_or_else(|| "closed its stdout".into(), |s| describe(&s)),
                stderr: process.stderr.text(Duration::from_millis(500)),
            })
        }
    }
}

/// Runs `plg-worker --check MANIFEST` (`launch`) to its end: `Ok` when the library passed
/// every load check, the [`LoadError`] it failed, or the worker's crash or hang. The process
/// group is killed and reaped either way: nothing the library started outlives the check.
pub(crate) fn check(launch: &Launch<'_>, policy: &WorkerPolicy) -> Result<(), StartError> {
    let (mut process, mut first) = spawn(launch, policy, Worker::Check)?;
    let outcome = match first_line(&mut process, &mut first, policy) {
        Ok(line) if line.trim_end() == CHECK_OK => Ok(()),
        Ok(line) => Err(
            match parse_load_error_line(&line, launch.plugin, manifest_of(launch)) {
                Some(error) => StartError::Load(error),
                None => {
                    StartError::Worker(bad_handshake(&process, HandshakeProblem::Garbage, &line))
                }
            },
        ),
        Err(WorkerError::HandshakeTimeout {
            program, stderr, ..
        }) => Err(StartError::Worker(WorkerError::CheckTimeout {
            program,
            timeout: policy.start_timeout,
            stderr,
        })),
        Err(WorkerError::ExitedBeforeHandshake {
            program,
            status,
            stderr,
        }) => Err(StartError::Worker(WorkerError::CheckCrashed {
            program,
            status,
            stderr,
        })),
        Err(e) => Err(StartError::Worker(e)),
    };
    process.kill();
    outcome
}

impl Process {
    /// Waits a moment for a process that said it is exiting, then kills it; reaped either
    /// way.
    fn reap_soon(&mut self) {
        if self.wait_for_exit(Duration::from_secs(1)).is_none() {
            self.kill();
        }
    }

    /// `status` in words, and the kernel's OOM killer if it was that (its cgroup says so).
    pub(super) fn describe_exit(&self, status: &ExitStatus) -> String {
        let mut text = describe(status);
        #[cfg(unix)]
        let killed = std::os::unix::process::ExitStatusExt::signal(status) == Some(9);
        #[cfg(not(unix))]
        let killed = false;
        // Only a SIGKILL can be the OOM killer's.
        if let Some(note) = killed
            .then(|| self.cgroup.as_ref().and_then(WorkerCgroup::oom_note))
            .flatten()
        {
            text.push_str(&note);
        }
        text
    }

    /// Kills the process group and reaps the process. Once the process is reaped, its pid
    /// may be another process's: then nothing is sent.
    pub(super) fn kill(&mut self) {
        if self.try_reap().is_some() {
            return;
        }
        #[cfg(target_os = "linux")]
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its exit status if it has exited, reaping it. What is left of its process group
    /// (processes the plugin started) is killed first: until the process is reaped its pid,
    /// the group's id, cannot be reused, so the signal reaches that group only.
    pub(super) fn try_reap(&mut self) -> Option<ExitStatus> {
        #[cfg(target_os = "linux")]
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            use rustix::process::{waitid, WaitId, WaitIdOptions};
            let exited = waitid(
                WaitId::Pid(pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
            );
            if matches!(exited, Ok(Some(_))) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
        }
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for the process to exit (reaping it); `None` if it has not.
    pub(super) fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        // No deadline if the timeout is past what a clock can hold.
        let deadline = Instant::now().checked_add(timeout);
        loop {
            match self.try_reap() {
                Some(status) => return Some(status),
                None if deadline.is_none_or(|d| Instant::now() < d) => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                None => return None,
            }
        }
    }
}

impl Drop for Process {
    /// A process nobody holds any more is killed and reaped: no orphan, no zombie.
    fn drop(&mut self) {
        self.kill();
    }
}

/// Spawns `cmd` from one thread that lives as long as the process: `PR_SET_PDEATHSIG` fires
/// when the thread that forked the child exits, so spawning from a caller's short-lived
/// thread would kill the worker with that thread.
fn spawn_from_lasting_thread(cmd: Command) -> std::io::Result<Child> {
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("plg-worker-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("cannot start plg's worker spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| std::io::Error::other("plg's worker spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| std::io::Error::other("plg's worker spawner thread is gone"))?
}

/// `exited with code 3`, `was killed by signal 11 (SIGSEGV)`.
pub(super) fn describe(status: &ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let name = match sig {
                4 => " (SIGILL)",
                6 => " (SIGABRT)",
                7 => " (SIGBUS)",
                8 => " (SIGFPE)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                15 => " (SIGTERM)",
                24 => " (SIGXCPU)",
                _ => "",
            };
            return format!("was killed by signal {sig}{name}");
        }
    }
    match status.code() {
        Some(code) => format!("exited with code {code}"),
        None => "exited".into(),
    }
}

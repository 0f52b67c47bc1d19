//! Start a plugin process and shake hands with it: the magic cookie in a cleared environment,
//! one line on stdout, stderr forwarded to `tracing` and its tail kept for errors.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{mpsc, Arc, Condvar, Mutex, OnceLock},
    time::{Duration, Instant},
};

use plg_protocol::{Handshake, HandshakeError, COOKIE_KEY, COOKIE_VALUE};

use super::{cgroup::WorkerCgroup, policy::WorkerPolicy, spare::Spares};
use crate::{
    error::{parse_load_error_line, HandshakeProblem, LoadError, WorkerError, CHECK_OK},
    runtime::ffi::{die_with_parent, ChildLimits},
    runtime::worker::adopt,
    untrusted,
};

/// The longest line read from a plugin's stdout or stderr; the rest of a longer line is
/// skipped (a plugin cannot make the host buffer without bound).
const MAX_LINE_BYTES: usize = 8192;
/// Lines of stderr kept for error messages.
const TAIL_LINES: usize = 20;
/// Characters kept of each stderr line.
const LINE_CHARS: usize = 400;

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
}

/// What a process wrote on stderr last, escaped.
#[derive(Default)]
pub(super) struct Tail {
    lines: Mutex<(VecDeque<String>, bool)>,
    closed: Condvar,
}

impl Tail {
    fn push(&self, line: String) {
        let mut g = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if g.0.len() == TAIL_LINES {
            g.0.pop_front();
        }
        g.0.push_back(line);
    }

    fn close(&self) {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.closed.notify_all();
    }

    /// The tail, after waiting up to `wait` for the process's stderr to close (so that what
    /// a dying process wrote last is in it).
    pub(super) fn text(&self, wait: Duration) -> String {
        let g = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let (g, _) = self
            .closed
            .wait_timeout_while(g, wait, |g| !g.1)
            .unwrap_or_else(|e| e.into_inner());
        g.0.iter().cloned().collect::<Vec<_>>().join("\n")
    }
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

/// The plugin a process's output is logged under; a spare gets it when it is taken.
pub(super) type Label = Arc<OnceLock<String>>;

fn label_of(label: &Label) -> &str {
    label.get().map_or("(spare worker)", String::as_str)
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
    let (mut process, first) = match taken {
        Some(started) => started,
        None => spawn(launch, policy)?,
    };
    let line = first_line(&mut process, &first, policy)?;
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
/// its own process group, killed with the host, stderr forwarded. The receiver gets the first
/// line of its stdout.
fn spawn(launch: &Launch<'_>, policy: &WorkerPolicy) -> Result<Started, WorkerError> {
    let label = Label::default();
    let _ = label.set(launch.plugin.to_owned());
    spawn_with(
        launch.program,
        &launch.args,
        &launch.env,
        label,
        false,
        launch.reports_load_errors,
        policy,
    )
}

/// Whether `program` is an ELF executable (plg-worker itself), not a script around it.
fn is_elf(program: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(program)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok_and(|()| magic == *b"\x7fELF")
}

/// A process and the channel its first stdout line arrives on.
pub(super) type Started = (Process, mpsc::Receiver<String>);

/// Starts `plg-worker --spare` at `program`: it waits on stdin for the manifest to serve.
pub(super) fn spawn_spare(program: &Path, policy: &WorkerPolicy) -> Result<Started, WorkerError> {
    spawn_with(
        program,
        &["--spare".into()],
        &[],
        Label::default(),
        true,
        true,
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

/// Hands a spare its plugin: the manifest's path (the launch's one argument) on its stdin.
/// `None` if it cannot take it (it exited meanwhile): the caller starts a process instead.
fn assign((mut process, first): Started, launch: &Launch<'_>) -> Option<Started> {
    use std::io::Write;
    let [manifest] = launch.args.as_slice() else {
        return None;
    };
    // Absolute: the spare's working directory is the host's as it was when it started.
    let manifest = std::path::absolute(Path::new(manifest)).ok()?;
    let manifest = manifest.to_str()?;
    // One line, the only thing ever written: then stdin closes.
    if manifest.contains(['\n', '\r']) {
        return None;
    }
    let _ = process.label.set(launch.plugin.to_owned());
    let mut stdin = process.child.stdin.take()?;
    stdin.write_all(format!("{manifest}\n").as_bytes()).ok()?;
    drop(stdin);
    Some((process, first))
}

fn spawn_with(
    program: &Path,
    args: &[std::ffi::OsString],
    env: &[(String, String)],
    label: Label,
    stdin_piped: bool,
    plg_worker: bool,
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
        .stdin(if stdin_piped {
            Stdio::piped()
        } else {
            Stdio::null()
        })
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
    let socket_dir = if plg_worker {
        let dir = tempfile::Builder::new()
            .prefix("plg-worker-")
            .tempdir()
            .map_err(|e| WorkerError::Spawn {
                program: program.to_owned(),
                reason: format!("cannot make a directory for its sockets: {e}"),
            })?;
        let (key, value) = adopt::socket_dir_env(dir.path());
        cmd.env(key, value);
        Some(dir)
    } else {
        None
    };
    if plg_worker && is_elf(program) {
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
    let stderr = Arc::new(Tail::default());
    if let Some(err) = child.stderr.take() {
        let (tail, label) = (stderr.clone(), label.clone());
        std::thread::Builder::new()
            .name("plg-worker-stderr".into())
            .spawn(move || forward_stderr(err, &tail, &label))
            .ok();
    } else {
        stderr.close();
    }
    let (line_tx, line_rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        let label = label.clone();
        std::thread::Builder::new()
            .name("plg-worker-stdout".into())
            .spawn(move || read_stdout(out, line_tx, &label))
            .ok();
    }
    let process = Process {
        child,
        program: program.to_owned(),
        stderr,
        label,
        cgroup,
        _socket_dir: socket_dir,
    };
    Ok((process, line_rx))
}

/// The first line `process` prints on stdout, within the start timeout. A process that
/// prints none is killed (timeout) or reaped (exit), and the error carries its stderr's tail.
fn first_line(
    process: &mut Process,
    first: &mpsc::Receiver<String>,
    policy: &WorkerPolicy,
) -> Result<String, WorkerError> {
    let started = Instant::now();
    let line = match first.recv_timeout(policy.start_timeout) {
        Ok(line) => line,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            process.kill();
            return Err(WorkerError::HandshakeTimeout {
                program: process.program.clone(),
                timeout: policy.start_timeout,
                stderr: process.stderr.text(Duration::from_millis(500)),
            });
        }
        // stdout closed without a line: the process is exiting.
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let left = policy.start_timeout.saturating_sub(started.elapsed());
            let status = process.wait_for_exit(left.max(Duration::from_millis(200)));
            return Err(WorkerError::ExitedBeforeHandshake {
                program: process.program.clone(),
                status: status.map_or_else(|| "closed its stdout".into(), |s| describe(&s)),
                stderr: process.stderr.text(Duration::from_millis(500)),
            });
        }
    };
    Ok(line)
}

/// Runs `plg-worker --check MANIFEST` (`launch`) to its end: `Ok` when the library passed
/// every load check, the [`LoadError`] it failed, or the worker's crash or hang. The process
/// group is killed and reaped either way: nothing the library started outlives the check.
pub(crate) fn check(launch: &Launch<'_>, policy: &WorkerPolicy) -> Result<(), StartError> {
    let (mut process, first) = spawn(launch, policy)?;
    let outcome = match first_line(&mut process, &first, policy) {
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
        let deadline = Instant::now() + timeout;
        loop {
            match self.try_reap() {
                Some(status) => return Some(status),
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
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

/// Reads one line into `buf` (without its newline), keeping at most [`MAX_LINE_BYTES`] and
/// skipping the rest of a longer one. `false` at the end of the stream.
fn read_line_capped(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> bool {
    buf.clear();
    let mut read_any = false;
    loop {
        let chunk = match reader.fill_buf() {
            Ok([]) => return read_any,
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return read_any,
        };
        read_any = true;
        let (line_part, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        let room = MAX_LINE_BYTES.saturating_sub(buf.len());
        buf.extend_from_slice(&line_part[..line_part.len().min(room)]);
        let used = done.unwrap_or(chunk.len());
        reader.consume(used);
        if done.is_some() {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return true;
        }
    }
}

/// Sends the first stdout line (the handshake); logs anything after it as a warning.
fn read_stdout(out: std::process::ChildStdout, first: mpsc::Sender<String>, label: &Label) {
    let mut reader = BufReader::new(out);
    let mut buf = Vec::new();
    if !read_line_capped(&mut reader, &mut buf) {
        return;
    }
    let _ = first.send(String::from_utf8_lossy(&buf).into_owned());
    drop(first);
    while read_line_capped(&mut reader, &mut buf) {
        let line = String::from_utf8_lossy(&buf);
        let line: String = line.chars().take(LINE_CHARS).collect();
        tracing::warn!(
            target: "plg::plugin",
            plugin = label_of(label),
            "wrote to stdout after its handshake (use stderr): {}",
            untrusted::escape(&line)
        );
    }
}

/// Forwards stderr lines to `tracing` (JSON lines in hclog's or tracing's shape keep their
/// level) and keeps the tail.
fn forward_stderr(err: std::process::ChildStderr, tail: &Tail, label: &Label) {
    let mut reader = BufReader::new(err);
    let mut buf = Vec::new();
    while read_line_capped(&mut reader, &mut buf) {
        let plugin = label_of(label);
        let raw = String::from_utf8_lossy(&buf);
        let (level, message) = parse_log_line(&raw);
        // Cut before escaping: escaping can only make it longer.
        let message: String = message.chars().take(LINE_CHARS).collect();
        let message = untrusted::escape(&message).into_owned();
        match level {
            tracing::Level::ERROR => tracing::error!(target: "plg::plugin", plugin, "{message}"),
            tracing::Level::WARN => tracing::warn!(target: "plg::plugin", plugin, "{message}"),
            tracing::Level::DEBUG => tracing::debug!(target: "plg::plugin", plugin, "{message}"),
            tracing::Level::TRACE => tracing::trace!(target: "plg::plugin", plugin, "{message}"),
            _ => tracing::info!(target: "plg::plugin", plugin, "{message}"),
        }
        tail.push(message);
    }
    tail.close();
}

/// The level and message of one stderr line: hclog's JSON (`@level`, `@message`), tracing's
/// JSON (`level`, `fields.message`), or plain text (info).
fn parse_log_line(line: &str) -> (tracing::Level, String) {
    let plain = (tracing::Level::INFO, line.to_owned());
    if !line.starts_with('{') {
        return plain;
    }
    let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(line) else {
        return plain;
    };
    let level = m
        .get("@level")
        .or_else(|| m.get("level"))
        .and_then(|v| v.as_str())
        .unwrap_or("info")
        .to_ascii_lowercase();
    let message = m
        .get("@message")
        .or_else(|| m.get("fields").and_then(|f| f.get("message")))
        .or_else(|| m.get("message"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| line.to_owned());
    let level = match level.as_str() {
        "error" => tracing::Level::ERROR,
        "warn" | "warning" => tracing::Level::WARN,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    (level, message)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_keep_their_level_in_each_shape() {
        let (l, m) = parse_log_line(r#"{"@level":"warn","@message":"low disk","@module":"x"}"#);
        assert_eq!((l, m.as_str()), (tracing::Level::WARN, "low disk"));
        let (l, m) = parse_log_line(r#"{"level":"ERROR","fields":{"message":"boom"}}"#);
        assert_eq!((l, m.as_str()), (tracing::Level::ERROR, "boom"));
        let (l, m) = parse_log_line("plain text");
        assert_eq!((l, m.as_str()), (tracing::Level::INFO, "plain text"));
    }
}

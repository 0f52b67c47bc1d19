//! What a plugin process writes: its first stdout line (the handshake), the rest of stdout
//! (which should carry nothing, so it is logged as a warning), and stderr, forwarded to
//! `tracing` with its tail kept for error messages. All of it untrusted: lines are capped,
//! cut and escaped here.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader, Read},
    process::{ChildStderr, ChildStdout},
    sync::{mpsc, Arc, Condvar, Mutex, OnceLock},
    time::{Duration, Instant},
};

use crate::untrusted;

/// The longest line read from a plugin's stdout or stderr; the rest of a longer line is
/// skipped (a plugin cannot make the host buffer without bound).
const MAX_LINE_BYTES: usize = 8192;
/// Lines of stderr kept for error messages.
const TAIL_LINES: usize = 20;
/// Characters kept of each stderr line.
pub(super) const LINE_CHARS: usize = 400;

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

/// The plugin a process's output is logged under; a spare gets it when it is taken.
pub(super) type Label = Arc<OnceLock<String>>;

fn label_of(label: &Label) -> &str {
    label.get().map_or("(spare worker)", String::as_str)
}

/// Where a process's first stdout line comes from.
pub(super) enum FirstLine {
    /// A thread reads stdout and logs anything after the first line (exec plugins).
    Thread(mpsc::Receiver<String>),
    /// The starting thread reads it itself, one wakeup sooner (plg-worker, which closes
    /// its stdout after the line: nothing follows it).
    Pipe(ChildStdout),
}

/// Why no first line came.
pub(super) enum NoLine {
    /// Not within the time given.
    Timeout,
    /// stdout closed first: the process is exiting.
    Closed,
}

/// Starts forwarding `child`'s stderr (its tail kept), and readies the reading of its first
/// stdout line: on a thread of its own, or by the caller when `read_here`.
pub(super) fn watch(
    child: &mut std::process::Child,
    label: &Label,
    read_here: bool,
) -> (Arc<Tail>, FirstLine) {
    let tail = Arc::new(Tail::default());
    if let Some(err) = child.stderr.take() {
        let (tail, label) = (tail.clone(), label.clone());
        std::thread::Builder::new()
            .name("plg-worker-stderr".into())
            .spawn(move || forward_stderr(err, &tail, &label))
            .ok();
    } else {
        tail.close();
    }
    let (line_tx, line_rx) = mpsc::channel();
    let first = match child.stdout.take() {
        Some(out) if read_here => FirstLine::Pipe(out),
        Some(out) => {
            let label = label.clone();
            std::thread::Builder::new()
                .name("plg-worker-stdout".into())
                .spawn(move || read_stdout(out, line_tx, &label))
                .ok();
            FirstLine::Thread(line_rx)
        }
        None => FirstLine::Thread(line_rx),
    };
    (tail, first)
}

impl FirstLine {
    /// The first line, waiting at most `timeout`. A line cut short by the end of the stream
    /// counts as a line, as a reader thread would send it.
    pub(super) fn wait(&mut self, timeout: Duration) -> Result<String, NoLine> {
        match self {
            FirstLine::Thread(rx) => rx.recv_timeout(timeout).map_err(|e| match e {
                mpsc::RecvTimeoutError::Timeout => NoLine::Timeout,
                mpsc::RecvTimeoutError::Disconnected => NoLine::Closed,
            }),
            FirstLine::Pipe(out) => read_first_line(out, timeout),
        }
    }
}

/// Reads `out` up to its first newline, for at most `timeout`, capped as
/// [`read_line_capped`] caps every line.
fn read_first_line(out: &mut ChildStdout, timeout: Duration) -> Result<String, NoLine> {
    let mut timed = Deadlined {
        out,
        // No deadline if the timeout is past what a clock can hold.
        deadline: Instant::now().checked_add(timeout),
        timed_out: false,
    };
    let mut line = Vec::new();
    let read = read_line_capped(&mut BufReader::new(&mut timed), &mut line);
    match (read, timed.timed_out) {
        (true, _) => Ok(String::from_utf8_lossy(&line).into_owned()),
        (false, true) => Err(NoLine::Timeout),
        (false, false) => Err(NoLine::Closed),
    }
}

/// A pipe whose reads wait no later than `deadline`; one past it fails, and says so.
struct Deadlined<'a> {
    out: &'a mut ChildStdout,
    deadline: Option<Instant>,
    timed_out: bool,
}

impl Read for Deadlined<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use rustix::event::{poll, PollFd, PollFlags};
        loop {
            let left = match self.deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        self.timed_out = true;
                        return Err(std::io::ErrorKind::TimedOut.into());
                    }
                    rustix::time::Timespec::try_from(left).ok()
                }
                None => None,
            };
            let mut fds = [PollFd::new(&*self.out, PollFlags::IN)];
            match poll(&mut fds, left.as_ref()) {
                Ok(0) | Err(rustix::io::Errno::INTR) => continue,
                Ok(_) => return self.out.read(buf),
                Err(e) => return Err(e.into()),
            }
        }
    }
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
fn read_stdout(out: ChildStdout, first: mpsc::Sender<String>, label: &Label) {
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
fn forward_stderr(err: ChildStderr, tail: &Tail, label: &Label) {
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

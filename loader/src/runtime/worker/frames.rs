//! Calls over a worker's frames socket (`plg_protocol::frames`): the caller's own thread
//! writes the call and blocks reading the reply, on a connection of its own from a pool. No
//! HTTP/2 and no hop through the I/O runtime: one wakeup each way, as in a bare ping-pong.
//! Each new connection first reads the worker's hello (its `Describe`).

use std::{
    io::{self, Read, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use plg_api::Context;
use plg_protocol::{
    frames::{decode_hello, decode_reply, encode_call, frame_len, read_frame, Reply},
    pb,
};

/// How often a caller waiting for a reply looks at its context's cancellation flag.
const POLL: Duration = Duration::from_millis(10);
/// How long a caller spins on a non-blocking read before it blocks: a short call's reply
/// then costs no wakeup of the caller's thread (on this 2-core VM a wakeup is tens of µs).
const SPIN: Duration = Duration::from_micros(50);

/// A worker's frames socket and its idle connections.
pub(super) struct Frames {
    socket: PathBuf,
    idle: Mutex<Vec<UnixStream>>,
    next_id: AtomicU64,
    /// How long a new connection waits for the hello.
    hello_timeout: Duration,
    /// The plugin the first hello named: every later connection must name it too.
    describe: pb::DescribeResponse,
}

/// How a frames call ended short of a reply.
pub(super) enum Stop {
    /// The deadline passed; the connection still owes the reply.
    Deadline(UnixStream, u64),
    /// The context was cancelled; the connection still owes the reply.
    Cancelled(UnixStream, u64),
    /// The worker answered that the deadline passed (the connection is back in the pool), or
    /// it passed before the call could be sent.
    DeadlineReplied,
    /// The connection failed: the worker is gone, or the reply was malformed.
    Broken(String),
}

impl Frames {
    /// Reads the hello of the first connection to `socket`: the worker's `Describe`, which
    /// the caller checks against the manifest. The first connection is `inherited` (made
    /// before the worker started, PROTOCOL.md "Frames") when the worker put its hello there
    /// before its handshake line, as plg-worker does; a new one otherwise.
    pub(super) fn open(
        socket: PathBuf,
        hello_timeout: Duration,
        inherited: Option<UnixStream>,
    ) -> io::Result<Self> {
        let waiting = inherited
            .map(|conn| hello_waiting(conn, &socket, hello_timeout))
            .transpose()?
            .flatten();
        let (conn, describe) = match waiting {
            Some(opened) => opened,
            None => connect(&socket, hello_timeout)?,
        };
        Ok(Frames {
            socket,
            idle: Mutex::new(vec![conn]),
            next_id: AtomicU64::new(1),
            hello_timeout,
            describe,
        })
    }

    /// What the worker said about itself in its hello.
    pub(super) fn described(&self) -> &pb::DescribeResponse {
        &self.describe
    }

    /// An idle connection, or a new one (waiting for its hello no later than `deadline`).
    fn take(&self, deadline: Option<Instant>) -> io::Result<UnixStream> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        if let Some(conn) = idle {
            return Ok(conn);
        }
        let wait = deadline.map_or(self.hello_timeout, |d| {
            d.saturating_duration_since(Instant::now())
                .min(self.hello_timeout)
        });
        let (conn, describe) = connect(&self.socket, wait)?;
        if describe.name != self.describe.name || describe.version != self.describe.version {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a new connection's hello names another plugin",
            ));
        }
        Ok(conn)
    }

    /// Returns a connection whose reply has been read in full.
    pub(super) fn give_back(&self, conn: UnixStream) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
    }

    /// Makes the call and waits for its reply, watching the deadline and cancellation.
    /// With `spin`, the caller spins briefly for the reply before it blocks ([`SPIN`]); the
    /// supervisor asks for it only when this is the one call in flight, since spinning
    /// callers would take the cores the worker needs.
    pub(super) fn call(
        &self,
        ctx: &Context,
        deadline: Option<Instant>,
        spin_first: bool,
    ) -> Result<pb::ExecuteResponse, Stop> {
        let broken = |e: io::Error| Stop::Broken(e.to_string());
        let mut conn = self.take(deadline).map_err(|e| match deadline {
            // The deadline passed while a new connection waited for its hello: the call was
            // never sent.
            Some(d) if Instant::now() >= d => Stop::DeadlineReplied,
            _ => broken(e),
        })?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = pb::ExecuteRequest {
            values: Some(plg_protocol::to_wire(ctx.values())),
            label: ctx.label().to_owned(),
        };
        let mut buf = Vec::new();
        encode_call(id, ctx.remaining(), &request, &mut buf);
        // A worker that stops reading cannot block the caller past its deadline (or, without
        // one, past a minute): the write fails, and the caller learns why.
        let write_for = ctx.remaining().unwrap_or(Duration::from_secs(60));
        conn.set_write_timeout(Some(write_for.max(Duration::from_millis(1))))
            .map_err(broken)?;
        conn.write_all(&buf).map_err(broken)?;
        buf.clear();
        let spun = if spin_first {
            spin(&mut conn, &mut buf).map_err(broken)?
        } else {
            None
        };
        let mut timeout = None;
        let body = loop {
            if let Some(body) = spun {
                break body;
            }
            let slice = deadline.map_or(POLL, |d| {
                d.saturating_duration_since(Instant::now())
                    .clamp(Duration::from_micros(1), POLL)
            });
            if timeout != Some(slice) {
                conn.set_read_timeout(Some(slice)).map_err(broken)?;
                timeout = Some(slice);
            }
            match read_some(&mut conn, &mut buf) {
                Ok(Some(body)) => break body,
                Ok(None) => {}
                Err(e) => return Err(broken(e)),
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Stop::Deadline(conn, id));
            }
            if ctx.is_cancelled() {
                return Err(Stop::Cancelled(conn, id));
            }
        };
        match decode_reply(&body) {
            Ok((got, _)) if got != id => Err(Stop::Broken(format!(
                "the reply is for call {got}, not {id}"
            ))),
            Ok((_, Reply::Response(response))) => {
                self.give_back(conn);
                Ok(response)
            }
            Ok((_, Reply::DeadlineExceeded)) => {
                self.give_back(conn);
                Err(Stop::DeadlineReplied)
            }
            Ok((_, Reply::Error(message))) => Err(Stop::Broken(message)),
            Err(e) => Err(Stop::Broken(e.to_string())),
        }
    }
}

/// Connects to `socket` and reads the hello frame, waiting at most `timeout` for it.
fn connect(socket: &Path, timeout: Duration) -> io::Result<(UnixStream, pb::DescribeResponse)> {
    let conn = UnixStream::connect(socket)?;
    read_hello(conn, socket, timeout)
}

/// The hello on `conn`, a connection made before the worker started, if the worker wrote
/// one there: it does so before its handshake line, which the caller has read, so a hello
/// that is not waiting now will not come (a wrapper kept the worker from this connection).
fn hello_waiting(
    conn: UnixStream,
    socket: &Path,
    timeout: Duration,
) -> io::Result<Option<(UnixStream, pb::DescribeResponse)>> {
    use rustix::net::RecvFlags;
    let mut first = [0u8; 1];
    match rustix::net::recv(&conn, &mut first, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
        Ok((_, 1)) => read_hello(conn, socket, timeout).map(Some),
        // Nothing (would block), or closed: connect instead.
        Ok(_) | Err(_) => Ok(None),
    }
}

/// Reads the hello frame on `conn`, waiting at most `timeout` for it.
fn read_hello(
    mut conn: UnixStream,
    socket: &Path,
    timeout: Duration,
) -> io::Result<(UnixStream, pb::DescribeResponse)> {
    conn.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
    let mut body = Vec::new();
    let read = read_frame(&mut conn, &mut body).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no hello from {} within {timeout:?}",
                crate::untrusted::escape(&socket.display().to_string())
            ),
        ),
        _ => e,
    })?;
    if !read {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the worker closed the connection before its hello",
        ));
    }
    let describe =
        decode_hello(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    conn.set_read_timeout(None)?;
    Ok((conn, describe))
}

/// Waits up to `grace` for the reply a stopped call's connection still owes; `true` (and the
/// connection is back in the pool) if it came.
pub(super) fn drain(frames: &Frames, mut conn: UnixStream, grace: Duration) -> bool {
    // A grace past any clock's reach is as good as a century.
    let until = Instant::now() + grace.min(Duration::from_secs(100 * 365 * 86_400));
    let mut buf = Vec::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || conn.set_read_timeout(Some(left)).is_err() {
            return false;
        }
        match read_some(&mut conn, &mut buf) {
            Ok(Some(_)) => {
                frames.give_back(conn);
                return true;
            }
            Ok(None) => {}
            Err(_) => return false,
        }
    }
}

/// Reads without blocking for up to [`SPIN`]; `Some(body)` if the reply came meanwhile.
fn spin(conn: &mut UnixStream, buf: &mut Vec<u8>) -> io::Result<Option<Vec<u8>>> {
    conn.set_nonblocking(true)?;
    let until = Instant::now() + SPIN;
    let got = loop {
        match read_some(conn, buf) {
            Ok(Some(body)) => break Ok(Some(body)),
            Ok(None) if Instant::now() < until => std::hint::spin_loop(),
            Ok(None) => break Ok(None),
            Err(e) => break Err(e),
        }
    };
    conn.set_nonblocking(false)?;
    got
}

/// Reads what is available into `buf`; `Some(body)` once a whole frame is there, `None` when
/// the read timed out first.
fn read_some(conn: &mut UnixStream, buf: &mut Vec<u8>) -> io::Result<Option<Vec<u8>>> {
    if let Some(body) = take_frame(buf)? {
        return Ok(Some(body));
    }
    let mut chunk = [0u8; 8192];
    match conn.read(&mut chunk) {
        Ok(0) => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the worker closed the connection",
        )),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            take_frame(buf)
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The first whole frame's body in `buf`, removed from it.
fn take_frame(buf: &mut Vec<u8>) -> io::Result<Option<Vec<u8>>> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = frame_len(buf[..4].try_into().expect("4 bytes"))?;
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let body = buf[4..4 + len].to_vec();
    buf.drain(..4 + len);
    Ok(Some(body))
}

//! The frames socket (`plg_protocol::frames`): calls without HTTP/2. Each connection has a
//! thread of its own, which reads a call, runs the plugin on that same thread, and writes the
//! reply: one wakeup each way, as in a bare socket ping-pong. Cancellation arrives through
//! the `Cancel` RPC, which finds the call here by its id. Every connection opens with the
//! hello frame (the plugin's `Describe`).

use std::{
    collections::HashMap,
    io::Write,
    os::unix::net::{UnixListener, UnixStream},
    sync::{atomic::AtomicBool, Arc, Mutex},
};

use plg_api::{CancelToken, Context};
use plg_loader::Plugin;
use plg_protocol::{
    frames::{decode_call, encode_reply, read_frame, Reply},
    from_wire, pb,
};

/// The calls running on frames connections, by id: their cancel token and whether they
/// finished.
pub(crate) type Running = Arc<Mutex<HashMap<u64, (CancelToken, Arc<AtomicBool>)>>>;

/// Accepts connections on `listener` until the process exits.
pub(crate) fn accept(listener: UnixListener, plugin: Plugin, running: Running, hello: Arc<[u8]>) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        open(conn, &hello, &plugin, &running);
    }
}

/// Says hello on `conn` and serves it on a thread of its own.
pub(crate) fn open(mut conn: UnixStream, hello: &[u8], plugin: &Plugin, running: &Running) {
    if conn.write_all(hello).is_err() {
        return;
    }
    let (plugin, running) = (plugin.clone(), running.clone());
    let spawned = std::thread::Builder::new()
        .name("plg-worker-frames".into())
        .spawn(move || serve(conn, &plugin, &running));
    if let Err(e) = spawned {
        tracing::error!("cannot start a thread for a frames connection: {e}");
    }
}

fn serve(mut conn: UnixStream, plugin: &Plugin, running: &Running) {
    let (mut body, mut out) = (Vec::new(), Vec::new());
    while let Ok(true) = read_frame(&mut conn, &mut body) {
        let (id, reply) = match decode_call(&body) {
            Ok((id, timeout, request)) => (id, call(plugin, running, id, timeout, request)),
            Err(e) => {
                tracing::error!("{e}; closing the connection");
                return;
            }
        };
        out.clear();
        encode_reply(id, &reply, &mut out);
        if conn.write_all(&out).is_err() {
            return;
        }
    }
}

fn call(
    plugin: &Plugin,
    running: &Running,
    id: u64,
    timeout: Option<std::time::Duration>,
    request: pb::ExecuteRequest,
) -> Reply {
    let values = match from_wire(request.values.unwrap_or_default()) {
        Ok(v) => v,
        Err(e) => return Reply::Error(e.to_string()),
    };
    let mut ctx = Context::from_values(values).with_label(request.label);
    if let Some(timeout) = timeout {
        ctx.set_timeout(timeout);
    }
    let finished = Arc::new(AtomicBool::new(false));
    let lock = || running.lock().unwrap_or_else(|e| e.into_inner());
    lock().insert(id, (ctx.cancel_token().clone(), finished.clone()));
    let result = plugin.execute(&mut ctx);
    finished.store(true, std::sync::atomic::Ordering::Release);
    lock().remove(&id);
    match crate::reply::outcome(result, &ctx) {
        Ok(outcome) => Reply::Response(pb::ExecuteResponse {
            outcome: Some(outcome),
        }),
        Err(status) if status.code() == tonic::Code::DeadlineExceeded => Reply::DeadlineExceeded,
        Err(status) => Reply::Error(status.message().to_owned()),
    }
}

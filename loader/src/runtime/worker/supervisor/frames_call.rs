//! A call over a worker's frames socket, on the caller's thread, and what happens when it
//! stops short (deadline, cancellation, a broken connection).

use std::{sync::atomic::Ordering, sync::Arc, time::Instant};

use plg_api::Context;
use plg_protocol::pb;

use super::{Inner, Live, WorkerRuntime};
use crate::{
    error::ExecError,
    runtime::{
        plugin::Outcome,
        worker::{
            client,
            frames::{self, Frames, Stop},
            reply::apply,
        },
    },
};

impl WorkerRuntime {
    /// A call over the frames socket, on the caller's thread.
    pub(super) fn execute_frames(
        &self,
        id: &str,
        ctx: &mut Context,
        live: &Arc<Live>,
        frames: &Frames,
    ) -> Outcome {
        let inner = &self.inner;
        let deadline = ctx.remaining().map(|r| Instant::now() + r);
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return Err(Box::new(ExecError::DeadlineExceeded {
                plugin: id.to_owned(),
            }));
        }
        let alone = inner.in_flight.load(Ordering::Acquire) <= 1;
        match frames.call(ctx, deadline, alone) {
            Ok(response) => apply(id, ctx, response),
            Err(Stop::DeadlineReplied) => Err(Box::new(ExecError::DeadlineExceeded {
                plugin: id.to_owned(),
            })),
            Err(stop @ (Stop::Deadline(..) | Stop::Cancelled(..))) => {
                let (conn, call_id, error) = match stop {
                    Stop::Deadline(conn, call_id) => (
                        conn,
                        call_id,
                        ExecError::DeadlineExceeded {
                            plugin: id.to_owned(),
                        },
                    ),
                    Stop::Cancelled(conn, call_id) => (
                        conn,
                        call_id,
                        ExecError::Cancelled {
                            plugin: id.to_owned(),
                        },
                    ),
                    _ => unreachable!("matched above"),
                };
                inner.cancel_frames_call(live.clone(), conn, call_id);
                Err(Box::new(error))
            }
            Err(Stop::Broken(message)) => Err(Box::new(
                inner.crashed(live, crate::untrusted::escape(&message).into_owned()),
            )),
        }
    }
}

impl Inner {
    /// A frames call stopped short: tell the worker (`Cancel`), then wait the kill grace for
    /// the reply the connection owes; a worker that does not give it is killed.
    fn cancel_frames_call(
        self: &Arc<Self>,
        live: Arc<Live>,
        conn: std::os::unix::net::UnixStream,
        call_id: u64,
    ) {
        let mut client = live.client().plugin.clone();
        let grace = self.policy.kill_grace;
        client::runtime().spawn(async move {
            let cancel = client.cancel(pb::CancelRequest { call_id });
            let _ = tokio::time::timeout(grace, cancel).await;
        });
        self.watch_overrun(live, move |live, grace| {
            live.frames
                .as_ref()
                .is_some_and(|frames| frames::drain(frames, conn, grace))
        });
    }
}

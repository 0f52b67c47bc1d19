//! The gRPC service `plg.v1.Plugin`: `Describe`, `Execute` (for a host that does not use the
//! frames socket), `Cancel` for frames calls, and `Shutdown`.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use plg_api::{CancelToken, Context};
use plg_loader::Plugin;
use plg_protocol::{from_wire, parse_grpc_timeout, pb, pb::plugin_server::Plugin as PluginService};
use tokio::sync::Notify;
use tonic::{Request, Response, Status};

pub(crate) struct Service {
    pub(crate) plugin: Plugin,
    pub(crate) shutdown: Arc<Notify>,
    pub(crate) describe: pb::DescribeResponse,
    pub(crate) running: crate::frames::Running,
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
        Ok(Response::new(self.describe.clone()))
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

//! The gRPC side of a worker: one tokio runtime for every worker of the process, a channel
//! per worker over its Unix socket, and calls that a synchronous caller waits for.

use std::{
    path::{Path, PathBuf},
    sync::{mpsc, OnceLock},
    time::Duration,
};

use plg_protocol::{
    pb::{self, plugin_client::PluginClient},
    MAX_MESSAGE_BYTES,
};
use tonic::transport::{Channel, Endpoint, Uri};
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

/// The runtime every worker's connection runs on: two threads, started at the first worker.
pub(super) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("plg-worker-io")
            .enable_all()
            .build()
            .expect("cannot start plg's worker I/O runtime")
    })
}

/// Runs `future` on the worker runtime and waits for it from this (synchronous) thread,
/// which may itself be a tokio thread of the host's: the wait is a channel, not `block_on`.
pub(super) fn wait<T: Send + 'static>(
    future: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv().expect("the worker runtime dropped a task")
}

/// A connection to one worker.
#[derive(Clone)]
pub(super) struct Client {
    pub(super) plugin: PluginClient<Channel>,
    pub(super) health: HealthClient<Channel>,
}

/// The channel's endpoint; its connector dials `socket` (the URI is required by tonic and
/// ignored).
fn endpoint(
    socket: &Path,
    timeout: Duration,
) -> (
    Endpoint,
    impl tower::Service<
            Uri,
            Response = hyper_util::rt::TokioIo<tokio::net::UnixStream>,
            Error = std::io::Error,
            Future = impl Send,
        > + Clone
        + Send
        + 'static,
) {
    let socket: PathBuf = socket.to_owned();
    let connector = tower::service_fn(move |_: Uri| {
        let socket = socket.clone();
        async move {
            let stream = tokio::net::UnixStream::connect(socket).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    (
        Endpoint::from_static("http://plg-worker").connect_timeout(timeout),
        connector,
    )
}

fn client(channel: Channel) -> Client {
    let plugin = PluginClient::new(channel.clone())
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    Client {
        plugin,
        health: HealthClient::new(channel),
    }
}

/// Connects to the worker serving on `socket`.
pub(super) fn connect(socket: &Path, timeout: Duration) -> Result<Client, String> {
    let (endpoint, connector) = endpoint(socket, timeout);
    wait(async move {
        let channel = endpoint
            .connect_with_connector(connector)
            .await
            .map_err(|e| format!("cannot connect to its socket: {e}"))?;
        Ok(client(channel))
    })
}

/// A client for the worker serving on `socket` that connects at its first call (a failed
/// connection fails that call).
pub(super) fn lazy(socket: &Path) -> Client {
    let (endpoint, connector) = endpoint(socket, Duration::from_secs(5));
    let _runtime = runtime().enter();
    client(endpoint.connect_with_connector_lazy(connector))
}

impl Client {
    /// `Describe`, with a timeout.
    pub(super) fn describe(&self, timeout: Duration) -> Result<pb::DescribeResponse, String> {
        let mut client = self.plugin.clone();
        wait(async move {
            let mut request = tonic::Request::new(pb::DescribeRequest {});
            request.set_timeout(timeout);
            // The whole call is bounded, not only the wait for its headers.
            match tokio::time::timeout(timeout, client.describe(request)).await {
                Ok(Ok(r)) => Ok(r.into_inner()),
                Ok(Err(s)) => Err(format!(
                    "Describe failed: {}",
                    crate::untrusted::escape(&s.message().chars().take(400).collect::<String>())
                )),
                Err(_) => Err(format!("Describe did not answer within {timeout:?}")),
            }
        })
    }

    /// `Shutdown`; `true` if the worker acknowledged it within `timeout`.
    pub(super) fn shutdown(&self, timeout: Duration) -> bool {
        let mut client = self.plugin.clone();
        wait(async move {
            let mut request = tonic::Request::new(pb::ShutdownRequest {});
            request.set_timeout(timeout);
            tokio::time::timeout(timeout, client.shutdown(request))
                .await
                .is_ok_and(|r| r.is_ok())
        })
    }

    /// The standard health check; `true` when the worker says `SERVING`.
    pub(super) fn healthy(&self, timeout: Duration) -> bool {
        let mut health = self.health.clone();
        wait(async move {
            let request = HealthCheckRequest {
                service: String::new(),
            };
            match tokio::time::timeout(timeout, health.check(request)).await {
                Ok(Ok(r)) => r.into_inner().status == ServingStatus::Serving as i32,
                _ => false,
            }
        })
    }
}

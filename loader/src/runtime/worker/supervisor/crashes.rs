//! A supervised worker's crashes: how each is recorded (the restart backoff, the failed state
//! after too many), what callers get, and killing a worker whose call overran.

use std::{
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use super::{Inner, Live, State};
use crate::error::ExecError;

impl Inner {
    pub(super) fn failed_error(&self, state: &State) -> ExecError {
        ExecError::WorkerFailed {
            plugin: self.id.clone(),
            crashes: state.crashes.len() as u32,
            window: self.policy.crash_window,
            stderr: state
                .last_crash
                .as_ref()
                .map(|c| c.2.clone())
                .unwrap_or_default(),
        }
    }

    /// The call failed at the transport: if the worker died, record the crash and say how.
    pub(super) fn crashed(&self, live: &Arc<Live>, message: String) -> ExecError {
        let status = live
            .process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .wait_for_exit(Duration::from_millis(500));
        let mut state = self.lock();
        if let Some((generation, status, stderr)) = &state.last_crash {
            if *generation == live.generation {
                return ExecError::WorkerCrashed {
                    plugin: self.id.clone(),
                    status: status.clone(),
                    stderr: stderr.clone(),
                };
            }
        }
        let Some(status) = status else {
            return ExecError::Worker {
                plugin: self.id.clone(),
                message,
            };
        };
        let (status, stderr) = {
            let process = live.process.lock().unwrap_or_else(|e| e.into_inner());
            (
                process.describe_exit(&status),
                process.stderr.text(Duration::from_millis(500)),
            )
        };
        self.record_crash(&mut state, live, status.clone(), stderr.clone());
        ExecError::WorkerCrashed {
            plugin: self.id.clone(),
            status,
            stderr,
        }
    }

    pub(super) fn record_crash(
        &self,
        state: &mut State,
        live: &Arc<Live>,
        status: String,
        stderr: String,
    ) {
        // One worker's end is one crash, however many threads notice it; and a worker
        // stopped for unload did not crash.
        if state
            .last_crash
            .as_ref()
            .is_some_and(|c| c.0 == live.generation)
            || self.closing.load(Ordering::SeqCst)
        {
            return;
        }
        let now = Instant::now();
        if state
            .worker
            .as_ref()
            .is_some_and(|w| w.generation == live.generation)
        {
            state.worker = None;
        }
        state.last_crash = Some((live.generation, status, stderr));
        let window = self.policy.crash_window;
        while state
            .crashes
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            state.crashes.pop_front();
        }
        state.crashes.push_back(now);
        // A worker that ran for a whole window without crashing starts the backoff over.
        state.backoff = if live.started.elapsed() > window || state.backoff.is_zero() {
            self.policy.initial_backoff
        } else {
            (state.backoff * 2).min(self.policy.max_backoff)
        };
        state.next_start = Some(now + state.backoff);
        if state.crashes.len() as u32 >= self.policy.max_crashes {
            state.failed = true;
            tracing::error!(
                plugin = self.id,
                crashes = state.crashes.len(),
                "the worker crashed too often; calls fail until the plugin is reloaded"
            );
        }
    }

    /// A call that overran its deadline or was cancelled: if it is still running after the
    /// kill grace, the worker ignores cancellation, so it is killed (and restarted on the
    /// next call).
    pub(super) fn watch_overrun(
        self: &Arc<Self>,
        live: Arc<Live>,
        finished_within: impl FnOnce(&Live, Duration) -> bool + Send + 'static,
    ) {
        let grace = self.policy.kill_grace;
        let inner = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("plg-worker-overrun".into())
            .spawn(move || {
                if finished_within(&live, grace) {
                    return;
                }
                let Some(inner) = inner.upgrade() else { return };
                tracing::warn!(
                    plugin = inner.id,
                    "a call ignored its deadline or cancellation for {grace:?}; killing its worker"
                );
                inner.kill_as_crash(
                    &live,
                    "was killed: a call ignored its deadline or cancellation",
                );
            })
            .ok();
    }

    /// Kills `live` and records its end as a crash, with `status` as how it ended.
    pub(super) fn kill_as_crash(&self, live: &Arc<Live>, status: &str) {
        live.process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .kill();
        let mut state = self.lock();
        self.record_crash(&mut state, live, status.into(), String::new());
    }
}

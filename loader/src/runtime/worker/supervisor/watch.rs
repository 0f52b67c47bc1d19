//! The watch thread of a supervised worker (health checks, the idle timeout), and stopping a
//! worker.

use std::{
    sync::{atomic::Ordering, Weak},
    time::Duration,
};

use super::{Inner, Live};
use crate::runtime::worker::policy::{WorkerPolicy, WorkerStop};

/// Asks `live` to shut down; kills it if it does not exit within the grace period.
pub(super) fn stop(live: &Live, policy: &WorkerPolicy) -> WorkerStop {
    let asked = live.client().shutdown(policy.shutdown_grace);
    let mut process = live.process.lock().unwrap_or_else(|e| e.into_inner());
    if asked && process.wait_for_exit(policy.shutdown_grace).is_some() {
        WorkerStop::ShutDown
    } else {
        process.kill();
        WorkerStop::Killed
    }
}

/// Health checks and the idle timeout, until the runtime is dropped.
pub(super) fn watch(inner: Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let policy = &strong.policy;
        let tick = [policy.health_interval, policy.idle_timeout.map(|t| t / 4)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_millis(10));
        drop(strong);
        std::thread::sleep(tick);
        let Some(inner) = inner.upgrade() else { return };
        // Closing: an unload is draining it. Not `return`: an unload that ends in `Busy`
        // lets calls in again, and they still need health checks and the idle timeout. The
        // thread ends when the runtime is dropped.
        if inner.closing.load(Ordering::Acquire) {
            continue;
        }
        let live = inner.lock().worker.clone();
        let Some(live) = live else { continue };
        if let Some(idle) = inner.policy.idle_timeout {
            let last = inner.lock().last_call;
            if inner.in_flight.load(Ordering::Acquire) == 0
                && last.is_none_or(|t| t.elapsed() >= idle)
            {
                let mut state = inner.lock();
                if state
                    .worker
                    .as_ref()
                    .is_some_and(|w| w.generation == live.generation)
                {
                    state.worker = None;
                    drop(state);
                    tracing::debug!(plugin = inner.id, "stopping its idle worker");
                    stop(&live, &inner.policy);
                    continue;
                }
            }
        }
        if inner.policy.health_interval.is_some()
            && !live.client().healthy(tick.max(Duration::from_secs(1)))
        {
            tracing::warn!(
                plugin = inner.id,
                "its worker failed a health check; restarting it"
            );
            inner.kill_as_crash(&live, "failed its health check");
        }
    }
}

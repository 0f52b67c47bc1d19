//! The manager's side of call hooks and metrics: adding hooks, turning metrics off, and
//! reading the figures.

use std::sync::Arc;

use semver::Version;

use super::{
    hooks::CallHook,
    manager::PluginManager,
    metrics::{render_prometheus, CallMetrics, PluginMetrics},
    plugin::CallSite,
};

impl PluginManager {
    /// Adds a host-side hook around every call of every plugin this manager loads from now
    /// on ([`CallHook`]). Add hooks before loading: plugins loaded earlier keep the hooks
    /// they were loaded with.
    pub fn with_call_hook(mut self, hook: impl CallHook) -> Self {
        self.hooks = self.hooks.with(Arc::new(hook));
        self
    }

    /// Turns call metrics on (the default) or off, for plugins loaded from now on. With
    /// metrics off, a call with no hooks reads no clock and counts nothing.
    pub fn with_metrics(mut self, on: bool) -> Self {
        self.metrics = on.then(Default::default);
        self
    }

    /// Measures the latency of about one call in `every` per thread ([`SAMPLE_EVERY`](crate::SAMPLE_EVERY) by default;
    /// 1 times every call, at the cost of two clock reads per call). `every` is rounded up to
    /// a power of two (so choosing a call is a mask, not a division), and calls are chosen
    /// from a scrambled count, so a plugin whose calls alternate with another's on one
    /// thread is still sampled. Calls and errors are always counted exactly.
    pub fn with_latency_sampling(mut self, every: u32) -> Self {
        self.sample_every = every.max(1).checked_next_power_of_two().unwrap_or(1 << 31);
        self
    }

    /// What wraps calls to a newly loaded instance of `name@version`.
    pub(super) fn call_site(&self, name: &str, version: &Version) -> CallSite {
        let metrics = self.metrics.as_ref().map(|all| {
            let mut all = all.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(
                all.entry((name.to_owned(), version.clone()))
                    .or_insert_with(|| Arc::new(CallMetrics::default())),
            )
        });
        // Hooks get every duration; metrics one in `sample_every`; with neither, the clock is
        // read once in 2^32 calls of a thread, for nothing (cheaper than a second test).
        let timing_mask = match (self.hooks.is_empty(), metrics.is_some()) {
            (false, _) => 0,
            (true, true) => self.sample_every - 1,
            (true, false) => u32::MAX,
        };
        CallSite {
            hooks: self.hooks.clone(),
            metrics,
            timing_mask,
        }
    }

    /// The call metrics of every loaded plugin version, measured at the host boundary, by
    /// name and version. Empty when metrics are off. A version hot-upgraded in place (a
    /// rebuild) continues its series; a new version starts its own.
    pub fn metrics(&self) -> Vec<PluginMetrics> {
        self.plugins()
            .iter()
            .filter_map(|p| p.instance().metrics())
            .collect()
    }

    /// [`metrics`](Self::metrics) as Prometheus text, for a `/metrics` endpoint.
    pub fn prometheus(&self) -> String {
        render_prometheus(&self.metrics())
    }
}

//! Call metrics, measured at the host boundary: a plugin is a `cdylib` with its own copy of
//! every static (any metrics crate's registry included), so it cannot see the host's. The
//! host counts around each `execute`, per plugin and version.
//!
//! Every call is counted, every failure by kind, in the calling thread's own stripe of the
//! counters: a plain load and store on a cache line no other thread writes (threads beyond
//! [`STRIPES`] share one stripe, with atomic adds; see `threads`). Reading the clock
//! twice costs more than a no-op call, so the latency of one call in [`SAMPLE_EVERY`] per
//! thread is measured (every call when a hook is installed, since hooks get the duration):
//! the histogram, percentiles and maximum describe that sample. Calls in flight come from
//! the call gate that already counts them. Percentiles come from log-linear buckets (four
//! per power of two, so within 19% of the true value).

use std::{
    fmt,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Duration,
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
};

use super::threads::{SHARED_STRIPE, STRIPES};
use crate::error::ExecError;

/// By default, one call in this many, per thread, has its latency measured when no hook
/// needs it ([`PluginManager::with_latency_sampling`](crate::PluginManager::with_latency_sampling)).
pub const SAMPLE_EVERY: u32 = 64;

/// One thread's share of a version's call and error counts, on a cache line of its own.
#[repr(align(128))]
#[derive(Default)]
struct Stripe {
    calls: AtomicU64,
    errors: [AtomicU64; ERROR_KINDS.len()],
}

/// Adds one to a counter of `stripe`: a plain load and store when one thread owns the
/// stripe, an atomic add on the shared one.
#[inline]
fn bump(counter: &AtomicU64, stripe: usize) {
    if stripe < STRIPES {
        counter.store(counter.load(Relaxed).wrapping_add(1), Relaxed);
    } else {
        counter.fetch_add(1, Relaxed);
    }
}

/// Buckets per power of two.
const SUB: u32 = 4;
/// Smallest bucket bound: 2^6 ns = 64 ns. The last bucket holds everything from about 60 s.
const MIN_EXP: u32 = 6;
const BUCKETS: usize = 120;

/// The kinds of failed call, as [`PluginMetrics::errors`] lists them.
pub const ERROR_KINDS: [&str; 9] = [
    "error",
    "invalid_input",
    "invalid_output",
    "panic",
    "cancelled",
    "deadline",
    "rejected",
    "unloaded",
    "worker",
];

fn error_index(e: &ExecError) -> usize {
    match e {
        ExecError::Failed { .. } => 0,
        ExecError::InvalidInput { .. } => 1,
        ExecError::InvalidOutput { .. } => 2,
        ExecError::Panicked { .. } => 3,
        ExecError::Cancelled { .. } => 4,
        ExecError::DeadlineExceeded { .. } => 5,
        ExecError::Rejected { .. } => 6,
        ExecError::Unloaded { .. } => 7,
        ExecError::WorkerCrashed { .. }
        | ExecError::WorkerFailed { .. }
        | ExecError::Worker { .. } => 8,
    }
}

/// Every plugin version's counters, by name and version.
pub(crate) type MetricsByVersion = std::sync::Mutex<
    std::collections::BTreeMap<(String, semver::Version), std::sync::Arc<CallMetrics>>,
>;

/// The live counters of one plugin version. Shared by every instance of that version (a
/// rebuild hot-upgraded in place continues the same series).
pub(crate) struct CallMetrics {
    /// Indexed by thread stripe, the last one shared.
    stripes: Box<[Stripe; SHARED_STRIPE + 1]>,
    buckets: [AtomicU64; BUCKETS],
    sum_nanos: AtomicU64,
    max_nanos: AtomicU64,
}

impl fmt::Debug for CallMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallMetrics").finish_non_exhaustive()
    }
}

impl Default for CallMetrics {
    fn default() -> Self {
        Self {
            stripes: Box::new(std::array::from_fn(|_| Stripe::default())),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
            max_nanos: AtomicU64::new(0),
        }
    }
}

/// The bucket of a latency of `nanos`.
fn bucket_of(nanos: u64) -> usize {
    let min = 1u64 << MIN_EXP;
    if nanos <= min {
        return 0;
    }
    // Position in log2 with SUB steps per power of two: the exponent, plus the next
    // log2(SUB) bits of the mantissa.
    let exp = 63 - nanos.leading_zeros();
    let frac = ((nanos >> exp.saturating_sub(2)) & 0b11) as u32;
    let index = (exp - MIN_EXP) * SUB + frac + 1;
    (index as usize).min(BUCKETS - 1)
}

/// The upper bound, in nanoseconds, of bucket `i`.
fn bound_of(i: usize) -> u64 {
    if i == 0 {
        return 1 << MIN_EXP;
    }
    let i = i as u32 - 1;
    let exp = MIN_EXP + i / SUB;
    let frac = u64::from(i % SUB);
    // Bucket holds [2^exp * (1 + frac/4), 2^exp * (1 + (frac+1)/4)).
    (1u64 << exp) + ((1u64 << exp) >> 2) * (frac + 1)
}

impl CallMetrics {
    /// Counts one finished call whose latency was not measured, in the calling thread's
    /// `stripe`.
    #[inline]
    pub(crate) fn count(&self, stripe: usize, failure: Option<&ExecError>) {
        let s = &self.stripes[stripe.min(SHARED_STRIPE)];
        bump(&s.calls, stripe);
        if let Some(e) = failure {
            bump(&s.errors[error_index(e)], stripe);
        }
    }

    /// Counts one finished call and its latency.
    #[inline]
    pub(crate) fn record(&self, stripe: usize, elapsed: Duration, failure: Option<&ExecError>) {
        self.count(stripe, failure);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(nanos)].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
        if nanos > self.max_nanos.load(Relaxed) {
            self.max_nanos.fetch_max(nanos, Relaxed);
        }
    }

    pub(crate) fn snapshot(
        &self,
        plugin: &str,
        version: &semver::Version,
        in_flight: usize,
    ) -> PluginMetrics {
        let buckets: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        PluginMetrics {
            plugin: plugin.to_owned(),
            version: version.clone(),
            calls: self.stripes.iter().map(|s| s.calls.load(Relaxed)).sum(),
            timed: buckets.iter().sum(),
            errors: ERROR_KINDS
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    let n = self.stripes.iter().map(|s| s.errors[i].load(Relaxed)).sum();
                    ((*k).to_owned(), n)
                })
                .collect(),
            in_flight,
            total: Duration::from_nanos(self.sum_nanos.load(Relaxed)),
            max: Duration::from_nanos(self.max_nanos.load(Relaxed)),
            buckets,
        }
    }
}

/// A snapshot of one plugin version's call metrics ([`PluginManager::metrics`](crate::PluginManager::metrics)).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PluginMetrics {
    /// The plugin's name.
    pub plugin: String,
    /// Its version.
    pub version: semver::Version,
    /// Calls finished (successful or not), every one counted.
    pub calls: u64,
    /// How many of them had their latency measured (one in [`SAMPLE_EVERY`] per thread, or
    /// every call when a hook is installed): `total`, `max` and the percentiles describe these.
    pub timed: u64,
    /// Failed calls by kind (`error`, `invalid_input`, `invalid_output`, `panic`,
    /// `cancelled`, `deadline`, `rejected`, `unloaded`), every kind listed.
    pub errors: Vec<(String, u64)>,
    /// Calls running now.
    pub in_flight: usize,
    /// The time the timed calls took together.
    pub total: Duration,
    /// The slowest timed call.
    pub max: Duration,
    /// Call counts per latency bucket (internal layout; read it through the methods).
    buckets: Vec<u64>,
}

impl PluginMetrics {
    /// Failed calls of every kind together.
    pub fn failed(&self) -> u64 {
        self.errors.iter().fold(0, |a, (_, n)| a.saturating_add(*n))
    }

    /// The latency under which a share `q` (0.0 to 1.0) of calls finished: an upper bound,
    /// within 19% (the bucket width). `None` before the first call.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        // A snapshot read back from a file (`plg list --stats`) may not have this layout.
        if self.timed == 0 || self.buckets.len() != BUCKETS {
            return None;
        }
        let rank = ((self.timed as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, n) in self.buckets.iter().enumerate() {
            seen = seen.saturating_add(*n);
            if seen >= rank {
                // The last bucket has no upper bound but the slowest call.
                if i == BUCKETS - 1 {
                    return Some(self.max);
                }
                return Some(Duration::from_nanos(bound_of(i)).min(self.max));
            }
        }
        Some(self.max)
    }

    /// The median call.
    pub fn p50(&self) -> Option<Duration> {
        self.quantile(0.50)
    }

    /// The 90th percentile.
    pub fn p90(&self) -> Option<Duration> {
        self.quantile(0.90)
    }

    /// The 99th percentile.
    pub fn p99(&self) -> Option<Duration> {
        self.quantile(0.99)
    }
}

/// Renders snapshots as Prometheus text (OpenMetrics), with `prometheus-client`'s encoder:
/// `plg_calls_total`, `plg_call_errors_total{kind}`, `plg_calls_in_flight` and the
/// `plg_call_duration_seconds` histogram, each labelled with `plugin` and `version`.
pub fn render_prometheus(snapshots: &[PluginMetrics]) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(Snapshots(snapshots.to_vec())));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .expect("writing to a String cannot fail");
    out
}

#[derive(Debug)]
struct Snapshots(Vec<PluginMetrics>);

type Labels = Vec<(&'static str, String)>;

fn labels(m: &PluginMetrics) -> Labels {
    vec![
        ("plugin", m.plugin.clone()),
        ("version", m.version.to_string()),
    ]
}

impl Collector for Snapshots {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut calls = encoder.encode_descriptor(
            "plg_calls",
            "Calls to a plugin's execute that finished, measured by the host",
            None,
            MetricType::Counter,
        )?;
        for m in &self.0 {
            ConstCounter::new(m.calls).encode(calls.encode_family(&labels(m))?)?;
        }
        let mut errors = encoder.encode_descriptor(
            "plg_call_errors",
            "Failed calls by kind",
            None,
            MetricType::Counter,
        )?;
        for m in &self.0 {
            for (kind, n) in &m.errors {
                let mut l = labels(m);
                l.push(("kind", kind.clone()));
                ConstCounter::new(*n).encode(errors.encode_family(&l)?)?;
            }
        }
        let mut in_flight = encoder.encode_descriptor(
            "plg_calls_in_flight",
            "Calls running now",
            None,
            MetricType::Gauge,
        )?;
        for m in &self.0 {
            ConstGauge::new(m.in_flight as i64).encode(in_flight.encode_family(&labels(m))?)?;
        }
        let mut latency = encoder.encode_descriptor(
            "plg_call_duration_seconds",
            "How long calls took, measured by the host on a sample of calls",
            None,
            MetricType::Histogram,
        )?;
        for m in &self.0 {
            // Every fourth bound (powers of two), cumulative counts, as Prometheus expects.
            let mut buckets = Vec::new();
            let mut cumulative = 0;
            for (i, n) in m.buckets.iter().enumerate() {
                cumulative += n;
                if i % SUB as usize == 0 {
                    buckets.push((bound_of(i) as f64 / 1e9, cumulative));
                }
            }
            buckets.push((f64::INFINITY, m.timed));
            // The encoder wants per-bucket counts, and accumulates them itself.
            let mut previous = 0;
            let per_bucket: Vec<(f64, u64)> = buckets
                .into_iter()
                .map(|(le, c)| {
                    let n = c - previous;
                    previous = c;
                    (le, n)
                })
                .collect();
            latency
                .encode_family(&labels(m))?
                .encode_histogram::<Labels>(m.total.as_secs_f64(), m.calls, &per_bucket, None)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_latency_lands_in_a_bucket_whose_bound_covers_it() {
        for nanos in [
            0,
            1,
            64,
            65,
            100,
            999,
            1_000,
            12_345,
            1_000_000,
            5_000_000_000,
        ] {
            let b = bucket_of(nanos);
            assert!(bound_of(b) >= nanos || b == BUCKETS - 1, "{nanos} -> {b}");
            if b > 0 {
                assert!(
                    bound_of(b - 1) < nanos,
                    "{nanos} -> {b}: the bucket below covers it"
                );
            }
        }
    }

    #[test]
    fn percentiles_come_from_the_buckets() {
        let m = CallMetrics::default();
        for micros in 1..=100 {
            m.record(SHARED_STRIPE, Duration::from_micros(micros), None);
        }
        let s = m.snapshot("x", &semver::Version::new(1, 0, 0), 0);
        assert_eq!(s.calls, 100);
        let p50 = s.p50().unwrap().as_micros();
        assert!((50..=60).contains(&p50), "{p50}");
        assert_eq!(s.max, Duration::from_micros(100));
        assert!(s.p99().unwrap() <= s.max);
    }

    #[test]
    fn prometheus_text_has_every_family() {
        let m = CallMetrics::default();
        m.record(SHARED_STRIPE, Duration::from_micros(3), None);
        m.record(
            SHARED_STRIPE,
            Duration::from_micros(5),
            Some(&ExecError::Panicked {
                plugin: "x@1.0.0".into(),
                message: "boom".into(),
            }),
        );
        let text = render_prometheus(&[m.snapshot("x", &semver::Version::new(1, 0, 0), 1)]);
        for needle in [
            "plg_calls_total{plugin=\"x\",version=\"1.0.0\"} 2",
            "plg_call_errors_total{plugin=\"x\",version=\"1.0.0\",kind=\"panic\"} 1",
            "plg_calls_in_flight{plugin=\"x\",version=\"1.0.0\"} 1",
            "plg_call_duration_seconds_count{plugin=\"x\",version=\"1.0.0\"} 2",
            "plg_calls_total{plugin=\"x\",version=\"1.0.0\"} 2",
            "le=\"+Inf\"",
        ] {
            assert!(text.contains(needle), "no {needle} in\n{text}");
        }
    }
}

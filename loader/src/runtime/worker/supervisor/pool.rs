//! Several workers for one plugin (`WorkerPolicy::pool_size` > 1). Each member is a whole
//! supervised worker: it restarts, backs off, is marked failed, is health-checked and stops
//! when idle on its own. A call goes to the member with the fewest calls in flight, passing
//! over members marked failed while another is not; a crash fails only the calls in flight
//! on that member.

use std::{path::Path, sync::atomic::Ordering, time::Duration};

use plg_api::Context;

use super::{drain, WorkerRuntime};
use crate::{
    error::UnloadError,
    manifest::preflight::Unmappable,
    runtime::plugin::{Hook, Outcome, Runtime, UnloadReport},
    runtime::worker::WorkerStop,
};

#[derive(Debug)]
pub(super) struct Pool {
    members: Vec<WorkerRuntime>,
}

impl Pool {
    /// A pool of `members` (at least one).
    pub(super) fn new(members: Vec<WorkerRuntime>) -> Self {
        assert!(!members.is_empty(), "a pool has at least one worker");
        Pool { members }
    }

    /// The member the next call goes to.
    fn pick(&self) -> &WorkerRuntime {
        let load = |m: &WorkerRuntime| m.inner.in_flight.load(Ordering::Acquire);
        self.members
            .iter()
            .filter(|m| !m.failed())
            .min_by_key(|m| load(m))
            // Every member failed: the first one says so.
            .unwrap_or(&self.members[0])
    }
}

impl Runtime for Pool {
    fn execute(&self, id: &str, ctx: &mut Context) -> Outcome {
        self.pick().execute(id, ctx)
    }

    /// Drains every member first (no member stops while another still takes calls), then
    /// stops each. The report's `worker` is the worst of theirs: `Killed` if any was killed.
    fn unload(&self, id: &str, timeout: Duration) -> Result<UnloadReport, UnloadError> {
        let waited = drain(id, &self.members, timeout)?;
        let mut reports = self.members.iter().map(|m| m.stop_after_drain(id, waited));
        let mut report = reports.next().expect("a pool has at least one worker");
        for other in reports {
            let rank = |s: &Option<WorkerStop>| match s {
                Some(WorkerStop::Killed) => 2,
                Some(WorkerStop::ShutDown) => 1,
                _ => 0,
            };
            if rank(&other.worker) > rank(&report.worker) {
                report.worker = other.worker;
            }
        }
        Ok(report)
    }

    fn is_loaded(&self) -> bool {
        self.members.iter().all(|m| m.is_loaded())
    }

    fn in_flight(&self) -> usize {
        self.members.iter().map(|m| m.in_flight()).sum()
    }

    fn library_path(&self) -> &Path {
        self.members[0].library_path()
    }

    fn preflight(&self) -> &Unmappable {
        self.members[0].preflight()
    }

    fn api_version(&self) -> &str {
        self.members[0].api_version()
    }

    fn run_hook(&self, id: &str, hook: Hook, ctx: &mut Context) -> Result<(), crate::ExecError> {
        self.members[0].run_hook(id, hook, ctx)
    }

    fn has_hook(&self, hook: Hook) -> bool {
        self.members[0].has_hook(hook)
    }

    fn panic_aborts(&self) -> Option<bool> {
        self.members[0].panic_aborts()
    }

    fn arm(&self) {}

    fn worker(&self) -> bool {
        true
    }
}

//! Several workers for one plugin (`WorkerPolicy::pool_size` > 1). Each member is a whole
//! supervised worker: it restarts, backs off, is marked failed, is health-checked and stops
//! when idle on its own. A call goes to the least busy member with a running worker (a
//! member that just crashed, or is in its backoff, is passed over while another runs); a
//! crash fails only the calls in flight on that member.

use std::{
    path::Path,
    sync::{atomic::Ordering, Mutex},
    time::Duration,
};

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
    /// Held while a call picks its member and is counted there, so that calls arriving
    /// together spread instead of all picking the same idle member.
    picking: Mutex<()>,
}

impl Pool {
    /// A pool of `members` (at least one).
    pub(super) fn new(members: Vec<WorkerRuntime>) -> Self {
        assert!(!members.is_empty(), "a pool has at least one worker");
        Pool {
            members,
            picking: Mutex::new(()),
        }
    }

    /// The member the next call goes to, with the call counted in its `in_flight`: the
    /// least busy of those with a running worker; else the least busy not marked failed (it
    /// starts one); else the first, which says it failed. A member whose state is locked (a
    /// crash being recorded) counts as not running: the pool does not wait for it.
    fn pick(&self) -> &WorkerRuntime {
        let _picking = self.picking.lock().unwrap_or_else(|e| e.into_inner());
        let load = |m: &&WorkerRuntime| m.inner.in_flight.load(Ordering::Acquire);
        let state = |m: &WorkerRuntime| match m.inner.state.try_lock() {
            Ok(s) => (s.worker.is_some() && !s.failed, !s.failed),
            Err(_) => (false, true),
        };
        let states: Vec<(bool, bool)> = self.members.iter().map(state).collect();
        let among = |want: fn(&(bool, bool)) -> bool| {
            self.members
                .iter()
                .zip(&states)
                .filter(|(_, s)| want(s))
                .map(|(m, _)| m)
                .min_by_key(load)
        };
        let chosen = among(|s| s.0)
            .or_else(|| among(|s| s.1))
            .unwrap_or(&self.members[0]);
        chosen.inner.in_flight.fetch_add(1, Ordering::SeqCst);
        chosen
    }
}

impl Runtime for Pool {
    fn execute(&self, id: &str, ctx: &mut Context) -> Outcome {
        self.pick().execute_counted(id, ctx)
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

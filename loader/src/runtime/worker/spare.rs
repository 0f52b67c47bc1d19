//! Workers started ahead of need ([`WorkerPolicy::prestart`]): one `plg-worker --spare` per
//! manager, started with the policy's environment and limits, that has paid for its process
//! start (fork, exec, dynamic linking, its async runtime) before any plugin asks. Starting a
//! plugin in a worker (a load, a restart after a crash, a start after an idle stop) takes it
//! and hands it the manifest's path (on its first frames connection, or on stdin for a wrapper
//! script); a new spare is started in the background.
//!
//! A spare is an ordinary worker process: its own process group, killed with the host,
//! reaped when dropped (with the manager).

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};

use super::{
    check::find_worker,
    policy::WorkerPolicy,
    process::{self, Started},
};

/// One manager's spare worker.
pub(crate) struct Spares {
    program: PathBuf,
    policy: WorkerPolicy,
    slot: Mutex<Option<Started>>,
    refilling: AtomicBool,
}

impl std::fmt::Debug for Spares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spares")
            .field("program", &self.program)
            .finish_non_exhaustive()
    }
}

impl Spares {
    /// Starts the first spare in the background, if `policy` asks for spares and a
    /// `plg-worker` is found.
    pub(crate) fn new(policy: &WorkerPolicy) -> Option<Arc<Spares>> {
        if !policy.prestart || policy.never_isolate {
            return None;
        }
        let program = find_worker(policy.program.as_deref()).ok()?;
        let spares = Arc::new(Spares {
            program,
            policy: policy.clone(),
            slot: Mutex::new(None),
            refilling: AtomicBool::new(false),
        });
        spares.refill();
        Some(spares)
    }

    /// The spare, if it runs `program` and is still alive. The caller calls
    /// [`refill`](Self::refill) once its start is done, so that the next spare's start does
    /// not compete with it for the CPU.
    pub(super) fn take(self: &Arc<Self>, program: &Path) -> Option<Started> {
        if program != self.program {
            return None;
        }
        let taken = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        let (mut process, first) = taken?;
        // One that exited (killed, out of memory) is dropped, and so reaped.
        match process.try_reap() {
            None => Some((process, first)),
            Some(_) => None,
        }
    }

    /// Starts a spare on a thread of its own, unless one is waiting or being started. The
    /// thread holds the pool weakly: a manager dropped meanwhile gets no new spare.
    pub(super) fn refill(self: &Arc<Self>) {
        if self.ready() || self.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(self);
        let started = std::thread::Builder::new()
            .name("plg-worker-spare".into())
            .spawn(move || {
                let Some(spares) = weak.upgrade() else {
                    return;
                };
                let started = process::spawn_spare(&spares.program, &spares.policy);
                // The slot and the flag change together: a take and a refill in between
                // would otherwise see "being started" and start nothing.
                let mut slot = spares.slot.lock().unwrap_or_else(|e| e.into_inner());
                match started {
                    Ok(spare) => *slot = Some(spare),
                    Err(e) => tracing::warn!("cannot start a spare worker: {e}"),
                }
                spares.refilling.store(false, Ordering::Release);
            });
        if started.is_err() {
            self.refilling.store(false, Ordering::Release);
        }
    }

    /// Whether a spare is started and waiting; one that exited meanwhile is dropped.
    pub(crate) fn ready(&self) -> bool {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_mut().is_some_and(|(p, _)| p.try_reap().is_some()) {
            *slot = None;
        }
        slot.is_some()
    }
}

//! What happens to a manager's plugins, as a stream of [`Event`]s for each subscriber
//! ([`PluginManager::subscribe`](crate::PluginManager::subscribe)).
//!
//! Each subscriber has its own bounded queue. Emitting never waits for a subscriber: when a
//! queue is full, its oldest event is dropped and counted ([`Subscription::lost`]), so a slow
//! or stuck subscriber can never block a load, an unload or a call. Calls themselves emit
//! nothing.

use std::{
    collections::VecDeque,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Condvar, Mutex, Weak,
    },
    time::{Duration, SystemTime},
};

use super::plugin::UnloadReport;
use crate::{error::LoadError, manifest::preflight::Unmappable};

/// One thing that happened to a plugin.
#[derive(Debug, Clone)]
pub struct Event {
    /// The manager's sequence number: 0, 1, 2, … in the order the events happened. A gap in
    /// what one subscriber received means it lost events.
    pub seq: u64,
    /// When it happened.
    pub at: SystemTime,
    /// What happened.
    pub kind: EventKind,
}

/// What happened. More kinds may be added: match with a `_` arm.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum EventKind {
    /// A plugin was loaded and registered.
    Loaded {
        /// `name@version`.
        plugin: String,
        /// Its manifest.
        manifest: PathBuf,
        /// What the unload-safety preflight read from its library file.
        preflight: Unmappable,
    },
    /// A plugin (or a plugins directory entry) failed to load.
    LoadFailed {
        /// The manifest or directory.
        path: PathBuf,
        /// The error, as [`LoadError`](crate::LoadError)'s message.
        error: String,
    },
    /// A plugin was unloaded.
    Unloaded {
        /// The unload's report: the verified `unmapped` beside the preflight's `predicted`.
        report: UnloadReport,
    },
    /// A hot upgrade took effect: handles that follow it call `to` from now on.
    Reloaded {
        /// `name@version` replaced.
        from: String,
        /// `name@version` now serving.
        to: String,
        /// What became of the old version.
        retired: Retired,
    },
    /// A hot upgrade was refused; the running version keeps serving.
    ReloadFailed {
        /// `name@version` still serving.
        plugin: String,
        /// The manifest of the version that was refused.
        path: PathBuf,
        /// Why.
        error: Arc<LoadError>,
    },
    /// During a hot upgrade, the new version took over the old one's state (its
    /// `restore_state` read what the old one's `save_state` wrote).
    StateRestored {
        /// `name@version` that saved it.
        from: String,
        /// `name@version` that restored it.
        to: String,
        /// How many values were handed over.
        values: usize,
    },
}

/// What a hot upgrade did with the version it replaced.
#[derive(Debug, Clone)]
pub enum Retired {
    /// Its calls drained and it was unloaded, with the usual verified report (and the
    /// private copy's fate in `kept_copy`).
    Unloaded(UnloadReport),
    /// Some handles stay on it (pinned to its version, or with a requirement the new version
    /// does not match), so it stays loaded beside the new one until it is unloaded.
    Kept {
        /// How many handles stay on it.
        handles: usize,
    },
    /// Loaded plugins depend on its version (and the new version does not match what they
    /// need), so it stays loaded beside the new one until they are unloaded.
    Needed {
        /// `name@version` of each plugin that needs it.
        by: Vec<String>,
    },
    /// Its calls did not drain within the unload timeout. It takes no new calls, and is
    /// unloaded by a later reload, `unload_all` or the manager's drop.
    Draining {
        /// Calls still running at the timeout.
        in_flight: usize,
    },
}

/// The default number of events a subscriber's queue holds.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

#[derive(Debug, Default)]
struct State {
    events: VecDeque<Event>,
    lost: u64,
    closed: bool,
}

#[derive(Debug)]
struct Queue {
    state: Mutex<State>,
    ready: Condvar,
    capacity: usize,
}

/// A subscriber's end of the stream. Iterating blocks for the next event and ends when the
/// manager is dropped and the queue is empty.
#[derive(Debug)]
pub struct Subscription {
    queue: Arc<Queue>,
}

impl Subscription {
    /// The next event, if one is waiting.
    pub fn try_next(&self) -> Option<Event> {
        self.lock().events.pop_front()
    }

    /// The next event, waiting at most `timeout` for one.
    pub fn next_timeout(&self, timeout: Duration) -> Option<Event> {
        let state = self.lock();
        let (mut state, _) = self
            .queue
            .ready
            .wait_timeout_while(state, timeout, |s| s.events.is_empty() && !s.closed)
            .unwrap_or_else(|e| e.into_inner());
        state.events.pop_front()
    }

    /// How many events this subscriber lost because its queue was full (the oldest go first).
    pub fn lost(&self) -> u64 {
        self.lock().lost
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.queue.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Iterator for Subscription {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        let state = self.lock();
        let mut state = self
            .queue
            .ready
            .wait_while(state, |s| s.events.is_empty() && !s.closed)
            .unwrap_or_else(|e| e.into_inner());
        state.events.pop_front()
    }
}

/// The manager's side: numbers events and hands each to every live subscriber.
#[derive(Debug, Default)]
pub(crate) struct Events {
    seq: AtomicU64,
    subscribers: Mutex<Vec<Weak<Queue>>>,
}

impl Events {
    pub(crate) fn subscribe(&self, capacity: usize) -> Subscription {
        let queue = Arc::new(Queue {
            state: Mutex::default(),
            ready: Condvar::new(),
            capacity: capacity.max(1),
        });
        let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain(|q| q.strong_count() > 0);
        subs.push(Arc::downgrade(&queue));
        Subscription { queue }
    }

    /// Hands `kind` to every subscriber, never waiting for one: a full queue drops its oldest.
    pub(crate) fn emit(&self, kind: EventKind) {
        // Numbering and queueing under one lock, so every subscriber gets events in number
        // order, even when threads emit at once. Queue locks are only ever held for a push or
        // a pop, so this never waits on a subscriber.
        let subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        let event = Event {
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            at: SystemTime::now(),
            kind,
        };
        for q in subs.iter().filter_map(Weak::upgrade) {
            let mut state = q.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.events.len() >= q.capacity {
                state.events.pop_front();
                state.lost += 1;
            }
            state.events.push_back(event.clone());
            drop(state);
            q.ready.notify_all();
        }
    }

    /// Ends every subscription (the manager is going away).
    pub(crate) fn close(&self) {
        let subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        for q in subs.iter().filter_map(Weak::upgrade) {
            q.state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
            q.ready.notify_all();
        }
    }
}

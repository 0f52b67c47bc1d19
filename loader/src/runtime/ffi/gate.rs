//! [`Gate`]: the shared in-flight counter of calls that do not take the pinned fast path
//! (hooks, deeply nested calls), and the closing flag every call checks.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts calls in flight and refuses new ones once closing has begun.
///
/// One atomic word: the top bit says "closing", the rest count calls in flight. Entering is
/// a compare-and-swap that adds one only while the closing bit is clear, so a refused call
/// never counts itself in flight, even for a moment, and cannot delay an unload. Once the
/// closing bit is set and the count reaches zero, no call is running or can start.
pub(super) struct Gate(pub(super) AtomicUsize);

pub(super) const CLOSING: usize = 1 << (usize::BITS - 1);

impl Gate {
    pub(super) fn enter(&self) -> bool {
        self.0
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| {
                (n & CLOSING == 0).then_some(n + 1)
            })
            .is_ok()
    }

    pub(super) fn exit(&self) {
        self.0.fetch_sub(1, Ordering::Release);
    }

    pub(super) fn close(&self) {
        self.0.fetch_or(CLOSING, Ordering::AcqRel);
    }

    pub(super) fn in_flight(&self) -> usize {
        self.0.load(Ordering::Acquire) & !CLOSING
    }

    pub(super) fn is_closing(&self) -> bool {
        self.0.load(Ordering::Acquire) & CLOSING != 0
    }

    /// [`is_closing`](Self::is_closing) for the pinned fast path, which orders it with a
    /// fence of its own.
    #[inline]
    pub(super) fn is_closing_relaxed(&self) -> bool {
        self.0.load(Ordering::Relaxed) & CLOSING != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_refuses_entry_once_closing_and_counts_in_flight() {
        let gate = Gate(AtomicUsize::new(0));
        assert!(gate.enter());
        assert!(gate.enter());
        gate.close();
        assert!(!gate.enter());
        assert_eq!(gate.in_flight(), 2);
        gate.exit();
        gate.exit();
        assert_eq!(gate.in_flight(), 0);
        assert!(gate.is_closing());
    }
}

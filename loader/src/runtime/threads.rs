//! Per-thread records behind the call fast path: the pins that stand in for a shared
//! in-flight counter, and the metric stripe each thread owns.
//!
//! A call does not touch memory other threads write. It stores what it is using (the
//! instance it read from a handle, then the library it calls) in one of its own thread's
//! pin slots, followed by a *light* fence, a compiler-only barrier. The rare side (an
//! unload, or freeing a handle's old instance after an upgrade) publishes its own store
//! first, then issues a *heavy* fence (`membarrier(2)`, which makes every running thread of
//! the process execute a full barrier), and then scans every thread's slots. Either the
//! caller sees the unloader's store, or the unloader sees the caller's pin: the asymmetric
//! form of the classic store-then-load handshake, as in Linux RCU and Folly's hazard
//! pointers. Where `membarrier` is unavailable, both fences are full fences, which is
//! correct and slower.
//!
//! Pins nest (a plugin calling a dependency through `Context::call` pins twice) up to
//! [`PIN_DEPTH`]; deeper calls, and calls on a thread whose records are already torn down,
//! take the slow path with shared counters.

use std::{
    cell::Cell,
    sync::{
        atomic::{compiler_fence, fence, AtomicU8, AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use super::ffi;

/// Which fences are in use: not decided yet, `membarrier`, or full fences on both sides.
/// Decided once; until then the light fence is a full one (never weaker than needed).
static FENCES: AtomicU8 = AtomicU8::new(UNDECIDED);
const UNDECIDED: u8 = 0;
const MEMBARRIER: u8 = 1;
const FULL: u8 = 2;

/// Decides which fences to use (registering for `membarrier` where the kernel offers it).
/// Called when a library is opened, so calls take the fast fence from the first one.
pub(crate) fn init_fences() {
    if FENCES.load(Ordering::Acquire) == UNDECIDED {
        let mode = if ffi::membarrier_register() {
            MEMBARRIER
        } else {
            FULL
        };
        let _ = FENCES.compare_exchange(UNDECIDED, mode, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// The light fence: a compiler barrier when the heavy side uses `membarrier`.
#[inline]
fn light_fence() {
    if FENCES.load(Ordering::Relaxed) == MEMBARRIER {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// Pins one thread can hold at once.
pub(crate) const PIN_DEPTH: usize = 8;

/// Metric stripes owned by one thread each; threads beyond these share the last one,
/// [`SHARED_STRIPE`], with atomic read-modify-writes.
pub(crate) const STRIPES: usize = 32;

/// The stripe threads share once every owned stripe is taken.
pub(crate) const SHARED_STRIPE: usize = STRIPES;

/// What a call is using: the object it protects from being freed (an instance read from a
/// handle) and the library it is calling. 0 is "nothing".
#[derive(Default)]
struct PinSlot {
    object: AtomicUsize,
    library: AtomicUsize,
}

/// One thread's pins, visible to every other thread through the registry.
struct ThreadRecord {
    pins: [PinSlot; PIN_DEPTH],
}

#[derive(Default)]
struct Registry {
    records: Vec<Arc<ThreadRecord>>,
    free_stripes: Vec<usize>,
    next_stripe: usize,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    records: Vec::new(),
    free_stripes: Vec::new(),
    next_stripe: 0,
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// This thread's side: its record, how many pins are in use, its stripe and its call tick.
pub(crate) struct Local {
    record: Arc<ThreadRecord>,
    depth: Cell<usize>,
    stripe: usize,
    tick: Cell<u32>,
}

impl Local {
    fn register() -> Self {
        let record = Arc::new(ThreadRecord {
            pins: Default::default(),
        });
        let mut reg = registry();
        let stripe = match reg.free_stripes.pop() {
            Some(s) => s,
            None if reg.next_stripe < STRIPES => {
                reg.next_stripe += 1;
                reg.next_stripe - 1
            }
            None => SHARED_STRIPE,
        };
        reg.records.push(Arc::clone(&record));
        Local {
            record,
            depth: Cell::new(0),
            stripe,
            tick: Cell::new(0),
        }
    }

    /// The metric stripe this thread writes: its own (`< STRIPES`) or the shared one.
    #[inline]
    pub(crate) fn stripe(&self) -> usize {
        self.stripe
    }

    /// Counts a call on this thread and says whether to time it: every call for `mask` 0,
    /// about one in `2^k` for `2^k - 1`. The count is scrambled (Fibonacci hashing) before
    /// the mask: the count is the thread's, shared by every plugin it calls, and a plugin
    /// called on every second or fourth count (calls that alternate between two plugins,
    /// or a call and the nested call it makes) would otherwise never, or always, land on a
    /// multiple of `2^k`.
    #[inline]
    pub(crate) fn sampled(&self, mask: u32) -> bool {
        let n = self.tick.get().wrapping_add(1);
        self.tick.set(n);
        let scrambled = (u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32;
        scrambled & mask == 0
    }

    /// The next free pin slot, until the returned guard is dropped; `None` if all
    /// [`PIN_DEPTH`] are in use.
    #[inline]
    pub(crate) fn pin(&self) -> Option<Pin<'_>> {
        let depth = self.depth.get();
        let slot = self.record.pins.get(depth)?;
        self.depth.set(depth + 1);
        Some(Pin { local: self, slot })
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let mut reg = registry();
        reg.records.retain(|r| !Arc::ptr_eq(r, &self.record));
        if self.stripe < STRIPES {
            reg.free_stripes.push(self.stripe);
        }
    }
}

thread_local! {
    static LOCAL: Local = Local::register();
}

/// Runs `f` with this thread's record; `None` while the thread's thread-locals are being
/// torn down (the caller takes its slow path).
#[inline]
pub(crate) fn with_local<R>(f: impl FnOnce(&Local) -> R) -> Option<R> {
    LOCAL.try_with(f).ok()
}

/// One pin slot in use. Dropping it clears the slot (with release ordering, so whoever sees
/// it clear also sees everything the call did) and frees it for the next call.
pub(crate) struct Pin<'a> {
    local: &'a Local,
    slot: &'a PinSlot,
}

impl Pin<'_> {
    /// Publishes `object` as in use by this thread, then a light fence. A reader must check,
    /// after this, that the object is still reachable where it read it from.
    #[inline]
    pub(crate) fn protect(&self, object: usize) {
        self.slot.object.store(object, Ordering::Relaxed);
        light_fence();
    }

    /// Publishes `library` as being called by this thread, then a light fence. A caller must
    /// check, after this, that the library is not closing.
    #[inline]
    pub(crate) fn enter(&self, library: usize) {
        self.slot.library.store(library, Ordering::Relaxed);
        light_fence();
    }
}

impl Pin<'_> {
    /// Withdraws the library published by [`enter`](Self::enter): the call was refused.
    #[inline]
    pub(crate) fn leave(&self) {
        self.slot.library.store(0, Ordering::Release);
    }
}

impl Drop for Pin<'_> {
    #[inline]
    fn drop(&mut self) {
        self.slot.library.store(0, Ordering::Release);
        self.slot.object.store(0, Ordering::Release);
        self.local.depth.set(self.local.depth.get() - 1);
    }
}

/// The heavy fence: after it returns, every thread of the process has executed a full
/// barrier, so a pin stored before it is visible to a scan after it, and a caller that pins
/// after it sees every store made before it.
pub(crate) fn heavy_fence() {
    init_fences();
    if FENCES.load(Ordering::Acquire) != MEMBARRIER {
        // No membarrier: every light fence is a full fence, and so is this one.
        fence(Ordering::SeqCst);
        return;
    }
    // After a successful registration the kernel does not refuse; should it ever, try again
    // rather than fall back, since callers rely on it.
    while !ffi::membarrier_expedited() {
        std::thread::yield_now();
    }
}

/// How many pin slots, across all threads, hold `library`. Call after [`heavy_fence`].
pub(crate) fn pins_of_library(library: usize) -> usize {
    count(|slot| slot.library.load(Ordering::Acquire) == library)
}

/// Whether any thread's pin protects `object`. Call after [`heavy_fence`].
pub(crate) fn is_protected(object: usize) -> bool {
    count(|slot| slot.object.load(Ordering::Acquire) == object) > 0
}

fn count(matches: impl Fn(&PinSlot) -> bool) -> usize {
    let reg = registry();
    reg.records
        .iter()
        .flat_map(|r| r.pins.iter())
        .filter(|slot| matches(slot))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_nest_are_seen_by_scans_and_clear_when_dropped() {
        with_local(|local| {
            let outer = local.pin().unwrap();
            outer.protect(0x1000);
            outer.enter(0x8000_0000_0000_0001);
            let inner = local.pin().unwrap();
            inner.enter(0x8000_0000_0000_0002);
            heavy_fence();
            assert!(is_protected(0x1000));
            assert_eq!(pins_of_library(0x8000_0000_0000_0001), 1);
            assert_eq!(pins_of_library(0x8000_0000_0000_0002), 1);
            drop(inner);
            assert_eq!(pins_of_library(0x8000_0000_0000_0002), 0);
            drop(outer);
            assert!(!is_protected(0x1000));
        })
        .unwrap();
    }

    #[test]
    fn a_thread_runs_out_of_pins_at_the_depth_limit() {
        with_local(|local| {
            let pins: Vec<Pin<'_>> = (0..PIN_DEPTH).map(|_| local.pin().unwrap()).collect();
            assert!(local.pin().is_none());
            drop(pins);
            assert!(local.pin().is_some());
        })
        .unwrap();
    }

    #[test]
    fn every_stride_of_calls_gets_its_share_of_samples() {
        // One thread's calls, taken every `stride`-th (a plugin whose calls alternate with
        // another's, or with nested calls): each stride still gets about one in 64 timed.
        std::thread::spawn(|| {
            with_local(|local| {
                for stride in [1u32, 2, 3, 4, 8, 64] {
                    let mut timed = 0;
                    for i in 0..64_000u32 {
                        let t = local.sampled(63);
                        if i % stride == 0 && t {
                            timed += 1;
                        }
                    }
                    let calls = 64_000 / stride;
                    let expected = calls / 64;
                    assert!(
                        timed > expected / 2 && timed < expected * 2,
                        "stride {stride}: {timed} of {calls} timed, expected about {expected}"
                    );
                }
                assert!(
                    (0..100).all(|_| local.sampled(0)),
                    "mask 0 times every call"
                );
            })
            .unwrap();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn threads_own_distinct_stripes_while_they_live() {
        let stripes: Vec<usize> = (0..4)
            .map(|_| std::thread::spawn(|| with_local(|l| l.stripe()).unwrap()))
            .map(|t| t.join().unwrap())
            .collect();
        assert!(stripes.iter().all(|s| *s <= SHARED_STRIPE));
        let here = with_local(|l| l.stripe()).unwrap();
        let other = std::thread::scope(|s| {
            s.spawn(|| with_local(|l| l.stripe()).unwrap())
                .join()
                .unwrap()
        });
        assert!(here != other || here == SHARED_STRIPE);
    }
}

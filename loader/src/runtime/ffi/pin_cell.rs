//! [`PinCell`]: a shared, swappable `Arc<T>` whose readers pay no atomic read-modify-write.
//!
//! It does the job of `arc_swap::ArcSwap` for [`Plugin`](crate::Plugin) handles, whose every
//! call reads the instance the handle points at. A reader publishes the pointer it read in
//! one of its thread's pin slots and checks that it is still current (a hazard pointer,
//! [`threads`](crate::runtime::threads)); a swap keeps the old `Arc` in a retired list and
//! drops it only once no thread's pin protects it.

use std::sync::{
    atomic::{AtomicPtr, Ordering},
    Arc, Mutex,
};

use crate::runtime::threads::{self, Pin};

pub(crate) struct PinCell<T> {
    /// From `Arc::into_raw`: the cell owns one strong count of it.
    current: AtomicPtr<T>,
    /// Held while swapping and while a reader clones the current `Arc` the slow way; guards
    /// the values a swap replaced and that some pin may still protect.
    retired: Mutex<Vec<Arc<T>>>,
}

// SAFETY: the cell owns `Arc<T>`s (one behind `current`, the rest in `retired`) and hands
// out `&T` and `Arc<T>`, so it is `Send` and `Sync` exactly when `Arc<T>` is.
unsafe impl<T: Send + Sync> Send for PinCell<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for PinCell<T> {}

impl<T> PinCell<T> {
    pub(crate) fn new(value: Arc<T>) -> Self {
        PinCell {
            current: AtomicPtr::new(Arc::into_raw(value).cast_mut()),
            retired: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<T>>> {
        self.retired.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls `f` with the current value, protected by `pin` for the whole call (and kept in
    /// `pin` afterwards, until the pin is dropped or reused). No atomic read-modify-write.
    #[inline]
    pub(crate) fn with<R>(&self, pin: &Pin<'_>, f: impl FnOnce(&T) -> R) -> R {
        let ptr = loop {
            let ptr = self.current.load(Ordering::Acquire);
            pin.protect(ptr as usize);
            if self.current.load(Ordering::Acquire) == ptr {
                break ptr;
            }
        };
        // SAFETY: `ptr` came from `Arc::into_raw` and the cell owned it when we re-read it
        // after publishing our pin. A swap after that moves its `Arc` to `retired`, and
        // `reclaim` drops a retired `Arc` only when, after a heavy fence, no pin protects it.
        // The light fence in `protect` pairs with that heavy fence: either the swap's
        // reclaim sees our pin, or our re-read saw the swap (and we retried). So the value
        // lives until `pin` is cleared, which is after `f` returns.
        f(unsafe { &*ptr })
    }

    /// A new `Arc` of the current value (the slow path: takes the cell's lock).
    pub(crate) fn load_full(&self) -> Arc<T> {
        let _swaps = self.lock();
        let ptr = self.current.load(Ordering::Acquire);
        // SAFETY: `ptr` came from `Arc::into_raw` and, with the lock held, no swap can
        // retire it, so the cell's strong count keeps it alive while we add one of our own.
        unsafe {
            Arc::increment_strong_count(ptr);
            Arc::from_raw(ptr)
        }
    }

    /// Whether the current value is `other`.
    pub(crate) fn is(&self, other: &T) -> bool {
        std::ptr::eq(self.current.load(Ordering::Acquire), other)
    }

    /// Replaces the value with `to` if it is `from`. `true` if it did.
    pub(crate) fn compare_and_swap(&self, from: &Arc<T>, to: &Arc<T>) -> bool {
        let mut retired = self.lock();
        let ptr = self.current.load(Ordering::Acquire);
        if !std::ptr::eq(ptr, Arc::as_ptr(from)) {
            return false;
        }
        self.current
            .store(Arc::into_raw(Arc::clone(to)).cast_mut(), Ordering::Release);
        // SAFETY: `ptr` came from `Arc::into_raw`, and the strong count the cell held for it
        // moves into this `Arc`, which `retired` keeps until no pin protects it.
        retired.push(unsafe { Arc::from_raw(ptr) });
        true
    }

    /// Takes out the values a swap replaced that no thread's pin protects any more, for the
    /// caller to drop: outside its own locks, since dropping the last `Arc` of a value can
    /// run anything its `Drop` does.
    #[must_use = "the values are dropped where the caller drops them"]
    pub(crate) fn reclaim(&self) -> Vec<Arc<T>> {
        let mut retired = self.lock();
        if retired.is_empty() {
            return Vec::new();
        }
        threads::heavy_fence();
        let (protected, free): (Vec<_>, Vec<_>) = retired
            .drain(..)
            .partition(|old| threads::is_protected(Arc::as_ptr(old) as usize));
        *retired = protected;
        free
    }
}

impl<T> Drop for PinCell<T> {
    fn drop(&mut self) {
        // `&mut self`: no reader can be inside `with`, so nothing is protected any more.
        let ptr = *self.current.get_mut();
        // SAFETY: `ptr` came from `Arc::into_raw` and the cell owns that strong count.
        drop(unsafe { Arc::from_raw(ptr) });
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for PinCell<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PinCell").field(&self.load_full()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swap_keeps_a_protected_value_alive_and_frees_it_after() {
        let a = Arc::new(1);
        let b = Arc::new(2);
        let cell = PinCell::new(Arc::clone(&a));
        threads::with_local(|local| {
            let pin = local.pin().unwrap();
            assert_eq!(cell.with(&pin, |v| *v), 1);
            // `pin` still protects `a`: the swap retires it but cannot free it.
            assert!(cell.compare_and_swap(&a, &b));
            assert!(cell.reclaim().is_empty(), "a is protected");
            assert_eq!(Arc::strong_count(&a), 2, "retired, not freed");
            drop(pin);
        })
        .unwrap();
        assert!(cell.is(&*b));
        assert!(!cell.compare_and_swap(&a, &b), "a is no longer current");
        assert_eq!(cell.reclaim().len(), 1, "a, no longer protected, comes out");
        assert_eq!(Arc::strong_count(&a), 1);
        assert!(cell.compare_and_swap(&b, &a));
        drop(cell.reclaim());
        assert_eq!(
            Arc::strong_count(&b),
            1,
            "b, protected by nobody, was freed"
        );
        assert_eq!(*cell.load_full(), 1);
        drop(cell);
        assert_eq!(Arc::strong_count(&a), 1);
        assert_eq!(Arc::strong_count(&b), 1);
    }
}

//! [`HostBuffers`]: the quick answer to "is this buffer already the host's?" that lets a call's
//! rehoming skip the buffers the plugin did not replace.
//!
//! An abi_stable `RVec`, `RString` or `RArc` carries a pointer to the vtable that frees it,
//! a static of the library that allocated it. abi_stable's own test (`into_vec`) compares
//! vtable addresses and, when they differ (each crate and codegen unit of one library can
//! hold its own copy of the same vtable), calls through both vtables for a type identity and
//! compares those: about ten nanoseconds a buffer, paid for every key and value of a context
//! after every call that wrote anything. Here the test is one load and two comparisons: is
//! the vtable inside the segment of this code's own object (executable or shared library)
//! that holds the host's vtables? A segment is one mapping, so no plugin's vtable can lie
//! inside it (the whole object's span could hold gaps between segments that the kernel left
//! unmapped in a main executable). A vtable of the host's in another segment is not claimed,
//! and neither is anything when the segment cannot be found: those buffers take abi_stable's
//! path, which is always right, only slower.

use std::sync::OnceLock;

use abi_stable::std_types::{RArc, RString, RVec};
use plg_api::host::BufferOwner;

use super::os::placement_of;

/// The address span of the segment holding this host's abi_stable vtables. Empty
/// (`lo == hi`) when it could not be found: then it claims nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HostBuffers {
    lo: usize,
    hi: usize,
}

// `RVec<T>` is `#[repr(C)] { buffer, length, capacity, vtable }`, `RString` is
// `#[repr(C)] { inner: RVec<u8> }` and `RArc<T>` is `#[repr(C)] { data, vtable }`: part of
// abi_stable 0.11's stable layout (every plugin depends on it). `layout_is_as_read` below
// checks the field names against abi_stable's own layout description.
const RVEC_VTABLE_WORD: usize = 3;
const RARC_VTABLE_WORD: usize = 1;
const _: () = assert!(std::mem::size_of::<RVec<u8>>() == 4 * std::mem::size_of::<usize>());
const _: () = assert!(std::mem::size_of::<RString>() == 4 * std::mem::size_of::<usize>());
const _: () = assert!(std::mem::size_of::<RArc<u8>>() == 2 * std::mem::size_of::<usize>());

/// The word at `index` of `value`.
///
/// # Safety
/// `T` must be at least `index + 1` words long and its word at `index` an initialised
/// pointer-sized field (no padding).
#[inline(always)]
unsafe fn word<T>(value: &T, index: usize) -> usize {
    // SAFETY: the caller's contract: the word is inside `value` and initialised. `value` is
    // a reference, so the read is aligned for `T`, and `T`'s fields here are pointers and
    // `usize`s, so a word index is aligned too.
    unsafe { (value as *const T).cast::<usize>().add(index).read() }
}

impl HostBuffers {
    /// The span of this host's object, found once.
    pub(crate) fn get() -> &'static HostBuffers {
        static HOST: OnceLock<HostBuffers> = OnceLock::new();
        HOST.get_or_init(|| {
            let own = RVec::<u8>::new();
            // SAFETY: `RVec<u8>` is four words with the vtable pointer fourth (see above).
            let vtable = unsafe { word(&own, RVEC_VTABLE_WORD) };
            match placement_of(vtable) {
                Some(found) if layout_is_as_read() => {
                    let (lo, hi) = found.segment;
                    HostBuffers { lo, hi }
                }
                _ => HostBuffers { lo: 0, hi: 0 },
            }
        })
    }

    #[inline(always)]
    fn holds(&self, vtable: usize) -> bool {
        self.lo <= vtable && vtable < self.hi
    }
}

// SAFETY: a buffer is claimed only if its vtable lies in the segment that holds the vtable
// of an `RVec` made by this code: a static of the host's own abi_stable, in a mapping of the
// host's object, which no plugin's statics can share. Such a buffer is grown and freed only
// by the host's code.
unsafe impl BufferOwner for HostBuffers {
    #[inline(always)]
    fn owns_vec<T>(&self, v: &RVec<T>) -> bool {
        // SAFETY: `RVec<T>` is four words with the vtable pointer fourth, for every `T`.
        self.holds(unsafe { word(v, RVEC_VTABLE_WORD) })
    }

    #[inline(always)]
    fn owns_string(&self, s: &RString) -> bool {
        // SAFETY: `RString` is one `RVec<u8>`: four words with the vtable pointer fourth.
        self.holds(unsafe { word(s, RVEC_VTABLE_WORD) })
    }

    #[inline(always)]
    fn owns_arc<T>(&self, a: &RArc<T>) -> bool {
        // SAFETY: `RArc<T>` is two words with the vtable pointer second, for every `T`.
        self.holds(unsafe { word(a, RARC_VTABLE_WORD) })
    }
}

/// `true` if abi_stable describes `RVec` and `RArc` with the vtable in the word read above.
fn layout_is_as_read() -> bool {
    use abi_stable::StableAbi;
    fn field_names(layout: &'static abi_stable::type_layout::TypeLayout) -> Vec<&'static str> {
        layout
            .get_fields()
            .map(|fields| fields.iter().map(|f| f.name()).collect())
            .unwrap_or_default()
    }
    let vec = field_names(<RVec<u8> as StableAbi>::LAYOUT);
    let arc = field_names(<RArc<u8> as StableAbi>::LAYOUT);
    vec.get(RVEC_VTABLE_WORD) == Some(&"vtable")
        && vec[..RVEC_VTABLE_WORD] == ["buffer", "length", "capacity"]
        && arc.get(RARC_VTABLE_WORD) == Some(&"vtable")
        && arc[..RARC_VTABLE_WORD] == ["data"]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_as_read() {
        assert!(super::layout_is_as_read());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_hosts_own_buffers_are_claimed_and_others_are_not() {
        let host = HostBuffers::get();
        assert!(host.lo < host.hi, "the host's image was found");
        assert!(host.owns_string(&RString::from("made here")));
        assert!(host.owns_vec(&RVec::from(vec![1u64, 2])));
        assert!(host.owns_arc(&RArc::new(7u8)));
        // A heap address (any buffer's) is outside every loaded object's image.
        let heap = Box::new(0u64);
        assert!(!host.holds(&*heap as *const u64 as usize));
        assert!(!host.holds(0));
    }
}

//! [`BufferOwner`]: which buffers rehoming may leave where they are.

use abi_stable::std_types::{RArc, RString, RVec};

/// Tells rehoming which buffers the host's own code already allocated, so that it can skip
/// them without converting each one.
///
/// Rehoming ([`HostContext::end_call_with`](crate::host::HostContext::end_call_with))
/// must leave nothing in a context that is freed through a plugin's code. A buffer this
/// owner claims is left exactly as it is, so an implementation must claim only buffers
/// whose vtable (the functions that free and grow it) is the host's own; when unsure, it
/// answers `false` and the buffer goes through abi_stable's own conversion, which is always
/// right. Answering `true` for a plugin's buffer leaves the host holding memory it can only
/// free through that plugin's code, which is gone once the plugin is unloaded.
///
/// plg-loader implements it by checking whether a buffer's vtable lies inside the host's
/// own mapped image. [`NoBuffers`] claims nothing: every buffer is converted.
///
/// # Safety
/// An implementation must claim (answer `true` for) only buffers whose vtable is the
/// calling library's own. A host that unloads a plugin after trusting a wrong claim frees
/// memory through unmapped code.
#[allow(unsafe_code)]
pub unsafe trait BufferOwner {
    /// `true` if `v` is freed and grown through the host's own code.
    fn owns_vec<T>(&self, v: &RVec<T>) -> bool;

    /// `true` if `s` is freed and grown through the host's own code.
    fn owns_string(&self, s: &RString) -> bool;

    /// `true` if `a` is freed through the host's own code.
    fn owns_arc<T>(&self, a: &RArc<T>) -> bool;
}

/// The [`BufferOwner`] that claims nothing: every buffer goes through abi_stable's
/// conversion (which keeps the calling library's own buffers and copies the rest).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBuffers;

// SAFETY: claims nothing.
#[allow(unsafe_code)]
unsafe impl BufferOwner for NoBuffers {
    #[inline]
    fn owns_vec<T>(&self, _: &RVec<T>) -> bool {
        false
    }

    #[inline]
    fn owns_string(&self, _: &RString) -> bool {
        false
    }

    #[inline]
    fn owns_arc<T>(&self, _: &RArc<T>) -> bool {
        false
    }
}

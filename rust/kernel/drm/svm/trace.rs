// SPDX-License-Identifier: GPL-2.0

//! Tracepoints of the backend (`drm_svm:*` in tracefs).
//!
//! C header: [`include/trace/events/drm_svm.h`](srctree/include/trace/events/drm_svm.h)

use super::stats::{
    Phase,
    RevokeCause, //
};
use crate::{
    ffi::{
        c_int,
        c_ulong, //
    },
    mm::mmu_notifier::Owner,
};

// The lint fires inside `declare_trace!` itself, whose arguments here are plain integers.
#[expect(clippy::macro_metavars_in_unsafe)]
mod raw {
    use super::*;

    crate::declare_trace! {
        /// A fault begins.
        ///
        /// # Safety
        ///
        /// Always safe: the arguments are plain integers.
        pub(super) unsafe fn svm_fault_begin(owner: c_ulong, addr: c_ulong, npages: c_ulong);
        /// A fault ends with `ret` (0 or a negative errno).
        ///
        /// # Safety
        ///
        /// Always safe: the arguments are plain integers.
        pub(super) unsafe fn svm_fault_end(owner: c_ulong, addr: c_ulong, ret: c_int);
        /// A page was granted.
        ///
        /// # Safety
        ///
        /// Always safe: the arguments are plain integers.
        pub(super) unsafe fn svm_grant(owner: c_ulong, addr: c_ulong);
        /// A grant collided with an invalidation and is made again.
        ///
        /// # Safety
        ///
        /// Always safe: the arguments are plain integers.
        pub(super) unsafe fn svm_retry(owner: c_ulong, addr: c_ulong);
        /// A page could not be granted before the deadline.
        ///
        /// # Safety
        ///
        /// Always safe: the arguments are plain integers.
        pub(super) unsafe fn svm_timeout(owner: c_ulong, addr: c_ulong);
        /// A phase of a page's grant ended.
        ///
        /// # Safety
        ///
        /// Always safe: the arguments are plain integers.
        pub(super) unsafe fn svm_phase(owner: c_ulong, addr: c_ulong, phase: c_int);
        /// A non-blockable invalidation of `[start, end)` was refused.
        ///
        /// # Safety
        ///
        /// Always safe: the arguments are plain integers.
        pub(super) unsafe fn svm_busy(owner: c_ulong, start: c_ulong, end: c_ulong);
        /// Grants in `[start, end)` were revoked.
        ///
        /// # Safety
        ///
        /// Always safe: the arguments are plain integers.
        pub(super) unsafe fn svm_revoke(
            owner: c_ulong,
            start: c_ulong,
            end: c_ulong,
            cause: c_int,
            pages: c_ulong,
        );
    }
}

fn key(owner: Owner) -> c_ulong {
    owner.as_ptr() as c_ulong
}

pub(super) fn fault_begin(owner: Owner, addr: usize, npages: usize) {
    // SAFETY: The tracepoint takes plain integers; calling it is always fine.
    unsafe { raw::svm_fault_begin(key(owner), addr, npages) }
}

pub(super) fn fault_end(owner: Owner, addr: usize, ret: &crate::error::Result) {
    let ret = match ret {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    };
    // SAFETY: The tracepoint takes plain integers; calling it is always fine.
    unsafe { raw::svm_fault_end(key(owner), addr, ret) }
}

pub(super) fn grant(owner: Owner, addr: usize) {
    // SAFETY: The tracepoint takes plain integers; calling it is always fine.
    unsafe { raw::svm_grant(key(owner), addr) }
}

pub(super) fn retry(owner: Owner, addr: usize) {
    // SAFETY: The tracepoint takes plain integers; calling it is always fine.
    unsafe { raw::svm_retry(key(owner), addr) }
}

pub(super) fn timeout(owner: Owner, addr: usize) {
    // SAFETY: The tracepoint takes plain integers; calling it is always fine.
    unsafe { raw::svm_timeout(key(owner), addr) }
}

pub(super) fn phase(owner: Owner, addr: usize, phase: Phase) {
    // SAFETY: The tracepoint takes plain integers; calling it is always fine.
    unsafe { raw::svm_phase(key(owner), addr, phase as c_int) }
}

pub(super) fn busy(owner: Owner, start: usize, end: usize) {
    // SAFETY: The tracepoint takes plain integers; calling it is always fine.
    unsafe { raw::svm_busy(key(owner), start, end) }
}

pub(super) fn revoke(owner: Owner, start: usize, end: usize, cause: RevokeCause, pages: u64) {
    // SAFETY: The tracepoint takes plain integers; calling it is always fine.
    unsafe { raw::svm_revoke(key(owner), start, end, cause as c_int, pages as c_ulong) }
}

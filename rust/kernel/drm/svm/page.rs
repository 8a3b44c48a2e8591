// SPDX-License-Identifier: GPL-2.0

//! Kernel access to a page the device holds with atomic permission.

use crate::{
    bindings,
    page::PAGE_SIZE,
    prelude::*,
    sync::atomic::{
        Atomic,
        AtomicType, //
    },
};
use core::{
    marker::PhantomData,
    ptr::NonNull, //
};

/// A granted page, mapped into the kernel for the duration of a
/// [`SvmContext::with_atomic_page`] call: the device's view of the page.
///
/// The CPU cannot access the page while this exists: the page is device-exclusive, and taking
/// it back needs the page-table lock, which is held.
///
/// # Invariants
///
/// `addr` is a kernel mapping (`kmap_local_page()`) of a whole page that stays valid and
/// exclusive to the device for `'a`; it is unmapped on drop.
///
/// [`SvmContext::with_atomic_page`]: super::SvmContext::with_atomic_page
pub struct AtomicPage<'a> {
    addr: NonNull<u8>,
    _p: PhantomData<&'a mut [u8; PAGE_SIZE]>,
}

impl AtomicPage<'_> {
    /// # Safety
    ///
    /// `page` must stay valid and exclusive to the device for `'a`.
    pub(super) unsafe fn map<'a>(page: *mut bindings::page) -> AtomicPage<'a> {
        // SAFETY: The page is valid by the caller's guarantee.
        let addr = unsafe { bindings::kmap_local_page(page) }.cast::<u8>();
        // INVARIANT: `kmap_local_page()` never fails and maps the whole page.
        AtomicPage {
            // SAFETY: `kmap_local_page()` returns a valid, non-null address.
            addr: unsafe { NonNull::new_unchecked(addr) },
            _p: PhantomData,
        }
    }

    /// The naturally aligned `T` at byte `offset` of the page, for atomic operations; `EINVAL`
    /// if it is misaligned or does not fit in the page.
    pub fn atomic<T: AtomicType>(&self, offset: usize) -> Result<&Atomic<T>> {
        let size = core::mem::size_of::<T>();
        if offset % size != 0 || offset.checked_add(size).is_none_or(|e| e > PAGE_SIZE) {
            return Err(EINVAL);
        }
        // SAFETY: In bounds and aligned by the check above; the page is mapped for the
        // borrow of `self` by the type invariant, and every access to it made through this
        // mapping is atomic. The CPU cannot access it meanwhile (it is device-exclusive).
        Ok(unsafe { Atomic::from_ptr(self.addr.as_ptr().add(offset).cast::<T>()) })
    }
}

impl Drop for AtomicPage<'_> {
    fn drop(&mut self) {
        // SAFETY: `addr` came from `kmap_local_page()` by the type invariant.
        unsafe { bindings::kunmap_local(self.addr.as_ptr().cast()) };
    }
}

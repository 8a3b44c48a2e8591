// SPDX-License-Identifier: GPL-2.0

//! Device-exclusive access to anonymous user memory.
//!
//! [`MmapReadGuard::make_device_exclusive`] takes one page of a process away from the CPU: its
//! page table entry is replaced by a device-exclusive swap entry, so that a device may perform
//! atomic operations on the page that the CPU cannot interleave with. The next CPU access faults,
//! fires an mmu notifier invalidation ([`Event::Clear`] with no owner), and restores the entry;
//! a device driver must drop its mapping of the page in that invalidation.
//!
//! The rules, from `mm/rmap.c`:
//!
//! - Only private anonymous memory in a writable VMA qualifies. Shared, file-backed and hugetlb
//!   memory fails with `EOPNOTSUPP`; a read-only VMA or an unmapped address with `EFAULT`.
//! - A PMD-mapped transparent huge page is split into PTEs first; the folio stays large. All
//!   pages of a folio share one folio lock, so a caller must release one grant's
//!   [`DeviceExclusiveFolio`] before asking for another page of the same folio, or it deadlocks
//!   on itself.
//! - The call fires an [`Event::Exclusive`] invalidation carrying the caller's [`Owner`]. A
//!   driver's notifier must recognise its own owner and not treat that as a revocation of the
//!   mapping it is about to create.
//! - The device mapping must be programmed inside an mmu notifier read-side critical section
//!   (`read_begin` ... `read_retry` under the driver lock), while the folio is still locked.
//!   Dropping the [`DeviceExclusiveFolio`] then lets the CPU take the page back.
//! - The device-exclusive entry holds the folio, as a present entry would: a driver keeps no
//!   reference of its own once its device PTE is programmed. One would pin the page for as
//!   long as the device holds it (reclaim could not split a THP, nor compaction, CMA or memory
//!   offlining move the page), and the invalidation that removes the entry, which the driver
//!   must act on anyway, is what keeps the device from using a freed page.
//! - The core mm considers device-exclusive entries clean and old: a driver that writes to the
//!   page must mark the folio dirty itself ([`DeviceExclusiveFolio::mark_dirty`]).
//!
//! C header: [`include/linux/rmap.h`](srctree/include/linux/rmap.h)
//!
//! [`Event::Clear`]: crate::mm::mmu_notifier::Event::Clear
//! [`Event::Exclusive`]: crate::mm::mmu_notifier::Event::Exclusive

use crate::{
    bindings,
    error::from_err_ptr,
    mm::{mmu_notifier::Owner, MmapReadGuard},
    page::{BorrowedPage, PAGE_MASK, PAGE_SHIFT},
    prelude::*,
    types::NotThreadSafe,
};
use core::ptr::{self, NonNull};

impl MmapReadGuard<'_> {
    /// Makes the page at `addr` exclusive to the device identified by `owner`
    /// (`make_device_exclusive()`).
    ///
    /// `addr` is rounded down to a page boundary. The page is faulted in writable first, which
    /// revokes another device's exclusive access to it. On success the returned guard holds the
    /// folio locked and referenced; the CPU cannot take the page back until it is dropped.
    ///
    /// Errors are those of the C function, unchanged: `EOPNOTSUPP` for memory that is not private
    /// anonymous (shmem, files, hugetlb), `EFAULT` for an unmapped address or one in a VMA the
    /// caller may not write, `ENOMEM`, `EINTR` if a fatal signal is pending, and so on.
    ///
    /// May sleep.
    pub fn make_device_exclusive(&self, addr: usize, owner: Owner) -> Result<DeviceExclusiveFolio> {
        let mut folio: *mut bindings::folio = ptr::null_mut();
        // SAFETY: We hold the mmap read lock of `self.mm` by the type invariant of the guard, and
        // `folio` is a valid place for the result.
        let page = from_err_ptr(unsafe {
            bindings::make_device_exclusive(self.mm.as_raw(), addr, owner.as_ptr(), &mut folio)
        })?;
        // On success both pointers are valid; a null here would be a bug in the C function.
        let (Some(page), Some(folio)) = (NonNull::new(page), NonNull::new(folio)) else {
            return Err(EINVAL);
        };
        // INVARIANT: `make_device_exclusive()` returned the folio locked and referenced, and
        // `page` is the page of `folio` mapped at `addr`.
        Ok(DeviceExclusiveFolio {
            folio,
            page,
            addr: addr & PAGE_MASK,
            _nts: NotThreadSafe,
        })
    }
}

/// A page made exclusive to a device, and the locked folio that holds it.
///
/// While this exists, the CPU cannot revoke the device's access: a CPU fault on the page waits
/// for the folio lock. Dropping it unlocks the folio (`folio_unlock()`) and drops the reference
/// (`folio_put()`).
///
/// # Invariants
///
/// - `folio` is locked by the current task and we own one reference to it.
/// - `page` is the page of `folio` that was mapped at `addr` when it was made exclusive.
pub struct DeviceExclusiveFolio {
    folio: NonNull<bindings::folio>,
    page: NonNull<bindings::page>,
    addr: usize,
    // The folio lock must be released by the task that took it.
    _nts: NotThreadSafe,
}

impl DeviceExclusiveFolio {
    /// The page-aligned user address of the page.
    #[inline]
    pub fn addr(&self) -> usize {
        self.addr
    }

    /// The page frame number of the page.
    #[inline]
    pub fn pfn(&self) -> usize {
        // SAFETY: `page` is valid while we hold a reference to its folio.
        unsafe { bindings::page_to_pfn(self.page.as_ptr()) }
    }

    /// The page, for access through a kernel mapping.
    #[inline]
    pub fn page(&self) -> BorrowedPage<'_> {
        // SAFETY: The page is valid while we hold a reference to its folio, which lasts at
        // least as long as the borrow of `self`.
        unsafe { BorrowedPage::from_raw(self.page) }
    }

    /// The order of the folio: 0 for a small page, 9 for a PMD-sized THP on x86-64.
    #[inline]
    pub fn order(&self) -> u32 {
        // SAFETY: The folio is valid while we hold a reference.
        unsafe { bindings::folio_order(self.folio.as_ptr()) }
    }

    /// The number of pages in the folio.
    #[inline]
    pub fn nr_pages(&self) -> usize {
        1 << self.order()
    }

    /// The size of the folio in bytes.
    #[inline]
    pub fn size(&self) -> usize {
        self.nr_pages() << PAGE_SHIFT
    }

    /// Whether the folio is larger than one page (a THP or another large folio).
    #[inline]
    pub fn is_large(&self) -> bool {
        self.order() > 0
    }

    /// Marks the folio dirty (`folio_mark_dirty()`).
    ///
    /// Device-exclusive entries look clean to the core mm, so a driver that lets the device
    /// write must call this, or reclaim could treat the device's writes as never made.
    #[inline]
    pub fn mark_dirty(&self) {
        // SAFETY: The folio is valid and locked by the type invariants.
        unsafe { bindings::folio_mark_dirty(self.folio.as_ptr()) };
    }

    /// Whether the folio is dirty.
    #[inline]
    pub fn is_dirty(&self) -> bool {
        // SAFETY: The folio is valid while we hold a reference.
        unsafe { bindings::folio_test_dirty(self.folio.as_ptr()) }
    }

    /// The index of the page in its folio (`folio_page_idx()`): from 0 to
    /// [`Self::nr_pages`] - 1.
    ///
    /// With [`Self::order`], what a driver needs to map a whole large folio with one large
    /// device PTE once the device holds all of its pages.
    #[inline]
    pub fn index(&self) -> usize {
        // SAFETY: Both are valid while we hold a reference, and `page` belongs to `folio` by
        // the type invariant (a split, which would change that, needs the folio lock).
        unsafe { bindings::folio_page_idx(self.folio.as_ptr(), self.page.as_ptr()) }
    }
}

impl Drop for DeviceExclusiveFolio {
    fn drop(&mut self) {
        // SAFETY: By the type invariants we hold the folio lock and a reference, and give up
        // both here.
        unsafe {
            bindings::folio_unlock(self.folio.as_ptr());
            bindings::folio_put(self.folio.as_ptr());
        }
    }
}

#[cfg(CONFIG_RUST_DEVICE_EXCLUSIVE_KUNIT_TEST)]
mod tests;

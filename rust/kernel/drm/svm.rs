// SPDX-License-Identifier: GPL-2.0

//! Shared virtual memory: device atomics on process memory.
//!
//! # Overview
//!
//! A device (a GPU) that performs an atomic operation on a page of a process's private
//! anonymous memory needs the page to itself: device atomics are not coherent with the CPU's
//! across the bus. The core mm provides that with `make_device_exclusive()`, which replaces the
//! CPU's page table entry with a device-exclusive entry that faults the page back to the CPU
//! on its next access, and tells the device so through an mmu interval notifier. This module
//! does the mm side of that for a DRM driver, the way nouveau's `nouveau_atomic_range_fault()`
//! does it in C.
//!
//! A driver creates one [`SvmContext`] per device and address space (usually when a process
//! opens the device), with its page table, which implements [`DriverSvm`]. When the device
//! faults on an atomic access, the driver calls [`SvmContext::atomic_fault`] for the page (or a
//! range of pages: a batch releases each folio lock before the next page, so a range inside a
//! THP is fine). The context makes the pages device-exclusive and maps them through
//! [`DriverSvm::map_atomic`]; when the CPU or another device takes a page back, the context's
//! notifier removes the mapping through [`DriverSvm::unmap`] before the core mm goes on. The
//! driver runs its device's operations on a granted page inside
//! [`SvmContext::with_atomic_page`], which excludes the revocation while they run.
//!
//! Beyond nouveau's function, the context keeps one long-lived notifier per 2 MiB chunk that
//! holds grants, instead of inserting and removing one per fault, and removes them once 32
//! chunks have lost their grants (or when the driver calls [`SvmContext::trim`]); it bounds
//! the retries of a fault with a deadline (`EBUSY`) and stops on a fatal signal (`EINTR`); it
//! marks granted folios dirty, since device-exclusive entries look clean to the core mm; it
//! tells the driver what each fault did ([`Faulted`]: pages granted, retries) and why each
//! grant goes ([`Unmap::cause`]), for the driver's own counters (the backend keeps none), and
//! shows both in tracepoints (`drm_svm:*`); and it can give a device's grants in a chunk a
//! minimum residency against other devices ([`Residency`]), so that devices contending for
//! one page or sweeping one buffer take turns and all make progress. It can also grant pages
//! ahead of a sequential stream of faults, within their chunk, like readahead
//! ([`Config::fault_around`]).
//!
//! # Locking
//!
//! Each context has three locks of its own. They nest, with the mm's and the residency's, in
//! this order:
//!
//! 1. the fault lock, which serialises the faults of a context like a device's fault queue,
//!    and keeps trimming away from the chunks a fault uses;
//! 2. the chunk lock, over the context's chunk notifiers (a chunk's grant slots, with their
//!    count and whether it was emptied, are under the page-table lock);
//! 3. the mmap lock (read), held around `make_device_exclusive()` for one page;
//! 4. the folio lock, taken by `make_device_exclusive()` for one page;
//! 5. the page-table lock, over the driver's page table and the grants mirrored in it;
//! 6. the lock of a [`Residency`] the context shares with other devices' contexts (a spinlock).
//!
//! [`DriverSvm::map_atomic`] and [`DriverSvm::unmap`] run under the page-table lock, and must
//! not allocate (reclaim may invalidate, and so need this lock). The core tells lockdep that
//! reclaim may start an invalidation, and so learns that reclaim takes the lock once a callback
//! has taken it; [`SvmContext::new`] tells it at once, so that an allocation under the lock is
//! reported even in a boot where no invalidation of a context has run yet.
//! `map_atomic` must not sleep either (the folio is locked); `unmap` may, when the
//! invalidation is blockable, to wait for the device. [`DriverSvm::alloc_pte`] allocates with
//! the fault lock and possibly the mmap lock held, not the page-table lock. The invalidation
//! callback takes the page-table lock (and only tries to, when it must not sleep) and, under
//! it, the residency lock. Notifiers are removed, which waits for the mm's invalidations in
//! progress, with neither the chunk lock nor the mmap lock held, but with the fault lock held
//! (trimming, a fault's own chunk, per-fault notifiers): nothing an invalidation waits for,
//! including a driver's blocking `unmap`, may depend on the fault lock.
//!
//! A fault calls `mmu_interval_read_begin()`, which may wait for an invalidation in progress,
//! without the mmap lock, in the order Documentation/mm/hmm.rst shows, and takes the mmap read
//! lock for each page after it.
//!
//! A grant is valid because of the interval notifier's sequence protocol: a fault names the
//! page it grants under the page-table lock, reads the notifier's sequence, makes the page
//! exclusive, and maps it only if, under the page-table lock again, no invalidation of that
//! page began in between. Every invalidation publishes its sequence but those the fault makes
//! itself (an exclusive conversion for the context's owner, as nouveau filters it, and the
//! ones the granting task causes inside `make_device_exclusive()`: splitting a PMD, faulting
//! the page back from another device), for which a retry would livelock. The callback also
//! records, under the page-table lock, whether the invalidation covered the named page; one
//! of another page of the chunk does not force a retry.
//!
//! # Example
//!
//! A device page table with one entry per page, the context of a process that opened the
//! device, and a fault handler for atomic accesses:
//!
//! ```
//! use kernel::{
//!     drm::svm::{Config, DriverSvm, Refused, SvmContext, Unmap},
//!     mm::{device_exclusive::DeviceExclusiveFolio, mmu_notifier::Owner, MmWithUser},
//!     page::{PAGE_MASK, PAGE_SHIFT},
//!     prelude::*,
//!     rbtree::{RBTree, RBTreeNodeReservation},
//!     sync::atomic::Relaxed,
//! };
//!
//! /// Page frame of each page the device may access atomically, by page index.
//! struct MyPageTable(RBTree<usize, usize>);
//!
//! impl DriverSvm for MyPageTable {
//!     // A tree node, allocated before the page-table lock is taken.
//!     type PteAlloc = RBTreeNodeReservation<usize, usize>;
//!
//!     fn alloc_pte() -> Result<Self::PteAlloc> {
//!         RBTreeNodeReservation::new(GFP_KERNEL_ACCOUNT)
//!     }
//!
//!     fn map_atomic(
//!         &mut self,
//!         grant: &DeviceExclusiveFolio,
//!         mem: &mut Option<Self::PteAlloc>,
//!     ) -> Result {
//!         // Real hardware: map `grant.page()` for the device's DMA, and write the entry, with
//!         // the atomic bit, into the device page table. Every entry needs a node of its own.
//!         let node = mem.take().ok_or(ENOMEM)?;
//!         self.0.insert(node.into_node(grant.addr() >> PAGE_SHIFT, grant.pfn()));
//!         Ok(())
//!     }
//!
//!     fn unmap<'a>(&mut self, range: &Unmap<'a>) -> Result<(), Refused<'a>> {
//!         // Real hardware: clear the entries, invalidate the device TLB and wait for it (a
//!         // non-blockable range that would have to wait returns `range.refuse()` instead).
//!         for (addr, _page) in range.pages() {
//!             self.0.remove(&(addr >> PAGE_SHIFT));
//!         }
//!         Ok(())
//!     }
//! }
//!
//! /// A process opened the device: `mm` is its address space, `owner` the device's cookie,
//! /// which `make_device_exclusive()` passes on to the notifiers.
//! fn open(mm: &MmWithUser, owner: Owner) -> Result<Pin<KBox<SvmContext<MyPageTable>>>> {
//!     let pt = MyPageTable(RBTree::new());
//!     KBox::pin_init(SvmContext::new(mm, pt, Config::new(owner)), GFP_KERNEL_ACCOUNT)
//! }
//!
//! /// The device faulted on an atomic access to `addr`: grant the page, then replay the
//! /// access while the device holds it (a real device would retry the access itself).
//! fn atomic_fault(ctx: &SvmContext<MyPageTable>, addr: usize) -> Result<u64> {
//!     let page = addr & PAGE_MASK;
//!     loop {
//!         ctx.atomic_fault(page, 1)?;
//!         let done = ctx.with_atomic_page(page, |_pt, mapped| {
//!             mapped.atomic::<u64>(addr - page).map(|v| v.fetch_add(1, Relaxed))
//!         });
//!         // `None`: the CPU took the page back before the device used it; fault again.
//!         if let Some(old) = done {
//!             return old;
//!         }
//!     }
//! }
//! # let _ = (open, atomic_fault);
//! ```
//!
//! C header: [`include/linux/rmap.h`](srctree/include/linux/rmap.h)

use crate::{
    mm::{
        device_exclusive::DeviceExclusiveFolio,
        mmu_notifier::Owner, //
    },
    prelude::*,
    sync::Arc,
    time::Delta, //
};

mod charge;
mod context;
mod fault;
mod fault_around;
mod granting;
mod grants;
mod notifier;
mod page;
mod residency;
mod stats;
mod trace;
mod unmap;

pub use context::{
    Blocked,
    SvmContext, //
};
pub use page::AtomicPage;
pub use residency::Residency;
pub use stats::{
    FaultError,
    Faulted,
    RevokeCause, //
};
pub use unmap::{
    Refused,
    Unmap, //
};

/// A device page table that can map process pages with atomic permission.
///
/// What a driver implements, beside its [`drm::Driver`](crate::drm::Driver), to use an
/// [`SvmContext`]. The context owns the page table and calls [`DriverSvm::map_atomic`] and
/// [`DriverSvm::unmap`] under its page-table lock (see [Locking](self#locking)).
pub trait DriverSvm: Send + Unpin + 'static {
    /// Memory [`DriverSvm::map_atomic`] may need to map a page (a page-table leaf, a tree
    /// node), allocated before the page-table lock is taken.
    type PteAlloc: Send + Unpin;

    /// Allocates memory [`DriverSvm::map_atomic`] may need to map a page.
    ///
    /// The context keeps one such allocation and calls this again only once `map_atomic` has
    /// taken it: a page table that adds a leaf for every 512 pages allocates once per leaf,
    /// not once per grant.
    ///
    /// May sleep. Called with the context's fault lock and possibly the mmap read lock held
    /// (not the page-table lock): it must not take either, nor any lock ordered before them.
    /// Allocations a user causes should be charged to its memory cgroup
    /// (`GFP_KERNEL_ACCOUNT`). An error is returned from the fault as it is.
    fn alloc_pte() -> Result<Self::PteAlloc>;

    /// Maps the page `grant` holds, at user address `grant.addr()`, with read, write and atomic
    /// permission.
    ///
    /// `grant` is the page made device-exclusive for this device, with its folio locked. Its
    /// [`DeviceExclusiveFolio::page`] is what the device reaches (map it for the device's DMA,
    /// `dma_map_page()`); [`DeviceExclusiveFolio::order`] and [`DeviceExclusiveFolio::index`]
    /// say where it lies in a large folio, so that a driver may use a large device PTE once it
    /// holds all of a THP's pages. The driver takes no reference to the page: the
    /// device-exclusive entry holds it until the invalidation that calls [`DriverSvm::unmap`].
    ///
    /// `mem` holds an allocation from [`DriverSvm::alloc_pte`]: the mapping takes it
    /// ([`Option::take`]) if it needs new memory, and leaves it for a later call if not.
    ///
    /// Called with the page-table lock held and the page's folio locked: reclaim may need the
    /// page-table lock, so this must not allocate. An error is returned from the fault as it
    /// is.
    fn map_atomic(
        &mut self,
        grant: &DeviceExclusiveFolio,
        mem: &mut Option<Self::PteAlloc>,
    ) -> Result;

    /// Removes any mapping of `[range.start(), range.end())` from the device page table.
    ///
    /// [`Unmap::pages`] lists the pages [`DriverSvm::map_atomic`] mapped there, which the
    /// device must not reach once this returns: invalidate the device's TLB, and wait for it.
    /// A blockable range ([`Unmap::is_blockable`]) may sleep to do so, under the page-table
    /// lock, which reclaim, CPU faults on granted pages and faults of this context wait for:
    /// the wait must not depend on memory allocation, on a device fault being serviced, or on
    /// a fence whose signalling does. A non-blockable one (the OOM reaper's) must not sleep: if
    /// the driver cannot finish without waiting, it refuses with [`Unmap::refuse`], changes
    /// nothing, and the grants stay.
    ///
    /// Called once for each chunk an invalidation removes grants from, with the
    /// invalidation's cause ([`Unmap::cause`]): the one hook a driver counts revocations in
    /// (when it returns `Ok`: a refused unmap revokes nothing).
    ///
    /// Called with the page-table lock held; the range may be everything (`0..usize::MAX`), so
    /// walk the entries or the pages, not the addresses.
    fn unmap<'a>(&mut self, range: &Unmap<'a>) -> Result<(), Refused<'a>>;
}

/// How an [`SvmContext`] watches the pages it granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifierMode {
    /// One interval notifier per 2 MiB chunk that holds grants, kept until a fault trims the
    /// chunks whose grants were revoked (once 32 of them are), or the context goes away.
    LongLived,
    /// Like nouveau: a notifier for the faulting page is inserted for each fault and removed
    /// after it (the chunk notifiers still watch the grants). For comparison only.
    PerFault,
}

/// Tunables of an [`SvmContext`].
#[derive(Clone)]
pub struct Config {
    /// The device's owner cookie, passed to `make_device_exclusive()`; invalidations carrying
    /// it are the device's own and are ignored.
    pub owner: Owner,
    /// How long one page's fault may keep retrying, or waiting for another device's turn
    /// ([`Config::residency`]), before it fails with `EBUSY`. Fault-around stops granting ahead
    /// once the whole fault has taken this long.
    pub timeout: Delta,
    /// How grants are watched.
    pub notifiers: NotifierMode,
    /// A minimum residency shared with other devices' contexts, or `None` (nouveau's
    /// behaviour: a grant can be taken away at once).
    pub residency: Option<Arc<Residency>>,
    /// Most pages a fault grants ahead of those it was asked for, within the chunk of the
    /// last one, while the context's faults follow each other (fault-around); 0, nouveau's
    /// behaviour, grants only what was asked for. A page ahead is granted only if that needs
    /// no wait and no retry; failing to grant it does not fail the fault.
    pub fault_around: usize,
}

impl Config {
    /// `HMM_RANGE_DEFAULT_TIMEOUT`, the deadline nouveau uses.
    pub const DEFAULT_TIMEOUT: Delta = Delta::from_millis(1000);

    /// The defaults for a device: long-lived notifiers, one second per page.
    pub fn new(owner: Owner) -> Self {
        Self {
            owner,
            timeout: Self::DEFAULT_TIMEOUT,
            notifiers: NotifierMode::LongLived,
            residency: None,
            fault_around: 0,
        }
    }
}

#[cfg(CONFIG_RUST_DRM_SVM_KUNIT_TEST)]
mod tests;

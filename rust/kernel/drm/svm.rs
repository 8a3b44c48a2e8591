// SPDX-License-Identifier: GPL-2.0

//! Shared virtual memory: device atomics on process memory.
//!
//! A device (a GPU) that wants to perform atomic operations on a page of a process's private
//! anonymous memory takes the page away from the CPU with `make_device_exclusive()`, maps it in
//! its own page table with atomic permission, and gives it back as soon as the CPU or another
//! device touches it. This module does the mm side of that for a driver, the way nouveau's
//! `nouveau_atomic_range_fault()` does it in C, and more:
//!
//! - long-lived interval notifiers, one per 2 MiB chunk that holds grants, instead of one
//!   inserted and removed per fault ([`NotifierMode`]; the nouveau way is kept for comparison);
//! - batching: [`SvmContext::atomic_fault`] grants a range of pages, releasing each folio lock
//!   before the next page (all pages of a THP share one lock);
//! - a bounded retry loop with a deadline and backoff (`EBUSY` on expiry, `EINTR` on a fatal
//!   signal); other errors of `make_device_exclusive()` are passed through unchanged;
//! - the device's own `MMU_NOTIFY_EXCLUSIVE` events are ignored before any lock is taken;
//! - folios are marked dirty, since device-exclusive entries look clean to the core mm;
//! - statistics, including revocations by cause ([`Stats`]).
//!
//! The driver implements [`Driver`]: how to program and clear its page table entries. The
//! context owns the page table and its lock, so that the lock order mmap lock → folio lock →
//! page-table lock holds: the driver only ever sees the page table through the context, which
//! takes the page-table lock last, and runs device operations on a granted page through
//! [`SvmContext::with_atomic_page`].
//!
//! C header: [`include/linux/rmap.h`](srctree/include/linux/rmap.h)

use crate::{
    mm::mmu_notifier::Owner,
    prelude::*,
    sync::Arc,
    time::Delta, //
};

mod context;
mod granting;
mod notifier;
mod page;
mod residency;
pub mod stats;
mod trace;

pub use context::SvmContext;
pub use page::AtomicPage;
pub use residency::Residency;
pub use stats::{
    Phase,
    RevokeCause,
    Snapshot,
    Stats, //
};

/// A device whose page table can map process pages with atomic permission.
pub trait Driver: Send + Sync + 'static {
    /// The device page table (or the driver's handle to it). The [`SvmContext`] keeps it under
    /// its page-table lock.
    type PageTable: Send + Unpin;

    /// What [`Driver::map_atomic`] needs to map one page (a page-table entry, a tree node),
    /// allocated before any lock is taken.
    type PteAlloc: Send;

    /// Allocates what [`Driver::map_atomic`] needs to map the page at `addr`.
    ///
    /// May sleep. Called with the context's fault lock and possibly the mmap read lock held
    /// (not the page-table lock): it must not take either, nor any lock ordered before them.
    /// Allocations a user causes should be charged to its memory cgroup
    /// (`GFP_KERNEL_ACCOUNT`). An error is returned from the fault as it is.
    fn alloc_pte(addr: usize) -> Result<Self::PteAlloc>;

    /// Maps page frame `pfn` at user address `addr` with read, write and atomic permission,
    /// using `mem` from [`Driver::alloc_pte`].
    ///
    /// Called with the page-table lock held and the page's folio locked: reclaim may need the
    /// page-table lock, so this must not allocate. An error is returned from the fault as it
    /// is.
    fn map_atomic(pt: &mut Self::PageTable, addr: usize, pfn: usize, mem: Self::PteAlloc)
        -> Result;

    /// Removes any mapping of `[start, end)` from the device page table.
    ///
    /// Called with the page-table lock held, possibly from an invalidation that must not sleep:
    /// this must not sleep. When it returns, the device must no longer access those pages.
    fn unmap(pt: &mut Self::PageTable, start: usize, end: usize);
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
    /// How long one page's fault may keep retrying before it fails with `EBUSY`.
    pub timeout: Delta,
    /// How grants are watched.
    pub notifiers: NotifierMode,
    /// A minimum residency shared with other devices' contexts, or `None` (nouveau's
    /// behaviour: a grant can be taken away at once).
    pub residency: Option<Arc<Residency>>,
    /// Counters that also count everything this context counts (see [`Stats::new_shared`]).
    pub device_stats: Option<Arc<Stats>>,
    /// Time the phases of each grant ([`Stats`] `phase_ns`), for profiling; costs a clock
    /// read per phase.
    pub profile: bool,
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
            device_stats: None,
            profile: false,
        }
    }
}

#[cfg(CONFIG_RUST_DRM_SVM_KUNIT_TEST)]
mod tests;

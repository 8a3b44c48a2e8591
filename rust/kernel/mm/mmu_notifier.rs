// SPDX-License-Identifier: GPL-2.0

//! MMU interval notifiers.
//!
//! An interval notifier tells a driver that keeps its own mappings of a process's memory (a
//! "secondary MMU", such as a GPU page table) that the CPU page tables of a range of virtual
//! addresses are about to change, so the driver must stop using its copies of them.
//!
//! Readers use the sequence protocol of the C API: take a sequence with
//! [`MmuIntervalNotifier::read_begin`], build the device mapping, then take the driver lock that
//! the invalidate callback also takes and check [`MmuIntervalNotifier::read_retry`] before making
//! the mapping visible. The callback publishes its sequence with [`InvalidateSeq::set`] under
//! that same lock: `mmu_interval_read_begin()` waits only for invalidations that published
//! theirs.
//!
//! C header: [`include/linux/mmu_notifier.h`](srctree/include/linux/mmu_notifier.h)

use crate::{
    bindings,
    error::to_result,
    ffi::c_void,
    mm::{
        Mm,
        MmWithUser, //
    },
    prelude::*,
    types::Opaque,
};
use core::marker::PhantomData;

/// The reason for an invalidation, from `enum mmu_notifier_event`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// `munmap()` or `mremap()` removed or moved the range.
    Unmap,
    /// Page table entries were cleared (`madvise()`, a page replaced by another, a CPU fault
    /// revoking device-exclusive access, ...).
    Clear,
    /// `mprotect()` changed the protection of the whole VMA.
    ProtectionVma,
    /// The protection of individual pages changed (write-protection for fork's copy-on-write,
    /// KSM, ...).
    ProtectionPage,
    /// Soft-dirty tracking was reset.
    SoftDirty,
    /// The mm is being torn down (the process exited).
    Release,
    /// Pages are being migrated; [`Range::owner`] names the device that migrates them, if any.
    Migrate,
    /// A page is being made device-exclusive; [`Range::owner`] names the device that asked.
    Exclusive,
}

impl Event {
    fn from_raw(event: bindings::mmu_notifier_event) -> Self {
        match event {
            bindings::mmu_notifier_event_MMU_NOTIFY_UNMAP => Self::Unmap,
            bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_VMA => Self::ProtectionVma,
            bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_PAGE => Self::ProtectionPage,
            bindings::mmu_notifier_event_MMU_NOTIFY_SOFT_DIRTY => Self::SoftDirty,
            bindings::mmu_notifier_event_MMU_NOTIFY_RELEASE => Self::Release,
            bindings::mmu_notifier_event_MMU_NOTIFY_MIGRATE => Self::Migrate,
            bindings::mmu_notifier_event_MMU_NOTIFY_EXCLUSIVE => Self::Exclusive,
            // `MMU_NOTIFY_CLEAR`, and the most conservative reading of any event added later.
            _ => Self::Clear,
        }
    }
}

/// An opaque cookie that identifies the owner of a device mapping.
///
/// It is passed to [`make_device_exclusive`] and comes back in [`Range::owner`] of the
/// [`Event::Exclusive`] invalidation that the call itself causes, so that a driver can recognise
/// (and ignore) its own grants. It is only ever compared, never dereferenced.
///
/// [`make_device_exclusive`]: crate::mm::MmapReadGuard::make_device_exclusive
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner(*mut c_void);

// SAFETY: An `Owner` is an address used as a token; it is never dereferenced.
unsafe impl Send for Owner {}
// SAFETY: An `Owner` is an address used as a token; it is never dereferenced.
unsafe impl Sync for Owner {}

impl Owner {
    /// Creates an owner cookie from the address of an object that outlives its use, typically the
    /// driver's per-device data.
    #[inline]
    pub fn from_ptr<T>(ptr: *const T) -> Self {
        Self(ptr.cast_mut().cast())
    }

    /// Returns the cookie as the pointer the C API expects.
    #[inline]
    pub fn as_ptr(self) -> *mut c_void {
        self.0
    }
}

/// The range of an invalidation, a view of `struct mmu_notifier_range`.
///
/// # Invariants
///
/// `self.0` is a valid `struct mmu_notifier_range` for the duration of the callback that received
/// a reference to it.
#[repr(transparent)]
pub struct Range(Opaque<bindings::mmu_notifier_range>);

impl Range {
    /// # Safety
    ///
    /// `ptr` must point to a valid `struct mmu_notifier_range` for the lifetime `'a`.
    unsafe fn from_raw<'a>(ptr: *const bindings::mmu_notifier_range) -> &'a Self {
        // SAFETY: `Range` is a transparent wrapper and the caller guarantees validity for `'a`.
        unsafe { &*ptr.cast() }
    }

    fn raw(&self) -> &bindings::mmu_notifier_range {
        // SAFETY: By the type invariant the range is valid, and the notifier core does not
        // change it while callbacks run.
        unsafe { &*self.0.get() }
    }

    /// The first address of the range.
    #[inline]
    pub fn start(&self) -> usize {
        self.raw().start
    }

    /// The address just past the range.
    #[inline]
    pub fn end(&self) -> usize {
        self.raw().end
    }

    /// Why the range is being invalidated.
    #[inline]
    pub fn event(&self) -> Event {
        Event::from_raw(self.raw().event)
    }

    /// The owner given by whoever started the invalidation ([`Event::Exclusive`] and
    /// [`Event::Migrate`]), or `None`.
    #[inline]
    pub fn owner(&self) -> Option<Owner> {
        let owner = self.raw().owner;
        (!owner.is_null()).then_some(Owner(owner))
    }

    /// Whether the callback may sleep.
    ///
    /// When this is false (for example, during reclaim) the callback must not sleep and must
    /// return `false` if it would have to wait for a lock.
    #[inline]
    pub fn is_blockable(&self) -> bool {
        // SAFETY: The range is valid by the type invariant.
        unsafe { bindings::mmu_notifier_range_blockable(self.0.get()) }
    }
}

/// The callbacks of an [`MmuIntervalNotifier`].
pub trait MmuIntervalNotifierOps: Sync + Send + Sized + 'static {
    /// Called before the CPU page tables of any part of the notifier's interval change.
    ///
    /// Upon return the driver must no longer use any device mapping in `range`. It must call
    /// [`InvalidateSeq::set`] under the lock that guards [`MmuIntervalNotifier::read_retry`].
    ///
    /// Return `false` only if the range is not blockable ([`Range::is_blockable`]) and the
    /// work would need to sleep, with [`InvalidateSeq::refuse`]: the core then gives the
    /// operation up (the OOM reaper skips the range; the process's exit unmaps it later,
    /// blockable). Never for a blockable range.
    fn invalidate(
        notifier: &MmuIntervalNotifier<Self>,
        range: &Range,
        seq: InvalidateSeq<'_>,
    ) -> bool;
}

/// The new sequence number of an invalidation in progress.
///
/// It exists only inside [`MmuIntervalNotifierOps::invalidate`], so the sequence can only be
/// published from there. `include/linux/mmu_notifier.h` requires every callback to publish it:
/// `mmu_interval_read_begin()` waits for an invalidation in progress only if that invalidation
/// published its sequence, so a reader that skipped one could map a page the invalidation is
/// about to free.
///
/// Dropping it without calling a method publishes it like [`InvalidateSeq::set`] (the rule of
/// the C API: `mmu_interval_set_seq()` is called unconditionally), so that no sequence is ever
/// lost; drop it under the driver lock too. Not publishing it is only sound under the rules of
/// the `unsafe` [`InvalidateSeq::reader_own`].
pub struct InvalidateSeq<'a> {
    notifier: *mut bindings::mmu_interval_notifier,
    /// `None` for a callback made by a test, which changes no page table.
    seq: Option<usize>,
    /// Valid only during the callback that received it.
    _callback: PhantomData<&'a ()>,
}

impl InvalidateSeq<'_> {
    /// Publishes the sequence now (`mmu_interval_set_seq()`), so that a concurrent reader's
    /// [`MmuIntervalNotifier::read_retry`] reports the collision.
    ///
    /// Call it under the same driver lock that readers hold for `read_retry`.
    pub fn set(self) {
        // Publishes it.
        drop(self);
    }

    /// Publishes nothing, for an invalidation that the notifier's only reader makes itself,
    /// inside its own read section (for example the `MMU_NOTIFY_EXCLUSIVE` of its own
    /// `make_device_exclusive()`).
    ///
    /// Such an invalidation has ended before the reader's next `read_begin`, so no later
    /// section needs to wait for it; the reader knows about it, so the section in progress
    /// need not retry for it. Publishing it anyway would make that next `read_begin` wait
    /// for every other invalidation of the mm that overlaps it in time.
    ///
    /// # Safety
    ///
    /// The notifier has one reader at a time, and the invalidation cannot make any of its read
    /// sections stale: it is the reader's own, made inside its read section (the same task,
    /// between its `read_begin` and `read_retry`), or it changes no entry a section may have
    /// mapped (such as an `MMU_NOTIFY_EXCLUSIVE` conversion for the reader's owner, which only
    /// replaces a present PTE it has just checked, so that a section on the same page must
    /// first fault that entry back through an invalidation of its own).
    pub unsafe fn reader_own(self) {
        core::mem::forget(self);
    }

    /// Refuses a non-blockable invalidation: publishes nothing (nothing changed, and the core
    /// gives the operation up) and returns `false`, for the callback to return.
    ///
    /// Only for a range that is not blockable ([`Range::is_blockable`]): the core warns if a
    /// blockable invalidation is refused, and goes on.
    pub fn refuse(self) -> bool {
        core::mem::forget(self);
        false
    }

    /// The sequence number, for diagnostics (0 for a test callback).
    #[inline]
    pub fn value(&self) -> usize {
        self.seq.unwrap_or(0)
    }
}

impl Drop for InvalidateSeq<'_> {
    fn drop(&mut self) {
        if let Some(seq) = self.seq {
            // SAFETY: `self.notifier` is the notifier whose callback is running, valid for `'a`.
            unsafe { bindings::mmu_interval_set_seq(self.notifier, seq) };
        }
    }
}

/// Runs `f` as if reclaim ran it, for lockdep (`fs_reclaim_acquire()`).
///
/// A driver whose invalidation callback takes a lock tells lockdep so when it creates the
/// notifier, by taking the lock in `f`: reclaim invalidates, so an allocation that may reclaim
/// made with that lock held can deadlock on it, and lockdep then reports each such allocation
/// at once, not only when reclaim happens to invalidate at the wrong moment. drm_gpusvm does
/// the same for its notifier lock. Without `CONFIG_LOCKDEP`, this just runs `f`; it records
/// nothing either inside a `memalloc_nofs`/`noio` scope or in reclaim itself, so call it from
/// an ordinary context (when the notifier is created).
pub fn taken_in_reclaim(f: impl FnOnce()) {
    #[cfg(CONFIG_LOCKDEP)]
    // SAFETY: Only a lockdep annotation, released below.
    unsafe {
        bindings::fs_reclaim_acquire(crate::alloc::flags::GFP_KERNEL.as_raw())
    };
    f();
    #[cfg(CONFIG_LOCKDEP)]
    // SAFETY: Acquired above.
    unsafe {
        bindings::fs_reclaim_release(crate::alloc::flags::GFP_KERNEL.as_raw())
    };
}

/// A sequence number from [`MmuIntervalNotifier::read_begin`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadSeq(usize);

/// An interval notifier over `[start, start + length)` of one address space.
///
/// # Invariants
///
/// `notifier` is inserted in the interval tree of `notifier.mm` with the callbacks of `T` for as
/// long as `self` exists; the C core holds an `mmgrab` reference on that mm in the meantime.
/// `data` is initialised before the notifier is inserted.
///
/// # Examples
///
/// ```
/// use kernel::mm::{mmu_notifier::*, MmWithUser};
/// use kernel::prelude::*;
/// use kernel::sync::atomic::{Atomic, Relaxed};
///
/// struct Counter(Atomic<u32>);
///
/// impl MmuIntervalNotifierOps for Counter {
///     fn invalidate(n: &MmuIntervalNotifier<Self>, _r: &Range, seq: InvalidateSeq<'_>) -> bool {
///         n.data().0.fetch_add(1, Relaxed);
///         seq.set();
///         true
///     }
/// }
///
/// fn watch(mm: &MmWithUser, addr: usize) -> Result<Pin<KBox<MmuIntervalNotifier<Counter>>>> {
///     KBox::pin_init(
///         MmuIntervalNotifier::new(mm, addr, 4096, Ok::<_, Error>(Counter(Atomic::new(0)))),
///         GFP_KERNEL,
///     )
/// }
/// ```
#[pin_data(PinnedDrop)]
pub struct MmuIntervalNotifier<T: MmuIntervalNotifierOps> {
    #[pin]
    data: T,
    #[pin]
    notifier: Opaque<bindings::mmu_interval_notifier>,
}

// SAFETY: The C notifier may be used and removed from any thread; `T` is `Send`.
unsafe impl<T: MmuIntervalNotifierOps> Send for MmuIntervalNotifier<T> {}
// SAFETY: The C notifier's read side is safe to use concurrently; `T` is `Sync`.
unsafe impl<T: MmuIntervalNotifierOps> Sync for MmuIntervalNotifier<T> {}

impl<T: MmuIntervalNotifierOps> MmuIntervalNotifier<T> {
    const OPS: bindings::mmu_interval_notifier_ops = bindings::mmu_interval_notifier_ops {
        invalidate: Some(Self::invalidate_callback),
        invalidate_start: None,
        invalidate_finish: None,
    };

    /// Creates a notifier for `[start, start + length)` of `mm` (`mmu_interval_notifier_insert()`).
    ///
    /// The callback may run as soon as the notifier is inserted. Fails with `EINVAL` for an
    /// empty or overflowing range and `ENOMEM` if the notifier core cannot allocate.
    pub fn new(
        mm: &MmWithUser,
        start: usize,
        length: usize,
        data: impl PinInit<T, Error>,
    ) -> impl PinInit<Self, Error> {
        let mm = mm.as_raw();
        try_pin_init!(Self {
            data <- data,
            notifier <- Opaque::try_ffi_init(|slot: *mut bindings::mmu_interval_notifier| {
                if length == 0 || start.checked_add(length).is_none() {
                    return Err(EINVAL);
                }
                // SAFETY: `slot` is valid and pinned for the life of `Self`, whose drop removes
                // the notifier; `mm` has a user by the type of the argument; `data` is
                // initialised, so the callback may run at once; `OPS` is a promoted constant.
                to_result(unsafe {
                    bindings::mmu_interval_notifier_insert(
                        slot,
                        mm,
                        start,
                        length,
                        &Self::OPS,
                    )
                })
            }),
        }? Error)
    }

    /// The driver data.
    #[inline]
    pub fn data(&self) -> &T {
        &self.data
    }

    /// The address space this notifier watches.
    #[inline]
    pub fn mm(&self) -> &Mm {
        // SAFETY: By the type invariant the notifier is inserted and its `mm` is pinned by the
        // core's `mmgrab` until removal, which happens only in our drop.
        unsafe { Mm::from_raw((*self.notifier.get()).mm) }
    }

    /// Starts a read-side critical section (`mmu_interval_read_begin()`).
    ///
    /// Waits (sleeps) for an invalidation of the notifier's interval in progress to finish
    /// before it returns.
    #[inline]
    pub fn read_begin(&self) -> ReadSeq {
        // SAFETY: The notifier is inserted by the type invariant.
        ReadSeq(unsafe { bindings::mmu_interval_read_begin(self.notifier.get()) })
    }

    /// Ends a read-side critical section (`mmu_interval_read_retry()`): true if an invalidation
    /// collided with it, and the caller must throw away what it built and start again.
    ///
    /// Only meaningful under the driver lock that the invalidate callback holds when it calls
    /// [`InvalidateSeq::set`].
    #[inline]
    pub fn read_retry(&self, seq: ReadSeq) -> bool {
        // SAFETY: The notifier is inserted by the type invariant.
        unsafe { bindings::mmu_interval_read_retry(self.notifier.get(), seq.0) }
    }

    /// Whether an invalidation has collided with the section begun at `seq`
    /// (`mmu_interval_check_retry()`): a lockless hint to give up early; `false` is not
    /// reliable.
    #[inline]
    pub fn check_retry(&self, seq: ReadSeq) -> bool {
        // SAFETY: The notifier is inserted by the type invariant.
        unsafe { bindings::mmu_interval_check_retry(self.notifier.get(), seq.0) }
    }

    /// The first address watched.
    #[inline]
    pub fn start(&self) -> usize {
        // SAFETY: The notifier is inserted; its interval never changes after insertion.
        unsafe { (*self.notifier.get()).interval_tree.start }
    }

    /// The last address watched (inclusive).
    #[inline]
    pub fn last(&self) -> usize {
        // SAFETY: The notifier is inserted; its interval never changes after insertion.
        unsafe { (*self.notifier.get()).interval_tree.last }
    }

    /// Calls the invalidate callback as the core would for `[start, start + len)`, for tests of
    /// callbacks in situations that are hard to provoke, such as non-blockable invalidations.
    ///
    /// No page table changes, so nothing is published: [`InvalidateSeq::set`] does nothing for
    /// such a callback.
    ///
    /// Only for the KUnit tests of the notifier's users in this crate.
    #[cfg(CONFIG_KUNIT)]
    #[allow(
        dead_code,
        reason = "used only by the KUnit tests that are configured in"
    )]
    pub(crate) fn invalidate_for_test(&self, start: usize, len: usize, blockable: bool) -> bool {
        let range = bindings::mmu_notifier_range {
            mm: self.mm().as_raw(),
            start,
            end: start.saturating_add(len),
            flags: if blockable {
                bindings::MMU_NOTIFIER_RANGE_BLOCKABLE
            } else {
                0
            },
            event: bindings::mmu_notifier_event_MMU_NOTIFY_CLEAR,
            owner: core::ptr::null_mut(),
        };
        let seq = InvalidateSeq {
            notifier: self.notifier.get(),
            seq: None,
            _callback: PhantomData,
        };
        // SAFETY: `range` is valid for the duration of the call.
        T::invalidate(self, unsafe { Range::from_raw(&range) }, seq)
    }

    /// # Safety
    ///
    /// Only the notifier core calls this, with the `notifier` field of a live `Self` and a valid
    /// range.
    unsafe extern "C" fn invalidate_callback(
        sub: *mut bindings::mmu_interval_notifier,
        range: *const bindings::mmu_notifier_range,
        cur_seq: usize,
    ) -> bool {
        // SAFETY: `sub` is the `notifier` field of a `Self`, inserted by `new`, and the core
        // does not call us after `mmu_interval_notifier_remove()` returned.
        let this = unsafe { &*crate::container_of!(Opaque::cast_from(sub), Self, notifier) };
        // SAFETY: The core passes a range that is valid for the duration of the callback.
        let range = unsafe { Range::from_raw(range) };
        let seq = InvalidateSeq {
            notifier: sub,
            seq: Some(cur_seq),
            _callback: PhantomData,
        };
        T::invalidate(this, range, seq)
    }
}

#[pinned_drop]
impl<T: MmuIntervalNotifierOps> PinnedDrop for MmuIntervalNotifier<T> {
    /// Removes the notifier (`mmu_interval_notifier_remove()`).
    ///
    /// This may sleep: it waits for callbacks in progress on this notifier to return.
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant the notifier is inserted; after this no callback runs.
        unsafe { bindings::mmu_interval_notifier_remove(self.notifier.get()) };
    }
}

#[cfg(any(
    CONFIG_RUST_MMU_NOTIFIER_KUNIT_TEST,
    CONFIG_RUST_DEVICE_EXCLUSIVE_KUNIT_TEST
))]
pub(crate) mod recorder;
#[cfg(CONFIG_RUST_MMU_NOTIFIER_KUNIT_TEST)]
mod tests;

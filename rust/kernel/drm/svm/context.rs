// SPDX-License-Identifier: GPL-2.0

//! The per-(device, mm) SVM context and its fault path.

use super::{
    charge::RemoteCharge,
    fault::Fault,
    fault_around::Stream,
    grants::{
        ChunkSlots,
        Grants, //
    },
    notifier::{
        Chunk,
        CHUNK_SIZE, //
    },
    page::AtomicPage,
    trace,
    unmap::Unmap,
    Config,
    DriverSvm,
    FaultError,
    Faulted,
    Residency, //
};
use crate::{
    mm::{
        mmu_notifier::{
            taken_in_reclaim,
            MmuIntervalNotifier,
            Owner, //
        },
        virt::{
            flags as vm_flags,
            vm_flags_t, //
        },
        Mm,
        MmWithUser, //
    },
    page::{
        PAGE_SHIFT,
        PAGE_SIZE, //
    },
    prelude::*,
    rbtree::{
        RBTree,
        RBTreeNodeReservation, //
    },
    static_lock_class,
    str::CStr,
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        LockClassKey,
        Mutex,
        MutexGuard, //
    },
    time::{
        Instant,
        Monotonic, //
    },
};

pub(super) type ChunkNotifier<T> = MmuIntervalNotifier<Chunk<T>>;

/// The lock classes of a context's locks: page table, chunks, faults.
///
/// Made here, outside generic code: `new_mutex!()` in a generic function instantiated in a
/// module gives the module its own copy of the name for the kernel crate's key, and lockdep,
/// which compares both, warns.
#[inline(never)]
fn lock_classes() -> [(&'static CStr, Pin<&'static LockClassKey>); 3] {
    [
        (c"svm_page_table", static_lock_class!()),
        (c"svm_chunks", static_lock_class!()),
        (c"svm_fault", static_lock_class!()),
    ]
}

/// Chunks that may lose their last grant before a fault trims the context's chunks.
///
/// Not a bound on the notifiers a context holds: between faults, every chunk the process had
/// granted may be emptied. What bounds them is the memory behind the grants: a chunk notifier
/// exists only for a chunk that held a granted page, charged to the process like any other.
pub(super) const EMPTIED_MAX: usize = 32;

/// What the page-table lock protects: the driver's page table and the grants mirrored in it.
///
/// # Invariants
///
/// - Every grant in `grants` satisfies the invariant of [`Grant`], and its page was mapped in
///   `pt` with [`DriverSvm::map_atomic`]; a grant is removed only after [`DriverSvm::unmap`]
///   of its page.
/// - `grants` has the slots of every chunk in the context's chunk tree.
/// - `granting` is written only by the context's fault (serialised by the fault lock), under
///   this lock, before the `read_begin()` of each attempt, which also clears `collided`.
pub(super) struct State<T: DriverSvm> {
    pub(super) pt: T,
    pub(super) grants: Grants,
    /// An allocation from [`DriverSvm::alloc_pte`] that [`DriverSvm::map_atomic`] did not
    /// need, for the next grant (so a context that holds pages usually keeps one).
    pub(super) spare_pte: Option<T::PteAlloc>,
    /// How many [`Blocked`] guards keep grants out.
    blocked: usize,
    /// The page whose grant is being made (or was last attempted or looked at ahead, for a
    /// batch that then stopped), if any. Set before the fault's `read_begin()`, so that an
    /// invalidation either sees it under this lock or has published its sequence before that
    /// `read_begin()`, which then waits for it to end.
    pub(super) granting: Option<usize>,
    /// Whether an invalidation that the fault did not make itself covered `granting` since it
    /// was set: together with `read_retry()`, what makes the fault retry (see the notifier).
    pub(super) collided: bool,
}

impl<T: DriverSvm> State<T> {
    /// Whether the driver blocked grants, or revoked them all since the fault that read
    /// `generation` began.
    pub(super) fn cancelled(&self, shared: &Shared<T>, generation: usize) -> bool {
        self.blocked != 0 || shared.generation() != generation
    }

    /// Keeps `pte` for the next grant, unless one is kept already.
    pub(super) fn keep_spare(&mut self, pte: T::PteAlloc) {
        self.spare_pte.get_or_insert(pte);
    }

    /// The allocation kept for the next grant, if any.
    pub(super) fn take_spare(&mut self) -> Option<T::PteAlloc> {
        self.spare_pte.take()
    }

    /// Names `addr` as the page being granted, before the fault's `read_begin()`.
    pub(super) fn name(&mut self, addr: usize) {
        self.granting = Some(addr);
        self.collided = false;
    }
}

/// The part of a context that its notifiers share.
#[pin_data]
pub(super) struct Shared<T: DriverSvm> {
    pub(super) owner: Owner,
    /// The mm, as a key for [`Residency`].
    pub(super) mm_key: usize,
    pub(super) residency: Option<Arc<Residency>>,
    /// The task inside `make_device_exclusive()` for this context, or 0. Invalidations it
    /// causes itself (faulting the page back from another device, splitting a PMD) are part
    /// of the grant being made, not a collision with it.
    pub(super) granting_task: Atomic<usize>,
    /// Bumped under the page-table lock by [`SvmContext::revoke_all`]: a fault that began
    /// before commits no grant after it.
    generation: Atomic<usize>,
    /// Set when a revocation leaves [`EMPTIED_MAX`] emptied chunks: the next fault to end
    /// trims them (without taking the page-table lock to look).
    pub(super) trim_due: Atomic<bool>,
    #[pin]
    pub(super) state: Mutex<State<T>>,
}

impl<T: DriverSvm> Shared<T> {
    pub(super) fn owner_key(&self) -> usize {
        self.owner.as_ptr() as usize
    }

    /// Bumped by every [`SvmContext::revoke_all`], under the page-table lock.
    pub(super) fn generation(&self) -> usize {
        self.generation.load(Relaxed)
    }

    /// Under the page-table lock, after grants were removed: asks the next fault to trim once
    /// [`EMPTIED_MAX`] chunks are emptied.
    pub(super) fn note_emptied(&self, grants: &Grants) {
        if grants.emptied_chunks() >= EMPTIED_MAX {
            self.trim_due.store(true, Relaxed);
        }
    }

    /// Forgets this device's residency on chunk `index`, where it lost its last grant. Does not
    /// sleep.
    pub(super) fn forget(&self, index: usize) {
        if let Some(residency) = &self.residency {
            residency.forget(self.mm_key, index, self.owner_key());
        }
    }
}

/// The shared virtual memory state of one device for one address space.
///
/// Created when a process opens the device; grants the device atomic access to the process's
/// pages with [`SvmContext::atomic_fault`], runs the device's operations on them with
/// [`SvmContext::with_atomic_page`], and revokes grants when the mm says so. Dropping it revokes
/// every grant and removes its notifiers (which may sleep).
///
/// Its locks and the order they nest in are described in [Locking](super#locking).
#[pin_data(PinnedDrop)]
pub struct SvmContext<T: DriverSvm> {
    mm: ARef<Mm>,
    pub(super) config: Config,
    pub(super) shared: Arc<Shared<T>>,
    /// Long-lived notifiers by chunk index (`addr / CHUNK_SIZE`).
    #[pin]
    chunks: Mutex<RBTree<usize, Arc<ChunkNotifier<T>>>>,
    /// Serialises the faults of this context (like a device's fault queue), so that
    /// `Shared::granting_task` names the one task granting; over the stream of faults that
    /// fault-around follows.
    #[pin]
    pub(super) fault_lock: Mutex<Stream>,
}

impl<T: DriverSvm> SvmContext<T> {
    /// Creates a context for `mm` (usually the opener's) with the device page table `pt`.
    pub fn new(mm: &MmWithUser, pt: T, config: Config) -> impl PinInit<Self, Error> {
        let (owner, residency) = (config.owner, config.residency.clone());
        let [pt_class, chunks_class, fault_class] = lock_classes();
        let shared = Arc::pin_init(
            try_pin_init!(Shared {
                owner,
                mm_key: mm.as_raw() as usize,
                residency,
                granting_task: Atomic::new(0),
                generation: Atomic::new(0),
                trim_due: Atomic::new(false),
                state <- Mutex::new(
                    State {
                        pt,
                        grants: Grants::new(),
                        spare_pte: None,
                        blocked: 0,
                        granting: None,
                        collided: false,
                    },
                    pt_class.0,
                    pt_class.1,
                ),
            }? Error),
            GFP_KERNEL_ACCOUNT,
        );
        if let Ok(shared) = &shared {
            // The invalidation callback takes the page-table lock, and reclaim invalidates:
            // tell lockdep now, as drm_gpusvm does for its notifier lock, so that an allocation
            // under the lock (in `map_atomic()`, in a `with_atomic_page()` closure) is
            // reported even before any invalidation has taken it (after one, the core's own
            // annotation of `invalidate_range_start` covers it).
            taken_in_reclaim(|| drop(shared.state.lock()));
        }
        let mm: ARef<Mm> = ARef::from(&**mm);
        try_pin_init!(Self {
            mm,
            config,
            shared: shared?,
            chunks <- Mutex::new(RBTree::new(), chunks_class.0, chunks_class.1),
            fault_lock <- Mutex::new(Stream::new(), fault_class.0, fault_class.1),
        }? Error)
    }

    /// Whether this context belongs to `mm`.
    pub fn is_mm(&self, mm: &Mm) -> bool {
        core::ptr::eq(self.mm.as_raw(), mm.as_raw())
    }

    /// Grants the device atomic access to the `npages` pages starting at `addr`, the device's
    /// answer to an atomic fault.
    ///
    /// For each page: `make_device_exclusive()`, then under the page-table lock (if no
    /// invalidation collided with the grant) [`DriverSvm::map_atomic`]. Pages the device already
    /// holds are skipped. Each page's folio lock is released before the next page is taken, so
    /// a range within one THP is fine.
    ///
    /// Errors: `EINVAL` for an unaligned address, no pages or an overflowing range; `ESRCH` if
    /// the process is gone; `EBUSY` when a page could not be granted before the deadline of
    /// [`Config::timeout`]; `EINTR` on a fatal signal; `ECANCELED` if the driver blocked grants
    /// ([`Self::block`]) or revoked them all ([`Self::revoke_all`]) since the fault began;
    /// otherwise the error of `make_device_exclusive()` (`EFAULT`, `EOPNOTSUPP`, `ENOMEM`, ...)
    /// or of the driver. Pages granted before an error stay granted.
    ///
    /// With [`Config::fault_around`], the fault may also grant pages after those asked for.
    ///
    /// Returns what the fault did, for the driver's counters, also with its error.
    ///
    /// May sleep.
    pub fn atomic_fault(&self, addr: usize, npages: usize) -> Result<Faulted, FaultError> {
        self.grant(addr, npages, true)
    }

    /// Grants exactly the `npages` pages starting at `addr`, as [`Self::atomic_fault`] does
    /// but without fault-around, and leaving the stream fault-around follows as it is: for an
    /// explicit prefetch, whose range user space chose.
    ///
    /// May sleep.
    pub fn prefetch(&self, addr: usize, npages: usize) -> Result<Faulted, FaultError> {
        self.grant(addr, npages, false)
    }

    fn grant(&self, addr: usize, npages: usize, around: bool) -> Result<Faulted, FaultError> {
        let failed = |error| FaultError {
            error,
            done: Faulted::default(),
        };
        if addr % PAGE_SIZE != 0 || npages == 0 {
            return Err(failed(EINVAL));
        }
        // The last page may be the last of the address space (an error later, not here).
        let len = npages.checked_mul(PAGE_SIZE).ok_or(failed(EINVAL))?;
        addr.checked_add(len - 1).ok_or(failed(EINVAL))?;
        trace::fault_begin(self.shared.owner, addr, npages);
        let current = crate::current!();
        let (owned, _charge);
        let mm = match current.mm() {
            // The caller's own mm (a fault from its ioctl): its task keeps it alive.
            Some(mm) if self.is_mm(mm) => mm,
            _ => {
                // Another task (a driver's fault worker): what the fault allocates is the
                // process's, as from its own ioctl.
                owned = self.mm.mmget_not_zero().ok_or(failed(ESRCH))?;
                _charge = RemoteCharge::new(&owned);
                &*owned
            }
        };
        let mut fault = Fault::new(self, mm);
        let began = Instant::<Monotonic>::now();
        // Where fault-around would begin; `None` without it, or at the top of the address
        // space.
        let end = addr
            .checked_add(len)
            .filter(|_| around && self.config.fault_around != 0);
        let mut granted = 0;
        let mut ret = Ok(());
        for i in 0..npages {
            let page = addr + i * PAGE_SIZE;
            let next = (i + 1 < npages || end.is_some()) && (page + PAGE_SIZE) % CHUNK_SIZE != 0;
            match fault.page(page, next.then(|| page + PAGE_SIZE), false) {
                Ok(true) => granted += 1,
                Ok(false) => {}
                Err(e) => {
                    ret = Err(e);
                    break;
                }
            }
        }
        // Fault-around: the pages after those asked for, within their chunk and their VMA, as
        // long as each is granted at once (without waiting for another device's residency,
        // without a retry) and within the fault's deadline. Only a cancellation stops it with
        // an error.
        let mut granted_ahead = 0;
        match (end, &ret) {
            // Every page asked for was held already: a fault that was in flight while an
            // earlier one granted its pages, which says nothing about the stream.
            (Some(_), Ok(())) if granted == 0 => {}
            (Some(end), Ok(())) => {
                let window = match fault.stream().window(addr, end, self.config.fault_around) {
                    0 => 0,
                    window => window.min(Self::anon_pages_after(mm, end)),
                };
                let mut ahead = 0;
                while ahead < window && began.elapsed() < self.config.timeout {
                    let page = end + ahead * PAGE_SIZE;
                    let next = ahead + 1 < window;
                    match fault.page(page, next.then(|| page + PAGE_SIZE), true) {
                        Ok(true) => granted_ahead += 1,
                        Ok(false) => {}
                        Err(e) => {
                            if e == ECANCELED {
                                ret = Err(e);
                            }
                            break;
                        }
                    }
                    ahead += 1;
                }
                fault.stream().ended(end, ahead);
                fault.done.ahead = granted_ahead;
            }
            (Some(_), Err(_)) => fault.stream().reset(),
            // A prefetch, or no fault-around: the stream stays as it was.
            (None, _) => {}
        }
        let done = Faulted {
            granted: granted + granted_ahead,
            ..fault.done
        };
        // Lets go of the mmap lock, the chunk and the fault lock, in that order; the trimming
        // below removes notifiers, which waits for the mm's invalidations.
        drop(fault);
        trace::fault_end(self.shared.owner, addr, &ret);
        self.trim_emptied();
        ret.map(|()| done)
            .map_err(|error| FaultError { error, done })
    }

    /// Runs `f` with the device's page table and the kernel mapping of the page at `addr`, if
    /// the device holds that page with atomic permission; `None` if it does not (the device
    /// would fault).
    ///
    /// `f` runs under the page-table lock: the CPU and other devices wait to take the page
    /// back until it returns, so it must be short, and it must not allocate memory (reclaim
    /// takes the lock: lockdep reports it), fault on user memory, take the mmap lock or call
    /// back into this context (the lock is not recursive).
    pub fn with_atomic_page<R>(
        &self,
        addr: usize,
        f: impl FnOnce(&mut T, &AtomicPage<'_>) -> R,
    ) -> Option<R> {
        let mut state = self.shared.state.lock();
        let state = &mut *state;
        let page = state.grants.get(addr >> PAGE_SHIFT)?.page();
        // SAFETY: By the invariant of `Grant` the page is device-exclusive for us, and taking it
        // back needs the page-table lock, which we hold until the mapping is dropped; the
        // device-exclusive entry keeps it alive until then.
        let mapped = unsafe { AtomicPage::map(page.as_ptr()) };
        Some(f(&mut state.pt, &mapped))
    }

    /// Runs `f` on the device's page table, under the page-table lock (so with the same rules
    /// as [`Self::with_atomic_page`]), whatever the device holds: to read back what
    /// [`DriverSvm::map_atomic`] and [`DriverSvm::unmap`] left in it.
    pub fn with_page_table<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.shared.state.lock().pt)
    }

    /// Whether the device holds the page at `addr` with atomic permission now.
    pub fn is_granted(&self, addr: usize) -> bool {
        self.shared
            .state
            .lock()
            .grants
            .get(addr >> PAGE_SHIFT)
            .is_some()
    }

    /// Number of pages the device holds now.
    pub fn granted_pages(&self) -> usize {
        self.shared.state.lock().grants.count()
    }

    /// Revokes every grant of the device, and cancels the fault in progress: when this returns
    /// the device maps none of the process's pages, and a fault that had taken the context's
    /// fault lock before fails with `ECANCELED` rather than map one. Faults that take it later
    /// grant as usual; see [`Self::block`] to keep them out.
    ///
    /// May sleep (in [`DriverSvm::unmap`]).
    pub fn revoke_all(&self) {
        let mut state = self.shared.state.lock();
        self.revoke_all_locked(&mut state);
    }

    /// Revokes every grant like [`Self::revoke_all`], then keeps new grants out until the
    /// returned guard is dropped: faults fail with `ECANCELED` meanwhile. For a device reset:
    /// nothing is mapped from the moment this returns until the driver allows it again.
    ///
    /// May sleep (in [`DriverSvm::unmap`]).
    pub fn block(&self) -> Blocked<'_, T> {
        let mut state = self.shared.state.lock();
        state.blocked += 1;
        self.revoke_all_locked(&mut state);
        Blocked { ctx: self }
    }

    fn revoke_all_locked(&self, state: &mut State<T>) {
        let shared = &self.shared;
        // Under the page-table lock, which every commit holds to compare it.
        shared.generation.fetch_add(1, Relaxed);
        if state.grants.any(0, usize::MAX) {
            // The device stops using the pages before the grants go. Blockable: cannot be
            // refused.
            let _ = state
                .pt
                .unmap(&Unmap::new(0, usize::MAX, true, None, &state.grants));
            // Each chunk is flagged emptied: the faults to come trim them.
            state.grants.remove(0, usize::MAX, |i| shared.forget(i));
            shared.note_emptied(&state.grants);
        }
    }

    /// Removes the notifiers of chunks whose grants were all revoked.
    ///
    /// Faults call this themselves once 32 chunks have lost their last grant, so a driver need
    /// not; it may, after revoking many grants, to give the memory back at once.
    ///
    /// May sleep: it takes the context's fault lock, so it waits for a fault in progress
    /// (which may allocate memory, and take up to [`Config::timeout`] per page), and removing a
    /// notifier waits for any invalidation of the mm in progress. So the caller must not hold a
    /// lock that an invalidation may wait for (the mmap lock, or any lock its
    /// [`DriverSvm::unmap`] or an invalidation path of the mm takes), nor one that
    /// [`DriverSvm::alloc_pte`] or the callers of [`Self::with_atomic_page`] take, and must not
    /// call it from reclaim (a shrinker): a fault holding the lock may be reclaiming.
    pub fn trim(&self) {
        let serial = self.fault_lock.lock();
        self.trim_locked(&serial);
    }

    /// Trims, under the fault lock, under which faults use their chunks: none is in use.
    fn trim_locked(&self, _serial: &MutexGuard<'_, Stream>) {
        self.remove_chunks(|index, _| self.remove_slots_if_empty(index, true));
    }

    /// Removes the chunks that `remove` picks (under the chunk lock) from the chunk tree, and
    /// their notifiers after the lock is dropped.
    fn remove_chunks(&self, mut remove: impl FnMut(usize, &ChunkNotifier<T>) -> bool) {
        let mut removed = RBTree::new();
        let mut chunks = self.chunks.lock();
        let mut cursor = chunks.cursor_front_mut();
        while let Some(c) = cursor {
            let (index, chunk) = c.current();
            cursor = if remove(*index, chunk) {
                let (next, node) = c.remove_current();
                // Moving a node into another tree does not allocate.
                removed.insert(node);
                next
            } else {
                c.move_next()
            };
        }
        drop(chunks);
        // Removing a notifier waits for its callbacks: outside the chunk lock.
        drop(removed);
    }

    /// Trims the chunks once [`EMPTIED_MAX`] of them have lost their last grant (and got none
    /// since), so that a process cannot make the context keep a notifier (and make every
    /// invalidation of the mm visit it) for each 2 MiB it ever had granted. Chunks, not
    /// revocations, are counted: a contended page loses its grant again and again, and its
    /// notifier is never removed and inserted again for it (removal waits for the mm's
    /// invalidations in progress). Called without the fault lock; if another fault holds it,
    /// that fault trims when it ends.
    fn trim_emptied(&self) {
        if !self.shared.trim_due.load(Relaxed) {
            return;
        }
        // Not behind another thread's whole fault.
        let Some(serial) = self.fault_lock.try_lock() else {
            return;
        };
        self.shared.trim_due.store(false, Relaxed);
        self.trim_locked(&serial);
    }

    /// A function that runs the chunk notifier of `addr` on that page as a non-blockable (or
    /// blockable) `MMU_NOTIFY_CLEAR`, for tests.
    #[cfg(CONFIG_RUST_DRM_SVM_KUNIT_TEST)]
    pub(super) fn test_invalidator(&self, addr: usize) -> Option<impl Fn(bool) -> bool> {
        let chunk = self.chunks.lock().get(&(addr / CHUNK_SIZE))?.clone();
        Some(move |blockable| chunk.invalidate_for_test(addr, PAGE_SIZE, blockable))
    }

    /// Number of long-lived notifiers.
    pub fn chunk_count(&self) -> usize {
        self.chunks.lock().iter().count()
    }

    /// A use of the long-lived notifier of the chunk of `addr`, created if needed.
    pub(super) fn chunk(&self, mm: &MmWithUser, addr: usize) -> Result<ChunkUse<'_, T>> {
        let index = addr / CHUNK_SIZE;
        let mut chunks = self.chunks.lock();
        if let Some(chunk) = chunks.get(&index) {
            return Ok(ChunkUse::new(self, index, chunk.clone(), false));
        }
        // Nothing for an address no grant can be made at: a notifier costs memory and every
        // invalidation of the mm visits it (and, for shared memory, GUP would allocate the
        // page before `make_device_exclusive()` refused it). Other refusals leave the chunk to
        // `remove_unused_chunk()`.
        Self::may_grant(mm, addr)?;
        let reservation = RBTreeNodeReservation::new(GFP_KERNEL_ACCOUNT)?;
        let slots = ChunkSlots::new(index)?;
        let chunk = Arc::pin_init(
            MmuIntervalNotifier::new(
                mm,
                index * CHUNK_SIZE,
                CHUNK_SIZE,
                Ok::<_, Error>(Chunk::new(self.shared.clone())),
            ),
            GFP_KERNEL_ACCOUNT,
        )?;
        let unused = self.shared.state.lock().grants.add_chunk(slots);
        drop(unused);
        chunks.insert(reservation.into_node(index, chunk.clone()));
        Ok(ChunkUse::new(self, index, chunk, true))
    }

    /// Fails with the error `make_device_exclusive()` would return for `addr` when its VMA
    /// alone decides it: `EFAULT` without a writable VMA (the kernel half has none, `VM_IO` and
    /// `VM_PFNMAP` mappings have no pages to take), `EOPNOTSUPP` for shared or hugetlb memory
    /// (only private anonymous folios can be made exclusive).
    fn may_grant(mm: &MmWithUser, addr: usize) -> Result {
        let lock = mm.mmap_read_lock();
        Self::grantable(lock.vma_lookup(addr).ok_or(EFAULT)?.flags())
    }

    /// The error of [`Self::may_grant`] for a VMA with `flags`.
    fn grantable(flags: vm_flags_t) -> Result {
        if flags & vm_flags::WRITE == 0 || flags & (vm_flags::IO | vm_flags::PFNMAP) != 0 {
            return Err(EFAULT);
        }
        if flags & (vm_flags::SHARED | vm_flags::HUGETLB) != 0 {
            return Err(EOPNOTSUPP);
        }
        Ok(())
    }

    /// How many pages after `end` (the page-aligned end of a fault's range) lie in the VMA of
    /// the page before it, if that VMA is private anonymous memory a device may be granted:
    /// how far fault-around may go (a snapshot: the mm may change once the lock is dropped,
    /// and each grant checks again). 0 otherwise.
    fn anon_pages_after(mm: &MmWithUser, end: usize) -> usize {
        let lock = mm.mmap_read_lock();
        let Some(vma) = lock.vma_lookup(end - PAGE_SIZE) else {
            return 0;
        };
        // SAFETY: The mmap read lock keeps `vma` valid, and its file does not change under it.
        let file = unsafe { (*vma.as_ptr()).vm_file };
        if Self::grantable(vma.flags()).is_err() || !file.is_null() {
            return 0;
        }
        (vma.end() - end) / PAGE_SIZE
    }

    /// Removes the chunk `index` that a fault created, if it never had a grant (for
    /// [`ChunkUse`]): a fault that fails (on shared memory, say) leaves nothing behind. A chunk
    /// whose grants were all revoked stays until it is trimmed ([`Self::trim_emptied`]), even
    /// if that happened during the fault that created it.
    ///
    /// May sleep (removing a notifier waits for its callbacks); called without the mmap lock.
    fn remove_unused_chunk(&self, index: usize) {
        let mut chunks = self.chunks.lock();
        // No grant can appear meanwhile: grants are made by faults, which the fault lock
        // serialises, and we are the fault.
        let removed = if self.remove_slots_if_empty(index, false) {
            chunks.remove(&index)
        } else {
            None
        };
        // Outside the chunk lock: the notifier may go with the caller's last reference.
        drop(chunks);
        drop(removed);
    }

    /// Removes the grant slots of chunk `index` if the device holds none of its pages, and the
    /// chunk lost its last grant (`emptied`) or never had one (not `emptied`), before its
    /// notifier is removed; returns whether they were removed. Takes the page-table lock.
    fn remove_slots_if_empty(&self, index: usize, emptied: bool) -> bool {
        let (empty, slots) = self
            .shared
            .state
            .lock()
            .grants
            .remove_chunk_if_empty(index, emptied);
        // Freed here, outside the page-table lock.
        drop(slots);
        empty
    }
}

/// New grants kept out of a context, from [`SvmContext::block`] until dropped.
///
/// # Invariants
///
/// Counted in `State::blocked` of `ctx` until dropped.
pub struct Blocked<'a, T: DriverSvm> {
    ctx: &'a SvmContext<T>,
}

impl<T: DriverSvm> Drop for Blocked<'_, T> {
    fn drop(&mut self) {
        self.ctx.shared.state.lock().blocked -= 1;
    }
}

/// A fault's use of a chunk notifier. Dropping it removes a chunk that the fault created and
/// that never had a grant, which may sleep: never with the mmap lock held.
///
/// # Invariants
///
/// Made and dropped by the context's fault, under its fault lock, which trimming also takes:
/// a chunk is in use by one fault at most, and is not trimmed while it is. Outside a fault,
/// every chunk in the context's tree has had a grant, so `created` is false for all but the
/// chunks a fault creates.
pub(super) struct ChunkUse<'a, T: DriverSvm> {
    ctx: &'a SvmContext<T>,
    pub(super) index: usize,
    pub(super) chunk: Arc<ChunkNotifier<T>>,
    /// Whether this fault created the chunk.
    pub(super) created: bool,
}

impl<'a, T: DriverSvm> ChunkUse<'a, T> {
    fn new(
        ctx: &'a SvmContext<T>,
        index: usize,
        chunk: Arc<ChunkNotifier<T>>,
        created: bool,
    ) -> Self {
        Self {
            ctx,
            index,
            chunk,
            created,
        }
    }
}

impl<T: DriverSvm> Drop for ChunkUse<'_, T> {
    fn drop(&mut self) {
        if self.created {
            // The last reference goes with `self.chunk` after this.
            self.ctx.remove_unused_chunk(self.index);
        }
    }
}

#[pinned_drop]
impl<T: DriverSvm> PinnedDrop for SvmContext<T> {
    fn drop(self: Pin<&mut Self>) {
        // The device gives everything back before the notifiers that would tell it to go.
        self.revoke_all();
        self.remove_chunks(|_, _| true);
    }
}

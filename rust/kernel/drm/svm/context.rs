// SPDX-License-Identifier: GPL-2.0

//! The per-(device, mm) SVM context and its fault path.

use super::stats::LATENCY_SAMPLE;
use super::{
    granting::Granting,
    grants::{
        ChunkSlots,
        Grant,
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
    NotifierMode,
    Phase,
    Residency,
    Stats, //
};
use crate::{
    mm::{
        device_exclusive::{
            DeviceExclusiveFolio, //
        },
        mmu_notifier::{
            taken_in_reclaim,
            MmuIntervalNotifier,
            Owner,
            ReadSeq, //
        },
        virt::flags as vm_flags,
        Mm,
        MmWithUser,
        MmapReadGuard, //
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
        Mutex, //
    },
    time::{
        delay::fsleep,
        Delta,
        Instant,
        Monotonic, //
    },
};

type ChunkNotifier<T> = MmuIntervalNotifier<Chunk<T>>;

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

/// No page is being granted.
pub(super) const NO_PAGE: usize = usize::MAX;

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
    spare_pte: Option<T::PteAlloc>,
    /// The page whose grant is being made (or was last attempted or named, for a batch that
    /// then stopped), or [`NO_PAGE`]. Set under this lock before the fault's `read_begin()`, so
    /// that an invalidation either sees it under this lock or has published its sequence before
    /// that `read_begin()`, which then waits for it to end.
    pub(super) granting: usize,
    /// Whether an invalidation that the fault did not make itself covered `granting` since it
    /// was set: together with `read_retry()`, what makes the fault retry (see the notifier).
    pub(super) collided: bool,
    /// How many [`Blocked`] guards keep grants out.
    blocked: usize,
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
    pub(super) stats: Stats,
}

impl<T: DriverSvm> Shared<T> {
    pub(super) fn owner_key(&self) -> usize {
        self.owner.as_ptr() as usize
    }

    /// Under the page-table lock, after grants were removed: asks the next fault to trim once
    /// [`EMPTIED_MAX`] chunks are emptied.
    pub(super) fn note_emptied(&self, grants: &Grants) {
        if grants.emptied_chunks() >= EMPTIED_MAX {
            self.trim_due.store(true, Relaxed);
        }
    }

    /// Forgets this device's residency on page `index`, which it lost. Does not sleep.
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
    config: Config,
    shared: Arc<Shared<T>>,
    /// Long-lived notifiers by chunk index (`addr / CHUNK_SIZE`).
    #[pin]
    chunks: Mutex<RBTree<usize, Arc<ChunkNotifier<T>>>>,
    /// Serialises the faults of this context (like a device's fault queue), so that
    /// `Shared::granting_task` names the one task granting.
    #[pin]
    fault_lock: Mutex<()>,
}

impl<T: DriverSvm> SvmContext<T> {
    /// Creates a context for `mm` (usually the opener's) with the device page table `pt`.
    pub fn new(mm: &MmWithUser, pt: T, config: Config) -> impl PinInit<Self, Error> {
        let (owner, residency) = (config.owner, config.residency.clone());
        let device_stats = config.device_stats.clone();
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
                        granting: NO_PAGE,
                        collided: false,
                        blocked: 0,
                    },
                    pt_class.0,
                    pt_class.1,
                ),
                stats: Stats::new(device_stats),
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
            fault_lock <- Mutex::new((), fault_class.0, fault_class.1),
        }? Error)
    }

    /// The statistics of this context.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// The tunables this context was created with.
    pub fn config(&self) -> &Config {
        &self.config
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
    /// May sleep.
    pub fn atomic_fault(&self, addr: usize, npages: usize) -> Result {
        if addr % PAGE_SIZE != 0 || npages == 0 {
            return Err(EINVAL);
        }
        // The last page may be the last of the address space (an error later, not here).
        let len = npages.checked_mul(PAGE_SIZE).ok_or(EINVAL)?;
        addr.checked_add(len - 1).ok_or(EINVAL)?;
        let stats = &self.shared.stats;
        // Not the first fault of a context, which inserts its first notifier.
        let sampled = stats.fault() % LATENCY_SAMPLE == LATENCY_SAMPLE - 1 || self.config.profile;
        let start = sampled.then(Instant::<Monotonic>::now);
        let mut prof = Profiler::new(stats, start.filter(|_| self.config.profile));
        trace::fault_begin(self.shared.owner, addr, npages);
        let current = crate::current!();
        let owned;
        let mm = match current.mm() {
            // The caller's own mm (a fault from its ioctl): its task keeps it alive.
            Some(mm) if self.is_mm(mm) => mm,
            _ => {
                owned = self.mm.mmget_not_zero().ok_or(ESRCH)?;
                &*owned
            }
        };
        let _serial = self.fault_lock.lock();
        // Compared under the page-table lock when each page is committed.
        let generation = self.shared.generation.load(Relaxed);
        // Across the pages of a batch: the chunk notifier (looked up once per 2 MiB) and the
        // mmap read lock.
        let mut chunk: Option<ChunkUse<'_, T>> = None;
        let mut lock = BatchLock::new(mm);
        // The next page of the batch, named by the previous page's commit.
        let mut ahead = None;
        let mut granted = 0;
        let mut ret = Ok(());
        for i in 0..npages {
            let page = addr + i * PAGE_SIZE;
            // Named ahead only within the chunk: the next chunk's notifier may not exist yet.
            let next =
                (i + 1 < npages && (page + PAGE_SIZE) % CHUNK_SIZE != 0).then(|| page + PAGE_SIZE);
            if chunk.as_ref().map(|c| c.index) != Some(page / CHUNK_SIZE) {
                // Creating a notifier may take the mmap lock for writing, and ending the use
                // of the previous chunk may remove its notifier, which may sleep.
                lock.unlock();
                chunk = None;
                match self.chunk(mm, page) {
                    Ok(c) => chunk = Some(c),
                    Err(e) => {
                        ret = Err(e);
                        break;
                    }
                }
            }
            if let Some(c) = &chunk {
                let pages = Pages {
                    addr: page,
                    next,
                    ahead: ahead.take(),
                    generation,
                };
                match self.fault_page(&mut lock, pages, &c.chunk, &mut prof, &mut ahead) {
                    Ok(true) => granted += 1,
                    Ok(false) => {}
                    Err(e) => ret = Err(e),
                }
            }
            if ret.is_err() {
                break;
            }
        }
        drop(lock);
        drop(chunk);
        if let Some(Named::Granting(Some(pte))) = ahead {
            // The batch stopped after naming a page: keep the allocation naming took.
            self.shared.state.lock().spare_pte.get_or_insert(pte);
        }
        stats.granted(granted);
        if ret.is_err() {
            stats.error();
        }
        if let Some(start) = start {
            stats.latency(start.elapsed());
        }
        trace::fault_end(self.shared.owner, addr, &ret);
        // Outside the fault lock: removing notifiers waits for the mm's invalidations.
        drop(_serial);
        self.trim_emptied();
        ret
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
                .unmap(&Unmap::new(0, usize::MAX, true, &state.grants));
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
    /// May sleep: removing a notifier waits for any invalidation of the mm in progress, so the
    /// caller must not hold a lock that an invalidation may wait for (the mmap lock, or any lock
    /// its [`DriverSvm::unmap`] or an invalidation path of the mm takes).
    pub fn trim(&self) {
        let mut removed = RBTree::new();
        let mut chunks = self.chunks.lock();
        let mut cursor = chunks.cursor_front_mut();
        while let Some(c) = cursor {
            let (index, chunk) = c.current();
            let keep =
                chunk.data().users.load(Relaxed) != 0 || !self.remove_slots_if_empty(*index, true);
            cursor = if keep {
                c.move_next()
            } else {
                let (next, node) = c.remove_current();
                // Moving a node into another tree does not allocate.
                removed.insert(node);
                next
            };
        }
        drop(chunks);
        // The notifiers go here, outside the chunk lock.
        drop(removed);
    }

    /// Trims the chunks once [`EMPTIED_MAX`] of them have lost their last grant (and got none
    /// since), so that a process cannot make the context keep a notifier (and make every
    /// invalidation of the mm visit it) for each 2 MiB it ever had granted. Chunks, not
    /// revocations, are counted: a contended page loses its grant again and again, and its
    /// notifier is never removed and inserted again for it (removal waits for the mm's
    /// invalidations in progress). Called without the fault lock.
    fn trim_emptied(&self) {
        if self.shared.trim_due.load(Relaxed) {
            self.shared.trim_due.store(false, Relaxed);
            self.trim();
        }
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
    fn chunk(&self, mm: &MmWithUser, addr: usize) -> Result<ChunkUse<'_, T>> {
        let index = addr / CHUNK_SIZE;
        let mut chunks = self.chunks.lock();
        if let Some(chunk) = chunks.get(&index) {
            return Ok(ChunkUse::new(self, index, chunk.clone()));
        }
        // Nothing for an address no grant can be made at: a notifier costs memory and every
        // invalidation of the mm visits it (and, for shared memory, GUP would allocate the
        // page before `make_device_exclusive()` refused it). Other refusals leave the chunk to
        // `release_chunk()`.
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
        self.shared.stats.notifier_inserted();
        let unused = self.shared.state.lock().grants.add_chunk(slots);
        drop(unused);
        chunks.insert(reservation.into_node(index, chunk.clone()));
        Ok(ChunkUse::new(self, index, chunk))
    }

    /// Fails with the error `make_device_exclusive()` would return for `addr` when its VMA
    /// alone decides it: `EFAULT` without a writable VMA (the kernel half has none, `VM_IO` and
    /// `VM_PFNMAP` mappings have no pages to take), `EOPNOTSUPP` for shared or hugetlb memory
    /// (only private anonymous folios can be made exclusive).
    fn may_grant(mm: &MmWithUser, addr: usize) -> Result {
        let lock = mm.mmap_read_lock();
        let flags = lock.vma_lookup(addr).ok_or(EFAULT)?.flags();
        if flags & vm_flags::WRITE == 0 || flags & (vm_flags::IO | vm_flags::PFNMAP) != 0 {
            return Err(EFAULT);
        }
        if flags & (vm_flags::SHARED | vm_flags::HUGETLB) != 0 {
            return Err(EOPNOTSUPP);
        }
        Ok(())
    }

    /// Ends a fault's use of the chunk `index` (for [`ChunkUse`]), and removes its notifier if
    /// no grant was ever made in it and no other fault uses it: a fault that fails (on shared
    /// memory, say) leaves nothing behind. A chunk whose grants were all revoked stays until a
    /// later fault trims it ([`Self::trim_emptied`]).
    ///
    /// May sleep (removing a notifier waits for its callbacks); called without the mmap lock.
    fn release_chunk(&self, index: usize, chunk: &ChunkNotifier<T>) {
        // A chunk that had a grant stays until it is trimmed.
        if chunk.data().users.fetch_sub(1, Relaxed) != 1 || chunk.data().granted.load(Relaxed) {
            return;
        }
        let mut chunks = self.chunks.lock();
        // Neither a use nor a grant can appear meanwhile: both are made by faults, which the
        // fault lock serialises, and we are the fault.
        let removed = if self.remove_slots_if_empty(index, false) {
            chunks.remove(&index)
        } else {
            None
        };
        // Outside the chunk lock: the notifier may go with the caller's last reference.
        drop(chunks);
        drop(removed);
    }

    /// Removes the grant slots of chunk `index` if the device holds none of its pages (and, if
    /// `emptied`, the chunk lost its last grant), before its notifier is removed; returns
    /// whether they were removed. Takes the page-table lock.
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

    /// Grants one page; `false` if the device held it already. `lock` is the mmap read lock if
    /// the caller's batch holds it; it is taken when needed and dropped before anything that may
    /// sleep for long or take it again.
    fn fault_page(
        &self,
        lock: &mut BatchLock<'_>,
        pages: Pages<T>,
        chunk: &ChunkNotifier<T>,
        prof: &mut Profiler<'_>,
        ahead: &mut Option<Named<T>>,
    ) -> Result<bool> {
        let shared = &self.shared;
        let addr = pages.addr;
        let ret = self.grant_page(lock, pages, chunk, prof, ahead);
        if ret == Err(EBUSY) {
            shared.stats.timeout();
            trace::timeout(shared.owner, addr);
        }
        if ret.is_err() {
            if let Some(residency) = &shared.residency {
                // A fault that gives up must not keep the others waiting behind it.
                residency.leave(shared.mm_key, addr >> PAGE_SHIFT, shared.owner_key());
            }
        }
        ret
    }

    /// Grants one page: prepare, begin, try to grant; again after a collision, until the page
    /// is granted, the deadline passes or a fatal signal arrives. When granted, `ahead` is the
    /// next page, named by the commit.
    fn grant_page(
        &self,
        lock: &mut BatchLock<'_>,
        mut pages: Pages<T>,
        chunk: &ChunkNotifier<T>,
        prof: &mut Profiler<'_>,
        ahead: &mut Option<Named<T>>,
    ) -> Result<bool> {
        let shared = &self.shared;
        let (addr, mut named) = (pages.addr, pages.ahead.take());
        let mut deadline = Deadline::new(self.config.timeout);
        let mut attempt = 0u32;
        let mut kept = None;
        loop {
            prof.mark(Phase::Entry);
            if fatal_signal_pending() {
                // The caller keeps what naming the page took.
                *ahead = named;
                return Err(EINTR);
            }
            if deadline.passed() {
                return Err(EBUSY);
            }
            let Some(pte) = self.prepare(addr, pages.generation, named.take(), kept.take())? else {
                return Ok(false);
            };
            prof.mark(Phase::Prepare);
            let begun = self.begin(lock, addr, chunk, &mut deadline)?;
            prof.mark(Phase::ReadBegin);
            let result = self.try_grant(lock, &pages, chunk, &begun, pte, prof);
            if begun.per_fault.is_some() {
                // Removing the notifier waits for the mm's invalidations: not under the lock.
                lock.unlock();
            }
            drop(begun);
            match result? {
                Attempt::Granted(next) => {
                    *ahead = next;
                    break;
                }
                Attempt::Retry(pte) => {
                    kept = Some(pte);
                    // Let whoever collided with us (and any writer) have the mmap lock.
                    lock.unlock();
                    shared.stats.retry();
                    trace::retry(shared.owner, addr);
                    deadline.start();
                    attempt += 1;
                    backoff(attempt);
                }
            }
        }
        if let Some(residency) = &shared.residency {
            residency.record(shared.mm_key, addr >> PAGE_SHIFT, shared.owner_key());
        }
        trace::grant(shared.owner, addr);
        prof.mark(Phase::Release);
        Ok(true)
    }

    /// Step 1: unless the device holds the page already (`None`), names it in
    /// [`State::granting`] (unless the previous page's commit did: `named`) and takes the
    /// allocation [`DriverSvm::map_atomic`] may need: the previous attempt's, the one the last
    /// grant left, or a new one.
    fn prepare(
        &self,
        addr: usize,
        generation: usize,
        named: Option<Named<T>>,
        kept: Option<T::PteAlloc>,
    ) -> Result<Option<T::PteAlloc>> {
        let named = match named {
            // Named by the previous page's commit, which checked for cancellation.
            Some(named) => named,
            None => {
                let mut state = self.shared.state.lock();
                // Before the page is taken from the CPU or another device, and on each retry.
                if Self::cancelled(&state, &self.shared, generation) {
                    return Err(ECANCELED);
                }
                Self::name(&mut state, &self.shared.stats, addr, kept.is_none())
            }
        };
        let spare = match (named, kept) {
            (Named::Held, _) => return Ok(None),
            (_, Some(kept)) => return Ok(Some(kept)),
            (Named::Granting(spare), None) => spare,
        };
        match spare {
            Some(pte) => Ok(Some(pte)),
            // Without the page-table lock, which reclaim may need.
            None => T::alloc_pte().map(Some),
        }
    }

    /// Under the page-table lock: whether the device holds the page at `addr` already, and if
    /// not, names it in [`State::granting`] and takes the spare allocation (if `take_spare`).
    fn name(state: &mut State<T>, stats: &Stats, addr: usize, take_spare: bool) -> Named<T> {
        if state.grants.get(addr >> PAGE_SHIFT).is_some() {
            stats.already_mapped();
            return Named::Held;
        }
        // Before `read_begin()`, under the lock: see `State::granting`.
        state.granting = addr;
        state.collided = false;
        Named::Granting(if take_spare {
            state.spare_pte.take()
        } else {
            None
        })
    }

    /// Step 2: waits out another device's residency on the page, then starts the sequence the
    /// grant is validated against (of a notifier of its own in per-fault mode).
    fn begin(
        &self,
        lock: &mut BatchLock<'_>,
        addr: usize,
        chunk: &ChunkNotifier<T>,
        deadline: &mut Deadline,
    ) -> Result<Begun<T>> {
        let shared = &self.shared;
        let per_fault = match self.config.notifiers {
            NotifierMode::LongLived => None,
            NotifierMode::PerFault => {
                // Inserting a notifier may take the mmap lock.
                lock.unlock();
                Some(Arc::pin_init(
                    MmuIntervalNotifier::new(
                        lock.mm,
                        addr,
                        PAGE_SIZE,
                        Ok::<_, Error>(Chunk::new(shared.clone())),
                    ),
                    GFP_KERNEL_ACCOUNT,
                )?)
            }
        };
        if let Some(residency) = &shared.residency {
            // Back off for the rest of the other device's slice, and then until the devices
            // that came first had their turn, within the deadline, which this starts: at the
            // deadline the fault takes the page, or fails with `EBUSY` if it collides.
            let mut waited = false;
            while let Some(left) =
                residency.remaining(shared.mm_key, addr >> PAGE_SHIFT, shared.owner_key())
            {
                let budget = deadline.remaining();
                if budget <= Delta::ZERO {
                    break;
                }
                if fatal_signal_pending() {
                    return Err(EINTR);
                }
                if !waited {
                    shared.stats.residency_wait();
                    waited = true;
                }
                lock.unlock();
                fsleep(if left < budget { left } else { budget });
            }
        }
        // With the mmap lock still held from the previous page of a batch, this may wait for an
        // invalidation in progress, unlike the order Documentation/mm/hmm.rst shows. That
        // cannot deadlock: invalidations take the mmap lock before they start or not at all
        // (none takes it between start and end), and the fault's reference on the mm (its own
        // `mmget()`, or the calling task's on its own mm) rules out `exit_mmap()`. A
        // writer queued on the lock waits for us meanwhile.
        let seq = per_fault.as_deref().unwrap_or(chunk).read_begin();
        Ok(Begun { seq, per_fault })
    }

    /// Step 3: makes the page device-exclusive under the mmap read lock, then commits the grant
    /// under the page-table lock, unless an invalidation collided with it since [`Self::begin`]:
    /// then the page is left to the CPU and the PTE allocation is kept for the next attempt.
    fn try_grant(
        &self,
        lock: &mut BatchLock<'_>,
        pages: &Pages<T>,
        chunk: &ChunkNotifier<T>,
        begun: &Begun<T>,
        pte: T::PteAlloc,
        prof: &mut Profiler<'_>,
    ) -> Result<Attempt<T>> {
        let shared = &self.shared;
        let addr = pages.addr;
        let guard = lock.lock();
        prof.mark(Phase::MmapLock);
        let grant = {
            let _in_progress = GrantInProgress::enter(&shared.granting_task);
            guard.make_device_exclusive(addr, shared.owner)?
        };
        prof.mark(Phase::MakeExclusive);
        let mut state = shared.state.lock();
        // Every invalidation of the notifier's range publishes its sequence but the fault's own,
        // so `read_retry()` is also true for one of another page of the chunk, which cannot
        // make this grant stale (the device-exclusive entry is made for, and revalidated
        // against, this page's PTE alone): only one that covered the page retries.
        let collided = begun.notifier(chunk).read_retry(begun.seq) && state.collided;
        let result = if collided {
            Ok(Attempt::Retry(pte))
        } else {
            Self::commit(&mut state, shared, pages, chunk, &grant, pte).map(|()| {
                // The next page of a batch is named in this lock section, not one of its own.
                let next = pages
                    .next
                    .map(|next| Self::name(&mut state, &shared.stats, next, true));
                Attempt::Granted(next)
            })
        };
        prof.mark(Phase::Commit);
        // The page-table lock before the folio lock: lock order.
        drop(state);
        drop(grant);
        result
    }

    /// Under the page-table lock: whether the driver blocked grants, or revoked them all since
    /// the fault that read `generation` began.
    fn cancelled(state: &State<T>, shared: &Shared<T>, generation: usize) -> bool {
        state.blocked != 0 || shared.generation.load(Relaxed) != generation
    }

    /// Step 4, under the page-table lock, with the page device-exclusive for us and no
    /// invalidation since `read_begin()`: maps it in the device and records the grant, unless
    /// the driver blocked grants or revoked them all since the fault began.
    fn commit(
        state: &mut State<T>,
        shared: &Shared<T>,
        pages: &Pages<T>,
        chunk: &ChunkNotifier<T>,
        grant: &DeviceExclusiveFolio,
        pte: T::PteAlloc,
    ) -> Result {
        if Self::cancelled(state, shared, pages.generation) {
            state.spare_pte.get_or_insert(pte);
            return Err(ECANCELED);
        }
        // The fault's `ChunkUse` keeps the chunk and its slots; the page was seen not granted
        // when it was named, and only faults, which the fault lock serialises, grant.
        let slot = state
            .grants
            .vacant(pages.addr >> PAGE_SHIFT)
            .ok_or(EINVAL)?;
        let mut pte = Some(pte);
        let mapped = state.pt.map_atomic(grant, &mut pte);
        // What the driver did not need serves the next grant.
        if let Some(pte) = pte {
            state.spare_pte.get_or_insert(pte);
        }
        mapped?;
        // SAFETY: No invalidation of the page has begun since `read_begin()` but those the
        // notifier neither publishes nor records, which cannot take the page from us: a
        // conversion for our owner (it replaces only a present PTE) and the ones our own task
        // made inside `make_device_exclusive()` (over before it revalidated the PTE under the
        // folio lock). Any other that covers the page either set `collided` under this lock
        // (the page was named before `read_begin()`), or published its sequence before it was
        // named, and `read_begin()` waited for it to end. The page is still device-exclusive
        // for us, and the next invalidation of it will remove the grant.
        slot.fill(unsafe { Grant::new(&grant.page()) });
        chunk.data().granted.store(true, Relaxed);
        // The device may write; the exclusive entry looks clean to the core mm.
        grant.mark_dirty();
        Ok(())
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

/// The page a fault grants, and the next one of its batch.
struct Pages<T: DriverSvm> {
    addr: usize,
    next: Option<usize>,
    /// The page named by the previous page's commit.
    ahead: Option<Named<T>>,
    /// `Shared::generation` when the fault began.
    generation: usize,
}

/// A page looked at under the page-table lock, before its grant begins.
enum Named<T: DriverSvm> {
    /// The device holds it already.
    Held,
    /// Named in [`State::granting`], with the spare allocation for [`DriverSvm::map_atomic`],
    /// if there was one.
    Granting(Option<T::PteAlloc>),
}

/// The sequence a grant is validated against, and the per-fault notifier it belongs to, if
/// any (else the chunk's).
struct Begun<T: DriverSvm> {
    seq: ReadSeq,
    per_fault: Option<Arc<ChunkNotifier<T>>>,
}

impl<T: DriverSvm> Begun<T> {
    fn notifier<'a>(&'a self, chunk: &'a ChunkNotifier<T>) -> &'a ChunkNotifier<T> {
        self.per_fault.as_deref().unwrap_or(chunk)
    }
}

/// How an attempt to grant a page ended.
enum Attempt<T: DriverSvm> {
    /// Granted; the next page of the batch, if any, is named.
    Granted(Option<Named<T>>),
    /// An invalidation collided with the grant; try again with this allocation.
    Retry(T::PteAlloc),
}

/// A fault's use of a chunk notifier, counted in `Chunk::users` so that [`SvmContext::trim`]
/// leaves the chunk alone while a grant in it is being made. Dropping it ends the use, which
/// may remove the notifier and sleep: never with the mmap lock held.
///
/// # Invariants
///
/// `chunk.data().users` counts this use until the guard is dropped. Guards are made and
/// dropped by the context's fault, under its fault lock, which `release_chunk` relies on.
struct ChunkUse<'a, T: DriverSvm> {
    ctx: &'a SvmContext<T>,
    index: usize,
    chunk: Arc<ChunkNotifier<T>>,
}

impl<'a, T: DriverSvm> ChunkUse<'a, T> {
    fn new(ctx: &'a SvmContext<T>, index: usize, chunk: Arc<ChunkNotifier<T>>) -> Self {
        chunk.data().users.fetch_add(1, Relaxed);
        // INVARIANT: counted just above.
        Self { ctx, index, chunk }
    }
}

impl<T: DriverSvm> Drop for ChunkUse<'_, T> {
    fn drop(&mut self) {
        // The last reference, if the chunk was removed, goes with `self.chunk` after this.
        self.ctx.release_chunk(self.index, &self.chunk);
    }
}

/// The current task's grant in progress for a context: recorded in the context's
/// `Shared::granting_task` and in the table of tasks granting for any context, until dropped,
/// so that the invalidations it causes itself are told apart from collisions.
struct GrantInProgress<'a> {
    task: &'a Atomic<usize>,
    _any: Granting,
}

impl<'a> GrantInProgress<'a> {
    fn enter(task: &'a Atomic<usize>) -> Self {
        let any = Granting::enter();
        task.store(any.task(), Relaxed);
        Self { task, _any: any }
    }
}

impl Drop for GrantInProgress<'_> {
    fn drop(&mut self) {
        self.task.store(0, Relaxed);
    }
}

/// The mmap read lock across the pages of a batch: taken when a page needs it, dropped only to
/// retry, wait, or create a notifier.
struct BatchLock<'a> {
    mm: &'a MmWithUser,
    guard: Option<MmapReadGuard<'a>>,
}

impl<'a> BatchLock<'a> {
    fn new(mm: &'a MmWithUser) -> Self {
        Self { mm, guard: None }
    }

    /// The lock, taken if it is not held.
    fn lock(&mut self) -> &MmapReadGuard<'a> {
        self.guard.get_or_insert_with(|| self.mm.mmap_read_lock())
    }

    fn unlock(&mut self) {
        self.guard = None;
    }
}

/// A fault's deadline, started by its first retry or wait: most grants never read the clock.
struct Deadline {
    timeout: Delta,
    started: Option<Instant<Monotonic>>,
}

impl Deadline {
    fn new(timeout: Delta) -> Self {
        Self {
            timeout,
            started: None,
        }
    }

    fn start(&mut self) {
        self.started.get_or_insert_with(Instant::now);
    }

    fn passed(&self) -> bool {
        self.started.is_some_and(|s| s.elapsed() > self.timeout)
    }

    /// Time left, starting the deadline.
    fn remaining(&mut self) -> Delta {
        self.timeout - self.started.get_or_insert_with(Instant::now).elapsed()
    }
}

/// Times the phases of a fault into [`Stats`] when the context profiles; a no-op otherwise.
struct Profiler<'a> {
    stats: &'a Stats,
    last: Option<Instant<Monotonic>>,
}

impl<'a> Profiler<'a> {
    fn new(stats: &'a Stats, start: Option<Instant<Monotonic>>) -> Self {
        Self { stats, last: start }
    }

    /// Ends `phase` now.
    fn mark(&mut self, phase: Phase) {
        if let Some(last) = self.last {
            let now = Instant::<Monotonic>::now();
            self.stats.phase(phase, (now - last).as_nanos() as u64);
            self.last = Some(now);
        }
    }
}

/// Waits a little longer after each collision: the first few retries are immediate, since a
/// collision usually means a single CPU access; persistent contention sleeps up to 1 ms.
fn backoff(attempt: u32) {
    if attempt > 2 {
        let us = 1i64 << (attempt - 2).min(10);
        fsleep(Delta::from_micros(us));
    }
}

fn fatal_signal_pending() -> bool {
    crate::current!().fatal_signal_pending()
}

#[pinned_drop]
impl<T: DriverSvm> PinnedDrop for SvmContext<T> {
    fn drop(self: Pin<&mut Self>) {
        // The device gives everything back before the notifiers that would tell it to go.
        self.revoke_all();
        let mut removed = RBTree::new();
        let mut chunks = self.chunks.lock();
        while let Some(c) = chunks.cursor_front_mut() {
            // Moving a node into another tree does not allocate.
            removed.insert(c.remove_current().1);
        }
        drop(chunks);
        // The notifiers go here, outside the chunk lock.
        drop(removed);
    }
}

// SPDX-License-Identifier: GPL-2.0

//! The device's engines, their TLBs and the queue of jobs they execute.
//!
//! Each engine is a work item that takes jobs (see [`crate::job`]) from the device's queue
//! and executes them, in a kernel worker: not in the submitting task, and with no user address
//! space. It reaches memory as a GPU's engine does: it looks a
//! page up in its TLB and, on a miss, walks the device page table ([`PageTable::walk`]) and
//! fills the TLB; a page without an atomic entry is a device fault. An engine holds its TLB's
//! lock while it translates and runs one burst of operations on a page, and
//! [`Engines::shoot_down`] takes each TLB's lock in turn: when it returns, no engine holds or
//! uses a translation of the range. `unmap()` calls it before it clears the entries and ends
//! their DMA mappings.
//!
//! [`PageTable::walk`]: crate::pt::PageTable::walk

use crate::{
    fault_buffer::{
        Context,
        FaultBuffer, //
    },
    job::Job,
    pt::{
        DevicePage,
        PageTable, //
    },
    stats::DeviceStats, //
};
use core::ptr::NonNull;
use kernel::{
    device::{
        Bound,
        Device, //
    },
    drm::svm::SvmContext,
    new_condvar, new_mutex, new_spinlock, new_work,
    page::PAGE_SHIFT,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        CondVar,
        Mutex,
        SpinLock, //
    },
    time::{
        delay::fsleep,
        Delta,
        Instant,
        Monotonic, //
    },
    workqueue::{
        self,
        impl_has_work,
        Work,
        WorkItem, //
    },
};

/// Most engines a device may have.
pub(crate) const MAX_ENGINES: u32 = 4;

/// Longest TLB flushes may be held (`tlb_flush_hold_ms` in debugfs), in ms from the write that
/// holds them: however many flushes wait in a row, well below the hung-task timeout.
pub(crate) const MAX_FLUSH_HOLD_MS: u32 = 10_000;

/// Jobs the queue holds; a submitter waits for room when it is full.
const QUEUE_DEPTH: usize = 64;

/// Entries of an engine's TLB: few, so that tests evict them.
const TLB_ENTRIES: usize = 8;

/// Atomic units of a device: the operations on one page go through one unit, so that two
/// engines of one device never interleave their read-modify-writes of a word, as a GPU's L2
/// serialises the atomics of all its engines.
const ATOMIC_UNITS: usize = 8;

/// A translation: page `page` of address space `asid` is at `addr`, the kernel address its
/// DMA address reaches.
#[derive(Clone, Copy)]
struct TlbEntry {
    asid: u64,
    page: usize,
    addr: NonNull<u8>,
}

/// The translations an engine holds.
///
/// # Invariants
///
/// Each entry was filled from the atomic entry of its page in the page table of `asid`, under
/// that table's lock, and that entry has not been cleared since: a clear shoots it down first,
/// under the same lock.
struct Tlb {
    entries: [Option<TlbEntry>; TLB_ENTRIES],
    /// The entry the next fill replaces, round robin.
    victim: usize,
}

impl Tlb {
    fn lookup(&self, asid: u64, page: usize) -> Option<NonNull<u8>> {
        self.entries
            .iter()
            .flatten()
            .find(|e| e.asid == asid && e.page == page)
            .map(|e| e.addr)
    }

    /// Drops the translations of pages `first..last` of `asid`; returns how many there were.
    fn invalidate(&mut self, asid: u64, first: usize, last: usize) -> u64 {
        let mut n = 0;
        for slot in &mut self.entries {
            if slot.is_some_and(|e| e.asid == asid && (first..last).contains(&e.page)) {
                *slot = None;
                n += 1;
            }
        }
        n
    }
}

// SAFETY: The addresses are of pages mapped for the device, which any thread may reach.
unsafe impl Send for Tlb {}

/// One engine.
#[pin_data]
struct Engine {
    #[pin]
    tlb: Mutex<Tlb>,
}

/// An engine a job runs on: only the engine's own worker has it.
pub(crate) struct EngineUse<'a> {
    engines: &'a Engines,
    index: usize,
}

impl EngineUse<'_> {
    /// The device the engine is part of.
    pub(crate) fn engines(&self) -> &Engines {
        self.engines
    }
}

/// The jobs waiting for an engine.
///
/// # Invariants
///
/// `jobs` has room for [`QUEUE_DEPTH`] jobs and holds no more.
struct Queue {
    jobs: KVec<Arc<Job>>,
    /// A bit per engine whose worker is neither queued nor running, of the `count` first.
    idle: u32,
    /// The job each engine runs.
    running: [Option<Arc<Job>>; MAX_ENGINES as usize],
    /// Jobs submitted and not complete, queued or running.
    in_flight: usize,
    /// A reset is in progress: no job may be submitted and no context added.
    resetting: bool,
}

impl Queue {
    /// A job is complete, or cancelled before it ran.
    fn retire(&mut self, drained: &CondVar) {
        self.in_flight -= 1;
        if self.in_flight == 0 {
            drained.notify_all();
        }
    }
}

/// The engines of one device.
#[pin_data]
pub(crate) struct Engines {
    engines: KVec<Pin<KBox<Engine>>>,
    #[pin]
    queue: Mutex<Queue>,
    /// Signalled when a job leaves the queue, and when a reset is over.
    #[pin]
    room: CondVar,
    /// Signalled when no job is in flight.
    #[pin]
    drained: CondVar,
    /// The open contexts of the device, for a reset.
    #[pin]
    contexts: Mutex<KVec<Arc<Context>>>,
    /// Held by a reset.
    #[pin]
    reset_lock: Mutex<()>,
    #[pin]
    units: [Mutex<()>; ATOMIC_UNITS],
    /// The workers of the engines, one per engine (up to [`MAX_ENGINES`]).
    #[pin]
    work0: Work<Engines, 0>,
    #[pin]
    work1: Work<Engines, 1>,
    #[pin]
    work2: Work<Engines, 2>,
    #[pin]
    work3: Work<Engines, 3>,
    /// The next address space number: each page table gets its own, never reused.
    next_asid: Atomic<u64>,
    /// Fault injection: until this time, a TLB flush completes only when the hold is lifted,
    /// as on a GPU whose flush is slow (see [`Self::shoot_down`]).
    #[pin]
    flush_hold: SpinLock<Option<Instant<Monotonic>>>,
    /// The device pages are mapped for.
    pub(crate) dma: &'static Device<Bound>,
    /// Where the engines' misses go.
    pub(crate) faults: Arc<FaultBuffer>,
    pub(crate) stats: Arc<DeviceStats>,
}

impl_has_work! {
    impl HasWork<Self, 0> for Engines { self.work0 }
    impl HasWork<Self, 1> for Engines { self.work1 }
    impl HasWork<Self, 2> for Engines { self.work2 }
    impl HasWork<Self, 3> for Engines { self.work3 }
}

/// The worker of engine `$id`.
macro_rules! engine_worker {
    ($($id:literal),*) => {$(
        impl WorkItem<$id> for Engines {
            type Pointer = Arc<Engines>;

            fn run(this: Arc<Engines>) {
                this.serve($id);
            }
        }
    )*};
}

engine_worker!(0, 1, 2, 3);

impl Engines {
    /// `count` idle engines of a device that maps pages for `dma` and writes its faults into
    /// `faults`.
    pub(crate) fn new(
        count: u32,
        dma: &'static Device<Bound>,
        faults: Arc<FaultBuffer>,
        stats: Arc<DeviceStats>,
    ) -> Result<Arc<Self>> {
        if count == 0 || count > MAX_ENGINES {
            return Err(EINVAL);
        }
        let mut engines = KVec::with_capacity(count as usize, GFP_KERNEL)?;
        for _ in 0..count {
            let tlb = Tlb {
                entries: [None; TLB_ENTRIES],
                victim: 0,
            };
            engines.push(
                KBox::pin_init(
                    pin_init!(Engine {
                        tlb <- new_mutex!(tlb, "vsvm::Engine::tlb"),
                    }),
                    GFP_KERNEL,
                )?,
                GFP_KERNEL,
            )?;
        }
        // INVARIANT: room for a full queue.
        let queue = Queue {
            jobs: KVec::with_capacity(QUEUE_DEPTH, GFP_KERNEL)?,
            idle: (1u32 << count) - 1,
            running: [const { None }; MAX_ENGINES as usize],
            in_flight: 0,
            resetting: false,
        };
        Arc::pin_init(
            pin_init!(Self {
                engines,
                queue <- new_mutex!(queue),
                room <- new_condvar!(),
                drained <- new_condvar!(),
                contexts <- new_mutex!(KVec::new()),
                reset_lock <- new_mutex!(()),
                units <- pin_init::pin_init_array_from_fn(|_| new_mutex!(())),
                work0 <- new_work!("vsvm::Engines::work0"),
                work1 <- new_work!("vsvm::Engines::work1"),
                work2 <- new_work!("vsvm::Engines::work2"),
                work3 <- new_work!("vsvm::Engines::work3"),
                next_asid: Atomic::new(1),
                flush_hold <- new_spinlock!(None, "vsvm::Engines::flush_hold"),
                dma,
                faults,
                stats,
            }),
            GFP_KERNEL,
        )
    }

    /// A new address space number.
    pub(crate) fn new_asid(&self) -> u64 {
        self.next_asid.fetch_add(1, Relaxed)
    }

    /// Queues `job` for the first engine that is free, waiting for room in the queue (and for
    /// a reset to end): `EINTR` if a signal comes first, and then the job is not queued.
    pub(crate) fn submit(self: &Arc<Self>, job: Arc<Job>) -> Result {
        let mut queue = self.queue.lock();
        while queue.jobs.len() >= QUEUE_DEPTH || queue.resetting {
            if self.room.wait_interruptible(&mut queue) {
                return Err(EINTR);
            }
        }
        // INVARIANT: there is room (checked above).
        if let Err(e) = queue.jobs.push_within_capacity(job) {
            drop(queue);
            // Cannot happen; a job that never completes would leave its waiter waiting.
            e.0.abort(ENOSPC);
            return Ok(());
        }
        queue.in_flight += 1;
        if queue.idle != 0 {
            let id = queue.idle.trailing_zeros();
            queue.idle &= !(1 << id);
            // If the worker is still running (it set its bit but has not returned), it runs
            // again, and finds the queue empty or not.
            let q = workqueue::system_dfl();
            let _ = match id {
                0 => q.enqueue::<_, 0>(self.clone()),
                1 => q.enqueue::<_, 1>(self.clone()),
                2 => q.enqueue::<_, 2>(self.clone()),
                _ => q.enqueue::<_, 3>(self.clone()),
            };
        }
        Ok(())
    }

    /// Cancels `job`: taken out of the queue and completed with `ECANCELED` if it is still
    /// there, or else told to stop at its next access (see [`Job::cancel`]).
    pub(crate) fn cancel(&self, job: &Arc<Job>) {
        let mut queue = self.queue.lock();
        let Some(i) = queue.jobs.iter().position(|j| Arc::ptr_eq(j, job)) else {
            drop(queue);
            job.cancel();
            return;
        };
        let _ = queue.jobs.remove(i);
        self.room.notify_one();
        queue.retire(&self.drained);
        drop(queue);
        job.abort(ECANCELED);
    }

    /// The worker of engine `index`: runs the queued jobs until there are none.
    fn serve(&self, index: usize) {
        let engine = EngineUse {
            engines: self,
            index,
        };
        loop {
            let job = {
                let mut queue = self.queue.lock();
                if queue.jobs.is_empty() {
                    queue.idle |= 1 << index;
                    return;
                }
                let Ok(job) = queue.jobs.remove(0) else {
                    continue;
                };
                self.room.notify_one();
                queue.running[index] = Some(job.clone());
                job
            };
            job.run(&engine);
            let mut queue = self.queue.lock();
            queue.running[index] = None;
            queue.retire(&self.drained);
            drop(queue);
            // Outside the lock: the last reference to a context may go here.
            drop(job);
        }
    }

    /// Adds `ctx`, a context of a file being opened, to those a reset revokes; waits for a
    /// reset in progress to end (`EINTR` if a signal comes first).
    pub(crate) fn add_context(&self, ctx: Arc<Context>) -> Result {
        let mut queue = self.queue.lock();
        while queue.resetting {
            if self.room.wait_interruptible(&mut queue) {
                return Err(EINTR);
            }
        }
        self.contexts.lock().push(ctx, GFP_KERNEL)?;
        Ok(())
    }

    /// Removes `ctx`, the context of a file being closed.
    pub(crate) fn remove_context(&self, ctx: &Arc<Context>) {
        self.contexts.lock().retain(|c| !Arc::ptr_eq(c, ctx));
    }

    /// Resets the device: no job may be submitted, every context loses its grants with a
    /// fenced revocation that also keeps new grants out (a fault in progress or to come fails
    /// with `ECANCELED`), so the jobs in flight fail each remaining operation at its next
    /// access; when none is left, new work may come.
    pub(crate) fn reset(&self) -> Result {
        let _reset = self.reset_lock.lock();
        // From here no file is opened and no job submitted on the device: the contexts to
        // revoke are those of the open files and of the jobs queued or running (a closed
        // file's jobs run on).
        let mut queue = self.queue.lock();
        queue.resetting = true;
        let contexts = match Self::contexts_of(&queue, &self.contexts.lock()) {
            Ok(contexts) => contexts,
            Err(e) => {
                queue.resetting = false;
                self.room.notify_all();
                return Err(e);
            }
        };
        drop(queue);
        let mut blocked = KVec::with_capacity(contexts.len(), GFP_KERNEL)?;
        for ctx in &contexts {
            // Cannot fail: the capacity is there.
            let _ = blocked.push_within_capacity(ctx.block());
        }
        let mut queue = self.queue.lock();
        while queue.in_flight != 0 {
            self.drained.wait(&mut queue);
        }
        // Nothing of before the reset runs, and nothing is mapped: new work may come, and
        // grant again.
        drop(blocked);
        queue.resetting = false;
        self.room.notify_all();
        drop(queue);
        self.stats.resets.fetch_add(1, Relaxed);
        Ok(())
    }

    /// The contexts of `open` files and of the jobs of `queue`, each once.
    fn contexts_of(queue: &Queue, open: &KVec<Arc<Context>>) -> Result<KVec<Arc<Context>>> {
        let jobs = Iterator::chain(queue.jobs.iter(), queue.running.iter().flatten());
        let mut all = KVec::with_capacity(open.len(), GFP_KERNEL)?;
        for ctx in Iterator::chain(open.iter(), jobs.map(|j| j.context())) {
            if !all.iter().any(|c| Arc::ptr_eq(c, ctx)) {
                all.push(ctx.clone(), GFP_KERNEL)?;
            }
        }
        Ok(all)
    }

    /// Waits until no engine runs a job: for the device's teardown, when no job can come.
    pub(crate) fn flush(&self) {
        self.work0.flush();
        self.work1.flush();
        self.work2.flush();
        self.work3.flush();
    }

    /// Runs `f` on page `page` (a page-aligned user address) of `ctx`, address space `asid`,
    /// as the engine reaches it: through its TLB, or the device page table on a miss. `None`
    /// is a device fault: the page table has no atomic entry for the page.
    ///
    /// The engine's TLB lock is held while `f` runs, so a shootdown of the page waits for it.
    pub(crate) fn access<R>(
        &self,
        engine: &EngineUse<'_>,
        ctx: &SvmContext<PageTable>,
        asid: u64,
        page: usize,
        f: impl FnOnce(&DevicePage<'_>) -> R,
    ) -> Option<R> {
        let e = &self.engines[engine.index];
        let index = page >> PAGE_SHIFT;
        {
            let tlb = e.tlb.lock();
            if let Some(addr) = tlb.lookup(asid, index) {
                self.stats.tlb_hits.fetch_add(1, Relaxed);
                return Some(self.run(&tlb, addr, f));
            }
        }
        self.stats.tlb_misses.fetch_add(1, Relaxed);
        // The fill happens under the page-table lock (page-table lock, then TLB lock: the
        // order `unmap()` takes them in), so no shootdown of the entry can come between the
        // walk and the fill; the operations then run with the TLB's lock alone.
        let (tlb, addr) = ctx.with_page_table(|pt| {
            let addr = pt.walk(page)?;
            let mut tlb = e.tlb.lock();
            let victim = tlb.victim;
            // INVARIANT: the entry is atomic, and the page-table lock is held.
            tlb.entries[victim] = Some(TlbEntry {
                asid,
                page: index,
                addr,
            });
            tlb.victim = (victim + 1) % TLB_ENTRIES;
            Some((tlb, addr))
        })?;
        Some(self.run(&tlb, addr, f))
    }

    /// Runs `f` on the page at `addr`, a translation in `tlb`: borrowed from its lock's guard,
    /// so the lock is held until `f` returns.
    fn run<R>(&self, _tlb: &Tlb, addr: NonNull<u8>, f: impl FnOnce(&DevicePage<'_>) -> R) -> R {
        let _unit = self.units[(addr.as_ptr() as usize >> PAGE_SHIFT) % ATOMIC_UNITS].lock();
        // SAFETY: A translation in a TLB is a page mapped for the device by an entry of a page
        // table (type invariant of `Tlb`, and of `PageTable`): the entry is cleared only after a
        // shootdown, which waits for the TLB's lock, held until `f` returns.
        let page = unsafe { DevicePage::new(addr) };
        f(&page)
    }

    /// Counts `n` operations run on `engine`.
    pub(crate) fn count_ops(&self, engine: &EngineUse<'_>, n: u64) {
        self.stats.engine_ops[engine.index].fetch_add(n, Relaxed);
    }

    /// Drops every engine's translations of pages `first..last` (page numbers) of `asid`,
    /// waiting for an engine that uses one to finish its operation, and for the flush to
    /// complete while one is held.
    pub(crate) fn shoot_down(&self, asid: u64, first: usize, last: usize) {
        for e in &self.engines {
            let mut tlb = e.tlb.lock();
            Self::invalidate(&self.stats, &mut tlb, asid, first, last);
        }
        self.wait_for_flush();
    }

    /// [`Self::shoot_down`] without waiting: `false` if an engine is busy or the flush is held,
    /// and then the range may still be in a TLB.
    pub(crate) fn try_shoot_down(&self, asid: u64, first: usize, last: usize) -> bool {
        if self.flush_held_for().is_some() {
            // A flush that cannot complete at once needs a wait, as on most GPUs.
            self.stats.shootdowns_refused.fetch_add(1, Relaxed);
            return false;
        }
        for e in &self.engines {
            let Some(mut tlb) = e.tlb.try_lock() else {
                self.stats.shootdowns_refused.fetch_add(1, Relaxed);
                return false;
            };
            Self::invalidate(&self.stats, &mut tlb, asid, first, last);
        }
        true
    }

    /// Holds TLB flushes for the next `ms` (0 lifts the hold): `EINVAL` beyond
    /// [`MAX_FLUSH_HOLD_MS`].
    pub(crate) fn hold_flushes(&self, ms: u32) -> Result {
        if ms > MAX_FLUSH_HOLD_MS {
            return Err(EINVAL);
        }
        *self.flush_hold.lock() = (ms != 0).then(|| Instant::now() + Delta::from_millis(ms.into()));
        Ok(())
    }

    /// How long TLB flushes are still held, if they are.
    pub(crate) fn flush_held_for(&self) -> Option<Delta> {
        let until = (*self.flush_hold.lock())?;
        let left = until - Instant::now();
        (left > Delta::ZERO).then_some(left)
    }

    /// Waits while flushes are held: until the hold is lifted or its time is up.
    fn wait_for_flush(&self) {
        if self.flush_held_for().is_none() {
            return;
        }
        self.stats.flushes_held.fetch_add(1, Relaxed);
        while self.flush_held_for().is_some() {
            fsleep(Delta::from_millis(1));
        }
    }

    fn invalidate(stats: &DeviceStats, tlb: &mut Tlb, asid: u64, first: usize, last: usize) {
        let n = tlb.invalidate(asid, first, last);
        if n != 0 {
            stats.shootdowns.fetch_add(1, Relaxed);
            stats.tlb_entries_shot.fetch_add(n, Relaxed);
        }
    }
}

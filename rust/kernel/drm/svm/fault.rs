// SPDX-License-Identifier: GPL-2.0

//! One atomic fault in progress, page by page.

use super::{
    context::{
        ChunkNotifier,
        ChunkUse,
        Shared,
        State, //
    },
    fault_around::Stream,
    granting::Granting,
    grants::Grant,
    notifier::{
        Chunk,
        CHUNK_SIZE, //
    },
    stats::Phase,
    trace,
    DriverSvm,
    Faulted,
    NotifierMode,
    SvmContext, //
};
use crate::{
    mm::{
        device_exclusive::DeviceExclusiveFolio,
        mmu_notifier::{
            MmuIntervalNotifier,
            ReadSeq, //
        },
        MmWithUser, //
    },
    page::{
        PAGE_SHIFT,
        PAGE_SIZE, //
    },
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        MutexGuard, //
    },
    time::{
        delay::fsleep,
        Delta,
        Instant,
        Monotonic, //
    },
};

/// A fault in progress: what passes from one page of a batch to the next, owned in one place.
///
/// The fields drop in the order they are declared, which is the order in which a fault lets
/// go of what it holds: the chunk in use (ending the use may remove the chunk's notifier),
/// then the fault lock (which the chunk's removal relies on). `Drop` first keeps the
/// allocation that the page looked at ahead took, for the next fault. The mmap read lock is
/// held only around each page's `make_device_exclusive()`.
pub(super) struct Fault<'a, T: DriverSvm> {
    /// The chunk of the page being granted (of the last one, between pages).
    chunk: Option<ChunkUse<'a, T>>,
    /// The next page of the batch (its address), looked at by the previous page's commit.
    ahead: Option<(usize, Seen<T>)>,
    /// The context's fault lock, over its stream of faults.
    serial: MutexGuard<'a, Stream>,
    ctx: &'a SvmContext<T>,
    mm: &'a MmWithUser,
    /// `Shared::generation` when the fault began: a fault that [`SvmContext::revoke_all`] ran
    /// across commits nothing.
    generation: usize,
    /// The deadline of the page being granted.
    deadline: Deadline,
    /// What the fault did so far.
    pub(super) done: Faulted,
}

impl<'a, T: DriverSvm> Fault<'a, T> {
    /// Begins a fault of `ctx` in `mm`, which the caller keeps alive: takes the context's fault
    /// lock.
    pub(super) fn new(ctx: &'a SvmContext<T>, mm: &'a MmWithUser) -> Self {
        let serial = ctx.fault_lock.lock();
        Self {
            chunk: None,
            ahead: None,
            serial,
            ctx,
            mm,
            // Compared under the page-table lock when each page is committed.
            generation: ctx.shared.generation(),
            deadline: Deadline::new(ctx.config.timeout),
            done: Faulted::default(),
        }
    }

    /// The stream of the context's faults, for fault-around.
    pub(super) fn stream(&mut self) -> &mut Stream {
        &mut self.serial
    }

    /// Grants the page at `addr`; `false` if the device held it already. `next` is the next
    /// page of the batch, if it is in the same chunk (the next chunk's notifier may not exist
    /// yet): this page's commit looks at it. A page granted `ahead` of those asked for is
    /// granted at once or not at all: `EAGAIN` if another device's residency or a collision
    /// would make it wait or retry.
    pub(super) fn page(&mut self, addr: usize, next: Option<usize>, ahead: bool) -> Result<bool> {
        let index = addr / CHUNK_SIZE;
        let chunk = match self.chunk.take() {
            Some(chunk) if chunk.index == index => chunk,
            previous => {
                // Ending the use of the previous chunk may remove its notifier, which sleeps.
                drop(previous);
                let chunk = self.ctx.chunk(self.mm, addr)?;
                self.done.notifiers_inserted += usize::from(chunk.created);
                chunk
            }
        };
        let ret = self.grant_page(&chunk.chunk, addr, next, ahead);
        self.chunk = Some(chunk);
        let ctx = self.ctx;
        let shared = &ctx.shared;
        if ret == Err(EBUSY) {
            trace::timeout(shared.owner, addr);
        }
        if ret.is_err() {
            if let Some(residency) = &shared.residency {
                // A fault that gives up must not keep the others waiting behind it.
                residency.leave(shared.mm_key, addr / CHUNK_SIZE, shared.owner_key());
            }
        }
        ret
    }

    /// Grants one page: prepare, begin, try to grant; again after a collision, until the page
    /// is granted, the deadline passes or a fatal signal arrives. When granted, `self.ahead` is
    /// the next page, looked at by the commit.
    fn grant_page(
        &mut self,
        chunk: &ChunkNotifier<T>,
        addr: usize,
        next: Option<usize>,
        ahead: bool,
    ) -> Result<bool> {
        let ctx = self.ctx;
        let shared = &ctx.shared;
        let mut seen = self
            .ahead
            .take()
            .and_then(|(ahead, seen)| (ahead == addr).then_some(seen));
        self.deadline.reset();
        let mut attempt = 0u32;
        let mut kept = None;
        loop {
            trace::phase(shared.owner, addr, Phase::Entry);
            if fatal_signal_pending() {
                // Kept for the next fault when this one is dropped.
                self.ahead = seen.map(|seen| (addr, seen));
                return Err(EINTR);
            }
            if self.deadline.passed() {
                return Err(EBUSY);
            }
            let Some(pte) = self.prepare(addr, seen.take(), kept.take())? else {
                return Ok(false);
            };
            trace::phase(shared.owner, addr, Phase::Prepare);
            let begun = match self.begin(chunk, addr, ahead) {
                Ok(begun) => begun,
                Err(e) => {
                    shared.state.lock().keep_spare(pte);
                    return Err(e);
                }
            };
            trace::phase(shared.owner, addr, Phase::ReadBegin);
            let result = self.try_grant(chunk, &begun, addr, next, pte);
            drop(begun);
            match result? {
                Attempt::Granted(next) => {
                    self.ahead = next;
                    break;
                }
                Attempt::Retry(pte) if ahead => {
                    shared.state.lock().keep_spare(pte);
                    return Err(EAGAIN);
                }
                Attempt::Retry(pte) => {
                    kept = Some(pte);
                    self.done.retries += 1;
                    trace::retry(shared.owner, addr);
                    self.deadline.start();
                    attempt += 1;
                    backoff(attempt);
                }
            }
        }
        if let Some(residency) = &shared.residency {
            residency.record(shared.mm_key, addr / CHUNK_SIZE, shared.owner_key(), ahead);
        }
        trace::grant(shared.owner, addr);
        trace::phase(shared.owner, addr, Phase::Release);
        Ok(true)
    }

    /// Step 1: unless the device holds the page already (`None`; `seen` if the previous
    /// page's commit looked), takes the allocation [`DriverSvm::map_atomic`] may need: the
    /// previous attempt's, the one the last grant left, or a new one.
    fn prepare(
        &mut self,
        addr: usize,
        seen: Option<Seen<T>>,
        kept: Option<T::PteAlloc>,
    ) -> Result<Option<T::PteAlloc>> {
        let ctx = self.ctx;
        let shared = &ctx.shared;
        let seen = match seen {
            // Seen by the previous page's commit, which checked for cancellation.
            Some(seen) => seen,
            None => {
                let mut state = shared.state.lock();
                // Before the page is taken from the CPU or another device, and on each retry.
                if state.cancelled(shared, self.generation) {
                    return Err(ECANCELED);
                }
                Seen::look(&mut state, addr, kept.is_none())
            }
        };
        let spare = match (seen, kept) {
            (Seen::Held, _) => {
                // Counted when the page's turn comes, not when the previous page's commit
                // looked at it (a page fault-around then does not take).
                self.done.already_mapped += 1;
                return Ok(None);
            }
            (_, Some(kept)) => return Ok(Some(kept)),
            (Seen::Absent(spare), None) => spare,
        };
        match spare {
            Some(pte) => Ok(Some(pte)),
            // Without the page-table lock, which reclaim may need.
            None => T::alloc_pte().map(Some),
        }
    }

    /// Step 2: waits out another device's residency on the page's chunk (a page granted
    /// `ahead` does not wait: `EAGAIN`), then starts the sequence the grant is validated
    /// against (of a notifier of its own in per-fault mode).
    fn begin(&mut self, chunk: &ChunkNotifier<T>, addr: usize, ahead: bool) -> Result<Begun<T>> {
        let ctx = self.ctx;
        let shared = &ctx.shared;
        let residency = shared.residency.as_ref();
        let key = (shared.mm_key, addr / CHUNK_SIZE, shared.owner_key());
        if ahead && residency.is_some_and(|r| r.held_by_other(key.0, key.1, key.2)) {
            return Err(EAGAIN);
        }
        let per_fault = match ctx.config.notifiers {
            NotifierMode::LongLived => None,
            NotifierMode::PerFault => Some(Arc::pin_init(
                MmuIntervalNotifier::new(
                    self.mm,
                    addr,
                    PAGE_SIZE,
                    Ok::<_, Error>(Chunk::new(shared.clone())),
                ),
                GFP_KERNEL_ACCOUNT,
            )?),
        };
        if let Some(residency) = residency.filter(|_| !ahead) {
            // Back off for the rest of the other device's slice, and then until the devices
            // that came first had their turn, within the deadline, which this starts: at the
            // deadline the fault takes the page, or fails with `EBUSY` if it collides.
            let mut waited = false;
            while let Some(left) = residency.remaining(key.0, key.1, key.2) {
                let budget = self.deadline.remaining();
                if budget <= Delta::ZERO {
                    break;
                }
                if fatal_signal_pending() {
                    return Err(EINTR);
                }
                if !waited {
                    self.done.residency_waits += 1;
                    waited = true;
                }
                fsleep(if left < budget { left } else { budget });
            }
            if waited {
                // Named again: an invalidation of the page during the wait began before
                // `read_begin()`, which waits for it or finds it done. It is no collision.
                shared.state.lock().name(addr);
            }
        }
        // Without the mmap lock, in the order Documentation/mm/hmm.rst shows: this may wait
        // for an invalidation in progress.
        let seq = per_fault.as_deref().unwrap_or(chunk).read_begin();
        Ok(Begun { seq, per_fault })
    }

    /// Step 3: makes the page device-exclusive under the mmap read lock, then commits the grant
    /// under the page-table lock, unless an invalidation collided with it since [`Self::begin`]:
    /// then the page is left to the CPU and the PTE allocation is kept for the next attempt.
    fn try_grant(
        &mut self,
        chunk: &ChunkNotifier<T>,
        begun: &Begun<T>,
        addr: usize,
        next: Option<usize>,
        pte: T::PteAlloc,
    ) -> Result<Attempt<T>> {
        let ctx = self.ctx;
        let shared = &ctx.shared;
        let guard = self.mm.mmap_read_lock();
        trace::phase(shared.owner, addr, Phase::MmapLock);
        let grant = {
            let _in_progress = GrantInProgress::enter(&shared.granting_task);
            guard.make_device_exclusive(addr, shared.owner)?
        };
        trace::phase(shared.owner, addr, Phase::MakeExclusive);
        let mut state = shared.state.lock();
        // Every invalidation of the notifier's range publishes its sequence but the fault's own,
        // so `read_retry()` is also true for one of another page of the chunk, which cannot
        // make this grant stale (the device-exclusive entry is made for, and revalidated
        // against, this page's PTE alone): only one that covered the page retries.
        let collided = begun.notifier(chunk).read_retry(begun.seq) && state.collided;
        let result = if collided {
            Ok(Attempt::Retry(pte))
        } else {
            Self::commit(&mut state, shared, self.generation, &grant, pte).map(|()| {
                // The next page of a batch is looked at in this lock section, not one of its
                // own.
                let next = next.map(|next| (next, Seen::look(&mut state, next, true)));
                Attempt::Granted(next)
            })
        };
        trace::phase(shared.owner, addr, Phase::Commit);
        // The page-table lock before the folio lock, and that before the mmap lock: lock order.
        drop(state);
        drop(grant);
        drop(guard);
        result
    }

    /// Step 4, under the page-table lock, with the page device-exclusive for us and no
    /// invalidation since `read_begin()`: maps it in the device and records the grant, unless
    /// the driver blocked grants or revoked them all since the fault began.
    fn commit(
        state: &mut State<T>,
        shared: &Shared<T>,
        generation: usize,
        grant: &DeviceExclusiveFolio,
        pte: T::PteAlloc,
    ) -> Result {
        if state.cancelled(shared, generation) {
            state.keep_spare(pte);
            return Err(ECANCELED);
        }
        let State {
            pt,
            grants,
            spare_pte,
            ..
        } = state;
        // The fault's `ChunkUse` keeps the chunk and its slots; the page was seen not granted
        // when it was looked at, and only faults, which the fault lock serialises, grant.
        let slot = grants.vacant(grant.addr() >> PAGE_SHIFT).ok_or(EINVAL)?;
        let mut pte = Some(pte);
        let mapped = pt.map_atomic(grant, &mut pte);
        // What the driver did not need serves the next grant.
        if let Some(pte) = pte {
            spare_pte.get_or_insert(pte);
        }
        mapped?;
        // No invalidation of the page has begun since `read_begin()` but those the notifier
        // neither publishes nor records, which cannot take the page from us: a conversion for
        // our owner (it replaces only a present PTE) and the ones our own task made inside
        // `make_device_exclusive()` (over before it revalidated the PTE under the folio lock).
        // Any other that covers the page either set `collided` under this lock (the page was
        // named before `read_begin()`), or published its sequence before it was named, and
        // `read_begin()` waited for it to end.
        // SAFETY: So the page is still device-exclusive for us (above), and the next
        // invalidation of it will remove the grant.
        let recorded = unsafe { Grant::new(&grant.page()) };
        slot.fill(recorded);
        // The device may write; the exclusive entry looks clean to the core mm.
        grant.mark_dirty();
        Ok(())
    }
}

impl<T: DriverSvm> Drop for Fault<'_, T> {
    fn drop(&mut self) {
        if let Some((_, Seen::Absent(Some(pte)))) = self.ahead.take() {
            // The batch stopped after looking at a page: keep the allocation that took.
            self.ctx.shared.state.lock().keep_spare(pte);
        }
    }
}

/// A page looked at under the page-table lock, before its grant begins.
enum Seen<T: DriverSvm> {
    /// The device holds it already.
    Held,
    /// Not held: to grant, with the spare allocation for [`DriverSvm::map_atomic`], if there
    /// was one.
    Absent(Option<T::PteAlloc>),
}

impl<T: DriverSvm> Seen<T> {
    /// Under the page-table lock: whether the device holds the page at `addr` already, and if
    /// not, names it in `State::granting` and takes the spare allocation (if `take_spare`).
    fn look(state: &mut State<T>, addr: usize, take_spare: bool) -> Self {
        if state.grants.get(addr >> PAGE_SHIFT).is_some() {
            return Self::Held;
        }
        // Before `read_begin()`, under the lock: see `State::granting`.
        state.name(addr);
        Self::Absent(if take_spare { state.take_spare() } else { None })
    }
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
    /// Granted; the next page of the batch, if any, was looked at.
    Granted(Option<(usize, Seen<T>)>),
    /// An invalidation collided with the grant; try again with this allocation.
    Retry(T::PteAlloc),
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

/// A page's deadline, started by its first retry or wait: most grants never read the clock.
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

    /// For the next page.
    fn reset(&mut self) {
        self.started = None;
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

// SPDX-License-Identifier: GPL-2.0

//! The device's fault buffer and the worker that services it, like a GPU's replayable fault
//! buffer and `nouveau_svm_fault()`.
//!
//! A page walk that misses writes a fault record (context, page) into the buffer, a bounded
//! ring; the faulting operation stalls until its record is serviced, and waits for room when
//! the ring is full, as hardware does. One worker per device takes every pending record at
//! once, sorts them by context and address, merges duplicates and neighbouring pages into
//! ranges, and grants each range with one `atomic_fault()` call. It runs in a kernel worker,
//! not in the faulting task: the backend reaches the process's address space with `mmget`,
//! and faults of several processes interleave in one buffer. Each stalled operation is then
//! told to replay, or the error to report for it.

use crate::{
    pt::PageTable,
    stats::{
        counted,
        DeviceStats,
        FileStats, //
    },
};
use kernel::{
    drm::svm::SvmContext,
    new_condvar, new_mutex, new_work,
    page::PAGE_SIZE,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        CondVar,
        Mutex, //
    },
    workqueue::{
        self,
        impl_has_work,
        Work,
        WorkItem, //
    },
};

/// The context a fault record names: one process on the device.
pub(crate) type Context = SvmContext<PageTable>;

/// Records the buffer holds: fewer than a GPU's, so that tests fill it.
pub(crate) const FAULT_SLOTS: usize = 16;

/// Most pages the worker grants in one call, as one range.
const MAX_RANGE_PAGES: usize = 512;

/// A record's outcome while it is pending.
const PENDING: i32 = 1;

/// One fault record.
struct Record {
    ctx: Arc<Context>,
    /// The counters of the file `ctx` belongs to, as a driver finds its VM's from a record's
    /// address space number.
    file: Arc<FileStats>,
    /// The faulting page.
    addr: usize,
    /// [`PENDING`], then 0 (replay) or `-errno`, set by the worker.
    outcome: Arc<Atomic<i32>>,
}

/// The ring and the worker's state.
///
/// # Invariants
///
/// `pending` never holds more than [`FAULT_SLOTS`] records and has room for that many, as has
/// `spare` when it is `Some`; `spare` is `None` only while the worker services a batch.
struct Ring {
    pending: KVec<Record>,
    /// The batch memory of the worker, while it is idle.
    spare: Option<KVec<Record>>,
    /// The worker is queued or running: a new record needs no new queueing.
    scheduled: bool,
}

/// A device's fault buffer.
#[pin_data]
pub(crate) struct FaultBuffer {
    #[pin]
    ring: Mutex<Ring>,
    /// Signalled when records have been serviced, or taken out of the ring (there is room).
    #[pin]
    serviced: CondVar,
    #[pin]
    work: Work<FaultBuffer>,
    stats: Arc<DeviceStats>,
}

impl_has_work! {
    impl HasWork<Self> for FaultBuffer { self.work }
}

impl FaultBuffer {
    /// An empty fault buffer; the faults it services count in `stats`.
    pub(crate) fn new(stats: Arc<DeviceStats>) -> Result<Arc<Self>> {
        let ring = Ring {
            pending: KVec::with_capacity(FAULT_SLOTS, GFP_KERNEL)?,
            spare: Some(KVec::with_capacity(FAULT_SLOTS, GFP_KERNEL)?),
            scheduled: false,
        };
        Arc::pin_init(
            pin_init!(Self {
                ring <- new_mutex!(ring),
                serviced <- new_condvar!(),
                work <- new_work!("vsvm::FaultBuffer::work"),
                stats,
            }),
            GFP_KERNEL,
        )
    }

    /// Writes a fault record for each page of `pages` (addresses in `ctx`) and stalls until
    /// the worker has serviced them all, as an engine does for the misses of one wave of
    /// accesses: `Ok` means replay the access to the first page; an error is that fault's,
    /// for the operation. The other pages' outcomes are not reported: an access that still
    /// misses faults again.
    ///
    /// May sleep, for room in the buffer and for the worker.
    pub(crate) fn fault(
        self: &Arc<Self>,
        ctx: &Arc<Context>,
        file: &Arc<FileStats>,
        pages: &[usize],
    ) -> Result {
        let mut outcomes = KVec::with_capacity(pages.len(), GFP_KERNEL)?;
        for _ in pages {
            outcomes.push(Arc::new(Atomic::new(PENDING), GFP_KERNEL)?, GFP_KERNEL)?;
        }
        let mut ring = self.ring.lock();
        for (&addr, outcome) in pages.iter().zip(&outcomes) {
            if ring.pending.len() >= FAULT_SLOTS {
                self.stats.buffer_full.fetch_add(1, Relaxed);
                while ring.pending.len() >= FAULT_SLOTS {
                    self.serviced.wait(&mut ring);
                }
            }
            let record = Record {
                ctx: ctx.clone(),
                file: file.clone(),
                addr,
                outcome: outcome.clone(),
            };
            // INVARIANT: there is room (checked above).
            ring.pending
                .push_within_capacity(record)
                .map_err(|_| ENOSPC)?;
            self.stats.fault_records.fetch_add(1, Relaxed);
            if !ring.scheduled {
                ring.scheduled = true;
                // A long-running queue: a fault may take up to the backend's deadline per
                // page. If the worker is still queued (it cleared `scheduled` but has not
                // returned), it runs again anyway, and finds the record.
                let _ = workqueue::system_long().enqueue(self.clone());
            }
        }
        while outcomes.iter().any(|o| o.load(Relaxed) == PENDING) {
            self.serviced.wait(&mut ring);
        }
        drop(ring);
        match outcomes.first().map_or(0, |o| o.load(Relaxed)) {
            0 => Ok(()),
            e => Err(Error::from_errno(e)),
        }
    }

    /// Waits until the worker is done: for the device's teardown, when no record can come.
    pub(crate) fn flush(&self) {
        self.work.flush();
    }

    /// Grants what the records of `batch` ask for and sets their outcomes.
    fn service(&self, batch: &mut KVec<Record>) {
        batch.sort_unstable_by_key(|r| (Arc::as_ptr(&r.ctx) as usize, r.addr));
        self.stats.fault_batches.fetch_add(1, Relaxed);
        let mut i = 0;
        while i < batch.len() {
            // One range: the records of one context on consecutive pages, duplicates included.
            let (ctx, start) = (&batch[i].ctx, batch[i].addr);
            let (mut j, mut end) = (i + 1, start + PAGE_SIZE);
            while j < batch.len() && Arc::ptr_eq(&batch[j].ctx, ctx) && batch[j].addr <= end {
                if batch[j].addr == end {
                    if (end - start) / PAGE_SIZE == MAX_RANGE_PAGES {
                        break;
                    }
                    end += PAGE_SIZE;
                }
                j += 1;
            }
            let npages = (end - start) / PAGE_SIZE;
            self.stats.fault_ranges.fetch_add(1, Relaxed);
            let file = &batch[i].file;
            let range = counted(ctx.atomic_fault(start, npages), file, &self.stats);
            for r in &batch[i..j] {
                let result = match range {
                    Err(_) if npages > 1 => {
                        // Which page failed is not known: each record gets its page's own
                        // outcome (pages granted meanwhile are skipped at once).
                        counted(ctx.atomic_fault(r.addr, 1), file, &self.stats)
                    }
                    result => result,
                };
                r.outcome
                    .store(result.map_or_else(|e| e.to_errno(), |()| 0), Relaxed);
            }
            i = j;
        }
    }
}

impl WorkItem for FaultBuffer {
    type Pointer = Arc<FaultBuffer>;

    fn run(this: Arc<FaultBuffer>) {
        loop {
            let mut batch = {
                let mut ring = this.ring.lock();
                let spare = match ring.spare.take() {
                    Some(spare) if !ring.pending.is_empty() => spare,
                    spare => {
                        ring.spare = spare;
                        ring.scheduled = false;
                        return;
                    }
                };
                // INVARIANT: the spare memory has room for a full ring; the batch is out until
                // it comes back below.
                let batch = core::mem::replace(&mut ring.pending, spare);
                // There is room again.
                this.serviced.notify_all();
                batch
            };
            this.service(&mut batch);
            // Outside the lock: the last reference to a context may go here, and dropping it
            // revokes its grants.
            batch.clear();
            let mut ring = this.ring.lock();
            // INVARIANT: empty, with room for a full ring.
            ring.spare = Some(batch);
            // The outcomes were set before the lock was taken: a stalled operation either saw
            // its outcome, or waits and is woken now.
            this.serviced.notify_all();
        }
    }
}

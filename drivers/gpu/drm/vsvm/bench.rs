// SPDX-License-Identifier: GPL-2.0

//! `vsvm/bench_floor` in debugfs (`CONFIG_DRM_VSVM_BENCH`, off by default): the per-page cost
//! of granting measured in the kernel, for benchmarks, on the writer's own memory.
//!
//! Writing `COMMAND ADDR NPAGES` times one way of granting pages `[ADDR, ADDR + NPAGES pages)`:
//!
//! - `bare`: `make_device_exclusive()` and release, one mmap read lock for the loop; no
//!   notifier, no device page table: not something a correct driver can do;
//! - `floor`, `floor_batch`: a lower bound for a correct driver: a registered interval notifier
//!   whose callback takes the driver lock, clears the range in a preallocated PTE array (ending
//!   the DMA mappings of its entries) and publishes the sequence (but not for the device's own
//!   grant: its `MMU_NOTIFY_EXCLUSIVE`, and what the granting task invalidates inside
//!   `make_device_exclusive()`, such as a PMD split, or every retry would fault back the entry
//!   the previous attempt made), then per page `read_begin`, `make_device_exclusive()`, the
//!   lock, `read_retry`, the page's DMA mapping for the device and one store into the array,
//!   unlock, folio unlock and put; `floor` takes the mmap read lock per page, `floor_batch`
//!   once for the loop;
//! - `backend`, `backend_batch`: a fresh [`SvmContext`] granting the pages one fault each, or
//!   in one fault;
//!
//! Reading gives the last result of each in ns per page. Where a backend fault's time goes is
//! what the `drm_svm:svm_phase` tracepoint shows, enabled around a `backend` run. The writer
//! gives the pages back to the CPU (touches them) between runs.

use core::fmt;
use kernel::{
    device::{
        Bound,
        Device, //
    },
    dma::{
        streaming,
        DataDirection,
        DmaAddress, //
    },
    drm::svm::{
        Config,
        Residency,
        SvmContext, //
    },
    mm::{
        mmu_notifier::{
            Event,
            InvalidateSeq,
            MmuIntervalNotifier,
            MmuIntervalNotifierOps,
            Owner,
            Range, //
        },
        MmWithUser,
    },
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc, Mutex,
    },
    task::Task,
    time::{
        Instant,
        Monotonic, //
    },
    uaccess::UserSliceReader,
};

use crate::pt::PageTable;

/// The measurements, in the order they are reported.
const NAMES: [&str; 5] = ["bare", "floor", "floor_batch", "backend", "backend_batch"];

/// Most pages one measurement may cover.
const MAX_PAGES: usize = 4096;

/// Collisions the floor loop takes on one page before it gives up (`EBUSY`).
const MAX_RETRIES: u32 = 1000;

/// The last results.
pub(crate) struct Bench {
    /// The device pages are mapped for (a vsvm instance's).
    dma: &'static Device<Bound>,
    /// The devices' residency policy (`residency_us=`), which the backend's contexts share.
    residency: Option<Arc<Residency>>,
    ns: [Atomic<u64>; NAMES.len()],
}

/// The floor's notifier: what any driver's callback must do at least.
#[pin_data]
struct FloorNotifier {
    owner: Owner,
    /// The task inside `make_device_exclusive()`, or 0.
    granting: Atomic<usize>,
    /// The first page the PTEs map.
    start: usize,
    dma: &'static Device<Bound>,
    /// The device's PTEs (DMA addresses of pages mapped for `dma`, 0 for none), under the
    /// driver lock the grant's commit and the callback share.
    #[pin]
    ptes: Mutex<KVec<DmaAddress>>,
}

impl FloorNotifier {
    /// Clears `ptes[i]`, ending its DMA mapping.
    fn clear(&self, pte: &mut DmaAddress) {
        if *pte != 0 {
            // SAFETY: A non-zero entry is a live mapping of a page for `dma` (made in
            // `Bench::floor()` with these arguments), cleared here; the device-exclusive entry
            // keeps the page alive until the invalidation or the run is over.
            unsafe {
                streaming::unmap_page(self.dma, *pte, PAGE_SIZE, DataDirection::Bidirectional)
            };
            *pte = 0;
        }
    }
}

impl MmuIntervalNotifierOps for FloorNotifier {
    fn invalidate(n: &MmuIntervalNotifier<Self>, range: &Range, seq: InvalidateSeq<'_>) -> bool {
        let data = n.data();
        // Its own conversion, as nouveau filters it: retrying for it would livelock.
        if range.event() == Event::Exclusive && range.owner() == Some(data.owner) {
            // SAFETY: The probe is the notifier's only reader; an exclusive conversion for its
            // owner only replaces a present PTE it has just checked, so it removes no entry the
            // probe maps, and a section on that page faults the entry back first (published).
            unsafe { seq.reader_own() };
            return true;
        }
        let mut ptes = if range.is_blockable() {
            data.ptes.lock()
        } else {
            match data.ptes.try_lock() {
                Some(guard) => guard,
                None => return seq.refuse(),
            }
        };
        let first = range.start().saturating_sub(data.start) / PAGE_SIZE;
        let end = (range.end().saturating_sub(data.start) / PAGE_SIZE).min(ptes.len());
        for pte in ptes.iter_mut().take(end).skip(first) {
            data.clear(pte);
        }
        if data.granting.load(Relaxed) == Task::current_raw() as usize {
            // SAFETY: The probe is the notifier's only reader, and this invalidation its own,
            // made inside `make_device_exclusive()` between its `read_begin()` and
            // `read_retry()` (faulting the page back, splitting the PMD): retrying for it
            // would livelock. Its entries are cleared above all the same.
            unsafe { seq.reader_own() };
        } else {
            seq.set();
        }
        true
    }
}

impl Bench {
    /// The benchmark of a device that maps pages for `dma`, whose contexts share `residency`.
    pub(crate) fn new(dma: &'static Device<Bound>, residency: Option<Arc<Residency>>) -> Self {
        Self {
            dma,
            residency,
            ns: [const { Atomic::new(0) }; NAMES.len()],
        }
    }

    /// Reads the debugfs file.
    pub(crate) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, ns) in NAMES.iter().zip(&self.ns) {
            writeln!(f, "{name}_ns_per_page: {}", ns.load(Relaxed))?;
        }
        Ok(())
    }

    /// Writes to the debugfs file: runs one measurement.
    pub(crate) fn run(&self, reader: &mut UserSliceReader) -> Result {
        let mut buf = [0u8; 64];
        let len = reader.len().min(buf.len());
        reader.read_slice(&mut buf[..len])?;
        let text = core::str::from_utf8(&buf[..len]).map_err(|_| EINVAL)?;
        let mut words = text.split_whitespace();
        let (what, addr, npages) = (words.next().ok_or(EINVAL)?, words.next(), words.next());
        let addr = parse(addr.ok_or(EINVAL)?)?;
        let npages = parse(npages.ok_or(EINVAL)?)?;
        if npages == 0 || npages > MAX_PAGES || addr % PAGE_SIZE != 0 {
            return Err(EINVAL);
        }
        // The loops below add up to `npages - 1` pages to `addr`.
        addr.checked_add((npages - 1) * PAGE_SIZE).ok_or(EINVAL)?;
        let task = kernel::current!();
        let mm = task.mm().ok_or(EINVAL)?;
        let owner = Owner::from_ptr(self);
        let ns = match what {
            "bare" => Self::bare(mm, owner, addr, npages)?,
            "floor" => self.floor(mm, owner, addr, npages, false)?,
            "floor_batch" => self.floor(mm, owner, addr, npages, true)?,
            "backend" => self.backend(mm, owner, addr, npages)?,
            "backend_batch" => {
                let ctx = self.context(mm, owner)?;
                let start = Instant::<Monotonic>::now();
                ctx.atomic_fault(addr, npages)?;
                start.elapsed().as_nanos() as u64
            }
            _ => return Err(EINVAL),
        };
        if let Some(i) = NAMES.iter().position(|n| *n == what) {
            self.ns[i].store(ns / npages as u64, Relaxed);
        }
        Ok(())
    }

    /// Time of the bare loop.
    fn bare(mm: &MmWithUser, owner: Owner, addr: usize, npages: usize) -> Result<u64> {
        let lock = mm.mmap_read_lock();
        let start = Instant::<Monotonic>::now();
        for i in 0..npages {
            drop(lock.make_device_exclusive(addr + i * PAGE_SIZE, owner)?);
        }
        Ok(start.elapsed().as_nanos() as u64)
    }

    /// Time of the correct floor, the mmap lock taken per page or once (`batch`).
    fn floor(
        &self,
        mm: &MmWithUser,
        owner: Owner,
        addr: usize,
        npages: usize,
        batch: bool,
    ) -> Result<u64> {
        let mut ptes = KVec::with_capacity(npages, GFP_KERNEL)?;
        ptes.resize(npages, 0, GFP_KERNEL)?;
        let notifier = KBox::pin_init(
            MmuIntervalNotifier::new(
                mm,
                addr,
                npages * PAGE_SIZE,
                try_pin_init!(FloorNotifier {
                    owner,
                    granting: Atomic::new(0),
                    start: addr,
                    dma: self.dma,
                    ptes <- new_mutex!(ptes),
                }? Error),
            ),
            GFP_KERNEL,
        )?;
        let (lock, granting) = (&notifier.data().ptes, &notifier.data().granting);
        let me = Task::current_raw() as usize;
        let start = Instant::<Monotonic>::now();
        let mut batch_guard = batch.then(|| mm.mmap_read_lock());
        for i in 0..npages {
            let page = addr + i * PAGE_SIZE;
            let mut retries = 0;
            loop {
                let seq = notifier.read_begin();
                let own_guard;
                let guard = match &batch_guard {
                    Some(g) => g,
                    None => {
                        own_guard = mm.mmap_read_lock();
                        &own_guard
                    }
                };
                granting.store(me, Relaxed);
                let folio = guard.make_device_exclusive(page, owner);
                granting.store(0, Relaxed);
                let folio = folio?;
                let mut ptes = lock.lock();
                if notifier.read_retry(seq) {
                    retries += 1;
                    if retries > MAX_RETRIES {
                        return Err(EBUSY);
                    }
                    if kernel::current!().fatal_signal_pending() {
                        return Err(EINTR);
                    }
                    continue;
                }
                ptes[i] = streaming::map_page(
                    self.dma,
                    &folio.page(),
                    0,
                    PAGE_SIZE,
                    DataDirection::Bidirectional,
                )?;
                break;
            }
        }
        batch_guard.take();
        let ns = start.elapsed().as_nanos() as u64;
        // The device lets go of what it still maps before the notifier goes.
        for pte in notifier.data().ptes.lock().iter_mut() {
            notifier.data().clear(pte);
        }
        Ok(ns)
    }

    /// Time of single-page faults of a fresh context.
    fn backend(&self, mm: &MmWithUser, owner: Owner, addr: usize, npages: usize) -> Result<u64> {
        let ctx = self.context(mm, owner)?;
        let start = Instant::<Monotonic>::now();
        for i in 0..npages {
            ctx.atomic_fault(addr + i * PAGE_SIZE, 1)?;
        }
        Ok(start.elapsed().as_nanos() as u64)
    }

    fn context(&self, mm: &MmWithUser, owner: Owner) -> Result<Pin<KBox<SvmContext<PageTable>>>> {
        let mut config = Config::new(owner);
        config.residency = self.residency.clone();
        KBox::pin_init(
            SvmContext::<PageTable>::new(mm, PageTable::new(self.dma), config),
            GFP_KERNEL,
        )
    }
}

fn parse(s: &str) -> Result<usize> {
    match s.strip_prefix("0x") {
        Some(hex) => usize::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .map_err(|_| EINVAL)
}

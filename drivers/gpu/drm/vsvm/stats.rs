// SPDX-License-Identifier: GPL-2.0

//! Per-device counters, shown in debugfs (`vsvm/vsvm<N>/stats`).

use crate::engine::MAX_ENGINES;
use core::fmt;
use kernel::{
    drm::svm::{
        FaultError,
        Faulted,
        RevokeCause, //
    },
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
    },
    time::{
        Instant,
        Monotonic, //
    },
};

/// Revocations, counted by the device's page tables from what `unmap()` is told.
pub(crate) struct Revocations {
    /// Invalidations that removed at least one entry, by cause ([`RevokeCause::ALL`] order).
    by_cause: [Atomic<u64>; RevokeCause::COUNT],
}

impl Revocations {
    pub(crate) const fn new() -> Self {
        Self {
            by_cause: [const { Atomic::new(0) }; RevokeCause::COUNT],
        }
    }

    /// Counts one revocation.
    pub(crate) fn count(&self, cause: RevokeCause) {
        self.by_cause[cause as usize].fetch_add(1, Relaxed);
    }

    /// The revocations by cause.
    pub(crate) fn by_cause(&self) -> [u64; RevokeCause::COUNT] {
        core::array::from_fn(|i| self.by_cause[i].load(Relaxed))
    }
}

/// Number of buckets of the fault latency histogram: bucket `i` counts faults that took less
/// than `2^i` microseconds (the last one everything slower).
const LATENCY_BUCKETS: usize = 16;

/// One fault in this many is timed for the latency histogram: reading the clock twice per
/// fault costs more than the rest of the bookkeeping.
const LATENCY_SAMPLE: u64 = 16;

/// The calls of `atomic_fault()` of a file or a device, and how they ended.
pub(crate) struct Faults {
    calls: Atomic<u64>,
    /// Failed with `EBUSY` at the backend's deadline.
    timeouts: Atomic<u64>,
    /// Failed otherwise.
    errors: Atomic<u64>,
}

impl Faults {
    pub(crate) const fn new() -> Self {
        Self {
            calls: Atomic::new(0),
            timeouts: Atomic::new(0),
            errors: Atomic::new(0),
        }
    }

    /// Counts a call that returned `r`.
    fn count(&self, r: &Result) {
        self.calls.fetch_add(1, Relaxed);
        match r {
            Ok(()) => {}
            Err(e) if *e == EBUSY => {
                self.timeouts.fetch_add(1, Relaxed);
            }
            Err(_) => {
                self.errors.fetch_add(1, Relaxed);
            }
        }
    }

    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Relaxed)
    }

    pub(crate) fn timeouts(&self) -> u64 {
        self.timeouts.load(Relaxed)
    }
}

/// What the backend's faults did ([`Faulted`]), added up.
pub(crate) struct FaultCounts {
    /// Pages granted, those granted ahead included.
    pub(crate) granted: Atomic<u64>,
    /// Pages granted ahead (fault-around).
    pub(crate) ahead: Atomic<u64>,
    /// Pages the faults found held already.
    pub(crate) already_mapped: Atomic<u64>,
    /// Grants thrown away because an invalidation collided with them.
    pub(crate) retries: Atomic<u64>,
    /// Times a page's grant waited for another device's turn.
    pub(crate) residency_waits: Atomic<u64>,
    /// Chunk notifiers the backend inserted.
    pub(crate) notifiers_inserted: Atomic<u64>,
}

impl FaultCounts {
    pub(crate) const fn new() -> Self {
        Self {
            granted: Atomic::new(0),
            ahead: Atomic::new(0),
            already_mapped: Atomic::new(0),
            retries: Atomic::new(0),
            residency_waits: Atomic::new(0),
            notifiers_inserted: Atomic::new(0),
        }
    }

    fn add(&self, done: &Faulted) {
        for (counter, n) in [
            (&self.granted, done.granted),
            (&self.ahead, done.ahead),
            (&self.already_mapped, done.already_mapped),
            (&self.retries, done.retries),
            (&self.residency_waits, done.residency_waits),
            (&self.notifiers_inserted, done.notifiers_inserted),
        ] {
            // Most faults leave most counters alone: no write for those.
            if n != 0 {
                counter.fetch_add(n as u64, Relaxed);
            }
        }
    }

    /// The counters with the names debugfs shows them by.
    fn named(&self) -> [(&'static str, u64); 6] {
        [
            ("pages_granted", self.granted.load(Relaxed)),
            ("pages_ahead", self.ahead.load(Relaxed)),
            ("pages_already_mapped", self.already_mapped.load(Relaxed)),
            ("retries", self.retries.load(Relaxed)),
            ("residency_waits", self.residency_waits.load(Relaxed)),
            ("notifiers_inserted", self.notifiers_inserted.load(Relaxed)),
        ]
    }
}

/// The counters of one open file, shared with its jobs.
pub(crate) struct FileStats {
    /// Atomic operations performed.
    pub(crate) ops: Atomic<u64>,
    /// Its calls of `atomic_fault()`.
    pub(crate) faults: Faults,
    /// What the backend's faults of its context did, the fault worker's included.
    pub(crate) done: FaultCounts,
}

impl FileStats {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Ok(Arc::new(
            Self {
                ops: Atomic::new(0),
                faults: Faults::new(),
                done: FaultCounts::new(),
            },
            GFP_KERNEL_ACCOUNT,
        )?)
    }
}

/// Counts what a backend fault did (also one that failed) in `file` and in the device's totals,
/// and returns its result.
pub(crate) fn counted(
    ret: Result<Faulted, FaultError>,
    file: &FileStats,
    device: &DeviceStats,
) -> Result {
    let (done, ret) = Faulted::split(ret);
    file.done.add(&done);
    device.done.add(&done);
    ret
}

/// Runs a fault, `fault`, and counts its call and how it ended in `file` and in the device's
/// totals.
pub(crate) fn count_fault(
    file: &Faults,
    device: &DeviceStats,
    fault: impl FnOnce() -> Result,
) -> Result {
    let sampled = device.faults.calls() % LATENCY_SAMPLE == LATENCY_SAMPLE - 1;
    let start = sampled.then(Instant::<Monotonic>::now);
    let r = fault();
    file.count(&r);
    device.faults.count(&r);
    if let Some(start) = start {
        let us = start.elapsed().as_micros_ceil().max(0) as u64;
        let bucket = ((u64::BITS - us.leading_zeros()) as usize).min(LATENCY_BUCKETS - 1);
        device.latency_us[bucket].fetch_add(1, Relaxed);
    }
    r
}

/// What a device did, over all the files ever opened on it.
pub(crate) struct DeviceStats {
    /// What the backend's faults of all the device's contexts did.
    pub(crate) done: FaultCounts,
    /// The revocations of all the device's page tables.
    pub(crate) revocations: Revocations,
    /// Entries the revocations removed.
    pub(crate) pages_revoked: Atomic<u64>,
    /// The faults of all the device's files.
    pub(crate) faults: Faults,
    /// Fault latency histogram of the sampled faults, see [`LATENCY_BUCKETS`].
    latency_us: [Atomic<u64>; LATENCY_BUCKETS],
    /// Atomic operations performed.
    pub(crate) ops: Atomic<u64>,
    /// Records written into the fault buffer.
    pub(crate) fault_records: Atomic<u64>,
    /// Times the fault worker took the records out of the buffer.
    pub(crate) fault_batches: Atomic<u64>,
    /// Ranges the worker granted (one `atomic_fault()` each): records of one context on
    /// consecutive pages merge into one.
    pub(crate) fault_ranges: Atomic<u64>,
    /// Faults that found the buffer full, and waited for room.
    pub(crate) buffer_full: Atomic<u64>,
    /// Operations each engine ran, of the `engines` first.
    pub(crate) engine_ops: [Atomic<u64>; MAX_ENGINES as usize],
    engines: usize,
    /// Accesses of the engines whose translation was in the TLB.
    pub(crate) tlb_hits: Atomic<u64>,
    /// Accesses that walked the page table (a fault is a miss, and so is its replay).
    pub(crate) tlb_misses: Atomic<u64>,
    /// TLB shootdowns that found translations of the range, and the translations dropped.
    pub(crate) shootdowns: Atomic<u64>,
    pub(crate) tlb_entries_shot: Atomic<u64>,
    /// Non-blockable shootdowns refused because an engine was busy or the flush held.
    pub(crate) shootdowns_refused: Atomic<u64>,
    /// Shootdowns that waited for a held flush (`tlb_flush_hold_ms`).
    pub(crate) flushes_held: Atomic<u64>,
    /// Device resets.
    pub(crate) resets: Atomic<u64>,
}

impl DeviceStats {
    /// The counters of a device with `engines` engines.
    pub(crate) fn new(engines: u32) -> Result<Arc<Self>> {
        Ok(Arc::new(
            Self {
                done: FaultCounts::new(),
                revocations: Revocations::new(),
                pages_revoked: Atomic::new(0),
                faults: Faults::new(),
                latency_us: [const { Atomic::new(0) }; LATENCY_BUCKETS],
                ops: Atomic::new(0),
                fault_records: Atomic::new(0),
                fault_batches: Atomic::new(0),
                fault_ranges: Atomic::new(0),
                buffer_full: Atomic::new(0),
                engine_ops: [const { Atomic::new(0) }; MAX_ENGINES as usize],
                engines: engines.min(MAX_ENGINES) as usize,
                tlb_hits: Atomic::new(0),
                tlb_misses: Atomic::new(0),
                shootdowns: Atomic::new(0),
                tlb_entries_shot: Atomic::new(0),
                shootdowns_refused: Atomic::new(0),
                flushes_held: Atomic::new(0),
                resets: Atomic::new(0),
            },
            GFP_KERNEL,
        )?)
    }
}

/// The contents of the debugfs file.
pub(crate) struct StatsFile(pub(crate) Arc<DeviceStats>);

impl fmt::Debug for StatsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let faults = &self.0.faults;
        writeln!(f, "ops: {}", self.0.ops.load(Relaxed))?;
        writeln!(f, "faults: {}", faults.calls())?;
        writeln!(f, "timeouts: {}", faults.timeouts())?;
        writeln!(f, "errors: {}", faults.errors.load(Relaxed))?;
        for (name, n) in self.0.done.named() {
            writeln!(f, "{name}: {n}")?;
        }
        writeln!(f, "fault_records: {}", self.0.fault_records.load(Relaxed))?;
        writeln!(f, "fault_batches: {}", self.0.fault_batches.load(Relaxed))?;
        writeln!(f, "fault_ranges: {}", self.0.fault_ranges.load(Relaxed))?;
        writeln!(f, "fault_buffer_full: {}", self.0.buffer_full.load(Relaxed))?;
        write!(f, "engine_ops:")?;
        for n in &self.0.engine_ops[..self.0.engines] {
            write!(f, " {}", n.load(Relaxed))?;
        }
        writeln!(f)?;
        writeln!(f, "tlb_hits: {}", self.0.tlb_hits.load(Relaxed))?;
        writeln!(f, "tlb_misses: {}", self.0.tlb_misses.load(Relaxed))?;
        writeln!(f, "tlb_shootdowns: {}", self.0.shootdowns.load(Relaxed))?;
        writeln!(
            f,
            "tlb_entries_shot: {}",
            self.0.tlb_entries_shot.load(Relaxed)
        )?;
        writeln!(
            f,
            "tlb_shootdowns_refused: {}",
            self.0.shootdowns_refused.load(Relaxed)
        )?;
        writeln!(f, "tlb_flushes_held: {}", self.0.flushes_held.load(Relaxed))?;
        writeln!(f, "resets: {}", self.0.resets.load(Relaxed))?;
        let revocations = &self.0.revocations;
        writeln!(f, "pages_revoked: {}", self.0.pages_revoked.load(Relaxed))?;
        write!(f, "revocations:")?;
        for (cause, n) in RevokeCause::ALL.iter().zip(revocations.by_cause()) {
            write!(f, " {}={n}", cause.name())?;
        }
        writeln!(f)?;
        // One fault in `LATENCY_SAMPLE` is timed.
        write!(f, "fault_latency_us_log2_sampled:")?;
        for n in &self.0.latency_us {
            write!(f, " {}", n.load(Relaxed))?;
        }
        writeln!(f)
    }
}

// SPDX-License-Identifier: GPL-2.0

//! Per-device counters, shown in debugfs (`vsvm/vsvm<N>/stats`).

use core::fmt;
use kernel::{
    drm::svm::{
        self,
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
};

/// Revocations, counted by the device's page tables from what `unmap()` is told.
pub(crate) struct Revocations {
    /// Invalidations that removed at least one entry, by cause ([`RevokeCause::ALL`] order).
    by_cause: [Atomic<u64>; RevokeCause::COUNT],
    /// Entries they removed.
    pages: Atomic<u64>,
}

impl Revocations {
    pub(crate) const fn new() -> Self {
        Self {
            by_cause: [const { Atomic::new(0) }; RevokeCause::COUNT],
            pages: Atomic::new(0),
        }
    }

    /// Counts one revocation of `pages` entries.
    pub(crate) fn count(&self, cause: RevokeCause, pages: u64) {
        self.by_cause[cause as usize].fetch_add(1, Relaxed);
        self.pages.fetch_add(pages, Relaxed);
    }

    /// The revocations by cause.
    pub(crate) fn by_cause(&self) -> [u64; RevokeCause::COUNT] {
        core::array::from_fn(|i| self.by_cause[i].load(Relaxed))
    }
}

/// What a device did, over all the files ever opened on it.
pub(crate) struct DeviceStats {
    /// The backend's counters of all the device's contexts.
    pub(crate) svm: Arc<svm::Stats>,
    /// The revocations of all the device's page tables.
    pub(crate) revocations: Revocations,
    /// Atomic operations performed.
    pub(crate) ops: Atomic<u64>,
}

impl DeviceStats {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Ok(Arc::new(
            Self {
                svm: svm::Stats::new_shared()?,
                revocations: Revocations::new(),
                ops: Atomic::new(0),
            },
            GFP_KERNEL,
        )?)
    }
}

/// The contents of the debugfs file.
pub(crate) struct StatsFile(pub(crate) Arc<DeviceStats>);

impl fmt::Debug for StatsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.svm.snapshot();
        writeln!(f, "ops: {}", self.0.ops.load(Relaxed))?;
        for (name, n) in s.counters() {
            writeln!(f, "{name}: {n}")?;
        }
        let revocations = &self.0.revocations;
        writeln!(f, "pages_revoked: {}", revocations.pages.load(Relaxed))?;
        write!(f, "revocations:")?;
        for (cause, n) in RevokeCause::ALL.iter().zip(revocations.by_cause()) {
            write!(f, " {}={n}", cause.name())?;
        }
        writeln!(f)?;
        // One fault in `LATENCY_SAMPLE` is timed.
        write!(f, "fault_latency_us_log2_sampled:")?;
        for n in s.latency_us {
            write!(f, " {n}")?;
        }
        writeln!(f)
    }
}

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

/// What a device did, over all the files ever opened on it.
pub(crate) struct DeviceStats {
    /// The backend's counters of all the device's contexts.
    pub(crate) svm: Arc<svm::Stats>,
    /// Atomic operations performed.
    pub(crate) ops: Atomic<u64>,
}

impl DeviceStats {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Ok(Arc::new(
            Self {
                svm: svm::Stats::new_shared()?,
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
        write!(f, "revocations:")?;
        for cause in RevokeCause::ALL {
            write!(f, " {}={}", cause.name(), s.revoked_by(cause))?;
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

// SPDX-License-Identifier: GPL-2.0

//! Statistics of an SVM context (what its faults cost), and the causes of revocations that
//! [`DriverSvm::unmap`](super::DriverSvm::unmap) is told.

use super::granting;
use crate::{
    bindings,
    mm::mmu_notifier::{
        Event,
        Owner, //
    },
    prelude::*,
    sync::atomic::{
        Atomic,
        Relaxed, //
    },
    sync::Arc,
};

/// Why a device lost atomic access to pages.
///
/// The values are those of `enum drm_svm_revoke_cause` in the tracepoint header, which prints
/// them by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum RevokeCause {
    /// A CPU access took the page back, or another zap the core mm reports the same way
    /// (`MMU_NOTIFY_CLEAR` with no owner, from an ordinary task): `MADV_DONTNEED`,
    /// `MADV_FREE`, the split of a THP.
    CpuFault = bindings::drm_svm_revoke_cause_DRM_SVM_REVOKE_CPU,
    /// Another device made the page exclusive to itself. The core mm reports that as a CPU
    /// fault; it is told apart by the task, which is inside another context's grant.
    OtherDevice = bindings::drm_svm_revoke_cause_DRM_SVM_REVOKE_DEVICE,
    /// `munmap()` or `mremap()`.
    Unmap = bindings::drm_svm_revoke_cause_DRM_SVM_REVOKE_UNMAP,
    /// `mprotect()`.
    Mprotect = bindings::drm_svm_revoke_cause_DRM_SVM_REVOKE_MPROTECT,
    /// Write-protection of single pages: fork's copy-on-write, KSM.
    Fork = bindings::drm_svm_revoke_cause_DRM_SVM_REVOKE_FORK,
    /// Migration (`MMU_NOTIFY_MIGRATE`), reclaim (an unmapping by a task that is reclaiming
    /// memory: kswapd, direct or memcg reclaim) or khugepaged collapsing a range into a huge
    /// page; the core mm reports the last two like a CPU fault.
    Migration = bindings::drm_svm_revoke_cause_DRM_SVM_REVOKE_MIGRATION,
    /// The process exited.
    Exit = bindings::drm_svm_revoke_cause_DRM_SVM_REVOKE_EXIT,
    /// Anything else (soft-dirty tracking, ...).
    Other = bindings::drm_svm_revoke_cause_DRM_SVM_REVOKE_OTHER,
}

// `ALL` lists every cause, each at its index.
const _: () = {
    let mut i = 0;
    while i < RevokeCause::COUNT {
        assert!(RevokeCause::ALL[i] as usize == i);
        i += 1;
    }
};

impl RevokeCause {
    /// Number of causes.
    pub const COUNT: usize = bindings::drm_svm_revoke_cause_DRM_SVM_REVOKE_COUNT as usize;

    /// All causes, in the order of their indices.
    pub const ALL: [RevokeCause; Self::COUNT] = [
        Self::CpuFault,
        Self::OtherDevice,
        Self::Unmap,
        Self::Mprotect,
        Self::Fork,
        Self::Migration,
        Self::Exit,
        Self::Other,
    ];

    /// The cause of an invalidation, seen by the device `owner`.
    pub fn from_event(event: Event, from: Option<Owner>) -> Self {
        match event {
            Event::Clear => Self::CpuFault,
            Event::Exclusive if from.is_some() => Self::OtherDevice,
            Event::Exclusive => Self::Other,
            Event::Unmap => Self::Unmap,
            Event::ProtectionVma => Self::Mprotect,
            Event::ProtectionPage => Self::Fork,
            Event::Migrate => Self::Migration,
            Event::Release => Self::Exit,
            Event::SoftDirty => Self::Other,
        }
    }

    /// The cause of an invalidation the current task is making: [`RevokeCause::from_event`],
    /// told apart further by the task where the event cannot tell (the core mm reports a CPU
    /// fault, another device's takeover and reclaim alike, as `MMU_NOTIFY_CLEAR` with no owner).
    ///
    /// `own_task` says that the task is the one granting for the context that asks (splitting
    /// a PMD, reclaiming memory during its own grant), which is then not another device.
    pub fn of_invalidation(event: Event, from: Option<Owner>, own_task: bool) -> Self {
        match Self::from_event(event, from) {
            Self::CpuFault if !own_task && granting::current_is_granting() => Self::OtherDevice,
            Self::CpuFault
                if granting::current_is_reclaiming() || granting::current_is_khugepaged() =>
            {
                Self::Migration
            }
            cause => cause,
        }
    }

    /// A short name, for debugfs and tables (the tracepoint's).
    pub fn name(self) -> &'static str {
        match self {
            Self::CpuFault => "cpu",
            Self::OtherDevice => "device",
            Self::Unmap => "unmap",
            Self::Mprotect => "mprotect",
            Self::Fork => "fork",
            Self::Migration => "migration",
            Self::Exit => "exit",
            Self::Other => "other",
        }
    }
}

/// The phases of a fault, for profiling ([`Snapshot::phase_ns`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// From the call to the page: arguments, the mm reference, fault lock, chunk notifier
    /// lookup.
    Entry,
    /// The already-granted check and any allocation for the device PTE.
    Prepare,
    /// Waiting for another device's turn on the chunk ([`Residency`]), then
    /// `mmu_interval_read_begin()`.
    ///
    /// [`Residency`]: super::Residency
    ReadBegin,
    /// Taking the mmap read lock.
    MmapLock,
    /// `make_device_exclusive()`.
    MakeExclusive,
    /// Page-table lock, sequence check, `DriverSvm::map_atomic`, recording the grant, dirtying.
    Commit,
    /// Unlocking and releasing the folio, residency and counters.
    Release,
}

impl Phase {
    /// Number of phases.
    pub const COUNT: usize = 7;

    /// All phases in order.
    pub const ALL: [Phase; Self::COUNT] = [
        Self::Entry,
        Self::Prepare,
        Self::ReadBegin,
        Self::MmapLock,
        Self::MakeExclusive,
        Self::Commit,
        Self::Release,
    ];

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Entry => "entry",
            Self::Prepare => "prepare",
            Self::ReadBegin => "read_begin",
            Self::MmapLock => "mmap_lock",
            Self::MakeExclusive => "make_device_exclusive",
            Self::Commit => "commit",
            Self::Release => "release",
        }
    }
}

/// Defines the scalar counters once: the field of [`Stats`] and of [`Snapshot`], its
/// documentation, and the method that counts one event, if it has one.
macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident $(=> $count:ident)?;)*) => {
        /// Counters of an SVM context, updated without locks.
        pub struct Stats {
            $($name: Atomic<u64>,)*
            phase_ns: [Atomic<u64>; Phase::COUNT],
            /// Counters that also see every update of these, such as a device's totals over
            /// all its contexts.
            parent: Option<Arc<Stats>>,
        }

        /// A copy of the [`Stats`] of a context at one moment.
        #[derive(Clone, Copy, Debug, Default)]
        pub struct Snapshot {
            $($(#[doc = $doc])* pub $name: u64,)*
            /// Time spent in each [`Phase`] of granting, if the context profiles.
            pub phase_ns: [u64; Phase::COUNT],
        }

        impl Snapshot {
            /// The scalar counters with their names, in the order they are defined.
            pub fn counters(&self) -> [(&'static str, u64); [$(stringify!($name)),*].len()] {
                [$((stringify!($name), self.$name)),*]
            }
        }

        impl Stats {
            pub(crate) const fn new(parent: Option<Arc<Stats>>) -> Self {
                Self {
                    $($name: Atomic::new(0),)*
                    phase_ns: [const { Atomic::new(0) }; Phase::COUNT],
                    parent,
                }
            }

            $($(
                /// Counts one event; returns this context's count before it.
                pub(crate) fn $count(&self) -> u64 {
                    self.bump(|s| &s.$name, 1)
                }
            )?)*

            /// Reads all counters (each exactly, the set not atomically).
            pub fn snapshot(&self) -> Snapshot {
                Snapshot {
                    $($name: self.$name.load(Relaxed),)*
                    phase_ns: core::array::from_fn(|i| self.phase_ns[i].load(Relaxed)),
                }
            }
        }
    };
}

counters! {
    /// Pages made exclusive and mapped (counted at the end of each fault).
    pages_granted;
    /// Of those, pages granted ahead of the ones a fault was asked for ([`Config::fault_around`]).
    ///
    /// [`Config::fault_around`]: super::Config::fault_around
    pages_ahead;
    /// Pages a fault found already mapped with atomic permission.
    pages_already_mapped => already_mapped;
    /// Times a grant was thrown away because an invalidation collided with it.
    retries => retry;
    /// `MMU_NOTIFY_EXCLUSIVE` events of this device's own grants, ignored before any lock.
    own_events_ignored => own_event;
    /// Other invalidations made by a grant in progress itself (faulting the page back from
    /// another device, splitting a PMD), which therefore did not force a retry.
    own_invalidations => own_invalidation;
    /// Non-blockable invalidations refused because the page-table lock was held.
    nonblocking_busy => busy;
    /// Faults that waited for another device's minimum residency to end.
    residency_waits => residency_wait;
    /// Chunk notifiers inserted (each one a `mmu_interval_notifier_insert()`).
    notifiers_inserted => notifier_inserted;
}

impl Stats {
    /// Counters shared by several contexts, to pass as [`Config::device_stats`]: for example a
    /// device's totals, for debugfs.
    ///
    /// [`Config::device_stats`]: super::Config::device_stats
    pub fn new_shared() -> Result<Arc<Self>> {
        Ok(Arc::new(Self::new(None), GFP_KERNEL)?)
    }

    /// Adds `n` to a counter, here and in the parent; returns this context's old value.
    fn bump(&self, field: impl Fn(&Stats) -> &Atomic<u64>, n: u64) -> u64 {
        let old = field(self).fetch_add(n, Relaxed);
        if let Some(parent) = &self.parent {
            field(parent).fetch_add(n, Relaxed);
        }
        old
    }

    /// Counts `pages` grants, once per fault rather than once per page.
    pub(crate) fn granted(&self, pages: u64) {
        if pages != 0 {
            self.bump(|s| &s.pages_granted, pages);
        }
    }

    /// Counts `pages` granted ahead, once per fault.
    pub(crate) fn granted_ahead(&self, pages: u64) {
        if pages != 0 {
            self.bump(|s| &s.pages_ahead, pages);
        }
    }

    pub(crate) fn phase(&self, phase: Phase, ns: u64) {
        self.bump(|s| &s.phase_ns[phase as usize], ns);
    }
}

// SPDX-License-Identifier: GPL-2.0

//! What a fault did, for the driver's counters, and the causes of revocations that
//! [`DriverSvm::unmap`](super::DriverSvm::unmap) is told.

use super::granting;
use crate::{
    bindings,
    mm::mmu_notifier::{
        Event,
        Owner, //
    },
    prelude::*, //
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
    pub(super) fn from_event(event: Event, from: Option<Owner>) -> Self {
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
    pub(super) fn of_invalidation(event: Event, from: Option<Owner>, own_task: bool) -> Self {
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

/// The phases of a fault, which the `svm_phase` tracepoint marks the end of, for profiling.
///
/// The values are those of `enum drm_svm_phase` in the tracepoint header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(super) enum Phase {
    /// From the fault's start (its `svm_fault_begin`, after the argument checks) or the end of
    /// the previous page: the mm reference, fault lock, chunk notifier lookup.
    Entry = bindings::drm_svm_phase_DRM_SVM_PHASE_ENTRY,
    /// The already-granted check and any allocation for the device PTE.
    Prepare = bindings::drm_svm_phase_DRM_SVM_PHASE_PREPARE,
    /// Waiting for another device's turn on the chunk ([`Residency`]), then
    /// `mmu_interval_read_begin()`.
    ///
    /// [`Residency`]: super::Residency
    ReadBegin = bindings::drm_svm_phase_DRM_SVM_PHASE_READ_BEGIN,
    /// Taking the mmap read lock.
    MmapLock = bindings::drm_svm_phase_DRM_SVM_PHASE_MMAP_LOCK,
    /// `make_device_exclusive()`.
    MakeExclusive = bindings::drm_svm_phase_DRM_SVM_PHASE_MAKE_EXCLUSIVE,
    /// Page-table lock, sequence check, `DriverSvm::map_atomic`, recording the grant, dirtying.
    Commit = bindings::drm_svm_phase_DRM_SVM_PHASE_COMMIT,
    /// Unlocking and releasing the folio, residency.
    Release = bindings::drm_svm_phase_DRM_SVM_PHASE_RELEASE,
}

/// What one fault did: returned by [`SvmContext::atomic_fault`] and [`SvmContext::prefetch`],
/// and with the error of one that failed ([`FaultError`]), for the driver to count. The
/// backend keeps no counters of its own; its tracepoints (`drm_svm:*`) show each event.
///
/// [`SvmContext::atomic_fault`]: super::SvmContext::atomic_fault
/// [`SvmContext::prefetch`]: super::SvmContext::prefetch
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faulted {
    /// Pages made exclusive and mapped, those granted ahead included.
    pub granted: usize,
    /// Of those, pages granted ahead of the ones asked for ([`Config::fault_around`]).
    ///
    /// [`Config::fault_around`]: super::Config::fault_around
    pub ahead: usize,
    /// Pages the fault found held already (with fault-around, pages ahead too).
    pub already_mapped: usize,
    /// Grants thrown away because an invalidation collided with them.
    pub retries: usize,
    /// Times a page's grant waited for another device's turn ([`Config::residency`]): once
    /// per attempt that waited.
    ///
    /// [`Config::residency`]: super::Config::residency
    pub residency_waits: usize,
    /// Chunk notifiers inserted (each one a `mmu_interval_notifier_insert()`).
    pub notifiers_inserted: usize,
}

/// A fault that failed: its error, and what it did before (pages granted before an error stay
/// granted). Converts into its [`Error`], so that `?` returns that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultError {
    /// Why the fault stopped.
    pub error: Error,
    /// What it did before it stopped.
    pub done: Faulted,
}

impl From<FaultError> for Error {
    fn from(e: FaultError) -> Error {
        e.error
    }
}

impl Faulted {
    /// Splits what a fault returned into what it did (also if it failed) and its result, for a
    /// driver that counts what every fault did.
    pub fn split(ret: Result<Faulted, FaultError>) -> (Faulted, Result) {
        match ret {
            Ok(done) => (done, Ok(())),
            Err(e) => (e.done, Err(e.error)),
        }
    }
}

impl core::ops::AddAssign for Faulted {
    fn add_assign(&mut self, other: Self) {
        // Every field, so that one added later cannot be left out.
        let Self {
            granted,
            ahead,
            already_mapped,
            retries,
            residency_waits,
            notifiers_inserted,
        } = other;
        self.granted += granted;
        self.ahead += ahead;
        self.already_mapped += already_mapped;
        self.retries += retries;
        self.residency_waits += residency_waits;
        self.notifiers_inserted += notifiers_inserted;
    }
}

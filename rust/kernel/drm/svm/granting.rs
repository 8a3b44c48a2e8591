// SPDX-License-Identifier: GPL-2.0

//! Which tasks are inside `make_device_exclusive()` for a context, of any device.
//!
//! The core mm reports another device taking a page the same way as a CPU fault: the grant
//! faults the page back to the CPU first (`MMU_NOTIFY_CLEAR`, no owner). What tells them apart
//! is the task the invalidation runs in, which is inside another context's grant.

use crate::{
    bindings,
    sync::atomic::{
        Atomic,
        Relaxed, //
    },
    task::Task,
};

/// Tasks granting at once that can be told apart; more go unrecorded, and their takeovers
/// count as CPU faults.
const SLOTS: usize = 32;

static TASKS: [Atomic<usize>; SLOTS] = [const { Atomic::new(0) }; SLOTS];

/// The current task's registration as granting, removed on drop.
///
/// Relaxed accesses suffice: the only question asked of the table is whether it holds the
/// current task, whose own stores are ordered before its own loads; other tasks' values only
/// have to be some value they stored, never the current task's pointer.
pub(super) struct Granting {
    me: usize,
    slot: Option<&'static Atomic<usize>>,
}

impl Granting {
    /// Registers the current task until the returned value is dropped.
    pub(super) fn enter() -> Self {
        let me = Task::current_raw() as usize;
        Self {
            me,
            slot: TASKS
                .iter()
                .find(|slot| slot.cmpxchg(0, me, Relaxed).is_ok()),
        }
    }

    /// The registered task, as a key.
    pub(super) fn task(&self) -> usize {
        self.me
    }
}

impl Drop for Granting {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            slot.store(0, Relaxed);
        }
    }
}

/// Whether the current task is inside `make_device_exclusive()` for some context.
pub(super) fn current_is_granting() -> bool {
    let me = Task::current_raw() as usize;
    TASKS.iter().any(|slot| slot.load(Relaxed) == me)
}

/// Whether the current task is reclaiming memory (kswapd, direct or memcg reclaim), whose
/// unmapping the core mm reports like a CPU fault.
pub(super) fn current_is_reclaiming() -> bool {
    // SAFETY: `current` is always valid. `PF_MEMALLOC` and `PF_KSWAPD` are only changed by
    // the task itself, so this read does not race with their changes.
    let flags = unsafe { (*bindings::get_current()).flags };
    flags & (bindings::PF_MEMALLOC | bindings::PF_KSWAPD) != 0
}

/// Whether the current task is khugepaged, which collapses the small mappings of a range into
/// a huge page: the core mm reports that like a CPU fault.
#[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
pub(super) fn current_is_khugepaged() -> bool {
    // SAFETY: Reads only the current task, which is always valid.
    unsafe { bindings::current_is_khugepaged() }
}

/// Without transparent huge pages there is no khugepaged.
#[cfg(not(CONFIG_TRANSPARENT_HUGEPAGE))]
pub(super) fn current_is_khugepaged() -> bool {
    false
}

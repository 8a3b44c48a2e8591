// SPDX-License-Identifier: GPL-2.0

//! Contention control: a minimum residency for granted pages.
//!
//! When several devices hammer the same page, each grant revokes the previous one, and a device
//! may lose the page before it performed a single operation on it. A [`Residency`] shared by
//! the contexts of several devices gives each grant a minimum time slice (Xe uses 5 ms for its
//! atomics): a device that faults on a page another device was granted less than that long ago
//! backs off for the rest of the slice first. The CPU is never delayed.

use crate::{
    new_spinlock,
    prelude::*,
    sync::{
        Arc,
        SpinLock, //
    },
    time::{
        Delta,
        Instant,
        Monotonic, //
    },
};

const SLOTS: usize = 64;

#[derive(Clone, Copy)]
struct Slot {
    mm: usize,
    index: usize,
    owner: usize,
    at: Instant<Monotonic>,
}

/// The residency policy shared by the contexts of cooperating devices.
///
/// It remembers the last grant of up to 64 pages (a small hash table; a collision only
/// forgets a residency early).
#[pin_data]
pub struct Residency {
    min: Delta,
    #[pin]
    slots: SpinLock<[Option<Slot>; SLOTS]>,
}

impl Residency {
    /// A policy that gives every grant at least `min` before another device may take it.
    pub fn new(min: Delta) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                min,
                slots <- new_spinlock!([None; SLOTS]),
            }),
            GFP_KERNEL,
        )
    }

    /// The minimum residency.
    pub fn min(&self) -> Delta {
        self.min
    }

    fn slot(mm: usize, index: usize) -> usize {
        (mm >> 6 ^ index.wrapping_mul(0x9e37_79b9)) % SLOTS
    }

    /// How much of another owner's residency on page `index` of `mm` is left, if any.
    pub(super) fn remaining(&self, mm: usize, index: usize, owner: usize) -> Option<Delta> {
        let slot = self.slots.lock()[Self::slot(mm, index)]?;
        if slot.mm != mm || slot.index != index || slot.owner == owner {
            return None;
        }
        let left = self.min - slot.at.elapsed();
        (left > Delta::ZERO).then_some(left)
    }

    /// Records a grant of page `index` of `mm` to `owner` now.
    pub(super) fn record(&self, mm: usize, index: usize, owner: usize) {
        self.slots.lock()[Self::slot(mm, index)] = Some(Slot {
            mm,
            index,
            owner,
            at: Instant::now(),
        });
    }

    /// Forgets `owner`'s grant of page `index` of `mm`, which it lost. Does not sleep.
    pub(super) fn forget(&self, mm: usize, index: usize, owner: usize) {
        let mut slots = self.slots.lock();
        let slot = &mut slots[Self::slot(mm, index)];
        if slot.is_some_and(|s| s.mm == mm && s.index == index && s.owner == owner) {
            *slot = None;
        }
    }
}

// SPDX-License-Identifier: GPL-2.0

//! Contention control: a minimum residency for grants, per 2 MiB chunk.
//!
//! When several devices hammer the same memory, each grant revokes the previous one, and a
//! device may lose a page before it performed a single operation on it. A [`Residency`] shared
//! by the contexts of several devices gives each device's grants in a chunk a minimum time
//! slice (Xe uses 5 ms for its atomics): a device that faults in a chunk where another device
//! was granted a page less than that long ago backs off for the rest of the slice first, and
//! devices waiting for one chunk take it in the order they came. A slice covers the chunk, not
//! a page, so that devices sweeping a shared buffer take turns on it instead of taking it from
//! each other page by page. A turn that cost the device long to start (granting itself most of
//! a chunk, taking each page from another device) lasts longer: at least [`STRETCH`] times
//! the time the device spent granting in it, up to [`MAX_STRETCH`] slices, so that changing
//! hands costs at most about a quarter of the chunk's time. The CPU is never delayed.

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

/// Devices that can wait for one chunk in turn; more wait without a place in the queue.
const QUEUE: usize = 8;

/// How many times as long as the device spent granting in it a turn lasts at least.
const STRETCH: i64 = 3;

/// Most slices one turn lasts after its last grant, however long the device spent granting.
const MAX_STRETCH: i64 = 8;

/// Most slices one turn lasts from its first grant. Devices that wait for a chunk each wait at
/// most this long for every device before them: with [`QUEUE`] of them and a 5 ms slice, less
/// than the one-second deadline of a fault.
const MAX_TURN: i64 = 2 * MAX_STRETCH;

/// The shortest a waiter behind the first one sleeps before it asks again.
const MIN_POLL: Delta = Delta::from_micros(50);

/// A device waiting for a chunk, and when it was told to ask again.
#[derive(Clone, Copy)]
struct Waiter {
    owner: usize,
    due: Instant<Monotonic>,
}

/// A device's turn on a chunk.
#[derive(Clone, Copy)]
struct Turn {
    owner: usize,
    /// Its first grant in the turn.
    since: Instant<Monotonic>,
    /// Its last grant.
    last: Instant<Monotonic>,
}

impl Turn {
    /// How long after its last grant the turn lasts: `min`, or [`STRETCH`] times the time the
    /// device spent granting in it, up to [`MAX_STRETCH`] times `min`.
    fn slice(&self, min: Delta) -> Delta {
        let granting = (self.last - self.since).as_nanos().saturating_mul(STRETCH);
        let nanos = granting.clamp(min.as_nanos(), min.as_nanos().saturating_mul(MAX_STRETCH));
        Delta::from_nanos(nanos)
    }

    /// How long the turn still lasts at `now`, if it does: its slice after the last grant, and
    /// never more than [`MAX_TURN`] slices after the first (a device whose pages the CPU keeps
    /// taking back grants all the time).
    fn left(&self, min: Delta, now: Instant<Monotonic>) -> Option<Delta> {
        let after_last = self.slice(min) - (now - self.last);
        let after_first = min * MAX_TURN - (now - self.since);
        let left = after_last.min(after_first);
        (left > Delta::ZERO).then_some(left)
    }
}

#[derive(Clone, Copy)]
struct Slot {
    mm: usize,
    index: usize,
    /// The device granted a page of the chunk last, and its turn; `None` once it lost its
    /// last page of the chunk.
    holder: Option<Turn>,
    /// Devices waiting for the chunk, in the order they came.
    queue: [Option<Waiter>; QUEUE],
}

impl Slot {
    fn new(mm: usize, index: usize) -> Self {
        Self {
            mm,
            index,
            holder: None,
            queue: [None; QUEUE],
        }
    }

    /// Keeps the waiters `keep` accepts, in their order.
    fn retain(&mut self, keep: impl Fn(&Waiter) -> bool) {
        let mut kept = [None; QUEUE];
        for (slot, w) in kept
            .iter_mut()
            .zip(self.queue.iter().flatten().filter(|w| keep(w)))
        {
            *slot = Some(*w);
        }
        self.queue = kept;
    }

    /// Puts `owner` at the end of the queue, or refreshes its place (no room: it waits
    /// without one, behind the queue), and tells it to ask again after `wait`.
    fn wait(&mut self, owner: usize, now: Instant<Monotonic>, wait: Delta) -> Delta {
        let due = now + wait;
        for w in self.queue.iter_mut() {
            match w {
                Some(w) if w.owner == owner => {
                    w.due = due;
                    break;
                }
                Some(_) => {}
                None => {
                    *w = Some(Waiter { owner, due });
                    break;
                }
            }
        }
        wait
    }
}

/// The residency policy shared by the contexts of cooperating devices.
///
/// It remembers the last grant in up to 64 chunks and the devices waiting for each, in a small
/// hash table (a collision forgets the other chunk's residency and queue early). When a slice
/// ends, the device that has waited longest takes the chunk (when it next asks: waiters poll),
/// so that devices contending for one chunk take turns instead of racing for it.
#[pin_data]
pub struct Residency {
    min: Delta,
    /// `SLOTS` entries, on the heap: with the queues they are too big for a stack.
    #[pin]
    slots: SpinLock<KVec<Option<Slot>>>,
}

impl Residency {
    /// A policy that gives every turn at least `min` before another device may take the chunk;
    /// `EINVAL` if `min` is not positive.
    pub fn new(min: Delta) -> Result<Arc<Self>> {
        if min <= Delta::ZERO {
            return Err(EINVAL);
        }
        let mut slots = KVec::with_capacity(SLOTS, GFP_KERNEL)?;
        for _ in 0..SLOTS {
            slots.push(None, GFP_KERNEL)?;
        }
        Arc::pin_init(
            pin_init!(Self {
                min,
                slots <- new_spinlock!(slots),
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

    /// How long `owner` should wait before it takes a page of chunk `index` of `mm`, if at
    /// all: the rest of another owner's slice, or, once it has ended, a while longer if devices
    /// that came first are still waiting. A device that waits is queued; it must ask again
    /// after its wait (the chunk may have changed hands meanwhile).
    pub(super) fn remaining(&self, mm: usize, index: usize, owner: usize) -> Option<Delta> {
        let mut slots = self.slots.lock();
        let slot = slots[Self::slot(mm, index)].as_mut()?;
        if slot.mm != mm || slot.index != index {
            return None;
        }
        let now = Instant::now();
        // A waiter asks again when it was told to; one that is three slices late is gone (its
        // fault ended without saying so).
        let late = self.min * 3;
        slot.retain(|w| now - w.due < late);
        let left = slot.holder.and_then(|h| h.left(self.min, now));
        if slot.holder.is_some_and(|h| h.owner == owner) {
            // The holder goes on in its turn, and after it if nobody waits; else it queues.
            if left.is_some() || slot.queue[0].is_none() {
                return None;
            }
        } else if let Some(left) = left {
            return Some(slot.wait(owner, now, left));
        }
        // The slice is over: the first waiter takes the page (anyone, if nobody waits).
        if slot.queue[0].is_none_or(|w| w.owner == owner) {
            return None;
        }
        // Until the first waiter's grant starts a new slice; not so short that this spins.
        let poll = Delta::from_nanos(self.min.as_nanos() / 4);
        Some(slot.wait(owner, now, if poll > MIN_POLL { poll } else { MIN_POLL }))
    }

    /// Whether another owner's slice on chunk `index` of `mm` is running, or devices wait for
    /// the chunk: what a page granted ahead does not take. Queues nobody.
    pub(super) fn held_by_other(&self, mm: usize, index: usize, owner: usize) -> bool {
        let slots = self.slots.lock();
        let Some(slot) = slots[Self::slot(mm, index)].as_ref() else {
            return false;
        };
        if slot.mm != mm || slot.index != index {
            return false;
        }
        let now = Instant::now();
        let running = slot
            .holder
            .is_some_and(|h| h.owner != owner && h.left(self.min, now).is_some());
        running || slot.queue.iter().flatten().any(|w| w.owner != owner)
    }

    /// Takes `owner` out of the queue of chunk `index` of `mm`: its fault ended without a
    /// grant.
    pub(super) fn leave(&self, mm: usize, index: usize, owner: usize) {
        let mut slots = self.slots.lock();
        if let Some(slot) = slots[Self::slot(mm, index)].as_mut() {
            if slot.mm == mm && slot.index == index {
                slot.retain(|w| w.owner != owner);
            }
        }
    }

    /// Records a grant of a page of chunk `index` of `mm` to `owner` now. A page granted
    /// `ahead` does not end another owner's running turn (one may have begun since the fault
    /// looked with [`Self::held_by_other`]).
    pub(super) fn record(&self, mm: usize, index: usize, owner: usize, ahead: bool) {
        let mut slots = self.slots.lock();
        let slot = &mut slots[Self::slot(mm, index)];
        let slot = match slot {
            Some(s) if s.mm == mm && s.index == index => s,
            _ => slot.insert(Slot::new(mm, index)),
        };
        let now = Instant::now();
        if ahead
            && slot
                .holder
                .is_some_and(|h| h.owner != owner && h.left(self.min, now).is_some())
        {
            return;
        }
        slot.holder = Some(match slot.holder {
            // The same turn goes on.
            Some(h) if h.owner == owner && h.left(self.min, now).is_some() => {
                Turn { last: now, ..h }
            }
            _ => Turn {
                owner,
                since: now,
                last: now,
            },
        });
        slot.retain(|w| w.owner != owner);
    }

    /// Forgets `owner`'s grants in chunk `index` of `mm`: it lost the last one. Does not sleep.
    pub(super) fn forget(&self, mm: usize, index: usize, owner: usize) {
        let mut slots = self.slots.lock();
        if let Some(slot) = slots[Self::slot(mm, index)].as_mut() {
            if slot.mm == mm && slot.index == index && slot.holder.is_some_and(|h| h.owner == owner)
            {
                slot.holder = None;
            }
        }
    }
}

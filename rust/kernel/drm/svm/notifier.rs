// SPDX-License-Identifier: GPL-2.0

//! The invalidation side: what happens when the CPU or another device takes pages back.

use super::{
    context::{
        Shared,
        NO_PAGE, //
    },
    stats::RevokeCause,
    trace,
    Driver, //
};
use crate::{
    mm::mmu_notifier::{
        Event,
        InvalidateSeq,
        MmuIntervalNotifier,
        MmuIntervalNotifierOps,
        Range, //
    },
    page::{
        PAGE_SHIFT,
        PAGE_SIZE, //
    },
    sync::{
        atomic::{
            Acquire,
            Atomic,
            Relaxed, //
        },
        Arc,
    },
    task::Task,
};

/// Size of the chunks that long-lived notifiers cover.
pub(super) const CHUNK_SIZE: usize = 2 << 20;

/// Notifier data for one chunk of a context (or, in per-fault mode, one fault).
pub(super) struct Chunk<T: Driver> {
    pub(super) shared: Arc<Shared<T>>,
    /// Faults between looking this chunk up and committing their grant; a chunk in use is not
    /// trimmed, or a grant could end up with no notifier watching it.
    pub(super) users: Atomic<usize>,
}

impl<T: Driver> Chunk<T> {
    pub(super) fn new(shared: Arc<Shared<T>>) -> Self {
        Self {
            shared,
            users: Atomic::new(0),
        }
    }
}

impl<T: Driver> MmuIntervalNotifierOps for Chunk<T> {
    fn invalidate(
        notifier: &MmuIntervalNotifier<Self>,
        range: &Range,
        seq: InvalidateSeq<'_>,
    ) -> bool {
        let shared = &notifier.data().shared;
        let event = range.event();
        // Our own grant in progress: the page is about to become ours, not revoked. Ignoring it
        // here, before any lock, is what keeps the fault from retrying forever; it does not
        // depend on the order in which notifiers are called.
        if event == Event::Exclusive && range.owner() == Some(shared.owner) {
            shared.stats.own_event();
            return true;
        }

        let guard = if range.is_blockable() {
            shared.state.lock()
        } else {
            match shared.state.try_lock() {
                Some(guard) => guard,
                None => {
                    shared.stats.busy();
                    return false;
                }
            }
        };
        let mut state = guard;
        // Only the part of the range this notifier covers concerns it.
        let start = range.start().max(notifier.start());
        let end = range.end().min(notifier.last().saturating_add(1));
        let removed =
            state.remove_grants(start >> PAGE_SHIFT, end.div_ceil(1 << PAGE_SHIFT), |i| {
                shared.forget(i)
            });
        if removed > 0 {
            T::unmap(&mut state.pt, start, end);
            let cause = RevokeCause::from_event(event, range.owner());
            shared.stats.revoked(cause, removed);
            trace::revoke(shared.owner, start, end, cause, removed);
        }
        // An invalidation made by our own grant in progress (the page faulted back from
        // another device or its PMD split, inside `make_device_exclusive()`) is part of that
        // grant: the C function revalidates the PTE under the folio lock after it. Publishing
        // it would make the fault retry forever, since every new attempt faults back the
        // exclusive entry the previous one made.
        //
        // A grant in progress is one page: an invalidation that does not touch it cannot make
        // it stale, so it does not make the fault retry either (CPU traffic on the neighbours
        // in the same chunk would otherwise).
        let granting = shared.granting_addr.load(Acquire);
        if shared.granting_task.load(Relaxed) == Task::current_raw() as usize {
            shared.stats.own_invalidation();
        } else if granting == NO_PAGE
            || (range.start() < granting.saturating_add(PAGE_SIZE) && range.end() > granting)
        {
            seq.set();
        }
        true
    }
}

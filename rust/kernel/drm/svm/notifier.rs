// SPDX-License-Identifier: GPL-2.0

//! The invalidation side: what happens when the CPU or another device takes pages back.

use super::{
    context::Shared,
    stats::RevokeCause,
    trace,
    unmap::Unmap,
    DriverSvm, //
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
    sizes::SZ_2M,
    sync::{
        atomic::Relaxed,
        Arc, //
    },
    task::Task,
};

/// Size of the chunks that long-lived notifiers cover.
pub(super) const CHUNK_SIZE: usize = SZ_2M;

/// Notifier data for one chunk of a context (or, in per-fault mode, one fault).
///
/// What else a chunk is lives under the context's locks: its notifier in the chunk tree, its
/// grant slots (with their count and whether the chunk was emptied) under the page-table lock.
pub(super) struct Chunk<T: DriverSvm> {
    pub(super) shared: Arc<Shared<T>>,
}

impl<T: DriverSvm> Chunk<T> {
    pub(super) fn new(shared: Arc<Shared<T>>) -> Self {
        Self { shared }
    }
}

impl<T: DriverSvm> MmuIntervalNotifierOps for Chunk<T> {
    /// Revokes the grants in `range` and publishes the sequence.
    ///
    /// Every invalidation publishes its sequence, as `include/linux/mmu_notifier.h` asks,
    /// except those the context's fault makes itself: they are part of the grant being made,
    /// not a collision with it, and retrying for them would livelock. The fault in progress
    /// retries only if `read_retry()` says so and the invalidation covered the page it
    /// grants (`State::collided`, recorded here under the page-table lock): one of another
    /// page of the chunk cannot make that grant stale, and with a neighbour page contended by
    /// several devices, retrying for it cost up to 0.6 retries per fault.
    ///
    /// - The exclusive conversion for our owner is the grant itself: it only replaces the
    ///   present PTE that `make_device_exclusive()` has just checked under the folio lock, as
    ///   nouveau filters it.
    /// - An invalidation the granting task makes itself inside `make_device_exclusive()`
    ///   (splitting a PMD, faulting the page back from another device, direct reclaim) has
    ///   ended before the C function revalidates the PTE under the folio lock and converts it.
    ///   Every attempt would fault back the entry the previous one made.
    fn invalidate(
        notifier: &MmuIntervalNotifier<Self>,
        range: &Range,
        seq: InvalidateSeq<'_>,
    ) -> bool {
        let shared = &notifier.data().shared;
        let event = range.event();
        // Our own grant in progress: the page is about to become ours, not revoked. Handled
        // here, before any lock, so that it does not depend on the order in which notifiers
        // are called or on the page-table lock.
        if event == Event::Exclusive && range.owner() == Some(shared.owner) {
            // SAFETY: The context's faults, serialised by its fault lock, are the only readers
            // of its notifiers. An exclusive conversion for our owner (ours, or another
            // context's of the same device) only replaces a present PTE it has just checked
            // under the folio lock (`make_device_exclusive()`): it removes no entry a grant of
            // ours stands on, and a fault of ours on that page must first fault the entry back,
            // through an invalidation that is published (not our own owner's conversion).
            unsafe { seq.reader_own() };
            return true;
        }

        let mut state = if range.is_blockable() {
            shared.state.lock()
        } else {
            match shared.state.try_lock() {
                Some(guard) => guard,
                None => {
                    // Nothing changes, and the core gives the operation up.
                    trace::busy(shared.owner, range.start(), range.end());
                    return seq.refuse();
                }
            }
        };
        let own_task = shared.granting_task.load(Relaxed) == Task::current_raw() as usize;
        // Only the part of the range this notifier covers concerns it.
        let start = range.start().max(notifier.start());
        let end = range.end().min(notifier.last().saturating_add(1));
        let (first, last) = (start >> PAGE_SHIFT, end.div_ceil(1 << PAGE_SHIFT));
        if state.grants.any(first, last) {
            let state = &mut *state;
            let cause = RevokeCause::of_invalidation(event, range.owner(), own_task);
            let unmap = Unmap::new(start, end, range.is_blockable(), Some(cause), &state.grants);
            // The device stops using the pages before the grants go.
            if state.pt.unmap(&unmap).is_err() {
                // Refused (only a non-blockable range can be: `Unmap::refuse()`): nothing
                // changed, and the core gives the operation up.
                trace::busy(shared.owner, start, end);
                return seq.refuse();
            }
            // A chunk this empties is flagged, for a later fault to remove its notifier (this
            // may not sleep).
            let removed = state.grants.remove(first, last, |i| shared.forget(i));
            shared.note_emptied(&state.grants);
            trace::revoke(shared.owner, start, end, cause, removed);
        }
        if own_task {
            // SAFETY: One reader, the fault (above); this invalidation is its own, made inside
            // `make_device_exclusive()` between its `read_begin()` and `read_retry()`.
            unsafe { seq.reader_own() };
        } else {
            if state.granting.is_some_and(|page| {
                range.start() < page.saturating_add(PAGE_SIZE) && range.end() > page
            }) {
                state.collided = true;
            }
            seq.set();
        }
        drop(state);
        true
    }
}

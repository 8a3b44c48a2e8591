// SPDX-License-Identifier: GPL-2.0

//! Fault-around: pages granted ahead of a sequential stream of faults.
//!
//! A device that sweeps a buffer faults on each stretch of it in turn. Like readahead for
//! page-cache reads (`mm/readahead.c`), a fault grants a window of pages after the ones it was
//! asked for, within the chunk of its last page, when the faults show a stream:
//!
//! - a fault of several contiguous pages (a wave of accesses that touched them all) starts
//!   one, with a window as large as the fault;
//! - a fault that starts where the previous one's grants ended (the device used them and ran
//!   past them) makes the window four times as large, as readahead grows its window;
//! - a fault on a page the previous one granted ahead (it was taken back before the device got
//!   there, by the CPU or another device) ends the stream: granting ahead only feeds the
//!   thrashing, as readahead shrinks its window when its pages are evicted before use. Until
//!   a fault again starts where the previous one ended, no fault grants ahead;
//! - a fault of one page anywhere else grants nothing ahead, so random faults cost what they
//!   did without fault-around.

use super::notifier::CHUNK_SIZE;
use crate::page::PAGE_SIZE;

/// The stream of one context's faults, under its fault lock.
pub(super) struct Stream {
    /// The page after the last fault's grants, asked for and ahead.
    next: usize,
    /// The first page the last fault granted ahead (`next` when it granted none).
    ahead: usize,
    /// Pages the last fault was allowed to grant ahead.
    window: usize,
    /// Pages granted ahead were taken back before use, and no stream started since.
    thrashed: bool,
}

impl Stream {
    /// No fault yet.
    pub(super) const fn new() -> Self {
        Self {
            next: usize::MAX,
            ahead: usize::MAX,
            window: 0,
            thrashed: false,
        }
    }

    /// How many pages a fault of the pages `[addr, end)` grants after `end`: at most `max`,
    /// and none beyond the chunk of its last page.
    pub(super) fn window(&mut self, addr: usize, end: usize, max: usize) -> usize {
        let asked = (end - addr) / PAGE_SIZE;
        self.window = if addr == self.next {
            self.thrashed = false;
            self.window.max(asked).saturating_mul(4)
        } else if (self.ahead..self.next).contains(&addr) {
            self.thrashed = true;
            0
        } else if asked > 1 && !self.thrashed {
            asked
        } else {
            0
        }
        .min(max);
        // `end` is page aligned and the range does not wrap: the chunk of its last page ends at
        // or after it, possibly at the top of the address space.
        let chunk_end = ((end - 1) | (CHUNK_SIZE - 1)).wrapping_add(1);
        self.window.min(chunk_end.wrapping_sub(end) / PAGE_SIZE)
    }

    /// Records that a fault granted up to `end` as asked, and then `ahead` pages more.
    pub(super) fn ended(&mut self, end: usize, ahead: usize) {
        self.ahead = end;
        self.next = end.wrapping_add(ahead * PAGE_SIZE);
    }

    /// Forgets the stream: the next fault grants nothing ahead (a fault that failed).
    pub(super) fn reset(&mut self) {
        *self = Self::new();
    }
}

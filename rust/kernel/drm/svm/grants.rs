// SPDX-License-Identifier: GPL-2.0

//! The grant record: which pages a device holds, one slot per page of each chunk.
//!
//! A chunk's slots are allocated with its notifier, so that granting a page and revoking it
//! allocate and free nothing. The record also knows which chunks lost their last grant, for
//! trimming their notifiers.

use super::notifier::CHUNK_SIZE;
use crate::{
    bindings,
    page::{
        BorrowedPage,
        Page,
        PAGE_SHIFT, //
    },
    prelude::*,
    rbtree::{
        RBTree,
        RBTreeNode, //
    },
};
use core::ptr::NonNull;

/// Pages in a chunk.
const CHUNK_PAGES: usize = CHUNK_SIZE >> PAGE_SHIFT;

// A slot is one pointer: a chunk's slots take 4 KiB with 4 KiB pages.
const _: () = assert!(core::mem::size_of::<Option<Grant>>() == core::mem::size_of::<usize>());

/// One page the device holds with atomic permission.
///
/// # Invariants
///
/// While the grant is in [`Grants`], `page` is mapped device-exclusive for its context at the
/// grant's address: every invalidation that could end that removes the grant first, under the
/// page-table lock. The grant holds no reference: the device-exclusive entry does, until that
/// invalidation has removed the grant (see `make_device_exclusive()`).
pub(super) struct Grant {
    page: NonNull<bindings::page>,
}

// SAFETY: A grant is only a page pointer, used under the page-table lock of its context by
// whichever thread holds it.
unsafe impl Send for Grant {}

impl Grant {
    /// Records a grant of `page`.
    ///
    /// # Safety
    ///
    /// `page` is mapped device-exclusive for the context whose [`Grants`] the grant is added to,
    /// as the type invariant says, from now until the grant is removed.
    pub(super) unsafe fn new(page: &Page) -> Self {
        // SAFETY: A `Page` always points to a page.
        let page = unsafe { NonNull::new_unchecked(page.as_ptr()) };
        // INVARIANT: By the caller's guarantee.
        Self { page }
    }

    /// The page.
    pub(super) fn page(&self) -> BorrowedPage<'_> {
        // SAFETY: The device-exclusive entry keeps the page alive while the grant exists, by
        // the type invariant; the grant is only reachable through `Grants`, under the lock
        // that its removal needs.
        unsafe { BorrowedPage::from_raw(self.page) }
    }
}

/// The grants of one chunk.
///
/// # Invariants
///
/// `slots` has [`CHUNK_PAGES`] entries, and `count` of them are `Some`. `emptied` is only set
/// while `count` is 0.
pub(super) struct ChunkGrants {
    count: usize,
    /// Whether the chunk lost its last grant (and got none since): its notifier may go.
    emptied: bool,
    slots: KVec<Option<Grant>>,
}

/// A chunk's grant slots, allocated before they are added to [`Grants`].
pub(super) struct ChunkSlots {
    index: usize,
    node: RBTreeNode<usize, ChunkGrants>,
}

impl ChunkGrants {
    /// Whether any of `slots` holds a grant.
    fn any(&self, (lo, hi): (usize, usize)) -> bool {
        self.count != 0
            && (hi - lo == CHUNK_PAGES || self.slots[lo..hi].iter().any(Option::is_some))
    }
}

impl ChunkSlots {
    /// Allocates the (empty) slots of chunk `index`.
    pub(super) fn new(index: usize) -> Result<Self> {
        let mut slots = KVec::with_capacity(CHUNK_PAGES, GFP_KERNEL_ACCOUNT)?;
        for _ in 0..CHUNK_PAGES {
            // Within the capacity: does not allocate.
            slots.push(None, GFP_KERNEL_ACCOUNT)?;
        }
        // INVARIANT: `CHUNK_PAGES` slots, none of them `Some`.
        let grants = ChunkGrants {
            count: 0,
            emptied: false,
            slots,
        };
        let node = RBTreeNode::new(index, grants, GFP_KERNEL_ACCOUNT)?;
        Ok(Self { index, node })
    }
}

/// Granted pages by page index (`addr >> PAGE_SHIFT`), in the slots of their chunks.
///
/// # Invariants
///
/// `emptied` is the number of chunks in `chunks` whose `emptied` flag is set.
pub(super) struct Grants {
    chunks: RBTree<usize, ChunkGrants>,
    emptied: usize,
}

impl Grants {
    pub(super) fn new() -> Self {
        // INVARIANT: No chunks.
        Self {
            chunks: RBTree::new(),
            emptied: 0,
        }
    }

    /// Number of chunks that lost their last grant and got none since.
    pub(super) fn emptied_chunks(&self) -> usize {
        self.emptied
    }

    /// Adds the slots of a chunk that has none yet. Slots it has are kept, with their grants
    /// (never reached: slots are added with the chunk's notifier and removed with it), and the
    /// new ones are given back, to be freed outside the page-table lock.
    pub(super) fn add_chunk(&mut self, slots: ChunkSlots) -> Option<ChunkSlots> {
        if self.chunks.get(&slots.index).is_some() {
            crate::pr_warn_once!("drm_svm: grant slots added twice for a chunk\n");
            return Some(slots);
        }
        self.chunks.insert(slots.node);
        None
    }

    /// Removes the slots of chunk `index` if none of them holds a grant, and the chunk lost
    /// its last grant (`emptied`) or never had one (not `emptied`); returns whether they were
    /// removed (or were not there). The slots are freed when the returned node is dropped.
    pub(super) fn remove_chunk_if_empty(
        &mut self,
        index: usize,
        emptied: bool,
    ) -> (bool, Option<RBTreeNode<usize, ChunkGrants>>) {
        match self.chunks.get(&index) {
            Some(c) if c.count != 0 || emptied != c.emptied => (false, None),
            Some(c) => {
                if c.emptied {
                    // INVARIANT: the chunk goes, and with it its flag.
                    self.emptied -= 1;
                }
                (true, self.chunks.remove_node(&index))
            }
            None => (true, None),
        }
    }

    /// The grant of page `index`, if the device holds it.
    pub(super) fn get(&self, index: usize) -> Option<&Grant> {
        self.chunks.get(&(index / CHUNK_PAGES))?.slots[index % CHUNK_PAGES].as_ref()
    }

    /// The empty slot of page `index`, if its chunk's slots were added and the device does not
    /// hold the page.
    pub(super) fn vacant(&mut self, index: usize) -> Option<Vacant<'_>> {
        let chunk = self.chunks.get_mut(&(index / CHUNK_PAGES))?;
        let slot = index % CHUNK_PAGES;
        chunk.slots[slot].is_none().then_some(Vacant {
            chunk,
            emptied: &mut self.emptied,
            slot,
        })
    }

    /// The chunks that pages `[first, end)` touch, each with its index and the slots the pages
    /// cover: a lookup when they lie in one chunk, as for every invalidation a chunk notifier
    /// sees; otherwise a walk of all of them.
    fn chunks_in(
        &self,
        first: usize,
        end: usize,
    ) -> impl Iterator<Item = (usize, &ChunkGrants, (usize, usize))> {
        let one = first < end && first / CHUNK_PAGES == (end - 1) / CHUNK_PAGES;
        let single = one
            .then(|| self.chunks.get(&(first / CHUNK_PAGES)))
            .flatten()
            .map(|c| (first / CHUNK_PAGES, c));
        let all = (!one && first < end)
            .then(|| self.chunks.iter().map(|(&index, c)| (index, c)))
            .into_iter()
            .flatten();
        Iterator::chain(single.into_iter(), all)
            .filter_map(move |(index, c)| Some((index, c, slots_in(index, first, end)?)))
    }

    /// The grants of pages `[first, end)`, with their page indices.
    pub(super) fn iter(&self, first: usize, end: usize) -> impl Iterator<Item = (usize, &Grant)> {
        self.chunks_in(first, end).flat_map(|(index, c, (lo, hi))| {
            let base = index * CHUNK_PAGES + lo;
            c.slots[lo..hi]
                .iter()
                .enumerate()
                .filter_map(move |(i, s)| Some((base + i, s.as_ref()?)))
        })
    }

    /// Number of pages the device holds.
    pub(super) fn count(&self) -> usize {
        self.chunks.values().map(|c| c.count).sum()
    }

    /// Whether the device holds any of pages `[first, end)`.
    pub(super) fn any(&self, first: usize, end: usize) -> bool {
        self.chunks_in(first, end).any(|(_, c, r)| c.any(r))
    }

    /// Forgets the grants of pages `[first, end)`; returns how many there were, and flags the
    /// chunks this empties, telling `on_emptied` each one's index. Does not sleep.
    pub(super) fn remove(
        &mut self,
        first: usize,
        end: usize,
        mut on_emptied: impl FnMut(usize),
    ) -> u64 {
        let mut removed = 0;
        let mut cursor = self.chunks.cursor_lower_bound_mut(&(first / CHUNK_PAGES));
        while let Some(mut c) = cursor {
            let (&index, chunk) = c.current_mut();
            // The first chunk is at or after `first`'s.
            let Some((lo, hi)) = slots_in(index, first, end) else {
                break;
            };
            for slot in chunk.slots[lo..hi].iter_mut() {
                if chunk.count == 0 {
                    break;
                }
                if slot.take().is_some() {
                    // INVARIANT: one slot fewer is `Some`.
                    chunk.count -= 1;
                    removed += 1;
                    if chunk.count == 0 {
                        // INVARIANT: the flag is set while `count` is 0, and counted.
                        chunk.emptied = true;
                        self.emptied += 1;
                        on_emptied(index);
                    }
                }
            }
            cursor = c.move_next();
        }
        removed
    }
}

/// An empty grant slot.
pub(super) struct Vacant<'a> {
    chunk: &'a mut ChunkGrants,
    /// [`Grants::emptied`].
    emptied: &'a mut usize,
    slot: usize,
}

impl Vacant<'_> {
    /// Records `grant` in the slot.
    pub(super) fn fill(self, grant: Grant) {
        self.chunk.slots[self.slot] = Some(grant);
        // INVARIANT: the slot was `None`: one more is `Some`, and the chunk is not emptied.
        self.chunk.count += 1;
        if self.chunk.emptied {
            self.chunk.emptied = false;
            *self.emptied -= 1;
        }
    }
}

/// The slots of chunk `index` that pages `[first, end)` cover, or `None` if they cover none.
fn slots_in(index: usize, first: usize, end: usize) -> Option<(usize, usize)> {
    let base = index * CHUNK_PAGES;
    if base >= end || base + CHUNK_PAGES <= first {
        return None;
    }
    let lo = first.saturating_sub(base).min(CHUNK_PAGES);
    let hi = (end - base).min(CHUNK_PAGES);
    Some((lo, hi))
}

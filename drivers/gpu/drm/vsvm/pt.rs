// SPDX-License-Identifier: GPL-2.0

//! The device page table: user address → page frame and permission bits.

use kernel::{
    drm::svm,
    page::PAGE_SHIFT,
    prelude::*,
    rbtree::{
        RBTree,
        RBTreeNodeReservation, //
    },
    uapi,
};

/// One device page table entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pte {
    /// Page frame the entry maps.
    #[expect(dead_code, reason = "what real hardware would be programmed with")]
    pub(crate) pfn: usize,
    /// `DRM_VSVM_PTE_*` bits.
    pub(crate) bits: u32,
}

/// The page table of one vsvm device for one process.
pub(crate) struct PageTable {
    entries: RBTree<usize, Pte>,
}

impl PageTable {
    pub(crate) fn new() -> Self {
        Self {
            entries: RBTree::new(),
        }
    }

    /// The entry mapping `addr`, if any.
    pub(crate) fn lookup(&self, addr: usize) -> Option<Pte> {
        self.entries.get(&(addr >> PAGE_SHIFT)).copied()
    }

    /// Whether `addr` is mapped with atomic permission.
    pub(crate) fn is_atomic(&self, addr: usize) -> bool {
        self.lookup(addr)
            .is_some_and(|pte| pte.bits & uapi::DRM_VSVM_PTE_ATOMIC != 0)
    }
}

impl svm::DriverSvm for PageTable {
    type PteAlloc = RBTreeNodeReservation<usize, Pte>;

    fn alloc_pte(_addr: usize) -> Result<Self::PteAlloc> {
        RBTreeNodeReservation::new(GFP_KERNEL_ACCOUNT)
    }

    fn map_atomic(&mut self, addr: usize, pfn: usize, mem: Self::PteAlloc) -> Result {
        let pte = Pte {
            pfn,
            bits: uapi::DRM_VSVM_PTE_VALID | uapi::DRM_VSVM_PTE_WRITE | uapi::DRM_VSVM_PTE_ATOMIC,
        };
        // Under the page-table lock: the node was allocated before it was taken.
        self.entries.insert(mem.into_node(addr >> PAGE_SHIFT, pte));
        Ok(())
    }

    fn unmap(&mut self, start: usize, end: usize) {
        let (first, last) = (start >> PAGE_SHIFT, end.div_ceil(1 << PAGE_SHIFT));
        let mut cursor = self.entries.cursor_lower_bound_mut(&first);
        while let Some(c) = cursor {
            // After removing the last node, `remove_current()` moves to the previous one,
            // which lies before `first`.
            let key = *c.current().0;
            if key < first || key >= last {
                break;
            }
            cursor = c.remove_current().0;
        }
    }
}

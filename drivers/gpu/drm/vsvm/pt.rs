// SPDX-License-Identifier: GPL-2.0

//! The device page table: user address → page frame and permission bits, in leaves of 512
//! entries (2 MiB with 4 KiB pages), like a GPU's last level.

use crate::stats::{
    DeviceStats,
    Revocations, //
};
use kernel::{
    drm::svm,
    mm::device_exclusive::DeviceExclusiveFolio,
    page::{
        PAGE_MASK,
        PAGE_SHIFT, //
    },
    prelude::*,
    rbtree::{
        Entry,
        RBTree,
        RBTreeNodeReservation, //
    },
    sync::{
        atomic::Relaxed,
        Arc, //
    },
    uapi,
};

/// Entries in a leaf.
const LEAF_ENTRIES: usize = 512;

/// Entries of one leaf: `pfn << PAGE_SHIFT | DRM_VSVM_PTE_*`, 0 for none.
type Entries = [u64; LEAF_ENTRIES];

/// One device page table entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pte {
    /// Page frame the entry maps.
    #[expect(dead_code, reason = "what real hardware would be programmed with")]
    pub(crate) pfn: usize,
    /// `DRM_VSVM_PTE_*` bits.
    pub(crate) bits: u32,
}

/// A leaf of the page table.
///
/// # Invariants
///
/// While the leaf is in the page table, `entries` is `Some` and `count` of its entries are
/// not 0.
pub(crate) struct Leaf {
    count: usize,
    /// Taken out only when the leaf is removed, to be kept for the next one.
    entries: Option<KBox<Entries>>,
}

/// Memory for one leaf, allocated before the page-table lock is taken.
pub(crate) struct LeafAlloc {
    node: RBTreeNodeReservation<usize, Leaf>,
    /// All zero.
    entries: KBox<Entries>,
}

/// The page table of one vsvm device for one process.
pub(crate) struct PageTable {
    /// Leaves by index (`addr >> PAGE_SHIFT` / [`LEAF_ENTRIES`]).
    leaves: RBTree<usize, Leaf>,
    /// The memory of the last leaf emptied, for the next leaf: a page the CPU and the device
    /// take in turn would otherwise free and allocate its leaf each time.
    spare: Option<LeafAlloc>,
    /// Revocations of this table, and of the device's tables together (if it has a device).
    pub(crate) revocations: Revocations,
    device: Option<Arc<DeviceStats>>,
}

impl PageTable {
    /// A page table whose revocations count in `device`'s totals too, if given.
    pub(crate) fn new(device: Option<Arc<DeviceStats>>) -> Self {
        Self {
            leaves: RBTree::new(),
            spare: None,
            revocations: Revocations::new(),
            device,
        }
    }

    /// The entry mapping `addr`, if any.
    pub(crate) fn lookup(&self, addr: usize) -> Option<Pte> {
        let page = addr >> PAGE_SHIFT;
        let leaf = self.leaves.get(&(page / LEAF_ENTRIES))?;
        let e = leaf.entries.as_ref()?[page % LEAF_ENTRIES];
        (e != 0).then_some(Pte {
            pfn: (e >> PAGE_SHIFT) as usize,
            bits: (e & !(PAGE_MASK as u64)) as u32,
        })
    }

    /// Whether `addr` is mapped with atomic permission.
    pub(crate) fn is_atomic(&self, addr: usize) -> bool {
        self.lookup(addr)
            .is_some_and(|pte| pte.bits & uapi::DRM_VSVM_PTE_ATOMIC != 0)
    }
}

impl svm::DriverSvm for PageTable {
    type PteAlloc = LeafAlloc;

    fn alloc_pte() -> Result<LeafAlloc> {
        Ok(LeafAlloc {
            node: RBTreeNodeReservation::new(GFP_KERNEL_ACCOUNT)?,
            entries: KBox::zeroed(GFP_KERNEL_ACCOUNT)?,
        })
    }

    fn map_atomic(&mut self, grant: &DeviceExclusiveFolio, mem: &mut Option<LeafAlloc>) -> Result {
        let (page, pfn) = (grant.addr() >> PAGE_SHIFT, grant.pfn());
        let leaf = match self.leaves.entry(page / LEAF_ENTRIES) {
            Entry::Occupied(leaf) => leaf.into_mut(),
            Entry::Vacant(slot) => {
                // Under the page-table lock: the memory was allocated before it was taken.
                let alloc = self.spare.take().or_else(|| mem.take()).ok_or(ENOMEM)?;
                // INVARIANT: all entries of `alloc` are 0.
                let leaf = Leaf {
                    count: 0,
                    entries: Some(alloc.entries),
                };
                slot.insert(leaf, alloc.node)
            }
        };
        let entries = leaf.entries.as_mut().ok_or(ENOMEM)?;
        let entry = &mut entries[page % LEAF_ENTRIES];
        if *entry == 0 {
            // INVARIANT: one more entry is not 0.
            leaf.count += 1;
        }
        let bits = uapi::DRM_VSVM_PTE_VALID | uapi::DRM_VSVM_PTE_WRITE | uapi::DRM_VSVM_PTE_ATOMIC;
        *entry = ((pfn as u64) << PAGE_SHIFT) | u64::from(bits);
        Ok(())
    }

    fn unmap<'a>(&mut self, range: &svm::Unmap<'a>) -> Result<(), svm::Refused<'a>> {
        // Clearing an entry is all it takes: the device has no TLB to wait for.
        let (first, last) = (
            range.start() >> PAGE_SHIFT,
            range.end().div_ceil(1 << PAGE_SHIFT),
        );
        let mut cleared = 0u64;
        let mut cursor = self.leaves.cursor_lower_bound_mut(&(first / LEAF_ENTRIES));
        while let Some(mut c) = cursor {
            // After removing the last leaf, `remove_current()` moves to the previous one,
            // which lies before `first` or was done.
            let index = *c.current().0;
            let base = index * LEAF_ENTRIES;
            if index < first / LEAF_ENTRIES || base >= last {
                break;
            }
            let leaf = c.current_mut().1;
            let (lo, hi) = (first.saturating_sub(base), (last - base).min(LEAF_ENTRIES));
            let Some(entries) = leaf.entries.as_mut() else {
                break;
            };
            for entry in entries.iter_mut().take(hi).skip(lo) {
                if *entry != 0 {
                    *entry = 0;
                    // INVARIANT: one entry fewer is not 0.
                    leaf.count -= 1;
                    cleared += 1;
                }
            }
            cursor = if leaf.count != 0 {
                c.move_next()
            } else {
                // All its entries are 0: keep it for the next leaf, or free it (this does not
                // sleep).
                let entries = leaf.entries.take();
                let (next, node) = c.remove_current();
                if let (None, Some(entries)) = (&self.spare, entries) {
                    self.spare = Some(LeafAlloc {
                        node: node.into_reservation(),
                        entries,
                    });
                }
                next
            };
        }
        // The backend calls this once for each chunk an invalidation removes grants from, with
        // its cause; the driver's own `revoke_all()` has none.
        if let Some(cause) = range.cause() {
            self.revocations.count(cause);
            if let Some(device) = &self.device {
                device.revocations.count(cause);
                device.pages_revoked.fetch_add(cleared, Relaxed);
            }
        }
        Ok(())
    }
}

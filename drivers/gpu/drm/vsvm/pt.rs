// SPDX-License-Identifier: GPL-2.0

//! The device page table: user address → DMA address and permission bits, in leaves of 512
//! entries (2 MiB with 4 KiB pages), like a GPU's last level. The device reaches memory only
//! through it: [`PageTable::walk`] is its page walk, and its engines' TLBs cache what it finds.

use crate::{
    engine::Engines,
    stats::{
        DeviceStats,
        Revocations, //
    },
};
use core::{
    marker::PhantomData,
    ptr::NonNull, //
};
use kernel::{
    device::{
        Bound,
        Device, //
    },
    dma::{
        streaming,
        DataDirection,
        DmaAddress, //
    },
    drm::svm,
    mm::device_exclusive::DeviceExclusiveFolio,
    page::{
        PAGE_MASK,
        PAGE_SHIFT,
        PAGE_SIZE, //
    },
    prelude::*,
    rbtree::{
        Entry,
        RBTree,
        RBTreeNodeReservation, //
    },
    sync::{
        atomic::{
            Atomic,
            AtomicType,
            Relaxed, //
        },
        Arc, //
    },
    uapi,
};

/// Entries in a leaf.
const LEAF_ENTRIES: usize = 512;

/// How the device's mappings are made: it reads and writes the pages.
const DIR: DataDirection = DataDirection::Bidirectional;

/// Entries of one leaf: a page-aligned DMA address `| DRM_VSVM_PTE_*`, 0 for none.
type Entries = [u64; LEAF_ENTRIES];

/// One device page table entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pte {
    /// The DMA address of the page the entry maps.
    pub(crate) dma: DmaAddress,
    /// `DRM_VSVM_PTE_*` bits.
    pub(crate) bits: u32,
}

impl Pte {
    fn from_entry(e: u64) -> Option<Self> {
        (e != 0).then_some(Pte {
            dma: e & PAGE_MASK as u64,
            bits: (e & !(PAGE_MASK as u64)) as u32,
        })
    }
}

/// Ends the DMA mapping at `dma` for `dev`; the bits of an entry below the page are ignored.
///
/// # Safety
///
/// The page-aligned part of `dma` is a live mapping of one page for `dev`, made with [`DIR`]
/// and ended nowhere else, and the page is alive: the device-exclusive entry holds a granted
/// page until the invalidation that unmaps it is done.
unsafe fn end_mapping(dev: &Device<Bound>, dma: u64) {
    // SAFETY: By the safety requirements.
    unsafe { streaming::unmap_page(dev, dma & PAGE_MASK as u64, PAGE_SIZE, DIR) };
}

/// A page as the device reaches it through a translation: by the DMA address of the entry
/// (in a bounce buffer, if the DMA API bounced the mapping).
///
/// # Invariants
///
/// `addr` is the kernel address of a whole page mapped for the device's DMA, and the mapping
/// lasts for `'a`.
pub(crate) struct DevicePage<'a> {
    addr: NonNull<u8>,
    _mapping: PhantomData<&'a ()>,
}

impl DevicePage<'_> {
    /// The page at kernel address `addr`.
    ///
    /// # Safety
    ///
    /// `addr` is the kernel address of a whole page mapped for the device's DMA by an entry of
    /// a page table, and the entry is not cleared while the result lives.
    pub(crate) unsafe fn new(addr: NonNull<u8>) -> Self {
        // INVARIANT: by the safety requirements.
        Self {
            addr,
            _mapping: PhantomData,
        }
    }

    /// The naturally aligned `T` at byte `offset` of the page; `EINVAL` if it is misaligned or
    /// does not fit in the page.
    pub(crate) fn atomic<T: AtomicType>(&self, offset: usize) -> Result<&Atomic<T>> {
        let size = core::mem::size_of::<T>();
        if offset % size != 0 || offset.checked_add(size).is_none_or(|e| e > PAGE_SIZE) {
            return Err(EINVAL);
        }
        // SAFETY: In bounds and aligned by the check above, and mapped for the device while
        // `self` lives (type invariant). The CPU does not access the page meanwhile (it is
        // device-exclusive), and the device's accesses are all atomic.
        Ok(unsafe { Atomic::from_ptr(self.addr.as_ptr().add(offset).cast::<T>()) })
    }
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
///
/// # Invariants
///
/// Every entry that is not 0 holds a live DMA mapping of one page for `dma`, made by
/// [`svm::DriverSvm::map_atomic`] and unmapped when the entry is cleared, after the
/// translations of `engines` of its page were shot down.
pub(crate) struct PageTable {
    /// Leaves by index (`addr >> PAGE_SHIFT` / [`LEAF_ENTRIES`]).
    leaves: RBTree<usize, Leaf>,
    /// The memory of the last leaf emptied, for the next leaf: a page the CPU and the device
    /// take in turn would otherwise free and allocate its leaf each time.
    spare: Option<LeafAlloc>,
    /// Revocations of this table, and of the device's tables together (if it has a device).
    pub(crate) revocations: Revocations,
    device: Option<Arc<DeviceStats>>,
    /// The device the pages are mapped for.
    dma: &'static Device<Bound>,
    /// The engines that cache the table's entries, under `asid`.
    engines: Option<Arc<Engines>>,
    asid: u64,
}

impl PageTable {
    /// An empty page table of a device that maps pages for `dma` and has no engines.
    pub(crate) fn new(dma: &'static Device<Bound>) -> Self {
        // INVARIANT: no entries.
        Self {
            leaves: RBTree::new(),
            spare: None,
            revocations: Revocations::new(),
            device: None,
            dma,
            engines: None,
            asid: 0,
        }
    }

    /// An empty page table of a device with `engines`, which cache its entries under an
    /// address space number of their own; its revocations count in `device`'s totals too.
    pub(crate) fn with_engines(engines: Arc<Engines>, device: Arc<DeviceStats>) -> Self {
        let mut pt = Self::new(engines.dma);
        pt.asid = engines.new_asid();
        pt.engines = Some(engines);
        pt.device = Some(device);
        pt
    }

    /// The address space number the engines know the table by.
    pub(crate) fn asid(&self) -> u64 {
        self.asid
    }

    /// The entry mapping `addr`, if any.
    pub(crate) fn lookup(&self, addr: usize) -> Option<Pte> {
        let page = addr >> PAGE_SHIFT;
        let leaf = self.leaves.get(&(page / LEAF_ENTRIES))?;
        Pte::from_entry(leaf.entries.as_ref()?[page % LEAF_ENTRIES])
    }

    /// The device's page walk for an atomic access to `addr`: the kernel address of the page
    /// the DMA address of the entry reaches, if the entry has atomic permission; `None` is a
    /// device fault. The mapping lasts until the entry is cleared (type invariant).
    pub(crate) fn walk(&self, addr: usize) -> Option<NonNull<u8>> {
        let pte = self.lookup(addr)?;
        if pte.bits & uapi::DRM_VSVM_PTE_ATOMIC == 0 {
            return None;
        }
        // The DMA API maps the device directly: `Instance::new()` checks, so this succeeds.
        streaming::direct_to_virt(self.dma, pte.dma).ok()
    }

    /// Shoots down the engines' translations of pages `first..last` (page numbers): `false` if
    /// that would have to wait for an engine and `blockable` is not set.
    fn shoot_down(&self, first: usize, last: usize, blockable: bool) -> bool {
        match &self.engines {
            None => true,
            Some(engines) if blockable => {
                engines.shoot_down(self.asid, first, last);
                true
            }
            Some(engines) => engines.try_shoot_down(self.asid, first, last),
        }
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
        let page = grant.addr() >> PAGE_SHIFT;
        // Mapped first: if the leaf cannot be had, the mapping goes again.
        let dma = streaming::map_page(self.dma, &grant.page(), 0, PAGE_SIZE, DIR)?;
        if dma & !(PAGE_MASK as u64) != 0 {
            // A page table entry holds a page-aligned address: the DMA API gave none.
            // SAFETY: Just mapped, for this page, which the grant holds.
            unsafe { end_mapping(self.dma, dma) };
            return Err(EIO);
        }
        let leaf = match self.leaves.entry(page / LEAF_ENTRIES) {
            Entry::Occupied(leaf) => leaf.into_mut(),
            Entry::Vacant(slot) => {
                // Under the page-table lock: the memory was allocated before it was taken.
                let Some(alloc) = self.spare.take().or_else(|| mem.take()) else {
                    // SAFETY: Just mapped, for this page, which the grant holds.
                    unsafe { end_mapping(self.dma, dma) };
                    return Err(ENOMEM);
                };
                // INVARIANT: all entries of `alloc` are 0.
                let leaf = Leaf {
                    count: 0,
                    entries: Some(alloc.entries),
                };
                slot.insert(leaf, alloc.node)
            }
        };
        // A leaf in the table has its entries (type invariant of `Leaf`).
        let entries = leaf.entries.as_mut().ok_or(EINVAL)?;
        let entry = &mut entries[page % LEAF_ENTRIES];
        let old = *entry;
        if old == 0 {
            // INVARIANT: one more entry is not 0.
            leaf.count += 1;
        }
        let bits = uapi::DRM_VSVM_PTE_VALID | uapi::DRM_VSVM_PTE_WRITE | uapi::DRM_VSVM_PTE_ATOMIC;
        // INVARIANT: the entry holds the new mapping; the old one, if any, ends.
        *entry = dma | u64::from(bits);
        if old != 0 {
            // The engines may hold the old translation: a fault is blockable.
            self.shoot_down(page, page + 1, true);
            // SAFETY: A non-zero entry holds a live mapping for `self.dma` (type invariant),
            // whose page the device-exclusive entry still holds; the entry no longer has it.
            unsafe { end_mapping(self.dma, old) };
        }
        Ok(())
    }

    fn unmap<'a>(&mut self, range: &svm::Unmap<'a>) -> Result<(), svm::Refused<'a>> {
        let (first, last) = (
            range.start() >> PAGE_SHIFT,
            range.end().div_ceil(1 << PAGE_SHIFT),
        );
        // No engine may use a translation of the range once its mapping ends: the shootdown
        // waits for an engine in the middle of an operation there. A non-blockable
        // invalidation (the OOM reaper) cannot wait, and refuses; it changed nothing but the
        // TLBs, which refill from the entries.
        if !self.shoot_down(first, last, range.is_blockable()) {
            if let Some(refused) = range.refuse() {
                return Err(refused);
            }
        }
        let (mut cleared, dma) = (0u64, self.dma);
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
                    // SAFETY: A non-zero entry holds a live mapping for `dma` (type invariant),
                    // cleared below; the page is alive until this invalidation is done.
                    unsafe { end_mapping(dma, *entry) };
                    // INVARIANT: one entry fewer is not 0, and its mapping ended.
                    *entry = 0;
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

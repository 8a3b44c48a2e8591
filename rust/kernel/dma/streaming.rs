// SPDX-License-Identifier: GPL-2.0

//! Streaming DMA mappings of single pages.
//!
//! A driver that maps pages it does not own for its device's DMA (process memory mirrored in
//! a device page table, say) keeps the DMA addresses in its own, hardware-shaped structures
//! and unmaps them when the device must let go of the pages: a DMA address here is a plain
//! value, and the caller keeps the rule that each mapping is unmapped exactly once, while the
//! device is bound.
//!
//! C header: [`include/linux/dma-mapping.h`](srctree/include/linux/dma-mapping.h)

use crate::{
    bindings,
    device::{
        Bound,
        Device, //
    },
    dma::{
        DataDirection,
        DmaAddress,
        DmaMask, //
    },
    error::{
        to_result,
        Result, //
    },
    page::Page,
    prelude::*,
};
use core::ptr::NonNull;

/// Gives `dev` a DMA mask although its bus has none, like C `dma_coerce_mask_and_coherent()`:
/// for a device on a bus that does no DMA of its own (a faux device), whose driver reaches
/// memory by DMA all the same, as `vgem` does.
///
/// # Safety
///
/// Must not be called concurrently with any DMA allocation or mapping on `dev` (as for
/// [`super::Device::dma_set_mask`]).
pub unsafe fn coerce_mask_and_coherent(dev: &Device<Bound>, mask: DmaMask) -> Result {
    // SAFETY: `dev.as_raw()` is a valid device by the type invariant of `Device`; no DMA
    // allocation or mapping runs concurrently by the safety requirements.
    to_result(unsafe { bindings::dma_coerce_mask_and_coherent(dev.as_raw(), mask.value()) })
}

/// Maps `size` bytes at byte `offset` of `page` for `dev`'s DMA in direction `dir`, with
/// `dma_map_page_attrs()`; returns the DMA address of byte `offset`.
///
/// The mapping lasts until [`unmap_page`] is called with the same device, address, size and
/// direction; until then the CPU must not access the bytes (the DMA API may have bounced them:
/// `swiotlb`). The caller keeps the page alive until then.
pub fn map_page(
    dev: &Device<Bound>,
    page: &Page,
    offset: usize,
    size: usize,
    dir: DataDirection,
) -> Result<DmaAddress> {
    if size == 0
        || offset
            .checked_add(size)
            .is_none_or(|end| end > crate::page::PAGE_SIZE)
    {
        return Err(EINVAL);
    }
    // SAFETY: `dev` is a valid, bound device and `page.as_ptr()` a valid page; the range lies
    // in the page (checked above).
    let addr = unsafe {
        bindings::dma_map_page_attrs(dev.as_raw(), page.as_ptr(), offset, size, dir.into(), 0)
    };
    // SAFETY: `addr` was just returned by `dma_map_page_attrs()` for `dev`.
    if unsafe { bindings::dma_mapping_error(dev.as_raw(), addr) } != 0 {
        return Err(ENOMEM);
    }
    Ok(addr)
}

/// Unmaps a mapping made by [`map_page`], with `dma_unmap_page_attrs()`: the device must not
/// reach the memory any more, and a bounced mapping is copied back to the page.
///
/// # Safety
///
/// `addr` was returned by [`map_page`] for `dev` with `size` and `dir`, and is not unmapped
/// yet; the page it maps is still alive (a bounced mapping is copied back into it).
pub unsafe fn unmap_page(dev: &Device<Bound>, addr: DmaAddress, size: usize, dir: DataDirection) {
    // SAFETY: `addr` is a live mapping of `size` bytes for `dev` in `dir` by the safety
    // requirements.
    unsafe { bindings::dma_unmap_page_attrs(dev.as_raw(), addr, size, dir.into(), 0) }
}

/// Whether the DMA API maps `dev` directly: no IOMMU and no bus-specific DMA operations, so
/// that [`direct_to_virt`] works.
pub fn is_direct(dev: &Device<Bound>) -> bool {
    // SAFETY: `dev.as_raw()` is a valid device; both only read it.
    unsafe {
        bindings::get_dma_ops(dev.as_raw()).is_null() && !bindings::use_dma_iommu(dev.as_raw())
    }
}

/// The kernel address of DMA address `addr` of `dev`, for a *device model*: a virtual device
/// whose "hardware" is kernel code, and which reaches memory by the DMA addresses its driver
/// programmed, as a real device would (so a bounced mapping is reached in its bounce buffer).
///
/// Only a device the DMA API maps directly (no IOMMU, no bus-specific DMA operations) has
/// such an address: `EOPNOTSUPP` otherwise. Reading or writing through the pointer is valid
/// only while the mapping that gave `addr` lasts, and only within it.
pub fn direct_to_virt(dev: &Device<Bound>, addr: DmaAddress) -> Result<NonNull<u8>> {
    if !is_direct(dev) {
        return Err(EOPNOTSUPP);
    }
    // SAFETY: `dev.as_raw()` is a valid device; the translation only computes.
    let phys = unsafe { bindings::dma_to_phys(dev.as_raw(), addr) };
    // SAFETY: `phys_to_virt()` only computes; a directly mapped DMA address is RAM (a page or
    // a bounce buffer), in the kernel's linear map.
    NonNull::new(unsafe { bindings::phys_to_virt(phys) }.cast::<u8>()).ok_or(EINVAL)
}

// SPDX-License-Identifier: GPL-2.0

//! What [`DriverSvm::unmap`] is told: the range, why, the pages that go, and whether it may
//! wait.
//!
//! [`DriverSvm::unmap`]: super::DriverSvm::unmap

use super::{
    grants::Grants,
    stats::RevokeCause, //
};
use crate::page::{
    BorrowedPage,
    PAGE_SHIFT, //
};
use core::marker::PhantomData;

/// A range of user addresses whose device mappings must go.
///
/// Given to [`DriverSvm::unmap`] under the page-table lock, before the core mm changes the
/// CPU page tables of the range (or when the driver revokes everything).
///
/// [`DriverSvm::unmap`]: super::DriverSvm::unmap
pub struct Unmap<'a> {
    start: usize,
    end: usize,
    blockable: bool,
    cause: Option<RevokeCause>,
    grants: &'a Grants,
}

/// A non-blockable invalidation refused by the driver, from [`Unmap::refuse`].
///
/// Nothing is revoked: the callback tells the core mm that it would have to sleep, and the
/// core gives up the operation (the OOM reaper skips the range; the process's exit unmaps it
/// later, blockable). It lives only as long as the [`Unmap`] it came from, so a refusal of one
/// non-blockable range cannot be returned for another range, or for a blockable one.
pub struct Refused<'a>(PhantomData<fn(&'a ()) -> &'a ()>);

impl<'a> Unmap<'a> {
    pub(super) fn new(
        start: usize,
        end: usize,
        blockable: bool,
        cause: Option<RevokeCause>,
        grants: &'a Grants,
    ) -> Self {
        Self {
            start,
            end,
            blockable,
            cause,
            grants,
        }
    }

    /// The first address of the range.
    #[inline]
    pub fn start(&self) -> usize {
        self.start
    }

    /// The end of the range (exclusive); `usize::MAX` when everything goes.
    #[inline]
    pub fn end(&self) -> usize {
        self.end
    }

    /// Why the device loses the pages: the cause of the invalidation, or `None` when the driver
    /// revoked everything itself ([`SvmContext::revoke_all`], [`SvmContext::block`]).
    ///
    /// `unmap()` is called once for each chunk an invalidation removes grants from, so a
    /// driver counts revocations by cause here (when it does not refuse), as vsvm does.
    ///
    /// [`SvmContext::revoke_all`]: super::SvmContext::revoke_all
    /// [`SvmContext::block`]: super::SvmContext::block
    #[inline]
    pub fn cause(&self) -> Option<RevokeCause> {
        self.cause
    }

    /// Whether the driver may sleep, for example to wait for the device's TLB flush.
    #[inline]
    pub fn is_blockable(&self) -> bool {
        self.blockable
    }

    /// Refuses a non-blockable invalidation that would have to sleep; `None` for a blockable
    /// one, which cannot be refused.
    #[inline]
    pub fn refuse(&self) -> Option<Refused<'a>> {
        (!self.blockable).then_some(Refused(PhantomData))
    }

    /// The pages the device was granted in the range, with their user addresses, in address
    /// order: what the driver mapped with [`DriverSvm::map_atomic`] (to unmap their DMA
    /// addresses, say).
    ///
    /// [`DriverSvm::map_atomic`]: super::DriverSvm::map_atomic
    pub fn pages(&self) -> impl Iterator<Item = (usize, BorrowedPage<'_>)> {
        let (first, end) = (self.start >> PAGE_SHIFT, self.end.div_ceil(1 << PAGE_SHIFT));
        self.grants
            .iter(first, end)
            .map(|(index, grant)| (index << PAGE_SHIFT, grant.page()))
    }
}

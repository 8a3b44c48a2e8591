// SPDX-License-Identifier: GPL-2.0

//! An open render node: one process's SVM context on one device, and the ioctls.

use kernel::{
    drm::{
        self,
        svm::{
            Config,
            NotifierMode,
            RevokeCause,
            SvmContext, //
        },
        Registered,
    },
    mm::mmu_notifier::Owner,
    page::{
        PAGE_MASK,
        PAGE_SIZE, //
    },
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc, //
    },
    time::{
        Delta,
        Instant,
        Monotonic, //
    },
    uapi,
};

use crate::{
    driver::{
        VsvmDevice,
        VsvmDriver, //
    },
    ops::{
        self,
        Op,
        Width, //
    },
    pt::{
        DevicePage,
        PageTable, //
    },
    stats::{
        count_fault,
        Faults, //
    },
};

/// How long one operation keeps faulting before it gives up with `EBUSY`.
const OP_DEADLINE: Delta = Delta::from_millis(2000);

// The UAPI's revocation indices are the backend's causes (which are the tracepoint's).
const _: () = {
    assert!(RevokeCause::CpuFault as u32 == uapi::DRM_VSVM_REVOKE_CPU);
    assert!(RevokeCause::OtherDevice as u32 == uapi::DRM_VSVM_REVOKE_DEVICE);
    assert!(RevokeCause::Unmap as u32 == uapi::DRM_VSVM_REVOKE_UNMAP);
    assert!(RevokeCause::Mprotect as u32 == uapi::DRM_VSVM_REVOKE_MPROTECT);
    assert!(RevokeCause::Fork as u32 == uapi::DRM_VSVM_REVOKE_FORK);
    assert!(RevokeCause::Migration as u32 == uapi::DRM_VSVM_REVOKE_MIGRATION);
    assert!(RevokeCause::Exit as u32 == uapi::DRM_VSVM_REVOKE_EXIT);
    assert!(RevokeCause::Other as u32 == uapi::DRM_VSVM_REVOKE_OTHER);
    assert!(RevokeCause::COUNT == uapi::DRM_VSVM_REVOKE_COUNT as usize);
    assert!(RevokeCause::COUNT <= uapi::DRM_VSVM_REVOKE_SLOTS as usize);
};

/// The per-open state: the context binds the device to the opener's address space.
///
/// The fault records of the file's operations share the context: it goes when the file is
/// closed and the worker is done with them.
#[pin_data]
pub(crate) struct File {
    ctx: Arc<SvmContext<PageTable>>,
    device: u32,
    ops: Atomic<u64>,
    faults: Faults,
}

impl drm::file::DriverFile for File {
    type Driver = VsvmDriver;

    fn open(dev: &VsvmDevice) -> Result<Pin<KBox<Self>>> {
        // The opener's address space; a kernel thread has none to share.
        let task = kernel::current!();
        let mm = task.mm().ok_or(EINVAL)?;
        let data = &**dev;
        let mut config = Config::new(Owner::from_ptr(data));
        config.residency = data.residency.clone();
        config.device_stats = Some(data.stats.svm.clone());
        if crate::module_parameters::per_fault_notifiers.value() {
            config.notifiers = NotifierMode::PerFault;
        }
        let pt = PageTable::new(data.dma, Some(data.stats.clone()));
        let ctx = Arc::pin_init(SvmContext::new(mm, pt, config), GFP_KERNEL_ACCOUNT)?;
        KBox::pin_init(
            try_pin_init!(File {
                ctx,
                device: data.index,
                ops: Atomic::new(0),
                faults: Faults::new(),
            }? Error),
            GFP_KERNEL_ACCOUNT,
        )
    }
}

impl File {
    /// The context, if the caller is the process that opened the file: a file descriptor
    /// passed to another process, or kept across `exec()`, gives no access to either mm.
    fn ctx(file: &drm::File<File>) -> Result<&Arc<SvmContext<PageTable>>> {
        let this = file.inner().get_ref();
        let task = kernel::current!();
        match task.mm() {
            Some(mm) if this.ctx.is_mm(mm) => Ok(&this.ctx),
            _ => Err(EACCES),
        }
    }

    /// Runs `f` on the page of `addr` as the device reaches it, through its page table,
    /// faulting it in as the device would, until it succeeds or [`OP_DEADLINE`] passes.
    /// Returns `f`'s result and the faults taken.
    fn with_page<R>(
        dev: &VsvmDevice<Registered>,
        file: &drm::File<File>,
        ctx: &Arc<SvmContext<PageTable>>,
        addr: usize,
        mut f: impl FnMut(&DevicePage<'_>) -> Result<R>,
    ) -> Result<(R, u64)> {
        let page = addr & PAGE_MASK;
        let start = Instant::<Monotonic>::now();
        let mut faults = 0;
        loop {
            // The device walks its own page table, under its lock: only an atomic entry lets
            // the operation through, and an invalidation waits until the operation is done.
            let done = ctx.with_page_table(|pt| pt.translate(page).map(|p| f(&p)));
            if let Some(r) = done {
                return Ok((r?, faults));
            }
            if faults > 0 && start.elapsed() > OP_DEADLINE {
                return Err(EBUSY);
            }
            faults += 1;
            // A miss: a record in the device's fault buffer; the operation stalls until the
            // fault worker has serviced it, then replays.
            Self::fault(dev, file, || dev.faults.fault(ctx, page))?;
        }
    }

    /// Runs a fault, `fault`, counted in the file's and the device's statistics: they
    /// are the driver's, as the backend keeps only what happens inside a fault.
    fn fault(
        dev: &VsvmDevice<Registered>,
        file: &drm::File<File>,
        fault: impl FnOnce() -> Result,
    ) -> Result {
        count_fault(&file.inner().faults, &dev.stats, fault)
    }

    /// Checks that a 32-bit operation's 64-bit operand fields have their upper half clear.
    fn check_operand(width: Width, value: u64) -> Result {
        if width == Width::W32 && value >> 32 != 0 {
            return Err(EINVAL);
        }
        Ok(())
    }

    fn check_addr(addr: u64, width: Width) -> Result<usize> {
        let addr = usize::try_from(addr).map_err(|_| EFAULT)?;
        if addr % width.bytes() != 0 {
            return Err(EINVAL);
        }
        Ok(addr)
    }

    /// IOCTL: one device atomic.
    pub(crate) fn atomic(
        dev: &VsvmDevice<Registered>,
        _reg: &(),
        req: &mut uapi::drm_vsvm_atomic,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if req.flags != 0 || req.reserved != 0 {
            return Err(EINVAL);
        }
        let op = Op::from_uapi(req.op)?;
        let width = Width::from_uapi(req.width)?;
        if op != Op::Cmpxchg && req.compare != 0 {
            return Err(EINVAL);
        }
        Self::check_operand(width, req.operand)?;
        Self::check_operand(width, req.compare)?;
        let addr = Self::check_addr(req.addr, width)?;
        let ctx = Self::ctx(file)?;
        let window = crate::rmw_window();
        let (operand, compare) = (req.operand, req.compare);
        let (old, faults) = Self::with_page(dev, file, ctx, addr, |p| {
            ops::run(p, addr % PAGE_SIZE, width, op, operand, compare, window)
        })?;
        file.inner().ops.fetch_add(1, Relaxed);
        dev.stats.ops.fetch_add(1, Relaxed);
        req.result = old;
        req.faults = faults.try_into().unwrap_or(u32::MAX);
        Ok(0)
    }

    /// IOCTL: one device atomic over `count` addresses `stride` apart.
    pub(crate) fn atomic_range(
        dev: &VsvmDevice<Registered>,
        _reg: &(),
        req: &mut uapi::drm_vsvm_atomic_range,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if req.flags != 0 || req.pad != 0 || req.reserved != 0 {
            return Err(EINVAL);
        }
        let op = Op::from_uapi(req.op)?;
        if op == Op::Cmpxchg {
            return Err(EINVAL);
        }
        let width = Width::from_uapi(req.width)?;
        Self::check_operand(width, req.operand)?;
        if req.count == 0 || req.count > u64::from(uapi::DRM_VSVM_RANGE_MAX) {
            return Err(EINVAL);
        }
        let addr = Self::check_addr(req.addr, width)?;
        let stride = usize::try_from(req.stride).map_err(|_| EINVAL)?;
        if stride % width.bytes() != 0 {
            return Err(EINVAL);
        }
        let count = req.count as usize;
        // The last operand must fit in the address space (it may end at its very end).
        (count - 1)
            .checked_mul(stride)
            .and_then(|span| span.checked_add(addr))
            .and_then(|last| last.checked_add(width.bytes() - 1))
            .ok_or(EINVAL)?;
        let ctx = Self::ctx(file)?;
        let window = crate::rmw_window();
        let (mut faults, mut sum, mut i) = (0u64, 0u64, 0usize);
        while i < count {
            let page = (addr + i * stride) & PAGE_MASK;
            // All the operations that fall in this page run under one page-table lock.
            let ((done, part), f) = Self::with_page(dev, file, ctx, page, |p| {
                let (mut j, mut part) = (i, 0u64);
                while j < count {
                    let a = addr + j * stride;
                    if a & PAGE_MASK != page {
                        break;
                    }
                    let old = ops::run(p, a % PAGE_SIZE, width, op, req.operand, 0, window)?;
                    part = part.wrapping_add(old);
                    j += 1;
                    if stride == 0 && j - i >= 512 {
                        // Let the CPU and the other devices in now and then.
                        break;
                    }
                }
                Ok((j, part))
            })?;
            faults += f;
            sum = sum.wrapping_add(part);
            file.inner().ops.fetch_add((done - i) as u64, Relaxed);
            dev.stats.ops.fetch_add((done - i) as u64, Relaxed);
            i = done;
        }
        req.faults = faults;
        req.sum = sum;
        Ok(0)
    }

    /// IOCTL: grant the device atomic access to a range of pages ahead of use.
    pub(crate) fn prefetch(
        dev: &VsvmDevice<Registered>,
        _reg: &(),
        req: &mut uapi::drm_vsvm_prefetch,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if req.flags != 0 || req.pad != 0 || req.reserved != 0 {
            return Err(EINVAL);
        }
        if req.npages == 0 || req.npages > u64::from(uapi::DRM_VSVM_PREFETCH_MAX) {
            return Err(EINVAL);
        }
        let addr = usize::try_from(req.addr).map_err(|_| EFAULT)?;
        let ctx = Self::ctx(file)?;
        Self::fault(dev, file, || ctx.atomic_fault(addr, req.npages as usize))?;
        Ok(0)
    }

    /// IOCTL: the device page table entry of an address.
    pub(crate) fn query(
        _dev: &VsvmDevice<Registered>,
        _reg: &(),
        req: &mut uapi::drm_vsvm_query,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if req.flags != 0 || req.reserved != 0 {
            return Err(EINVAL);
        }
        let addr = usize::try_from(req.addr).map_err(|_| EFAULT)?;
        let ctx = Self::ctx(file)?;
        // The table itself, granted or not: an entry the revocation left behind shows.
        req.state = ctx.with_page_table(|pt| pt.lookup(addr).map_or(0, |pte| pte.bits));
        Ok(0)
    }

    /// IOCTL: this file's counters.
    pub(crate) fn stats(
        _dev: &VsvmDevice<Registered>,
        _reg: &(),
        req: &mut uapi::drm_vsvm_stats,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if req.flags != 0 {
            return Err(EINVAL);
        }
        let ctx = Self::ctx(file)?;
        let s = ctx.stats().snapshot();
        // Every field but the flags is output, reserved ones included: all are written.
        *req = uapi::drm_vsvm_stats::default();
        req.ops = file.inner().ops.load(Relaxed);
        req.faults = file.inner().faults.calls();
        req.pages_granted = s.pages_granted;
        req.retries = s.retries;
        req.timeouts = file.inner().faults.timeouts();
        req.residency_waits = s.residency_waits;
        req.notifiers = ctx.chunk_count() as u64;
        req.device = file.inner().device;
        req.causes = uapi::DRM_VSVM_REVOKE_COUNT;
        req.revocations[..RevokeCause::COUNT]
            .copy_from_slice(&ctx.with_page_table(|pt| pt.revocations.by_cause()));
        Ok(0)
    }
}

// SPDX-License-Identifier: GPL-2.0

//! An open render node: one process's SVM context on one device, and the ioctls.

use kernel::{
    drm::{
        self,
        svm::{
            Config,
            FaultError,
            Faulted,
            NotifierMode,
            RevokeCause,
            SvmContext, //
        },
        Registered,
    },
    mm::mmu_notifier::Owner,
    new_mutex,
    prelude::*,
    sync::{
        atomic::Relaxed,
        Arc,
        Mutex, //
    },
    uapi,
};

use crate::{
    driver::{
        VsvmDevice,
        VsvmDriver, //
    },
    engine::Engines,
    job::{
        Command,
        Job,
        Outcome, //
    },
    ops::{
        Op,
        Width, //
    },
    pt::PageTable,
    stats::{
        count_fault,
        counted,
        FileStats, //
    },
    submit::Jobs,
};

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
/// The file's jobs and their fault records share the context: it goes when the file is
/// closed and the engines and the fault worker are done with them.
#[pin_data(PinnedDrop)]
pub(crate) struct File {
    ctx: Arc<SvmContext<PageTable>>,
    /// The device's engines, which know the context for a reset.
    engines: Arc<Engines>,
    device: u32,
    pub(crate) stats: Arc<FileStats>,
    /// Submitted and not yet waited for.
    #[pin]
    pub(crate) jobs: Mutex<Jobs>,
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
        // Checked at module load: at most 511.
        config.fault_around = crate::module_parameters::fault_around.value() as usize;
        if crate::module_parameters::per_fault_notifiers.value() {
            config.notifiers = NotifierMode::PerFault;
        }
        let pt = PageTable::with_engines(data.engines.clone(), data.stats.clone());
        let ctx = Arc::pin_init(SvmContext::new(mm, pt, config), GFP_KERNEL_ACCOUNT)?;
        let engines = data.engines.clone();
        let (file_ctx, file_engines) = (ctx.clone(), engines.clone());
        let file = KBox::pin_init(
            try_pin_init!(File {
                ctx: file_ctx,
                engines: file_engines,
                device: data.index,
                stats: FileStats::new()?,
                jobs <- new_mutex!(Jobs::new()?),
            }? Error),
            GFP_KERNEL_ACCOUNT,
        )?;
        // Last: the file's drop removes it.
        engines.add_context(ctx)?;
        Ok(file)
    }
}

#[pinned_drop]
impl PinnedDrop for File {
    fn drop(self: Pin<&mut Self>) {
        self.engines.remove_context(&self.ctx);
    }
}

impl File {
    /// The context, if the caller is the process that opened the file: a file descriptor
    /// passed to another process, or kept across `exec()`, gives no access to either mm.
    pub(crate) fn ctx(file: &drm::File<File>) -> Result<&Arc<SvmContext<PageTable>>> {
        let this = file.inner().get_ref();
        let task = kernel::current!();
        match task.mm() {
            Some(mm) if this.ctx.is_mm(mm) => Ok(&this.ctx),
            _ => Err(EACCES),
        }
    }

    /// Submits a job of one command, `cmd`, to the device's engines and waits for it: its
    /// outcome, or the error that ended it.
    fn run(
        dev: &VsvmDevice<Registered>,
        file: &drm::File<File>,
        ctx: &Arc<SvmContext<PageTable>>,
        cmd: Command,
    ) -> Result<Outcome> {
        let mut commands = KVec::with_capacity(1, GFP_KERNEL)?;
        commands.push(cmd, GFP_KERNEL)?;
        let job = Job::new(ctx.clone(), file.inner().stats.clone(), commands)?;
        dev.engines.submit(job.clone())?;
        // A signal stops the job where it is: the operations done stay done, and the wait for
        // the rest is short (an access of the engine, or a fault in progress).
        let interrupted = !job.wait_interruptible();
        if interrupted {
            dev.engines.cancel(&job);
        }
        let out = job.wait(|outcomes| outcomes[0]);
        match out.error {
            0 => Ok(out),
            e if interrupted && e == ECANCELED.to_errno() => Err(EINTR),
            e => Err(Error::from_errno(e)),
        }
    }

    /// Runs a backend fault, `fault`, counted in the file's and the device's statistics: they
    /// are the driver's, as the backend keeps none.
    fn fault(
        dev: &VsvmDevice<Registered>,
        file: &drm::File<File>,
        fault: impl FnOnce() -> Result<Faulted, FaultError>,
    ) -> Result {
        let stats = &file.inner().stats;
        count_fault(&stats.faults, &dev.stats, || {
            counted(fault(), stats, &dev.stats)
        })
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

    /// The command of one operation, from its UAPI fields; `EINVAL` if they are not valid.
    pub(crate) fn command(
        op: u32,
        width: u32,
        addr: u64,
        operand: u64,
        compare: u64,
    ) -> Result<Command> {
        let op = Op::from_uapi(op)?;
        let width = Width::from_uapi(width)?;
        if op != Op::Cmpxchg && compare != 0 {
            return Err(EINVAL);
        }
        Self::check_operand(width, operand)?;
        Self::check_operand(width, compare)?;
        Ok(Command {
            op,
            width,
            addr: Self::check_addr(addr, width)?,
            stride: 0,
            count: 1,
            operand,
            compare,
        })
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
        let cmd = Self::command(req.op, req.width, req.addr, req.operand, req.compare)?;
        let ctx = Self::ctx(file)?;
        let out = Self::run(dev, file, ctx, cmd)?;
        req.result = out.value;
        req.faults = out.faults.try_into().unwrap_or(u32::MAX);
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
        let cmd = Command {
            op,
            width,
            addr,
            stride,
            count,
            operand: req.operand,
            compare: 0,
        };
        let out = Self::run(dev, file, ctx, cmd)?;
        req.faults = out.faults;
        req.sum = out.value;
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
        // Exactly the pages asked for: no fault-around.
        Self::fault(dev, file, || ctx.prefetch(addr, req.npages as usize))?;
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
        let stats = &file.inner().stats;
        // Every field but the flags is output, reserved ones included: all are written.
        *req = uapi::drm_vsvm_stats::default();
        req.ops = stats.ops.load(Relaxed);
        req.faults = stats.faults.calls();
        req.pages_granted = stats.done.granted.load(Relaxed);
        req.retries = stats.done.retries.load(Relaxed);
        req.timeouts = stats.faults.timeouts();
        req.residency_waits = stats.done.residency_waits.load(Relaxed);
        req.notifiers = ctx.chunk_count() as u64;
        req.device = file.inner().device;
        req.causes = uapi::DRM_VSVM_REVOKE_COUNT;
        req.revocations[..RevokeCause::COUNT]
            .copy_from_slice(&ctx.with_page_table(|pt| pt.revocations.by_cause()));
        Ok(0)
    }
}

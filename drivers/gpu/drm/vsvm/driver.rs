// SPDX-License-Identifier: GPL-2.0

//! The DRM driver and its instances.

use core::fmt;
use kernel::{
    debugfs::{
        self,
        Reader, //
    },
    device::DeviceContext,
    dma::{
        streaming,
        DmaMask, //
    },
    drm::{
        self,
        gem,
        ioctl, //
    },
    faux,
    prelude::*,
    str::CString,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc, //
    },
    uaccess::UserSliceReader,
};

use crate::{
    engine::Engines,
    fault_buffer::FaultBuffer,
    file::File,
    gem::VsvmObject,
    stats::{
        DeviceStats,
        StatsFile, //
    },
};

/// The vsvm DRM driver.
pub(crate) struct VsvmDriver;

/// Per-device data: which GPU this is and the policy it shares with the others.
pub(crate) struct VsvmData {
    /// Index of the device, `0..devices`.
    pub(crate) index: u32,
    /// The contention policy shared by all instances, if enabled.
    pub(crate) residency: Option<Arc<kernel::drm::svm::Residency>>,
    /// Counters of the device, over all its files.
    pub(crate) stats: Arc<DeviceStats>,
    /// The engines, which execute the device's jobs and write their misses into the fault
    /// buffer. They map pages for the faux device, which has a DMA mask: it stays bound as
    /// long as the module is loaded, and the module stays loaded while a file of the device is
    /// open (an open file holds a reference to it).
    pub(crate) engines: Arc<Engines>,
}

/// The DRM device type of this driver.
pub(crate) type VsvmDevice<Ctx = drm::Normal> = drm::Device<VsvmDriver, Ctx>;

const INFO: drm::DriverInfo = drm::DriverInfo {
    major: 0,
    minor: 1,
    patchlevel: 0,
    name: c"vsvm",
    desc: c"Virtual SVM GPU",
};

#[vtable]
impl drm::Driver for VsvmDriver {
    type Data = VsvmData;
    type RegistrationData<'a> = ();
    type File = File;
    type Object = gem::Object<VsvmObject>;
    type ParentDevice<Ctx: DeviceContext> = faux::Device<Ctx>;

    const INFO: drm::DriverInfo = INFO;
    const FEAT_RENDER: bool = true;

    kernel::declare_drm_ioctls! {
        (VSVM_ATOMIC, drm_vsvm_atomic, ioctl::RENDER_ALLOW, File::atomic),
        (VSVM_ATOMIC_RANGE, drm_vsvm_atomic_range, ioctl::RENDER_ALLOW, File::atomic_range),
        (VSVM_PREFETCH, drm_vsvm_prefetch, ioctl::RENDER_ALLOW, File::prefetch),
        (VSVM_QUERY, drm_vsvm_query, ioctl::RENDER_ALLOW, File::query),
        (VSVM_STATS, drm_vsvm_stats, ioctl::RENDER_ALLOW, File::stats),
        (VSVM_SUBMIT, drm_vsvm_submit, ioctl::RENDER_ALLOW, File::submit),
        (VSVM_WAIT, drm_vsvm_wait, ioctl::RENDER_ALLOW, File::wait),
    }
}

/// One virtual GPU: a faux device and the DRM device registered on it.
///
/// # Invariants
///
/// `_drm` borrows the device of `_faux`, which is boxed (its address is stable) and outlives
/// `_drm`: fields drop in declaration order. The faux device is unregistered only when the
/// module is unloaded, so it is bound while any of the DRM device's files is open.
pub(crate) struct Instance {
    _drm: drm::Registration<'static, VsvmDriver>,
    /// Before the workers are flushed: removing the file waits for a reset in progress.
    _reset: Pin<KBox<debugfs::File<ResetFile>>>,
    _flush_hold: Pin<KBox<debugfs::File<FlushHoldFile>>>,
    /// After the DRM device: no file is open when the instance goes (the module is being
    /// unloaded), so no job or record can come; the workers may still be finishing. The
    /// engines first: a job waits for the fault worker.
    _engines: FlushOnDrop<Engines>,
    _faults: FlushOnDrop<FaultBuffer>,
    _stats: Pin<KBox<debugfs::File<StatsFile>>>,
    _dir: debugfs::Dir,
    _faux: KBox<faux::Registration>,
}

impl Instance {
    /// The device this instance maps pages for.
    #[cfg(CONFIG_DRM_VSVM_BENCH)]
    pub(crate) fn dma(&self) -> &'static kernel::device::Device<kernel::device::Bound> {
        // Held for its drop (hence the underscore); read only by the benchmark.
        self._drm.device().engines.dma
    }

    /// Creates and registers GPU number `index`.
    pub(crate) fn new(
        index: u32,
        residency: Option<Arc<kernel::drm::svm::Residency>>,
        debugfs: &debugfs::Dir,
    ) -> Result<Self> {
        let name = CString::try_from_fmt(fmt!("vsvm{index}"))?;
        let faux = KBox::new(faux::Registration::new(&name, None)?, GFP_KERNEL)?;
        let fdev: *const faux::Device<kernel::device::Bound> = (*faux).as_ref();
        // SAFETY: The faux registration is boxed and dropped last (see the type invariants), so
        // the device stays bound for as long as the reference is used: by `drm`, and by the
        // engines and the page tables of the device's contexts, which `Arc`s keep beyond
        // `drm`; but every context goes with its file and its jobs, and the engines' and the
        // fault worker's flushes below wait for the last jobs and records before the faux
        // device goes.
        let fdev: &'static faux::Device<kernel::device::Bound> = unsafe { &*fdev };
        // A GPU reaches memory by DMA: a faux bus gives it no DMA mask, so set one, as vgem
        // does. The engines reach memory by the DMA addresses the page table holds, which
        // needs the DMA API to map the device directly.
        // SAFETY: The device was just created: nothing maps or allocates for its DMA yet.
        unsafe { streaming::coerce_mask_and_coherent(fdev.as_ref(), DmaMask::new::<64>()) }?;
        if !streaming::is_direct(fdev.as_ref()) {
            return Err(EOPNOTSUPP);
        }
        let count = crate::module_parameters::engines.value();
        let stats = DeviceStats::new(count)?;
        let faults = FaultBuffer::new(stats.clone())?;
        let engines = Engines::new(count, fdev.as_ref(), faults.clone(), stats.clone())?;
        let dir = debugfs.subdir(&name);
        let stats_file = KBox::pin_init(
            dir.read_only_file(c"stats", StatsFile(stats.clone())),
            GFP_KERNEL,
        )?;
        let reset_file = KBox::pin_init(
            dir.write_callback_file(c"reset", ResetFile(engines.clone()), &ResetFile::write),
            GFP_KERNEL,
        )?;
        let flush_hold = KBox::pin_init(
            dir.read_write_callback_file(
                c"tlb_flush_hold_ms",
                FlushHoldFile(engines.clone()),
                &FlushHoldFile::show,
                &FlushHoldFile::write,
            ),
            GFP_KERNEL,
        )?;
        let data = VsvmData {
            index,
            residency,
            stats,
            engines: engines.clone(),
        };
        let unregistered = drm::UnregisteredDevice::<VsvmDriver>::new(fdev, Ok::<_, Error>(data))?;
        // SAFETY: The registration is stored in `Self` and dropped before the faux device; it
        // is never forgotten.
        let drm = unsafe { drm::Registration::new(fdev.as_ref(), unregistered, (), 0)? };
        // INVARIANT: `drm` borrows `faux`'s device and is declared first.
        Ok(Self {
            _drm: drm,
            _reset: reset_file,
            _flush_hold: flush_hold,
            _engines: FlushOnDrop(engines),
            _faults: FlushOnDrop(faults),
            _stats: stats_file,
            _dir: dir,
            _faux: faux,
        })
    }
}

/// The debugfs file `reset`: writing anything resets the device (see [`Engines::reset`]).
struct ResetFile(Arc<Engines>);

impl ResetFile {
    fn write(&self, _input: &mut UserSliceReader) -> Result {
        self.0.reset()
    }
}

/// The debugfs file `tlb_flush_hold_ms`, for fault injection: writing N holds TLB flushes for
/// the next N ms (at most [`MAX_FLUSH_HOLD_MS`]; 0 lifts the hold), as on a GPU whose flush is
/// slow. A flush that may wait (a blockable invalidation, a fault) waits until the hold ends;
/// one that may not (the OOM reaper's) is refused. Reading shows the ms left.
///
/// [`MAX_FLUSH_HOLD_MS`]: crate::engine::MAX_FLUSH_HOLD_MS
struct FlushHoldFile(Arc<Engines>);

impl FlushHoldFile {
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let left = self.0.flush_held_for().map_or(0, |d| d.as_millis_ceil());
        writeln!(f, "{left}")
    }

    fn write(&self, input: &mut UserSliceReader) -> Result {
        // Parsed as debugfs parses a number file.
        let ms = Atomic::new(0u32);
        ms.read_from_slice(input)?;
        self.0.hold_flushes(ms.load(Relaxed))
    }
}

/// Something with workers that run the module's code.
trait Flush {
    /// Waits until its workers are done.
    fn flush(&self);
}

impl Flush for FaultBuffer {
    fn flush(&self) {
        FaultBuffer::flush(self);
    }
}

impl Flush for Engines {
    fn flush(&self) {
        Engines::flush(self);
    }
}

/// Waits for the workers of `T` when dropped: their code is the module's, and the contexts
/// whose last reference they drop map pages for the instance's device.
struct FlushOnDrop<T: Flush>(Arc<T>);

impl<T: Flush> Drop for FlushOnDrop<T> {
    fn drop(&mut self) {
        self.0.flush();
    }
}

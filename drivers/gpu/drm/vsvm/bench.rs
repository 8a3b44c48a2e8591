// SPDX-License-Identifier: GPL-2.0

//! `vsvm/bench_floor` in debugfs (`CONFIG_DRM_VSVM_BENCH`, off by default): the per-page cost
//! of granting measured in the kernel, for `make bench`, on the writer's own memory.
//!
//! Writing `floor ADDR NPAGES` times a bare loop of `make_device_exclusive()` and release over
//! the pages (one mmap lock for the loop); `backend ADDR NPAGES` times single-page
//! `atomic_fault()` calls of a fresh context; `profile ADDR NPAGES` does the same with the
//! context's phase timing on and reports the time per phase. Reading gives the last results in ns per page.
//! The writer must give the pages back to the CPU (touch them) between runs.

use core::fmt;
use kernel::{
    drm::svm::{
        Config,
        Phase,
        SvmContext, //
    },
    mm::mmu_notifier::Owner,
    page::PAGE_SIZE,
    prelude::*,
    sync::atomic::{
        Atomic,
        Relaxed, //
    },
    time::{
        Instant,
        Monotonic, //
    },
    uaccess::UserSliceReader,
};

use crate::pt::{
    PageTable,
    VsvmSvm, //
};

/// The last results.
pub(crate) struct Bench {
    floor_ns: Atomic<u64>,
    backend_ns: Atomic<u64>,
    /// Per-page time of each phase of the last `profile` run.
    phase_ns: [Atomic<u64>; Phase::COUNT],
}

impl Bench {
    pub(crate) fn new() -> Self {
        Self {
            floor_ns: Atomic::new(0),
            backend_ns: Atomic::new(0),
            phase_ns: [const { Atomic::new(0) }; Phase::COUNT],
        }
    }

    /// Reads the debugfs file.
    pub(crate) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "floor_ns_per_page: {}", self.floor_ns.load(Relaxed))?;
        writeln!(f, "backend_ns_per_page: {}", self.backend_ns.load(Relaxed))?;
        for (i, phase) in Phase::ALL.iter().enumerate() {
            let ns = self.phase_ns[i].load(Relaxed);
            writeln!(f, "phase_{}_ns_per_page: {ns}", phase.name())?;
        }
        Ok(())
    }

    /// Writes to the debugfs file: runs one measurement.
    pub(crate) fn run(&self, reader: &mut UserSliceReader) -> Result {
        let mut buf = [0u8; 64];
        let len = reader.len().min(buf.len());
        reader.read_slice(&mut buf[..len])?;
        let text = core::str::from_utf8(&buf[..len]).map_err(|_| EINVAL)?;
        let mut words = text.split_whitespace();
        let (what, addr, npages) = (words.next(), words.next(), words.next());
        let addr = parse(addr.ok_or(EINVAL)?)?;
        let npages = parse(npages.ok_or(EINVAL)?)?;
        if npages == 0 || npages > 4096 || addr % PAGE_SIZE != 0 {
            return Err(EINVAL);
        }
        // The loops below add up to `npages` pages to `addr`.
        npages
            .checked_mul(PAGE_SIZE)
            .and_then(|len| addr.checked_add(len))
            .ok_or(EINVAL)?;
        let task = kernel::current!();
        let mm = task.mm().ok_or(EINVAL)?;
        let owner = Owner::from_ptr(self);
        let start;
        match what {
            Some("floor") => {
                let lock = mm.mmap_read_lock();
                start = Instant::<Monotonic>::now();
                for i in 0..npages {
                    drop(lock.make_device_exclusive(addr + i * PAGE_SIZE, owner)?);
                }
                let ns = start.elapsed().as_nanos() as u64;
                self.floor_ns.store(ns / npages as u64, Relaxed);
            }
            Some(what @ ("backend" | "profile")) => {
                let profile = what == "profile";
                let mut config = Config::new(owner);
                config.profile = profile;
                let ctx = KBox::pin_init(
                    SvmContext::<VsvmSvm>::new(mm, PageTable::new(), config),
                    GFP_KERNEL,
                )?;
                start = Instant::<Monotonic>::now();
                for i in 0..npages {
                    ctx.atomic_fault(addr + i * PAGE_SIZE, 1)?;
                }
                let ns = start.elapsed().as_nanos() as u64;
                if profile {
                    let phases = ctx.stats().snapshot().phase_ns;
                    for (slot, total) in self.phase_ns.iter().zip(phases) {
                        slot.store(total / npages as u64, Relaxed);
                    }
                } else {
                    self.backend_ns.store(ns / npages as u64, Relaxed);
                }
            }
            _ => return Err(EINVAL),
        }
        Ok(())
    }
}

fn parse(s: &str) -> Result<usize> {
    match s.strip_prefix("0x") {
        Some(hex) => usize::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .map_err(|_| EINVAL)
}

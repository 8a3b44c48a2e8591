// SPDX-License-Identifier: GPL-2.0

//! vsvm: a virtual SVM GPU.
//!
//! Each instance is a "GPU" on a faux device with a render node and its own page table. Its
//! only work is atomic operations on the memory of the process that opened it: an operation
//! walks the device page table, and a missing or non-atomic entry is a device fault that
//! `kernel::drm::svm` resolves by making the page exclusive to the device. Several instances
//! contending for the same pages are a multi-GPU system. See `Documentation/gpu/vsvm.rst`.

#[cfg(CONFIG_DRM_VSVM_BENCH)]
mod bench;
mod driver;
mod engine;
mod fault_buffer;
mod file;
mod gem;
mod job;
mod ops;
mod pt;
mod stats;
mod submit;

use kernel::{
    debugfs,
    prelude::*,
    time::Delta, //
};

use crate::driver::Instance;

module! {
    type: VsvmModule,
    name: "vsvm",
    authors: ["svm-atomic developers"],
    description: "Virtual SVM GPU for device atomics on process memory",
    license: "GPL",
    params: {
        devices: u32 {
            default: 2,
            description: "Number of virtual GPUs (1-8)",
        },
        residency_us: u32 {
            default: 0,
            description: "Minimum residency of a grant against other GPUs, in us (0: off)",
        },
        rmw_window_ns: u32 {
            default: 0,
            description: "Delay inside a device atomic, read to write, in ns (0-100000)",
        },
        engines: u32 {
            default: 2,
            description: "Engines of each virtual GPU (1-4)",
        },
        fault_around: u32 {
            default: 511,
            description: "Most pages a fault grants ahead, within its 2 MiB chunk (0: off)",
        },
        per_fault_notifiers: bool {
            default: false,
            description: "A notifier per fault, as nouveau does (for comparison)",
        },
    },
}

/// Most instances a system may have.
const MAX_DEVICES: u32 = 8;

/// Most pages a fault grants ahead: the rest of a 2 MiB chunk.
const MAX_FAULT_AROUND: u32 = 511;

/// Longest read-modify-write window, in ns: it is spent spinning under an engine's TLB lock.
const MAX_RMW_WINDOW_NS: u32 = 100_000;

/// The read-modify-write window of device atomics (`rmw_window_ns=`).
pub(crate) fn rmw_window() -> Delta {
    Delta::from_nanos(i64::from(
        module_parameters::rmw_window_ns
            .value()
            .min(MAX_RMW_WINDOW_NS),
    ))
}

/// The module's state; fields drop in declaration order.
struct VsvmModule {
    /// Before the instances: it maps pages for the first one.
    #[cfg(CONFIG_DRM_VSVM_BENCH)]
    _bench: Pin<KBox<debugfs::File<bench::Bench>>>,
    _instances: KVec<Instance>,
    _debugfs: debugfs::Dir,
}

impl kernel::Module for VsvmModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let count = module_parameters::devices.value();
        if count == 0 || count > MAX_DEVICES {
            pr_err!("devices={count}: must be 1 to {MAX_DEVICES}\n");
            return Err(EINVAL);
        }
        let window = module_parameters::rmw_window_ns.value();
        if window > MAX_RMW_WINDOW_NS {
            pr_err!("rmw_window_ns={window}: must be at most {MAX_RMW_WINDOW_NS}\n");
            return Err(EINVAL);
        }
        let engines = module_parameters::engines.value();
        if engines == 0 || engines > engine::MAX_ENGINES {
            pr_err!("engines={engines}: must be 1 to {}\n", engine::MAX_ENGINES);
            return Err(EINVAL);
        }
        let around = module_parameters::fault_around.value();
        if around > MAX_FAULT_AROUND {
            pr_err!("fault_around={around}: must be at most {MAX_FAULT_AROUND}\n");
            return Err(EINVAL);
        }
        let residency_us = module_parameters::residency_us.value();
        let residency = match residency_us {
            0 => None,
            us => Some(kernel::drm::svm::Residency::new(Delta::from_micros(
                us.into(),
            ))?),
        };
        let dir = debugfs::Dir::new(c"vsvm");
        let mut instances = KVec::with_capacity(count as usize, GFP_KERNEL)?;
        for index in 0..count {
            instances.push(Instance::new(index, residency.clone(), &dir)?, GFP_KERNEL)?;
        }
        pr_info!(
            "{count} virtual SVM GPUs of {engines} engines, residency {residency_us} us, \
             fault-around {around} pages, atomic window {window} ns\n"
        );
        #[cfg(CONFIG_DRM_VSVM_BENCH)]
        let bench = KBox::pin_init(
            dir.read_write_callback_file(
                c"bench_floor",
                bench::Bench::new(instances[0].dma(), residency.clone()),
                &bench::Bench::show,
                &bench::Bench::run,
            ),
            GFP_KERNEL,
        )?;
        Ok(Self {
            #[cfg(CONFIG_DRM_VSVM_BENCH)]
            _bench: bench,
            _instances: instances,
            _debugfs: dir,
        })
    }
}

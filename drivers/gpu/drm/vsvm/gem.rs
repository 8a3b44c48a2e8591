// SPDX-License-Identifier: GPL-2.0

//! The GEM object type DRM requires. vsvm has no buffer objects: the device works on process
//! memory directly.

use kernel::{
    drm::gem,
    prelude::*, //
};

use crate::driver::{
    VsvmDevice,
    VsvmDriver, //
};

/// GEM object data (none).
#[pin_data]
pub(crate) struct VsvmObject {}

impl gem::DriverObject for VsvmObject {
    type Driver = VsvmDriver;
    type Args = ();

    fn new(_dev: &VsvmDevice, _size: usize, _args: Self::Args) -> impl PinInit<Self, Error> {
        try_pin_init!(VsvmObject {})
    }
}

// SPDX-License-Identifier: GPL-2.0

//! The device's atomic operations, run on a page the device reaches through its page table.

use crate::pt::DevicePage;
use kernel::{
    prelude::*,
    sync::atomic::{
        Atomic,
        Relaxed, //
    },
    time::{
        delay::udelay,
        Delta, //
    },
    uapi,
};

/// A validated operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    Xchg,
    Cmpxchg,
    And,
    Or,
    Max,
}

impl Op {
    /// The operation for a UAPI `op`, or `EINVAL`.
    pub(crate) fn from_uapi(op: u32) -> Result<Self> {
        Ok(match op {
            uapi::drm_vsvm_op_DRM_VSVM_OP_ADD => Self::Add,
            uapi::drm_vsvm_op_DRM_VSVM_OP_XCHG => Self::Xchg,
            uapi::drm_vsvm_op_DRM_VSVM_OP_CMPXCHG => Self::Cmpxchg,
            uapi::drm_vsvm_op_DRM_VSVM_OP_AND => Self::And,
            uapi::drm_vsvm_op_DRM_VSVM_OP_OR => Self::Or,
            uapi::drm_vsvm_op_DRM_VSVM_OP_MAX => Self::Max,
            _ => return Err(EINVAL),
        })
    }
}

/// Operand width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Width {
    W32,
    W64,
}

impl Width {
    /// The width for a UAPI `width` (32 or 64), or `EINVAL`.
    pub(crate) fn from_uapi(width: u32) -> Result<Self> {
        match width {
            32 => Ok(Self::W32),
            64 => Ok(Self::W64),
            _ => Err(EINVAL),
        }
    }

    /// Size in bytes.
    pub(crate) fn bytes(self) -> usize {
        match self {
            Self::W32 => 4,
            Self::W64 => 8,
        }
    }
}

/// `apply_u32` and `apply_u64`: the operations on one width; each returns the old value.
///
/// Like a device's atomics across a bus, they are atomic only with respect to the device: a
/// read, then `window`, then a write, made atomic by the device holding the page (an engine's
/// translation, which a shootdown waits for) and by its atomic units. A CPU access or another
/// device's access in between is lost, which is what lets the tests see a page held by two
/// owners at once.
macro_rules! apply_fn {
    ($name:ident, $t:ty) => {
        fn $name(a: &Atomic<$t>, op: Op, operand: $t, compare: $t, window: Delta) -> $t {
            let old = a.load(Relaxed);
            let new = match op {
                Op::Add => old.wrapping_add(operand),
                Op::Xchg => operand,
                Op::Cmpxchg if old == compare => operand,
                Op::Cmpxchg => old,
                Op::And => old & operand,
                Op::Or => old | operand,
                Op::Max => old.max(operand),
            };
            if window > Delta::ZERO {
                udelay(window);
            }
            if new != old {
                a.store(new, Relaxed);
            }
            old
        }
    };
}

apply_fn!(apply_u32, u32);
apply_fn!(apply_u64, u64);

/// Runs `op` on the value at byte `offset` of `page` with `window` between its read and its
/// write; returns the old value.
pub(crate) fn run(
    page: &DevicePage<'_>,
    offset: usize,
    width: Width,
    op: Op,
    operand: u64,
    compare: u64,
    window: Delta,
) -> Result<u64> {
    Ok(match width {
        Width::W32 => {
            let a = page.atomic::<u32>(offset)?;
            u64::from(apply_u32(a, op, operand as u32, compare as u32, window))
        }
        Width::W64 => apply_u64(page.atomic::<u64>(offset)?, op, operand, compare, window),
    })
}

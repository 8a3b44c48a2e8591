// SPDX-License-Identifier: GPL-2.0

//! The device's atomic operations, run on a granted page.

use kernel::{
    drm::svm::AtomicPage,
    prelude::*,
    sync::atomic::{
        Atomic,
        Full,
        Relaxed, //
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
macro_rules! apply_fn {
    ($name:ident, $t:ty) => {
        fn $name(a: &Atomic<$t>, op: Op, operand: $t, compare: $t) -> $t {
            // AND, OR and MAX have no single instruction: compare-and-exchange until it sticks.
            let update = |f: &dyn Fn($t) -> $t| {
                let mut old = a.load(Relaxed);
                loop {
                    match a.cmpxchg(old, f(old), Full) {
                        Ok(v) => return v,
                        Err(now) => old = now,
                    }
                }
            };
            match op {
                Op::Add => a.fetch_add(operand, Full),
                Op::Xchg => a.xchg(operand, Full),
                Op::Cmpxchg => match a.cmpxchg(compare, operand, Full) {
                    Ok(v) | Err(v) => v,
                },
                Op::And => update(&|v| v & operand),
                Op::Or => update(&|v| v | operand),
                Op::Max => update(&|v| v.max(operand)),
            }
        }
    };
}

apply_fn!(apply_u32, u32);
apply_fn!(apply_u64, u64);

/// Runs `op` on the value at byte `offset` of `page`; returns the old value.
pub(crate) fn run(
    page: &AtomicPage<'_>,
    offset: usize,
    width: Width,
    op: Op,
    operand: u64,
    compare: u64,
) -> Result<u64> {
    Ok(match width {
        Width::W32 => {
            let a = page.atomic::<u32>(offset)?;
            u64::from(apply_u32(a, op, operand as u32, compare as u32))
        }
        Width::W64 => apply_u64(page.atomic::<u64>(offset)?, op, operand, compare),
    })
}

// SPDX-License-Identifier: GPL-2.0

//! Charging a fault serviced by another task to the process it is for.

use crate::{
    bindings,
    mm::Mm,
    types::NotThreadSafe, //
};

/// While it lives, the current task's `__GFP_ACCOUNT` allocations are charged to the memory
/// cgroup of an mm (`set_active_memcg()`): a fault that a driver's fault worker services for a
/// process costs the process, as it does from the process's own ioctl.
///
/// # Invariants
///
/// `memcg` is a reference to a memory cgroup (or null) that this guard owns, set as the
/// current task's active memcg in place of `old` until the guard is dropped, on the same
/// task (it is not `Send`).
pub(super) struct RemoteCharge {
    memcg: *mut bindings::mem_cgroup,
    old: *mut bindings::mem_cgroup,
    _not_send: NotThreadSafe,
}

impl RemoteCharge {
    /// Charges to `mm`'s memory cgroup from now on.
    pub(super) fn new(mm: &Mm) -> Self {
        // SAFETY: `mm.as_raw()` is a valid mm; the memcg comes with a reference.
        let memcg = unsafe { bindings::get_mem_cgroup_from_mm(mm.as_raw()) };
        // SAFETY: The reference keeps `memcg` alive until the scope ends in `drop`.
        let old = unsafe { bindings::set_active_memcg(memcg) };
        // INVARIANT: `memcg` is referenced and active; `old` was.
        Self {
            memcg,
            old,
            _not_send: NotThreadSafe,
        }
    }
}

impl Drop for RemoteCharge {
    fn drop(&mut self) {
        // SAFETY: Ends the scope `new` began, on the same task (type invariants), restoring
        // the scope it nested in; then drops the reference `new` took.
        unsafe {
            bindings::set_active_memcg(self.old);
            bindings::mem_cgroup_put(self.memcg);
        }
    }
}

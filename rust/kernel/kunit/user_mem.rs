// SPDX-License-Identifier: GPL-2.0

//! User memory for KUnit tests.
//!
//! [`UserMem`] maps memory into an address space attached to the KUnit test thread
//! (`kunit_vm_mmap()`), so that a test can exercise code that works on real user memory: the
//! test can touch it "from the CPU" with [`UserMem::read`] and [`UserMem::write`] (which fault
//! like a user access would), change it with [`UserMem::madvise`] and [`UserMem::unmap`], and
//! hand [`current_mm`] to the code under test. KUnit unmaps the memory when the test ends.
//!
//! C header: [`include/kunit/test.h`](srctree/include/kunit/test.h)

use crate::{
    bindings,
    mm::MmWithUser,
    prelude::*,
    sync::aref::ARef,
    types::NotThreadSafe,
    uaccess::{UserPtr, UserSlice},
};

/// Size of a PMD-mapped transparent huge page on this architecture.
pub const PMD_SIZE: usize = 1 << bindings::PMD_SHIFT;

/// How to map a [`UserMem`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Private anonymous memory, readable and writable.
    Anon,
    /// Private anonymous memory, read-only.
    AnonReadOnly,
    /// Shared anonymous memory (backed by shmem), readable and writable.
    Shared,
}

/// A range of user memory in the address space of the current KUnit test.
///
/// # Invariants
///
/// `[addr, addr + len)` was mapped by `kunit_vm_mmap()` in the mm of the current test thread,
/// which KUnit keeps until the test ends.
pub struct UserMem {
    addr: usize,
    len: usize,
    // The mapping lives in the current thread's mm.
    _nts: NotThreadSafe,
}

/// The address space attached to the current test thread (by a first [`UserMem`]), if any.
pub fn current_mm() -> Option<ARef<MmWithUser>> {
    current!().mm().map(ARef::from)
}

fn vm_mmap(len: usize, prot: u32, flags: u32) -> Result<usize> {
    // SAFETY: Called from a KUnit test (or not: then the pointer is null and checked below).
    let test = unsafe { bindings::kunit_get_current_test() };
    if test.is_null() {
        return Err(EINVAL);
    }
    // SAFETY: `test` is the running test; a null file and zero offset map anonymous memory.
    let addr = unsafe {
        bindings::kunit_vm_mmap(
            test,
            core::ptr::null_mut(),
            0,
            len,
            prot as usize,
            flags as usize,
            0,
        )
    };
    // `kunit_vm_mmap()` returns 0 when it could not map, and an error code as a "pointer" when
    // `vm_mmap()` fails.
    if addr == 0 {
        return Err(ENOMEM);
    }
    if addr > usize::MAX - bindings::MAX_ERRNO as usize {
        return Err(Error::from_errno(addr as i32));
    }
    Ok(addr)
}

impl UserMem {
    /// Maps `len` bytes of `kind` memory in the current test's address space.
    pub fn new(kind: Kind, len: usize) -> Result<Self> {
        let (prot, flags) = match kind {
            Kind::Anon => (
                bindings::PROT_READ | bindings::PROT_WRITE,
                bindings::MAP_PRIVATE,
            ),
            Kind::AnonReadOnly => (bindings::PROT_READ, bindings::MAP_PRIVATE),
            Kind::Shared => (
                bindings::PROT_READ | bindings::PROT_WRITE,
                bindings::MAP_SHARED,
            ),
        };
        let addr = vm_mmap(len, prot, flags | bindings::MAP_ANONYMOUS)?;
        // INVARIANT: `kunit_vm_mmap()` just mapped the range.
        Ok(Self {
            addr,
            len,
            _nts: NotThreadSafe,
        })
    }

    /// Maps a [`PMD_SIZE`]-aligned, [`PMD_SIZE`]-long region of private anonymous memory and
    /// faults in one transparent huge page there (when one can be had).
    ///
    /// The region is then marked `MADV_NOHUGEPAGE`: otherwise khugepaged collapses the huge page
    /// again once a test has split its mapping (as a device-exclusive entry does), which takes
    /// away what the test set up at a moment the test does not choose. The huge page stays; a
    /// range the test zaps faults back in small pages.
    pub fn new_thp() -> Result<Self> {
        let mem = Self::new(Kind::Anon, 2 * PMD_SIZE)?;
        let aligned = (mem.addr + PMD_SIZE - 1) & !(PMD_SIZE - 1);
        // INVARIANT: A sub-range of a range mapped by `kunit_vm_mmap()`.
        let thp = Self {
            addr: aligned,
            len: PMD_SIZE,
            _nts: NotThreadSafe,
        };
        thp.madvise(0, PMD_SIZE, bindings::MADV_HUGEPAGE)?;
        thp.write_u64(0, 0)?;
        thp.madvise(0, PMD_SIZE, bindings::MADV_NOHUGEPAGE)?;
        Ok(thp)
    }

    /// The first user address.
    pub fn addr(&self) -> usize {
        self.addr
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn slice(&self, offset: usize, len: usize) -> Result<UserSlice> {
        let end = offset.checked_add(len).ok_or(EINVAL)?;
        if end > self.len {
            return Err(EINVAL);
        }
        Ok(UserSlice::new(UserPtr::from_addr(self.addr + offset), len))
    }

    /// Writes `data` at `offset` as the CPU would (`copy_to_user()`), faulting as needed.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result {
        self.slice(offset, data.len())?.writer().write_slice(data)
    }

    /// Reads into `data` from `offset` as the CPU would (`copy_from_user()`).
    pub fn read(&self, offset: usize, data: &mut [u8]) -> Result {
        self.slice(offset, data.len())?.reader().read_slice(data)
    }

    /// Writes a `u64` at `offset`.
    pub fn write_u64(&self, offset: usize, value: u64) -> Result {
        self.write(offset, &value.to_ne_bytes())
    }

    /// Reads a `u64` at `offset`.
    pub fn read_u64(&self, offset: usize) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read(offset, &mut b)?;
        Ok(u64::from_ne_bytes(b))
    }

    /// Applies `madvise(advice)` to `[offset, offset + len)` (`do_madvise()`).
    pub fn madvise(&self, offset: usize, len: usize, advice: u32) -> Result {
        self.slice(offset, len)?;
        let mm = current_mm().ok_or(EINVAL)?;
        // SAFETY: `mm` is the live mm of this thread, and the range lies in our mapping.
        crate::error::to_result(unsafe {
            bindings::do_madvise(mm.as_raw(), self.addr + offset, len, advice as i32)
        })
    }

    /// Unmaps `[offset, offset + len)` (`vm_munmap()`).
    ///
    /// Later accesses to the range fail with `EFAULT`.
    pub fn unmap(&self, offset: usize, len: usize) -> Result {
        self.slice(offset, len)?;
        // SAFETY: The range lies in a mapping of the current mm; unmapping it is always allowed.
        crate::error::to_result(unsafe { bindings::vm_munmap(self.addr + offset, len) })
    }
}

/// Applies `madvise(advice)` to `[addr, addr + len)` of `mm` (`do_madvise()`) from a kernel
/// thread without an mm, such as a workqueue worker: for tests whose helper threads act on the
/// test's memory. The thread uses `mm` for the call (`kthread_use_mm()`), as madvise expects.
pub fn madvise(mm: &MmWithUser, addr: usize, len: usize, advice: u32) -> Result {
    if current!().mm().is_some() {
        return Err(EINVAL);
    }
    // SAFETY: We are a kernel thread without an mm (checked above), and `mm` has a user by its
    // type, which keeps it alive until `kthread_unuse_mm()`.
    unsafe { bindings::kthread_use_mm(mm.as_raw()) };
    // SAFETY: `mm` is now our own; `do_madvise()` checks the range and takes the locks it needs.
    let ret = unsafe { bindings::do_madvise(mm.as_raw(), addr, len, advice as i32) };
    // SAFETY: Paired with the `kthread_use_mm()` above.
    unsafe { bindings::kthread_unuse_mm(mm.as_raw()) };
    crate::error::to_result(ret)
}

// SPDX-License-Identifier: GPL-2.0

//! KUnit tests for `make_device_exclusive()`, on user memory of the test thread.
//!
//! Assertions are made after a grant is dropped where possible: a failed assertion ends the
//! test thread at once, and a folio left locked would hang the next access to it.

#[macros::kunit_tests(rust_mm_device_exclusive)]
mod kunit {
    use crate::{
        bindings,
        kunit::user_mem::{
            current_mm,
            Kind,
            UserMem,
            PMD_SIZE, //
        },
        mm::mmu_notifier::{
            recorder::Recorder,
            Event,
            Owner, //
        },
        page::PAGE_SIZE,
        prelude::*,
    };

    const P: usize = PAGE_SIZE;
    static DEV_A: u8 = 0;
    static DEV_B: u8 = 0;

    fn owner_a() -> Owner {
        Owner::from_ptr(&DEV_A)
    }

    fn owner_b() -> Owner {
        Owner::from_ptr(&DEV_B)
    }

    /// Grants `addr` to `owner`, writes `value` at `offset` of the page through the kernel
    /// mapping as a device would, and returns the order of the folio.
    fn grant_and_write(addr: usize, owner: Owner, offset: usize, value: u64) -> Result<u32> {
        let mm = current_mm().ok_or(EINVAL)?;
        let lock = mm.mmap_read_lock();
        let grant = lock.make_device_exclusive(addr, owner)?;
        drop(lock);
        let bytes = value.to_ne_bytes();
        // SAFETY: The page is exclusive to us: the CPU cannot access it while the folio is
        // locked, and nothing else in this test touches it.
        unsafe {
            grant
                .page()
                .write_raw(bytes.as_ptr(), offset, bytes.len())?
        };
        grant.mark_dirty();
        let dirty = grant.is_dirty();
        let order = grant.order();
        drop(grant);
        assert!(dirty);
        Ok(order)
    }

    fn grant(addr: usize, owner: Owner) -> Result<u32> {
        let mm = current_mm().ok_or(EINVAL)?;
        let lock = mm.mmap_read_lock();
        let grant = lock.make_device_exclusive(addr, owner)?;
        let (order, page_addr) = (grant.order(), grant.addr());
        drop(grant);
        assert_eq!(page_addr, addr & !(P - 1));
        Ok(order)
    }

    #[test]
    fn cpu_access_revokes_and_data_survives() -> Result {
        let mem = UserMem::new(Kind::Anon, P)?;
        let mm = current_mm().ok_or(EINVAL)?;
        mem.write_u64(0, 0x1111)?;
        let n = Recorder::watch(&mm, mem.addr(), P)?;

        assert_eq!(grant_and_write(mem.addr(), owner_a(), 8, 0x2222)?, 0);
        let log = n.data().take();
        let last = log.last().ok_or(EINVAL)?;
        assert_eq!(last.event, Event::Exclusive);
        assert_eq!(last.owner, Some(owner_a()));
        assert_eq!((last.start, last.end), (mem.addr(), mem.addr() + P));

        // The CPU touches the page: the entry is restored and the notifier told, with no owner.
        mem.write_u64(16, 0x3333)?;
        let log = n.data().take();
        assert_eq!(log.n, 1);
        let call = log.first().ok_or(EINVAL)?;
        assert_eq!(call.event, Event::Clear);
        assert_eq!(call.owner, None);
        assert!(call.start <= mem.addr() && call.end >= mem.addr() + P);
        assert_eq!(mem.read_u64(0)?, 0x1111);
        assert_eq!(mem.read_u64(8)?, 0x2222);
        assert_eq!(mem.read_u64(16)?, 0x3333);
        // Once back with the CPU, further accesses cost nothing.
        mem.read_u64(0)?;
        assert_eq!(n.data().take().n, 0);
        Ok(())
    }

    #[test]
    fn second_owner_revokes_first() -> Result {
        let mem = UserMem::new(Kind::Anon, P)?;
        let mm = current_mm().ok_or(EINVAL)?;
        mem.write_u64(0, 5)?;
        let n = Recorder::watch(&mm, mem.addr(), P)?;
        grant(mem.addr(), owner_a())?;
        n.data().take();

        grant(mem.addr(), owner_b())?;
        let log = n.data().take();
        // First the fault that takes the page back from A, then B's own grant.
        assert!(log.n >= 2);
        let first = log.first().ok_or(EINVAL)?;
        assert_eq!(first.event, Event::Clear);
        assert_eq!(first.owner, None);
        let last = log.last().ok_or(EINVAL)?;
        assert_eq!(last.event, Event::Exclusive);
        assert_eq!(last.owner, Some(owner_b()));
        assert_eq!(mem.read_u64(0)?, 5);
        Ok(())
    }

    #[test]
    fn regrant_same_owner_after_release() -> Result {
        // Dropping the grant must unlock the folio: a second grant of the same page locks it again.
        let mem = UserMem::new(Kind::Anon, P)?;
        mem.write_u64(0, 9)?;
        for _ in 0..3 {
            grant(mem.addr(), owner_a())?;
        }
        assert_eq!(mem.read_u64(0)?, 9);
        Ok(())
    }

    #[test]
    fn unaligned_address_is_rounded_down() -> Result {
        let mem = UserMem::new(Kind::Anon, 2 * P)?;
        mem.write_u64(P, 1)?;
        assert_eq!(grant(mem.addr() + P + 123, owner_a())?, 0);
        Ok(())
    }

    #[test]
    fn shared_memory_is_eopnotsupp() -> Result {
        let mem = UserMem::new(Kind::Shared, P)?;
        mem.write_u64(0, 1)?;
        assert_eq!(grant(mem.addr(), owner_a()).err(), Some(EOPNOTSUPP));
        assert_eq!(mem.read_u64(0)?, 1);
        Ok(())
    }

    #[test]
    fn read_only_vma_is_efault() -> Result {
        let mem = UserMem::new(Kind::AnonReadOnly, P)?;
        assert_eq!(mem.read_u64(0)?, 0);
        assert_eq!(grant(mem.addr(), owner_a()).err(), Some(EFAULT));
        Ok(())
    }

    #[test]
    fn unmapped_address_is_efault() -> Result {
        let mem = UserMem::new(Kind::Anon, 2 * P)?;
        mem.unmap(P, P)?;
        assert_eq!(grant(mem.addr() + P, owner_a()).err(), Some(EFAULT));
        Ok(())
    }

    #[test]
    fn munmap_after_grant_fires_and_later_grant_fails() -> Result {
        let mem = UserMem::new(Kind::Anon, P)?;
        let mm = current_mm().ok_or(EINVAL)?;
        mem.write_u64(0, 1)?;
        let n = Recorder::watch(&mm, mem.addr(), P)?;
        grant(mem.addr(), owner_a())?;
        n.data().take();
        mem.unmap(0, P)?;
        assert!(n.data().take().any(|c| c.event == Event::Unmap));
        assert_eq!(grant(mem.addr(), owner_a()).err(), Some(EFAULT));
        Ok(())
    }

    #[test]
    fn dontneed_after_grant_fires_and_later_grant_works() -> Result {
        let mem = UserMem::new(Kind::Anon, P)?;
        let mm = current_mm().ok_or(EINVAL)?;
        mem.write_u64(0, 1)?;
        let n = Recorder::watch(&mm, mem.addr(), P)?;
        grant(mem.addr(), owner_a())?;
        n.data().take();
        mem.madvise(0, P, bindings::MADV_DONTNEED)?;
        let log = n.data().take();
        assert_eq!(log.n, 1);
        assert_eq!(log.first().map(|c| c.event), Some(Event::Clear));
        // The device-exclusive entry was zapped with the page; a new grant faults in a new one.
        assert_eq!(grant(mem.addr(), owner_a())?, 0);
        assert_eq!(mem.read_u64(0)?, 0);
        Ok(())
    }

    #[test]
    fn thp_subpage_grant_keeps_folio_large() -> Result {
        let mem = UserMem::new_thp()?;
        let mm = current_mm().ok_or(EINVAL)?;
        let base = mem.addr();
        for i in 0..PMD_SIZE / P {
            mem.write_u64(i * P, i as u64)?;
        }
        let n = Recorder::watch(&mm, base, PMD_SIZE)?;

        let order = grant_and_write(base + P, owner_a(), 8, 0xabcd)?;
        assert_eq!(order, 9);
        let log = n.data().take();
        // The PMD is split first (an invalidation of the whole huge page), then the one PTE is
        // made exclusive.
        let first = log.first().ok_or(EINVAL)?;
        assert_eq!((first.start, first.end), (base, base + PMD_SIZE));
        let last = log.last().ok_or(EINVAL)?;
        assert_eq!(last.event, Event::Exclusive);
        assert_eq!((last.start, last.end), (base + P, base + 2 * P));

        // Other subpages are still the CPU's: touching them fires nothing.
        assert_eq!(mem.read_u64(0)?, 0);
        assert_eq!(mem.read_u64(2 * P)?, 2);
        mem.write_u64(100 * P, 7)?;
        assert_eq!(n.data().take().n, 0);

        // A second subpage of the same folio, after the first grant was released (one folio
        // lock covers all 512 pages).
        assert_eq!(grant(base + 2 * P, owner_a())?, 9);
        assert_eq!(grant(base + 511 * P, owner_a())?, 9);

        // Each granted page comes back on CPU access, data intact.
        n.data().take();
        assert_eq!(mem.read_u64(P)?, 1);
        assert_eq!(mem.read_u64(P + 8)?, 0xabcd);
        assert!(n
            .data()
            .take()
            .any(|c| c.start <= base + P && c.end >= base + 2 * P));
        assert_eq!(mem.read_u64(511 * P)?, 511);
        Ok(())
    }
}

// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the SVM atomic-fault backend, with a test driver whose "device page table" is
//! a small list of `(address, pfn)` entries.

#[macros::kunit_tests(rust_drm_svm)]
mod kunit {
    use crate::{
        bindings,
        drm::svm::{
            Config,
            DriverSvm,
            FaultError,
            Faulted,
            NotifierMode,
            Refused,
            Residency,
            RevokeCause,
            SvmContext,
            Unmap, //
        },
        kunit::user_mem::{
            current_mm,
            madvise,
            Kind,
            UserMem,
            PMD_SIZE, //
        },
        mm::device_exclusive::DeviceExclusiveFolio,
        mm::mmu_notifier::{
            Event,
            InvalidateSeq,
            MmuIntervalNotifier,
            MmuIntervalNotifierOps,
            Owner,
            Range, //
        },
        page::PAGE_SIZE,
        prelude::*,
        sync::{
            atomic::{
                Atomic,
                Full,
                Relaxed,
                Release, //
            },
            Arc,
        },
        time::{
            delay::{
                fsleep,
                udelay, //
            },
            Delta, //
        },
        workqueue,
    };
    use core::cell::Cell;

    const P: usize = PAGE_SIZE;

    /// The test device's page table: `(addr, pfn)` of each atomic mapping.
    struct TestPt {
        entries: KVec<(usize, usize)>,
        unmaps: usize,
        /// How an unmap that must wait for the device behaves.
        flush: Flush,
        /// `(order, index)` of the last page mapped.
        last_folio: (u32, usize),
        /// The last page mapped.
        last_page: usize,
        /// Pages [`Unmap::pages`] listed, and how many of them the device did not map there
        /// (checked by the tests, since a panic here would be a kernel BUG).
        unmapped: usize,
        wrong_pages: usize,
        /// Revocations by cause, as a driver counts them from [`Unmap::cause`].
        revoked: [u64; RevokeCause::COUNT],
        /// What the faults of [`fault`] and [`prefetch`] did, added up as a driver counts it
        /// (outside the page table's own calls: [`SvmContext::with_page_table`] lends it
        /// shared).
        faulted: Cell<Faulted>,
    }

    /// What the test device's unmap does, beside removing its entries.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Flush {
        /// Nothing to wait for.
        None,
        /// A blockable unmap sleeps, like a wait for a TLB flush; a non-blockable one refuses
        /// when it has entries to remove, like drm_gpusvm.
        Wait,
    }

    impl TestPt {
        fn new(capacity: usize) -> Result<Self> {
            Ok(Self {
                entries: KVec::with_capacity(capacity, GFP_KERNEL)?,
                unmaps: 0,
                flush: Flush::None,
                last_folio: (0, 0),
                last_page: 0,
                unmapped: 0,
                wrong_pages: 0,
                revoked: [0; RevokeCause::COUNT],
                faulted: Cell::new(Faulted::default()),
            })
        }

        fn count(&self, done: Faulted) {
            let mut sum = self.faulted.get();
            sum += done;
            self.faulted.set(sum);
        }
    }

    /// Counts what a fault did in the test device's totals, also when it failed.
    fn counted(ctx: &SvmContext<TestPt>, ret: Result<Faulted, FaultError>) -> Result {
        let (done, ret) = Faulted::split(ret);
        ctx.with_page_table(|pt| pt.count(done));
        ret
    }

    /// `ctx.atomic_fault()`, counted.
    fn fault(ctx: &SvmContext<TestPt>, addr: usize, npages: usize) -> Result {
        counted(ctx, ctx.atomic_fault(addr, npages))
    }

    /// `ctx.prefetch()`, counted.
    fn prefetch(ctx: &SvmContext<TestPt>, addr: usize, npages: usize) -> Result {
        counted(ctx, ctx.prefetch(addr, npages))
    }

    /// What the faults of `ctx` did, added up.
    fn totals(ctx: &SvmContext<TestPt>) -> Faulted {
        ctx.with_page_table(|pt| pt.faulted.get())
    }

    /// Revocations of `cause` the test device counted.
    fn revoked_by(ctx: &SvmContext<TestPt>, cause: RevokeCause) -> u64 {
        ctx.with_page_table(|pt| pt.revoked[cause as usize])
    }

    /// Revocations the test device counted.
    fn revocations(ctx: &SvmContext<TestPt>) -> u64 {
        ctx.with_page_table(|pt| pt.revoked.iter().sum())
    }

    impl DriverSvm for TestPt {
        // The entries' capacity is reserved when the page table is made.
        type PteAlloc = ();

        fn alloc_pte() -> Result {
            Ok(())
        }

        fn map_atomic(&mut self, grant: &DeviceExclusiveFolio, _mem: &mut Option<()>) -> Result {
            self.last_folio = (grant.order(), grant.index());
            self.last_page = grant.page().as_ptr() as usize;
            self.entries
                .push_within_capacity((grant.addr(), grant.pfn()))
                .map_err(|_| ENOSPC)
        }

        fn unmap<'a>(&mut self, range: &Unmap<'a>) -> Result<(), Refused<'a>> {
            let (start, end) = (range.start(), range.end());
            // What the backend says goes is what the device maps there.
            let going = self
                .entries
                .iter()
                .filter(|&&(a, _)| a >= start && a < end)
                .count();
            let mut listed = 0;
            for (addr, page) in range.pages() {
                // SAFETY: `pages()` gives valid pages.
                let pfn = unsafe { bindings::page_to_pfn(page.as_ptr()) };
                if !self.entries.contains(&(addr, pfn)) {
                    self.wrong_pages += 1;
                }
                listed += 1;
            }
            self.unmapped += listed;
            self.wrong_pages += going.abs_diff(listed);
            if self.flush == Flush::Wait && going != 0 {
                if let Some(refused) = range.refuse() {
                    return Err(refused);
                }
                // Sleeps: a blockable invalidation may.
                fsleep(Delta::from_millis(1));
            }
            self.entries.retain(|&mut (a, _)| a < start || a >= end);
            self.unmaps += 1;
            if let Some(cause) = range.cause() {
                self.revoked[cause as usize] += 1;
            }
            Ok(())
        }
    }

    static DEV_A: u8 = 0;
    static DEV_B: u8 = 0;

    fn context(owner: &'static u8, mode: NotifierMode) -> Result<Pin<KBox<SvmContext<TestPt>>>> {
        context_with(owner, TestPt::new(PMD_SIZE / P)?, |c| c.notifiers = mode)
    }

    /// A context of `owner` on the current mm with the page table `pt`, configured by `set`.
    fn context_with(
        owner: &'static u8,
        pt: TestPt,
        set: impl FnOnce(&mut Config),
    ) -> Result<Pin<KBox<SvmContext<TestPt>>>> {
        let mm = current_mm().ok_or(EINVAL)?;
        let mut config = Config::new(Owner::from_ptr(owner));
        set(&mut config);
        KBox::pin_init(SvmContext::new(&mm, pt, config), GFP_KERNEL)
    }

    fn ctx(owner: &'static u8) -> Result<Pin<KBox<SvmContext<TestPt>>>> {
        context(owner, NotifierMode::LongLived)
    }

    fn mapped(ctx: &SvmContext<TestPt>, addr: usize) -> bool {
        ctx.with_atomic_page(addr, |pt, _| pt.entries.iter().any(|&(a, _)| a == addr))
            .unwrap_or(false)
    }

    /// A device atomic add of `v` on the `u64` at `addr`; `None` if the device would fault.
    ///
    /// Atomic only because the device holds the page: a read, a window, a write, like a device
    /// across a bus. Were a page granted to two devices at once, or to a device and the CPU,
    /// adds would be lost.
    fn device_add(ctx: &SvmContext<TestPt>, addr: usize, v: u64) -> Option<u64> {
        ctx.with_atomic_page(addr & !(P - 1), |_, page| {
            page.atomic::<u64>(addr % P).map(|a| {
                let old = a.load(Relaxed);
                udelay(Delta::from_micros(2));
                a.store(old + v, Relaxed);
                old
            })
        })
        .and_then(|r| r.ok())
    }

    /// Fault and add, retrying the way a device would when the grant is lost meanwhile.
    fn device_add_faulting(ctx: &SvmContext<TestPt>, addr: usize, v: u64) -> Result<u64> {
        for _ in 0..100 {
            if let Some(old) = device_add(ctx, addr, v) {
                return Ok(old);
            }
            fault(ctx, addr & !(P - 1), 1)?;
        }
        Err(EBUSY)
    }

    #[test]
    fn single_grant_and_cpu_revoke() -> Result {
        let mem = UserMem::new(Kind::Anon, P)?;
        mem.write_u64(0, 10)?;
        let ctx = ctx(&DEV_A)?;
        assert_eq!(device_add(&ctx, mem.addr(), 1), None);
        fault(&ctx, mem.addr(), 1)?;
        assert!(mapped(&ctx, mem.addr()));
        assert_eq!(device_add(&ctx, mem.addr(), 5), Some(10));

        let s = totals(&ctx);
        assert_eq!(s.granted, 1);
        // The grant's own EXCLUSIVE event was ignored by the owner check: no retry, and nothing
        // revoked.
        assert_eq!(s.retries, 0);
        assert_eq!(s.notifiers_inserted, 1);
        assert_eq!(revocations(&ctx), 0);

        // The CPU takes the page back: the device PTE is gone, the data is the device's.
        assert_eq!(mem.read_u64(0)?, 15);
        assert!(!ctx.is_granted(mem.addr()));
        assert!(!mapped(&ctx, mem.addr()));
        // The driver was told why, and which page went.
        assert_eq!(revoked_by(&ctx, RevokeCause::CpuFault), 1);
        assert_eq!(
            ctx.with_page_table(|pt| (pt.unmapped, pt.wrong_pages)),
            (1, 0)
        );
        Ok(())
    }

    #[test]
    fn fault_on_held_page_is_a_no_op() -> Result {
        let mem = UserMem::new(Kind::Anon, P)?;
        mem.write_u64(0, 1)?;
        let ctx = ctx(&DEV_A)?;
        fault(&ctx, mem.addr(), 1)?;
        fault(&ctx, mem.addr(), 1)?;
        let s = totals(&ctx);
        assert_eq!(s.granted, 1);
        assert_eq!(s.already_mapped, 1);
        assert_eq!(
            ctx.with_atomic_page(mem.addr(), |pt, _| pt.entries.len()),
            Some(1)
        );
        Ok(())
    }

    #[test]
    fn bad_arguments_are_einval() -> Result {
        let mem = UserMem::new(Kind::Anon, P)?;
        let ctx = ctx(&DEV_A)?;
        assert_eq!(fault(&ctx, mem.addr() + 8, 1), Err(EINVAL));
        assert_eq!(fault(&ctx, mem.addr(), 0), Err(EINVAL));
        assert_eq!(fault(&ctx, mem.addr(), usize::MAX / P), Err(EINVAL));
        assert_eq!(fault(&ctx, usize::MAX - P + 1, 2), Err(EINVAL));
        // The last page of the address space is a valid range, at which no VMA can be.
        assert_eq!(fault(&ctx, usize::MAX - P + 1, 1), Err(EFAULT));
        assert_eq!(ctx.chunk_count(), 0);
        Ok(())
    }

    #[test]
    fn mm_errors_pass_through() -> Result {
        let shared = UserMem::new(Kind::Shared, P)?;
        let ro = UserMem::new(Kind::AnonReadOnly, P)?;
        let ctx = ctx(&DEV_A)?;
        assert_eq!(fault(&ctx, shared.addr(), 1), Err(EOPNOTSUPP));
        assert_eq!(fault(&ctx, ro.addr(), 1), Err(EFAULT));
        assert_eq!(ctx.granted_pages(), 0);
        Ok(())
    }

    #[test]
    fn two_devices_alternate_on_one_page() -> Result {
        let mem = UserMem::new(Kind::Anon, P)?;
        mem.write_u64(0, 0)?;
        let a = ctx(&DEV_A)?;
        let b = ctx(&DEV_B)?;
        for _ in 0..20 {
            device_add_faulting(&a, mem.addr(), 1)?;
            device_add_faulting(&b, mem.addr(), 2)?;
            // Each device's grant revoked the other's.
            assert!(!a.is_granted(mem.addr()));
        }
        assert_eq!(mem.read_u64(0)?, 60);
        let (sa, sb) = (totals(&a), totals(&b));
        assert_eq!(sa.granted, 20);
        assert_eq!(sb.granted, 20);
        // Each takeover faulted the page back from the other device inside the grant.
        assert!(revoked_by(&a, RevokeCause::OtherDevice) >= 20);
        // Those invalidations, and the own events, never made a device retry.
        assert_eq!(sa.retries + sb.retries, 0);
        // Without a residency policy nobody waits.
        assert_eq!(sa.residency_waits + sb.residency_waits, 0);
        Ok(())
    }

    /// A context of `owner` that shares `residency`.
    fn sharing(
        owner: &'static u8,
        residency: &Arc<Residency>,
    ) -> Result<Pin<KBox<SvmContext<TestPt>>>> {
        context_with(owner, TestPt::new(PMD_SIZE / P)?, |c| {
            c.residency = Some(residency.clone())
        })
    }

    #[test]
    fn residency_makes_the_contender_back_off() -> Result {
        let mem = UserMem::new(Kind::Anon, P)?;
        mem.write_u64(0, 0)?;
        // Long enough that the other device always faults inside the slice, even on a slow guest.
        let residency = Residency::new(Delta::from_millis(20))?;
        let a = sharing(&DEV_A, &residency)?;
        let b = sharing(&DEV_B, &residency)?;
        for _ in 0..5 {
            device_add_faulting(&a, mem.addr(), 1)?;
            device_add_faulting(&b, mem.addr(), 1)?;
        }
        assert_eq!(mem.read_u64(0)?, 10);
        // Each takeover came right after the other device's grant, inside its slice.
        assert!(totals(&b).residency_waits >= 5);
        assert!(totals(&a).residency_waits >= 4);
        // A page the CPU took back carries no residency: the next grant does not wait.
        let waits = totals(&a).residency_waits;
        device_add_faulting(&a, mem.addr(), 1)?;
        assert_eq!(totals(&a).residency_waits, waits);
        assert_eq!(mem.read_u64(0)?, 11);
        let waits = totals(&b).residency_waits;
        device_add_faulting(&b, mem.addr(), 1)?;
        assert_eq!(totals(&b).residency_waits, waits);
        assert_eq!(mem.read_u64(0)?, 12);
        Ok(())
    }

    /// A context of `owner` whose fault-around grants up to `around` pages ahead, sharing
    /// `residency`.
    fn around_ctx(
        owner: &'static u8,
        around: usize,
        residency: Option<&Arc<Residency>>,
    ) -> Result<Pin<KBox<SvmContext<TestPt>>>> {
        context_with(owner, TestPt::new(PMD_SIZE / P)?, |c| {
            c.fault_around = around;
            c.residency = residency.cloned();
        })
    }

    /// Pages of `[first, end)` (page numbers from `base`) the context holds.
    fn held(ctx: &SvmContext<TestPt>, base: usize, first: usize, end: usize) -> usize {
        (first..end)
            .filter(|&i| ctx.is_granted(base + i * P))
            .count()
    }

    #[test]
    fn fault_around_follows_a_stream() -> Result {
        let mem = UserMem::new_thp()?;
        let (base, n) = (mem.addr(), PMD_SIZE / P);
        let ctx = around_ctx(&DEV_A, 64, None)?;
        let ahead = || totals(&ctx).ahead;
        // A fault of several pages starts a stream: as many again ahead.
        fault(&ctx, base, 4)?;
        assert_eq!((ctx.granted_pages(), ahead()), (8, 4));
        // The next one starts where its grants ended: four times the window ahead.
        fault(&ctx, base + 8 * P, 4)?;
        assert_eq!((ctx.granted_pages(), ahead()), (28, 20));
        // And again, up to the most the context allows.
        fault(&ctx, base + 28 * P, 4)?;
        assert_eq!((ctx.granted_pages(), ahead()), (96, 84));
        assert_eq!(held(&ctx, base, 0, n), 96);
        // A fault that was in flight for a page granted ahead finds it held: the stream goes
        // on.
        fault(&ctx, base + 50 * P, 1)?;
        assert_eq!((held(&ctx, base, 0, n), ahead()), (96, 84));
        fault(&ctx, base + 96 * P, 4)?;
        assert_eq!((held(&ctx, base, 0, n), ahead()), (164, 148));
        // The CPU takes a page granted ahead before the device reached it: the fault there
        // ends the stream and grants nothing ahead, though it is of two pages.
        mem.write_u64(150 * P, 1)?;
        fault(&ctx, base + 150 * P, 2)?;
        assert_eq!((held(&ctx, base, 0, n), ahead()), (164, 148));
        // Random single-page faults grant only their page.
        fault(&ctx, base + 300 * P, 1)?;
        fault(&ctx, base + 200 * P, 1)?;
        assert_eq!((held(&ctx, base, 0, n), ahead()), (166, 148));
        // After thrashing, a fault of several pages starts no stream...
        fault(&ctx, base + (n - 8) * P, 2)?;
        assert_eq!((held(&ctx, base, 0, n), ahead()), (168, 148));
        // ...one that continues the last one does, and stops at the end of its chunk.
        fault(&ctx, base + (n - 6) * P, 2)?;
        assert_eq!((held(&ctx, base, 0, n), ahead()), (174, 152));
        // A prefetch grants exactly what it asks for.
        prefetch(&ctx, base + 400 * P, 4)?;
        assert_eq!((held(&ctx, base, 0, n), ahead()), (178, 152));
        // Without fault-around, the same stream grants what it asks for.
        let plain = around_ctx(&DEV_B, 0, None)?;
        for i in 0..3 {
            fault(&plain, base + i * 4 * P, 4)?;
        }
        assert_eq!(held(&plain, base, 0, n), 12);
        assert_eq!(totals(&plain).ahead, 0);
        Ok(())
    }

    #[test]
    fn fault_around_counts_only_pages_asked_for() -> Result {
        let mem = UserMem::new_thp()?;
        let base = mem.addr();
        let ctx = around_ctx(&DEV_A, 64, None)?;
        let already = || totals(&ctx).already_mapped;
        fault(&ctx, base + 11 * P, 1)?;
        // A single-page fault grants nothing ahead: the page after it, held already, is not
        // one it asked for.
        fault(&ctx, base + 10 * P, 1)?;
        assert_eq!((ctx.granted_pages(), already()), (2, 0));
        fault(&ctx, base + 11 * P, 1)?;
        assert_eq!((ctx.granted_pages(), already()), (2, 1));
        Ok(())
    }

    #[test]
    fn fault_around_takes_nothing_from_a_turn() -> Result {
        let mem = UserMem::new_thp()?;
        let base = mem.addr();
        let residency = Residency::new(Delta::from_millis(100))?;
        let a = sharing(&DEV_A, &residency)?;
        let b = around_ctx(&DEV_B, 64, Some(&residency))?;
        fault(&b, base, 8)?;
        assert_eq!(b.granted_pages(), 16);
        // A waits for B's turn, then its own turn on the chunk begins.
        fault(&a, base + 100 * P, 1)?;
        // B asks again for pages it holds (no wait): the pages ahead are in A's turn, and
        // fault-around does not take them.
        fault(&b, base, 16)?;
        assert_eq!(b.granted_pages(), 16);
        assert!(a.is_granted(base + 100 * P));
        Ok(())
    }

    #[test]
    fn residency_covers_the_chunk() -> Result {
        let mem = UserMem::new_thp()?;
        let base = mem.addr();
        // Long enough that each step below runs inside the slice before it, on a slow guest.
        let residency = Residency::new(Delta::from_millis(100))?;
        let a = sharing(&DEV_A, &residency)?;
        let b = sharing(&DEV_B, &residency)?;
        fault(&a, base, 1)?;
        // Another page of the chunk: B waits for A's slice on the chunk, and A keeps its page.
        fault(&b, base + 5 * P, 1)?;
        assert_eq!(totals(&b).residency_waits, 1);
        assert!(a.is_granted(base) && b.is_granted(base + 5 * P));
        // B's slice now: more of the chunk without waiting.
        fault(&b, base + 8 * P, 1)?;
        assert_eq!(totals(&b).residency_waits, 1);
        // The CPU takes one of B's pages; B keeps the chunk, and A waits for its slice.
        mem.write_u64(5 * P, 1)?;
        fault(&a, base + 6 * P, 1)?;
        assert_eq!(totals(&a).residency_waits, 1);
        // The CPU takes A's last pages of the chunk: A's slice is over, B does not wait.
        mem.write_u64(0, 1)?;
        mem.write_u64(6 * P, 1)?;
        fault(&b, base + 9 * P, 1)?;
        assert_eq!(totals(&b).residency_waits, 1);
        Ok(())
    }

    #[test]
    fn an_invalidation_while_waiting_for_a_turn_is_no_collision() -> Result {
        let mem = UserMem::new_thp()?;
        let (base, x) = (mem.addr(), mem.addr() + 10 * P);
        let residency = Residency::new(Delta::from_millis(300))?;
        // The holder keeps its turn on the chunk with a second page.
        let holder = sharing(&DEV_B, &residency)?;
        fault(&holder, x, 1)?;
        fault(&holder, base + 20 * P, 1)?;
        let mm = current_mm().ok_or(EINVAL)?;
        let mut config = Config::new(Owner::from_ptr(&DEV_A));
        config.residency = Some(residency.clone());
        let ctx = Arc::pin_init(SvmContext::new(&mm, TestPt::new(16)?, config), GFP_KERNEL)?;
        let held = gate(x, Event::Exclusive, Some(&DEV_A))?;
        let worker = fault_on_worker(&ctx, x, 1)?;
        // Once the fault has named the page, before its wait for the turn ends, the CPU takes
        // the page from the holder.
        assert!(poll(Delta::from_secs(10), || {
            ctx.shared.state.lock().granting == Some(x)
        }));
        mem.write_u64(10 * P, 1)?;
        // After the fault's `read_begin()`, an invalidation of another page: no collision.
        assert!(held.data().wait_entered(1, &Atomic::new(false)));
        mem.madvise(11 * P, P, bindings::MADV_DONTNEED)?;
        held.data().open();
        held.data().release();
        assert_eq!(worker.wait(), Some(Ok(())));
        assert!(ctx.is_granted(x));
        assert_eq!(totals(&ctx).retries, 0);
        assert_eq!(totals(&ctx).residency_waits, 1);
        Ok(())
    }

    #[test]
    fn residency_hands_the_page_over_in_turn() -> Result {
        // Long enough that a slow guest asks within a slice, and within three after a sleep.
        let slice = Delta::from_millis(250);
        let over = Delta::from_millis(300);
        let r = Residency::new(slice)?;
        let (mm, page, a, b, c) = (0x1000, 7, 1, 2, 3);
        r.record(mm, page, a, false);
        assert_eq!(r.remaining(mm, page, a), None);
        // B comes first, then C: both wait for A's slice.
        assert!(r.remaining(mm, page, b).is_some());
        assert!(r.remaining(mm, page, c).is_some());
        fsleep(over);
        // The slice is over: B, who came first, takes the page; C waits on.
        assert!(r.remaining(mm, page, c).is_some());
        assert_eq!(r.remaining(mm, page, b), None);
        r.record(mm, page, b, false);
        // A, who lost the page, waits behind C.
        assert!(r.remaining(mm, page, a).is_some());
        fsleep(over);
        assert!(r.remaining(mm, page, a).is_some());
        assert_eq!(r.remaining(mm, page, c), None);
        r.record(mm, page, c, false);
        fsleep(over);
        assert_eq!(r.remaining(mm, page, a), None);
        // A page a device lost to the CPU has no holder: whoever asks first goes.
        r.record(mm, page, a, false);
        r.forget(mm, page, a);
        assert_eq!(r.remaining(mm, page, b), None);
        // A waiter three slices late to ask again loses its place.
        r.record(mm, page, b, false);
        assert!(r.remaining(mm, page, c).is_some());
        fsleep(slice * 5);
        assert_eq!(r.remaining(mm, page, a), None);
        Ok(())
    }

    #[test]
    fn a_turn_that_cost_long_lasts_longer() -> Result {
        let (mm, chunk, a, b) = (0x1000, 3, 1, 2);
        // A grants in the chunk for 40 ms or more, each grant inside the slice of the one
        // before (50 ms): one turn, which lasts three times that after its last grant.
        let min = Delta::from_millis(50);
        let r = Residency::new(min)?;
        for _ in 0..8 {
            r.record(mm, chunk, a, false);
            fsleep(Delta::from_millis(5));
        }
        r.record(mm, chunk, a, false);
        assert!(r.remaining(mm, chunk, b).is_some_and(|left| left > min));
        // However long the device grants, a turn lasts at most eight slices.
        let min = Delta::from_millis(5);
        let r = Residency::new(min)?;
        for _ in 0..60 {
            r.record(mm, chunk, a, false);
            fsleep(Delta::from_millis(1));
        }
        r.record(mm, chunk, a, false);
        assert!(r
            .remaining(mm, chunk, b)
            .is_some_and(|left| left <= min * 8));
        Ok(())
    }

    #[test]
    fn a_turn_ends_though_its_device_keeps_granting() -> Result {
        let (mm, chunk, a, b) = (0x1000, 4, 1, 2);
        let r = Residency::new(Delta::from_millis(5))?;
        r.record(mm, chunk, a, false);
        assert!(r.remaining(mm, chunk, b).is_some());
        // A keeps granting in its turn (as when the CPU keeps taking its pages back) while B
        // waits: B gets the chunk once the turn has lasted its most, 80 ms.
        let mut b_went = false;
        for _ in 0..200 {
            fsleep(Delta::from_millis(1));
            if r.remaining(mm, chunk, a).is_none() {
                r.record(mm, chunk, a, false);
            }
            if r.remaining(mm, chunk, b).is_none() {
                b_went = true;
                break;
            }
        }
        assert!(b_went);
        // A's turn is over and B waits: A queues behind it.
        assert!(r.remaining(mm, chunk, a).is_some());
        Ok(())
    }

    #[test]
    fn batch_over_a_thp() -> Result {
        let mem = UserMem::new_thp()?;
        let n = PMD_SIZE / P;
        for i in 0..n {
            mem.write_u64(i * P, i as u64)?;
        }
        let ctx = ctx(&DEV_A)?;
        // One call over all 512 pages of one folio: each page's folio lock is released before
        // the next page is taken, or this would deadlock on itself.
        fault(&ctx, mem.addr(), n)?;
        assert_eq!(ctx.granted_pages(), n);
        assert_eq!(totals(&ctx).granted, n);
        assert_eq!(ctx.chunk_count(), 1);
        for i in (0..n).step_by(37) {
            assert_eq!(device_add(&ctx, mem.addr() + i * P, 1000), Some(i as u64));
        }
        assert_eq!(mem.read_u64(37 * P)?, 1037);
        assert_eq!(ctx.granted_pages(), n - 1);
        // The CPU's read of page 37 took it back.
        assert_eq!(revoked_by(&ctx, RevokeCause::CpuFault), 1);
        // All of them at once, from `revoke_all()`, which is the driver's, not a cause.
        ctx.revoke_all();
        assert_eq!(
            ctx.with_page_table(|pt| (pt.unmapped, pt.wrong_pages)),
            (n, 0)
        );
        assert_eq!(revocations(&ctx), 1);
        Ok(())
    }

    /// Checks `done` every 100 us until it is true (then true) or about `limit` has passed
    /// (then false).
    fn poll(limit: Delta, mut done: impl FnMut() -> bool) -> bool {
        let step = Delta::from_micros(100);
        for _ in 0..limit.as_micros_ceil() / step.as_micros_ceil() {
            if done() {
                return true;
            }
            fsleep(step);
        }
        done()
    }

    /// A second notifier that holds chosen invalidations open: its callback waits until the
    /// test releases it, when every notifier called before it (those starting at lower
    /// addresses, such as the context's chunk) has run but the page tables have not changed.
    struct Gate {
        event: Event,
        owner: Option<Owner>,
        armed: Atomic<bool>,
        entered: Atomic<usize>,
        released: Atomic<usize>,
    }

    impl MmuIntervalNotifierOps for Gate {
        fn invalidate(
            n: &MmuIntervalNotifier<Self>,
            range: &Range,
            seq: InvalidateSeq<'_>,
        ) -> bool {
            let g = n.data();
            // The gate has no read sections, but keeps to the rule.
            seq.set();
            if !range.is_blockable()
                || !g.armed.load(Relaxed)
                || range.event() != g.event
                || (g.owner.is_some() && range.owner() != g.owner)
            {
                return true;
            }
            let me = g.entered.fetch_add(1, Full) + 1;
            // Bounded, so that a test that fails while holding the gate closed cannot hang the
            // whole run.
            poll(Delta::from_secs(10), || {
                !g.armed.load(Relaxed) || g.released.load(Relaxed) >= me
            });
            true
        }
    }

    impl Gate {
        /// Waits until `n` invalidations have entered the gate, or `stop` is set; false after
        /// 5 s without either.
        fn wait_entered(&self, n: usize, stop: &Atomic<bool>) -> bool {
            poll(Delta::from_secs(5), || {
                self.entered.load(Relaxed) >= n || stop.load(Relaxed)
            })
        }

        /// Lets the oldest invalidation waiting in the gate go on.
        fn release(&self) {
            self.released.fetch_add(1, Full);
        }

        /// Lets everything through from now on.
        fn open(&self) {
            self.armed.store(false, Relaxed);
        }
    }

    fn gate(
        addr: usize,
        event: Event,
        owner: Option<&'static u8>,
    ) -> Result<Arc<MmuIntervalNotifier<Gate>>> {
        let mm = current_mm().ok_or(EINVAL)?;
        let gate = Gate {
            event,
            owner: owner.map(|o| Owner::from_ptr(o)),
            armed: Atomic::new(true),
            entered: Atomic::new(0),
            released: Atomic::new(0),
        };
        Arc::pin_init(
            MmuIntervalNotifier::new(&mm, addr, P, Ok::<_, Error>(gate)),
            GFP_KERNEL,
        )
    }

    /// Two pages in one notifier chunk, the second not at the chunk's start (so the chunk's
    /// callback runs before a gate on it): the memory and the offset of the first page.
    fn two_pages() -> Result<(UserMem, usize)> {
        let mem = UserMem::new(Kind::Anon, 4 * P)?;
        let off = if (mem.addr() + P) % PMD_SIZE == 0 {
            P
        } else {
            0
        };
        mem.write_u64(off, 1)?;
        mem.write_u64(off + P, 2)?;
        Ok((mem, off))
    }

    fn shared_ctx(owner: &'static u8, timeout: Delta) -> Result<Arc<SvmContext<TestPt>>> {
        shared_ctx_in(owner, timeout, NotifierMode::LongLived)
    }

    fn shared_ctx_in(
        owner: &'static u8,
        timeout: Delta,
        mode: NotifierMode,
    ) -> Result<Arc<SvmContext<TestPt>>> {
        let mm = current_mm().ok_or(EINVAL)?;
        let pt = TestPt::new(16)?;
        let mut config = Config::new(Owner::from_ptr(owner));
        config.timeout = timeout;
        config.notifiers = mode;
        Arc::pin_init(SvmContext::new(&mm, pt, config), GFP_KERNEL)
    }

    /// The outcome of a fault run by a worker: `None` while it runs.
    struct Job(Atomic<i32>, Atomic<bool>);

    impl Job {
        fn new() -> Result<Arc<Self>> {
            Ok(Arc::new(
                Job(Atomic::new(0), Atomic::new(false)),
                GFP_KERNEL,
            )?)
        }

        fn finish(&self, r: Result) {
            self.0.store(r.err().map_or(0, |e| e.to_errno()), Relaxed);
            self.1.store(true, Release);
        }

        /// Waits up to about 10 s for the worker.
        fn wait(&self) -> Option<Result> {
            if !poll(Delta::from_secs(10), || self.1.load(Relaxed)) {
                return None;
            }
            Some(match self.0.load(Relaxed) {
                0 => Ok(()),
                e => Err(Error::from_errno(e)),
            })
        }
    }

    /// `ctx.atomic_fault(addr, n)` on a worker.
    fn fault_on_worker(ctx: &Arc<SvmContext<TestPt>>, addr: usize, n: usize) -> Result<Arc<Job>> {
        let (job, ctx) = (Job::new()?, ctx.clone());
        let j = job.clone();
        workqueue::system_long().try_spawn(GFP_KERNEL, move || j.finish(fault(&ctx, addr, n)))?;
        Ok(job)
    }

    /// `ctx.atomic_fault(addr, n)` on a worker, held inside the grant of page `held` (at its
    /// own `MMU_NOTIFY_EXCLUSIVE`) by the returned gate; `ETIMEDOUT` if it never got there.
    fn fault_held_at(
        ctx: &Arc<SvmContext<TestPt>>,
        addr: usize,
        n: usize,
        held: usize,
    ) -> Result<(Arc<MmuIntervalNotifier<Gate>>, Arc<Job>)> {
        let held = gate(held, Event::Exclusive, Some(&DEV_A))?;
        let worker = fault_on_worker(ctx, addr, n)?;
        if !held.data().wait_entered(1, &Atomic::new(false)) {
            return Err(ETIMEDOUT);
        }
        Ok((held, worker))
    }

    #[test]
    fn grant_waits_for_a_neighbour_zap_in_progress() -> Result {
        let (mem, off) = two_pages()?;
        let (a0, a1) = (mem.addr() + off, mem.addr() + off + P);
        let ctx = shared_ctx(&DEV_A, Config::DEFAULT_TIMEOUT)?;
        let gate1 = gate(a1, Event::Clear, None)?;
        let never = Atomic::new(false);
        // The context grants page 0 and then page 1; hold it inside the grant of page 0.
        let (gate0, worker) = fault_held_at(&ctx, a0, 2, a0)?;
        // Meanwhile another thread zaps page 1: the chunk's callback runs (page 1 is not
        // granted, nor being granted), then the zap is held open before the PTE goes.
        let zap = Job::new()?;
        let (z, mm) = (zap.clone(), current_mm().ok_or(EINVAL)?);
        workqueue::system_long().try_spawn(GFP_KERNEL, move || {
            z.finish(madvise(&mm, a1, P, bindings::MADV_DONTNEED))
        })?;
        assert!(gate1.data().wait_entered(1, &never));
        // The context moves on to page 1. Its PTE is still there; if the grant did not wait
        // for the zap, it would be made now and the zap would then take the page away from
        // under the device with no further callback.
        gate0.data().release();
        // Page 0's grant is committed, then the same batch goes on to page 1 at once.
        assert!(poll(Delta::from_secs(5), || ctx.is_granted(a0)));
        let slipped = poll(Delta::from_millis(200), || ctx.is_granted(a1));
        gate1.data().release();
        gate0.data().open();
        gate1.data().open();
        assert_eq!(zap.wait(), Some(Ok(())));
        assert_eq!(worker.wait(), Some(Ok(())));
        // What the device holds must be what the CPU maps: the zero page the zap left
        // behind. A grant that slipped in holds the zapped page, freed (with
        // `debug_pagealloc` a write to it faults; page poisoning reports one when the page is
        // next allocated), and the device's add is lost to the CPU.
        assert!(ctx.is_granted(a1));
        assert_eq!(device_add(&ctx, a1, 5), Some(0));
        assert_eq!(mem.read_u64(off + P)?, 5);
        assert_eq!(mem.read_u64(off)?, 1);
        assert!(!slipped);
        Ok(())
    }

    /// Faults `n` pages from `a0` (notifiers in `mode`) and holds the context inside the grant
    /// of `held` while the test thread zaps `zap_at`, then lets it go on; returns the fault's
    /// retries.
    fn zap_during_grant(
        mode: NotifierMode,
        mem: &UserMem,
        a0: usize,
        n: usize,
        held: usize,
        zap_at: usize,
    ) -> Result<usize> {
        let ctx = shared_ctx_in(&DEV_A, Config::DEFAULT_TIMEOUT, mode)?;
        let (gate0, worker) = fault_held_at(&ctx, a0, n, held)?;
        mem.madvise(zap_at - mem.addr(), P, bindings::MADV_DONTNEED)?;
        gate0.data().open();
        gate0.data().release();
        assert_eq!(worker.wait(), Some(Ok(())));
        for i in 0..n {
            assert!(ctx.is_granted(a0 + i * P));
        }
        Ok(totals(&ctx).retries)
    }

    #[test]
    fn collision_causes_exactly_one_retry() -> Result {
        let (mem, off) = two_pages()?;
        let a0 = mem.addr() + off;
        // The page being granted is zapped during the grant: it must be made again, on the
        // page that replaced the zapped one.
        assert_eq!(
            zap_during_grant(NotifierMode::LongLived, &mem, a0, 1, a0, a0)?,
            1
        );
        assert_eq!(mem.read_u64(off)?, 0);
        Ok(())
    }

    /// The second page of a batch, looked at by the first page's commit, is zapped during its
    /// grant: that must be seen as a collision too.
    fn collision_in_a_batch(mode: NotifierMode) -> Result {
        let (mem, off) = two_pages()?;
        let (a0, a1) = (mem.addr() + off, mem.addr() + off + P);
        assert_eq!(zap_during_grant(mode, &mem, a0, 2, a1, a1)?, 1);
        assert_eq!(mem.read_u64(off + P)?, 0);
        assert_eq!(mem.read_u64(off)?, 1);
        Ok(())
    }

    #[test]
    fn collision_in_a_batch_causes_exactly_one_retry() -> Result {
        collision_in_a_batch(NotifierMode::LongLived)
    }

    #[test]
    fn per_fault_collision_in_a_batch_causes_exactly_one_retry() -> Result {
        // With nouveau's per-fault notifiers, the page looked at ahead is validated against a
        // notifier inserted after it was looked at.
        collision_in_a_batch(NotifierMode::PerFault)
    }

    #[test]
    fn neighbour_invalidation_causes_no_retry() -> Result {
        let (mem, off) = two_pages()?;
        let a0 = mem.addr() + off;
        // Same notifier chunk, different page: the invalidation publishes its sequence, but
        // the grant in progress is not affected, and does not retry.
        assert_eq!(
            zap_during_grant(NotifierMode::LongLived, &mem, a0, 1, a0, a0 + P)?,
            0
        );
        assert_eq!(mem.read_u64(off + P)?, 0);
        assert_eq!(mem.read_u64(off)?, 1);
        Ok(())
    }

    #[test]
    fn deadline_expiry_is_ebusy() -> Result {
        let (mem, off) = two_pages()?;
        let a0 = mem.addr() + off;
        let ctx = shared_ctx(&DEV_A, Delta::from_millis(20))?;
        let gate0 = gate(a0, Event::Exclusive, Some(&DEV_A))?;
        let worker = fault_on_worker(&ctx, a0, 1)?;
        // Zap the page during every attempt. A zap makes `make_device_exclusive()` retry
        // inside itself, which enters the gate again: let that one through untouched.
        let mut n = 1;
        while gate0.data().wait_entered(n, &worker.1) && !worker.1.load(Relaxed) {
            if n % 2 == 1 {
                mem.madvise(off, P, bindings::MADV_DONTNEED)?;
            }
            gate0.data().release();
            n += 1;
        }
        gate0.data().open();
        assert_eq!(worker.wait(), Some(Err(EBUSY)));
        assert!(totals(&ctx).retries >= 1);
        assert!(!ctx.is_granted(a0));
        // No folio was left locked: the CPU can use the page.
        mem.write_u64(off, 5)?;
        assert_eq!(mem.read_u64(off)?, 5);
        Ok(())
    }

    #[test]
    fn munmap_and_dontneed_revoke() -> Result {
        let mem = UserMem::new(Kind::Anon, 2 * P)?;
        mem.write_u64(0, 1)?;
        mem.write_u64(P, 1)?;
        let ctx = ctx(&DEV_A)?;
        fault(&ctx, mem.addr(), 2)?;
        mem.madvise(0, P, bindings::MADV_DONTNEED)?;
        assert!(!ctx.is_granted(mem.addr()));
        assert!(ctx.is_granted(mem.addr() + P));
        mem.unmap(P, P)?;
        assert_eq!(ctx.granted_pages(), 0);
        assert_eq!(revoked_by(&ctx, RevokeCause::CpuFault), 1);
        assert_eq!(revoked_by(&ctx, RevokeCause::Unmap), 1);
        assert_eq!(
            ctx.with_page_table(|pt| (pt.unmapped, pt.wrong_pages)),
            (2, 0)
        );
        assert_eq!(fault(&ctx, mem.addr() + P, 1), Err(EFAULT));
        // A fault that fails after granting says what it granted.
        let failed = ctx.atomic_fault(mem.addr(), 2).err().ok_or(EINVAL)?;
        assert_eq!((failed.error, failed.done.granted), (EFAULT, 1));
        assert!(ctx.is_granted(mem.addr()));
        Ok(())
    }

    #[test]
    fn per_fault_mode_and_trim() -> Result {
        let mem = UserMem::new(Kind::Anon, 4 * P)?;
        for i in 0..4 {
            mem.write_u64(i * P, i as u64)?;
        }
        let ctx = context(&DEV_A, NotifierMode::PerFault)?;
        fault(&ctx, mem.addr(), 4)?;
        assert_eq!(ctx.granted_pages(), 4);
        assert_eq!(device_add(&ctx, mem.addr() + 2 * P, 1), Some(2));
        assert_eq!(mem.read_u64(2 * P)?, 3);
        // A chunk with grants is kept; once empty it can be trimmed.
        assert_eq!(ctx.chunk_count(), 1);
        ctx.trim();
        assert_eq!(ctx.chunk_count(), 1);
        ctx.revoke_all();
        // A failed fault leaves a chunk that had grants to the trimming (the grants were
        // recorded in the chunk, not in the per-fault notifier).
        {
            let _blocked = ctx.block();
            assert_eq!(fault(&ctx, mem.addr(), 1), Err(ECANCELED));
        }
        assert_eq!(ctx.chunk_count(), 1);
        ctx.trim();
        assert_eq!(ctx.chunk_count(), 0);
        // Pages come back to the CPU with the device's writes.
        assert_eq!(mem.read_u64(3 * P)?, 3);
        Ok(())
    }

    /// Sets the disposition of SIGKILL for this test kthread (1 = ignore, 2 = deliver).
    fn sigkill_action(action: usize) {
        // SAFETY: `SIG_IGN` and `SIG_KTHREAD` are the small integers the C API uses as special
        // handlers; they are stored, never called.
        let handler = unsafe { core::mem::transmute::<usize, bindings::__sighandler_t>(action) };
        // SAFETY: Changing our own kthread's disposition is what `allow_signal()` does.
        unsafe { bindings::kernel_sigaction(bindings::SIGKILL as i32, handler) };
    }

    #[test]
    fn fatal_signal_is_eintr() -> Result {
        let mem = UserMem::new(Kind::Anon, P)?;
        mem.write_u64(0, 1)?;
        let ctx = ctx(&DEV_A)?;
        sigkill_action(2);
        // SAFETY: Sends SIGKILL to the current (test) thread, which now accepts it.
        unsafe { bindings::send_sig(bindings::SIGKILL as i32, bindings::get_current(), 1) };
        let ret = fault(&ctx, mem.addr(), 1);
        // SAFETY: Clears the signal we sent ourselves.
        unsafe { bindings::flush_signals(bindings::get_current()) };
        sigkill_action(1);
        assert_eq!(ret, Err(EINTR));
        assert!(!ctx.is_granted(mem.addr()));
        assert_eq!(mem.read_u64(0)?, 1);
        Ok(())
    }

    #[test]
    fn nonblockable_invalidate_with_lock_held_fails() -> Result {
        let mem = UserMem::new(Kind::Anon, P)?;
        mem.write_u64(0, 1)?;
        let ctx = ctx(&DEV_A)?;
        fault(&ctx, mem.addr(), 1)?;
        let invalidate = ctx.test_invalidator(mem.addr()).ok_or(EINVAL)?;
        // The page-table lock is held: a non-blockable invalidation must not wait for it.
        let refused = ctx.with_atomic_page(mem.addr(), |_, _| !invalidate(false));
        assert_eq!(refused, Some(true));
        assert!(ctx.is_granted(mem.addr()));
        // Uncontended, it proceeds and revokes.
        assert!(invalidate(false));
        assert!(!ctx.is_granted(mem.addr()));
        assert_eq!(mem.read_u64(0)?, 1);
        Ok(())
    }

    #[test]
    fn stress_devices_and_workers_exact_sum() -> Result {
        const DEVICES: usize = 3;
        const WORKERS: usize = 2;
        const ADDS: usize = 1000;
        static DEVS: [u8; DEVICES] = [0; DEVICES];
        let mem = UserMem::new(Kind::Anon, 2 * P)?;
        mem.write_u64(0, 0)?;
        mem.write_u64(P + 8, 0)?;
        let mm = current_mm().ok_or(EINVAL)?;
        let done = Arc::new(Atomic::new(0usize), GFP_KERNEL)?;
        let failed = Arc::new(Atomic::new(0usize), GFP_KERNEL)?;
        let failed_errno = Arc::new(Atomic::new(0i32), GFP_KERNEL)?;
        let mut contexts = KVec::new();
        for dev in &DEVS {
            let pt = TestPt::new(4)?;
            // A long deadline: a loaded host can slow the guest's contention a lot.
            let mut config = Config::new(Owner::from_ptr(dev));
            config.timeout = Delta::from_secs(10);
            let ctx = Arc::pin_init(SvmContext::<TestPt>::new(&mm, pt, config), GFP_KERNEL)?;
            contexts.push(ctx, GFP_KERNEL)?;
        }
        for ctx in &contexts {
            for w in 0..WORKERS {
                let (ctx, done, failed) = (ctx.clone(), done.clone(), failed.clone());
                let failed_errno = failed_errno.clone();
                // Half the workers hit one u64, the others one on the next page.
                let addr = if w % 2 == 0 {
                    mem.addr()
                } else {
                    mem.addr() + P + 8
                };
                // Unbound: the workers of different devices must run at the same time on
                // different CPUs, or a page held by two of them would go unnoticed.
                // SAFETY: `system_dfl_wq` is created at boot and never destroyed.
                let unbound = unsafe { workqueue::Queue::from_raw(bindings::system_dfl_wq) };
                unbound.try_spawn(GFP_KERNEL, move || {
                    for n in 0..ADDS {
                        // Let the other devices and the CPU in between bursts.
                        if n % 8 == 0 {
                            fsleep(Delta::from_micros(20));
                        }
                        let mut ok = false;
                        for _ in 0..10_000 {
                            if device_add(&ctx, addr, 1).is_some() {
                                ok = true;
                                break;
                            }
                            if let Err(e) = fault(&ctx, addr & !(P - 1), 1) {
                                failed_errno.store(e.to_errno(), Relaxed);
                                break;
                            }
                        }
                        if !ok {
                            failed.fetch_add(1, Relaxed);
                        }
                    }
                    done.fetch_add(1, Relaxed);
                })?;
            }
        }
        // The CPU keeps taking the pages back while the devices work, reading their counters
        // and writing its own next to them.
        let mut cpu_rounds = 0u64;
        while done.load(Relaxed) < DEVICES * WORKERS {
            mem.read_u64(0)?;
            mem.read_u64(P + 8)?;
            cpu_rounds += 1;
            mem.write_u64(16, cpu_rounds)?;
            mem.write_u64(P + 16, cpu_rounds)?;
            fsleep(Delta::from_micros(50));
        }
        let mut granted = 0;
        for (i, ctx) in contexts.iter().enumerate() {
            let s = totals(ctx);
            pr_info!(
                "stress device {i}: granted {} retries {} revocations {} (cpu {} device {})\n",
                s.granted,
                s.retries,
                revocations(ctx),
                revoked_by(ctx, RevokeCause::CpuFault),
                revoked_by(ctx, RevokeCause::OtherDevice)
            );
            assert!(s.granted > 0);
            granted += s.granted;
        }
        pr_info!(
            "stress: {cpu_rounds} CPU rounds, {} adds failed (last errno {})\n",
            failed.load(Relaxed),
            failed_errno.load(Relaxed)
        );
        assert_eq!(failed.load(Relaxed), 0);
        let half = (DEVICES * WORKERS / 2 * ADDS) as u64;
        assert_eq!(mem.read_u64(0)?, half);
        assert_eq!(mem.read_u64(P + 8)?, half);
        assert!(cpu_rounds > 0);
        assert_eq!(mem.read_u64(16)?, cpu_rounds);
        assert_eq!(mem.read_u64(P + 16)?, cpu_rounds);
        assert!(granted >= 2);
        Ok(())
    }

    #[test]
    fn revoke_all_cancels_a_fault_in_flight() -> Result {
        let (mem, off) = two_pages()?;
        let a0 = mem.addr() + off;
        let ctx = shared_ctx(&DEV_A, Config::DEFAULT_TIMEOUT)?;
        fault(&ctx, a0 + P, 1)?;
        // Hold a fault between `make_device_exclusive()` and its commit.
        let (gate0, worker) = fault_held_at(&ctx, a0, 1, a0)?;
        // A device reset: when `revoke_all()` returns, nothing is mapped, and the fault in
        // flight must not map its page afterwards.
        ctx.revoke_all();
        assert_eq!(ctx.granted_pages(), 0);
        assert_eq!(ctx.with_page_table(|pt| pt.entries.len()), 0);
        gate0.data().open();
        gate0.data().release();
        assert_eq!(worker.wait(), Some(Err(ECANCELED)));
        assert!(!ctx.is_granted(a0));
        assert_eq!(ctx.with_page_table(|pt| pt.entries.len()), 0);
        // The page is the CPU's, with its data; later faults grant as usual.
        assert_eq!(mem.read_u64(off)?, 1);
        mem.write_u64(off, 7)?;
        assert_eq!(device_add_faulting(&ctx, a0, 1)?, 7);
        assert_eq!(mem.read_u64(off)?, 8);
        Ok(())
    }

    #[test]
    fn a_chunk_emptied_during_the_fault_that_made_it_stays() -> Result {
        let (mem, off) = two_pages()?;
        let (a0, a1) = (mem.addr() + off, mem.addr() + off + P);
        let ctx = shared_ctx(&DEV_A, Config::DEFAULT_TIMEOUT)?;
        assert_eq!(ctx.chunk_count(), 0);
        // The fault makes the chunk, grants page 0, and is held inside the grant of page 1.
        let (gate1, worker) = fault_held_at(&ctx, a0, 2, a1)?;
        // Page 0's grant goes before the fault ends, and the fault fails.
        ctx.revoke_all();
        gate1.data().open();
        gate1.data().release();
        assert_eq!(worker.wait(), Some(Err(ECANCELED)));
        // The chunk had a grant: it stays until it is trimmed, like any emptied chunk, rather
        // than going with the fault that made it (a contended page would otherwise remove and
        // insert its notifier again and again).
        assert_eq!(ctx.chunk_count(), 1);
        ctx.trim();
        assert_eq!(ctx.chunk_count(), 0);
        Ok(())
    }

    #[test]
    fn block_keeps_grants_out_until_dropped() -> Result {
        let (mem, off) = two_pages()?;
        let (a0, a1) = (mem.addr() + off, mem.addr() + off + P);
        let ctx = shared_ctx(&DEV_A, Config::DEFAULT_TIMEOUT)?;
        fault(&ctx, a0, 1)?;
        // Hold a fault in flight across the block, too.
        let (gate1, worker) = fault_held_at(&ctx, a1, 1, a1)?;
        let blocked = ctx.block();
        assert_eq!(ctx.granted_pages(), 0);
        gate1.data().open();
        gate1.data().release();
        assert_eq!(worker.wait(), Some(Err(ECANCELED)));
        // Nothing is granted while blocked, and nothing is left locked.
        assert_eq!(fault(&ctx, a0, 2), Err(ECANCELED));
        assert_eq!(ctx.granted_pages(), 0);
        assert_eq!(ctx.with_page_table(|pt| pt.entries.len()), 0);
        mem.write_u64(off, 3)?;
        drop(blocked);
        fault(&ctx, a0, 2)?;
        assert_eq!(ctx.granted_pages(), 2);
        assert_eq!(device_add(&ctx, a0, 1), Some(3));
        assert_eq!(device_add(&ctx, a1, 1), Some(2));
        Ok(())
    }

    #[test]
    fn nonblockable_unmap_refused_by_the_driver() -> Result {
        let mem = UserMem::new(Kind::Anon, P)?;
        mem.write_u64(0, 1)?;
        let mut pt = TestPt::new(4)?;
        pt.flush = Flush::Wait;
        let ctx = context_with(&DEV_A, pt, |_| {})?;
        fault(&ctx, mem.addr(), 1)?;
        let invalidate = ctx.test_invalidator(mem.addr()).ok_or(EINVAL)?;
        // A driver that would have to wait for its TLB flush refuses a non-blockable
        // invalidation (the OOM reaper's): nothing changes.
        assert!(!invalidate(false));
        assert!(ctx.is_granted(mem.addr()));
        assert_eq!(ctx.with_page_table(|pt| pt.entries.len()), 1);
        assert_eq!(device_add(&ctx, mem.addr(), 1), Some(1));
        // A blockable one waits for the flush (sleeps: the debug kernel would report a sleep
        // in atomic context) and revokes.
        assert_eq!(mem.read_u64(0)?, 2);
        assert!(!ctx.is_granted(mem.addr()));
        assert_eq!(
            ctx.with_page_table(|pt| (pt.entries.len(), pt.unmaps)),
            (0, 1)
        );
        Ok(())
    }

    #[test]
    fn map_atomic_sees_the_folio() -> Result {
        let mem = UserMem::new_thp()?;
        mem.write_u64(5 * P, 1)?;
        let small = UserMem::new(Kind::Anon, P)?;
        small.write_u64(0, 1)?;
        let ctx = ctx(&DEV_A)?;
        fault(&ctx, mem.addr() + 5 * P, 1)?;
        // The sixth page of a PMD-sized folio.
        assert_eq!(ctx.with_page_table(|pt| pt.last_folio), (9, 5));
        fault(&ctx, small.addr(), 1)?;
        assert_eq!(ctx.with_page_table(|pt| pt.last_folio), (0, 0));
        Ok(())
    }

    /// The reference count of `page`.
    ///
    /// # Safety
    ///
    /// `page` is a page that stays allocated meanwhile.
    unsafe fn ref_count(page: usize) -> i32 {
        // Per-CPU LRU batches hold references of their own for a while.
        // SAFETY: May be called from any sleepable context.
        unsafe { bindings::lru_add_drain_all() };
        let page = page as *const bindings::page;
        // SAFETY: By the caller's guarantee; a racy read of a counter is all a test needs.
        unsafe { core::ptr::read_volatile(&raw const (*page)._refcount.counter) }
    }

    #[test]
    fn a_grant_takes_no_reference() -> Result {
        let mem = UserMem::new(Kind::Anon, P)?;
        mem.write_u64(0, 1)?;
        let ctx = ctx(&DEV_A)?;
        fault(&ctx, mem.addr(), 1)?;
        let page = ctx.with_page_table(|pt| pt.last_page);
        // SAFETY: The page is mapped (device-exclusive) until the CPU takes it back, and then
        // mapped by the CPU, as long as `mem` is.
        let granted = unsafe { ref_count(page) };
        // The CPU takes it back: the same page, referenced by its PTE alone, as it was before
        // the grant. A grant that pinned the page would count one more.
        assert_eq!(mem.read_u64(0)?, 1);
        assert!(!ctx.is_granted(mem.addr()));
        // SAFETY: As above.
        let cpu = unsafe { ref_count(page) };
        assert_eq!(granted, cpu);
        Ok(())
    }

    #[test]
    fn a_contended_page_keeps_its_notifier() -> Result {
        // A page in one chunk, and one in the next.
        let mem = UserMem::new(Kind::Anon, 2 * PMD_SIZE)?;
        let (x, y) = (mem.addr(), mem.addr() + PMD_SIZE);
        mem.write_u64(0, 0)?;
        mem.write_u64(PMD_SIZE, 0)?;
        let ctx = ctx(&DEV_A)?;
        // The device and the CPU take the first page in turn: its chunk is emptied 40 times,
        // but it is one chunk, not 40, that lost its grants.
        for i in 0..40 {
            assert_eq!(device_add_faulting(&ctx, x, 1)?, i);
            assert_eq!(mem.read_u64(0)?, i + 1);
        }
        // A fault elsewhere does not trim it, and the first page's next fault needs no new
        // notifier.
        fault(&ctx, y, 1)?;
        assert_eq!(ctx.chunk_count(), 2);
        fault(&ctx, x, 1)?;
        assert_eq!(totals(&ctx).notifiers_inserted, 2);
        Ok(())
    }

    #[test]
    fn emptied_chunks_are_counted_once_each() -> Result {
        // 33 chunks with a grant each, the first emptied twice: only once the 32nd distinct
        // chunk is emptied does a fault trim them.
        const CHUNKS: usize = 33;
        let mem = UserMem::new(Kind::Anon, CHUNKS * PMD_SIZE)?;
        let ctx = ctx(&DEV_A)?;
        let page = |c: usize| c * PMD_SIZE;
        for c in 0..CHUNKS {
            mem.write_u64(page(c), 0)?;
        }
        fault(&ctx, mem.addr() + page(0), 1)?;
        mem.read_u64(page(0))?;
        for c in 0..CHUNKS {
            fault(&ctx, mem.addr() + page(c), 1)?;
        }
        assert_eq!(ctx.chunk_count(), CHUNKS);
        // 31 distinct chunks emptied (chunk 0 for the second time among them): no trim.
        for c in 0..31 {
            mem.read_u64(page(c))?;
        }
        fault(&ctx, mem.addr() + page(32), 1)?;
        assert_eq!(ctx.chunk_count(), CHUNKS);
        // The 32nd: the next fault trims the 32 emptied chunks.
        mem.read_u64(page(31))?;
        fault(&ctx, mem.addr() + page(32), 1)?;
        assert_eq!(ctx.chunk_count(), 1);
        Ok(())
    }

    #[test]
    fn atomic_page_rejects_bad_offsets() -> Result {
        let mem = UserMem::new(Kind::Anon, P)?;
        mem.write_u64(0, 1)?;
        let ctx = ctx(&DEV_A)?;
        fault(&ctx, mem.addr(), 1)?;
        let r = ctx.with_atomic_page(mem.addr(), |_, page| {
            (
                page.atomic::<u64>(4).err(),
                page.atomic::<u32>(P - 2).err(),
                page.atomic::<u64>(P).err(),
                page.atomic::<u32>(P - 4).is_ok(),
            )
        });
        assert_eq!(r, Some((Some(EINVAL), Some(EINVAL), Some(EINVAL), true)));
        Ok(())
    }
}

// SPDX-License-Identifier: GPL-2.0

//! KUnit tests for interval notifiers, on user memory of the test thread.

#[macros::kunit_tests(rust_mm_mmu_notifier)]
mod kunit {
    use crate::{
        bindings,
        kunit::user_mem::{
            current_mm,
            Kind,
            UserMem, //
        },
        mm::mmu_notifier::{
            recorder::{
                Publish,
                Recorder, //
            },
            Event,
            MmuIntervalNotifier, //
        },
        page::PAGE_SIZE,
        prelude::*,
    };

    const P: usize = PAGE_SIZE;

    #[test]
    fn insert_and_remove() -> Result {
        let mem = UserMem::new(Kind::Anon, 4 * P)?;
        let mm = current_mm().ok_or(EINVAL)?;
        let n = Recorder::watch(&mm, mem.addr(), 4 * P)?;
        assert_eq!(n.start(), mem.addr());
        assert_eq!(n.last(), mem.addr() + 4 * P - 1);
        assert_eq!(n.mm().as_raw(), mm.as_raw());
        assert_eq!(n.data().take().n, 0);
        drop(n);
        // A second notifier over the same range can be inserted after the first is gone.
        let _n = Recorder::watch(&mm, mem.addr(), 4 * P)?;
        Ok(())
    }

    #[test]
    fn bad_ranges_are_einval() -> Result {
        let mem = UserMem::new(Kind::Anon, P)?;
        let mm = current_mm().ok_or(EINVAL)?;
        assert_eq!(Recorder::watch(&mm, mem.addr(), 0).err(), Some(EINVAL));
        assert_eq!(
            Recorder::watch(&mm, usize::MAX - P + 1, 2 * P).err(),
            Some(EINVAL)
        );
        Ok(())
    }

    #[test]
    fn dontneed_fires_clear_for_its_range() -> Result {
        let mem = UserMem::new(Kind::Anon, 4 * P)?;
        let mm = current_mm().ok_or(EINVAL)?;
        mem.write_u64(P, 42)?;
        let n = Recorder::watch(&mm, mem.addr(), 4 * P)?;
        mem.madvise(P, P, bindings::MADV_DONTNEED)?;
        let log = n.data().take();
        assert_eq!(log.n, 1);
        let call = log.first().ok_or(EINVAL)?;
        assert_eq!(log.last().map(|c| c.start), Some(call.start));
        assert_eq!(call.event, Event::Clear);
        assert_eq!((call.start, call.end), (mem.addr() + P, mem.addr() + 2 * P));
        assert_eq!(call.owner, None);
        // The page was dropped: the CPU reads zeroes now.
        assert_eq!(mem.read_u64(P)?, 0);
        Ok(())
    }

    #[test]
    fn munmap_fires_unmap() -> Result {
        let mem = UserMem::new(Kind::Anon, 4 * P)?;
        let mm = current_mm().ok_or(EINVAL)?;
        mem.write_u64(2 * P, 7)?;
        let n = Recorder::watch(&mm, mem.addr(), 4 * P)?;
        mem.unmap(2 * P, P)?;
        let log = n.data().take();
        assert!(log.any(|c| c.event == Event::Unmap
            && c.start <= mem.addr() + 2 * P
            && c.end >= mem.addr() + 3 * P));
        assert_eq!(mem.read_u64(2 * P).err(), Some(EFAULT));
        Ok(())
    }

    #[test]
    fn other_ranges_do_not_fire() -> Result {
        let mem = UserMem::new(Kind::Anon, 4 * P)?;
        let mm = current_mm().ok_or(EINVAL)?;
        mem.write_u64(0, 1)?;
        mem.write_u64(3 * P, 1)?;
        let n = Recorder::watch(&mm, mem.addr(), P)?;
        mem.madvise(3 * P, P, bindings::MADV_DONTNEED)?;
        assert_eq!(n.data().take().n, 0);
        Ok(())
    }

    #[test]
    fn read_retry_sees_invalidation() -> Result {
        let mem = UserMem::new(Kind::Anon, P)?;
        let mm = current_mm().ok_or(EINVAL)?;
        mem.write_u64(0, 1)?;
        let n: Pin<KBox<MmuIntervalNotifier<Recorder>>> = Recorder::watch(&mm, mem.addr(), P)?;

        let seq = n.read_begin();
        assert!(!n.check_retry(seq));
        assert!(!n.read_retry(seq));
        {
            let _lock = n.data().lock();
            assert!(!n.read_retry(seq));
        }

        let seq = n.read_begin();
        mem.madvise(0, P, bindings::MADV_DONTNEED)?;
        assert!(n.check_retry(seq));
        {
            let _lock = n.data().lock();
            assert!(n.read_retry(seq));
        }

        // A new section after the invalidation is clean again.
        let seq = n.read_begin();
        let _lock = n.data().lock();
        assert!(!n.read_retry(seq));
        Ok(())
    }

    /// A section, an invalidation published `how` during it, then the next section: whether
    /// the first had to retry, and whether the second began after the invalidation.
    fn section_across_invalidation(how: Publish) -> Result<(bool, bool)> {
        let mem = UserMem::new(Kind::Anon, P)?;
        let mm = current_mm().ok_or(EINVAL)?;
        mem.write_u64(0, 1)?;
        let n = Recorder::watch(&mm, mem.addr(), P)?;
        n.data().publish_with(how);
        let first = n.read_begin();
        mem.madvise(0, P, bindings::MADV_DONTNEED)?;
        let seq = n.data().last_seq();
        assert_ne!(seq, 0);
        let retry = {
            let _lock = n.data().lock();
            n.read_retry(first)
        };
        let next = n.read_begin();
        Ok((retry, next.0 == seq))
    }

    #[test]
    fn set_collides_with_the_section_in_progress() -> Result {
        assert_eq!(section_across_invalidation(Publish::Set)?, (true, true));
        Ok(())
    }

    #[test]
    fn only_the_readers_own_invalidation_goes_unpublished() -> Result {
        // A sequence the callback does not set is set when dropped.
        assert_eq!(section_across_invalidation(Publish::Forget)?, (true, true));
        assert_eq!(
            section_across_invalidation(Publish::ReaderOwn)?,
            (false, false)
        );
        Ok(())
    }
}

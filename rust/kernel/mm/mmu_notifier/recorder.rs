// SPDX-License-Identifier: GPL-2.0

//! A notifier that records its invalidations, for the KUnit tests of `kernel::mm`.

use super::{
    Event,
    InvalidateSeq,
    MmuIntervalNotifier,
    MmuIntervalNotifierOps,
    Owner,
    Range, //
};
use crate::{
    mm::MmWithUser,
    new_spinlock,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        SpinLock,
        SpinLockGuard, //
    },
};

/// How a [`Recorder`] publishes the sequence of an invalidation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Publish {
    /// [`InvalidateSeq::set`].
    Set = 0,
    /// Neither: the sequence is dropped unused.
    Forget = 2,
    /// [`InvalidateSeq::reader_own`].
    ReaderOwn = 3,
}

/// One recorded invalidation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Call {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) event: Event,
    pub(crate) owner: Option<Owner>,
}

/// What a [`Recorder`] saw since it was last [taken](Recorder::take).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Log {
    /// Number of invalidations; only the first [`Log::CAP`] are kept.
    pub(crate) n: usize,
    pub(crate) calls: [Option<Call>; Log::CAP],
}

impl Log {
    pub(crate) const CAP: usize = 8;

    /// The first recorded call.
    pub(crate) fn first(&self) -> Option<Call> {
        self.calls[0]
    }

    /// The last recorded call, if no more than [`Log::CAP`] happened.
    pub(crate) fn last(&self) -> Option<Call> {
        self.n
            .checked_sub(1)
            .and_then(|i| self.calls.get(i).copied().flatten())
    }

    /// Whether any recorded call matches.
    pub(crate) fn any(&self, f: impl Fn(&Call) -> bool) -> bool {
        self.calls.iter().flatten().any(f)
    }
}

/// Notifier data that logs every invalidation and publishes its sequence under its lock (by
/// default with [`InvalidateSeq::set`]; see [`Recorder::publish_with`]).
#[pin_data]
pub(crate) struct Recorder {
    #[pin]
    log: SpinLock<Log>,
    publish: Atomic<u32>,
    last_seq: Atomic<usize>,
}

impl Recorder {
    /// Watches `[start, start + len)` of `mm`.
    pub(crate) fn watch(
        mm: &MmWithUser,
        start: usize,
        len: usize,
    ) -> Result<Pin<KBox<MmuIntervalNotifier<Self>>>> {
        let data = try_pin_init!(Self {
            log <- new_spinlock!(Log::default()),
            publish: Atomic::new(Publish::Set as u32),
            last_seq: Atomic::new(0),
        }? Error);
        KBox::pin_init(MmuIntervalNotifier::new(mm, start, len, data), GFP_KERNEL)
    }

    /// Returns what was recorded so far and starts a new log.
    pub(crate) fn take(&self) -> Log {
        core::mem::take(&mut *self.log.lock())
    }

    /// Publishes the sequences of later invalidations this way.
    pub(crate) fn publish_with(&self, how: Publish) {
        self.publish.store(how as u32, Relaxed);
    }

    /// The sequence of the last invalidation.
    pub(crate) fn last_seq(&self) -> usize {
        self.last_seq.load(Relaxed)
    }

    /// The lock the callback publishes its sequence under.
    pub(crate) fn lock(&self) -> SpinLockGuard<'_, Log> {
        self.log.lock()
    }
}

impl MmuIntervalNotifierOps for Recorder {
    fn invalidate(
        notifier: &MmuIntervalNotifier<Self>,
        range: &Range,
        seq: InvalidateSeq<'_>,
    ) -> bool {
        let mut log = notifier.data().log.lock();
        let n = log.n;
        if let Some(slot) = log.calls.get_mut(n) {
            *slot = Some(Call {
                start: range.start(),
                end: range.end(),
                event: range.event(),
                owner: range.owner(),
            });
        }
        log.n += 1;
        let data = notifier.data();
        data.last_seq.store(seq.value(), Relaxed);
        match data.publish.load(Relaxed) {
            0 => seq.set(),
            // SAFETY: The tests that choose this have one reader, and no section maps anything
            // (the sequence alone is what they check).
            3 => unsafe { seq.reader_own() },
            _ => drop(seq),
        }
        true
    }
}

// SPDX-License-Identifier: GPL-2.0

//! The asynchronous UAPI: `SUBMIT` queues a job for the device's engines and returns, `WAIT`
//! waits for it and writes its results.

use crate::{driver::VsvmDevice, file::File, job::Job};
use kernel::{
    drm::{
        self,
        Registered, //
    },
    prelude::*,
    sync::Arc,
    time::{
        msecs_to_jiffies,
        Delta, //
    },
    transmute::{
        AsBytes,
        FromBytes, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    },
    uapi,
};

/// Most jobs of a file outstanding at once.
const JOBS_MAX: usize = uapi::DRM_VSVM_JOBS_MAX as usize;

/// One operation of a job, as user space writes it.
#[repr(transparent)]
struct JobOp(uapi::drm_vsvm_job_op);

// SAFETY: The structure has integer fields only: every bit pattern is valid.
unsafe impl FromBytes for JobOp {}

/// What one operation of a job did, as user space reads it.
#[repr(transparent)]
struct JobResult(uapi::drm_vsvm_job_result);

// SAFETY: The structure has integer fields only (`u64`, `i32`, `u32`) and no padding.
unsafe impl AsBytes for JobResult {}

const _: () = assert!(core::mem::size_of::<JobResult>() == 16);

/// A job submitted and not yet waited for.
struct Pending {
    seqno: u64,
    job: Arc<Job>,
    /// The user address its results go to.
    results: usize,
}

/// A file's jobs.
///
/// # Invariants
///
/// `pending` has room for [`JOBS_MAX`] jobs and holds no more, each numbered below `next`.
pub(crate) struct Jobs {
    next: u64,
    pending: KVec<Pending>,
}

impl Jobs {
    /// No jobs yet; the first gets number 1.
    pub(crate) fn new() -> Result<Self> {
        // INVARIANT: room for `JOBS_MAX`, none held.
        Ok(Self {
            next: 1,
            pending: KVec::with_capacity(JOBS_MAX, GFP_KERNEL_ACCOUNT)?,
        })
    }
}

impl File {
    /// IOCTL: queue a job of operations for the device's engines.
    pub(crate) fn submit(
        dev: &VsvmDevice<Registered>,
        _reg: &(),
        req: &mut uapi::drm_vsvm_submit,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if req.flags != 0 || req.reserved != 0 {
            return Err(EINVAL);
        }
        if req.count == 0 || req.count > uapi::DRM_VSVM_SUBMIT_MAX {
            return Err(EINVAL);
        }
        let ctx = Self::ctx(file)?;
        let count = req.count as usize;
        let results = usize::try_from(req.results).map_err(|_| EFAULT)?;
        let ops = usize::try_from(req.ops).map_err(|_| EFAULT)?;
        let mut reader = UserSlice::new(
            UserPtr::from_addr(ops),
            count * core::mem::size_of::<JobOp>(),
        )
        .reader();
        let mut commands = KVec::with_capacity(count, GFP_KERNEL)?;
        for _ in 0..count {
            let JobOp(op) = reader.read::<JobOp>()?;
            if op.flags != 0 || op.pad != 0 {
                return Err(EINVAL);
            }
            let cmd = Self::command(op.op, op.width, op.addr, op.operand, op.compare)?;
            commands.push(cmd, GFP_KERNEL)?;
        }
        let job = Job::new(ctx.clone(), file.inner().stats.clone(), commands)?;
        let seqno = {
            let mut jobs = file.inner().get_ref().jobs.lock();
            if jobs.pending.len() >= JOBS_MAX {
                return Err(EAGAIN);
            }
            let seqno = jobs.next;
            let pending = Pending {
                seqno,
                job: job.clone(),
                results,
            };
            // INVARIANT: there is room (checked above), and `next` grows past the number.
            jobs.pending
                .push_within_capacity(pending)
                .map_err(|_| EAGAIN)?;
            jobs.next += 1;
            seqno
        };
        // Outside the file's lock: it may wait for room in the device's queue.
        if let Err(e) = dev.engines.submit(job.clone()) {
            // Not queued: a waiter for the number returns, and it is retired.
            job.abort(ECANCELED);
            let mut jobs = file.inner().get_ref().jobs.lock();
            jobs.pending.retain(|p| p.seqno != seqno);
            return Err(e);
        }
        req.seqno = seqno;
        Ok(0)
    }

    /// IOCTL: wait for a job, then write its results and retire it.
    pub(crate) fn wait(
        _dev: &VsvmDevice<Registered>,
        _reg: &(),
        req: &mut uapi::drm_vsvm_wait,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if req.flags != 0 || req.pad != 0 || req.reserved != 0 || req.timeout_ns < 0 {
            return Err(EINVAL);
        }
        // The results go to the opener's memory.
        Self::ctx(file)?;
        let seqno = req.seqno;
        let job = {
            let jobs = file.inner().get_ref().jobs.lock();
            if seqno == 0 || seqno >= jobs.next {
                return Err(EINVAL);
            }
            match jobs.pending.iter().find(|p| p.seqno == seqno) {
                Some(p) => p.job.clone(),
                // Retired already.
                None => return Ok(0),
            }
        };
        let ms = Delta::from_nanos(req.timeout_ns).as_millis_ceil();
        let timeout = msecs_to_jiffies(u32::try_from(ms).unwrap_or(u32::MAX));
        job.wait_timeout(timeout)?;
        let outcomes = job.outcomes()?;
        // Written and retired by one waiter, under the lock: another one returns once the
        // results are there. (Nothing that a fault on the results buffer takes needs it.)
        let mut jobs = file.inner().get_ref().jobs.lock();
        let Some(i) = jobs.pending.iter().position(|p| p.seqno == seqno) else {
            return Ok(0);
        };
        let results = jobs.pending.remove(i)?.results;
        let mut writer = UserSlice::new(
            UserPtr::from_addr(results),
            outcomes.len() * core::mem::size_of::<JobResult>(),
        )
        .writer();
        for out in &outcomes {
            writer.write(&JobResult(uapi::drm_vsvm_job_result {
                value: out.value,
                error: out.error,
                faults: out.faults.try_into().unwrap_or(u32::MAX),
            }))?;
        }
        Ok(0)
    }
}

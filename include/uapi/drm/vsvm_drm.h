/* SPDX-License-Identifier: MIT */
/*
 * vsvm: a virtual SVM GPU whose "device atomics" run on process memory made
 * device-exclusive, for testing and demonstrating kernel::drm::svm.
 */
#ifndef _VSVM_DRM_H_
#define _VSVM_DRM_H_

#include "drm.h"

#if defined(__cplusplus)
extern "C" {
#endif

#define DRM_VSVM_ATOMIC		0x00
#define DRM_VSVM_ATOMIC_RANGE	0x01
#define DRM_VSVM_PREFETCH	0x02
#define DRM_VSVM_QUERY		0x03
#define DRM_VSVM_STATS		0x04
#define DRM_VSVM_SUBMIT		0x05
#define DRM_VSVM_WAIT		0x06

/**
 * enum drm_vsvm_op - atomic operations of the virtual device
 * @DRM_VSVM_OP_ADD: *addr += operand
 * @DRM_VSVM_OP_XCHG: *addr = operand
 * @DRM_VSVM_OP_CMPXCHG: if (*addr == compare) *addr = operand
 * @DRM_VSVM_OP_AND: *addr &= operand
 * @DRM_VSVM_OP_OR: *addr |= operand
 * @DRM_VSVM_OP_MAX: *addr = max(*addr, operand), unsigned
 *
 * Every operation returns the old value.
 */
enum drm_vsvm_op {
	DRM_VSVM_OP_ADD = 0,
	DRM_VSVM_OP_XCHG = 1,
	DRM_VSVM_OP_CMPXCHG = 2,
	DRM_VSVM_OP_AND = 3,
	DRM_VSVM_OP_OR = 4,
	DRM_VSVM_OP_MAX = 5,
};

/**
 * DOC: vsvm uAPI extensibility
 *
 * Every structure ends with a reserved field, and every ioctl reads and
 * writes its structure. Reserved, padding and unknown flags bits must be 0
 * on input, or the ioctl fails with %EINVAL, so that they can be given a
 * meaning later: a new input goes into a reserved field, or comes with a
 * flags bit that says it is there (an older kernel refuses the bit). Fields
 * appended to a structure are ignored by an older kernel (the DRM core passes
 * it only the size it knows and copies the rest back as the program set it:
 * a program clears its structure and reads 0 there), and an older program's
 * shorter structure works on a newer kernel, which sees zeros beyond it.
 */

/**
 * struct drm_vsvm_atomic - one device atomic on process memory
 * @addr: user address, naturally aligned for @width
 * @operand: the operand; for 32-bit operations its upper 32 bits must be 0
 * @compare: the expected value for %DRM_VSVM_OP_CMPXCHG (upper 32 bits 0 for
 *	32-bit operations); must be 0 for every other operation
 * @result: (out) the old value
 * @op: an &enum drm_vsvm_op
 * @width: 32 or 64
 * @flags: must be 0
 * @faults: (out) device faults this operation took
 * @reserved: must be 0
 */
struct drm_vsvm_atomic {
	__u64 addr;
	__u64 operand;
	__u64 compare;
	__u64 result;
	__u32 op;
	__u32 width;
	__u32 flags;
	__u32 faults;
	__u64 reserved;
};

/**
 * struct drm_vsvm_atomic_range - one device atomic repeated over addresses
 * @addr: first user address
 * @stride: bytes between addresses (may be 0: the same address @count times)
 * @count: number of operations, 1 to %DRM_VSVM_RANGE_MAX
 * @operand: the operand of every operation; for 32-bit operations its upper
 *	32 bits must be 0
 * @op: an &enum drm_vsvm_op other than %DRM_VSVM_OP_CMPXCHG
 * @width: 32 or 64
 * @flags: must be 0
 * @pad: must be 0
 * @faults: (out) device faults taken
 * @sum: (out) the sum of the old values, modulo 2^64
 * @reserved: must be 0
 */
struct drm_vsvm_atomic_range {
	__u64 addr;
	__u64 stride;
	__u64 count;
	__u64 operand;
	__u32 op;
	__u32 width;
	__u32 flags;
	__u32 pad;
	__u64 faults;
	__u64 sum;
	__u64 reserved;
};

/* Most operations one &struct drm_vsvm_atomic_range may ask for. */
#define DRM_VSVM_RANGE_MAX	(1 << 20)

/**
 * struct drm_vsvm_prefetch - grant the device atomic access to pages ahead
 * @addr: page-aligned user address
 * @npages: number of pages, 1 to %DRM_VSVM_PREFETCH_MAX
 * @flags: must be 0
 * @pad: must be 0
 * @reserved: must be 0
 *
 * Pages granted before an error stay granted (%DRM_IOCTL_VSVM_QUERY tells
 * which).
 */
struct drm_vsvm_prefetch {
	__u64 addr;
	__u64 npages;
	__u32 flags;
	__u32 pad;
	__u64 reserved;
};

/* Most pages one &struct drm_vsvm_prefetch may ask for. */
#define DRM_VSVM_PREFETCH_MAX	(1 << 18)

#define DRM_VSVM_PTE_VALID	(1 << 0)
#define DRM_VSVM_PTE_WRITE	(1 << 1)
#define DRM_VSVM_PTE_ATOMIC	(1 << 2)

/**
 * struct drm_vsvm_query - the device page table entry of an address
 * @addr: user address
 * @state: (out) %DRM_VSVM_PTE_* bits, 0 if the device has no mapping
 * @flags: must be 0
 * @reserved: must be 0
 */
struct drm_vsvm_query {
	__u64 addr;
	__u32 state;
	__u32 flags;
	__u64 reserved;
};

/*
 * Revocation causes, indices into &drm_vsvm_stats.revocations. New causes take
 * the next free index, below %DRM_VSVM_REVOKE_SLOTS.
 */
#define DRM_VSVM_REVOKE_CPU		0
#define DRM_VSVM_REVOKE_DEVICE		1
#define DRM_VSVM_REVOKE_UNMAP		2
#define DRM_VSVM_REVOKE_MPROTECT	3
#define DRM_VSVM_REVOKE_FORK		4
#define DRM_VSVM_REVOKE_MIGRATION	5
#define DRM_VSVM_REVOKE_EXIT		6
#define DRM_VSVM_REVOKE_OTHER		7
/* Number of causes this header defines. */
#define DRM_VSVM_REVOKE_COUNT		8
/* Room for causes in &drm_vsvm_stats.revocations. */
#define DRM_VSVM_REVOKE_SLOTS		16

/**
 * struct drm_vsvm_stats - counters of this file's context
 * @ops: device atomic operations performed
 * @faults: device faults handled
 * @pages_granted: pages made exclusive and mapped (counted when each fault
 *	ends: a read during a long prefetch misses the pages it granted so far)
 * @retries: grants thrown away because an invalidation collided
 * @timeouts: faults that gave up (EBUSY)
 * @residency_waits: times a grant waited for another device's residency
 * @notifiers: mmu interval notifiers the context holds now, for diagnostics
 * @device: the index of the device
 * @causes: number of revocation causes the kernel counts (entries of
 *	@revocations it fills); the others are 0
 * @revocations: invalidations that removed mappings, by DRM_VSVM_REVOKE_*
 * @flags: (in) must be 0
 * @pad: 0
 * @reserved: 0; new counters are appended after it
 *
 * Every field but @flags is output, and written.
 */
struct drm_vsvm_stats {
	__u64 ops;
	__u64 faults;
	__u64 pages_granted;
	__u64 retries;
	__u64 timeouts;
	__u64 residency_waits;
	__u64 notifiers;
	__u32 device;
	__u32 causes;
	__u64 revocations[DRM_VSVM_REVOKE_SLOTS];
	__u32 flags;
	__u32 pad;
	__u64 reserved;
};

/**
 * struct drm_vsvm_job_op - one operation of a job
 * @addr: user address, naturally aligned for @width
 * @operand: as in &struct drm_vsvm_atomic
 * @compare: as in &struct drm_vsvm_atomic
 * @op: an &enum drm_vsvm_op
 * @width: 32 or 64
 * @flags: must be 0
 * @pad: must be 0
 */
struct drm_vsvm_job_op {
	__u64 addr;
	__u64 operand;
	__u64 compare;
	__u32 op;
	__u32 width;
	__u32 flags;
	__u32 pad;
};

/**
 * struct drm_vsvm_job_result - what one operation of a job did
 * @value: the old value, if @error is 0
 * @error: 0, or the negative errno the operation failed with (%EFAULT: no
 *	memory there; %EBUSY: it kept faulting; %ECANCELED: the device was reset
 *	or the job cancelled); the job's later operations still run
 * @faults: device faults the operation took
 */
struct drm_vsvm_job_result {
	__u64 value;
	__s32 error;
	__u32 faults;
};

/* Most operations in one job. */
#define DRM_VSVM_SUBMIT_MAX	256

/* Most jobs a file may have submitted and not waited for. */
#define DRM_VSVM_JOBS_MAX	16

/**
 * struct drm_vsvm_submit - queue a job for the device's engines
 * @ops: user pointer to @count &struct drm_vsvm_job_op, read at submission
 * @results: user pointer to @count &struct drm_vsvm_job_result, written by
 *	the %DRM_IOCTL_VSVM_WAIT that sees the job complete
 * @count: 1 to %DRM_VSVM_SUBMIT_MAX operations, run in order
 * @flags: must be 0
 * @seqno: (out) the job's sequence number, for %DRM_IOCTL_VSVM_WAIT; a file's
 *	jobs are numbered 1, 2, 3, ...
 * @reserved: must be 0
 *
 * Returns at once. Fails with %EAGAIN when %DRM_VSVM_JOBS_MAX jobs of the file
 * are outstanding (not yet waited for), and with %EINVAL for a bad operation
 * (none of the job runs then).
 */
struct drm_vsvm_submit {
	__u64 ops;
	__u64 results;
	__u32 count;
	__u32 flags;
	__u64 seqno;
	__u64 reserved;
};

/**
 * struct drm_vsvm_wait - wait for a job
 * @seqno: a sequence number %DRM_IOCTL_VSVM_SUBMIT returned on this file
 * @timeout_ns: how long to wait, relative; 0 only checks
 * @flags: must be 0
 * @pad: must be 0
 * @reserved: must be 0
 *
 * When the job is complete, writes its results to the buffer given at
 * submission and returns 0; the job is then retired, and waiting for it
 * again, or for any earlier job, returns 0 at once. Fails with %ETIME if the
 * job is still running when @timeout_ns has passed, %EINTR if a signal came
 * (the job runs on: wait again), %EINVAL for a number never returned, and
 * %EFAULT if the results cannot be written (the job is retired all the same).
 */
struct drm_vsvm_wait {
	__u64 seqno;
	__s64 timeout_ns;
	__u32 flags;
	__u32 pad;
	__u64 reserved;
};

/* Note: this is an enum so that it can be resolved by Rust bindgen. */
enum {
	DRM_IOCTL_VSVM_ATOMIC = DRM_IOWR(DRM_COMMAND_BASE + DRM_VSVM_ATOMIC,
					 struct drm_vsvm_atomic),
	DRM_IOCTL_VSVM_ATOMIC_RANGE = DRM_IOWR(DRM_COMMAND_BASE + DRM_VSVM_ATOMIC_RANGE,
					       struct drm_vsvm_atomic_range),
	DRM_IOCTL_VSVM_PREFETCH = DRM_IOWR(DRM_COMMAND_BASE + DRM_VSVM_PREFETCH,
					   struct drm_vsvm_prefetch),
	DRM_IOCTL_VSVM_QUERY = DRM_IOWR(DRM_COMMAND_BASE + DRM_VSVM_QUERY,
					struct drm_vsvm_query),
	DRM_IOCTL_VSVM_STATS = DRM_IOWR(DRM_COMMAND_BASE + DRM_VSVM_STATS,
					struct drm_vsvm_stats),
	DRM_IOCTL_VSVM_SUBMIT = DRM_IOWR(DRM_COMMAND_BASE + DRM_VSVM_SUBMIT,
					 struct drm_vsvm_submit),
	DRM_IOCTL_VSVM_WAIT = DRM_IOWR(DRM_COMMAND_BASE + DRM_VSVM_WAIT,
				       struct drm_vsvm_wait),
};

#if defined(__cplusplus)
}
#endif

#endif /* _VSVM_DRM_H_ */

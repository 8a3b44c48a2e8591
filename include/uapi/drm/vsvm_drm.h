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
 * struct drm_vsvm_atomic - one device atomic on process memory
 * @addr: user address, naturally aligned for @width
 * @operand: the operand (the low 32 bits for 32-bit operations)
 * @compare: the expected value for %DRM_VSVM_OP_CMPXCHG, else 0
 * @result: (out) the old value
 * @op: an &enum drm_vsvm_op
 * @width: 32 or 64
 * @flags: must be 0
 * @faults: (out) device faults this operation took
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
};

/**
 * struct drm_vsvm_atomic_range - one device atomic repeated over addresses
 * @addr: first user address
 * @stride: bytes between addresses (may be 0: the same address @count times)
 * @count: number of operations, at most %DRM_VSVM_RANGE_MAX
 * @operand: the operand of every operation
 * @op: an &enum drm_vsvm_op other than %DRM_VSVM_OP_CMPXCHG
 * @width: 32 or 64
 * @flags: must be 0
 * @pad: must be 0
 * @faults: (out) device faults taken
 * @sum: (out) the sum of the old values, modulo 2^64
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
};

#define DRM_VSVM_RANGE_MAX	(1 << 20)

/**
 * struct drm_vsvm_prefetch - grant the device atomic access to pages ahead
 * @addr: page-aligned user address
 * @npages: number of pages, at least 1
 * @flags: must be 0
 * @pad: must be 0
 */
struct drm_vsvm_prefetch {
	__u64 addr;
	__u64 npages;
	__u32 flags;
	__u32 pad;
};

#define DRM_VSVM_PTE_VALID	(1 << 0)
#define DRM_VSVM_PTE_WRITE	(1 << 1)
#define DRM_VSVM_PTE_ATOMIC	(1 << 2)

/**
 * struct drm_vsvm_query - the device page table entry of an address
 * @addr: user address
 * @state: (out) %DRM_VSVM_PTE_* bits, 0 if the device has no mapping
 * @flags: must be 0
 */
struct drm_vsvm_query {
	__u64 addr;
	__u32 state;
	__u32 flags;
};

/* Revocation causes, indices into &drm_vsvm_stats.revocations. */
#define DRM_VSVM_REVOKE_CPU		0
#define DRM_VSVM_REVOKE_DEVICE		1
#define DRM_VSVM_REVOKE_UNMAP		2
#define DRM_VSVM_REVOKE_MPROTECT	3
#define DRM_VSVM_REVOKE_FORK		4
#define DRM_VSVM_REVOKE_MIGRATION	5
#define DRM_VSVM_REVOKE_EXIT		6
#define DRM_VSVM_REVOKE_OTHER		7
#define DRM_VSVM_REVOKE_COUNT		8

/**
 * struct drm_vsvm_stats - counters of this file's context
 * @ops: device atomic operations performed
 * @faults: device faults handled
 * @pages_granted: pages made exclusive and mapped
 * @retries: grants thrown away because an invalidation collided
 * @timeouts: faults that gave up (EBUSY)
 * @revocations: invalidations that removed mappings, by DRM_VSVM_REVOKE_*
 * @residency_waits: faults that waited for another device's residency
 * @device: (out) the index of the device
 * @pad: must be 0
 */
struct drm_vsvm_stats {
	__u64 ops;
	__u64 faults;
	__u64 pages_granted;
	__u64 retries;
	__u64 timeouts;
	__u64 revocations[DRM_VSVM_REVOKE_COUNT];
	__u64 residency_waits;
	__u32 device;
	__u32 pad;
};

/* Note: this is an enum so that it can be resolved by Rust bindgen. */
enum {
	DRM_IOCTL_VSVM_ATOMIC = DRM_IOWR(DRM_COMMAND_BASE + DRM_VSVM_ATOMIC,
					 struct drm_vsvm_atomic),
	DRM_IOCTL_VSVM_ATOMIC_RANGE = DRM_IOWR(DRM_COMMAND_BASE + DRM_VSVM_ATOMIC_RANGE,
					       struct drm_vsvm_atomic_range),
	DRM_IOCTL_VSVM_PREFETCH = DRM_IOW(DRM_COMMAND_BASE + DRM_VSVM_PREFETCH,
					  struct drm_vsvm_prefetch),
	DRM_IOCTL_VSVM_QUERY = DRM_IOWR(DRM_COMMAND_BASE + DRM_VSVM_QUERY,
					struct drm_vsvm_query),
	DRM_IOCTL_VSVM_STATS = DRM_IOR(DRM_COMMAND_BASE + DRM_VSVM_STATS,
				       struct drm_vsvm_stats),
};

#if defined(__cplusplus)
}
#endif

#endif /* _VSVM_DRM_H_ */

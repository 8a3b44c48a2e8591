// SPDX-License-Identifier: GPL-2.0
/*
 * The vsvm UAPI a program can reach with bad input: every field the kernel
 * does not use yet must be 0 (so that it can be given a meaning later), every
 * field whose meaning depends on another is checked, output structures can
 * grow, and the GEM paths DRM gives every driver find nothing to work on.
 * Nothing refused may change memory or leave a grant behind.
 */
#include <sys/mman.h>

#include "kselftest_harness.h"
#include "vsvm_common.h"
#include "thp.h"

#define PAGES	4

FIXTURE(uapi)
{
	int fd;
	char *p;
};

FIXTURE_SETUP(uapi)
{
	self->fd = vsvm_open(0);
	ASSERT_GE(self->fd, 0) TH_LOG("no vsvm device: %s", strerror(-self->fd));
	self->p = map_anon(PAGES * PAGE_SZ);
	ASSERT_NE(self->p, NULL);
	memset(self->p, 0, PAGES * PAGE_SZ);
}

FIXTURE_TEARDOWN(uapi)
{
	/* Nothing refused changed memory or left a grant behind. */
	for (unsigned long i = 0; i < PAGES * PAGE_SZ; i++)
		ASSERT_EQ(self->p[i], 0);
	for (int i = 0; i < PAGES; i++)
		ASSERT_EQ(vsvm_query(self->fd, self->p + i * PAGE_SZ), 0);
	munmap(self->p, PAGES * PAGE_SZ);
	close(self->fd);
}

static int atomic_ioctl(int fd, struct drm_vsvm_atomic *a)
{
	return ioctl(fd, DRM_IOCTL_VSVM_ATOMIC, a) ? -errno : 0;
}

static int range_ioctl(int fd, struct drm_vsvm_atomic_range *r)
{
	return ioctl(fd, DRM_IOCTL_VSVM_ATOMIC_RANGE, r) ? -errno : 0;
}

static int prefetch_ioctl(int fd, struct drm_vsvm_prefetch *pf)
{
	return ioctl(fd, DRM_IOCTL_VSVM_PREFETCH, pf) ? -errno : 0;
}

/* Addresses no grant can be made at, with the errors of make_device_exclusive(). */
TEST_F(uapi, addresses)
{
	char *ro = mmap(NULL, PAGE_SZ, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *none = mmap(NULL, PAGE_SZ, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *shm = mmap(NULL, PAGE_SZ, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char path[] = "/tmp/vsvm-XXXXXX";
	int tfd = mkstemp(path);
	char *file;
	int fd = self->fd;
	char *p = self->p;

	ASSERT_NE(ro, MAP_FAILED);
	ASSERT_NE(none, MAP_FAILED);
	ASSERT_NE(shm, MAP_FAILED);
	ASSERT_GE(tfd, 0);
	ASSERT_EQ(ftruncate(tfd, PAGE_SZ), 0);
	file = mmap(NULL, PAGE_SZ, PROT_READ | PROT_WRITE, MAP_SHARED, tfd, 0);
	ASSERT_NE(file, MAP_FAILED);

	ASSERT_EQ(vsvm_add64(fd, p + 4, 1), -EINVAL);			/* unaligned */
	ASSERT_EQ(vsvm_atomic(fd, p + 2, DRM_VSVM_OP_ADD, 32, 1, 0, NULL), -EINVAL);
	ASSERT_EQ(vsvm_add64(fd, ro, 1), -EFAULT);			/* read-only */
	ASSERT_EQ(vsvm_add64(fd, none, 1), -EFAULT);			/* PROT_NONE */
	ASSERT_EQ(vsvm_add64(fd, shm, 1), -EOPNOTSUPP);		/* shmem */
	ASSERT_EQ(vsvm_add64(fd, file, 1), -EOPNOTSUPP);		/* shared file */
	ASSERT_EQ(vsvm_add64(fd, (void *)8, 1), -EFAULT);		/* unmapped */
	ASSERT_EQ(vsvm_add64(fd, (void *)0xffff888000000000UL, 1), -EFAULT); /* kernel */
	ASSERT_EQ(vsvm_add64(fd, (void *)-8UL, 1), -EFAULT);		/* last word */
	ASSERT_EQ(vsvm_prefetch(fd, (void *)0x7ffffffff000UL, 1), -EFAULT); /* past TASK_SIZE */
	ASSERT_EQ(vsvm_query(fd, (void *)-8UL), 0);			/* no mapping */

	munmap(ro, PAGE_SZ);
	munmap(none, PAGE_SZ);
	munmap(shm, PAGE_SZ);
	munmap(file, PAGE_SZ);
	close(tfd);
	unlink(path);
}

TEST_F(uapi, atomic_fields)
{
	struct drm_vsvm_atomic a;
	int fd = self->fd;
	char *p = self->p;

#define ATOMIC_FAILS(field, value)						\
	do {									\
		a = (struct drm_vsvm_atomic){ .addr = (uintptr_t)p,		\
			.op = DRM_VSVM_OP_ADD, .width = 64, .operand = 1 };	\
		a.field = value;						\
		ASSERT_EQ(atomic_ioctl(fd, &a), -EINVAL) TH_LOG(#field);	\
	} while (0)

	ATOMIC_FAILS(op, 6);
	ATOMIC_FAILS(op, ~0u);
	ATOMIC_FAILS(width, 16);
	ATOMIC_FAILS(width, 0);
	ATOMIC_FAILS(flags, 1);
	ATOMIC_FAILS(flags, 1u << 31);
	ATOMIC_FAILS(reserved, 1);
	ATOMIC_FAILS(compare, 1);		/* only CMPXCHG compares */
	/* A 32-bit operation has no use for the upper half of the operands. */
	a = (struct drm_vsvm_atomic){ .addr = (uintptr_t)p, .op = DRM_VSVM_OP_ADD,
				      .width = 32, .operand = 1ULL << 32 };
	ASSERT_EQ(atomic_ioctl(fd, &a), -EINVAL);
	a = (struct drm_vsvm_atomic){ .addr = (uintptr_t)p, .op = DRM_VSVM_OP_CMPXCHG,
				      .width = 32, .operand = 1, .compare = 1ULL << 32 };
	ASSERT_EQ(atomic_ioctl(fd, &a), -EINVAL);
	/* The output fields are not inputs: garbage there is overwritten. */
	a = (struct drm_vsvm_atomic){ .addr = (uintptr_t)p, .op = DRM_VSVM_OP_CMPXCHG,
				      .width = 32, .operand = 7, .compare = 1,
				      .result = ~0ULL, .faults = ~0u };
	ASSERT_EQ(atomic_ioctl(fd, &a), 0);	/* compare fails: nothing written */
	ASSERT_EQ(a.result, 0);
	ASSERT_EQ(a.faults, 1);
	/* Give the page back to the CPU for the fixture's check. */
	ASSERT_EQ(p[0], 0);
}

TEST_F(uapi, range_fields)
{
	struct drm_vsvm_atomic_range r;
	int fd = self->fd;
	char *p = self->p;

#define RANGE_FAILS(field, value)						\
	do {									\
		r = (struct drm_vsvm_atomic_range){ .addr = (uintptr_t)p,	\
			.stride = 8, .count = 2, .op = DRM_VSVM_OP_ADD,		\
			.width = 64, .operand = 1 };				\
		r.field = value;						\
		ASSERT_EQ(range_ioctl(fd, &r), -EINVAL) TH_LOG(#field);		\
	} while (0)

	RANGE_FAILS(count, 0);
	RANGE_FAILS(count, DRM_VSVM_RANGE_MAX + 1);
	r = (struct drm_vsvm_atomic_range){ .addr = (uintptr_t)p, .stride = 1ULL << 62,
					    .count = 8, .op = DRM_VSVM_OP_ADD, .width = 64,
					    .operand = 1 };
	ASSERT_EQ(range_ioctl(fd, &r), -EINVAL);	/* the last address overflows */
	RANGE_FAILS(stride, 4);			/* misaligns 64-bit operations */
	RANGE_FAILS(op, DRM_VSVM_OP_CMPXCHG);
	RANGE_FAILS(op, 6);
	RANGE_FAILS(width, 8);
	RANGE_FAILS(flags, 1);
	RANGE_FAILS(pad, 1);
	RANGE_FAILS(reserved, 1);
	RANGE_FAILS(addr, (uintptr_t)p + 1);
	r = (struct drm_vsvm_atomic_range){ .addr = (uintptr_t)p, .stride = 4, .count = 2,
					    .op = DRM_VSVM_OP_ADD, .width = 32,
					    .operand = 1ULL << 32 };
	ASSERT_EQ(range_ioctl(fd, &r), -EINVAL);
}

TEST_F(uapi, prefetch_fields)
{
	/* An older program's structure, without the reserved field: DRM zero-fills it. */
	struct {
		__u64 addr, npages;
		__u32 flags, pad;
	} old = { .addr = (uintptr_t)self->p, .npages = 1 };
	unsigned long old_cmd = DRM_IOW(DRM_COMMAND_BASE + DRM_VSVM_PREFETCH, old);
	struct drm_vsvm_prefetch pf;
	int fd = self->fd;
	char *p = self->p;

#define PREFETCH_FAILS(field, value)						\
	do {									\
		pf = (struct drm_vsvm_prefetch){ .addr = (uintptr_t)p,		\
						 .npages = 1 };			\
		pf.field = value;						\
		ASSERT_EQ(prefetch_ioctl(fd, &pf), -EINVAL) TH_LOG(#field);	\
	} while (0)

	PREFETCH_FAILS(addr, (uintptr_t)p + 8);			/* unaligned */
	pf = (struct drm_vsvm_prefetch){ .addr = -PAGE_SZ, .npages = 2 };
	ASSERT_EQ(prefetch_ioctl(fd, &pf), -EINVAL);		/* wraps around */
	pf.npages = 1;
	ASSERT_EQ(prefetch_ioctl(fd, &pf), -EFAULT);		/* the last page */
	PREFETCH_FAILS(npages, 0);
	PREFETCH_FAILS(npages, DRM_VSVM_PREFETCH_MAX + 1);
	PREFETCH_FAILS(npages, 1ULL << 40);
	PREFETCH_FAILS(flags, 1);
	PREFETCH_FAILS(pad, 1);
	PREFETCH_FAILS(reserved, 1);

	ASSERT_EQ(sizeof(old) + 8, sizeof(struct drm_vsvm_prefetch));
	ASSERT_EQ(ioctl(fd, old_cmd, &old), 0);
	ASSERT_EQ(vsvm_query(fd, p), DRM_VSVM_PTE_VALID | DRM_VSVM_PTE_WRITE |
		  DRM_VSVM_PTE_ATOMIC);
	p[0] = 0;	/* back to the CPU */
}

TEST_F(uapi, query_fields)
{
	struct drm_vsvm_query q = { .addr = (uintptr_t)self->p, .flags = 2 };

	ASSERT_EQ(ioctl(self->fd, DRM_IOCTL_VSVM_QUERY, &q), -1);
	ASSERT_EQ(errno, EINVAL);
	q = (struct drm_vsvm_query){ .addr = (uintptr_t)self->p, .reserved = 1 };
	ASSERT_EQ(ioctl(self->fd, DRM_IOCTL_VSVM_QUERY, &q), -1);
	ASSERT_EQ(errno, EINVAL);
}

/* Statistics: every byte but the flags is written, and the structure can grow. */
TEST_F(uapi, stats_output)
{
	struct drm_vsvm_stats s;
	struct {
		struct drm_vsvm_stats s;
		__u64 newer[2];
	} big;
	struct {
		__u64 ops, faults;
		__u64 canary;
	} small;
	/* An older program's read-only ioctl: DRM passes the kernel zeros for the flags. */
	unsigned long small_cmd = DRM_IOR(DRM_COMMAND_BASE + DRM_VSVM_STATS, __u64[2]);
	unsigned long big_cmd = DRM_IOWR(DRM_COMMAND_BASE + DRM_VSVM_STATS, big);

	ASSERT_EQ(vsvm_add64(self->fd, self->p, 1), 0);
	self->p[0] = 0;
	memset(&s, 0xff, sizeof(s));
	ASSERT_EQ(ioctl(self->fd, DRM_IOCTL_VSVM_STATS, &s), -1);
	ASSERT_EQ(errno, EINVAL);		/* unknown flags */
	memset(&s, 0xff, sizeof(s));
	s.flags = 0;
	ASSERT_EQ(ioctl(self->fd, DRM_IOCTL_VSVM_STATS, &s), 0);
	ASSERT_EQ(s.ops, 1);
	ASSERT_EQ(s.faults, 1);
	ASSERT_EQ(s.device, 0);
	ASSERT_EQ(s.causes, DRM_VSVM_REVOKE_COUNT);
	ASSERT_EQ(s.revocations[DRM_VSVM_REVOKE_CPU], 1);
	for (int i = DRM_VSVM_REVOKE_COUNT; i < DRM_VSVM_REVOKE_SLOTS; i++)
		ASSERT_EQ(s.revocations[i], 0);
	ASSERT_EQ(s.pad, 0);
	ASSERT_EQ(s.reserved, 0);
	ASSERT_EQ(s.notifiers, 1);	/* the chunk of the page granted above */

	/* An older program with a shorter structure gets its prefix, nothing more. */
	memset(&small, 0xff, sizeof(small));
	ASSERT_EQ(ioctl(self->fd, small_cmd, &small), 0);
	ASSERT_EQ(small.ops, 1);
	ASSERT_EQ(small.faults, 1);
	ASSERT_EQ(small.canary, ~0ULL);
	/* A newer one's fields beyond what this kernel knows are left as they were. */
	memset(&big, 0xff, sizeof(big));
	big.s.flags = 0;
	ASSERT_EQ(ioctl(self->fd, big_cmd, &big), 0);
	ASSERT_EQ(big.s.ops, 1);
	ASSERT_EQ(big.s.reserved, 0);
	ASSERT_EQ(big.newer[0], ~0ULL);
	ASSERT_EQ(big.newer[1], ~0ULL);
}

/*
 * vsvm has no buffer objects, but DRM gives every driver its GEM file
 * operations and ioctls: they must find nothing to work on, and an mmap() of
 * the render node must fail.
 */
TEST_F(uapi, submit_fields)
{
	struct drm_vsvm_job_op ops[2];
	struct drm_vsvm_job_result res[2];
	struct drm_vsvm_wait w = { .seqno = 1 };
	struct drm_vsvm_submit s;
	int fd = self->fd;
	char *p = self->p;

#define SUBMIT_FAILS(field, value, err)						\
	do {									\
		ops[0] = (struct drm_vsvm_job_op){ .addr = (uintptr_t)p,	\
			.op = DRM_VSVM_OP_ADD, .width = 64, .operand = 1 };	\
		ops[1] = ops[0];						\
		s = (struct drm_vsvm_submit){ .ops = (uintptr_t)ops,		\
			.results = (uintptr_t)res, .count = 2 };		\
		field = value;							\
		ASSERT_EQ(ioctl(fd, DRM_IOCTL_VSVM_SUBMIT, &s) ? -errno : 0, err) \
			TH_LOG(#field);						\
	} while (0)

	SUBMIT_FAILS(s.flags, 1, -EINVAL);
	SUBMIT_FAILS(s.reserved, 1, -EINVAL);
	SUBMIT_FAILS(s.count, 0, -EINVAL);
	SUBMIT_FAILS(s.count, DRM_VSVM_SUBMIT_MAX + 1, -EINVAL);
	SUBMIT_FAILS(s.ops, 0, -EFAULT);
	/* A bad operation anywhere in the job refuses all of it. */
	SUBMIT_FAILS(ops[1].flags, 1, -EINVAL);
	SUBMIT_FAILS(ops[1].pad, 1, -EINVAL);
	SUBMIT_FAILS(ops[1].op, 6, -EINVAL);
	SUBMIT_FAILS(ops[1].width, 16, -EINVAL);
	SUBMIT_FAILS(ops[1].compare, 1, -EINVAL);
	SUBMIT_FAILS(ops[1].addr, (uintptr_t)p + 4, -EINVAL);
	ops[0] = (struct drm_vsvm_job_op){ .addr = (uintptr_t)p, .op = DRM_VSVM_OP_ADD,
					   .width = 32, .operand = 1ULL << 32 };
	s = (struct drm_vsvm_submit){ .ops = (uintptr_t)ops, .results = (uintptr_t)res,
				      .count = 1 };
	ASSERT_EQ(ioctl(fd, DRM_IOCTL_VSVM_SUBMIT, &s), -1);
	ASSERT_EQ(errno, EINVAL);
	/* Nothing was submitted: the first job still gets number 1. */
	s.count = 0;
	ASSERT_EQ(ioctl(fd, DRM_IOCTL_VSVM_SUBMIT, &s), -1);
	ASSERT_EQ(ioctl(fd, DRM_IOCTL_VSVM_WAIT, &w), -1);
	ASSERT_EQ(errno, EINVAL);
}

TEST_F(uapi, wait_fields)
{
	struct drm_vsvm_job_op op = { .addr = (uintptr_t)self->p, .op = DRM_VSVM_OP_OR,
				      .width = 64, .operand = 0 };
	struct drm_vsvm_job_result res;
	struct drm_vsvm_wait w;
	__u64 seqno;

	ASSERT_EQ(vsvm_submit(self->fd, &op, 1, &res, &seqno), 0);
	ASSERT_EQ(seqno, 1);
#define WAIT_FAILS(field, value)						\
	do {									\
		w = (struct drm_vsvm_wait){ .seqno = 1, .timeout_ns = 0 };	\
		w.field = value;						\
		ASSERT_EQ(ioctl(self->fd, DRM_IOCTL_VSVM_WAIT, &w), -1) TH_LOG(#field); \
		ASSERT_EQ(errno, EINVAL) TH_LOG(#field);			\
	} while (0)
	WAIT_FAILS(seqno, 0);
	WAIT_FAILS(seqno, 2);
	WAIT_FAILS(seqno, ~0ULL);
	WAIT_FAILS(timeout_ns, -1);
	WAIT_FAILS(flags, 1);
	WAIT_FAILS(pad, 1);
	WAIT_FAILS(reserved, 1);
	ASSERT_EQ(vsvm_wait(self->fd, 1, 10000000000LL), 0);
	ASSERT_EQ(res.error, 0);
	ASSERT_EQ(res.value, 0);
	/* Give the page back to the CPU for the fixture's check. */
	ASSERT_EQ(self->p[0], 0);
}

TEST_F(uapi, no_buffer_objects)
{
	struct drm_gem_close close_req = { .handle = 1 };
	struct drm_prime_handle export = { .handle = 1, .flags = DRM_CLOEXEC };
	struct drm_prime_handle import = { .fd = self->fd };
	struct drm_gem_flink flink = { .handle = 1 };
	struct drm_gem_open open_req = { .name = 1 };
	struct drm_mode_create_dumb dumb = { .width = 64, .height = 64, .bpp = 32 };
	struct drm_vsvm_query unknown = { 0 };
	unsigned long unknown_cmd = DRM_IOWR(DRM_COMMAND_BASE + DRM_VSVM_WAIT + 1,
					     struct drm_vsvm_query);
	void *m;

	for (unsigned long off = 0; off <= (1UL << 32); off += 1UL << 32) {
		m = mmap(NULL, PAGE_SZ, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, off);
		ASSERT_EQ(m, MAP_FAILED);
		ASSERT_EQ(errno, EINVAL);
	}
	ASSERT_EQ(ioctl(self->fd, DRM_IOCTL_GEM_CLOSE, &close_req), -1);
	ASSERT_EQ(errno, EINVAL);
	ASSERT_EQ(ioctl(self->fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &export), -1);
	ASSERT_EQ(errno, ENOENT);
	ASSERT_EQ(ioctl(self->fd, DRM_IOCTL_PRIME_FD_TO_HANDLE, &import), -1);
	ASSERT_EQ(errno, EINVAL);			/* not a dma-buf */
	/* Not allowed on a render node at all. */
	ASSERT_EQ(ioctl(self->fd, DRM_IOCTL_GEM_FLINK, &flink), -1);
	ASSERT_EQ(errno, EACCES);
	ASSERT_EQ(ioctl(self->fd, DRM_IOCTL_GEM_OPEN, &open_req), -1);
	ASSERT_EQ(errno, EACCES);
	ASSERT_EQ(ioctl(self->fd, DRM_IOCTL_MODE_CREATE_DUMB, &dumb), -1);
	ASSERT_EQ(errno, EACCES);
	/* A driver ioctl number past the last one. */
	ASSERT_EQ(ioctl(self->fd, unknown_cmd, &unknown), -1);
	ASSERT_EQ(errno, EINVAL);
}

TEST_HARNESS_MAIN

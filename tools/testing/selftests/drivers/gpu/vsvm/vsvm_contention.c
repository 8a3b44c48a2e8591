// SPDX-License-Identifier: GPL-2.0
/*
 * Multi-GPU contention: every vsvm device (several threads each) and several
 * CPU threads add to the same counters at once, on one page and spread over
 * the 512 pages of a THP.  The sums must be exact and everybody must finish.
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "kselftest_harness.h"
#include "vsvm_common.h"
#include "thp.h"

#define DEV_THREADS	2
#define CPU_THREADS	2

struct worker {
	int fd;			/* -1: a CPU thread */
	uint64_t *counters;	/* one per page, PAGE_SZ apart */
	unsigned long pages;
	unsigned long rounds;
	unsigned long done;
	int err;
};

static void *work(void *arg)
{
	struct worker *w = arg;

	for (unsigned long r = 0; r < w->rounds; r++) {
		if (w->fd < 0) {
			for (unsigned long i = 0; i < w->pages; i++)
				__atomic_fetch_add(&w->counters[i * PAGE_SZ / 8], 1,
						   __ATOMIC_SEQ_CST);
		} else if (w->pages == 1) {
			w->err = vsvm_add64(w->fd, w->counters, 1);
		} else {
			w->err = vsvm_range(w->fd, w->counters, PAGE_SZ, w->pages,
					    DRM_VSVM_OP_ADD, 64, 1, NULL);
		}
		if (w->err)
			break;
		w->done++;
		/* Interleave: the CPU threads are much faster than an ioctl. */
		if (w->fd < 0 && (r & 7) == 0)
			sched_yield();
	}
	return NULL;
}

static void contend(struct __test_metadata *_metadata, uint64_t *counters,
		    unsigned long pages, unsigned long rounds)
{
	int ndev = vsvm_count(), fds[VSVM_MAX_DEVICES];
	struct worker w[VSVM_MAX_DEVICES * DEV_THREADS + CPU_THREADS];
	pthread_t t[VSVM_MAX_DEVICES * DEV_THREADS + CPU_THREADS];
	int n = 0;

	ASSERT_GE(ndev, 2);
	for (int d = 0; d < ndev; d++) {
		fds[d] = vsvm_open(d);
		ASSERT_GE(fds[d], 0);
		for (int k = 0; k < DEV_THREADS; k++)
			w[n++] = (struct worker){ .fd = fds[d], .counters = counters,
						  .pages = pages, .rounds = rounds };
	}
	for (int k = 0; k < CPU_THREADS; k++)
		w[n++] = (struct worker){ .fd = -1, .counters = counters,
					  .pages = pages, .rounds = rounds };
	for (int i = 0; i < n; i++)
		ASSERT_EQ(pthread_create(&t[i], NULL, work, &w[i]), 0);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);

	for (int i = 0; i < n; i++) {
		EXPECT_EQ(w[i].err, 0) TH_LOG("participant %d: %s", i, strerror(-w[i].err));
		/* Everybody made all their progress. */
		EXPECT_EQ(w[i].done, rounds);
	}
	for (unsigned long i = 0; i < pages; i++)
		ASSERT_EQ(counters[i * PAGE_SZ / 8], (uint64_t)n * rounds);
	for (int d = 0; d < ndev; d++) {
		struct drm_vsvm_stats s;

		ASSERT_EQ(vsvm_stats(fds[d], &s), 0);
		TH_LOG("device %d: ops %llu faults %llu granted %llu retries %llu",
		       d, s.ops, s.faults, s.pages_granted, s.retries);
		TH_LOG("device %d: revoked by cpu %llu, by device %llu", d,
		       s.revocations[DRM_VSVM_REVOKE_CPU], s.revocations[DRM_VSVM_REVOKE_DEVICE]);
		ASSERT_EQ(s.ops, DEV_THREADS * rounds * pages);
		ASSERT_EQ(s.timeouts, 0);
		close(fds[d]);
	}
}

TEST(one_page)
{
	uint64_t *p = mmap(NULL, PAGE_SZ, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_NE(p, MAP_FAILED);
	p[0] = 0;
	contend(_metadata, p, 1, 2000);
	munmap(p, PAGE_SZ);
}

TEST(spread_over_a_thp)
{
	uint64_t *p = thp_alloc();

	ASSERT_NE(p, NULL);
	memset(p, 0, THP_SZ);
	contend(_metadata, p, THP_SZ / PAGE_SZ, 10);
	munmap(p, THP_SZ);
}

TEST_HARNESS_MAIN

// SPDX-License-Identifier: GPL-2.0
/*
 * Selftests of vsvm's fault buffer: a device access that misses writes a
 * fault record and stalls; the device's fault worker (a kernel worker, not
 * the faulting task) services the records, several processes' at once, and
 * the access replays.  The buffer has 16 slots: more outstanding faults wait
 * for room, and none is lost.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "vsvm_common.h"
#include "thp.h"

#define STATS	"/sys/kernel/debug/vsvm/vsvm0/stats"

struct adder {
	int fd;
	uint64_t *base;		/* @pages pages, a counter at the start of each */
	unsigned long pages;
	unsigned long rounds;
	int err;
};

/*
 * Adds 1 to each page's counter, in one job per round: an engine reports the
 * faults of all the pages at once (the CPU took them back after each round).
 */
static void *add_pages(void *arg)
{
	struct adder *a = arg;

	for (unsigned long r = 0; r < a->rounds && !a->err; r++) {
		a->err = vsvm_range(a->fd, a->base, PAGE_SZ, a->pages, DRM_VSVM_OP_ADD, 64, 1,
				    NULL);
		/* The CPU takes the pages back: the next round faults again. */
		for (unsigned long i = 0; i < a->pages; i++)
			__atomic_fetch_add(&a->base[i * PAGE_SZ / 8 + 1], 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* Runs @n threads on device 0, each on its own @pages pages; checks every sum. */
static void run_adders(struct __test_metadata *_metadata, int fd, int n,
		       unsigned long pages, unsigned long rounds)
{
	uint64_t *mem = map_anon(n * pages * PAGE_SZ);
	struct adder a[64];
	pthread_t t[64];

	ASSERT_LE(n, 64);
	ASSERT_NE(mem, NULL);
	memset(mem, 0, n * pages * PAGE_SZ);
	for (int i = 0; i < n; i++) {
		a[i] = (struct adder){ .fd = fd, .base = mem + i * pages * PAGE_SZ / 8,
				       .pages = pages, .rounds = rounds };
		ASSERT_EQ(pthread_create(&t[i], NULL, add_pages, &a[i]), 0);
	}
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < n; i++) {
		EXPECT_EQ(a[i].err, 0) TH_LOG("thread %d: %s", i, strerror(-a[i].err));
		for (unsigned long p = 0; p < pages; p++)
			ASSERT_EQ(a[i].base[p * PAGE_SZ / 8], rounds);
	}
	munmap(mem, n * pages * PAGE_SZ);
}

FIXTURE(fault_buffer)
{
	int fd;
};

FIXTURE_SETUP(fault_buffer)
{
	self->fd = vsvm_open(0);
	ASSERT_GE(self->fd, 0) TH_LOG("no vsvm device: %s", strerror(-self->fd));
	ASSERT_GE(dev_stat("fault_records"), 0) TH_LOG("no %s", STATS);
}

FIXTURE_TEARDOWN(fault_buffer)
{
	close(self->fd);
}

/* A fault goes through the buffer, and a kernel worker, not this task, grants the page. */
TEST_F(fault_buffer, serviced_by_a_worker)
{
	const char *dir = "/sys/kernel/tracing";
	char path[128], line[512], me[32];
	long records = dev_stat("fault_records");
	int worker = 0, mine = 0;
	uint64_t *p = map_anon(PAGE_SZ);
	__u64 old = 0;
	FILE *f;

	ASSERT_NE(p, NULL);
	p[0] = 5;
	snprintf(path, sizeof(path), "%s/events/drm_svm/svm_fault_begin/enable", dir);
	ASSERT_EQ(write_file(path, "1"), 0);
	snprintf(path, sizeof(path), "%s/trace", dir);
	ASSERT_EQ(write_file(path, ""), 0);
	ASSERT_EQ(vsvm_atomic(self->fd, p, DRM_VSVM_OP_ADD, 64, 1, 0, &old), 0);
	ASSERT_EQ(old, 5);
	snprintf(path, sizeof(path), "%s/events/drm_svm/svm_fault_begin/enable", dir);
	ASSERT_EQ(write_file(path, "0"), 0);
	EXPECT_EQ(dev_stat("fault_records"), records + 1);
	snprintf(me, sizeof(me), "-%d ", getpid());
	snprintf(path, sizeof(path), "%s/trace", dir);
	f = fopen(path, "r");
	ASSERT_NE(f, NULL);
	while (fgets(line, sizeof(line), f)) {
		if (!strstr(line, "svm_fault_begin:"))
			continue;
		mine += !!strstr(line, me);
		worker += !!strstr(line, "kworker/");
	}
	fclose(f);
	EXPECT_EQ(worker, 1);
	EXPECT_EQ(mine, 0);
	EXPECT_EQ(p[0], 6);
	munmap(p, PAGE_SZ);
}

/*
 * More outstanding faults than the buffer has slots (two engines, each with
 * the faults of 16 pages): they wait for room, none is lost.
 */
TEST_F(fault_buffer, full_buffer_loses_nothing)
{
	long full = dev_stat("fault_buffer_full"), ahead = dev_stat("pages_ahead");
	long records = dev_stat("fault_records"), batches = dev_stat("fault_batches");
	long ranges = dev_stat("fault_ranges");
	int tries;

	for (tries = 1; tries <= 5; tries++) {
		run_adders(_metadata, self->fd, 32, 16, 4);
		if (dev_stat("fault_buffer_full") > full)
			break;
	}
	records = dev_stat("fault_records") - records;
	ahead = dev_stat("pages_ahead") - ahead;
	TH_LOG("%d tries; %ld records in %ld batches, %ld ranges, %ld pages granted ahead; "
	       "buffer full %ld times", tries, records, dev_stat("fault_batches") - batches,
	       dev_stat("fault_ranges") - ranges, ahead, dev_stat("fault_buffer_full") - full);
	EXPECT_GT(dev_stat("fault_buffer_full"), full);
	/*
	 * Each thread's access to each page in each round faulted, or found the
	 * page granted ahead by a fault before it.
	 */
	EXPECT_GE(records + ahead, 32 * 16 * 4 * tries);
}

/* Two processes' faults share the buffer; one is killed mid-job, the other finishes. */
TEST_F(fault_buffer, two_processes_one_killed)
{
	int status;
	pid_t child = fork();

	ASSERT_GE(child, 0);
	if (child == 0) {
		int fd = vsvm_open(0);

		if (fd < 0)
			_exit(2);
		/* Faults until killed. */
		run_adders(_metadata, fd, 8, 8, 1000000);
		_exit(1);
	}
	usleep(100 * 1000);
	run_adders(_metadata, self->fd, 8, 8, 8);
	ASSERT_EQ(kill(child, SIGKILL), 0);
	ASSERT_EQ(waitpid(child, &status, 0), child);
	ASSERT_TRUE(WIFSIGNALED(status)) TH_LOG("child exited with %d", WEXITSTATUS(status));
	/* The device still works after the killed process's faults. */
	run_adders(_metadata, self->fd, 4, 4, 2);
}

/*
 * Two processes fault at neighbouring addresses, each mapped in one of them
 * only: the worker must not merge them into one range, which would grant one
 * process's page in the other's address space (EFAULT there).
 */
TEST_F(fault_buffer, neighbours_of_two_processes_stay_apart)
{
	int rounds = 300, status, i, err = 0;
	uint64_t *p = map_anon(2 * PAGE_SZ);
	pid_t child;

	ASSERT_NE(p, NULL);
	child = fork();
	ASSERT_GE(child, 0);
	if (child == 0) {
		/* The child has the second page only. */
		int fd = vsvm_open(0);
		uint64_t *q = p + PAGE_SZ / 8;

		if (fd < 0 || munmap(p, PAGE_SZ))
			_exit(2);
		for (i = 0; i < rounds; i++) {
			if (vsvm_add64(fd, q, 1))
				_exit(3);
			__atomic_fetch_add(&q[1], 1, __ATOMIC_RELAXED);
		}
		_exit(q[0] == (uint64_t)rounds ? 0 : 4);
	}
	/* The parent has the first page only. */
	ASSERT_EQ(munmap(p + PAGE_SZ / 8, PAGE_SZ), 0);
	p[0] = 0;
	for (i = 0; i < rounds && !err; i++) {
		err = vsvm_add64(self->fd, p, 1);
		__atomic_fetch_add(&p[1], 1, __ATOMIC_RELAXED);
	}
	EXPECT_EQ(err, 0) TH_LOG("parent: %s", strerror(-err));
	EXPECT_EQ(p[0], (uint64_t)rounds);
	ASSERT_EQ(waitpid(child, &status, 0), child);
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("child: status %#x", status);
	munmap(p, PAGE_SZ);
}

TEST_HARNESS_MAIN

// SPDX-License-Identifier: GPL-2.0
/*
 * Selftests of vsvm's engines: jobs run in the engines' workers, which reach
 * memory through a TLB of the device page table.  A revocation shoots the
 * translations down before the page goes back to the CPU, and two engines of
 * one device never interleave their read-modify-writes of a word.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "kselftest_harness.h"
#include "vsvm_common.h"
#include "thp.h"

/* Operations engine @engine of device 0 ran, or -1 if it has no such engine. */
static long engine_ops(int engine)
{
	return vsvm_dev_stat_field("engine_ops", engine);
}

FIXTURE(engines)
{
	int fd;
	uint64_t *p;
};

FIXTURE_SETUP(engines)
{
	self->fd = vsvm_open(0);
	ASSERT_GE(self->fd, 0) TH_LOG("no vsvm device: %s", strerror(-self->fd));
	ASSERT_GE(dev_stat("tlb_hits"), 0) TH_LOG("no engine statistics in debugfs");
	self->p = map_anon(PAGE_SZ);
	ASSERT_NE(self->p, NULL);
}

FIXTURE_TEARDOWN(engines)
{
	munmap(self->p, PAGE_SZ);
	close(self->fd);
}

/*
 * Repeated operations on a page hit in the TLB; the CPU taking the page back
 * shoots the translation down first, and the next operation faults again.
 */
TEST_F(engines, translations_are_cached_and_shot_down)
{
	long hits = dev_stat("tlb_hits"), shootdowns = dev_stat("tlb_shootdowns");
	long shot = dev_stat("tlb_entries_shot");
	struct drm_vsvm_atomic a = { .op = DRM_VSVM_OP_ADD, .width = 64, .operand = 1 };

	self->p[0] = 0;
	for (int i = 0; i < 100; i++)
		ASSERT_EQ(vsvm_add64(self->fd, self->p, 1), 0);
	/* A miss per engine at most, and one for the fault's replay. */
	EXPECT_GE(dev_stat("tlb_hits") - hits, 100 - 4);
	EXPECT_EQ(dev_stat("tlb_shootdowns"), shootdowns);
	ASSERT_NE(vsvm_query(self->fd, self->p), 0);

	/* The CPU's write revokes the grant: the translation goes before the page does. */
	self->p[1] = 1;
	EXPECT_EQ(vsvm_query(self->fd, self->p), 0);
	EXPECT_GE(dev_stat("tlb_shootdowns") - shootdowns, 1);
	EXPECT_GE(dev_stat("tlb_entries_shot") - shot, 1);

	a.addr = (uintptr_t)self->p;
	ASSERT_EQ(ioctl(self->fd, DRM_IOCTL_VSVM_ATOMIC, &a), 0);
	EXPECT_EQ(a.result, 100);
	EXPECT_EQ(a.faults, 1);
	EXPECT_EQ(self->p[0], 101);
}

struct submitter {
	int fd;
	uint64_t *word;
	unsigned long rounds;
	int err;
};

static void *submit(void *arg)
{
	struct submitter *s = arg;

	for (unsigned long r = 0; r < s->rounds && !s->err; r++)
		s->err = vsvm_range(s->fd, s->word, 0, 64, DRM_VSVM_OP_ADD, 64, 1, NULL);
	return NULL;
}

/*
 * Four threads submit jobs on one word of one device: the jobs spread over the
 * engines, which hold the same translation at once, and the sum is exact.
 */
TEST_F(engines, engines_of_one_device_lose_no_update)
{
	const int n = 4, rounds = 200;
	long before[4], after, total = 0, busy = 0;
	struct submitter s[4];
	pthread_t t[4];
	int i;

	for (int e = 0; e < 4; e++)
		before[e] = engine_ops(e);
	ASSERT_GE(before[1], 0) TH_LOG("device 0 has one engine: the test needs two");
	self->p[0] = 0;
	for (int i = 0; i < n; i++) {
		s[i] = (struct submitter){ .fd = self->fd, .word = self->p, .rounds = rounds };
		ASSERT_EQ(pthread_create(&t[i], NULL, submit, &s[i]), 0);
	}
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < n; i++) {
		if (s[i].err)
			TH_LOG("thread %d: %s", i, strerror(-s[i].err));
		EXPECT_EQ(s[i].err, 0);
	}
	for (int e = 0; e < 4 && before[e] >= 0; e++) {
		after = engine_ops(e);
		TH_LOG("engine %d: %ld operations", e, after - before[e]);
		total += after - before[e];
		busy += after > before[e];
	}
	EXPECT_EQ(self->p[0], (uint64_t)n * rounds * 64);
	EXPECT_EQ(total, (long)n * rounds * 64);
	EXPECT_GE(busy, 2);
}

TEST_HARNESS_MAIN

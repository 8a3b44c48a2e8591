// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel memory a user can make vsvm hold: failed device faults must leave
 * nothing behind.
 */
#include <stdlib.h>
#include <sys/mman.h>

#include "kselftest_harness.h"
#include "vsvm_common.h"

#define CHUNK_SZ	(2UL << 20)
#define FAULTS		20000UL

/* Slab: from /proc/meminfo, in kB; -1 on error. */
static long slab_kb(void)
{
	char line[128];
	long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Slab: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/*
 * Prefetches of one page at 2 MiB strides over unmapped addresses each fail
 * with EFAULT, and the kernel keeps nothing for them: before the backend
 * removed the notifier of a chunk that holds no grant, each left one behind
 * (about 660 bytes), until the file was closed.
 */
TEST(failed_faults_leave_no_kernel_memory)
{
	unsigned long len = FAULTS * CHUNK_SZ;
	char *hole = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			  -1, 0);
	long before, after;
	int fd = vsvm_open(0);

	ASSERT_GE(fd, 0);
	ASSERT_NE(hole, MAP_FAILED);
	ASSERT_EQ(munmap(hole, len), 0);
	/* Settle the slab with a first round, then measure a second. */
	for (unsigned long i = 0; i < FAULTS / 10; i++)
		ASSERT_EQ(vsvm_prefetch(fd, hole + i * CHUNK_SZ, 1), -EFAULT);
	before = slab_kb();
	for (unsigned long i = 0; i < FAULTS; i++)
		ASSERT_EQ(vsvm_prefetch(fd, hole + i * CHUNK_SZ, 1), -EFAULT);
	after = slab_kb();
	TH_LOG("slab %ld kB before, %ld kB after %lu failed faults", before, after, FAULTS);
	ASSERT_GT(before, 0);
	/* 20000 notifiers would be about 13 MB. */
	ASSERT_LT(after - before, 2048);
	close(fd);
}

TEST_HARNESS_MAIN

// SPDX-License-Identifier: GPL-2.0
/*
 * The C reference: test_hmm's HMM_DMIRROR_EXCLUSIVE on THP-backed anonymous
 * memory, the scenario of the "mm: fixes for device-exclusive entries (hmm)"
 * series, checked on the kernel this project builds.  It is also the baseline
 * the vsvm driver is measured against.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "test_hmm_uapi.h"
#include "thp.h"

FIXTURE(dmirror)
{
	int fd;
};

FIXTURE_SETUP(dmirror)
{
	self->fd = open("/dev/hmm_dmirror0", O_RDWR);
	ASSERT_GE(self->fd, 0) TH_LOG("open /dev/hmm_dmirror0: %s", strerror(errno));
}

FIXTURE_TEARDOWN(dmirror)
{
	close(self->fd);
}

static int dmirror_cmd(int fd, unsigned long req, void *addr, void *mirror,
		       unsigned long npages, struct hmm_dmirror_cmd *cmd)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->addr = (uintptr_t)addr;
	cmd->ptr = (uintptr_t)mirror;
	cmd->npages = npages;
	return ioctl(fd, req, cmd) ? -errno : 0;
}

/* The upstream hmm-tests "exclusive" case, on a few 4 KiB pages. */
TEST_F(dmirror, exclusive_small_pages)
{
	unsigned long npages = 16, size = npages * PAGE_SZ, i;
	struct hmm_dmirror_cmd cmd;
	int *ptr, *mirror;

	ptr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(ptr, MAP_FAILED);
	ASSERT_EQ(madvise(ptr, size, MADV_NOHUGEPAGE), 0);
	mirror = malloc(size);
	ASSERT_NE(mirror, NULL);
	for (i = 0; i < size / sizeof(int); i++)
		ptr[i] = i;

	ASSERT_EQ(dmirror_cmd(self->fd, HMM_DMIRROR_EXCLUSIVE, ptr, mirror, npages, &cmd), 0);
	ASSERT_EQ(cmd.cpages, npages);
	for (i = 0; i < size / sizeof(int); i++)
		ASSERT_EQ(mirror[i], (int)i);

	/* The CPU takes every page back. */
	for (i = 0; i < size / sizeof(int); i++)
		ASSERT_EQ(ptr[i]++, (int)i);
	for (i = 0; i < size / sizeof(int); i++)
		ASSERT_EQ(ptr[i], (int)i + 1);
	ASSERT_EQ(dmirror_cmd(self->fd, HMM_DMIRROR_CHECK_EXCLUSIVE, ptr, NULL, npages, &cmd), 0);

	free(mirror);
	munmap(ptr, size);
}

/* The seed's scenario: device-exclusive access to every page of a THP. */
TEST_F(dmirror, exclusive_thp)
{
	unsigned long npages = THP_SZ / PAGE_SZ, i;
	struct hmm_dmirror_cmd cmd;
	int *ptr, *mirror;

	ptr = thp_alloc();
	ASSERT_NE(ptr, NULL);
	mirror = malloc(THP_SZ);
	ASSERT_NE(mirror, NULL);
	for (i = 0; i < THP_SZ / sizeof(int); i++)
		ptr[i] = i;
	/* The guest's config guarantees THP: not getting one is a failure. */
	ASSERT_EQ(anon_huge_kb(ptr), THP_SZ >> 10);
	ASSERT_EQ(page_is_thp(ptr + PAGE_SZ / sizeof(int)), 1);

	ASSERT_EQ(dmirror_cmd(self->fd, HMM_DMIRROR_EXCLUSIVE, ptr, mirror, npages, &cmd), 0);
	ASSERT_EQ(cmd.cpages, npages);
	for (i = 0; i < THP_SZ / sizeof(int); i++)
		ASSERT_EQ(mirror[i], (int)i);
	/* The PMD was split to PTEs for the exclusive entries. */
	EXPECT_EQ(anon_huge_kb(ptr), 0);

	/* CPU access revokes the device's access, data intact. */
	for (i = 0; i < THP_SZ / sizeof(int); i++)
		ASSERT_EQ(ptr[i]++, (int)i);
	for (i = 0; i < THP_SZ / sizeof(int); i += 1024)
		ASSERT_EQ(ptr[i], (int)i + 1);
	ASSERT_EQ(dmirror_cmd(self->fd, HMM_DMIRROR_CHECK_EXCLUSIVE, ptr, NULL, npages, &cmd), 0);

	/* The folio is still one large folio, now mapped by PTEs. */
	EXPECT_EQ(page_is_thp(ptr), 1);
	EXPECT_EQ(page_is_thp(ptr + (THP_SZ - PAGE_SZ) / sizeof(int)), 1);

	free(mirror);
	munmap(ptr, THP_SZ);
}

/* One subpage of a THP, then the CPU touches its neighbours and the page. */
TEST_F(dmirror, exclusive_thp_one_subpage)
{
	struct hmm_dmirror_cmd cmd;
	int *ptr, mirror[PAGE_SZ / sizeof(int)];
	int *sub;

	ptr = thp_alloc();
	ASSERT_NE(ptr, NULL);
	memset(ptr, 0x5a, THP_SZ);
	ASSERT_EQ(anon_huge_kb(ptr), THP_SZ >> 10);

	sub = ptr + 7 * PAGE_SZ / sizeof(int);
	ASSERT_EQ(dmirror_cmd(self->fd, HMM_DMIRROR_EXCLUSIVE, sub, mirror, 1, &cmd), 0);
	ASSERT_EQ(cmd.cpages, 1);
	ASSERT_EQ(mirror[0], 0x5a5a5a5a);
	/* The neighbours stay with the CPU and do not revoke the grant. */
	ptr[0] = 1;
	ptr[8 * PAGE_SZ / sizeof(int)] = 2;
	ASSERT_EQ(dmirror_cmd(self->fd, HMM_DMIRROR_CHECK_EXCLUSIVE, sub, NULL, 1, &cmd), -EPERM);
	/* Touching the page itself does. */
	sub[0] = 3;
	ASSERT_EQ(dmirror_cmd(self->fd, HMM_DMIRROR_CHECK_EXCLUSIVE, sub, NULL, 1, &cmd), 0);
	EXPECT_EQ(page_is_thp(sub), 1);
	munmap(ptr, THP_SZ);
}

TEST_HARNESS_MAIN

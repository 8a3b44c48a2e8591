// SPDX-License-Identifier: GPL-2.0
/*
 * Selftests of vsvm's DMA: a granted page is mapped for the device's DMA, the
 * device reaches it by its DMA address, and every mapping ends when the grant
 * does.  Booted with swiotlb=force, every mapping is bounced: the device then
 * works on a copy of the page, which the unmapping copies back, and
 * /sys/kernel/debug/swiotlb/io_tlb_used counts the live mappings (a page is
 * 2 slots of 2 KiB).  Without it, no grant may use the bounce buffer.
 */
#include <stdlib.h>
#include <sys/mman.h>

#include "kselftest_harness.h"
#include "vsvm_common.h"
#include "thp.h"

#define IO_TLB_USED	"/sys/kernel/debug/swiotlb/io_tlb_used"
#define SLOTS_PER_PAGE	(PAGE_SZ / 2048)

/* Slots of the bounce buffer in use, or -errno. */
static long bounce_used(void)
{
	char buf[32];
	int ret = read_file(IO_TLB_USED, buf, sizeof(buf));

	return ret ? ret : strtol(buf, NULL, 10);
}

/* Whether the kernel bounces every DMA mapping (swiotlb=force). */
static int bounce_forced(void)
{
	char buf[4096];

	return !read_file("/proc/cmdline", buf, sizeof(buf)) &&
	       strstr(buf, "swiotlb=force");
}

FIXTURE(vsvm_dma)
{
	int fd;
	int fd1;
	long base;
	long per_page;
};

FIXTURE_SETUP(vsvm_dma)
{
	self->fd = vsvm_open(0);
	ASSERT_GE(self->fd, 0) TH_LOG("no vsvm device: %s", strerror(-self->fd));
	self->fd1 = vsvm_open(1);
	ASSERT_GE(self->fd1, 0) TH_LOG("no second vsvm device");
	self->base = bounce_used();
	ASSERT_GE(self->base, 0) TH_LOG("%s: %s", IO_TLB_USED, strerror(-self->base));
	self->per_page = bounce_forced() ? SLOTS_PER_PAGE : 0;
	TH_LOG("swiotlb %s, %ld slots in use", self->per_page ? "forced" : "not forced",
	       self->base);
}

FIXTURE_TEARDOWN(vsvm_dma)
{
	if (self->fd >= 0)
		close(self->fd);
	close(self->fd1);
}

/* Each grant is one mapping; the CPU taking the pages back ends them, data intact. */
TEST_F(vsvm_dma, grants_are_mapped_and_unmapped)
{
	unsigned long npages = 64, i;
	uint64_t *p = map_anon(npages * PAGE_SZ);
	__u64 old = 0;

	ASSERT_NE(p, NULL);
	for (i = 0; i < npages; i++)
		p[i * PAGE_SZ / 8] = i;
	ASSERT_EQ(vsvm_prefetch(self->fd, p, npages), 0);
	ASSERT_EQ(bounce_used(), self->base + npages * self->per_page);
	/* The device reads what the CPU wrote, and writes: through the bounce buffer. */
	for (i = 0; i < npages; i++) {
		ASSERT_EQ(vsvm_atomic(self->fd, &p[i * PAGE_SZ / 8], DRM_VSVM_OP_ADD, 64, 1000,
				      0, &old), 0);
		ASSERT_EQ(old, i);
	}
	ASSERT_EQ(bounce_used(), self->base + npages * self->per_page);
	/* The CPU sees the device's writes once it takes the pages back. */
	for (i = 0; i < npages; i++)
		ASSERT_EQ(p[i * PAGE_SZ / 8], i + 1000);
	ASSERT_EQ(bounce_used(), self->base);
	munmap(p, npages * PAGE_SZ);
}

/* Two devices take one page in turn: each hand-over copies the page out and in. */
TEST_F(vsvm_dma, devices_hand_a_page_over)
{
	uint64_t *p = map_anon(PAGE_SZ);
	int i, rounds = 200;
	__u64 old = 0;

	ASSERT_NE(p, NULL);
	p[0] = 0;
	for (i = 0; i < rounds; i++) {
		ASSERT_EQ(vsvm_atomic(i % 2 ? self->fd1 : self->fd, p, DRM_VSVM_OP_ADD, 64, 1, 0,
				      &old), 0);
		ASSERT_EQ(old, (__u64)i);
		/* One device holds the page: one mapping. */
		ASSERT_EQ(bounce_used(), self->base + self->per_page);
	}
	ASSERT_EQ(p[0], (uint64_t)rounds);
	ASSERT_EQ(bounce_used(), self->base);
	munmap(p, PAGE_SZ);
}

/* Closing the file, or unmapping the memory, ends the mappings of what the device held. */
TEST_F(vsvm_dma, close_and_munmap_unmap)
{
	unsigned long npages = 32, i;
	uint64_t *p = map_anon(2 * npages * PAGE_SZ);
	uint64_t *q = p + npages * PAGE_SZ / 8;
	__u64 old = 0;

	ASSERT_NE(p, NULL);
	memset(p, 0, 2 * npages * PAGE_SZ);
	for (i = 0; i < npages; i++)
		ASSERT_EQ(vsvm_atomic(self->fd, &p[i * PAGE_SZ / 8], DRM_VSVM_OP_ADD, 64, 7, 0,
				      &old), 0);
	ASSERT_EQ(vsvm_prefetch(self->fd1, q, npages), 0);
	ASSERT_EQ(bounce_used(), self->base + 2 * npages * self->per_page);
	close(self->fd);
	self->fd = -1;
	ASSERT_EQ(bounce_used(), self->base + npages * self->per_page);
	munmap(q, npages * PAGE_SZ);
	ASSERT_EQ(bounce_used(), self->base);
	/* What the device wrote before the file closed reached memory. */
	for (i = 0; i < npages; i++)
		ASSERT_EQ(p[i * PAGE_SZ / 8], 7);
	munmap(p, npages * PAGE_SZ);
}

TEST_HARNESS_MAIN

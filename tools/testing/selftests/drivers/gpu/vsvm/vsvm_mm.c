// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel's own ways of taking pages away from a device: reclaim to swap,
 * compaction and migration, exit and exec, mremap, partial munmap and
 * mprotect of a THP, MADV_FREE, MADV_DONTFORK and MADV_WIPEONFORK,
 * userfaultfd and hugetlb.  Every test checks the data with
 * the device's atomics, which are atomic only with respect to the device
 * (vsvm's read-modify-write window), and how the grants were revoked.
 *
 * The tests need swap, cgroup2 at /sys/fs/cgroup, test_hmm's
 * /dev/hmm_dmirror0 and two NUMA nodes (numa=fake=2 will do).
 */
#define _GNU_SOURCE
#include <linux/mempolicy.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "vsvm_common.h"
#include "thp.h"
#include "cgroup.h"

#define ATOMIC_PTE	(DRM_VSVM_PTE_VALID | DRM_VSVM_PTE_WRITE | DRM_VSVM_PTE_ATOMIC)
#define NPAGES		(THP_SZ / PAGE_SZ)
#define U64_PER_PAGE	(PAGE_SZ / 8)

FIXTURE(mm)
{
	int fd;
	int fd1;
};

FIXTURE_SETUP(mm)
{
	self->fd = vsvm_open(0);
	ASSERT_GE(self->fd, 0) TH_LOG("no vsvm device: %s", strerror(-self->fd));
	self->fd1 = vsvm_open(1);
	ASSERT_GE(self->fd1, 0) TH_LOG("no second vsvm device");
}

FIXTURE_TEARDOWN(mm)
{
	close(self->fd);
	close(self->fd1);
}

/* A kB field ("Swap:", "Rss:", ...) of the VMA containing @addr in /proc/self/smaps. */
static long smaps_kb(void *addr, const char *field)
{
	unsigned long lo, hi, a = (uintptr_t)addr;
	char line[256], fmt[64];
	int in_vma = 0;
	long kb = -1;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	snprintf(fmt, sizeof(fmt), "%s %%ld kB", field);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in_vma = a >= lo && a < hi;
			continue;
		}
		if (in_vma && sscanf(line, fmt, &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

/* @n pages of anonymous memory, the first u64 of page i set to @base + i; NULL on failure. */
static uint64_t *counted_pages(unsigned long n, uint64_t base)
{
	uint64_t *p = map_anon(n * PAGE_SZ);

	for (unsigned long i = 0; p && i < n; i++)
		p[i * U64_PER_PAGE] = base + i;
	return p;
}

/* The first page i of @n whose first u64 is not @stride * i + @add, or -1 if none. */
static long first_wrong(const uint64_t *p, unsigned long n, uint64_t stride, uint64_t add)
{
	for (unsigned long i = 0; i < n; i++)
		if (p[i * U64_PER_PAGE] != stride * i + add)
			return i;
	return -1;
}

/* A THP-backed 2 MiB buffer whose page i holds i * 1000 in its first u64. */
static uint64_t *thp_buffer(struct __test_metadata *_metadata)
{
	uint64_t *p = thp_alloc();

	if (!p)
		return NULL;
	for (unsigned long i = 0; i < NPAGES; i++)
		p[i * U64_PER_PAGE] = i * 1000;
	/* The guest's config guarantees THP: not getting one is a failure. */
	EXPECT_EQ(anon_huge_kb(p), THP_SZ >> 10);
	EXPECT_EQ(page_is_thp(p), 1);
	return p;
}

/* Adds @v with the device to the first u64 of every page; 0 or -errno. */
static int device_add_pages(int fd, uint64_t *p, unsigned long n, __u64 v)
{
	return vsvm_range(fd, p, PAGE_SZ, n, DRM_VSVM_OP_ADD, 64, v, NULL);
}

/* Drains every CPU's LRU batches (compaction does that), so reclaim sees the folios. */
static void drain_lru(void)
{
	write_file("/proc/sys/vm/compact_memory", "1");
}

/* Asks the memcg of this process (@name) to reclaim, until @p's VMA has @kb in swap. */
static long reclaim_to_swap(const char *name, void *p, long kb, int *passes)
{
	char path[128];
	long swap = 0;

	snprintf(path, sizeof(path), CGROUPS "/%s/memory.reclaim", name);
	for (*passes = 0; *passes < 8 && swap < kb; (*passes)++) {
		drain_lru();
		write_file(path, "8M");
		swap = smaps_kb(p, "Swap:");
	}
	return swap;
}

/*
 * Reclaim of a THP whose pages the device holds.  Each grant holds a folio
 * reference (so that a grant can never outlive its page), and reclaim does
 * not split a large folio with references it cannot account for: while
 * granted, the THP stays in memory with its grants.  Once the CPU has taken
 * the pages back (which drops the references), reclaim may take it; the data
 * survives swap-out and swap-in, and the device can take the pages again.
 */
TEST_F(mm, reclaim_granted_thp_to_swap)
{
	uint64_t *p;
	long swap;
	int pass;

	ASSERT_EQ(join_cgroup("vsvm_reclaim", "max"), 0);
	p = thp_buffer(_metadata);
	ASSERT_NE(p, NULL);
	ASSERT_EQ(vsvm_prefetch(self->fd, p, NPAGES), 0);
	ASSERT_EQ(device_add_pages(self->fd, p, NPAGES, 1), 0);
	swap = reclaim_to_swap("vsvm_reclaim", p, THP_SZ >> 10, &pass);
	TH_LOG("granted: swapped %ld kB of 2048 in %d passes", swap, pass);
	ASSERT_EQ(swap, 0);
	for (unsigned long i = 0; i < NPAGES; i += 17)
		ASSERT_EQ(vsvm_query(self->fd, p + i * U64_PER_PAGE), ATOMIC_PTE);
	/* The CPU takes every page back: the grants and their references go. */
	ASSERT_EQ(first_wrong(p, NPAGES, 1000, 1), -1);
	/*
	 * Not asserted: how much goes to swap varies from run to run, from none
	 * to all 2 MiB, depending on the THP's history with reclaim; it is
	 * logged.
	 */
	swap = reclaim_to_swap("vsvm_reclaim", p, THP_SZ >> 10, &pass);
	TH_LOG("taken back after failed passes: swapped %ld kB of 2048 in %d passes", swap, pass);
	ASSERT_EQ(vsvm_prefetch(self->fd, p, NPAGES), 0);
	ASSERT_EQ(device_add_pages(self->fd, p, NPAGES, 1), 0);
	ASSERT_EQ(first_wrong(p, NPAGES, 1000, 2), -1);
	munmap(p, THP_SZ);

	/* A fresh THP, granted, then taken back by the CPU before any reclaim. */
	p = thp_buffer(_metadata);
	ASSERT_NE(p, NULL);
	ASSERT_EQ(vsvm_prefetch(self->fd, p, NPAGES), 0);
	ASSERT_EQ(device_add_pages(self->fd, p, NPAGES, 1), 0);
	ASSERT_EQ(first_wrong(p, NPAGES, 1000, 1), -1);
	write_file(CGROUPS "/vsvm_reclaim/memory.reclaim", "8M");
	TH_LOG("fresh, taken back, one pass without draining: swapped %ld kB of 2048",
	       smaps_kb(p, "Swap:"));
	swap = reclaim_to_swap("vsvm_reclaim", p, THP_SZ >> 10, &pass);
	TH_LOG("fresh, taken back: swapped %ld kB of 2048 in %d passes", swap, pass);
	ASSERT_EQ(vsvm_prefetch(self->fd, p, NPAGES), 0);
	ASSERT_EQ(device_add_pages(self->fd, p, NPAGES, 1), 0);
	ASSERT_EQ(first_wrong(p, NPAGES, 1000, 2), -1);
	munmap(p, THP_SZ);
}

/*
 * The same THP through the C reference, test_hmm's HMM_DMIRROR_EXCLUSIVE, so
 * that a core-mm problem shows with either driver.
 */
#define HMM_DMIRROR_EXCLUSIVE	_IOWR('H', 0x05, struct hmm_dmirror_cmd)
struct hmm_dmirror_cmd {
	__u64 addr;
	__u64 ptr;
	__u64 npages;
	__u64 cpages;
	__u64 faults;
};

TEST_F(mm, reclaim_test_hmm_exclusive_thp_to_swap)
{
	struct hmm_dmirror_cmd cmd = { 0 };
	void *mirror = malloc(THP_SZ);
	uint64_t *p;
	long swap;
	int fd, pass;

	ASSERT_NE(mirror, NULL);
	fd = open("/dev/hmm_dmirror0", O_RDWR);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(join_cgroup("vsvm_reclaim", "max"), 0);
	p = thp_buffer(_metadata);
	ASSERT_NE(p, NULL);
	cmd.addr = (uintptr_t)p;
	cmd.ptr = (uintptr_t)mirror;
	cmd.npages = NPAGES;
	ASSERT_EQ(ioctl(fd, HMM_DMIRROR_EXCLUSIVE, &cmd), 0);
	ASSERT_EQ(cmd.cpages, NPAGES);
	/* test_hmm holds no reference: the device-exclusive THP itself may be reclaimed. */
	swap = reclaim_to_swap("vsvm_reclaim", p, THP_SZ >> 10, &pass);
	TH_LOG("test_hmm: swapped %ld kB of 2048 in %d passes", swap, pass);
	ASSERT_EQ(first_wrong(p, NPAGES, 1000, 0), -1);
	munmap(p, THP_SZ);
	/* A fresh THP, exclusive, then taken back by the CPU, then reclaimed. */
	p = thp_buffer(_metadata);
	ASSERT_NE(p, NULL);
	cmd.addr = (uintptr_t)p;
	ASSERT_EQ(ioctl(fd, HMM_DMIRROR_EXCLUSIVE, &cmd), 0);
	ASSERT_EQ(first_wrong(p, NPAGES, 1000, 0), -1);
	swap = reclaim_to_swap("vsvm_reclaim", p, THP_SZ >> 10, &pass);
	TH_LOG("test_hmm, taken back: swapped %ld kB of 2048 in %d passes", swap, pass);
	ASSERT_EQ(first_wrong(p, NPAGES, 1000, 0), -1);
	close(fd);
	free(mirror);
	munmap(p, THP_SZ);
}

/*
 * MADV_PAGEOUT looks only at present PTEs: it leaves granted pages alone (the
 * grants stay).  Once the CPU has taken them back it pages them out, and they
 * come back intact for the CPU and the device.
 */
TEST_F(mm, pageout_skips_granted_pages)
{
	unsigned long n = 16;
	uint64_t *p = counted_pages(n, 0);

	ASSERT_NE(p, NULL);
	ASSERT_EQ(vsvm_prefetch(self->fd, p, n), 0);
	ASSERT_EQ(madvise(p, n * PAGE_SZ, MADV_PAGEOUT), 0);
	for (unsigned long i = 0; i < n; i++)
		ASSERT_EQ(vsvm_query(self->fd, p + i * U64_PER_PAGE), ATOMIC_PTE);
	ASSERT_EQ(smaps_kb(p, "Swap:"), 0);
	ASSERT_EQ(device_add_pages(self->fd, p, n, 10), 0);
	/* The CPU takes them back, then they go to swap. */
	ASSERT_EQ(first_wrong(p, n, 1, 10), -1);
	drain_lru();
	ASSERT_EQ(madvise(p, n * PAGE_SZ, MADV_PAGEOUT), 0);
	EXPECT_GT(smaps_kb(p, "Swap:"), 0);
	ASSERT_EQ(device_add_pages(self->fd, p, n, 1), 0);
	ASSERT_EQ(first_wrong(p, n, 1, 11), -1);
	munmap(p, n * PAGE_SZ);
}

/* Compaction while the device holds pages: what it moves, the device follows. */
TEST_F(mm, compaction_while_granted)
{
	unsigned long n = 64;
	uint64_t *p = counted_pages(n, 0);

	ASSERT_NE(p, NULL);
	ASSERT_EQ(vsvm_prefetch(self->fd, p, n), 0);
	ASSERT_EQ(write_file("/proc/sys/vm/compact_memory", "1"), 0);
	ASSERT_EQ(device_add_pages(self->fd, p, n, 100), 0);
	ASSERT_EQ(first_wrong(p, n, 1, 100), -1);
	/* Now with the CPU's pages, then the device again. */
	ASSERT_EQ(write_file("/proc/sys/vm/compact_memory", "1"), 0);
	ASSERT_EQ(device_add_pages(self->fd, p, n, 1), 0);
	ASSERT_EQ(first_wrong(p, n, 1, 101), -1);
	munmap(p, n * PAGE_SZ);
}

static long move_pages(unsigned long n, void **pages, const int *nodes, int *status)
{
	return syscall(SYS_move_pages, 0, n, pages, nodes, status, MPOL_MF_MOVE);
}

/*
 * move_pages() does not see device-exclusive entries: it answers -ENOENT for
 * granted pages and leaves them.  Pages the CPU took back move, and the
 * device's next grant is of the new frame.
 */
TEST_F(mm, move_pages_between_nodes)
{
	unsigned long n = 8;
	uint64_t *p = map_anon(n * PAGE_SZ);
	void *pages[8];
	int nodes[8], status[8];

	ASSERT_NE(p, NULL);
	for (unsigned long i = 0; i < n; i++) {
		p[i * U64_PER_PAGE] = i;
		pages[i] = p + i * U64_PER_PAGE;
		nodes[i] = 1;
	}
	/* Fake NUMA: the guest must have a node 1. */
	ASSERT_EQ(access("/sys/devices/system/node/node1", F_OK), 0);
	ASSERT_EQ(vsvm_prefetch(self->fd, p, n / 2), 0);
	ASSERT_EQ(move_pages(n, pages, nodes, status), 0) TH_LOG("move_pages: %s", strerror(errno));
	for (unsigned long i = 0; i < n; i++)
		ASSERT_EQ(status[i], i < n / 2 ? -ENOENT : 1);
	/* The CPU takes the granted pages back; then they move too. */
	ASSERT_EQ(first_wrong(p, n / 2, 1, 0), -1);
	ASSERT_EQ(move_pages(n, pages, nodes, status), 0);
	for (unsigned long i = 0; i < n; i++)
		ASSERT_EQ(status[i], 1);
	/* The device follows the data to the new frames. */
	ASSERT_EQ(device_add_pages(self->fd, p, n, 5), 0);
	ASSERT_EQ(first_wrong(p, n, 1, 5), -1);
	ASSERT_EQ(move_pages(n, pages, NULL, status), 0);
	for (unsigned long i = 0; i < n; i++)
		ASSERT_EQ(status[i], 1);
	/* Granted again, they stay where they are, still the device's. */
	ASSERT_EQ(vsvm_prefetch(self->fd, p, n), 0);
	for (unsigned long i = 0; i < n; i++)
		nodes[i] = 0;
	ASSERT_EQ(move_pages(n, pages, nodes, status), 0);
	for (unsigned long i = 0; i < n; i++) {
		ASSERT_EQ(status[i], -ENOENT);
		ASSERT_EQ(vsvm_query(self->fd, pages[i]), ATOMIC_PTE);
	}
	ASSERT_EQ(device_add_pages(self->fd, p, n, 1), 0);
	ASSERT_EQ(first_wrong(p, n, 1, 6), -1);
	munmap(p, n * PAGE_SZ);
}

/* A child that holds grants on a THP when it exits, execs, or is killed. */
static int child_with_grants(int how)
{
	uint64_t *p = thp_alloc();
	int fd = vsvm_open(0);

	if (!p || fd < 0)
		return 10;
	for (unsigned long i = 0; i < NPAGES; i++)
		p[i * U64_PER_PAGE] = i;
	if (how == 2) {
		/* Large prefetches until killed. */
		for (;;) {
			vsvm_prefetch(fd, p, NPAGES);
			p[0]++;
		}
	}
	if (vsvm_prefetch(fd, p, NPAGES) || device_add_pages(fd, p, NPAGES, 1))
		return 11;
	if (how == 1) {
		execl("/bin/true", "true", (char *)NULL);
		return 12;
	}
	return 0;
}

TEST_F(mm, exit_exec_and_kill_with_live_grants)
{
	int status;
	pid_t pid;

	for (int how = 0; how < 3; how++) {
		pid = fork();
		ASSERT_GE(pid, 0);
		if (pid == 0)
			_exit(child_with_grants(how));
		if (how == 2) {
			usleep(200 * 1000);
			ASSERT_EQ(kill(pid, SIGKILL), 0);
		}
		ASSERT_EQ(waitpid(pid, &status, 0), pid);
		if (how == 2) {
			ASSERT_TRUE(WIFSIGNALED(status));
			ASSERT_EQ(WTERMSIG(status), SIGKILL);
		} else {
			ASSERT_TRUE(WIFEXITED(status));
			ASSERT_EQ(WEXITSTATUS(status), 0);
		}
	}
}

/*
 * The OOM killer and its reaper: the reaper unmaps the victim's memory with
 * non-blockable invalidations while the victim still holds grants.
 */
TEST_F(mm, oom_kill_with_live_grants)
{
	int status;
	pid_t pid;

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		uint64_t *p;
		int fd;

		if (join_cgroup("vsvm_oom", "16M") ||
		    write_file(CGROUPS "/vsvm_oom/memory.swap.max", "0"))
			_exit(21);
		fd = vsvm_open(0);
		p = thp_alloc();
		if (fd < 0 || !p)
			_exit(22);
		memset(p, 1, THP_SZ);
		if (vsvm_prefetch(fd, p, NPAGES))
			_exit(23);
		/* Then grow until the OOM killer comes. */
		for (;;) {
			char *q = map_anon(THP_SZ);

			if (!q)
				_exit(24);
			memset(q, 2, THP_SZ);
		}
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFSIGNALED(status)) TH_LOG("child exited with %d", WEXITSTATUS(status));
	ASSERT_EQ(WTERMSIG(status), SIGKILL);
}

/* mremap moves or shrinks a granted range: the old grants go, the data moves. */
TEST_F(mm, mremap_move_and_shrink)
{
	unsigned long n = 8;
	uint64_t *p = counted_pages(n, 0), *q;
	__u64 unmap0 = 0, unmap1 = 0;

	ASSERT_NE(p, NULL);
	ASSERT_EQ(vsvm_prefetch(self->fd, p, n), 0);
	vsvm_revoked(self->fd, DRM_VSVM_REVOKE_UNMAP, &unmap0);
	q = mremap(p, n * PAGE_SZ, n * PAGE_SZ, MREMAP_MAYMOVE | MREMAP_FIXED,
		   (char *)p + 64 * PAGE_SZ);
	ASSERT_NE(q, MAP_FAILED);
	vsvm_revoked(self->fd, DRM_VSVM_REVOKE_UNMAP, &unmap1);
	ASSERT_GE(unmap1 - unmap0, 1);
	for (unsigned long i = 0; i < n; i++)
		ASSERT_EQ(vsvm_query(self->fd, p + i * U64_PER_PAGE), 0);
	ASSERT_EQ(vsvm_add64(self->fd, p, 1), -EFAULT);
	ASSERT_EQ(device_add_pages(self->fd, q, n, 3), 0);
	/* Shrink to half: the tail's grants go. */
	ASSERT_EQ(mremap(q, n * PAGE_SZ, n / 2 * PAGE_SZ, 0), q);
	vsvm_revoked(self->fd, DRM_VSVM_REVOKE_UNMAP, &unmap0);
	ASSERT_GE(unmap0 - unmap1, 1);
	ASSERT_EQ(vsvm_add64(self->fd, q + n / 2 * U64_PER_PAGE, 1), -EFAULT);
	for (unsigned long i = 0; i < n / 2; i++)
		ASSERT_EQ(q[i * U64_PER_PAGE], i + 3);
	munmap(q, n / 2 * PAGE_SZ);
}

/*
 * munmap and mprotect of part of a granted THP revoke that part.  The rest may
 * be revoked too: the partly unmapped folio is queued for a deferred split,
 * which unmaps it to split it.  Either way no data is lost.
 */
TEST_F(mm, partial_munmap_and_mprotect_of_a_thp)
{
	uint64_t *p = thp_buffer(_metadata);
	unsigned long half = NPAGES / 2, quarter = NPAGES / 4;

	ASSERT_NE(p, NULL);
	ASSERT_EQ(vsvm_prefetch(self->fd, p, NPAGES), 0);
	ASSERT_EQ(munmap(p + half * U64_PER_PAGE, half * PAGE_SZ), 0);
	for (unsigned long i = half; i < NPAGES; i += 31)
		ASSERT_EQ(vsvm_query(self->fd, p + i * U64_PER_PAGE), 0);
	ASSERT_EQ(vsvm_add64(self->fd, p + half * U64_PER_PAGE, 1), -EFAULT);
	ASSERT_EQ(vsvm_prefetch(self->fd, p, half), 0);
	ASSERT_EQ(mprotect(p, quarter * PAGE_SZ, PROT_READ), 0);
	for (unsigned long i = 0; i < quarter; i += 7)
		ASSERT_EQ(vsvm_query(self->fd, p + i * U64_PER_PAGE), 0);
	ASSERT_EQ(vsvm_add64(self->fd, p, 1), -EFAULT);
	ASSERT_EQ(device_add_pages(self->fd, p + quarter * U64_PER_PAGE, quarter, 1), 0);
	for (unsigned long i = 0; i < half; i++)
		ASSERT_EQ(p[i * U64_PER_PAGE], i * 1000 + (i >= quarter));
	munmap(p, half * PAGE_SZ);
}

/*
 * MADV_FREE invalidates its range, which revokes the grants, but leaves the
 * device-exclusive entries in place (it frees only present pages): the data
 * stays, and the device takes the pages again.
 */
TEST_F(mm, madv_free_of_granted_pages)
{
	unsigned long n = 8;
	uint64_t *p = counted_pages(n, 1);

	ASSERT_NE(p, NULL);
	ASSERT_EQ(vsvm_prefetch(self->fd, p, n), 0);
	ASSERT_EQ(madvise(p, n * PAGE_SZ, MADV_FREE), 0);
	for (unsigned long i = 0; i < n; i++)
		ASSERT_EQ(vsvm_query(self->fd, p + i * U64_PER_PAGE), 0);
	ASSERT_EQ(device_add_pages(self->fd, p, n, 1), 0);
	ASSERT_EQ(first_wrong(p, n, 1, 2), -1);
	munmap(p, n * PAGE_SZ);
}

TEST_F(mm, dontfork_and_wipeonfork)
{
	uint64_t *a = map_anon(PAGE_SZ), *b = map_anon(PAGE_SZ);
	int status;
	pid_t pid;

	ASSERT_NE(a, NULL);
	ASSERT_NE(b, NULL);
	a[0] = 1;
	b[0] = 2;
	ASSERT_EQ(madvise(a, PAGE_SZ, MADV_DONTFORK), 0);
	ASSERT_EQ(madvise(b, PAGE_SZ, MADV_WIPEONFORK), 0);
	ASSERT_EQ(vsvm_add64(self->fd, a, 10), 0);
	ASSERT_EQ(vsvm_add64(self->fd, b, 10), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(b[0] == 0 ? 0 : 1);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_EQ(WEXITSTATUS(status), 0);
	ASSERT_EQ(vsvm_query(self->fd, a), ATOMIC_PTE);
	ASSERT_EQ(vsvm_query(self->fd, b), ATOMIC_PTE);
	ASSERT_EQ(vsvm_add64(self->fd, a, 1), 0);
	ASSERT_EQ(vsvm_add64(self->fd, b, 1), 0);
	ASSERT_EQ(a[0], 12);
	ASSERT_EQ(b[0], 13);
	munmap(a, PAGE_SZ);
	munmap(b, PAGE_SZ);
}

/*
 * userfaultfd: a device fault on a missing page of a registered range fails
 * cleanly (GUP may not wait for the handler), and succeeds once the page is
 * there; write-protecting a granted page revokes the grant, and the device
 * cannot take a write-protected page.
 */
TEST_F(mm, userfaultfd_missing_and_wp)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP };
	struct uffdio_register reg = { 0 };
	struct uffdio_writeprotect wp = { 0 };
	struct uffdio_zeropage zero = { 0 };
	uint64_t *p = map_anon(2 * PAGE_SZ);
	int uffd;

	ASSERT_NE(p, NULL);
	uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	ASSERT_GE(uffd, 0);
	ASSERT_EQ(ioctl(uffd, UFFDIO_API, &api), 0);
	reg.range.start = (uintptr_t)p;
	reg.range.len = 2 * PAGE_SZ;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP;
	ASSERT_EQ(ioctl(uffd, UFFDIO_REGISTER, &reg), 0);

	ASSERT_EQ(vsvm_add64(self->fd, p, 1), -EFAULT);
	/* Refused after the chunk's notifier was made: it is removed again. */
	ASSERT_EQ(vsvm_notifiers(self->fd), 0);
	zero.range.start = (uintptr_t)p;
	zero.range.len = 2 * PAGE_SZ;
	ASSERT_EQ(ioctl(uffd, UFFDIO_ZEROPAGE, &zero), 0);
	ASSERT_EQ(vsvm_add64(self->fd, p, 1), 0);
	ASSERT_EQ(vsvm_query(self->fd, p), ATOMIC_PTE);

	wp.range.start = (uintptr_t)p;
	wp.range.len = 2 * PAGE_SZ;
	wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
	ASSERT_EQ(ioctl(uffd, UFFDIO_WRITEPROTECT, &wp), 0);
	ASSERT_EQ(vsvm_query(self->fd, p), 0);
	ASSERT_EQ(vsvm_add64(self->fd, p, 1), -EFAULT);
	wp.mode = 0;
	ASSERT_EQ(ioctl(uffd, UFFDIO_WRITEPROTECT, &wp), 0);
	ASSERT_EQ(vsvm_add64(self->fd, p, 1), 0);
	ASSERT_EQ(p[0], 2);
	close(uffd);
	munmap(p, 2 * PAGE_SZ);
}

TEST_F(mm, hugetlb_is_eopnotsupp)
{
	uint64_t *p;

	ASSERT_EQ(write_file("/proc/sys/vm/nr_hugepages", "2"), 0);
	p = mmap(NULL, THP_SZ, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	ASSERT_NE(p, MAP_FAILED);
	p[0] = 1;
	ASSERT_EQ(vsvm_add64(self->fd, p, 1), -EOPNOTSUPP);
	ASSERT_EQ(vsvm_prefetch(self->fd, p, 1), -EOPNOTSUPP);
	ASSERT_EQ(p[0], 1);
	munmap(p, THP_SZ);
}

TEST_HARNESS_MAIN

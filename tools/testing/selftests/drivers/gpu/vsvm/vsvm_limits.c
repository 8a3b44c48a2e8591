// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel memory a user can make vsvm hold.  A process that can open a render
 * node must not be able to make the kernel allocate without bound: failed
 * device faults leave nothing behind, notifiers of chunks whose grants are
 * gone are removed by later faults, files cost a bounded, accounted amount,
 * and the pages the device holds are charged to the user's memory cgroup.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include "kselftest_harness.h"
#include "vsvm_common.h"
#include "thp.h"
#include "cgroup.h"

#define CHUNK_SZ	(2UL << 20)
#define CG		"vsvm_limits"
/* Distinct unmapped addresses faulted at, half by ATOMIC and half by PREFETCH. */
#define FAULTS		200000UL
/* Chunks that lose their grants before a fault trims them (kernel::drm::svm). */
#define EMPTIED_MAX	32
/* Mappings faulted at that can never be granted (read-only, shared). */
#define REFUSED		2000UL
#define FILES		1000

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
 * Notifiers device 0's contexts ever inserted, from its debugfs counters
 * (the device's totals: no other test runs meanwhile); -1 on error.
 */
static long long inserted(void)
{
	FILE *f = fopen("/sys/kernel/debug/vsvm/vsvm0/stats", "r");
	long long n = -1;
	char line[128];

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "notifiers_inserted: %lld", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* @len bytes of address space no VMA maps (until something else is mapped there). */
static char *hole(unsigned long len)
{
	char *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	munmap(p, len);
	return p;
}

FIXTURE(limits) {};
FIXTURE_SETUP(limits) {}
FIXTURE_TEARDOWN(limits) {}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * A million faults at distinct addresses no grant can be made at, and a few
 * thousand at mappings that refuse one (read-only, shared): each fails with
 * the errno of make_device_exclusive() before any notifier is inserted, and
 * the kernel memory charged to the cgroup does not grow.  Once, each such
 * fault left a notifier behind (about 660 bytes) until the file was closed.
 * (A fault the VMA does not refuse but make_device_exclusive() does removes
 * its notifier again: vsvm_mm's userfaultfd test checks that.)
 * A million ioctls take a while under TCG.
 */
TEST_F_TIMEOUT(limits, failed_faults_leave_nothing, 300)
{
	unsigned long half = FAULTS / 2;
	char *ro = mmap(NULL, REFUSED * CHUNK_SZ, PROT_READ,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *shared = mmap(NULL, REFUSED * CHUNK_SZ, PROT_NONE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	int page = memfd_create("vsvm_limits", 0);
	char *unmapped;
	long long kernel0, kernel1, inserted0;
	long slab0, slab1;
	double start;
	int fd;

	ASSERT_EQ(join_cgroup(CG, "64M"), 0);
	fd = vsvm_open(0);
	ASSERT_GE(fd, 0);
	ASSERT_NE(ro, MAP_FAILED);
	ASSERT_NE(shared, MAP_FAILED);
	ASSERT_GE(page, 0);
	ASSERT_EQ(ftruncate(page, PAGE_SZ), 0);
	/* One shared page mapped once per chunk. */
	for (unsigned long i = 0; i < REFUSED; i++)
		ASSERT_NE(mmap(shared + i * CHUNK_SZ, PAGE_SZ, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_FIXED, page, 0), MAP_FAILED);
	/* Made last: nothing is mapped in it afterwards. */
	unmapped = hole(half * CHUNK_SZ);
	ASSERT_NE(unmapped, NULL);
	/* Settle the slab caches with a first round. */
	for (unsigned long i = 0; i < REFUSED; i++) {
		ASSERT_EQ(vsvm_add64(fd, unmapped + i * CHUNK_SZ, 1), -EFAULT);
		ASSERT_EQ(vsvm_add64(fd, shared + i * CHUNK_SZ, 1), -EOPNOTSUPP);
	}
	kernel0 = cgroup_stat(CG, "kernel");
	slab0 = slab_kb();
	inserted0 = inserted();
	ASSERT_GE(kernel0, 0);
	ASSERT_GE(inserted0, 0);

	start = now();
	for (unsigned long i = 0; i < half; i++)
		ASSERT_EQ(vsvm_add64(fd, unmapped + i * CHUNK_SZ, 1), -EFAULT);
	for (unsigned long i = 0; i < half; i++)
		ASSERT_EQ(vsvm_prefetch(fd, unmapped + i * CHUNK_SZ + PAGE_SZ, 1), -EFAULT);
	TH_LOG("%lu failed faults in %.1f s", FAULTS, now() - start);
	ASSERT_EQ(vsvm_notifiers(fd), 0);
	for (unsigned long i = 0; i < REFUSED; i++) {
		ASSERT_EQ(vsvm_add64(fd, ro + i * CHUNK_SZ, 1), -EFAULT);
		ASSERT_EQ(vsvm_prefetch(fd, shared + i * CHUNK_SZ, 1), -EOPNOTSUPP);
	}
	ASSERT_EQ(vsvm_notifiers(fd), 0);
	ASSERT_EQ(inserted(), inserted0);

	kernel1 = cgroup_stat(CG, "kernel");
	slab1 = slab_kb();
	TH_LOG("%lu failed faults: cgroup kernel memory %lld -> %lld bytes, slab %ld -> %ld kB",
	       FAULTS + 2 * REFUSED, kernel0, kernel1, slab0, slab1);
	/* One notifier left per fault would be over 120 MB. */
	ASSERT_LT(kernel1 - kernel0, 512 << 10);
	ASSERT_LT(slab1 - slab0, 2048);
	close(fd);
	close(page);
	munmap(ro, REFUSED * CHUNK_SZ);
	munmap(shared, REFUSED * CHUNK_SZ);
	ASSERT_EQ(leave_cgroup(), 0);
	rmdir(CGROUPS "/" CG);
}

/* Grants one page in each of @n chunks of a new mapping, which it returns. */
static char *grant_chunks(struct __test_metadata *_metadata, int fd, unsigned long n)
{
	char *p = mmap(NULL, n * CHUNK_SZ, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	EXPECT_NE(p, MAP_FAILED);
	EXPECT_EQ(madvise(p, n * CHUNK_SZ, MADV_NOHUGEPAGE), 0);
	for (unsigned long i = 0; i < n; i++) {
		p[i * CHUNK_SZ] = 1;
		EXPECT_EQ(vsvm_prefetch(fd, p + i * CHUNK_SZ, 1), 0);
	}
	return p;
}

/*
 * A context keeps a notifier per 2 MiB chunk that holds grants; once the
 * grants of EMPTIED_MAX chunks are revoked, the next fault removes their
 * notifiers, so that what a process once had granted does not stay watched
 * (and visited by every invalidation of the mm) until it closes the file.
 * Not before: trimming on every revocation would make a contended page
 * remove and insert its notifier again and again.
 */
TEST_F(limits, emptied_chunks_are_trimmed)
{
	/* The faulting pages: two in one chunk, apart from the others. */
	uint64_t *f = thp_alloc();
	char *a, *b;
	int fd = vsvm_open(0);

	ASSERT_GE(fd, 0);
	ASSERT_NE(f, NULL);
	f[0] = 1;
	f[PAGE_SZ / 8] = 1;
	a = grant_chunks(_metadata, fd, EMPTIED_MAX - 1);
	b = grant_chunks(_metadata, fd, 1);
	ASSERT_EQ(vsvm_notifiers(fd), EMPTIED_MAX);
	ASSERT_EQ(munmap(a, (EMPTIED_MAX - 1) * CHUNK_SZ), 0);
	ASSERT_EQ(vsvm_revoked(fd, DRM_VSVM_REVOKE_UNMAP, NULL), EMPTIED_MAX - 1);
	/* One chunk short of the threshold: the fault leaves them. */
	ASSERT_EQ(vsvm_add64(fd, f, 1), 0);
	ASSERT_EQ(vsvm_notifiers(fd), EMPTIED_MAX + 1);
	ASSERT_EQ(munmap(b, CHUNK_SZ), 0);
	/* Nothing is removed by the invalidation itself (it may not sleep)... */
	ASSERT_EQ(vsvm_notifiers(fd), EMPTIED_MAX + 1);
	/* ...but the next fault removes the notifiers of every emptied chunk. */
	ASSERT_EQ(vsvm_add64(fd, f + PAGE_SZ / 8, 1), 0);
	ASSERT_EQ(vsvm_notifiers(fd), 1);
	ASSERT_EQ(f[0], 2);
	ASSERT_EQ(f[PAGE_SZ / 8], 2);
	close(fd);
	munmap(f, THP_SZ);
}

/*
 * Only a chunk that never held a grant goes with the fault that made it; one
 * whose grants were revoked keeps its notifier through a fault in it that
 * fails, until a fault trims the emptied chunks.
 */
TEST_F(limits, failed_fault_keeps_an_emptied_chunk)
{
	uint64_t *f = thp_alloc();
	int fd = vsvm_open(0);

	ASSERT_GE(fd, 0);
	ASSERT_NE(f, NULL);
	f[0] = 1;
	ASSERT_EQ(vsvm_add64(fd, f, 1), 0);
	ASSERT_EQ(vsvm_notifiers(fd), 1);
	ASSERT_EQ(madvise(f, PAGE_SZ, MADV_DONTNEED), 0);
	ASSERT_EQ(vsvm_revoked(fd, 0, NULL), 1);
	ASSERT_EQ(mprotect(f + PAGE_SZ / 8, PAGE_SZ, PROT_READ), 0);
	ASSERT_EQ(vsvm_add64(fd, f + PAGE_SZ / 8, 1), -EFAULT);
	ASSERT_EQ(vsvm_notifiers(fd), 1);
	close(fd);
	munmap(f, THP_SZ);
}

/*
 * Files: each costs a bounded amount of kernel memory, charged to the opener's
 * cgroup, all of it given back on close; past RLIMIT_NOFILE opening fails
 * cleanly with EMFILE.
 */
TEST_F(limits, many_files)
{
	struct rlimit lim = { FILES + 64, FILES + 64 };
	uint64_t *buf;
	long long kernel0, opened, kernel1, kernel2;
	static int fds[FILES], extra[FILES + 64];
	int n = 0, nextra = 0, fd, ndev = vsvm_count();
	long long stat_lag = 2 * 64 * PAGE_SZ * sysconf(_SC_NPROCESSORS_ONLN);

	ASSERT_EQ(join_cgroup(CG, "64M"), 0);
	ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lim), 0);
	buf = map_anon(FILES * PAGE_SZ);
	ASSERT_NE(buf, NULL);
	memset(buf, 0, FILES * PAGE_SZ);
	kernel0 = cgroup_stat(CG, "kernel");
	for (n = 0; n < FILES; n++) {
		fds[n] = vsvm_open(n % ndev);
		ASSERT_GE(fds[n], 0) TH_LOG("open %d: %s", n, strerror(-fds[n]));
	}
	opened = cgroup_stat(CG, "kernel");
	/* A grant each, so that each file holds a chunk and a page too. */
	for (n = 0; n < FILES; n++)
		ASSERT_EQ(vsvm_add64(fds[n], buf + n * PAGE_SZ / 8, 1), 0);
	kernel1 = cgroup_stat(CG, "kernel");
	/* The rest of the descriptor table, then EMFILE. */
	while ((fd = open("/dev/null", O_RDONLY)) >= 0)
		extra[nextra++] = fd;
	ASSERT_EQ(errno, EMFILE);
	while (nextra)
		close(extra[--nextra]);
	for (n = 0; n < FILES; n++)
		close(fds[n]);
	for (n = 0; n < FILES; n++)
		ASSERT_EQ(buf[n * PAGE_SZ / 8], 1);
	kernel2 = cgroup_stat(CG, "kernel");
	TH_LOG("%d files, a grant each, closed: cgroup kernel memory %lld -> %lld -> %lld -> %lld",
	       FILES, kernel0, opened, kernel1, kernel2);
	TH_LOG("%lld bytes per file, %lld more with a grant", (opened - kernel0) / FILES,
	       (kernel1 - opened) / FILES);
	/*
	 * Charged to the opener: the context (6.2 kB in this test kernel, with
	 * lockdep), and the grant's chunk: its notifier, grant array and
	 * page-table leaf (8.5 kB, of which the array and the leaf are 4 kB each).
	 * memory.stat lags the charges by up to a batch of 64 pages per CPU, so
	 * each difference of two readings may be that much off, either way (seen:
	 * 8,081 bytes per grant in one run of 17, 8,429 to 8,695 in the others).
	 */
	ASSERT_GT(opened - kernel0, FILES * 4096LL);
	ASSERT_GT(kernel1 - opened + stat_lag, FILES * 8192LL);
	/* ...bounded per file... */
	ASSERT_LT(kernel1 - kernel0, FILES * 32768LL);
	/* ...and given back. */
	ASSERT_LT(kernel2 - kernel0, 512 << 10);
	munmap(buf, FILES * PAGE_SZ);
	ASSERT_EQ(leave_cgroup(), 0);
	rmdir(CGROUPS "/" CG);
}

/*
 * Prefetches over the whole user address space, 1 GiB at a time (each stops at
 * the first page that cannot be granted), by a process
 * in a 32 MiB cgroup with a 256 MiB mapping: every call fails cleanly or
 * grants pages charged to the cgroup until it is full (ENOMEM, or the cgroup's
 * OOM killer ends the process); everything is uncharged when it exits.
 */
TEST_F(limits, prefetch_the_whole_address_space)
{
	const char *cg = CG "_pf";
	long long current;
	int status;
	pid_t pid = fork();

	ASSERT_GE(pid, 0);
	if (pid == 0) {
		const unsigned long step = DRM_VSVM_PREFETCH_MAX * PAGE_SZ;
		unsigned long counts[4] = { 0 };
		char *area, *gib;
		int fd;

		if (join_cgroup(cg, "32M") || write_file(CGROUPS "/vsvm_limits_pf/memory.swap.max",
							 "0"))
			_exit(20);
		fd = vsvm_open(0);
		/* 256 MiB starting at a GiB boundary, where the walk below lands. */
		area = mmap(NULL, 2 * step, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			    -1, 0);
		if (fd < 0 || area == MAP_FAILED)
			_exit(21);
		gib = (char *)(((uintptr_t)area + step - 1) & ~(step - 1));
		if (mprotect(gib, 256UL << 20, PROT_READ | PROT_WRITE))
			_exit(22);
		for (unsigned long a = 0; a < (1UL << 47); a += step) {
			int ret = vsvm_prefetch(fd, (void *)a, DRM_VSVM_PREFETCH_MAX);

			if (ret == 0)
				counts[0]++;
			else if (ret == -EFAULT)
				counts[1]++;
			else if (ret == -ENOMEM)
				counts[2]++;
			else
				_exit(23);
		}
		printf("# prefetches: %lu ok, %lu EFAULT, %lu ENOMEM\n",
		       counts[0], counts[1], counts[2]);
		/* The 256 MiB could not all be granted within 32 MiB. */
		_exit(counts[2] ? 0 : 24);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	/* Killed, only by the cgroup's OOM killer, or done after an ENOMEM. */
	ASSERT_TRUE(WIFSIGNALED(status) ? WTERMSIG(status) == SIGKILL : WEXITSTATUS(status) == 0)
		TH_LOG("child status %#x", status);
	/* No grant outlived the process: its pages are uncharged. */
	current = cgroup_stat(cg, "anon");
	TH_LOG("child %s; anon memory left in its cgroup: %lld bytes",
	       WIFSIGNALED(status) ? "OOM-killed" : "saw ENOMEM", current);
	ASSERT_LT(current, 1 << 20);
	ASSERT_EQ(rmdir(CGROUPS "/" CG "_pf"), 0);
}

TEST_HARNESS_MAIN

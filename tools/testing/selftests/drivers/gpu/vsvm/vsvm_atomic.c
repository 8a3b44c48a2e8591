// SPDX-License-Identifier: GPL-2.0
/*
 * Selftests of the vsvm virtual SVM GPU: device atomics on process memory,
 * revocation by the CPU, mprotect, fork and munmap, THP-backed memory, files
 * used from other processes, tracepoints and debugfs.  Bad input: vsvm_uapi.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "vsvm_common.h"
#include "thp.h"

#define ATOMIC_PTE	(DRM_VSVM_PTE_VALID | DRM_VSVM_PTE_WRITE | DRM_VSVM_PTE_ATOMIC)

FIXTURE(vsvm)
{
	int fd;
	int fd1;
};

FIXTURE_SETUP(vsvm)
{
	self->fd = vsvm_open(0);
	ASSERT_GE(self->fd, 0) TH_LOG("no vsvm device: %s", strerror(-self->fd));
	self->fd1 = vsvm_open(1);
	ASSERT_GE(self->fd1, 0) TH_LOG("no second vsvm device");
}

FIXTURE_TEARDOWN(vsvm)
{
	close(self->fd);
	close(self->fd1);
}

/* hmm-tests "exclusive": device access to every page, then the CPU takes them back. */
TEST_F(vsvm, exclusive)
{
	unsigned long npages = 16, i;
	int *ptr = map_anon(npages * PAGE_SZ);
	__u64 old = 0;

	ASSERT_NE(ptr, NULL);
	for (i = 0; i < npages * PAGE_SZ / sizeof(int); i++)
		ptr[i] = i;
	ASSERT_EQ(vsvm_prefetch(self->fd, ptr, npages), 0);
	for (i = 0; i < npages; i++) {
		int *p = ptr + i * PAGE_SZ / sizeof(int);

		ASSERT_EQ(vsvm_query(self->fd, p), ATOMIC_PTE);
		/* The device reads and adds 1 to the first int of each page. */
		ASSERT_EQ(vsvm_atomic(self->fd, p, DRM_VSVM_OP_ADD, 32, 1, 0, &old), 0);
		ASSERT_EQ(old, (__u64)(i * PAGE_SZ / sizeof(int)));
	}
	/* Every CPU access revokes the device's access; data intact. */
	for (i = 0; i < npages * PAGE_SZ / sizeof(int); i++)
		ASSERT_EQ(ptr[i], (int)i + (i % (PAGE_SZ / sizeof(int)) == 0));
	for (i = 0; i < npages; i++)
		ASSERT_EQ(vsvm_query(self->fd, ptr + i * PAGE_SZ / sizeof(int)), 0);
	munmap(ptr, npages * PAGE_SZ);
}

TEST_F(vsvm, all_operations)
{
	uint64_t *p = map_anon(PAGE_SZ);
	uint32_t *q = (uint32_t *)(p + 8);
	__u64 old = 0;

	ASSERT_NE(p, NULL);
	p[0] = 10;
	ASSERT_EQ(vsvm_atomic(self->fd, p, DRM_VSVM_OP_ADD, 64, 5, 0, &old), 0);
	ASSERT_EQ(old, 10);
	ASSERT_EQ(vsvm_atomic(self->fd, p, DRM_VSVM_OP_XCHG, 64, 100, 0, &old), 0);
	ASSERT_EQ(old, 15);
	ASSERT_EQ(vsvm_atomic(self->fd, p, DRM_VSVM_OP_CMPXCHG, 64, 7, 99, &old), 0);
	ASSERT_EQ(old, 100);	/* no exchange */
	ASSERT_EQ(vsvm_atomic(self->fd, p, DRM_VSVM_OP_CMPXCHG, 64, 7, 100, &old), 0);
	ASSERT_EQ(old, 100);
	ASSERT_EQ(vsvm_atomic(self->fd, p, DRM_VSVM_OP_AND, 64, 3, 0, &old), 0);
	ASSERT_EQ(old, 7);
	ASSERT_EQ(vsvm_atomic(self->fd, p, DRM_VSVM_OP_OR, 64, 0x10, 0, &old), 0);
	ASSERT_EQ(old, 3);
	ASSERT_EQ(vsvm_atomic(self->fd, p, DRM_VSVM_OP_MAX, 64, 5, 0, &old), 0);
	ASSERT_EQ(old, 0x13);
	ASSERT_EQ(vsvm_atomic(self->fd, p, DRM_VSVM_OP_MAX, 64, 1000, 0, &old), 0);
	ASSERT_EQ(p[0], 1000);
	*q = 0xfffffffe;
	ASSERT_EQ(vsvm_atomic(self->fd, q, DRM_VSVM_OP_ADD, 32, 3, 0, &old), 0);
	ASSERT_EQ(old, 0xfffffffe);
	ASSERT_EQ(*q, 1);	/* 32-bit wrap, the neighbour untouched */
	ASSERT_EQ(q[1], 0);
	munmap(p, PAGE_SZ);
}

/* hmm-tests "exclusive_mprotect": write protection revokes, and stops new grants. */
TEST_F(vsvm, exclusive_mprotect)
{
	uint64_t *p = map_anon(4 * PAGE_SZ);
	struct drm_vsvm_stats s;

	ASSERT_NE(p, NULL);
	p[0] = 1;
	ASSERT_EQ(vsvm_add64(self->fd, p, 1), 0);
	ASSERT_EQ(vsvm_query(self->fd, p), ATOMIC_PTE);
	ASSERT_EQ(mprotect(p, 4 * PAGE_SZ, PROT_READ), 0);
	ASSERT_EQ(vsvm_query(self->fd, p), 0);
	ASSERT_EQ(vsvm_stats(self->fd, &s), 0);
	ASSERT_GE(s.revocations[DRM_VSVM_REVOKE_MPROTECT], 1);
	ASSERT_EQ(vsvm_add64(self->fd, p, 1), -EFAULT);
	ASSERT_EQ(p[0], 2);
	ASSERT_EQ(mprotect(p, 4 * PAGE_SZ, PROT_READ | PROT_WRITE), 0);
	ASSERT_EQ(vsvm_add64(self->fd, p, 1), 0);
	ASSERT_EQ(p[0], 3);
	munmap(p, 4 * PAGE_SZ);
}

/*
 * hmm-tests "exclusive_cow", made to fail if fork leaves the grant: fork with
 * a live grant, the child kept alive: the parent's CPU write breaks
 * copy-on-write, the device then adds to the parent's page; the child's copy
 * keeps the value at fork.  A grant that survived fork would point at the
 * page the child now owns, and the add would land there.
 */
TEST_F(vsvm, exclusive_cow)
{
	uint64_t *p = map_anon(PAGE_SZ);
	int go[2], status;
	__u64 fork_rev = 0, all0, all1;
	pid_t pid;
	char c;

	ASSERT_NE(p, NULL);
	p[0] = 1;
	ASSERT_EQ(vsvm_add64(self->fd, p, 1), 0);
	ASSERT_EQ(vsvm_query(self->fd, p), ATOMIC_PTE);
	all0 = vsvm_revoked(self->fd, 0, NULL);
	ASSERT_EQ(pipe(go), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		_exit(p[0] == 2 ? 0 : 2);
	}
	close(go[0]);
	/* Fork took the page back before sharing it. */
	ASSERT_EQ(vsvm_query(self->fd, p), 0);
	all1 = vsvm_revoked(self->fd, DRM_VSVM_REVOKE_FORK, &fork_rev);
	ASSERT_EQ(all1 - all0, 1);
	TH_LOG("fork revoked the grant as cause %s",
	       fork_rev ? "fork" : "cpu (fork restores the entry by faulting it back)");
	p[0] = 10;
	ASSERT_EQ(vsvm_add64(self->fd, p, 1), 0);
	ASSERT_EQ(p[0], 11);
	ASSERT_EQ(write(go[1], "x", 1), 1);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_EQ(WEXITSTATUS(status), 0);
	close(go[1]);
	munmap(p, PAGE_SZ);
}

TEST_F(vsvm, munmap_and_dontneed_revoke)
{
	uint64_t *p = map_anon(2 * PAGE_SZ);
	struct drm_vsvm_stats s;

	ASSERT_NE(p, NULL);
	p[0] = 1;
	p[PAGE_SZ / 8] = 1;
	ASSERT_EQ(vsvm_prefetch(self->fd, p, 2), 0);
	ASSERT_EQ(madvise(p, PAGE_SZ, MADV_DONTNEED), 0);
	ASSERT_EQ(vsvm_query(self->fd, p), 0);
	ASSERT_EQ(vsvm_query(self->fd, p + PAGE_SZ / 8), ATOMIC_PTE);
	ASSERT_EQ(munmap(p, 2 * PAGE_SZ), 0);
	ASSERT_EQ(vsvm_query(self->fd, p + PAGE_SZ / 8), 0);
	ASSERT_EQ(vsvm_add64(self->fd, p, 1), -EFAULT);
	ASSERT_EQ(vsvm_stats(self->fd, &s), 0);
	ASSERT_GE(s.revocations[DRM_VSVM_REVOKE_UNMAP], 1);
}

TEST_F(vsvm, two_devices_take_turns)
{
	uint64_t *p = map_anon(PAGE_SZ);
	struct drm_vsvm_stats s0, s1;

	ASSERT_NE(p, NULL);
	p[0] = 0;
	for (int i = 0; i < 50; i++) {
		ASSERT_EQ(vsvm_add64(self->fd, p, 1), 0);
		ASSERT_EQ(vsvm_add64(self->fd1, p, 2), 0);
		ASSERT_EQ(vsvm_query(self->fd, p), 0);
		ASSERT_EQ(vsvm_query(self->fd1, p), ATOMIC_PTE);
	}
	ASSERT_EQ(p[0], 150);
	ASSERT_EQ(vsvm_stats(self->fd, &s0), 0);
	ASSERT_EQ(vsvm_stats(self->fd1, &s1), 0);
	ASSERT_EQ(s0.ops, 50);
	ASSERT_EQ(s1.ops, 50);
	ASSERT_EQ(s0.pages_granted, 50);
	ASSERT_EQ(s0.retries + s1.retries, 0);
	ASSERT_EQ(s0.device, 0);
	ASSERT_EQ(s1.device, 1);
	munmap(p, PAGE_SZ);
}

/* Device atomics inside a THP: the folio stays a THP, neighbours stay with the CPU. */
TEST_F(vsvm, thp)
{
	uint64_t *p = thp_alloc(), *sub;
	struct drm_vsvm_atomic_range r = { 0 };
	unsigned long i, n = THP_SZ / PAGE_SZ;

	ASSERT_NE(p, NULL);
	for (i = 0; i < THP_SZ / 8; i++)
		p[i] = i;
	/* The guest's config guarantees THP: not getting one is a failure. */
	ASSERT_EQ(anon_huge_kb(p), THP_SZ >> 10);
	ASSERT_EQ(page_is_thp(p), 1);

	sub = p + 5 * PAGE_SZ / 8;
	ASSERT_EQ(vsvm_add64(self->fd, sub, 1000), 0);
	ASSERT_EQ(vsvm_query(self->fd, sub), ATOMIC_PTE);
	/* Neighbours are the CPU's: touching them does not revoke the grant. */
	p[0] += 1;
	p[6 * PAGE_SZ / 8] += 1;
	ASSERT_EQ(vsvm_query(self->fd, sub), ATOMIC_PTE);
	ASSERT_EQ(sub[0], 5 * PAGE_SZ / 8 + 1000);
	ASSERT_EQ(vsvm_query(self->fd, sub), 0);
	ASSERT_EQ(page_is_thp(sub), 1);

	/* Every page of the THP in one prefetch, then one op per page. */
	ASSERT_EQ(vsvm_prefetch(self->fd, p, n), 0);
	ASSERT_EQ(vsvm_range(self->fd, p, PAGE_SZ, n, DRM_VSVM_OP_ADD, 64, 1, &r), 0);
	ASSERT_EQ(r.faults, 0);
	for (i = 0; i < n; i++)
		ASSERT_EQ(p[i * PAGE_SZ / 8], i * PAGE_SZ / 8 + 1 + (i == 0 || i == 6) +
			  (i == 5) * 1000);
	ASSERT_EQ(page_is_thp(p), 1);
	ASSERT_EQ(page_is_thp(p + (n - 1) * PAGE_SZ / 8), 1);
	munmap(p, THP_SZ);
}

/* A file descriptor passed to another process gives it no access. */
TEST_F(vsvm, fd_in_another_process_is_refused)
{
	uint64_t *p = map_anon(PAGE_SZ);
	int sv[2], status;
	pid_t pid;

	ASSERT_NE(p, NULL);
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		char c;
		char buf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { .iov_base = &c, .iov_len = 1 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = buf, .msg_controllen = sizeof(buf) };
		uint64_t *q = map_anon(PAGE_SZ);
		int fd;

		if (recvmsg(sv[1], &m, 0) != 1 || !CMSG_FIRSTHDR(&m))
			_exit(3);
		memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof(fd));
		/* Neither the child's memory nor (at the same address) the parent's. */
		if (!vsvm_all_refused(fd, q) || !vsvm_all_refused(fd, p))
			_exit(1);
		_exit(0);
	} else {
		char c = 'x', buf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { .iov_base = &c, .iov_len = 1 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = buf, .msg_controllen = sizeof(buf) };
		struct cmsghdr *cm;

		memset(buf, 0, sizeof(buf));
		cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &self->fd, sizeof(int));
		ASSERT_EQ(sendmsg(sv[0], &m, 0), 1);
		ASSERT_EQ(waitpid(pid, &status, 0), pid);
		ASSERT_EQ(WEXITSTATUS(status), 0);
	}
	/* The owner still works. */
	p[0] = 1;
	ASSERT_EQ(vsvm_add64(self->fd, p, 1), 0);
	ASSERT_EQ(p[0], 2);
	close(sv[0]);
	close(sv[1]);
	munmap(p, PAGE_SZ);
}

/*
 * After exec() the process has a new address space: a vsvm fd kept across it
 * must not reach the new one (nor the old, which is gone). The re-executed
 * test binary runs this before the harness when VSVM_EXEC_PROBE names the fd.
 */
__attribute__((constructor)) static void exec_probe(void)
{
	const char *fd = getenv("VSVM_EXEC_PROBE");
	uint64_t *p;

	if (!fd)
		return;
	p = mmap(NULL, PAGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		_exit(3);
	_exit(vsvm_all_refused(atoi(fd), p) ? 0 : 1);
}

TEST_F(vsvm, fd_after_exec_is_refused)
{
	char num[16];
	int status, fd = dup(self->fd);	/* dup() clears O_CLOEXEC */
	pid_t pid;

	ASSERT_GE(fd, 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		snprintf(num, sizeof(num), "%d", fd);
		setenv("VSVM_EXEC_PROBE", num, 1);
		execl("/proc/self/exe", "vsvm_atomic", NULL);
		_exit(4);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_EQ(WEXITSTATUS(status), 0);
	close(fd);
}

/* A fault, a grant and a CPU revocation show up as drm_svm tracepoints. */
TEST_F(vsvm, tracepoints)
{
	const char *dir = "/sys/kernel/tracing";
	char path[128], line[512];
	int begin = 0, grant = 0, end = 0, revoke = 0, entry = 0, release = 0;
	uint64_t *p = map_anon(PAGE_SZ);
	FILE *f;

	ASSERT_NE(p, NULL);
	p[0] = 1;
	snprintf(path, sizeof(path), "%s/events/drm_svm/enable", dir);
	ASSERT_EQ(write_file(path, "1"), 0) TH_LOG("no drm_svm events in %s", dir);
	snprintf(path, sizeof(path), "%s/trace", dir);
	ASSERT_EQ(write_file(path, ""), 0);
	ASSERT_EQ(vsvm_add64(self->fd, p, 1), 0);
	ASSERT_EQ(p[0], 2);	/* the CPU takes the page back */
	snprintf(path, sizeof(path), "%s/events/drm_svm/enable", dir);
	ASSERT_EQ(write_file(path, "0"), 0);
	snprintf(path, sizeof(path), "%s/trace", dir);
	f = fopen(path, "r");
	ASSERT_NE(f, NULL);
	while (fgets(line, sizeof(line), f)) {
		begin += !!strstr(line, "svm_fault_begin:");
		grant += !!strstr(line, "svm_grant:");
		end += strstr(line, "svm_fault_end:") && strstr(line, "ret=0");
		revoke += strstr(line, "svm_revoke:") && strstr(line, "cause=cpu");
		entry += strstr(line, "svm_phase:") && strstr(line, "phase=entry");
		release += strstr(line, "svm_phase:") && strstr(line, "phase=release");
	}
	fclose(f);
	EXPECT_GE(begin, 1);
	EXPECT_GE(grant, 1);
	EXPECT_GE(end, 1);
	EXPECT_GE(revoke, 1);
	/* The phases of the grant, for profiling: it began and ended once. */
	EXPECT_GE(entry, 1);
	EXPECT_EQ(release, grant);
	munmap(p, PAGE_SZ);
}

/*
 * The device's totals in debugfs follow its files' counters, which add up
 * what the backend's faults returned (the fault worker's included).
 */
TEST_F(vsvm, debugfs_stats)
{
	uint64_t *p = map_anon(PAGE_SZ);
	long ops0, ops1, granted0, granted1;
	struct drm_vsvm_stats s;

	ASSERT_NE(p, NULL);
	ops0 = dev_stat("ops");
	granted0 = dev_stat("pages_granted");
	p[0] = 1;
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(vsvm_add64(self->fd, p, 1), 0);
	ops1 = dev_stat("ops");
	granted1 = dev_stat("pages_granted");
	ASSERT_GE(ops0, 0);
	ASSERT_GE(granted0, 0);
	ASSERT_EQ(ops1, ops0 + 3);
	/* One fault, by the worker, granted the page; the other adds hit it. */
	ASSERT_EQ(granted1, granted0 + 1);
	ASSERT_EQ(vsvm_stats(self->fd, &s), 0);
	ASSERT_EQ(s.pages_granted, 1);
	munmap(p, PAGE_SZ);
}

TEST_HARNESS_MAIN

// SPDX-License-Identifier: GPL-2.0
/*
 * vsvm under address-space churn: devices keep doing atomics while another
 * thread unmaps, mprotects, zaps, forks, or closes the device file.  Nothing
 * may hang or splat, errors must be the defined ones, and sums stay exact
 * where the churn does not destroy data.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include "kselftest_harness.h"
#include "vsvm_common.h"

#define PAGE_SZ		4096UL
#define NPAGES		16
#define CHURN		40

struct hammer {
	int fd;
	uint64_t *buf;
	int stop;
	unsigned long ok;
	int bad_err;		/* first errno other than the allowed ones */
	int allowed[3];
};

static void *hammer(void *arg)
{
	struct hammer *h = arg;

	for (unsigned long i = 0; !__atomic_load_n(&h->stop, __ATOMIC_RELAXED); i++) {
		int err = vsvm_add64(h->fd, &h->buf[(i % NPAGES) * PAGE_SZ / 8], 1);

		if (!err) {
			__atomic_fetch_add(&h->ok, 1, __ATOMIC_RELAXED);
			continue;
		}
		if (err != h->allowed[0] && err != h->allowed[1] && err != h->allowed[2] &&
		    !h->bad_err)
			h->bad_err = err;
	}
	return NULL;
}

static void nap(void)
{
	struct timespec ts = { .tv_nsec = 200000 };

	nanosleep(&ts, NULL);
}

FIXTURE(chaos)
{
	int fd[2];
	uint64_t *buf;
	struct hammer h[2];
	pthread_t t[2];
};

FIXTURE_SETUP(chaos)
{
	self->buf = mmap(NULL, NPAGES * PAGE_SZ, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(self->buf, MAP_FAILED);
	for (int d = 0; d < 2; d++) {
		self->fd[d] = vsvm_open(d);
		ASSERT_GE(self->fd[d], 0);
		self->h[d] = (struct hammer){ .fd = self->fd[d], .buf = self->buf };
	}
}

FIXTURE_TEARDOWN(chaos)
{
	for (int d = 0; d < 2; d++)
		close(self->fd[d]);
	munmap(self->buf, NPAGES * PAGE_SZ);
}

static void start(struct __test_metadata *_metadata, struct _test_data_chaos *self,
		  int a0, int a1)
{
	for (int d = 0; d < 2; d++) {
		self->h[d].allowed[0] = a0;
		self->h[d].allowed[1] = a1;
		self->h[d].allowed[2] = a1;
		ASSERT_EQ(pthread_create(&self->t[d], NULL, hammer, &self->h[d]), 0);
	}
	/* The churn starts once both devices are at work (bounded wait). */
	for (int i = 0; i < 25000; i++) {
		if (__atomic_load_n(&self->h[0].ok, __ATOMIC_RELAXED) &&
		    __atomic_load_n(&self->h[1].ok, __ATOMIC_RELAXED))
			break;
		nap();
	}
}

static unsigned long stop(struct __test_metadata *_metadata, struct _test_data_chaos *self)
{
	unsigned long ok = 0;

	for (int d = 0; d < 2; d++)
		__atomic_store_n(&self->h[d].stop, 1, __ATOMIC_RELAXED);
	for (int d = 0; d < 2; d++) {
		pthread_join(self->t[d], NULL);
		EXPECT_EQ(self->h[d].bad_err, 0)
			TH_LOG("device %d: unexpected %s", d, strerror(-self->h[d].bad_err));
		ok += self->h[d].ok;
	}
	TH_LOG("%lu device atomics succeeded during the churn", ok);
	EXPECT_GT(ok, 0);
	return ok;
}

/* Revocations with @cause on both devices so far. */
static __u64 revoked_by(struct _test_data_chaos *self, int cause)
{
	__u64 n = 0, one;

	for (int d = 0; d < 2; d++) {
		one = 0;
		vsvm_revoked(self->fd[d], cause, &one);
		n += one;
	}
	return n;
}

static uint64_t sum(uint64_t *buf)
{
	uint64_t s = 0;

	for (int i = 0; i < NPAGES; i++)
		s += buf[i * PAGE_SZ / 8];
	return s;
}

TEST_F(chaos, munmap_and_remap)
{
	__u64 unmap = revoked_by(self, DRM_VSVM_REVOKE_UNMAP);

	start(_metadata, self, -EFAULT, -EFAULT);
	for (int i = 0; i < CHURN; i++) {
		nap();
		ASSERT_EQ(munmap(self->buf, NPAGES * PAGE_SZ), 0);
		ASSERT_EQ(mmap(self->buf, NPAGES * PAGE_SZ, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), self->buf);
	}
	stop(_metadata, self);
	ASSERT_GT(revoked_by(self, DRM_VSVM_REVOKE_UNMAP), unmap);
	ASSERT_GT(revoked_by(self, DRM_VSVM_REVOKE_DEVICE), 0);
}

TEST_F(chaos, mprotect_toggle)
{
	__u64 mprot = revoked_by(self, DRM_VSVM_REVOKE_MPROTECT);
	unsigned long ok;

	start(_metadata, self, -EFAULT, -EFAULT);
	for (int i = 0; i < CHURN; i++) {
		nap();
		ASSERT_EQ(mprotect(self->buf, NPAGES * PAGE_SZ, PROT_READ), 0);
		nap();
		ASSERT_EQ(mprotect(self->buf, NPAGES * PAGE_SZ, PROT_READ | PROT_WRITE), 0);
	}
	ok = stop(_metadata, self);
	/* Write protection destroys nothing: every successful add is there. */
	ASSERT_EQ(sum(self->buf), ok);
	ASSERT_GT(revoked_by(self, DRM_VSVM_REVOKE_MPROTECT), mprot);
}

TEST_F(chaos, dontneed)
{
	__u64 cpu = revoked_by(self, DRM_VSVM_REVOKE_CPU);

	start(_metadata, self, 0, 0);
	for (int i = 0; i < CHURN; i++) {
		nap();
		ASSERT_EQ(madvise(self->buf, NPAGES * PAGE_SZ, MADV_DONTNEED), 0);
	}
	stop(_metadata, self);
	/* MADV_DONTNEED is reported like a CPU fault. */
	ASSERT_GT(revoked_by(self, DRM_VSVM_REVOKE_CPU), cpu);
}

TEST_F(chaos, fork_and_exit)
{
	__u64 forked = revoked_by(self, DRM_VSVM_REVOKE_FORK);
	unsigned long ok;

	int busy = 0;

	start(_metadata, self, 0, 0);
	for (int i = 0; i < CHURN; i++) {
		int status;
		pid_t pid = fork();

		/*
		 * fork() fails when it meets a device-exclusive entry whose folio
		 * a grant in progress holds locked: copy_nonpresent_pte() returns
		 * -EBUSY, which copy_pmd_range() turns into -ENOMEM (mm/memory.c).
		 * A transient effect of the kernel's design, retried here.
		 */
		if (pid < 0 && (errno == ENOMEM || errno == EBUSY) && busy < 1000) {
			busy++;
			i--;
			continue;
		}
		ASSERT_GE(pid, 0) TH_LOG("fork: %s", strerror(errno));
		if (pid == 0)
			_exit(0);
		ASSERT_EQ(waitpid(pid, &status, 0), pid);
	}
	TH_LOG("fork failed transiently %d times", busy);
	ok = stop(_metadata, self);
	/* Copy-on-write moved pages under the devices; no add was lost. */
	ASSERT_EQ(sum(self->buf), ok);
	ASSERT_GT(revoked_by(self, DRM_VSVM_REVOKE_FORK), forked);
}

TEST_F(chaos, close_while_in_use)
{
	int spare = vsvm_open(0);

	ASSERT_GE(spare, 0);
	start(_metadata, self, -EBADF, -EBADF);
	for (int i = 0; i < 10; i++)
		nap();
	/* The files go away under the hammering threads. */
	close(self->fd[0]);
	close(self->fd[1]);
	for (int i = 0; i < 5; i++)
		nap();
	stop(_metadata, self);
	/* A new open works, with a new context. */
	self->fd[0] = vsvm_open(0);
	self->fd[1] = spare;
	ASSERT_GE(self->fd[0], 0);
	self->buf[0] = 7;
	ASSERT_EQ(vsvm_add64(self->fd[0], self->buf, 1), 0);
	ASSERT_EQ(vsvm_add64(self->fd[1], self->buf, 1), 0);
	ASSERT_EQ(self->buf[0], 9);
}

TEST_HARNESS_MAIN

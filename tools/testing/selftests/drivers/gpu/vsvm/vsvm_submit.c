// SPDX-License-Identifier: GPL-2.0
/*
 * Selftests of vsvm's asynchronous UAPI: SUBMIT queues a job for the
 * device's engines and returns, WAIT waits for it and writes one result per
 * operation.  A device reset cancels the jobs in flight and revokes every
 * grant; the operations that completed are in memory exactly once, the
 * cancelled ones not at all.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "kselftest_harness.h"
#include "vsvm_common.h"
#include "thp.h"

#define RESET	"/sys/kernel/debug/vsvm/vsvm0/reset"
#define SEC	1000000000LL

FIXTURE(submit)
{
	int fd;
	uint64_t *p;	/* PAGES pages */
};

#define PAGES	256

FIXTURE_SETUP(submit)
{
	self->fd = vsvm_open(0);
	ASSERT_GE(self->fd, 0) TH_LOG("no vsvm device: %s", strerror(-self->fd));
	self->p = map_anon(PAGES * PAGE_SZ);
	ASSERT_NE(self->p, NULL);
	memset(self->p, 0, PAGES * PAGE_SZ);
}

FIXTURE_TEARDOWN(submit)
{
	munmap(self->p, PAGES * PAGE_SZ);
	close(self->fd);
}

static struct drm_vsvm_job_op add_op(void *addr, __u64 v)
{
	return (struct drm_vsvm_job_op){ .addr = (uintptr_t)addr, .operand = v,
					 .op = DRM_VSVM_OP_ADD, .width = 64 };
}

/* Each operation has its own result; a failed one does not stop the job. */
TEST_F(submit, results_per_operation)
{
	uint64_t *p = self->p;
	struct drm_vsvm_job_op ops[5] = {
		add_op(&p[0], 5),
		{ .addr = (uintptr_t)&p[0], .operand = 9, .compare = 5,
		  .op = DRM_VSVM_OP_CMPXCHG, .width = 64 },
		add_op(NULL, 1),			/* nothing mapped there */
		{ .addr = (uintptr_t)&p[PAGE_SZ / 8], .operand = 7,
		  .op = DRM_VSVM_OP_XCHG, .width = 32 },
		add_op(&p[0], 1),
	};
	struct drm_vsvm_job_result res[5];
	__u64 seqno, seqno2;

	p[PAGE_SZ / 8] = 3;
	memset(res, 0xff, sizeof(res));
	ASSERT_EQ(vsvm_submit(self->fd, ops, 5, res, &seqno), 0);
	ASSERT_EQ(seqno, 1);
	ASSERT_EQ(vsvm_wait(self->fd, seqno, 10 * SEC), 0);
	EXPECT_EQ(res[0].error, 0);
	EXPECT_EQ(res[0].value, 0);
	EXPECT_EQ(res[0].faults, 1);
	EXPECT_EQ(res[1].error, 0);
	EXPECT_EQ(res[1].value, 5);
	EXPECT_EQ(res[1].faults, 0);		/* the page is still the device's */
	EXPECT_EQ(res[2].error, -EFAULT);
	EXPECT_EQ(res[3].error, 0);
	EXPECT_EQ(res[3].value, 3);
	EXPECT_EQ(res[4].error, 0);
	EXPECT_EQ(res[4].value, 9);
	EXPECT_EQ(p[0], 10);
	EXPECT_EQ(p[PAGE_SZ / 8], 7);

	/* A retired job: waiting again returns at once and writes nothing. */
	memset(res, 0xff, sizeof(res));
	EXPECT_EQ(vsvm_wait(self->fd, seqno, 0), 0);
	EXPECT_EQ(res[0].error, -1);
	/* Numbers go up; one never returned is refused. */
	ASSERT_EQ(vsvm_submit(self->fd, ops, 1, res, &seqno2), 0);
	EXPECT_EQ(seqno2, 2);
	EXPECT_EQ(vsvm_wait(self->fd, seqno2 + 1, 0), -EINVAL);
	EXPECT_EQ(vsvm_wait(self->fd, seqno2, 10 * SEC), 0);
}

/* A job of 256 faults is still running right after SUBMIT: a 0 timeout says so. */
TEST_F(submit, wait_times_out_then_completes)
{
	struct drm_vsvm_job_op ops[PAGES];
	struct drm_vsvm_job_result res[PAGES];
	__u64 seqno;

	for (int i = 0; i < PAGES; i++)
		ops[i] = add_op(&self->p[i * PAGE_SZ / 8], 1);
	ASSERT_EQ(vsvm_submit(self->fd, ops, PAGES, res, &seqno), 0);
	EXPECT_EQ(vsvm_wait(self->fd, seqno, 0), -ETIME);
	ASSERT_EQ(vsvm_wait(self->fd, seqno, 30 * SEC), 0);
	for (int i = 0; i < PAGES; i++) {
		ASSERT_EQ(res[i].error, 0);
		ASSERT_EQ(self->p[i * PAGE_SZ / 8], 1);
	}
}

/* DRM_VSVM_JOBS_MAX jobs outstanding: one more is EAGAIN until one is waited for. */
TEST_F(submit, outstanding_jobs_are_bounded)
{
	struct drm_vsvm_job_op op = add_op(self->p, 1);
	struct drm_vsvm_job_result res[DRM_VSVM_JOBS_MAX + 1];
	__u64 seqno[DRM_VSVM_JOBS_MAX + 1];

	for (int i = 0; i < DRM_VSVM_JOBS_MAX; i++)
		ASSERT_EQ(vsvm_submit(self->fd, &op, 1, &res[i], &seqno[i]), 0);
	ASSERT_EQ(vsvm_submit(self->fd, &op, 1, &res[DRM_VSVM_JOBS_MAX], &seqno[0]), -EAGAIN);
	ASSERT_EQ(vsvm_wait(self->fd, 1, 10 * SEC), 0);
	ASSERT_EQ(vsvm_submit(self->fd, &op, 1, &res[DRM_VSVM_JOBS_MAX], &seqno[0]), 0);
	for (__u64 s = 2; s <= DRM_VSVM_JOBS_MAX + 1; s++)
		ASSERT_EQ(vsvm_wait(self->fd, s, 10 * SEC), 0);
	EXPECT_EQ(self->p[0], DRM_VSVM_JOBS_MAX + 1);
}

/* Jobs left running when the file is closed complete all the same. */
TEST_F(submit, close_with_jobs_in_flight)
{
	struct drm_vsvm_job_op ops[PAGES];
	static struct drm_vsvm_job_result res[4][PAGES];
	int fd = vsvm_open(0), done = 0, i;
	__u64 seqno;

	ASSERT_GE(fd, 0);
	for (int i = 0; i < PAGES; i++)
		ops[i] = add_op(&self->p[i * PAGE_SZ / 8], 1);
	for (int j = 0; j < 4; j++)
		ASSERT_EQ(vsvm_submit(fd, ops, PAGES, res[j], &seqno), 0);
	close(fd);
	/* Reading a counter takes its page back; the job faults it in again. */
	for (int t = 0; t < 3000 && !done; t++) {
		done = 1;
		for (int i = 0; i < PAGES && done; i++)
			done = __atomic_load_n(&self->p[i * PAGE_SZ / 8], __ATOMIC_RELAXED) == 4;
		if (!done)
			usleep(10000);
	}
	for (i = 0; i < PAGES; i++)
		ASSERT_EQ(self->p[i * PAGE_SZ / 8], 4) TH_LOG("page %d", i);
}

/*
 * A reset in the middle of jobs: each operation either completed, once, or
 * failed with ECANCELED and changed nothing; afterwards the device maps
 * nothing, and new jobs run.
 */
TEST_F(submit, reset_cancels_jobs_in_flight)
{
	static struct drm_vsvm_job_op ops[PAGES];
	static struct drm_vsvm_job_result res[8][PAGES];
	long resets = dev_stat("resets");
	__u64 seqno[8], expect[PAGES] = { 0 };
	int cancelled = 0, completed = 0, i;

	for (int i = 0; i < PAGES; i++)
		ops[i] = add_op(&self->p[i * PAGE_SZ / 8], 1);
	for (int j = 0; j < 8; j++)
		ASSERT_EQ(vsvm_submit(self->fd, ops, PAGES, res[j], &seqno[j]), 0);
	ASSERT_EQ(write_file(RESET, "1"), 0);
	EXPECT_EQ(dev_stat("resets"), resets + 1);
	/* Nothing is mapped right after the reset, whatever ran. */
	for (int i = 0; i < PAGES; i++)
		ASSERT_EQ(vsvm_query(self->fd, &self->p[i * PAGE_SZ / 8]), 0);
	for (int j = 0; j < 8; j++) {
		ASSERT_EQ(vsvm_wait(self->fd, seqno[j], 10 * SEC), 0);
		for (int i = 0; i < PAGES; i++) {
			if (res[j][i].error == 0) {
				expect[i]++;
				completed++;
			} else {
				ASSERT_EQ(res[j][i].error, -ECANCELED);
				cancelled++;
			}
		}
	}
	TH_LOG("%d operations completed, %d cancelled", completed, cancelled);
	EXPECT_GT(cancelled, 0);
	for (i = 0; i < PAGES; i++)
		ASSERT_EQ(self->p[i * PAGE_SZ / 8], expect[i]) TH_LOG("page %d", i);
	/* New work runs. */
	ASSERT_EQ(vsvm_add64(self->fd, self->p, 1), 0);
	EXPECT_EQ(self->p[0], expect[0] + 1);
}

struct long_job {
	int fd;
	uint64_t *word;
	int err;
};

static void *run_long_job(void *arg)
{
	struct long_job *j = arg;

	j->err = vsvm_range(j->fd, j->word, 0, DRM_VSVM_RANGE_MAX, DRM_VSVM_OP_ADD, 64, 1, NULL);
	return NULL;
}

static void on_signal(int sig)
{
	(void)sig;
}

/*
 * A signal stops a job that ATOMIC_RANGE waits for: EINTR, and the
 * operations done before it stay done, each once (the file counts them).
 */
TEST_F(submit, signal_stops_a_waited_job)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct long_job j = { .fd = self->fd, .word = self->p };
	struct drm_vsvm_stats before, after;
	pthread_t t;

	ASSERT_EQ(sigaction(SIGUSR1, &sa, NULL), 0);	/* no SA_RESTART */
	ASSERT_EQ(vsvm_stats(self->fd, &before), 0);
	ASSERT_EQ(pthread_create(&t, NULL, run_long_job, &j), 0);
	usleep(200 * 1000);
	ASSERT_EQ(pthread_kill(t, SIGUSR1), 0);
	pthread_join(t, NULL);
	ASSERT_EQ(vsvm_stats(self->fd, &after), 0);
	TH_LOG("%llu of %u operations done", (unsigned long long)self->p[0], DRM_VSVM_RANGE_MAX);
	EXPECT_EQ(j.err, -EINTR);
	EXPECT_LT(self->p[0], DRM_VSVM_RANGE_MAX);
	EXPECT_EQ(self->p[0], after.ops - before.ops);
}

TEST_HARNESS_MAIN

// SPDX-License-Identifier: GPL-2.0
/*
 * The vsvm demo: every virtual GPU (two threads each) and two CPU threads do
 * atomic adds at once on a hot counter and on counters in all 512 pages of a
 * THP-backed buffer; then a table of what each device went through.
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "../../tools/testing/selftests/drivers/gpu/vsvm/vsvm_common.h"
#include "../../tools/testing/selftests/drivers/gpu/vsvm/thp.h"

#define NPAGES		(THP_SZ / PAGE_SZ)
#define DEV_THREADS	2
#define CPU_THREADS	2
#define ROUNDS		40	/* each round: one add on every page, then 64 on the hot one */
#define HOT_ADDS	64

struct worker {
	int fd;			/* -1: a CPU thread */
	uint64_t *buf;		/* NPAGES pages; the hot counter is buf[8] */
	unsigned long ops;
	int err;
};

static void *work(void *arg)
{
	struct worker *w = arg;

	for (int r = 0; r < ROUNDS && !w->err; r++) {
		if (w->fd < 0) {
			for (unsigned long i = 0; i < NPAGES; i++)
				__atomic_fetch_add(&w->buf[i * PAGE_SZ / 8], 1, __ATOMIC_SEQ_CST);
			for (int k = 0; k < HOT_ADDS; k++) {
				__atomic_fetch_add(&w->buf[8], 1, __ATOMIC_SEQ_CST);
				if (!(k & 7))
					sched_yield();
			}
		} else {
			w->err = vsvm_range(w->fd, w->buf, PAGE_SZ, NPAGES,
					    DRM_VSVM_OP_ADD, 64, 1, NULL);
			for (int k = 0; k < HOT_ADDS && !w->err; k++)
				w->err = vsvm_add64(w->fd, &w->buf[8], 1);
		}
		if (!w->err)
			w->ops += NPAGES + HOT_ADDS;
	}
	return NULL;
}

/* vsvm_demo [GPUS]: GPUS is how many devices must be there (default: all found). */
int main(int argc, char **argv)
{
	int ndev = vsvm_count(), fds[VSVM_MAX_DEVICES], n = 0, bad = 0;
	struct worker w[VSVM_MAX_DEVICES * DEV_THREADS + CPU_THREADS];
	pthread_t t[VSVM_MAX_DEVICES * DEV_THREADS + CPU_THREADS];
	unsigned long cpu_ops = 0, total_ops = 0;
	uint64_t sum = 0, expect;
	struct timespec t0, t1;
	uint64_t *buf;
	long thp_kb;

	if (ndev < 1 || (argc > 1 && ndev != atoi(argv[1]))) {
		printf("vsvm demo: %d vsvm devices, expected %s\n", ndev,
		       argc > 1 ? argv[1] : "1 or more");
		return 1;
	}
	buf = thp_alloc();
	if (!buf)
		return 1;
	memset(buf, 0, THP_SZ);
	thp_kb = anon_huge_kb(buf);

	for (int d = 0; d < ndev; d++) {
		fds[d] = vsvm_open(d);
		if (fds[d] < 0) {
			printf("vsvm demo: cannot open GPU %d: %s\n", d, strerror(-fds[d]));
			return 1;
		}
		for (int k = 0; k < DEV_THREADS; k++)
			w[n++] = (struct worker){ .fd = fds[d], .buf = buf };
	}
	for (int k = 0; k < CPU_THREADS; k++)
		w[n++] = (struct worker){ .fd = -1, .buf = buf };

	printf("vsvm demo: %d GPUs x %d threads + %d CPU threads, atomic adds on a hot counter\n",
	       ndev, DEV_THREADS, CPU_THREADS);
	printf("and on one counter in each of the %lu pages of a 2 MiB buffer (THP-backed: %s)\n\n",
	       NPAGES, thp_kb >= 2048 ? "yes" : "no");

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < n; i++)
		pthread_create(&t[i], NULL, work, &w[i]);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);

	printf("%-8s %9s %8s %8s %8s %8s %8s %8s %8s\n", "who", "ops", "faults", "granted",
	       "retries", "rev:cpu", "rev:gpu", "rev:oth", "timeout");
	for (int d = 0; d < ndev; d++) {
		struct drm_vsvm_stats s;
		unsigned long long other = 0;

		vsvm_stats(fds[d], &s);
		for (int c = 0; c < DRM_VSVM_REVOKE_COUNT; c++)
			if (c != DRM_VSVM_REVOKE_CPU && c != DRM_VSVM_REVOKE_DEVICE)
				other += s.revocations[c];
		printf("gpu%-5d %9llu %8llu %8llu %8llu %8llu %8llu %8llu %8llu\n", d, s.ops,
		       s.faults, s.pages_granted, s.retries, s.revocations[DRM_VSVM_REVOKE_CPU],
		       s.revocations[DRM_VSVM_REVOKE_DEVICE], other, s.timeouts);
		total_ops += s.ops;
	}
	for (int i = 0; i < n; i++) {
		if (w[i].err) {
			printf("participant %d failed: %s\n", i, strerror(-w[i].err));
			bad = 1;
		}
		if (w[i].fd < 0)
			cpu_ops += w[i].ops;
	}
	total_ops += cpu_ops;
	printf("%-8s %9lu %8s %8s %8s %8s %8s %8s %8s\n", "cpu", cpu_ops, "-", "-", "-", "-",
	       "-", "-", "-");

	for (unsigned long i = 0; i < NPAGES; i++)
		sum += buf[i * PAGE_SZ / 8];
	sum += buf[8];	/* the hot counter */
	expect = (uint64_t)n * ROUNDS * (NPAGES + HOT_ADDS);
	/* What the devices' hardware did (debugfs, since the module was loaded). */
	printf("\n%-8s %-23s %7s %10s %8s %8s %7s %6s\n", "device", "ops per engine", "TLB hit",
	       "shootdowns", "records", "batches", "ranges", "full");
	for (int d = 0; d < ndev; d++) {
		char engines[64] = "";
		long hits = vsvm_dev_stat_of(d, "tlb_hits", 0);
		long misses = vsvm_dev_stat_of(d, "tlb_misses", 0);

		for (int e = 0, len = 0; e < 4; e++) {
			long ops = vsvm_dev_stat_of(d, "engine_ops", e);

			if (ops < 0)
				break;
			len += snprintf(engines + len, sizeof(engines) - len, "%s%ld", e ? " " : "",
					ops);
		}
		printf("gpu%-5d %-23s %6.1f%% %10ld %8ld %8ld %7ld %6ld\n", d, engines,
		       hits + misses > 0 ? 100.0 * hits / (hits + misses) : 0.0,
		       vsvm_dev_stat_of(d, "tlb_shootdowns", 0),
		       vsvm_dev_stat_of(d, "fault_records", 0),
		       vsvm_dev_stat_of(d, "fault_batches", 0),
		       vsvm_dev_stat_of(d, "fault_ranges", 0),
		       vsvm_dev_stat_of(d, "fault_buffer_full", 0));
	}

	printf("\ntotal ops %lu in %.2f s; final sum %llu, expected %llu: %s\n", total_ops,
	       (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
	       (unsigned long long)sum, (unsigned long long)expect,
	       sum == expect && !bad ? "exact" : "WRONG");
	return sum == expect && !bad ? 0 : 1;
}

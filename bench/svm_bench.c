// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmarks run in the guest by `make bench`.  Each command prints result
 * lines "BENCH,<figure>,<variant>,<value>,<unit>" that build/bench.py
 * collects; repetitions and alternation of variants are up to the caller
 * (bench/run.sh).  Times are CLOCK_MONOTONIC in the guest.
 *
 *   svm_bench floor           backend single-page faults vs bare make_device_exclusive,
 *                             in the kernel (vsvm debugfs bench_floor)
 *   svm_bench grant           vsvm prefetch vs test_hmm EXCLUSIVE, 512 pages per call
 *   svm_bench single VARIANT  512 single-page vsvm grants on 4 KiB pages
 *   svm_bench batch           512 single-page grants vs one 512-page grant, THP
 *   svm_bench noise           faults on P while P+1 ping-pongs between a GPU and the CPU
 *   svm_bench contention NDEV NCPU PAGES VARIANT   time-bounded contention run
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "../tests/vsvm_common.h"
#include "../tests/thp.h"
#include "test_hmm_uapi.h"

#define NPAGES 512

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void result(const char *fig, const char *variant, double v, const char *unit)
{
	printf("BENCH,%s,%s,%.3f,%s\n", fig, variant, v, unit);
}

static void *map_pages(unsigned long n, int thp)
{
	char *p;

	if (thp) {
		p = thp_alloc();
	} else {
		p = mmap(NULL, n * PAGE_SZ, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return NULL;
		madvise(p, n * PAGE_SZ, MADV_NOHUGEPAGE);
	}
	if (p)
		memset(p, 1, n * PAGE_SZ);
	return p;
}

/* Takes every page back to the CPU (revoking the device), untimed. */
static void touch(char *p, unsigned long n)
{
	for (unsigned long i = 0; i < n; i++)
		p[i * PAGE_SZ]++;
}

/*
 * One in-kernel measurement through debugfs: ns per page for "floor" and
 * "backend", 0 for "profile" (its phases are read separately), -1 on error.
 */
static double floor_run(const char *what, char *p)
{
	const char *path = "/sys/kernel/debug/vsvm/bench_floor";
	char cmd[64], line[64];
	double ns = strcmp(what, "profile") ? -1 : 0;
	FILE *f;
	int fd = open(path, O_WRONLY);

	if (fd < 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "%s 0x%lx %lu", what, (unsigned long)p, (unsigned long)NPAGES);
	if (write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd)) {
		close(fd);
		return -1;
	}
	close(fd);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, what, strlen(what)))
			sscanf(strchr(line, ':') + 1, "%lf", &ns);
	}
	fclose(f);
	return ns;
}

/* Where a backend fault's time goes: one profiled run, ns per page and phase. */
static int cmd_profile(char *p)
{
	char line[96], name[64];
	double ns;
	FILE *f;

	if (floor_run("profile", p) < 0)
		return 1;
	touch(p, NPAGES);
	f = fopen("/sys/kernel/debug/vsvm/bench_floor", "r");
	if (!f)
		return 1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "phase_%63[^:]: %lf", name, &ns) == 2)
			result("profile", name, ns / 1000, "us/page");
	fclose(f);
	return 0;
}

static int cmd_floor(void)
{
	char *p = map_pages(NPAGES, 0);

	if (!p)
		return 1;
	for (int rep = 0; rep < 5; rep++) {
		double bare = floor_run("floor", p), backend;

		touch(p, NPAGES);
		backend = floor_run("backend", p);
		touch(p, NPAGES);
		if (bare < 0 || backend < 0)
			return 1;
		result("floor", "bare", bare / 1000, "us/page");
		result("floor", "backend", backend / 1000, "us/page");
	}
	return cmd_profile(p);
}

static int cmd_grant(void)
{
	int fd = vsvm_open(0), hmm = open("/dev/hmm_dmirror0", O_RDWR);
	char *mirror = malloc(NPAGES * PAGE_SZ);

	if (fd < 0 || hmm < 0 || !mirror)
		return 1;
	for (int thp = 0; thp <= 1; thp++) {
		char *p = map_pages(NPAGES, thp);
		const char *kind = thp ? "thp" : "4k";
		char name[32];
		double t;

		for (int rep = 0; rep < 3; rep++) {
			struct hmm_dmirror_cmd c = { .addr = (uintptr_t)p, .ptr = (uintptr_t)mirror,
						     .npages = NPAGES };

			t = now_us();
			if (vsvm_prefetch(fd, p, NPAGES))
				return 1;
			snprintf(name, sizeof(name), "vsvm-%s", kind);
			result("grant", name, (now_us() - t) / NPAGES, "us/page");
			touch(p, NPAGES);
			t = now_us();
			if (ioctl(hmm, HMM_DMIRROR_EXCLUSIVE, &c))
				return 1;
			snprintf(name, sizeof(name), "test_hmm-%s", kind);
			result("grant", name, (now_us() - t) / NPAGES, "us/page");
			touch(p, NPAGES);
		}
	}
	return 0;
}

/* One single-page grant for each of the NPAGES pages at @p: us per page, or -1. */
static double fault_each(int fd, char *p)
{
	double t = now_us();

	for (unsigned long i = 0; i < NPAGES; i++)
		if (vsvm_prefetch(fd, p + i * PAGE_SZ, 1))
			return -1;
	return (now_us() - t) / NPAGES;
}

static int cmd_single(const char *variant)
{
	int fd = vsvm_open(0);
	char *p = map_pages(NPAGES, 0);

	if (fd < 0 || !p)
		return 1;
	for (int rep = 0; rep < 3; rep++) {
		double us = fault_each(fd, p);

		if (us < 0)
			return 1;
		result("notifiers", variant, us, "us/fault");
		touch(p, NPAGES);
	}
	return 0;
}

static int cmd_batch(void)
{
	int fd = vsvm_open(0);
	char *p = map_pages(NPAGES, 1);

	if (fd < 0 || !p)
		return 1;
	for (int rep = 0; rep < 3; rep++) {
		double us = fault_each(fd, p), t;

		if (us < 0)
			return 1;
		result("batching", "512x1", us, "us/page");
		touch(p, NPAGES);
		t = now_us();
		if (vsvm_prefetch(fd, p, NPAGES))
			return 1;
		result("batching", "1x512", (now_us() - t) / NPAGES, "us/page");
		touch(p, NPAGES);
	}
	return 0;
}

static int stop_flag;

struct noise { int fd; uint64_t *q; };

static void *noise_gpu(void *arg)
{
	struct noise *n = arg;

	while (!__atomic_load_n(&stop_flag, __ATOMIC_RELAXED))
		vsvm_add64(n->fd, n->q, 1);
	return NULL;
}

static void *noise_cpu(void *arg)
{
	struct noise *n = arg;

	while (!__atomic_load_n(&stop_flag, __ATOMIC_RELAXED)) {
		__atomic_fetch_add(n->q, 1, __ATOMIC_SEQ_CST);
		sched_yield();
	}
	return NULL;
}

static int cmd_noise(void)
{
	int fd0 = vsvm_open(0), fd1 = vsvm_open(1);
	uint64_t *p = map_pages(NPAGES, 1);
	struct drm_vsvm_stats a, b;
	struct noise n;
	pthread_t t[2];
	int faults = 2000;

	if (fd0 < 0 || fd1 < 0 || !p)
		return 1;
	n = (struct noise){ .fd = fd1, .q = p + PAGE_SZ / 8 };
	pthread_create(&t[0], NULL, noise_gpu, &n);
	pthread_create(&t[1], NULL, noise_cpu, &n);
	vsvm_stats(fd0, &a);
	for (int i = 0; i < faults; i++) {
		if (vsvm_add64(fd0, p, 1))
			return 1;
		p[0]++;	/* the CPU takes P back: the next op faults again */
	}
	vsvm_stats(fd0, &b);
	__atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	result("noise", "retries-per-fault", (double)(b.retries - a.retries) /
	       (double)(b.faults - a.faults), "ratio");
	return 0;
}

struct part {
	int fd;			/* -1: CPU */
	uint64_t *buf;
	unsigned long pages;
	unsigned long ops;
};

static void *part_run(void *arg)
{
	struct part *w = arg;
	unsigned long i = 0;

	while (!__atomic_load_n(&stop_flag, __ATOMIC_RELAXED)) {
		uint64_t *c = &w->buf[(i++ % w->pages) * PAGE_SZ / 8];

		if (w->fd < 0) {
			__atomic_fetch_add(c, 1, __ATOMIC_SEQ_CST);
			if (!(i & 7))
				sched_yield();
		} else if (vsvm_add64(w->fd, c, 1)) {
			break;
		}
		w->ops++;
	}
	return NULL;
}

static int cmd_contention(int ndev, int ncpu, unsigned long pages, const char *variant)
{
	struct part w[VSVM_MAX_DEVICES + 2];
	pthread_t t[VSVM_MAX_DEVICES + 2];
	uint64_t *buf = map_pages(NPAGES, 1), total = 0, sum = 0, lo = ~0ULL, hi = 0;
	unsigned long long retries = 0, revoked = 0;
	int n = 0;
	double t0, secs;
	char name[64];

	if (!buf)
		return 1;
	memset(buf, 0, THP_SZ);
	for (int d = 0; d < ndev; d++) {
		w[n] = (struct part){ .fd = vsvm_open(d), .buf = buf, .pages = pages };
		if (w[n++].fd < 0)
			return 1;
	}
	for (int c = 0; c < ncpu; c++)
		w[n++] = (struct part){ .fd = -1, .buf = buf, .pages = pages };
	__atomic_store_n(&stop_flag, 0, __ATOMIC_RELAXED);
	t0 = now_us();
	for (int i = 0; i < n; i++)
		pthread_create(&t[i], NULL, part_run, &w[i]);
	usleep(400000);
	__atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	secs = (now_us() - t0) / 1e6;
	for (int i = 0; i < n; i++) {
		total += w[i].ops;
		lo = w[i].ops < lo ? w[i].ops : lo;
		hi = w[i].ops > hi ? w[i].ops : hi;
		if (w[i].fd >= 0) {
			struct drm_vsvm_stats s;

			vsvm_stats(w[i].fd, &s);
			retries += s.retries;
			for (int c = 0; c < DRM_VSVM_REVOKE_COUNT; c++)
				revoked += s.revocations[c];
			close(w[i].fd);
		}
	}
	for (unsigned long i = 0; i < pages; i++)
		sum += buf[i * PAGE_SZ / 8];
	if (sum != total) {
		printf("contention: sum %llu != ops %llu\n", (unsigned long long)sum,
		       (unsigned long long)total);
		return 1;
	}
	snprintf(name, sizeof(name), "%s:%dgpu+%dcpu:%lupages", variant, ndev, ncpu, pages);
	result("contention-opss", name, total / secs, "ops/s");
	result("contention-fairness", name, hi ? (double)lo / hi : 0, "min/max");
	result("contention-retries", name, (double)retries / total, "per-op");
	result("contention-revocations", name, (double)revoked / total, "per-op");
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && !strcmp(argv[1], "floor"))
		return cmd_floor();
	if (argc >= 2 && !strcmp(argv[1], "grant"))
		return cmd_grant();
	if (argc >= 3 && !strcmp(argv[1], "single"))
		return cmd_single(argv[2]);
	if (argc >= 2 && !strcmp(argv[1], "batch"))
		return cmd_batch();
	if (argc >= 2 && !strcmp(argv[1], "noise"))
		return cmd_noise();
	if (argc >= 6 && !strcmp(argv[1], "contention"))
		return cmd_contention(atoi(argv[2]), atoi(argv[3]), strtoul(argv[4], NULL, 0),
				      argv[5]);
	fprintf(stderr, "usage: svm_bench floor|grant|single VARIANT|batch|noise|contention ...\n");
	return 2;
}

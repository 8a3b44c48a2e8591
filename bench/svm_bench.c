// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmarks run in the guest by `make bench`.  Each command prints result
 * lines "BENCH,<figure>,<variant>,<value>,<unit>" that build/bench.py
 * collects; every figure repeats its variants at least 5 times, alternating
 * their order.  Times are CLOCK_MONOTONIC in the guest.
 *
 *   svm_bench floor [SUFFIX]  in the kernel (vsvm debugfs bench_floor): the bare loop, the
 *                             correct floor (single page and batch), the backend (single
 *                             page and batch), and what a CPU touch of their pages costs
 *   svm_bench grant           vsvm prefetch vs test_hmm EXCLUSIVE, 512 pages per call, both
 *                             orders, a fresh buffer per variant
 *   svm_bench single VARIANT  512 single-page vsvm grants on 4 KiB pages
 *   svm_bench batch           512 single-page grants vs one 512-page grant, THP
 *   svm_bench noise           faults on P while P+1 ping-pongs between a GPU and the CPU
 *   svm_bench sweep           backend and correct floor, batches of 1 to 4096 pages
 *   svm_bench async           the asynchronous path: QUERY, ATOMIC, SUBMIT, ATOMIC_RANGE
 *   svm_bench fresh           one job sweeping a fresh THP vs PREFETCH and the same job
 *   svm_bench scatter VARIANT one fault on a random page of each of 32 fresh THPs
 *   svm_bench contention NDEV NCPU PAGES VARIANT   time-bounded contention run: devices
 *                             run jobs (a pass over PAGES pages, or 256 operations on one)
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "../tools/testing/selftests/drivers/gpu/vsvm/vsvm_common.h"
#include "../tools/testing/selftests/drivers/gpu/vsvm/thp.h"
#include "test_hmm_uapi.h"

#define NPAGES 512
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

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

/* @n pages, THP-backed (n a multiple of 512) or not, filled; NULL on failure. */
static void *map_pages(unsigned long n, int thp)
{
	unsigned long len = n * PAGE_SZ;
	char *p = mmap(NULL, len + (thp ? THP_SZ : 0), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (thp)
		p = (char *)(((uintptr_t)p + THP_SZ - 1) & ~(THP_SZ - 1));
	if (madvise(p, len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE))
		return NULL;
	memset(p, 1, len);
	return p;
}

/* 1 if every 2 MiB of the @n pages at @p is a THP (@thp) or none is (!@thp). */
static int thp_state(char *p, unsigned long n, int thp)
{
	for (unsigned long i = 0; i < n; i += THP_SZ / PAGE_SZ)
		if (page_is_thp(p + i * PAGE_SZ) != thp)
			return 0;
	return 1;
}

static void unmap_pages(char *p, unsigned long n)
{
	munmap(p, n * PAGE_SZ);
}

/* Takes every page back to the CPU (revoking the device): us per page. */
static double touch(char *p, unsigned long n)
{
	double t = now_us();

	for (unsigned long i = 0; i < n; i++)
		p[i * PAGE_SZ]++;
	return (now_us() - t) / n;
}

/*
 * One in-kernel measurement through debugfs over @n pages at @p: ns per page,
 * -1 on error.
 */
static double probe(const char *what, char *p, unsigned long n)
{
	const char *path = "/sys/kernel/debug/vsvm/bench_floor";
	char cmd[64], line[96], key[64];
	double ns = -1;
	FILE *f;
	int fd = open(path, O_WRONLY);

	if (fd < 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "%s 0x%lx %lu", what, (unsigned long)p, n);
	if (write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd)) {
		close(fd);
		return -1;
	}
	close(fd);
	f = fopen(path, "r");
	if (!f)
		return -1;
	snprintf(key, sizeof(key), "%s_ns_per_page: %%lf", what);
	while (fgets(line, sizeof(line), f))
		sscanf(line, key, &ns);
	fclose(f);
	return ns;
}

#define TRACING "/sys/kernel/tracing/"
#define PHASES 7

/* Writes @val to the tracefs file @name; 0 or -1. */
static int tracefs(const char *name, const char *val)
{
	char path[128];

	snprintf(path, sizeof(path), TRACING "%s", name);
	return write_file(path, val) ? -1 : 0;
}

/*
 * Where a backend fault's time goes: one "backend" run with only the drm_svm
 * tracepoints svm_fault_begin and svm_phase on, for this task, us per page and
 * phase.  A phase is the time from the task's previous event to its svm_phase
 * (the trace's timestamps are in us with the default "local" clock: averaged
 * over NPAGES faults).  The benchmark guest's tracefs is its own: the other
 * drm_svm events are turned off, and the buffer, the pid filter and the
 * events are left cleared.
 */
static int cmd_profile(char *p)
{
	static const char *const events[] = { "svm_fault_begin", "svm_phase" };
	char name[PHASES][32], line[256], pid[16], path[64];
	double sum[PHASES] = { 0 }, last = -1;
	int n = 0, err = 0;
	FILE *f;

	snprintf(pid, sizeof(pid), "%d", getpid());
	err |= tracefs("events/drm_svm/enable", "0");
	err |= tracefs("trace_clock", "local");
	err |= tracefs("set_event_pid", pid);
	err |= tracefs("trace", "");
	for (int e = 0; e < 2; e++) {
		snprintf(path, sizeof(path), "events/drm_svm/%s/enable", events[e]);
		err |= tracefs(path, "1");
	}
	if (!err && probe("backend", p, NPAGES) < 0)
		err = 1;
	for (int e = 0; e < 2; e++) {
		snprintf(path, sizeof(path), "events/drm_svm/%s/enable", events[e]);
		tracefs(path, "0");
	}
	tracefs("set_event_pid", "");
	touch(p, NPAGES);
	f = err ? NULL : fopen(TRACING "trace", "r");
	if (!f)
		return 1;
	while (fgets(line, sizeof(line), f)) {
		char *ev = strstr(line, ": svm_"), *ts, *ph;
		double t;
		int k;

		if (!ev || line[0] == '#')
			continue;
		*ev = 0;
		ts = strrchr(line, ' ');
		t = atof(ts ? ts + 1 : line) * 1e6;
		ev += 2;
		ph = strstr(ev, " phase=");
		if (!strncmp(ev, "svm_phase:", 10) && ph && last >= 0) {
			ph += 7;
			ph[strcspn(ph, "\n ")] = 0;
			for (k = 0; k < n && strcmp(name[k], ph); k++)
				;
			if (k == n && n < PHASES)
				snprintf(name[n++], sizeof(name[0]), "%s", ph);
			if (k < n)
				sum[k] += t - last;
		}
		last = t;
	}
	fclose(f);
	for (int k = 0; k < n; k++)
		result("profile", name[k], sum[k] / NPAGES, "us/page");
	return n ? 0 : 1;
}

/*
 * The in-kernel ways of granting, alternated, each on NPAGES pages of a fresh
 * 4 KiB buffer, and the CPU touch that takes the pages back after each: with
 * no notifier in the way (bare) or through the backend's revocation.  With a
 * @suffix (the module's setting), the figures are named "floor-@suffix" and
 * "revoke-@suffix", and the profile is left out.
 */
static int cmd_floor(const char *suffix)
{
	char floor_fig[32], revoke_fig[32];
	static const char *const what[] = {
		"bare", "floor", "floor_batch", "backend", "backend_batch",
	};
	const int n = ARRAY_SIZE(what);
	char *p;

	snprintf(floor_fig, sizeof(floor_fig), "floor%s%s", suffix ? "-" : "", suffix ?: "");
	snprintf(revoke_fig, sizeof(revoke_fig), "revoke%s%s", suffix ? "-" : "", suffix ?: "");
	for (int rep = 0; rep < 11; rep++) {
		for (int k = 0; k < n; k++) {
			/* Forwards, then backwards: each variant runs early and late. */
			const char *w = what[rep % 2 ? n - 1 - k : k];
			double ns, us;

			p = map_pages(NPAGES, 0);
			if (!p)
				return 1;
			ns = probe(w, p, NPAGES);
			if (ns < 0)
				return 1;
			us = touch(p, NPAGES);
			result(floor_fig, w, ns / 1000, "us/page");
			if (!strcmp(w, "bare") || !strcmp(w, "backend"))
				result(revoke_fig, w, us, "us/page");
			unmap_pages(p, NPAGES);
		}
	}
	if (suffix)
		return 0;
	p = map_pages(NPAGES, 0);
	return p ? cmd_profile(p) : 1;
}

/* One sweep point: @n pages of a fresh buffer, granted by @what; 0 or 1 on error. */
static int sweep_one(const char *what, unsigned long n, int thp)
{
	unsigned long len = n < 512 && thp ? 512 : n;
	char *p = map_pages(len, thp), name[48];
	double ns;

	if (!p || !thp_state(p, len, thp))
		return 1;
	ns = probe(what, p, n);
	if (ns < 0)
		return 1;
	snprintf(name, sizeof(name), "%s:%s:%lu", thp ? "thp" : "4k", what, n);
	result("sweep", name, ns / 1000, "us/page");
	unmap_pages(p, len);
	return 0;
}

/* Batches of 1 to 4096 pages, 4 KiB and THP: backend and correct floor per page. */
static int cmd_sweep(void)
{
	static const unsigned long sizes[] = { 1, 8, 64, 512, 4096 };

	for (int thp = 0; thp <= 1; thp++)
		for (unsigned int s = 0; s < ARRAY_SIZE(sizes); s++)
			for (int rep = 0; rep < 10; rep++)
				if (sweep_one(rep % 4 == 1 || rep % 4 == 2 ? "floor_batch" :
					      "backend_batch", sizes[s], thp))
					return 1;
	return 0;
}

/* test_hmm's two copies of a page per grant (device page to bounce, bounce to user). */
static double copy_us(char *from, char *bounce, char *to)
{
	double t = now_us();

	memcpy(bounce, from, NPAGES * PAGE_SZ);
	memcpy(to, bounce, NPAGES * PAGE_SZ);
	asm volatile("" : : "r"(to) : "memory");
	return (now_us() - t) / NPAGES;
}

/*
 * vsvm against test_hmm, 512 pages per call, alternating which goes first,
 * each variant on a fresh buffer checked to be in the same THP state.
 * test_hmm copies every page twice on top of granting it (into its bounce
 * buffer, then to the caller): that copy is timed alone and subtracted for
 * the "nocopy" figure, an estimate (the kernel copy is not the user one).
 */
static int cmd_grant(void)
{
	int fd = vsvm_open(0), hmm = open("/dev/hmm_dmirror0", O_RDWR);
	char *mirror = malloc(NPAGES * PAGE_SZ), *bounce = malloc(NPAGES * PAGE_SZ);

	if (fd < 0 || hmm < 0 || !mirror || !bounce)
		return 1;
	for (int thp = 0; thp <= 1; thp++) {
		const char *kind = thp ? "thp" : "4k";

		for (int rep = 0; rep < 22; rep++) {
			const char *order = rep % 2 ? "hmm-first" : "vsvm-first";

			for (int k = 0; k < 2; k++) {
				int vsvm = (rep + k) % 2 == 0;
				char *p = map_pages(NPAGES, thp), name[48];
				struct hmm_dmirror_cmd c = { .addr = (uintptr_t)p,
							     .ptr = (uintptr_t)mirror,
							     .npages = NPAGES };
				double t, us;

				if (!p || !thp_state(p, NPAGES, thp))
					return 1;
				t = now_us();
				if (vsvm ? vsvm_prefetch(fd, p, NPAGES) :
					   ioctl(hmm, HMM_DMIRROR_EXCLUSIVE, &c))
					return 1;
				us = (now_us() - t) / NPAGES;
				snprintf(name, sizeof(name), "%s:%s:%s", vsvm ? "vsvm" : "test_hmm",
					 kind, order);
				result("grant", name, us, "us/page");
				if (!vsvm) {
					snprintf(name, sizeof(name), "test_hmm-nocopy:%s:%s", kind,
						 order);
					result("grant", name, us - copy_us(p, bounce, mirror),
					       "us/page");
				}
				touch(p, NPAGES);
				unmap_pages(p, NPAGES);
			}
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
	for (int rep = 0; rep < 5; rep++) {
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

	if (fd < 0)
		return 1;
	for (int rep = 0; rep < 12; rep++) {
		for (int k = 0; k < 2; k++) {
			int each = (rep + k) % 2 == 0;
			char *p = map_pages(NPAGES, 1);
			double us, t;

			if (!p || !thp_state(p, NPAGES, 1))
				return 1;
			t = now_us();
			if (each)
				us = fault_each(fd, p);
			else
				us = vsvm_prefetch(fd, p, NPAGES) ? -1 : (now_us() - t) / NPAGES;
			if (us < 0)
				return 1;
			result("batching", each ? "512x1" : "1x512", us, "us/page");
			touch(p, NPAGES);
			unmap_pages(p, NPAGES);
		}
	}
	return 0;
}

static int stop_flag;

struct noise {
	int fd;
	uint64_t *q;
	unsigned long gpu_ops, cpu_ops;
};

static void *noise_gpu(void *arg)
{
	struct noise *n = arg;

	while (!__atomic_load_n(&stop_flag, __ATOMIC_RELAXED))
		if (!vsvm_add64(n->fd, n->q, 1))
			__atomic_fetch_add(&n->gpu_ops, 1, __ATOMIC_RELAXED);
	return NULL;
}

static void *noise_cpu(void *arg)
{
	struct noise *n = arg;

	while (!__atomic_load_n(&stop_flag, __ATOMIC_RELAXED)) {
		__atomic_fetch_add(n->q, 1, __ATOMIC_SEQ_CST);
		__atomic_fetch_add(&n->cpu_ops, 1, __ATOMIC_RELAXED);
		sched_yield();
	}
	return NULL;
}

/*
 * Faults on page P while another GPU and the CPU ping-pong page P + 1 of the
 * same THP (and chunk): the retries per fault, and the neighbours' operations
 * during the measured faults, which show they really ran.
 */
static int cmd_noise(void)
{
	int fd0 = vsvm_open(0), fd1 = vsvm_open(1);
	uint64_t *p = map_pages(NPAGES, 1);
	struct noise n = { .fd = fd1, .q = p + PAGE_SZ / 8 };
	pthread_t t[2];
	const int faults = 1000;

	if (fd0 < 0 || fd1 < 0 || !p)
		return 1;
	__atomic_store_n(&stop_flag, 0, __ATOMIC_RELAXED);
	pthread_create(&t[0], NULL, noise_gpu, &n);
	pthread_create(&t[1], NULL, noise_cpu, &n);
	for (int rep = 0; rep < 5; rep++) {
		struct drm_vsvm_stats a, b;
		unsigned long gpu0, cpu0;

		vsvm_stats(fd0, &a);
		gpu0 = __atomic_load_n(&n.gpu_ops, __ATOMIC_RELAXED);
		cpu0 = __atomic_load_n(&n.cpu_ops, __ATOMIC_RELAXED);
		for (int i = 0; i < faults; i++) {
			if (vsvm_add64(fd0, p, 1))
				return 1;
			p[0]++;	/* the CPU takes P back: the next op faults again */
		}
		vsvm_stats(fd0, &b);
		result("noise", "retries-per-fault", (double)(b.retries - a.retries) /
		       (double)(b.faults - a.faults), "ratio");
		result("noise", "neighbour-gpu-ops",
		       __atomic_load_n(&n.gpu_ops, __ATOMIC_RELAXED) - gpu0, "ops");
		result("noise", "neighbour-cpu-ops",
		       __atomic_load_n(&n.cpu_ops, __ATOMIC_RELAXED) - cpu0, "ops");
	}
	__atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	return 0;
}

/* Operations of one device job on the hot page (one page) in a contention run. */
#define HOT_OPS 256

struct part {
	int fd;			/* -1: CPU */
	uint64_t *buf;
	unsigned long pages;
	unsigned long ops;
	unsigned long busy;	/* jobs that gave up with EBUSY */
	unsigned long slack;	/* operations they may have done */
	int err;
};

/*
 * A device runs jobs, as a GPU's kernels do: on one page, HOT_OPS operations
 * on it; on a buffer, one pass over it, one operation per page.  A CPU
 * thread sweeps with one atomic at a time.
 */
static void *part_run(void *arg)
{
	struct part *w = arg;
	unsigned long i = 0;
	unsigned long count = w->pages == 1 ? HOT_OPS : w->pages;
	__u64 stride = w->pages == 1 ? 0 : PAGE_SZ;

	while (!__atomic_load_n(&stop_flag, __ATOMIC_RELAXED)) {
		if (w->fd < 0) {
			__atomic_fetch_add(&w->buf[(i++ % w->pages) * PAGE_SZ / 8], 1,
					   __ATOMIC_SEQ_CST);
			if (!(i & 7))
				sched_yield();
			w->ops++;
			continue;
		}
		w->err = vsvm_range(w->fd, w->buf, stride, count, DRM_VSVM_OP_ADD, 64, 1, NULL);
		if (w->err == -EBUSY) {
			/* An access starved past its deadline: the job gave up part-way. */
			w->err = 0;
			w->busy++;
			w->slack += count;
			continue;
		}
		if (w->err)
			break;
		w->ops += count;
	}
	return NULL;
}

static int cmd_contention(int ndev, int ncpu, unsigned long pages, const char *variant)
{
	struct part w[VSVM_MAX_DEVICES + 2];
	pthread_t t[VSVM_MAX_DEVICES + 2];
	uint64_t *buf = map_pages(NPAGES, 1), total = 0, sum = 0, lo = ~0ULL, hi = 0, cpu = 0;
	unsigned long long retries = 0, revoked = 0, granted = 0, busy = 0, slack = 0;
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
	/* A buffer changes hands in turns of tens of ms: long enough for several each. */
	usleep(pages > 1 ? 2000000 : 400000);
	__atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	secs = (now_us() - t0) / 1e6;
	for (int i = 0; i < n; i++) {
		total += w[i].ops;
		if (w[i].fd < 0) {
			cpu += w[i].ops;
			continue;
		}
		struct drm_vsvm_stats s;

		if (w[i].err)
			printf("contention: device %d: %s\n", i, strerror(-w[i].err));
		busy += w[i].busy;
		slack += w[i].slack;
		lo = w[i].ops < lo ? w[i].ops : lo;
		hi = w[i].ops > hi ? w[i].ops : hi;
		vsvm_stats(w[i].fd, &s);
		retries += s.retries;
		granted += s.pages_granted;
		for (int c = 0; c < DRM_VSVM_REVOKE_COUNT; c++)
			revoked += s.revocations[c];
		close(w[i].fd);
	}
	for (unsigned long i = 0; i < pages; i++)
		sum += buf[i * PAGE_SZ / 8];
	unmap_pages((char *)buf, NPAGES);
	/* Exact, but for the operations of jobs that gave up part-way. */
	if (sum < total || sum > total + slack) {
		printf("contention: sum %llu, ops %llu (+%llu in jobs that gave up)\n",
		       (unsigned long long)sum, (unsigned long long)total, slack);
		return 1;
	}
	snprintf(name, sizeof(name), "%s:%dgpu+%dcpu:%lupages", variant, ndev, ncpu, pages);
	result("contention-opss", name, (total - cpu) / secs, "ops/s");
	result("contention-cpu", name, cpu / secs, "ops/s");
	result("contention-slowest", name, lo / secs, "ops/s");
	result("contention-fairness", name, hi ? (double)lo / hi : 0, "min/max");
	result("contention-retries", name, total > cpu ? (double)retries / (total - cpu) : 0,
	       "per-op");
	result("contention-revocations", name, total > cpu ? (double)revoked / (total - cpu) : 0,
	       "per-op");
	result("contention-gave-up", name, busy, "jobs");
	result("contention-grants", name, total > cpu ? (double)granted / (total - cpu) : 0,
	       "per-op");
	return 0;
}

/*
 * One device sweeping a fresh THP, one operation per page (one job): the
 * faults it takes on the way against a 512-page PREFETCH followed by the
 * same job; us per page, alternated.
 */
static int cmd_fresh(void)
{
	int fd = vsvm_open(0);
	double t;

	if (fd < 0)
		return 1;
	for (int rep = 0; rep < 5; rep++) {
		for (int v = 0; v < 2; v++) {
			char *p = map_pages(NPAGES, 1);

			if (!p || !thp_state(p, NPAGES, 1))
				return 1;
			t = now_us();
			if ((v && vsvm_prefetch(fd, p, NPAGES)) ||
			    vsvm_range(fd, p, PAGE_SZ, NPAGES, DRM_VSVM_OP_ADD, 64, 1, NULL))
				return 1;
			result("fresh", v ? "prefetch" : "sweep", (now_us() - t) / NPAGES,
			       "us/page");
			unmap_pages(p, NPAGES);
		}
	}
	close(fd);
	return 0;
}

/*
 * Random single-page access: one operation on one random page of each of
 * SCATTER_CHUNKS fresh 2 MiB chunks, us per fault (VARIANT names the
 * module's fault-around setting).
 */
#define SCATTER_CHUNKS 32

static int cmd_scatter(const char *variant)
{
	int fd = vsvm_open(0);
	unsigned long n = SCATTER_CHUNKS * NPAGES;
	double t;

	if (fd < 0)
		return 1;
	srand(1);
	for (int rep = 0; rep < 3; rep++) {
		char *p = map_pages(n, 1);

		if (!p)
			return 1;
		t = now_us();
		for (int c = 0; c < SCATTER_CHUNKS; c++)
			if (vsvm_add64(fd, p + (c * NPAGES + rand() % NPAGES) * PAGE_SZ, 1))
				return 1;
		result("scatter", variant, (now_us() - t) / SCATTER_CHUNKS, "us/fault");
		unmap_pages(p, n);
	}
	close(fd);
	return 0;
}

/*
 * The asynchronous path, per operation on one granted page: the ioctl alone
 * (QUERY), ATOMIC (a job of one operation, submitted and waited for), SUBMIT
 * + WAIT of 256 operations, and ATOMIC_RANGE of 256 (one job, one access).
 */
static int cmd_async(void)
{
	static struct drm_vsvm_job_op ops[256];
	static struct drm_vsvm_job_result res[256];
	const int n = 2000;
	int fd = vsvm_open(0);
	uint64_t *p = map_pages(1, 0);
	__u64 seqno;
	double t;

	if (fd < 0 || !p || vsvm_add64(fd, p, 1))
		return 1;
	for (int i = 0; i < 256; i++)
		ops[i] = (struct drm_vsvm_job_op){ .addr = (uintptr_t)p, .operand = 1,
						   .op = DRM_VSVM_OP_ADD, .width = 64 };
	for (int rep = 0; rep < 5; rep++) {
		t = now_us();
		for (int i = 0; i < n; i++)
			if (vsvm_query(fd, p) < 0)
				return 1;
		result("async", "query", (now_us() - t) / n, "us/op");
		t = now_us();
		for (int i = 0; i < n; i++)
			if (vsvm_add64(fd, p, 1))
				return 1;
		result("async", "atomic", (now_us() - t) / n, "us/op");
		t = now_us();
		for (int i = 0; i < n / 64; i++)
			if (vsvm_submit(fd, ops, 256, res, &seqno) ||
			    vsvm_wait(fd, seqno, 10000000000LL))
				return 1;
		result("async", "submit256", (now_us() - t) / (n / 64 * 256), "us/op");
		t = now_us();
		for (int i = 0; i < n / 64; i++)
			if (vsvm_range(fd, p, 0, 256, DRM_VSVM_OP_ADD, 64, 1, NULL))
				return 1;
		result("async", "range256", (now_us() - t) / (n / 64 * 256), "us/op");
	}
	/*
	 * A grant through the fault worker (ATOMIC on a page the device does not
	 * hold: the engine faults, the worker grants, the job replays) against
	 * the same grant in the ioctl's task (PREFETCH) followed by the same
	 * ATOMIC on the granted page; 512 fresh pages each, alternated.
	 */
	for (int rep = 0; rep < 5; rep++) {
		char *q = map_pages(NPAGES, 0);

		if (!q)
			return 1;
		t = now_us();
		for (unsigned long i = 0; i < NPAGES; i++)
			if (vsvm_add64(fd, q + i * PAGE_SZ, 1))
				return 1;
		result("async", "fault-by-worker", (now_us() - t) / NPAGES, "us/page");
		unmap_pages(q, NPAGES);
		q = map_pages(NPAGES, 0);
		if (!q)
			return 1;
		t = now_us();
		for (unsigned long i = 0; i < NPAGES; i++)
			if (vsvm_prefetch(fd, q + i * PAGE_SZ, 1) ||
			    vsvm_add64(fd, q + i * PAGE_SZ, 1))
				return 1;
		result("async", "fault-in-ioctl", (now_us() - t) / NPAGES, "us/page");
		unmap_pages(q, NPAGES);
	}
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && !strcmp(argv[1], "floor"))
		return cmd_floor(argc >= 3 ? argv[2] : NULL);
	if (argc >= 2 && !strcmp(argv[1], "grant"))
		return cmd_grant();
	if (argc >= 3 && !strcmp(argv[1], "single"))
		return cmd_single(argv[2]);
	if (argc >= 2 && !strcmp(argv[1], "batch"))
		return cmd_batch();
	if (argc >= 2 && !strcmp(argv[1], "noise"))
		return cmd_noise();
	if (argc >= 2 && !strcmp(argv[1], "sweep"))
		return cmd_sweep();
	if (argc >= 2 && !strcmp(argv[1], "async"))
		return cmd_async();
	if (argc >= 2 && !strcmp(argv[1], "fresh"))
		return cmd_fresh();
	if (argc >= 3 && !strcmp(argv[1], "scatter"))
		return cmd_scatter(argv[2]);
	if (argc >= 6 && !strcmp(argv[1], "contention"))
		return cmd_contention(atoi(argv[2]), atoi(argv[3]), strtoul(argv[4], NULL, 0),
				      argv[5]);
	fprintf(stderr, "usage: svm_bench floor [SUFFIX]|grant|single VARIANT|batch|noise|\n"
		"	sweep|async|fresh|scatter VARIANT|contention NDEV NCPU PAGES VARIANT\n");
	return 2;
}

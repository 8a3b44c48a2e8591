// SPDX-License-Identifier: GPL-2.0
/*
 * vsvm when kernel allocations fail: in the driver, in the SVM backend, and in
 * the DRM and mm code they call.
 *
 * First systematically, with /proc/thread-self/fail-nth: each call is made
 * again and again with its first, second, third... fault-injection check
 * failed, until it makes no more checks (open of the render node, ATOMIC on a
 * small page and inside a THP, PREFETCH, ATOMIC_RANGE, STATS, QUERY).  Then at
 * random, the way the issue asks: failslab and fail_page_alloc fail 20% of the
 * allocations of this task only (task-filter and make-it-fail) over a thousand
 * mixed operations.
 *
 * Every failure must come back as ENOMEM and apply nothing beyond what the
 * UAPI allows (a range keeps the operations before its failing page, a
 * prefetch the pages it granted); nothing may stay behind: no grant, no
 * notifier, no folio lock or reference (the pages must still migrate or
 * split); and the same call must succeed once nothing fails.  Leaked kernel
 * memory shows in the kmemleak scan after the run; DEBUG_VM, lockdep and hung
 * task reports on the console fail the run too.
 *
 * Needs CONFIG_FAULT_INJECTION, FAILSLAB, FAIL_PAGE_ALLOC and
 * FAULT_INJECTION_DEBUG_FS, debugfs at /sys/kernel/debug, and numa=fake=2.
 * Each test restores every knob it changes, failed or not, and the harness
 * puts back what they held at its start when it exits (after a timeout too).
 */
#include <linux/mempolicy.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "kselftest_harness.h"
#include "vsvm_common.h"
#include "thp.h"

#define ATOMIC_PTE	(DRM_VSVM_PTE_VALID | DRM_VSVM_PTE_WRITE | DRM_VSVM_PTE_ATOMIC)
#define U64_PER_PAGE	(PAGE_SZ / 8)
#define FAILSLAB	"/sys/kernel/debug/failslab/"
#define FAIL_PAGE	"/sys/kernel/debug/fail_page_alloc/"

/* A call still failing at this check is looping, not allocating. */
#define MAX_ROUNDS	400
#define PREFETCH_PAGES	16
#define RANGE_PAGES	8
/* The page of a THP the device takes: not the first, so that the PMD is split. */
#define THP_PAGE	7
/* The random test: pages, words used in each, operations. */
#define RND_PAGES	64
#define RND_WORDS	8
#define RND_OPS		1000

/*
 * The fault-injection knobs a test may change, in the order they are set:
 * silence first, the probability last (restored in the reverse order).
 */
enum {
	SLAB_VERBOSE,
	PAGE_VERBOSE,
	SLAB_CACHE_FILTER,
	SLAB_GFP_WAIT,
	PAGE_GFP_WAIT,
	PAGE_MIN_ORDER,
	SLAB_TASK_FILTER,
	PAGE_TASK_FILTER,
	SLAB_SPACE,
	PAGE_SPACE,
	SLAB_TIMES,
	PAGE_TIMES,
	SLAB_INTERVAL,
	PAGE_INTERVAL,
	SLAB_PROBABILITY,
	PAGE_PROBABILITY,
	NR_KNOBS
};

static const char *const knob_path[NR_KNOBS] = {
	[SLAB_VERBOSE] = FAILSLAB "verbose",
	[PAGE_VERBOSE] = FAIL_PAGE "verbose",
	[SLAB_CACHE_FILTER] = FAILSLAB "cache-filter",
	[SLAB_GFP_WAIT] = FAILSLAB "ignore-gfp-wait",
	[PAGE_GFP_WAIT] = FAIL_PAGE "ignore-gfp-wait",
	[PAGE_MIN_ORDER] = FAIL_PAGE "min-order",
	[SLAB_TASK_FILTER] = FAILSLAB "task-filter",
	[PAGE_TASK_FILTER] = FAIL_PAGE "task-filter",
	[SLAB_SPACE] = FAILSLAB "space",
	[PAGE_SPACE] = FAIL_PAGE "space",
	[SLAB_TIMES] = FAILSLAB "times",
	[PAGE_TIMES] = FAIL_PAGE "times",
	[SLAB_INTERVAL] = FAILSLAB "interval",
	[PAGE_INTERVAL] = FAIL_PAGE "interval",
	[SLAB_PROBABILITY] = FAILSLAB "probability",
	[PAGE_PROBABILITY] = FAIL_PAGE "probability",
};

/*
 * For fail-nth.  It bypasses probability, task-filter, times and interval
 * (should_fail_ex() in lib/fault-inject.c), but not the checks failslab and
 * fail_page_alloc make before it: with their defaults, GFP_KERNEL allocations
 * and order-0 pages would never count.  verbose 0: a stack dump per failure
 * would flood the console.  times -1: a failure fail-nth forces otherwise
 * uses one up.  probability 0: no other task fails.
 */
static const char *const nth_knobs[NR_KNOBS] = {
	[SLAB_VERBOSE] = "0",
	[PAGE_VERBOSE] = "0",
	[SLAB_CACHE_FILTER] = "N",
	[SLAB_GFP_WAIT] = "N",
	[PAGE_GFP_WAIT] = "N",
	[PAGE_MIN_ORDER] = "0",
	[SLAB_TIMES] = "-1",
	[PAGE_TIMES] = "-1",
	[SLAB_PROBABILITY] = "0",
	[PAGE_PROBABILITY] = "0",
};

/* 20% of the allocations of the tasks with make-it-fail set, for as long as it is. */
static const char *const random_knobs[NR_KNOBS] = {
	[SLAB_VERBOSE] = "0",
	[PAGE_VERBOSE] = "0",
	[SLAB_CACHE_FILTER] = "N",
	[SLAB_GFP_WAIT] = "N",
	[PAGE_GFP_WAIT] = "N",
	[PAGE_MIN_ORDER] = "0",
	[SLAB_TASK_FILTER] = "Y",
	[PAGE_TASK_FILTER] = "Y",
	[SLAB_SPACE] = "0",
	[PAGE_SPACE] = "0",
	[SLAB_TIMES] = "-1",
	[PAGE_TIMES] = "-1",
	[SLAB_INTERVAL] = "1",
	[PAGE_INTERVAL] = "1",
	[SLAB_PROBABILITY] = "20",
	[PAGE_PROBABILITY] = "20",
};

/* What the knobs held before a test changed them: "" for those it did not touch. */
struct knobs {
	char saved[NR_KNOBS][24];
};

FIXTURE(faults)
{
	int fd;			/* device 0, with one grant made before any failure */
	int nth;		/* /proc/thread-self/fail-nth */
	int mif;		/* /proc/thread-self/make-it-fail */
	uint64_t *warm;		/* the page of that grant */
	char path[32];		/* the render node of device 0 */
	struct knobs knobs;
};

/* Sets the knobs @val gives (NULL: untouched) in order; NR_KNOBS, or the one that failed. */
static int knobs_set(struct knobs *k, const char *const val[NR_KNOBS])
{
	int i;

	for (i = 0; i < NR_KNOBS; i++) {
		if (!val[i])
			continue;
		if (!k->saved[i][0] && read_file(knob_path[i], k->saved[i], sizeof(k->saved[i])))
			break;
		if (write_file(knob_path[i], val[i]))
			break;
	}
	return i;
}

/* Puts back what the knobs held, in the reverse order; the number that failed. */
static int knobs_restore(struct knobs *k)
{
	int i, bad = 0;

	for (i = NR_KNOBS - 1; i >= 0; i--) {
		if (!k->saved[i][0])
			continue;
		bad += write_file(knob_path[i], k->saved[i]) != 0;
		k->saved[i][0] = '\0';
	}
	return bad;
}

/*
 * What the knobs held when the harness started, put back when it exits: a
 * test the harness kills at its timeout runs no teardown.
 */
static struct knobs at_start;

static void __attribute__((constructor)) knobs_save(void)
{
	for (int i = 0; i < NR_KNOBS; i++)
		if (read_file(knob_path[i], at_start.saved[i], sizeof(at_start.saved[i])))
			at_start.saved[i][0] = '\0';
}

static void __attribute__((destructor)) knobs_put_back(void)
{
	knobs_restore(&at_start);
}

static int node_open(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* The first of the @n pages at @p whose QUERY state is not @state, or @n. */
static unsigned int first_state_not(int fd, uint64_t *p, unsigned int n, int state)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (vsvm_query(fd, p + i * U64_PER_PAGE) != state)
			break;
	return i;
}

/*
 * Faults in 64 KiB of stack below the test's frames: a stack page fault while
 * allocations fail would test the page fault handler, not vsvm.
 */
static void touch_stack(void)
{
	char pad[64 << 10];

	memset(pad, 0, sizeof(pad));
	asm volatile("" : : "r"(pad) : "memory");
}

static long move_pages(unsigned long n, void **pages, const int *nodes, int *status)
{
	return syscall(SYS_move_pages, 0, n, pages, nodes, status, MPOL_MF_MOVE);
}

/*
 * Moves the @n (at most RND_PAGES) pages at @addr to the other NUMA node;
 * returns how many are not there afterwards, or -errno.  Migration needs the
 * folio lock and a reference count equal to what the mappings account for
 * (folio_migrate_mapping()): a lock or a reference a failed call kept would
 * keep its page where it is.
 */
static long move_to_other_node(void *addr, unsigned long n)
{
	int nodes[RND_PAGES], status[RND_PAGES];
	void *pages[RND_PAGES];
	unsigned long i;
	long ret, wrong = 0;

	if (n > RND_PAGES)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		pages[i] = (char *)addr + i * PAGE_SZ;
		/* A CPU read takes the page back: move_pages() skips device-exclusive entries. */
		asm volatile("" : : "r"(*(uint64_t *)pages[i]) : "memory");
	}
	if (move_pages(n, pages, NULL, status))
		return -errno;
	for (i = 0; i < n; i++) {
		if (status[i] < 0)
			return status[i];
		nodes[i] = !status[i];
	}
	ret = move_pages(n, pages, nodes, status);
	if (ret)
		return ret < 0 ? -errno : ret;
	if (move_pages(n, pages, NULL, status))
		return -errno;
	for (i = 0; i < n; i++)
		wrong += status[i] != nodes[i];
	return wrong;
}

/*
 * Splits the THP mapped at @addr through debugfs; 1 if it is still a THP
 * afterwards, 0 if not, -1 on error.  split_huge_pages_pid() in
 * mm/huge_memory.c skips a folio that is locked or whose reference count is
 * not the one its mappings account for: a leaked lock or reference.  It also
 * skips one that something else holds for a moment (the test failed once in
 * about fifteen runs without a leak; khugepaged or NUMA balancing are
 * candidates), so it is tried for about a second, and the tries are logged:
 * a leak lasts.
 */
static int thp_survives_split(void *addr)
{
	char cmd[64];
	int i, thp = 1;

	snprintf(cmd, sizeof(cmd), "%d,%#lx,%#lx", getpid(), (unsigned long)addr,
		 (unsigned long)addr + PAGE_SZ);
	for (i = 0; i < 100 && thp == 1; i++) {
		if (i)
			usleep(10000);
		if (write_file("/sys/kernel/debug/split_huge_pages", cmd))
			return -1;
		thp = page_is_thp(addr);
	}
	if (i > 1)
		printf("# the split of %p took %d tries\n", addr, i);
	return thp;
}

FIXTURE_SETUP(faults)
{
	int minor;

	self->fd = -1;
	self->nth = -1;
	self->mif = -1;
	memset(&self->knobs, 0, sizeof(self->knobs));
	/* Device 0's node, for a single open() per round. */
	minor = vsvm_minor(0);
	ASSERT_GE(minor, 0) TH_LOG("no vsvm device");
	snprintf(self->path, sizeof(self->path), "/dev/dri/renderD%d", minor);
	self->fd = node_open(self->path);
	ASSERT_GE(self->fd, 0);
	self->nth = open("/proc/thread-self/fail-nth", O_RDWR | O_CLOEXEC);
	ASSERT_GE(self->nth, 0) TH_LOG("no fail-nth: CONFIG_FAULT_INJECTION is required");
	self->mif = open("/proc/thread-self/make-it-fail", O_RDWR | O_CLOEXEC);
	ASSERT_GE(self->mif, 0);
	ASSERT_EQ(access(FAILSLAB, W_OK), 0) TH_LOG("no %s: FAILSLAB is required", FAILSLAB);
	ASSERT_EQ(access(FAIL_PAGE, W_OK), 0) TH_LOG("no %s: FAIL_PAGE_ALLOC is required",
						     FAIL_PAGE);
	self->warm = map_anon(PAGE_SZ);
	ASSERT_NE(self->warm, NULL);
	self->warm[0] = 0;
	/*
	 * The mm's notifier subscriptions come with its first notifier and stay:
	 * made here, so that every round of a sweep makes the same checks.
	 */
	ASSERT_EQ(vsvm_add64(self->fd, self->warm, 1), 0);
	touch_stack();
}

FIXTURE_TEARDOWN(faults)
{
	int bad = 0;

	/* This task's own switches first: nothing after them may fail. */
	if (self->nth >= 0)
		bad += pwrite(self->nth, "0", 1, 0) != 1;
	if (self->mif >= 0)
		bad += pwrite(self->mif, "0", 1, 0) != 1;
	bad += knobs_restore(&self->knobs);
	EXPECT_EQ(bad, 0) TH_LOG("fault injection not switched off and restored");
	if (self->nth >= 0)
		close(self->nth);
	if (self->mif >= 0)
		close(self->mif);
	if (self->fd >= 0)
		close(self->fd);
}

/* What one armed call works on; it leaves its results here. */
struct call {
	const char *path;		/* open: the node */
	int opened;			/* open: the new file */
	int fd;				/* the file the ioctls go to */
	uint64_t *addr;
	unsigned long npages;
	int state;			/* query: the PTE bits */
	struct drm_vsvm_stats stats;	/* stats: the counters */
};

static int call_open(struct call *c)
{
	c->opened = open(c->path, O_RDWR | O_CLOEXEC);
	return c->opened < 0 ? -errno : 0;
}

static int call_add(struct call *c)
{
	return vsvm_add64(c->fd, c->addr, 1);
}

static int call_prefetch(struct call *c)
{
	return vsvm_prefetch(c->fd, c->addr, c->npages);
}

static int call_range(struct call *c)
{
	return vsvm_range(c->fd, c->addr, PAGE_SZ, c->npages, DRM_VSVM_OP_ADD, 64, 1, NULL);
}

static int call_stats(struct call *c)
{
	return vsvm_stats(c->fd, &c->stats);
}

static int call_query(struct call *c)
{
	c->state = vsvm_query(c->fd, c->addr);
	return c->state < 0 ? c->state : 0;
}

/*
 * Runs @fn with the @n-th fault-injection check of this thread failed, and
 * nothing else while fail-nth is armed: the write that arms it and the read
 * that tells whether it fired touch no new memory and allocate nothing.
 * Returns what @fn returned; sets *fired to 1 if the failure was injected, 0
 * if @fn made fewer than @n checks, -1 if fail-nth did not work.
 */
static int nth_call(int nth, unsigned int n, int (*fn)(struct call *), struct call *c,
		    int *fired)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%u", n), ret;
	ssize_t got;

	*fired = -1;
	if (pwrite(nth, buf, len, 0) != len)
		return 0;
	ret = fn(c);
	got = pread(nth, buf, sizeof(buf) - 1, 0);
	/* Disarmed whether or not it fired: what comes next must not fail. */
	if (pwrite(nth, "0", 1, 0) != 1 || got <= 0)
		return ret;
	buf[got] = '\0';
	*fired = strtoul(buf, NULL, 10) == 0;
	return ret;
}

/* One call's fail-nth sweep. */
struct sweep {
	const char *name;
	unsigned int enomem;	/* injected failures the call returned */
	unsigned int absorbed;	/* injected failures the kernel got over: the call succeeded */
};

/* Checks what round @n returned, and counts it. */
static void sweep_check(struct __test_metadata *_metadata, struct sweep *s, unsigned int n,
			int ret, int fired)
{
	ASSERT_GE(fired, 0) TH_LOG("%s: /proc/thread-self/fail-nth does not work", s->name);
	if (!fired) {
		ASSERT_EQ(ret, 0) TH_LOG("%s failed with nothing injected: %s", s->name,
					 strerror(-ret));
		return;
	}
	ASSERT_TRUE(ret == 0 || ret == -ENOMEM)
		TH_LOG("%s with check %u failed: %s instead of ENOMEM", s->name, n,
		       strerror(-ret));
	if (ret)
		s->enomem++;
	else
		s->absorbed++;
}

static void sweep_done(struct __test_metadata *_metadata, struct sweep *s, unsigned int n)
{
	TH_LOG("%s: %u fault-injection checks; %u failed the call with ENOMEM, %u were absorbed",
	       s->name, n - 1, s->enomem, s->absorbed);
}

/*
 * After an add on a new file failed: nothing of it may remain (no grant, no
 * notifier, no operation counted, the value unchanged), and the same add must
 * then succeed.
 */
static void add_failed(struct __test_metadata *_metadata, int fd, uint64_t *addr)
{
	struct drm_vsvm_stats st;

	ASSERT_EQ(vsvm_query(fd, addr), 0);
	ASSERT_EQ(vsvm_stats(fd, &st), 0);
	ASSERT_EQ(st.ops, 0);
	ASSERT_EQ(st.pages_granted, 0);
	ASSERT_EQ(st.notifiers, 0) TH_LOG("a failed fault left its notifier");
	/* A CPU read: it must not wait for a folio lock the failed call kept. */
	ASSERT_EQ(addr[0], 0);
	ASSERT_EQ(vsvm_add64(fd, addr, 1), 0);
}

/* open(): every check of the VFS, the DRM core and the driver's open fails in turn. */
TEST_F(faults, fail_nth_open)
{
	struct call c = { .path = self->path };
	struct sweep s = { .name = "open" };
	uint64_t *p = map_anon(PAGE_SZ), expect = 0;
	unsigned int n;
	int ret, fired;

	ASSERT_NE(p, NULL);
	p[0] = 0;
	ASSERT_EQ(knobs_set(&self->knobs, nth_knobs), NR_KNOBS) TH_LOG("cannot set the knobs");
	for (n = 1; ; n++) {
		ASSERT_LE(n, MAX_ROUNDS) TH_LOG("open: check %u still fails", n);
		c.opened = -1;
		ret = nth_call(self->nth, n, call_open, &c, &fired);
		sweep_check(_metadata, &s, n, ret, fired);
		if (ret)
			ASSERT_EQ(call_open(&c), 0);
		/* The file works: a grant, an add, and the CPU takes the page back. */
		ASSERT_EQ(vsvm_add64(c.opened, p, 1), 0);
		ASSERT_EQ(p[0], ++expect);
		ASSERT_EQ(close(c.opened), 0);
		if (!fired)
			break;
	}
	sweep_done(_metadata, &s, n);
	ASSERT_GT(s.enomem, 0) TH_LOG("no allocation of open() was failed");
}

/* ATOMIC on a small page the device does not hold, with a new file each round. */
TEST_F(faults, fail_nth_atomic)
{
	struct sweep s = { .name = "ATOMIC" };
	uint64_t *p = map_anon(PAGE_SZ);
	struct call c = { .addr = p };
	unsigned int n;
	int ret, fired;

	ASSERT_NE(p, NULL);
	ASSERT_EQ(knobs_set(&self->knobs, nth_knobs), NR_KNOBS) TH_LOG("cannot set the knobs");
	for (n = 1; ; n++) {
		ASSERT_LE(n, MAX_ROUNDS) TH_LOG("ATOMIC: check %u still fails", n);
		/* A CPU write ends the last round's device-exclusive entry. */
		p[0] = 0;
		c.fd = node_open(self->path);
		ASSERT_GE(c.fd, 0);
		ret = nth_call(self->nth, n, call_add, &c, &fired);
		sweep_check(_metadata, &s, n, ret, fired);
		if (ret)
			add_failed(_metadata, c.fd, p);
		ASSERT_EQ(vsvm_query(c.fd, p), ATOMIC_PTE);
		ASSERT_EQ(p[0], 1);
		ASSERT_EQ(close(c.fd), 0);
		if (!fired)
			break;
	}
	sweep_done(_metadata, &s, n);
	ASSERT_GT(s.enomem, 0) TH_LOG("no allocation of ATOMIC was failed");
	ASSERT_EQ(move_to_other_node(p, 1), 0) TH_LOG("the page cannot migrate: leaked reference");
	munmap(p, PAGE_SZ);
}

/*
 * ATOMIC on a page of a new PMD-mapped THP each round: the grant splits the
 * PMD mapping (the folio stays large), with the allocations that takes.
 */
TEST_F(faults, fail_nth_atomic_in_thp)
{
	struct sweep s = { .name = "ATOMIC in a THP" };
	struct call c = { 0 };
	unsigned int n;
	int ret, fired;

	ASSERT_EQ(knobs_set(&self->knobs, nth_knobs), NR_KNOBS) TH_LOG("cannot set the knobs");
	for (n = 1; ; n++) {
		uint64_t *p = thp_alloc(), *page;

		ASSERT_LE(n, MAX_ROUNDS) TH_LOG("THP: check %u still fails", n);
		ASSERT_NE(p, NULL);
		page = p + THP_PAGE * U64_PER_PAGE;
		/* Faults in the whole THP; the guest's config guarantees one. */
		page[0] = 0;
		ASSERT_EQ(anon_huge_kb(p), THP_SZ >> 10);
		c.addr = page;
		c.fd = node_open(self->path);
		ASSERT_GE(c.fd, 0);
		ret = nth_call(self->nth, n, call_add, &c, &fired);
		sweep_check(_metadata, &s, n, ret, fired);
		if (ret)
			add_failed(_metadata, c.fd, page);
		ASSERT_EQ(vsvm_query(c.fd, page), ATOMIC_PTE);
		ASSERT_EQ(anon_huge_kb(p), 0) TH_LOG("the grant did not split the PMD mapping");
		ASSERT_EQ(page[0], 1);
		ASSERT_EQ(page_is_thp(page), 1);
		ASSERT_EQ(close(c.fd), 0);
		ASSERT_EQ(thp_survives_split(page), 0)
			TH_LOG("the THP cannot split: leaked reference");
		munmap(p, THP_SZ);
		if (!fired)
			break;
	}
	sweep_done(_metadata, &s, n);
	ASSERT_GT(s.enomem, 0) TH_LOG("no allocation of ATOMIC in a THP was failed");
}

/*
 * PREFETCH of 16 pages: the pages granted before a failure stay granted (the
 * UAPI says so), the others are untouched, and the retry grants them all.
 */
TEST_F(faults, fail_nth_prefetch)
{
	struct sweep s = { .name = "PREFETCH" };
	uint64_t *p = map_anon(PREFETCH_PAGES * PAGE_SZ);
	struct call c = { .addr = p, .npages = PREFETCH_PAGES };
	struct drm_vsvm_stats st;
	unsigned int n, i, k;
	int ret, fired;

	ASSERT_NE(p, NULL);
	ASSERT_EQ(knobs_set(&self->knobs, nth_knobs), NR_KNOBS) TH_LOG("cannot set the knobs");
	for (n = 1; ; n++) {
		ASSERT_LE(n, MAX_ROUNDS) TH_LOG("PREFETCH: check %u still fails", n);
		for (i = 0; i < PREFETCH_PAGES; i++)
			p[i * U64_PER_PAGE] = (uint64_t)n << 8 | i;
		c.fd = node_open(self->path);
		ASSERT_GE(c.fd, 0);
		ret = nth_call(self->nth, n, call_prefetch, &c, &fired);
		sweep_check(_metadata, &s, n, ret, fired);
		if (ret) {
			/* Granted up to the failing page, nothing after it. */
			k = first_state_not(c.fd, p, PREFETCH_PAGES, ATOMIC_PTE);
			ASSERT_LT(k, PREFETCH_PAGES);
			i = k + first_state_not(c.fd, p + k * U64_PER_PAGE, PREFETCH_PAGES - k, 0);
			ASSERT_EQ(i, PREFETCH_PAGES)
				TH_LOG("page %u granted after the failure at page %u", i, k);
			ASSERT_EQ(vsvm_stats(c.fd, &st), 0);
			ASSERT_EQ(st.pages_granted, k);
			if (!k)
				ASSERT_EQ(st.notifiers, 0)
					TH_LOG("a failed fault left its notifier");
			ASSERT_EQ(vsvm_prefetch(c.fd, p, PREFETCH_PAGES), 0);
		}
		ASSERT_EQ(first_state_not(c.fd, p, PREFETCH_PAGES, ATOMIC_PTE), PREFETCH_PAGES);
		ASSERT_EQ(vsvm_stats(c.fd, &st), 0);
		ASSERT_EQ(st.pages_granted, PREFETCH_PAGES);
		/* The CPU takes them back: the data is intact. */
		for (i = 0; i < PREFETCH_PAGES; i++)
			if (p[i * U64_PER_PAGE] != ((uint64_t)n << 8 | i))
				break;
		ASSERT_EQ(i, PREFETCH_PAGES) TH_LOG("page %u changed", i);
		ASSERT_EQ(close(c.fd), 0);
		if (!fired)
			break;
	}
	sweep_done(_metadata, &s, n);
	ASSERT_GT(s.enomem, 0) TH_LOG("no allocation of PREFETCH was failed");
	ASSERT_EQ(move_to_other_node(p, PREFETCH_PAGES), 0)
		TH_LOG("pages cannot migrate: leaked reference");
	munmap(p, PREFETCH_PAGES * PAGE_SZ);
}

/*
 * ATOMIC_RANGE of adds over 8 pages: a failure keeps the operations before its
 * page (the file's counter tells how many), and the retry applies all 8.
 */
TEST_F(faults, fail_nth_atomic_range)
{
	struct sweep s = { .name = "ATOMIC_RANGE" };
	uint64_t *p = map_anon(RANGE_PAGES * PAGE_SZ);
	struct call c = { .addr = p, .npages = RANGE_PAGES };
	struct drm_vsvm_atomic_range r = { 0 };
	struct drm_vsvm_stats st;
	unsigned int n, i;
	uint64_t k;
	int ret, fired;

	ASSERT_NE(p, NULL);
	ASSERT_EQ(knobs_set(&self->knobs, nth_knobs), NR_KNOBS) TH_LOG("cannot set the knobs");
	for (n = 1; ; n++) {
		ASSERT_LE(n, MAX_ROUNDS) TH_LOG("ATOMIC_RANGE: check %u still fails", n);
		for (i = 0; i < RANGE_PAGES; i++)
			p[i * U64_PER_PAGE] = 0;
		c.fd = node_open(self->path);
		ASSERT_GE(c.fd, 0);
		ret = nth_call(self->nth, n, call_range, &c, &fired);
		sweep_check(_metadata, &s, n, ret, fired);
		/* The operations applied before the failure. */
		k = 0;
		if (ret) {
			ASSERT_EQ(vsvm_stats(c.fd, &st), 0);
			k = st.ops;
			ASSERT_LT(k, RANGE_PAGES);
			if (!k)
				ASSERT_EQ(st.notifiers, 0)
					TH_LOG("a failed fault left its notifier");
			for (i = 0; i < RANGE_PAGES; i++)
				if (p[i * U64_PER_PAGE] != (i < k ? 1 : 0))
					break;
			ASSERT_EQ(i, RANGE_PAGES) TH_LOG("page %u wrong after %llu operations", i,
							 (unsigned long long)k);
			ASSERT_EQ(vsvm_range(c.fd, p, PAGE_SZ, RANGE_PAGES, DRM_VSVM_OP_ADD, 64, 1,
					     &r), 0);
			ASSERT_EQ(r.sum, k);
		}
		ASSERT_EQ(vsvm_stats(c.fd, &st), 0);
		ASSERT_EQ(st.ops, RANGE_PAGES + k);
		for (i = 0; i < RANGE_PAGES; i++)
			if (p[i * U64_PER_PAGE] != (i < k ? 2 : 1))
				break;
		ASSERT_EQ(i, RANGE_PAGES) TH_LOG("page %u wrong after the retry", i);
		ASSERT_EQ(close(c.fd), 0);
		if (!fired)
			break;
	}
	sweep_done(_metadata, &s, n);
	ASSERT_GT(s.enomem, 0) TH_LOG("no allocation of ATOMIC_RANGE was failed");
	ASSERT_EQ(move_to_other_node(p, RANGE_PAGES), 0)
		TH_LOG("pages cannot migrate: leaked reference");
	munmap(p, RANGE_PAGES * PAGE_SZ);
}

/* STATS (its structure is too big for the DRM core's stack buffer) and QUERY. */
TEST_F(faults, fail_nth_stats_and_query)
{
	struct sweep s = { .name = "STATS" }, q = { .name = "QUERY" };
	struct call c = { .fd = self->fd, .addr = self->warm };
	unsigned int n;
	int ret, fired;

	ASSERT_EQ(knobs_set(&self->knobs, nth_knobs), NR_KNOBS) TH_LOG("cannot set the knobs");
	for (n = 1; ; n++) {
		ASSERT_LE(n, MAX_ROUNDS) TH_LOG("STATS: check %u still fails", n);
		ret = nth_call(self->nth, n, call_stats, &c, &fired);
		sweep_check(_metadata, &s, n, ret, fired);
		if (ret)
			ASSERT_EQ(call_stats(&c), 0);
		/* This file's counters: the setup's one add, on device 0. */
		ASSERT_EQ(c.stats.ops, 1);
		ASSERT_EQ(c.stats.pages_granted, 1);
		ASSERT_EQ(c.stats.device, 0);
		ASSERT_EQ(c.stats.causes, DRM_VSVM_REVOKE_COUNT);
		if (!fired)
			break;
	}
	sweep_done(_metadata, &s, n);
	ASSERT_GT(s.enomem, 0) TH_LOG("no allocation of STATS was failed");
	for (n = 1; ; n++) {
		ASSERT_LE(n, MAX_ROUNDS) TH_LOG("QUERY: check %u still fails", n);
		ret = nth_call(self->nth, n, call_query, &c, &fired);
		sweep_check(_metadata, &q, n, ret, fired);
		if (ret)
			ASSERT_EQ(call_query(&c), 0);
		ASSERT_EQ(c.state, ATOMIC_PTE);
		if (!fired)
			break;
	}
	sweep_done(_metadata, &q, n);
}

enum { OP_ADD, OP_CPU, OP_PREFETCH, OP_RANGE, OP_RANGE_IN_PAGE, OP_STATS, OP_QUERY, NR_OPS };

static const char *const op_name[NR_OPS] = {
	[OP_ADD] = "ATOMIC",
	[OP_CPU] = "CPU write",
	[OP_PREFETCH] = "PREFETCH",
	[OP_RANGE] = "ATOMIC_RANGE over pages",
	[OP_RANGE_IN_PAGE] = "ATOMIC_RANGE in a page",
	[OP_STATS] = "STATS",
	[OP_QUERY] = "QUERY",
};

/* How often each comes, out of 100. */
static const unsigned int op_weight[NR_OPS] = {
	[OP_ADD] = 40,
	[OP_CPU] = 20,
	[OP_PREFETCH] = 10,
	[OP_RANGE] = 10,
	[OP_RANGE_IN_PAGE] = 10,
	[OP_STATS] = 5,
	[OP_QUERY] = 5,
};

/* The random test's state: nothing in it may be touched for the first time while failing. */
struct random_run {
	uint64_t *buf;
	int fd;
	uint32_t seed;
	uint64_t want[RND_PAGES][RND_WORDS];	/* what each word must hold */
	uint64_t ops;				/* device operations applied */
	unsigned int ok[NR_OPS], enomem[NR_OPS];
	unsigned int stats_enomem;		/* of the STATS after failed ranges */
	/* The first thing that went wrong: what, at which operation, the error. */
	const char *bad;
	unsigned int bad_op, bad_kind;
	int bad_err;
};

static uint32_t next_rand(uint32_t *state)
{
	uint32_t x = *state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*state = x;
	return x;
}

static uint64_t *word(struct random_run *r, unsigned int page, unsigned int w)
{
	return r->buf + page * U64_PER_PAGE + w;
}

/*
 * Adds of 1 to RND_WORDS words: word @w of the pages from @page on if
 * @across, else the words of @page.  A failed range keeps the operations
 * before its failing page: the file's counter tells how many (its STATS may
 * fail too, then it is asked again).  Within one page, all or nothing.
 */
static int random_range(struct random_run *r, unsigned int page, unsigned int w, bool across)
{
	uint64_t stride = across ? PAGE_SZ : 8, k = RND_WORDS, i;
	struct drm_vsvm_stats s;
	int ret, err = -ENOMEM;

	ret = vsvm_range(r->fd, word(r, page, w), stride, RND_WORDS, DRM_VSVM_OP_ADD, 64, 1,
			 NULL);
	if (ret == -ENOMEM) {
		for (i = 0; i < 100 && err == -ENOMEM; i++) {
			err = vsvm_stats(r->fd, &s);
			r->stats_enomem += err == -ENOMEM;
		}
		if (err) {
			r->bad = "STATS after a failed range";
			return err;
		}
		k = s.ops - r->ops;
		if (k >= RND_WORDS || (!across && k)) {
			r->bad = "a failed range applied operations it should not have";
			return ret;
		}
	} else if (ret) {
		return ret;
	}
	for (i = 0; i < k; i++) {
		if (across)
			r->want[page + i][w]++;
		else
			r->want[page][w + i]++;
	}
	r->ops += k;
	return ret;
}

/* One operation of kind @kind, with @x for its arguments; 0, -errno, or r->bad set. */
static int random_op(struct random_run *r, unsigned int kind, uint32_t x)
{
	unsigned int page = x % RND_PAGES;
	uint64_t operand = 1 + (x >> 16) % 7;
	struct drm_vsvm_stats s;
	int ret;

	switch (kind) {
	case OP_ADD:
		ret = vsvm_add64(r->fd, word(r, page, 0), operand);
		if (!ret) {
			r->want[page][0] += operand;
			r->ops++;
		}
		return ret;
	case OP_CPU:
		/* Takes the page back from the device: the page is present, no allocation. */
		*word(r, page, RND_WORDS - 1) += 1000;
		r->want[page][RND_WORDS - 1] += 1000;
		return 0;
	case OP_PREFETCH:
		return vsvm_prefetch(r->fd, word(r, page % (RND_PAGES - 3), 0), 4);
	case OP_RANGE:
		return random_range(r, page % (RND_PAGES - RND_WORDS + 1), 1, true);
	case OP_RANGE_IN_PAGE:
		return random_range(r, page, 0, false);
	case OP_STATS:
		ret = vsvm_stats(r->fd, &s);
		if (!ret && s.ops != r->ops)
			r->bad = "STATS counts other operations than those that succeeded";
		return ret;
	default:
		ret = vsvm_query(r->fd, word(r, page, 0));
		return ret < 0 ? ret : 0;
	}
}

/* The operations, with allocations failing: no assertion, no output, until it is over. */
static void random_ops(struct random_run *r)
{
	for (unsigned int i = 0; i < RND_OPS && !r->bad; i++) {
		unsigned int kind = 0, pick = next_rand(&r->seed) % 100;
		int ret;

		while (kind < NR_OPS - 1 && pick >= op_weight[kind])
			pick -= op_weight[kind++];
		ret = random_op(r, kind, next_rand(&r->seed));
		if (!r->bad && ret && ret != -ENOMEM)
			r->bad = "an error other than ENOMEM";
		if (r->bad) {
			r->bad_op = i;
			r->bad_kind = kind;
			r->bad_err = -ret;
		} else if (ret) {
			r->enomem[kind]++;
		} else {
			r->ok[kind]++;
		}
	}
}

/* Every word holds what the operations that succeeded made of it (the CPU takes them all back). */
static void random_check(struct __test_metadata *_metadata, struct random_run *r)
{
	struct drm_vsvm_stats s;
	unsigned int i;

	ASSERT_EQ(vsvm_stats(r->fd, &s), 0);
	ASSERT_EQ(s.ops, r->ops);
	for (i = 0; i < RND_PAGES * RND_WORDS; i++)
		if (*word(r, i / RND_WORDS, i % RND_WORDS) != r->want[i / RND_WORDS][i % RND_WORDS])
			break;
	ASSERT_EQ(i, RND_PAGES * RND_WORDS) TH_LOG("page %u, word %u", i / RND_WORDS,
						   i % RND_WORDS);
}

/*
 * What the issue asks for: failslab and fail_page_alloc with a task filter,
 * 20% of this task's allocations failing over a thousand operations, atomics
 * on rotating pages given back to the CPU in between, prefetches, ranges,
 * counters.  Each call returns 0 or ENOMEM; afterwards the memory holds
 * exactly what the successful operations made of it, the device's operation
 * counter agrees, every page can be operated on and migrated, and a new file
 * works.
 */
TEST_F_TIMEOUT(faults, random_failures_of_this_task, 60)
{
	struct random_run r = { .seed = 0x9e3779b9 };
	unsigned int i, page, enomem = 0;
	int fd;

	r.buf = map_anon(RND_PAGES * PAGE_SZ);
	ASSERT_NE(r.buf, NULL);
	/* Every page present first: the only faults while failing are the device's. */
	for (page = 0; page < RND_PAGES; page++)
		*word(&r, page, 0) = 0;
	r.fd = node_open(self->path);
	ASSERT_GE(r.fd, 0);
	touch_stack();
	ASSERT_EQ(knobs_set(&self->knobs, random_knobs), NR_KNOBS) TH_LOG("cannot set the knobs");
	ASSERT_EQ(pwrite(self->mif, "1", 1, 0), 1);
	random_ops(&r);
	ASSERT_EQ(pwrite(self->mif, "0", 1, 0), 1);

	ASSERT_EQ(r.bad, NULL) TH_LOG("operation %u (%s): %s (%s)", r.bad_op,
				      op_name[r.bad_kind], r.bad, strerror(r.bad_err));
	for (i = 0; i < NR_OPS; i++) {
		TH_LOG("%s: %u succeeded, %u failed with ENOMEM", op_name[i], r.ok[i],
		       r.enomem[i]);
		enomem += r.enomem[i];
	}
	TH_LOG("STATS after failed ranges: %u failed with ENOMEM", r.stats_enomem);
	ASSERT_GT(enomem, 0) TH_LOG("nothing failed: the injection did not reach vsvm");
	ASSERT_GT(r.ok[OP_ADD], 0);
	random_check(_metadata, &r);
	/* Nothing fails now: an add on every page succeeds. */
	for (page = 0; page < RND_PAGES; page++) {
		ASSERT_EQ(vsvm_add64(r.fd, word(&r, page, 0), 1), 0);
		r.want[page][0]++;
		r.ops++;
	}
	random_check(_metadata, &r);
	ASSERT_EQ(close(r.fd), 0);
	ASSERT_EQ(move_to_other_node(r.buf, RND_PAGES), 0)
		TH_LOG("pages cannot migrate: leaked reference");
	fd = node_open(self->path);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(vsvm_add64(fd, r.buf, 1), 0);
	ASSERT_EQ(r.buf[0], r.want[0][0] + 1);
	ASSERT_EQ(close(fd), 0);
	munmap(r.buf, RND_PAGES * PAGE_SZ);
}

/* Last, in a new process: after all those failures, both devices open and work. */
TEST_F(faults, devices_work_after_failures)
{
	uint64_t *p = map_anon(PAGE_SZ);
	struct drm_vsvm_stats s0, s1;
	int fd0, fd1;

	ASSERT_NE(p, NULL);
	p[0] = 5;
	fd0 = vsvm_open(0);
	fd1 = vsvm_open(1);
	ASSERT_GE(fd0, 0);
	ASSERT_GE(fd1, 0);
	ASSERT_EQ(vsvm_add64(fd0, p, 1), 0);
	ASSERT_EQ(vsvm_add64(fd1, p, 1), 0);
	ASSERT_EQ(vsvm_query(fd0, p), 0);
	ASSERT_EQ(vsvm_query(fd1, p), ATOMIC_PTE);
	ASSERT_EQ(vsvm_range(fd0, p, 8, 2, DRM_VSVM_OP_ADD, 64, 1, NULL), 0);
	ASSERT_EQ(vsvm_prefetch(fd1, p, 1), 0);
	ASSERT_EQ(p[0], 8);
	ASSERT_EQ(p[1], 1);
	ASSERT_EQ(vsvm_stats(fd0, &s0), 0);
	ASSERT_EQ(vsvm_stats(fd1, &s1), 0);
	ASSERT_EQ(s0.ops, 3);
	ASSERT_EQ(s1.ops, 1);
	ASSERT_EQ(s0.device, 0);
	ASSERT_EQ(s1.device, 1);
	ASSERT_EQ(close(fd0), 0);
	ASSERT_EQ(close(fd1), 0);
	munmap(p, PAGE_SZ);
}

TEST_HARNESS_MAIN

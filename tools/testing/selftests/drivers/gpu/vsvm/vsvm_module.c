// SPDX-License-Identifier: GPL-2.0
/*
 * Unloading and reloading the vsvm module while processes use it.
 *
 * An open vsvm file holds a reference on the module (the file operations'
 * owner), so delete_module() must refuse with EWOULDBLOCK while any process
 * has one, and the device must keep working for that process.  Once the last
 * file is released, by close() or by exit with grants still live, unloading
 * must succeed and leave no render node behind, and a process whose memory
 * the device once held must still read the device's writes back afterwards:
 * nothing of the module may stay in its address space.  The tests reload the
 * module with the parameters the init script loaded it with, also when they
 * fail midway, because the guest's init script unloads it at the
 * end of the run and fails if it cannot.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "vsvm_common.h"
#include "thp.h"

/* The module file: VSVM_MODULE, or where the test guest keeps it. */
#define KO_PATH		(getenv("VSVM_MODULE") ?: "/modules/vsvm.ko")
#define SYS_MODULE	"/sys/module/vsvm"
#define ATOMIC_PTE	(DRM_VSVM_PTE_VALID | DRM_VSVM_PTE_WRITE | DRM_VSVM_PTE_ATOMIC)
#define WORDS		(PAGE_SZ / 8)		/* u64 per page */
#define THP_PAGES	(THP_SZ / PAGE_SZ)
#define NPAGES		8	/* small pages a child gives the device */
#define THP_STEP	64	/* the device works on every THP_STEP-th page of the THP */
#define ITERATIONS	10

/* How the init script loaded the module (VSVM_PARAMS, the insmod arguments). */
struct vsvm_params {
	int found;
	unsigned int devices;
	char args[128];
};

/* What the module was loaded with before any test ran. */
static struct vsvm_params loaded_with;

/*
 * The module's parameters are not in /sys/module/vsvm/parameters (the Rust
 * module! macro registers them without permissions): the init script passes
 * its insmod arguments in VSVM_PARAMS.
 */
static int read_load_params(struct vsvm_params *p)
{
	const char *args = getenv("VSVM_PARAMS"), *devices;

	memset(p, 0, sizeof(*p));
	if (!args || strlen(args) >= sizeof(p->args))
		return -1;
	devices = strstr(args, "devices=");
	if (!devices || sscanf(devices, "devices=%u", &p->devices) != 1)
		return -1;
	snprintf(p->args, sizeof(p->args), "%s", args);
	p->found = 1;
	return 0;
}

static int load_module(const struct vsvm_params *p)
{
	int fd = open(KO_PATH, O_RDONLY | O_CLOEXEC), ret;

	if (fd < 0)
		return -errno;
	ret = syscall(__NR_finit_module, fd, p->args, 0) ? -errno : 0;
	close(fd);
	return ret;
}

/* As rmmod does; a module in use fails with EWOULDBLOCK (kernel/module/main.c). */
static int unload_module(void)
{
	return syscall(__NR_delete_module, "vsvm", O_NONBLOCK) ? -errno : 0;
}

/* The contents of /sys/module/vsvm/@name in @buf, or "" if there is none. */
static char *module_attr(const char *name, char *buf, int size)
{
	char path[64];

	snprintf(path, sizeof(path), SYS_MODULE "/%s", name);
	if (read_file(path, buf, size))
		buf[0] = '\0';
	return buf;
}

/* 1 if the module is loaded and its init has finished. */
static int module_live(void)
{
	char buf[16];

	return !strcmp(module_attr("initstate", buf, sizeof(buf)), "live");
}

/* References to the module (open files among them), or -1 if it is not loaded. */
static long module_refcnt(void)
{
	char buf[16];

	return *module_attr("refcnt", buf, sizeof(buf)) ? strtol(buf, NULL, 10) : -1;
}

/* Loads the module as it was found, unless it is loaded: 0 or -errno. */
static int restore_module(void)
{
	if (!access(SYS_MODULE, F_OK))
		return 0;
	return load_module(&loaded_with);
}

static void __attribute__((constructor)) find_load_params(void)
{
	read_load_params(&loaded_with);
}

/*
 * Last resort, in the harness's main process: a test killed by its timeout
 * runs no teardown, and the init script's rmmod needs the module loaded.
 */
static void __attribute__((destructor)) restore_at_exit(void)
{
	int err;

	if (!loaded_with.found || !access(SYS_MODULE, F_OK))
		return;
	err = restore_module();
	fprintf(stderr, "# vsvm was left unloaded; reloading it: %s\n", strerror(-err));
}

/* The minors of the vsvm render nodes as a mask, bit n for renderD(128 + n). */
static uint64_t vsvm_nodes(void)
{
	uint64_t mask = 0;
	int minor;

	for (int i = 0; (minor = vsvm_minor(i)) >= 0; i++)
		mask |= 1ULL << (minor - 128);
	return mask;
}

/*
 * The module is live with the parameters it was found with, and has one render
 * node per device, right after finit_module(): device_add() creates the node
 * in devtmpfs and waits for it (drivers/base/devtmpfs.c).  Returns the nodes.
 */
static uint64_t assert_loaded(struct __test_metadata *_metadata)
{
	uint64_t nodes;

	ASSERT_EQ(module_live(), 1);
	nodes = vsvm_nodes();
	ASSERT_EQ(__builtin_popcountll(nodes), loaded_with.devices);
	ASSERT_EQ(vsvm_count(), loaded_with.devices);
	return nodes;
}

/* Nothing of the module is left: its sysfs directory and its render @nodes are gone. */
static void assert_unloaded(struct __test_metadata *_metadata, uint64_t nodes)
{
	char path[32];

	ASSERT_NE(access(SYS_MODULE, F_OK), 0);
	ASSERT_EQ(errno, ENOENT);
	for (int n = 0; n < 64; n++) {
		if (!(nodes & (1ULL << n)))
			continue;
		snprintf(path, sizeof(path), "/dev/dri/renderD%d", 128 + n);
		ASSERT_NE(access(path, F_OK), 0) TH_LOG("%s outlived the module", path);
		ASSERT_EQ(errno, ENOENT);
	}
	ASSERT_EQ(vsvm_count(), 0);
}

/* Unloads the module, which leaves nothing of it (its render @nodes), and loads it again. */
static void reload_module(struct __test_metadata *_metadata, uint64_t nodes)
{
	ASSERT_EQ(unload_module(), 0) TH_LOG("refcnt %ld", module_refcnt());
	assert_unloaded(_metadata, nodes);
	ASSERT_EQ(load_module(&loaded_with), 0);
	assert_loaded(_metadata);
}

static int send_byte(int fd)
{
	return write(fd, "x", 1) == 1 ? 0 : -1;
}

/* 0 once a byte arrives, -1 if every writer is gone (the child died). */
static int wait_byte(int fd)
{
	char c;

	return read(fd, &c, 1) == 1 ? 0 : -1;
}

/* A child that dies with the test, so that none keeps a vsvm file open after it. */
static pid_t fork_child(void)
{
	pid_t parent = getpid(), pid = fork();

	if (pid == 0 && (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent))
		_exit(1);
	return pid;
}

/* Waits for *@pid: its exit code, or 128 + the signal that killed it. */
static int reap(pid_t *pid)
{
	int status;

	if (*pid <= 0 || waitpid(*pid, &status, 0) != *pid)
		return -1;
	*pid = -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/*
 * Memory of a child that the device works on: NPAGES small pages, and a THP.
 * Small page i starts at i + 1, page j of the THP at 1000 + j (first word of
 * each page).  The helpers below return 0 or the exit code of the child,
 * which names the step that failed.
 */
struct mem {
	uint64_t *small;
	uint64_t *thp;
	/* The file's revocations, all and by migration, when it last granted. */
	__u64 revoked, migrated;
};

static int mem_init(struct mem *m)
{
	m->small = map_anon(NPAGES * PAGE_SZ);
	m->thp = thp_alloc();
	if (!m->small || !m->thp)
		return 10;
	for (unsigned long i = 0; i < NPAGES; i++)
		m->small[i * WORDS] = i + 1;
	for (unsigned long i = 0; i < THP_PAGES; i++)
		m->thp[i * WORDS] = 1000 + i;
	/* The guest's config guarantees THP: not getting one is a failure. */
	return page_is_thp(m->thp) == 1 ? 0 : 11;
}

/* Pages the device must hold: the first and last small ones, two of the THP. */
static int mem_granted(int fd, struct mem *m)
{
	return vsvm_query(fd, m->small) == ATOMIC_PTE &&
	       vsvm_query(fd, m->small + (NPAGES - 1) * WORDS) == ATOMIC_PTE &&
	       vsvm_query(fd, m->thp) == ATOMIC_PTE &&
	       vsvm_query(fd, m->thp + THP_STEP * WORDS) == ATOMIC_PTE;
}

/* Grants the pages of @m that mem_granted() checks; 0 or -1. */
static int mem_grant(int fd, struct mem *m)
{
	if (vsvm_prefetch(fd, m->small, NPAGES) || vsvm_prefetch(fd, m->thp, 2))
		return -1;
	m->revoked = vsvm_revoked(fd, DRM_VSVM_REVOKE_MIGRATION, &m->migrated);
	return 0;
}

/*
 * Whether the device holds the pages of @m.  The kernel may take a grant back
 * to move its page (compaction of a fragmented guest, khugepaged: a grant does
 * not pin), and then the device grants again; any other revocation since the
 * pages were granted, or a grant gone without one, is a failure.
 */
static int mem_held(int fd, struct mem *m)
{
	for (int i = 0; i < 5; i++) {
		__u64 migrated = 0, revoked;

		if (mem_granted(fd, m))
			return 1;
		revoked = vsvm_revoked(fd, DRM_VSVM_REVOKE_MIGRATION, &migrated);
		if (migrated == m->migrated || revoked - m->revoked != migrated - m->migrated ||
		    mem_grant(fd, m))
			return 0;
	}
	return mem_granted(fd, m);
}

/*
 * The device adds @v to every small page and every THP_STEP-th page of the
 * THP, which hold @before more than their initial values.
 */
static int mem_device_add(int fd, struct mem *m, __u64 v, __u64 before)
{
	struct drm_vsvm_atomic_range r = { 0 };
	__u64 old = 0, sum = 0;

	for (unsigned long i = 0; i < NPAGES; i++) {
		if (vsvm_atomic(fd, m->small + i * WORDS, DRM_VSVM_OP_ADD, 64, v, 0, &old))
			return 12;
		if (old != i + 1 + before)
			return 13;
	}
	for (unsigned long i = 0; i < THP_PAGES; i += THP_STEP)
		sum += 1000 + i + before;
	if (vsvm_range(fd, m->thp, THP_STEP * PAGE_SZ, THP_PAGES / THP_STEP, DRM_VSVM_OP_ADD,
		       64, v, &r))
		return 14;
	return r.sum == sum ? 0 : 15;
}

/* The CPU reads back @added on the pages the device worked on, nothing on the others. */
static int mem_check(struct mem *m, __u64 added)
{
	for (unsigned long i = 0; i < NPAGES; i++)
		if (m->small[i * WORDS] != i + 1 + added)
			return 16;
	for (unsigned long i = 0; i < THP_PAGES; i++)
		if (m->thp[i * WORDS] != 1000 + i + (i % THP_STEP ? 0 : added))
			return 17;
	return 0;
}

/* Opens device 0 and lets it take the pages of @m, adding @v to them. */
static int mem_give(struct mem *m, __u64 v, int *fd)
{
	int ret = mem_init(m);

	if (ret)
		return ret;
	*fd = vsvm_open(0);
	if (*fd < 0)
		return 20;
	if (mem_grant(*fd, m))
		return 21;
	ret = mem_device_add(*fd, m, v, 0);
	if (ret)
		return ret;
	return mem_held(*fd, m) ? 0 : 22;
}

/*
 * The child of the first test: holds a file with live grants while the parent
 * tries to unload, works on after being told to, and exits with the file open
 * and grants live.
 */
static int holder(int ready, int go)
{
	struct mem m;
	int fd, ret;

	ret = mem_give(&m, 100, &fd);
	if (ret)
		return ret;
	if (send_byte(ready) || wait_byte(go))
		return 23;
	/* The refused unload took nothing away. */
	if (!mem_held(fd, &m))
		return 24;
	ret = mem_device_add(fd, &m, 10, 100);
	if (!ret)
		ret = mem_check(&m, 110);
	if (!ret)
		ret = mem_device_add(fd, &m, 1, 110);
	if (ret)
		return ret;
	/* No close(): the exit path releases the file, with the grants live. */
	return mem_held(fd, &m) ? 0 : 25;
}

/*
 * Child A of the loop: gives its memory to the device, closes the file, and
 * reads the memory back once the parent has unloaded the module.
 */
static int survivor(int ready, int go)
{
	struct mem m;
	int fd, ret;

	ret = mem_give(&m, 7, &fd);
	if (ret)
		return ret;
	close(fd);
	if (send_byte(ready) || wait_byte(go))
		return 23;
	return mem_check(&m, 7);
}

/* Child B of the loop: device atomics on one page until killed. */
static int spinner(int index, int ready, uint64_t *progress)
{
	uint64_t *p = map_anon(PAGE_SZ);
	int fd = vsvm_open(index);

	if (!p || fd < 0)
		return 30;
	for (uint64_t n = 1;; n++) {
		if (vsvm_add64(fd, p, 1))
			return 31;
		/* Now and then the CPU reads, and so takes the page back. */
		if (n % 16 == 0 && p[0] != n)
			return 32;
		__atomic_store_n(progress, n, __ATOMIC_RELAXED);
		if (n == 1 && send_byte(ready))
			return 33;
	}
}

/* 0 once *@progress reaches @target, -1 after about 10 s. */
static int wait_progress(uint64_t *progress, uint64_t target)
{
	for (int ms = 0; ms < 10000; ms++) {
		if (__atomic_load_n(progress, __ATOMIC_RELAXED) >= target)
			return 0;
		usleep(1000);
	}
	return -1;
}

FIXTURE(module)
{
	pid_t pid[2];	/* children still to reap */
};

FIXTURE_SETUP(module)
{
	self->pid[0] = -1;
	self->pid[1] = -1;
	/* A dead child's pipe must fail an assertion, not kill the test before its teardown. */
	signal(SIGPIPE, SIG_IGN);
	/* Missing parameters or module file: fail before unloading anything. */
	ASSERT_TRUE(loaded_with.found) TH_LOG("VSVM_PARAMS missing or without devices=");
	ASSERT_EQ(access(KO_PATH, R_OK), 0) TH_LOG("%s: %s", KO_PATH, strerror(errno));
	TH_LOG("vsvm was loaded with %s", loaded_with.args);
	assert_loaded(_metadata);
}

/*
 * Also runs when an assertion fails: no child may keep a file open, and the
 * module must be loaded again for the init script's rmmod and the stats it
 * prints.
 */
FIXTURE_TEARDOWN(module)
{
	for (int i = 0; i < 2; i++) {
		if (self->pid[i] > 0)
			kill(self->pid[i], SIGKILL);
		reap(&self->pid[i]);
	}
	EXPECT_EQ(restore_module(), 0);
}

TEST_F(module, unload_refused_while_a_file_is_open_elsewhere)
{
	int ready[2], go[2], fd;
	uint64_t *p, nodes;
	long refs;

	nodes = vsvm_nodes();
	ASSERT_EQ(pipe(ready), 0);
	ASSERT_EQ(pipe(go), 0);
	self->pid[0] = fork_child();
	ASSERT_GE(self->pid[0], 0);
	if (self->pid[0] == 0) {
		close(ready[0]);
		close(go[1]);
		_exit(holder(ready[1], go[0]));
	}
	close(ready[1]);
	close(go[0]);
	ASSERT_EQ(wait_byte(ready[0]), 0) TH_LOG("child: exit code %d", reap(&self->pid[0]));

	refs = module_refcnt();
	ASSERT_GE(refs, 1);
	ASSERT_EQ(unload_module(), -EWOULDBLOCK);
	/* The refusal leaves the module as it was, and usable by others too. */
	ASSERT_EQ(module_live(), 1);
	ASSERT_EQ(module_refcnt(), refs);
	ASSERT_EQ(vsvm_count(), loaded_with.devices);

	ASSERT_EQ(send_byte(go[1]), 0);
	ASSERT_EQ(reap(&self->pid[0]), 0);
	close(ready[0]);
	close(go[1]);

	/* The child's exit released its file before waitpid() could see it (do_exit()). */
	reload_module(_metadata, nodes);

	p = map_anon(PAGE_SZ);
	ASSERT_NE(p, NULL);
	for (unsigned int i = 0; i < loaded_with.devices; i++) {
		fd = vsvm_open(i);
		ASSERT_GE(fd, 0);
		p[0] = 41;
		ASSERT_EQ(vsvm_add64(fd, p, 1), 0);
		ASSERT_EQ(vsvm_query(fd, p), ATOMIC_PTE);
		ASSERT_EQ(p[0], 42);
		close(fd);
	}
	munmap(p, PAGE_SZ);
}

/*
 * A process submits jobs that fault on 256 pages, and exits without waiting
 * for them: its file is released, the jobs run on, and the module unloads at
 * once, waiting for its engines; it loads again and works.
 */
TEST_F(module, unload_with_jobs_in_flight)
{
	int ready[2], fd;
	uint64_t nodes = vsvm_nodes(), *p;

	ASSERT_EQ(pipe(ready), 0);
	self->pid[0] = fork_child();
	ASSERT_GE(self->pid[0], 0);
	if (self->pid[0] == 0) {
		static struct drm_vsvm_job_op ops[256];
		static struct drm_vsvm_job_result res[DRM_VSVM_JOBS_MAX][256];
		char *mem = map_anon(256 * PAGE_SZ);
		int fd = vsvm_open(0);
		__u64 seqno;

		close(ready[0]);
		if (fd < 0 || !mem)
			_exit(2);
		memset(mem, 0, 256 * PAGE_SZ);
		for (int i = 0; i < 256; i++)
			ops[i] = (struct drm_vsvm_job_op){ .addr = (uintptr_t)(mem + i * PAGE_SZ),
							   .operand = 1, .op = DRM_VSVM_OP_ADD,
							   .width = 64 };
		for (int j = 0; j < DRM_VSVM_JOBS_MAX; j++)
			if (vsvm_submit(fd, ops, 256, res[j], &seqno))
				_exit(3);
		_exit(send_byte(ready[1]) ? 4 : 0);
	}
	close(ready[1]);
	ASSERT_EQ(wait_byte(ready[0]), 0) TH_LOG("child: exit code %d", reap(&self->pid[0]));
	ASSERT_EQ(reap(&self->pid[0]), 0);
	close(ready[0]);

	reload_module(_metadata, nodes);
	p = map_anon(PAGE_SZ);
	ASSERT_NE(p, NULL);
	fd = vsvm_open(0);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(vsvm_add64(fd, p, 5), 0);
	ASSERT_EQ(p[0], 5);
	close(fd);
}

TEST_F_TIMEOUT(module, load_unload_loop_with_live_processes, 120)
{
	int index = loaded_with.devices >= 2 ? 1 : 0;
	uint64_t *progress = mmap(NULL, PAGE_SZ, PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	ASSERT_NE(progress, MAP_FAILED);
	for (int it = 0; it < ITERATIONS; it++) {
		int a_ready[2], a_go[2], b_ready[2];
		uint64_t nodes, n;

		if (it)
			ASSERT_EQ(load_module(&loaded_with), 0) TH_LOG("iteration %d", it);
		nodes = assert_loaded(_metadata);

		ASSERT_EQ(pipe(a_ready), 0);
		ASSERT_EQ(pipe(a_go), 0);
		self->pid[0] = fork_child();
		ASSERT_GE(self->pid[0], 0);
		if (self->pid[0] == 0) {
			close(a_ready[0]);
			close(a_go[1]);
			_exit(survivor(a_ready[1], a_go[0]));
		}
		close(a_ready[1]);
		close(a_go[0]);

		__atomic_store_n(progress, 0, __ATOMIC_RELAXED);
		ASSERT_EQ(pipe(b_ready), 0);
		self->pid[1] = fork_child();
		ASSERT_GE(self->pid[1], 0);
		if (self->pid[1] == 0) {
			close(a_ready[0]);
			close(a_go[1]);
			close(b_ready[0]);
			_exit(spinner(index, b_ready[1], progress));
		}
		close(b_ready[1]);

		/* A has closed its file, B has one open and works on. */
		ASSERT_EQ(wait_byte(a_ready[0]), 0)
			TH_LOG("iteration %d: A: exit code %d", it, reap(&self->pid[0]));
		ASSERT_EQ(wait_byte(b_ready[0]), 0)
			TH_LOG("iteration %d: B: exit code %d", it, reap(&self->pid[1]));
		ASSERT_EQ(unload_module(), -EWOULDBLOCK) TH_LOG("iteration %d", it);
		ASSERT_EQ(module_live(), 1);
		n = __atomic_load_n(progress, __ATOMIC_RELAXED);
		ASSERT_EQ(wait_progress(progress, n + 16), 0)
			TH_LOG("iteration %d: B stopped at %llu", it,
			       (unsigned long long)__atomic_load_n(progress, __ATOMIC_RELAXED));

		ASSERT_EQ(kill(self->pid[1], SIGKILL), 0);
		ASSERT_EQ(reap(&self->pid[1]), 128 + SIGKILL) TH_LOG("iteration %d: B", it);
		ASSERT_EQ(unload_module(), 0)
			TH_LOG("iteration %d: refcnt %ld", it, module_refcnt());
		assert_unloaded(_metadata, nodes);

		/* A's memory outlives the module that held it. */
		ASSERT_EQ(send_byte(a_go[1]), 0);
		ASSERT_EQ(reap(&self->pid[0]), 0) TH_LOG("iteration %d: A", it);
		close(a_ready[0]);
		close(a_go[1]);
		close(b_ready[0]);
	}
	ASSERT_EQ(load_module(&loaded_with), 0);
	assert_loaded(_metadata);
	munmap(progress, PAGE_SZ);
}

TEST_HARNESS_MAIN

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Memory cgroups for the vsvm selftests: the guest mounts cgroup2 at
 * /sys/fs/cgroup.  Needs vsvm_common.h (write_file()).
 */
#ifndef VSVM_CGROUP_H
#define VSVM_CGROUP_H

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define CGROUPS		"/sys/fs/cgroup"

/*
 * Moves this process into memory cgroup @name (a child of the root, made if
 * needed) with memory.max @max; 0 or -errno.  Memory is charged where it is
 * allocated: join before allocating what the cgroup should account.
 */
static inline int join_cgroup(const char *name, const char *max)
{
	char path[128], pid[32];
	int ret;

	ret = write_file(CGROUPS "/cgroup.subtree_control", "+memory");
	if (ret)
		return ret;
	snprintf(path, sizeof(path), CGROUPS "/%s", name);
	if (mkdir(path, 0755) && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), CGROUPS "/%s/memory.max", name);
	ret = write_file(path, max);
	if (ret)
		return ret;
	snprintf(path, sizeof(path), CGROUPS "/%s/cgroup.procs", name);
	snprintf(pid, sizeof(pid), "%d", getpid());
	return write_file(path, pid);
}

/* Moves this process back to the root cgroup; 0 or -errno. */
static inline int leave_cgroup(void)
{
	char pid[32];

	snprintf(pid, sizeof(pid), "%d", getpid());
	return write_file(CGROUPS "/cgroup.procs", pid);
}

/* The value of @key in a file of "key value" lines; -1 if missing. */
static inline long long key_value(const char *path, const char *key)
{
	char k[64];
	long long v, found = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fscanf(f, "%63s %lld", k, &v) == 2) {
		if (!strcmp(k, key)) {
			found = v;
			break;
		}
	}
	fclose(f);
	return found;
}

/* Field @key of memory.stat of cgroup @name, in bytes; -1 if missing. */
static inline long long cgroup_stat(const char *name, const char *key)
{
	char path[128];

	snprintf(path, sizeof(path), CGROUPS "/%s/memory.stat", name);
	return key_value(path, key);
}

#endif /* VSVM_CGROUP_H */

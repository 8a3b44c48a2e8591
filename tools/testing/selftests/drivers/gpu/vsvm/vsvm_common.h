/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the vsvm selftests and the demo: finding the devices and
 * issuing their ioctls.
 */
#ifndef VSVM_COMMON_H
#define VSVM_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <drm/drm.h>
#include <drm/vsvm_drm.h>

#define VSVM_MAX_DEVICES 8

/* @size bytes of private anonymous memory, or NULL. */
static inline void *map_anon(unsigned long size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Writes @text to the file @path (sysfs, debugfs, cgroupfs); 0 or -errno. */
static inline int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_TRUNC);
	int ret;

	if (fd < 0)
		return -errno;
	ret = write(fd, text, strlen(text));
	ret = ret == (int)strlen(text) ? 0 : ret < 0 ? -errno : -EIO;
	close(fd);
	return ret;
}

/* The contents of @path, without the newline, in @buf; 0 or -errno. */
static inline int read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), err;
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	err = errno;
	close(fd);
	if (n <= 0)
		return n ? -err : -ENODATA;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/*
 * Field @field (0 for the first) of counter @name in device @dev's debugfs
 * stats ("name: v0 v1 ..." or, labelled, "name: a=v0 b=v1 ..."), or -1.
 */
static inline long vsvm_dev_stat_of(int dev, const char *name, int field)
{
	char line[256], path[64], *v;
	size_t len = strlen(name);
	long n = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/debug/vsvm/vsvm%d/stats", dev);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, name, len) || line[len] != ':')
			continue;
		v = line + len + 1;
		for (int i = 0; i <= field; i++) {
			char *end;

			v += strspn(v, " ");
			end = v + strcspn(v, " =\n");
			if (*end == '=')
				v = end + 1;
			n = strtol(v, &end, 10);
			if (end == v) {
				n = -1;
				break;
			}
			v = end;
		}
	}
	fclose(f);
	return n;
}

/* Field @field of counter @name in device 0's debugfs stats, or -1. */
static inline long vsvm_dev_stat_field(const char *name, int field)
{
	return vsvm_dev_stat_of(0, name, field);
}

/* Counter @name in device 0's debugfs stats, or -1. */
static inline long dev_stat(const char *name)
{
	return vsvm_dev_stat_of(0, name, 0);
}

/* The minor of the @index-th vsvm render node (/dev/dri/renderD<minor>), or -ENODEV. */
static inline int vsvm_minor(int index)
{
	int found = 0;

	for (int minor = 128; minor < 192; minor++) {
		char path[32], name[16] = "";
		struct drm_version v = { .name = name, .name_len = sizeof(name) - 1 };
		int fd, match;

		snprintf(path, sizeof(path), "/dev/dri/renderD%d", minor);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		match = ioctl(fd, DRM_IOCTL_VERSION, &v) == 0 && !strcmp(name, "vsvm");
		close(fd);
		if (match && found++ == index)
			return minor;
	}
	return -ENODEV;
}

/* Opens the @index-th vsvm render node, or returns -errno. */
static inline int vsvm_open(int index)
{
	int minor = vsvm_minor(index), fd;
	char path[32];

	if (minor < 0)
		return minor;
	snprintf(path, sizeof(path), "/dev/dri/renderD%d", minor);
	fd = open(path, O_RDWR | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Number of vsvm devices present. */
static inline int vsvm_count(void)
{
	int n = 0, fd;

	while (n < VSVM_MAX_DEVICES && (fd = vsvm_open(n)) >= 0) {
		close(fd);
		n++;
	}
	return n;
}

/* One device atomic; returns 0 or -errno, the old value in *old. */
static inline int vsvm_atomic(int fd, void *addr, __u32 op, __u32 width,
			      __u64 operand, __u64 compare, __u64 *old)
{
	struct drm_vsvm_atomic a = {
		.addr = (uintptr_t)addr, .operand = operand, .compare = compare,
		.op = op, .width = width,
	};

	if (ioctl(fd, DRM_IOCTL_VSVM_ATOMIC, &a))
		return -errno;
	if (old)
		*old = a.result;
	return 0;
}

static inline int vsvm_add64(int fd, void *addr, __u64 v)
{
	return vsvm_atomic(fd, addr, DRM_VSVM_OP_ADD, 64, v, 0, NULL);
}

static inline int vsvm_range(int fd, void *addr, __u64 stride, __u64 count,
			     __u32 op, __u32 width, __u64 operand,
			     struct drm_vsvm_atomic_range *out)
{
	struct drm_vsvm_atomic_range r = {
		.addr = (uintptr_t)addr, .stride = stride, .count = count,
		.operand = operand, .op = op, .width = width,
	};

	if (ioctl(fd, DRM_IOCTL_VSVM_ATOMIC_RANGE, &r))
		return -errno;
	if (out)
		*out = r;
	return 0;
}

static inline int vsvm_prefetch(int fd, void *addr, __u64 npages)
{
	struct drm_vsvm_prefetch p = { .addr = (uintptr_t)addr, .npages = npages };

	return ioctl(fd, DRM_IOCTL_VSVM_PREFETCH, &p) ? -errno : 0;
}

/* Submits a job of @count operations; returns 0 or -errno, its number in *seqno. */
static inline int vsvm_submit(int fd, const struct drm_vsvm_job_op *ops, __u32 count,
			      struct drm_vsvm_job_result *results, __u64 *seqno)
{
	struct drm_vsvm_submit s = {
		.ops = (uintptr_t)ops, .results = (uintptr_t)results, .count = count,
	};

	*seqno = 0;
	if (ioctl(fd, DRM_IOCTL_VSVM_SUBMIT, &s))
		return -errno;
	*seqno = s.seqno;
	return 0;
}

/* Waits up to @timeout_ns for job @seqno; returns 0 or -errno. */
static inline int vsvm_wait(int fd, __u64 seqno, __s64 timeout_ns)
{
	struct drm_vsvm_wait w = { .seqno = seqno, .timeout_ns = timeout_ns };

	return ioctl(fd, DRM_IOCTL_VSVM_WAIT, &w) ? -errno : 0;
}

/* DRM_VSVM_PTE_* bits of @addr, or -errno. */
static inline int vsvm_query(int fd, void *addr)
{
	struct drm_vsvm_query q = { .addr = (uintptr_t)addr };

	return ioctl(fd, DRM_IOCTL_VSVM_QUERY, &q) ? -errno : (int)q.state;
}

static inline int vsvm_stats(int fd, struct drm_vsvm_stats *s)
{
	memset(s, 0, sizeof(*s));
	return ioctl(fd, DRM_IOCTL_VSVM_STATS, s) ? -errno : 0;
}

/* The notifiers the context of @fd holds now, or -1. */
static inline long vsvm_notifiers(int fd)
{
	struct drm_vsvm_stats s;

	return vsvm_stats(fd, &s) ? -1 : (long)s.notifiers;
}

/*
 * 1 if every one of the seven ioctls on @fd is refused with EACCES for @addr,
 * as it must be for a file descriptor that reached another address space.
 */
static inline int vsvm_all_refused(int fd, void *addr)
{
	struct drm_vsvm_job_op op = { .addr = (uintptr_t)addr, .op = DRM_VSVM_OP_ADD,
				      .width = 64, .operand = 1 };
	struct drm_vsvm_job_result res;
	struct drm_vsvm_stats s;
	__u64 seqno;

	return vsvm_submit(fd, &op, 1, &res, &seqno) == -EACCES &&
	       vsvm_wait(fd, 1, 0) == -EACCES &&
	       vsvm_add64(fd, addr, 1) == -EACCES &&
	       vsvm_range(fd, addr, 8, 2, DRM_VSVM_OP_ADD, 64, 1, NULL) == -EACCES &&
	       vsvm_prefetch(fd, addr, 1) == -EACCES &&
	       vsvm_query(fd, addr) == -EACCES &&
	       vsvm_stats(fd, &s) == -EACCES;
}

/* Total revocations of the context of @fd, and those of @cause in *one if set. */
static inline __u64 vsvm_revoked(int fd, int cause, __u64 *one)
{
	struct drm_vsvm_stats s;
	__u64 sum = 0;

	if (vsvm_stats(fd, &s))
		return 0;
	for (int i = 0; i < DRM_VSVM_REVOKE_COUNT; i++)
		sum += s.revocations[i];
	if (one)
		*one = s.revocations[cause];
	return sum;
}

#endif /* VSVM_COMMON_H */

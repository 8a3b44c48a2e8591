/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Transparent huge page helpers for the selftests and the demo: a 2 MiB
 * aligned MADV_HUGEPAGE buffer, and two ways to tell that memory is THP-backed
 * (/proc/self/smaps, and /proc/self/pagemap + /proc/kpageflags).
 */
#ifndef SVM_THP_H
#define SVM_THP_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE_SZ		4096UL
#define THP_SZ		(2UL << 20)
#define KPF_THP		22

/* A THP_SZ-aligned, THP_SZ-long MADV_HUGEPAGE region (in a 2 * THP_SZ mapping), or NULL. */
static inline void *thp_alloc(void)
{
	char *p = mmap(NULL, 2 * THP_SZ, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a;

	if (p == MAP_FAILED)
		return NULL;
	a = (char *)(((uintptr_t)p + THP_SZ - 1) & ~(THP_SZ - 1));
	return madvise(a, THP_SZ, MADV_HUGEPAGE) ? NULL : a;
}

/* AnonHugePages of the VMA containing @addr, in kB, from /proc/self/smaps; -1 on error. */
static inline long anon_huge_kb(void *addr)
{
	unsigned long lo, hi, a = (uintptr_t)addr;
	char line[256];
	int in_vma = 0;
	long kb = -1;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		/* VMA header lines start "lo-hi perms ..."; fields start "Name:". */
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in_vma = a >= lo && a < hi;
			continue;
		}
		if (in_vma && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

/* 1 if the page mapped at @addr belongs to a THP, 0 if not, -1 if unknown. */
static inline int page_is_thp(void *addr)
{
	uint64_t ent, flags;
	int pm = open("/proc/self/pagemap", O_RDONLY);
	int kf = open("/proc/kpageflags", O_RDONLY);
	int ret = -1;

	if (pm < 0 || kf < 0)
		goto out;
	if (pread(pm, &ent, 8, (uintptr_t)addr / PAGE_SZ * 8) != 8 || !(ent & (1ULL << 63)))
		goto out;	/* not present */
	if (pread(kf, &flags, 8, (ent & ((1ULL << 55) - 1)) * 8) != 8)
		goto out;
	ret = !!(flags & (1ULL << KPF_THP));
out:
	if (pm >= 0)
		close(pm);
	if (kf >= 0)
		close(kf);
	return ret;
}

#endif /* SVM_THP_H */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tracepoints of kernel::drm::svm, the Rust SVM atomic-fault backend.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM drm_svm

#if !defined(_TRACE_DRM_SVM_H) || defined(TRACE_HEADER_MULTI_READ)
#define _TRACE_DRM_SVM_H

#include <linux/tracepoint.h>

#ifndef __DRM_SVM_REVOKE_CAUSE_ONCE
#define __DRM_SVM_REVOKE_CAUSE_ONCE
/*
 * Why a device lost atomic access to pages: the values of the Rust
 * kernel::drm::svm::RevokeCause, which takes them from here.
 */
enum drm_svm_revoke_cause {
	DRM_SVM_REVOKE_CPU,
	DRM_SVM_REVOKE_DEVICE,
	DRM_SVM_REVOKE_UNMAP,
	DRM_SVM_REVOKE_MPROTECT,
	DRM_SVM_REVOKE_FORK,
	DRM_SVM_REVOKE_MIGRATION,
	DRM_SVM_REVOKE_EXIT,
	DRM_SVM_REVOKE_OTHER,
	DRM_SVM_REVOKE_COUNT,
};

/*
 * The phases of a page's grant whose ends svm_phase marks: the values of the
 * Rust backend's phases.
 */
enum drm_svm_phase {
	DRM_SVM_PHASE_ENTRY,
	DRM_SVM_PHASE_PREPARE,
	DRM_SVM_PHASE_READ_BEGIN,
	DRM_SVM_PHASE_MMAP_LOCK,
	DRM_SVM_PHASE_MAKE_EXCLUSIVE,
	DRM_SVM_PHASE_COMMIT,
	DRM_SVM_PHASE_RELEASE,
};
#endif

/* Export the values to user space, for tools that parse the format. */
TRACE_DEFINE_ENUM(DRM_SVM_REVOKE_CPU);
TRACE_DEFINE_ENUM(DRM_SVM_REVOKE_DEVICE);
TRACE_DEFINE_ENUM(DRM_SVM_REVOKE_UNMAP);
TRACE_DEFINE_ENUM(DRM_SVM_REVOKE_MPROTECT);
TRACE_DEFINE_ENUM(DRM_SVM_REVOKE_FORK);
TRACE_DEFINE_ENUM(DRM_SVM_REVOKE_MIGRATION);
TRACE_DEFINE_ENUM(DRM_SVM_REVOKE_EXIT);
TRACE_DEFINE_ENUM(DRM_SVM_REVOKE_OTHER);
TRACE_DEFINE_ENUM(DRM_SVM_PHASE_ENTRY);
TRACE_DEFINE_ENUM(DRM_SVM_PHASE_PREPARE);
TRACE_DEFINE_ENUM(DRM_SVM_PHASE_READ_BEGIN);
TRACE_DEFINE_ENUM(DRM_SVM_PHASE_MMAP_LOCK);
TRACE_DEFINE_ENUM(DRM_SVM_PHASE_MAKE_EXCLUSIVE);
TRACE_DEFINE_ENUM(DRM_SVM_PHASE_COMMIT);
TRACE_DEFINE_ENUM(DRM_SVM_PHASE_RELEASE);

TRACE_EVENT(svm_fault_begin,
	    TP_PROTO(unsigned long owner, unsigned long addr, unsigned long npages),
	    TP_ARGS(owner, addr, npages),
	    TP_STRUCT__entry(__field(unsigned long, owner)
			     __field(unsigned long, addr)
			     __field(unsigned long, npages)),
	    TP_fast_assign(__entry->owner = owner;
			   __entry->addr = addr;
			   __entry->npages = npages;),
	    TP_printk("owner=%p addr=%lx npages=%lu", (void *)__entry->owner,
		      __entry->addr, __entry->npages)
);

TRACE_EVENT(svm_fault_end,
	    TP_PROTO(unsigned long owner, unsigned long addr, int ret),
	    TP_ARGS(owner, addr, ret),
	    TP_STRUCT__entry(__field(unsigned long, owner)
			     __field(unsigned long, addr)
			     __field(int, ret)),
	    TP_fast_assign(__entry->owner = owner;
			   __entry->addr = addr;
			   __entry->ret = ret;),
	    TP_printk("owner=%p addr=%lx ret=%d", (void *)__entry->owner,
		      __entry->addr, __entry->ret)
);

DECLARE_EVENT_CLASS(svm_page,
		    TP_PROTO(unsigned long owner, unsigned long addr),
		    TP_ARGS(owner, addr),
		    TP_STRUCT__entry(__field(unsigned long, owner)
				     __field(unsigned long, addr)),
		    TP_fast_assign(__entry->owner = owner;
				   __entry->addr = addr;),
		    TP_printk("owner=%p addr=%lx", (void *)__entry->owner, __entry->addr)
);

DEFINE_EVENT(svm_page, svm_grant,
	     TP_PROTO(unsigned long owner, unsigned long addr),
	     TP_ARGS(owner, addr)
);

DEFINE_EVENT(svm_page, svm_retry,
	     TP_PROTO(unsigned long owner, unsigned long addr),
	     TP_ARGS(owner, addr)
);

DEFINE_EVENT(svm_page, svm_timeout,
	     TP_PROTO(unsigned long owner, unsigned long addr),
	     TP_ARGS(owner, addr)
);

/*
 * The end of a phase of a page's grant. With only svm_fault_begin and
 * svm_phase enabled, the time since the task's previous event is the
 * phase's (other drm_svm events of the task fall between phases).
 */
TRACE_EVENT(svm_phase,
	    TP_PROTO(unsigned long owner, unsigned long addr, int phase),
	    TP_ARGS(owner, addr, phase),
	    TP_STRUCT__entry(__field(unsigned long, owner)
			     __field(unsigned long, addr)
			     __field(int, phase)),
	    TP_fast_assign(__entry->owner = owner;
			   __entry->addr = addr;
			   __entry->phase = phase;),
	    TP_printk("owner=%p addr=%lx phase=%s", (void *)__entry->owner,
		      __entry->addr,
		      __print_symbolic(__entry->phase,
				       { DRM_SVM_PHASE_ENTRY, "entry" },
				       { DRM_SVM_PHASE_PREPARE, "prepare" },
				       { DRM_SVM_PHASE_READ_BEGIN, "read_begin" },
				       { DRM_SVM_PHASE_MMAP_LOCK, "mmap_lock" },
				       { DRM_SVM_PHASE_MAKE_EXCLUSIVE, "make_device_exclusive" },
				       { DRM_SVM_PHASE_COMMIT, "commit" },
				       { DRM_SVM_PHASE_RELEASE, "release" }))
);

/*
 * A non-blockable invalidation of [start, end) refused: the page-table lock
 * was held, or the driver could not unmap without waiting.
 */
TRACE_EVENT(svm_busy,
	    TP_PROTO(unsigned long owner, unsigned long start, unsigned long end),
	    TP_ARGS(owner, start, end),
	    TP_STRUCT__entry(__field(unsigned long, owner)
			     __field(unsigned long, start)
			     __field(unsigned long, end)),
	    TP_fast_assign(__entry->owner = owner;
			   __entry->start = start;
			   __entry->end = end;),
	    TP_printk("owner=%p start=%lx end=%lx", (void *)__entry->owner,
		      __entry->start, __entry->end)
);

TRACE_EVENT(svm_revoke,
	    TP_PROTO(unsigned long owner, unsigned long start, unsigned long end,
		     int cause, unsigned long pages),
	    TP_ARGS(owner, start, end, cause, pages),
	    TP_STRUCT__entry(__field(unsigned long, owner)
			     __field(unsigned long, start)
			     __field(unsigned long, end)
			     __field(int, cause)
			     __field(unsigned long, pages)),
	    TP_fast_assign(__entry->owner = owner;
			   __entry->start = start;
			   __entry->end = end;
			   __entry->cause = cause;
			   __entry->pages = pages;),
	    TP_printk("owner=%p start=%lx end=%lx cause=%s pages=%lu",
		      (void *)__entry->owner, __entry->start, __entry->end,
		      __print_symbolic(__entry->cause,
				       { DRM_SVM_REVOKE_CPU, "cpu" },
				       { DRM_SVM_REVOKE_DEVICE, "device" },
				       { DRM_SVM_REVOKE_UNMAP, "unmap" },
				       { DRM_SVM_REVOKE_MPROTECT, "mprotect" },
				       { DRM_SVM_REVOKE_FORK, "fork" },
				       { DRM_SVM_REVOKE_MIGRATION, "migration" },
				       { DRM_SVM_REVOKE_EXIT, "exit" },
				       { DRM_SVM_REVOKE_OTHER, "other" }),
		      __entry->pages)
);

#endif /* _TRACE_DRM_SVM_H */

/* This part must be outside protection */
#include <trace/define_trace.h>

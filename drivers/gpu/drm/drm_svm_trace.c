// SPDX-License-Identifier: GPL-2.0
/*
 * The tracepoints of kernel::drm::svm (include/trace/events/drm_svm.h), and
 * the rust_do_trace_*() functions the Rust side calls.
 */

#define CREATE_TRACE_POINTS
#define CREATE_RUST_TRACE_POINTS
#include <trace/events/drm_svm.h>

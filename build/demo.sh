#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make demo`: the multi-device atomic contention workload needs the vsvm
# driver, which does not exist yet (issue: drm/vsvm reference driver).  Until
# then this says so instead of pretending.

. "$(dirname "$0")/lib.sh"

echo "svm-atomic demo: no driver yet."
echo "The vsvm driver and its contention workload are not written yet;"
echo "'make test' runs what exists (mm abstractions' KUnit suites and the"
echo "C reference selftest on test_hmm)."

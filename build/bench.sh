#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make bench`: boots the kernel once and runs every benchmark figure with
# its variants alternated (bench/run.sh), then prints every target with its
# measured ratio, the scaling sweep and the contention table (build/bench.py),
# and rewrites bench/RESULTS.md from them.  Raw numbers and the plot:
# $OUT/bench/results.csv, .json and .svg.

. "$(dirname "$0")/lib.sh"

# Timings come from a kernel without lockdep, kmemleak and DEBUG_VM (its own
# build directory; the first `make bench` builds it, about 8 minutes).
export SVM_PROFILE=bench
"$TOP/build/setup.sh"
OUT=$("$TOP/build/kernel.sh")
mkdir -p "$OUT/svm-bench" "$OUT/svm-empty" "$OUT/logs" "$OUT/bench"
gcc -O2 -static -pthread -Wall -Werror -isystem "$OUT/usr/include" -I "$SRC/lib" \
	-o "$OUT/svm-bench/svm_bench" "$TOP/bench/svm_bench.c"
cp "$TOP/bench/run.sh" "$OUT/svm-bench/"
"$TOP/build/initramfs.sh" "$OUT" "$OUT/svm-empty" "$OUT/svm-bench.cpio" "" "$OUT/svm-bench"
LOG=$OUT/logs/bench-$(date +%Y%m%d-%H%M%S).log
log "booting the benchmark guest (console log: $LOG)"
"$TOP/build/boot.sh" "$OUT" "$OUT/svm-bench.cpio" "$LOG" svm.bench=1 kunit.enable=0 svm.rmw_window_ns=0
python3 "$TOP/build/check-log.py" --splats "$LOG" || die "the kernel reported problems (log: $LOG)"
grep -q BENCH-DONE "$LOG" || die "the benchmark did not finish (log: $LOG)"
if grep BENCH-ERROR "$LOG"; then
	die "a benchmark failed (log: $LOG)"
fi
grep -a '^BENCH,' "$LOG" | tr -d '\r' > "$OUT/bench/results.csv"
# Debian's python3, which has the python3-matplotlib that setup.sh installed.
/usr/bin/python3 "$TOP/build/bench.py" "$OUT/bench/results.csv" "$OUT/bench/results.json" \
	"$TOP/bench/RESULTS.md"
log "results page: bench/RESULTS.md"

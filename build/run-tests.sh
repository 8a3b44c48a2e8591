#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make test`: installs what is missing, builds the kernel with the project
# laid over it, checks style, boots the kernel once under QEMU, and judges
# the console log: KUnit suites (run while the kernel boots), then the
# userspace selftests (run by the initramfs), then a kmemleak scan.

. "$(dirname "$0")/lib.sh"

start=$SECONDS
"$TOP/build/setup.sh"
OUT=$("$TOP/build/kernel.sh")
"$TOP/build/lint.sh"
"$TOP/build/selftests.sh" "$OUT" "$OUT/svm-tests"
"$TOP/build/initramfs.sh" "$OUT" "$OUT/svm-tests" "$OUT/svm-initramfs.cpio"
mkdir -p "$OUT/logs"
LOG=$OUT/logs/test-$(date +%Y%m%d-%H%M%S).log
log "booting the test guest (${SVM_CPUS:-2} CPUs, TCG); console log: $LOG"
# Two fake NUMA nodes for move_pages(), a 64 MiB RAM disk for swap, a CMA
# area for vsvm_mm to allocate granted pages away from, freed pages
# unmapped and poisoned so that a write to one is reported, and every DMA
# mapping bounced (swiotlb=force): a vsvm device then works on a copy of
# each page it holds, which reaches the page only if the driver unmaps it
# before the CPU takes the page back, so the exact sums of every test
# check the driver's DMA.
"$TOP/build/boot.sh" "$OUT" "$OUT/svm-initramfs.cpio" "$LOG" numa=fake=2 \
	brd.rd_nr=1 brd.rd_size=65536 cma=256M debug_pagealloc=on page_poison=1 \
	swiotlb=force ${SVM_CMDLINE:-}
ln -sf "$LOG" "$CACHE/test-latest.log"
log "build and boot took $((SECONDS - start)) s"
exec python3 "$TOP/build/check-log.py" "$LOG" "$SRC/tools/testing/kunit/kunit.py"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make demo`: builds what is missing, boots the kernel with the vsvm
# virtual GPUs, runs the multi-GPU atomic contention workload on THP-backed
# memory and prints its table.  Fails if the sum is not exact or the kernel
# reported anything (WARN, lockdep, ...).  SVM_GPUS= sets the number of GPUs
# (default 2, max 8); SVM_RESIDENCY_US= turns on the residency policy.

. "$(dirname "$0")/lib.sh"

"$TOP/build/setup.sh"
OUT=$("$TOP/build/kernel.sh")
mkdir -p "$OUT/svm-demo" "$OUT/svm-empty" "$OUT/logs"
gcc -O2 -static -pthread -Wall -Werror -isystem "$OUT/usr/include" \
	-o "$OUT/svm-demo/vsvm_demo" "$TOP/tests/demo/vsvm_demo.c"
"$TOP/build/initramfs.sh" "$OUT" "$OUT/svm-empty" "$OUT/svm-demo.cpio" "$OUT/svm-demo"
LOG=$OUT/logs/demo-$(date +%Y%m%d-%H%M%S).log
log "booting $((${SVM_GPUS:-2})) virtual GPUs (console log: $LOG)"
"$TOP/build/boot.sh" "$OUT" "$OUT/svm-demo.cpio" "$LOG" svm.demo=1 kunit.enable=0 \
	svm.gpus="${SVM_GPUS:-2}" svm.residency_us="${SVM_RESIDENCY_US:-0}"
echo
# The demo's own output, without the kernel's messages.
sed -n '/SVM-DEMO-BEGIN/,/SVM-DEMO-END/p' "$LOG" | grep -v '^SVM-DEMO-\|^\[ *[0-9]' || true
echo
rc=$(sed -n 's/.*SVM-DEMO-END rc=\([0-9]*\).*/\1/p' "$LOG")
grep -q "SVM-INSMOD rc=0" "$LOG" || die "loading vsvm.ko failed (log: $LOG)"
python3 "$TOP/build/check-log.py" --splats "$LOG" || die "the kernel reported problems (log: $LOG)"
[ "$rc" = 0 ] || die "the demo failed (log: $LOG)"

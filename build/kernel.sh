#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds the prepared kernel (bzImage, modules, UAPI headers) in its cached
# O= directory, then the vsvm driver as an out-of-tree module against it;
# make rebuilds only what changed.  Prints the directory.

. "$(dirname "$0")/lib.sh"

OUT=$("$TOP/build/prepare.sh")
log "building in $OUT ($JOBS jobs; a cold build takes about 10 minutes)"
make -s -C "$SRC" O="$OUT" "${KMAKE_VARS[@]}" -j"$JOBS" bzImage modules headers \
	> "$OUT/build.log" 2>&1 || { tail -n 40 "$OUT/build.log" >&2; die "kernel build failed (log: $OUT/build.log)"; }
# The driver again as an out-of-tree module (top-level Kbuild), which is
# what the guest loads.
make -s -C "$SRC" O="$OUT" "${KMAKE_VARS[@]}" -j"$JOBS" M="$TOP" MO="$OUT/extmod" modules \
	>> "$OUT/build.log" 2>&1 || { tail -n 40 "$OUT/build.log" >&2; die "out-of-tree module build failed"; }
if build_warnings "$OUT/build.log" | grep -E 'rust/kernel/(mm|kunit)/|rust/helpers/(mmu_notifier|folio)|drivers/gpu/drm/(vsvm|drm_svm)|rust/kernel/drm/svm' >&2; then
	# Force the next build to recompile (and so report) them again.
	rm -f "$OUT/rust/kernel.o"
	find "$OUT/drivers/gpu/drm" "$OUT/extmod" -path '*vsvm*' -name '*.o' -delete 2>/dev/null || true
	die "compiler warnings in the project's files"
fi
echo "$OUT"

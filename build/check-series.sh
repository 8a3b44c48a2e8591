#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Checks the upstream series the way a maintainer would take it: writes it
# (build/patches.sh), applies it with git am, one patch at a time, to a
# pristine 7.3 tree and builds the kernel after each (bisectable), with the
# test configuration (allnoconfig plus configs/*.config, without the
# benchmark options); after the selftest patches, builds those selftests
# with the kselftest makefiles.  Any rejection, build error or new warning
# fails.  checkpatch --strict on every patch is build/lint.sh's, which
# make check runs first.

. "$(dirname "$0")/lib.sh"

SERIES=$TOP/out/series
"$TOP/build/patches.sh" >/dev/null
BASE=$CACHE/series/base
AM=$CACHE/series/am
B=$CACHE/series/build
mkdir -p "$B"
[ -d "$AM" ] || { git -C "$BASE" worktree prune; git -C "$BASE" worktree add -q --detach "$AM" v7.3-base; }
git -C "$AM" am --abort >/dev/null 2>&1 || true
git -C "$AM" checkout -q --detach -f v7.3-base
git -C "$AM" clean -q -fdx

mapfile -t FRAGMENTS < <(config_fragments test)
cat "${FRAGMENTS[@]}" > "$B/svm.config"

start=$(date +%s)
n=0
for p in "$SERIES"/0*.patch; do
	case "$p" in *0000-cover-letter.patch) continue ;; esac
	n=$((n + 1))
	name=$(basename "$p")
	git -C "$AM" am -q --whitespace=error "$p" || die "$name does not apply with git am"
	t=$(date +%s)
	# Options a later patch adds are unknown to allnoconfig for now (ignored).
	make -s -C "$AM" O="$B" "${KMAKE_VARS[@]}" KCONFIG_ALLCONFIG="$B/svm.config" \
		allnoconfig >/dev/null 2>&1 || die "config failed after $name"
	make -s -C "$AM" O="$B" "${KMAKE_VARS[@]}" -j"$JOBS" bzImage modules headers \
		> "$B/build.log" 2>&1 || { tail -n 40 "$B/build.log" >&2; die "build failed after $name"; }
	if build_warnings "$B/build.log" | grep -E 'rust/|drivers/gpu/drm/|mm/rmap' >&2; then
		rm -f "$B/rust/kernel.o"
		die "compiler warnings after $name"
	fi
	mkdir -p "$B/kselftest/vsvm" "$B/kselftest/mm"
	case "$name" in
	*selftests-drivers-gpu*)
		make -s -C "$AM/tools/testing/selftests/drivers/gpu/vsvm" \
			KHDR_INCLUDES="-isystem $B/usr/include" OUTPUT="$B/kselftest/vsvm" \
			> "$B/selftests.log" 2>&1 ||
			{ tail -n 20 "$B/selftests.log" >&2; die "vsvm selftests do not build after $name"; } ;;
	*selftests-mm-hmm*)
		make -s -C "$AM/tools/testing/selftests/mm" \
			KHDR_INCLUDES="-isystem $B/usr/include" OUTPUT="$B/kselftest/mm" \
			"$B/kselftest/mm/hmm-tests" > "$B/selftests.log" 2>&1 ||
			{ tail -n 20 "$B/selftests.log" >&2; die "hmm-tests does not build after $name"; } ;;
	esac
	log "$name: applies, builds ($(( $(date +%s) - t )) s)"
done
log "series of $n patches checked in $(( $(date +%s) - start )) s"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds the guest selftests as static binaries against the built kernel's
# UAPI headers (the host's libc headers are older than 7.3) and the kernel
# tree's kselftest harness: the vsvm tests from the project's
# tools/testing/selftests/drivers/gpu/vsvm, and hmm-tests from the prepared
# tree (the series adds its THP cases).  Usage: selftests.sh OUT DEST

. "$(dirname "$0")/lib.sh"

OUT=$1
DEST=$2
VSVM=$TOP/tools/testing/selftests/drivers/gpu/vsvm
MM=$SRC/tools/testing/selftests/mm
mkdir -p "$DEST"
CFLAGS=(-O2 -g0 -static -pthread -Wall -Wextra -Wno-sign-compare -Werror
	-D_GNU_SOURCE= -isystem "$OUT/usr/include" -isystem "$SRC/tools/include/uapi"
	-I "$SRC" -I "$SRC/tools/testing/selftests")

# build BIN SOURCE... : rebuilt when a source, any header it includes (gcc
# -MD lists them) or the UAPI headers changed.
build() {
	local bin=$DEST/$1 stale=0 dep
	shift
	if [ ! -x "$bin" ] || [ "$OUT/usr/include" -nt "$bin" ]; then
		stale=1
	else
		for dep in "$@" $(cat "$bin".d.* 2>/dev/null | sed -e 's/^[^:]*://' -e 's/\\$//'); do
			[ "$dep" -nt "$bin" ] && { stale=1; break; }
		done
	fi
	[ "$stale" = 1 ] || return 0
	rm -f "$bin".d.*
	local objs=() i=0 src
	for src in "$@"; do
		i=$((i + 1))
		gcc "${CFLAGS[@]}" ${EXTRA:-} -MD -MF "$bin.d.$i" -c -o "$bin.o.$i" "$src" ||
			die "cannot build $src"
		objs+=("$bin.o.$i")
	done
	gcc "${CFLAGS[@]}" -o "$bin" "${objs[@]}" -lm || die "cannot link $bin"
	rm -f "${objs[@]}"
}

# Binaries of removed tests go.
for bin in "$DEST"/*; do
	[ -f "$bin" ] && [ -x "$bin" ] || continue
	name=$(basename "$bin")
	[ "$name" = hmm-tests ] || [ -f "$VSVM/$name.c" ] || rm -f "$bin" "$bin".d*
done
for c in "$VSVM"/*.c; do
	build "$(basename "$c" .c)" "$c"
done
# hmm-tests is upstream code: its own warning level (lib.mk's -Wall).
EXTRA="-Wno-extra -Wno-unused-parameter -Wno-missing-field-initializers" \
	build hmm-tests "$MM/hmm-tests.c" "$MM/vm_util.c" "$MM/hugepage_settings.c"

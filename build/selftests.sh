#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds the guest selftests in tests/ as static binaries against the built
# kernel's UAPI headers (the host's libc headers are older than 7.3) and the
# kernel tree's kselftest harness.  Usage: selftests.sh OUT DEST

. "$(dirname "$0")/lib.sh"

OUT=$1
DEST=$2
mkdir -p "$DEST"
CFLAGS=(-O2 -g0 -static -pthread -Wall -Wextra -Wno-sign-compare -Werror
	-isystem "$OUT/usr/include"
	-I "$SRC/tools/testing/selftests" -I "$SRC/lib")
for c in "$TOP"/tests/*.c; do
	[ -f "$c" ] || continue
	bin=$DEST/$(basename "$c" .c)
	if [ ! -x "$bin" ] || [ "$c" -nt "$bin" ] || [ "$OUT/usr/include" -nt "$bin" ]; then
		gcc "${CFLAGS[@]}" -o "$bin" "$c" || die "cannot build $c"
	fi
done

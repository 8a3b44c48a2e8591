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
# A binary is rebuilt when its source, any header it includes (gcc -MD
# lists them) or the UAPI headers changed; binaries of removed tests go.
for bin in "$DEST"/*; do
	[ -f "$bin" ] || continue
	case "$bin" in *.d) continue ;; esac
	[ -f "$TOP/tests/$(basename "$bin").c" ] || rm -f "$bin" "$bin.d"
done
for c in "$TOP"/tests/*.c; do
	[ -f "$c" ] || continue
	bin=$DEST/$(basename "$c" .c)
	stale=0
	if [ ! -x "$bin" ] || [ ! -f "$bin.d" ] || [ "$OUT/usr/include" -nt "$bin" ]; then
		stale=1
	else
		for dep in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$bin.d"); do
			[ "$dep" -nt "$bin" ] && { stale=1; break; }
		done
	fi
	if [ "$stale" = 1 ]; then
		gcc "${CFLAGS[@]}" -MD -MF "$bin.d" -o "$bin" "$c" || die "cannot build $c"
	fi
done

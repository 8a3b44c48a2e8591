#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Writes the upstream series to out/series/ (or the directory given): git format-patch against a
# pristine 7.3 tree, with a cover letter, signed off with your git identity
# (see build/series.py for how patches/ defines it).  The pristine tree is
# a git repository made once in the cache from the Debian source tarball.

. "$(dirname "$0")/lib.sh"

BASE=$CACHE/series/base
tarball=/usr/src/linux-source-$KVER.tar.xz
[ -f "$tarball" ] || die "$tarball missing: run build/setup.sh"
# Made again when the tarball changes (a new Debian upload).
sum=$(sha256sum < "$tarball" | cut -c1-16)
if ! git -C "$BASE" rev-parse -q --verify v7.3-base >/dev/null 2>&1 ||
   [ "$(cat "$BASE/.git/svm-tarball.sum" 2>/dev/null)" != "$sum" ]; then
	log "making a pristine git tree from $tarball (about 2 minutes, once)"
	# The worktrees of the old tree go with it.
	rm -rf "$BASE" "$BASE.tmp" "$CACHE/series/work" "$CACHE/series/am"
	mkdir -p "$BASE.tmp"
	tar -C "$BASE.tmp" -xf "$tarball"
	mv "$BASE.tmp/linux-source-$KVER" "$BASE"
	rmdir "$BASE.tmp"
	# Debian's .gitignore ignores the top level: add everything anyway.
	git -C "$BASE" init -q -b v7.3
	git -C "$BASE" add -A -f
	git -C "$BASE" -c user.name=base -c user.email=base@localhost \
		commit -q -m "Linux $KVER (Debian linux-source-$KVER)"
	git -C "$BASE" tag v7.3-base
	echo "$sum" > "$BASE/.git/svm-tarball.sum"
fi
OUTDIR=${1:-$TOP/out/series}
python3 "$TOP/build/series.py" "$BASE" "$CACHE/series/work" "$OUTDIR"
log "series written to ${OUTDIR#$TOP/}/"

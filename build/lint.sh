#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Style checks for the project's own files: rustfmt (with the kernel's
# .rustfmt.toml), checkpatch --strict on our C files and on every patch of
# the upstream series (made here from patches/), kernel-doc on the UAPI
# headers.  Clippy runs as part of every build (CLIPPY=1), and the build
# fails on warnings in our files.  Needs a prepared tree.

. "$(dirname "$0")/lib.sh"

fail=0
cd "$TOP"
rs=$(git ls-files -co --exclude-standard '*.rs')
if [ -n "$rs" ]; then
	if ! /usr/bin/rustfmt --check --color never --edition 2021 --config-path "$SRC/.rustfmt.toml" $rs; then
		echo "rustfmt: run 'make fmt' to fix the files above" >&2
		fail=1
	fi
fi

CHECKPATCH=("$SRC/scripts/checkpatch.pl" --strict --no-tree --quiet --no-summary --color=never
	    --ignore SPDX_LICENSE_TAG,FILE_PATH_CHANGES)
cfiles=$(git ls-files -co --exclude-standard '*.c' '*.h')
for f in $cfiles; do
	# The selftests follow kselftest conventions (e.g. TEST_F macros read as functions).
	# TRACE_EVENT() layout trips the same checks in upstream's own trace headers.
	case "$f" in
	tools/testing/selftests/* | tests/* | bench/*) extra=(--ignore MACRO_ARG_UNUSED,OPEN_BRACE,TRAILING_SEMICOLON,PREFER_KERNEL_TYPES) ;;
	include/trace/events/*) extra=(--ignore OPEN_ENDED_LINE,PARENTHESIS_ALIGNMENT) ;;
	*) extra=() ;;
	esac
	"${CHECKPATCH[@]}" "${extra[@]}" -f "$f" || fail=1
done
# The series made from patches/ and the overlay (build/series.py), as it
# would be mailed.
SVM_SERIES_CHECK=1 "$TOP/build/patches.sh" "$TOP/out/series-check" >/dev/null || fail=1
for p in out/series-check/*.patch; do
	case "$p" in */0000-cover-letter.patch) continue ;; esac
	# From the tree the series was made in: checkpatch's SPDX check
	# (spdxcheck.py) wants a git tree, and Debian's python3 with python3-ply
	# and python3-git, not another python3 on PATH.
	# checkpatch asks about MAINTAINERS whenever a patch adds a file; a file
	# in a directory that MAINTAINERS already lists (at that patch) needs
	# nothing.  Deleted or renamed files are always asked about.
	ignore=()
	added=$(awk '/^diff --git /{f=$4} /^new file mode/{print substr(f, 3)}' "$p")
	commit=$(sed -n '1s/^From \([0-9a-f]*\) .*/\1/p' "$p")
	if [ -n "$added" ] && ! grep -q -e '^+++ b/MAINTAINERS' -e '^deleted file mode' \
		-e '^rename from' "$p" &&
		maint=$(git -C "$CACHE/series/work" show "$commit:MAINTAINERS") &&
		(for f in $added; do
			grep -qxF "F:	${f%/*}/" <<< "$maint" || exit 1
		done); then
		ignore=(--ignore FILE_PATH_CHANGES)
	fi
	PATH=/usr/bin:$PATH "$CACHE/series/work/scripts/checkpatch.pl" --strict --quiet \
		--no-summary --color=never "${ignore[@]}" "$p" ||
		{ echo "in $p" >&2; fail=1; }
done
# The UAPI headers' documentation is built into Documentation/gpu/vsvm.rst.
for h in $(git ls-files -co --exclude-standard 'include/uapi/*.h'); do
	out=$("$SRC/scripts/kernel-doc" -none -Wall "$h" 2>&1)
	[ -z "$out" ] || { echo "$out" >&2; fail=1; }
done
[ "$fail" -eq 0 ] || die "style checks failed"
log "style checks passed (rustfmt, checkpatch --strict, kernel-doc)"

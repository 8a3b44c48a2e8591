#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Style checks for the project's own files: rustfmt (with the kernel's
# .rustfmt.toml), checkpatch --strict on our C files and on the patches to
# upstream files, kernel-doc on the UAPI headers.  Clippy runs as part of every build (CLIPPY=1), and the
# build fails on warnings in our files.  Needs a prepared tree.

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
	tests/* | bench/*) extra=(--ignore MACRO_ARG_UNUSED,OPEN_BRACE,TRAILING_SEMICOLON,PREFER_KERNEL_TYPES) ;;
	include/trace/events/*) extra=(--ignore OPEN_ENDED_LINE,PARENTHESIS_ALIGNMENT) ;;
	*) extra=() ;;
	esac
	"${CHECKPATCH[@]}" "${extra[@]}" -f "$f" || fail=1
done
for p in patches/*.patch; do
	[ -f "$p" ] || continue
	# Fed on standard input: checkpatch reads a git-tracked file as a new file.
	"$SRC/scripts/checkpatch.pl" --strict --no-tree --quiet --color=never - < "$p" ||
		{ echo "in $p" >&2; fail=1; }
done
# The UAPI headers' documentation is built into Documentation/gpu/vsvm.rst.
for h in $(git ls-files -co --exclude-standard 'include/uapi/*.h'); do
	out=$("$SRC/scripts/kernel-doc" -none -Wall "$h" 2>&1)
	[ -z "$out" ] || { echo "$out" >&2; fail=1; }
done
[ "$fail" -eq 0 ] || die "style checks failed"
log "style checks passed (rustfmt, checkpatch --strict, kernel-doc)"

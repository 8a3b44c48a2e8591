#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Prepares a configured kernel tree: extracts the Debian kernel source into
# the cache (unless KDIR= names a tree), applies the project's patches to
# upstream files, lays the project's own files over the tree at their
# upstream paths, and configures an O= build directory keyed by kernel
# version and config.  Prints the build directory on stdout.
#
# Reruns are cheap: patches are reapplied only when they changed, and
# overlay files are copied only when their contents changed, so make
# rebuilds only what really changed.

. "$(dirname "$0")/lib.sh"

OVERLAY_DIRS=(rust drivers include Documentation tools)
STATE=$SRC/.svm-state
mkdir -p "$CACHE"

# 1. Kernel source.
if [ -z "${KDIR:-}" ] && [ ! -f "$SRC/.svm-extracted" ]; then
	tarball=/usr/src/linux-source-$KVER.tar.xz
	[ -f "$tarball" ] || die "$tarball missing: run build/setup.sh"
	log "extracting $tarball"
	rm -rf "$SRC" "$SRC.tmp"
	mkdir -p "$SRC.tmp"
	tar -C "$SRC.tmp" -xf "$tarball"
	mv "$SRC.tmp/linux-source-$KVER" "$SRC"
	rmdir "$SRC.tmp"
	touch "$SRC/.svm-extracted"
fi
[ -f "$SRC/Makefile" ] || die "$SRC is not a kernel tree"
mkdir -p "$STATE"

# 2. Patches to upstream files: revert the previously applied series if the
# series changed, then apply the new one.  Any rejection is fatal.
new_sum=$(cat "$TOP"/patches/[0-9][0-9][0-9][0-9]-*.patch 2>/dev/null | sha256sum | cut -c1-16)
old_sum=$(cat "$STATE/patches.sum" 2>/dev/null || true)
if [ "$new_sum" != "$old_sum" ]; then
	# Remember each patched file's contents and time, so that a file the new
	# series leaves as it was keeps its time and is not rebuilt.
	: > "$STATE/patched.times"
	for p in "$STATE"/patches/*.patch; do
		[ -f "$p" ] || continue
		sed -n 's#^+++ b/##p' "$p"
	done | sort -u | while read -r f; do
		[ -f "$SRC/$f" ] &&
			echo "$(sha256sum < "$SRC/$f" | cut -c1-64) $(stat -c %Y "$SRC/$f") $f"
	done >> "$STATE/patched.times"
	if [ -d "$STATE/patches" ]; then
		for p in $(ls "$STATE"/patches/*.patch 2>/dev/null | sort -r); do
			log "reverting $(basename "$p")"
			patch -d "$SRC" -p1 -R --batch --silent < "$p" ||
				die "cannot revert $(basename "$p") in $SRC"
		done
		rm -rf "$STATE/patches" "$STATE/patches.sum"
	fi
	mkdir -p "$STATE/patches"
	for p in "$TOP"/patches/[0-9][0-9][0-9][0-9]-*.patch; do
		[ -f "$p" ] || continue
		# A patch that only adds files has no diff (build/series.py).
		grep -q '^+++ ' "$p" || continue
		log "applying $(basename "$p")"
		patch -d "$SRC" -p1 --forward --batch --silent --fuzz=0 < "$p" ||
			die "$(basename "$p") does not apply to $SRC"
		cp "$p" "$STATE/patches/"
	done
	while read -r sum mtime f; do
		[ "$(sha256sum < "$SRC/$f" 2>/dev/null | cut -c1-64)" = "$sum" ] &&
			touch -d "@$mtime" "$SRC/$f"
	done < "$STATE/patched.times"
	echo "$new_sum" > "$STATE/patches.sum"
fi

# 3. Overlay: copy changed files only (checksums, not times), and remove
# files an earlier overlay added that the project no longer has.
(cd "$TOP" && git ls-files -co --exclude-standard -- "${OVERLAY_DIRS[@]}" 2>/dev/null ||
	find "${OVERLAY_DIRS[@]}" -type f 2>/dev/null) | sort > "$STATE/overlay.new"
if [ -f "$STATE/overlay.list" ]; then
	comm -23 "$STATE/overlay.list" "$STATE/overlay.new" | while read -r f; do
		rm -f "$SRC/$f"
	done
fi
(cd "$TOP" && rsync -rc --files-from="$STATE/overlay.new" . "$SRC/")
mv "$STATE/overlay.new" "$STATE/overlay.list"

# 4. Configuration: allnoconfig plus the project's fragments.  The build
# directory is keyed by kernel version and the fragments' contents.
# SVM_PROFILE=bench leaves out the debugging options (lockdep, kmemleak, ...),
# which would dominate any timing, and adds the benchmark-only options.
mapfile -t FRAGMENTS < <(config_fragments "${SVM_PROFILE:-test}")
sum=$( (echo "$KVER $SRC"; cat "${FRAGMENTS[@]}") | sha256sum | cut -c1-12)
OUT=${SVM_OUT:-$CACHE/build-$KVER-$sum}
if [ ! -f "$OUT/.config" ] || [ ! -f "$OUT/.svm-configured" ]; then
	log "configuring $OUT"
	mkdir -p "$OUT"
	cat "${FRAGMENTS[@]}" > "$OUT/svm.config"
	make -s -C "$SRC" O="$OUT" "${KMAKE_VARS[@]}" KCONFIG_ALLCONFIG="$OUT/svm.config" \
		allnoconfig >/dev/null
	missing=()
	while read -r line; do
		case "$line" in
		CONFIG_*=*)
			grep -qx "$line" "$OUT/.config" || missing+=("$line") ;;
		"# CONFIG_"*" is not set")
			opt=${line#\# }; opt=${opt%% *}
			! grep -q "^$opt=" "$OUT/.config" || missing+=("$line") ;;
		esac
	done < "$OUT/svm.config"
	[ ${#missing[@]} -eq 0 ] || die "config options not satisfied: ${missing[*]}"
	touch "$OUT/.svm-configured"
fi
echo "$OUT"

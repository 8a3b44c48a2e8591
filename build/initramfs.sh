#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Packs the guest userspace: busybox-static, the init script and the
# selftest binaries (and the demo), and the vsvm module built out of tree.
# Usage: initramfs.sh OUT TESTDIR OUTPUT.cpio [DEMODIR [BENCHDIR]]

. "$(dirname "$0")/lib.sh"

OUT=$1
TESTS=$2
CPIO=$3
DEMO=${4:-}
BENCH=${5:-}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,tests,modules}
# The module the series builds (in tree); kernel.sh builds it out of tree too.
cp "$OUT/drivers/gpu/drm/vsvm/vsvm.ko" "$root/modules/"
cp /bin/busybox "$root/bin/busybox"
install -m 0755 "$TOP/build/guest-init" "$root/init"
find "$TESTS" -maxdepth 1 -type f ! -name "*.d" -exec cp {} "$root/tests/" \;
if [ -n "$DEMO" ]; then
	mkdir -p "$root/demo"
	cp "$DEMO"/* "$root/demo/"
fi
if [ -n "$BENCH" ]; then
	mkdir -p "$root/bench"
	cp "$BENCH"/* "$root/bench/"
fi
(cd "$root" && find . | sort | cpio -o -H newc --quiet -R 0:0) > "$CPIO.tmp"
mv "$CPIO.tmp" "$CPIO"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Packs the guest userspace: busybox-static, the init script and the
# selftest binaries (and the demo).  Usage: initramfs.sh TESTDIR OUTPUT.cpio [DEMODIR]

. "$(dirname "$0")/lib.sh"

TESTS=$1
CPIO=$2
DEMO=${3:-}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,tests}
cp /bin/busybox "$root/bin/busybox"
install -m 0755 "$TOP/build/guest-init" "$root/init"
cp "$TESTS"/* "$root/tests/" 2>/dev/null || true
if [ -n "$DEMO" ]; then
	mkdir -p "$root/demo"
	cp "$DEMO"/* "$root/demo/"
fi
(cd "$root" && find . | sort | cpio -o -H newc --quiet -R 0:0) > "$CPIO.tmp"
mv "$CPIO.tmp" "$CPIO"

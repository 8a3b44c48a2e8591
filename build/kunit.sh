#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs one KUnit suite the upstream way, with its .kunitconfig:
#   build/kunit.sh rust/kernel/drm/svm
# is kunit.py run --kunitconfig=rust/kernel/drm/svm --arch=x86_64 on the
# prepared tree, in a build directory of its own, with this machine's Rust
# toolchain.  kunit.py asks QEMU for KVM first; nested KVM fails for this
# guest on these machines (see boot.sh), so unless SVM_KVM=1 the run hides
# /dev/kvm in a private mount namespace and QEMU falls back to TCG.

. "$(dirname "$0")/lib.sh"

DIR=${1:?usage: build/kunit.sh DIR-WITH-.kunitconfig}
[ -f "$TOP/$DIR/.kunitconfig" ] || die "no $DIR/.kunitconfig"
"$TOP/build/setup.sh"
"$TOP/build/prepare.sh" >/dev/null
opts=()
for v in "${KMAKE_VARS[@]}"; do
	[ "$v" = CLIPPY=1 ] || opts+=(--make_options "$v")
done
cmd=(python3 tools/testing/kunit/kunit.py run --kunitconfig="$DIR" --arch=x86_64
     --build_dir="$CACHE/kunit-$(echo "$DIR" | tr / _)" --jobs="$JOBS"
     --qemu_args=-smp --qemu_args=2 "${opts[@]}")
cd "$SRC"
if [ "${SVM_KVM:-0}" = 1 ]; then
	exec "${cmd[@]}"
fi
exec unshare -m sh -c 'mount --bind /dev/null /dev/kvm 2>/dev/null; exec "$@"' sh "${cmd[@]}"

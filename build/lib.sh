# SPDX-License-Identifier: GPL-2.0
# Common settings for the svm-atomic build scripts; sourced, not run.

set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KVER=${KVER:-7.3}
CACHE=${SVM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/svm-atomic}
TOOLS=$CACHE/tools
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
export PATH=$TOOLS/bin:$PATH
JOBS=${JOBS:-$(nproc)}

# Where the kernel source lives: the user's tree (KDIR=) or the Debian
# tarball extracted into the cache.
if [ -n "${KDIR:-}" ]; then
	SRC=$(cd "$KDIR" && pwd)
else
	SRC=$CACHE/linux-source-$KVER
fi

# The toolchain: Debian's rustc-web (it ships rust-src, which rustup's rustc
# lacks here), bindgen from the cache, libclang 19 (the kernel needs 17+).
KMAKE_VARS=(CLIPPY=1 RUSTC=/usr/bin/rustc HOSTRUSTC=/usr/bin/rustc
	    RUSTDOC=/usr/bin/rustdoc RUSTFMT=/usr/bin/rustfmt
	    CLIPPY_DRIVER=/usr/bin/clippy-driver BINDGEN="$TOOLS/bin/bindgen")
if command -v ccache >/dev/null; then
	KMAKE_VARS+=(CC="ccache gcc")
fi

log() { printf '>>> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The config fragments of a profile (test or bench), one path per line: the
# benchmark kernel leaves out the checkers (debug.config), which would
# dominate any timing, and the test kernel the benchmark-only options.
config_fragments() {
	local f
	for f in "$TOP"/configs/*.config; do
		case "$1:$(basename "$f")" in
		bench:debug.config | test:bench.config) continue ;;
		esac
		echo "$f"
	done
}

# The compiler warnings in a kernel build log, one per line: C warnings name
# the file on their first line, rustc and clippy on the "-->" line that
# follows.
build_warnings() {
	awk '/^warning: [0-9]+ warnings? emitted/ { w = 0; next }
	     /^warning/ { w = 1; head = $0; next }
	     w && /-->/ { print head " " $0; w = 0 }
	     /: warning:/' "$1"
}

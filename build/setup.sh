#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Installs everything the build and the tests need, idempotently: Debian
# packages (kernel source from the backports suite, Rust 1.96 with rust-src,
# libclang 19, QEMU, busybox) and bindgen from the crate registry.  A second
# run only checks and takes a few seconds.

. "$(dirname "$0")/lib.sh"

BINDGEN_VERSION=0.72.1
PKGS=(rustc-web rust-web-src rust-web-clippy rustfmt-web libclang1-19
      qemu-system-x86 busybox-static flex bison bc cpio libelf-dev libssl-dev
      ccache patch rsync python3 python3-ply python3-git git xz-utils gcc make perl)
# spdxcheck.py (run by checkpatch) needs python3-ply and python3-git.
# `make bench` plots with Debian's matplotlib (for /usr/bin/python3).
[ "${SVM_PROFILE:-test}" = bench ] && PKGS+=(python3-matplotlib)

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

# Derive the Debian mirror from the machine's own apt configuration, so no
# host name is written anywhere in this repository.
apt_mirror() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk '/^URIs:/ { u = $2 }
		     /^Suites:/ { for (i = 2; i <= NF; i++)
				   if ($i !~ /-/) { print u; exit } }' "$f"
	done | head -n1 || true
	grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
		awk '$3 !~ /-/ && $2 !~ /security/ { print $2 }' | head -n1
	return 0
}

need_apt=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		need_apt+=("$p")
done
src_pkg=linux-source-$KVER
if [ -z "${KDIR:-}" ] && ! dpkg-query -W -f='${Status}' "$src_pkg" 2>/dev/null |
	grep -q 'ok installed'; then
	need_apt+=("$src_pkg")
fi

if [ ${#need_apt[@]} -gt 0 ]; then
	list=/etc/apt/sources.list.d/svm-trixie-backports.sources
	if [ ! -f "$list" ]; then
		mirror=$(apt_mirror | head -n1 || true)
		[ -n "$mirror" ] || die "no Debian mirror found in the apt configuration"
		log "adding trixie-backports from $mirror (pinned low)"
		$SUDO tee "$list" >/dev/null <<EOT
Types: deb
URIs: $mirror
Suites: trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
		# Only what we ask for by name comes from this suite.
		$SUDO tee /etc/apt/preferences.d/svm-trixie-backports >/dev/null <<EOT
Package: *
Pin: release n=trixie-backports
Pin-Priority: 50
EOT
	fi
	log "apt-get install ${need_apt[*]}"
	$SUDO apt-get update -qq
	if [[ " ${need_apt[*]} " == *" $src_pkg "* ]] &&
	   ! apt-cache show "$src_pkg" >/dev/null 2>&1; then
		newest=$(apt-cache search --names-only '^linux-source-7\.[0-9]+$' |
			 awk '{ print $1 }' | sort -V | tail -n1)
		die "$src_pkg is no longer in trixie-backports (it carries only the newest kernel source).${newest:+ Found $newest: rerun with KVER=${newest#linux-source-}.} Or point KDIR= at your own $KVER tree."
	fi
	pkgs=()
	for p in "${need_apt[@]}"; do
		[ "$p" = "$src_pkg" ] && p=$p/trixie-backports
		pkgs+=("$p")
	done
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
		--no-install-recommends "${pkgs[@]}" >/dev/null
fi

if [ "$("$TOOLS/bin/bindgen" --version 2>/dev/null)" != "bindgen $BINDGEN_VERSION" ]; then
	# rustup's cargo may not be on PATH in non-interactive shells.
	[ -x "$HOME/.cargo/bin/cargo" ] && PATH=$PATH:$HOME/.cargo/bin
	command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
	log "cargo install bindgen-cli $BINDGEN_VERSION"
	cargo install -q --locked --root "$TOOLS" bindgen-cli --version "$BINDGEN_VERSION"
fi

for t in /usr/bin/rustc /usr/bin/rustfmt /usr/bin/clippy-driver; do
	[ -x "$t" ] || die "$t missing after install"
done
compgen -G "$LIBCLANG_PATH/libclang*.so*" >/dev/null ||
	die "libclang not found in $LIBCLANG_PATH"
log "setup complete"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Formats the project's Rust files with the kernel's rustfmt settings.

. "$(dirname "$0")/lib.sh"

cd "$TOP"
"$TOP/build/prepare.sh" >/dev/null
git ls-files -co --exclude-standard '*.rs' |
	xargs -r /usr/bin/rustfmt --edition 2021 --config-path "$SRC/.rustfmt.toml"

# SPDX-License-Identifier: GPL-2.0
#
# svm-atomic: GPU atomics on process memory for Rust DRM drivers.
#
# The kernel itself is built by build/kernel.sh out of tree (O=) in a cache
# directory; see README.md.  (Kbuild, not this file, is what an out-of-tree
# module build reads.)

.PHONY: all test check patches demo bench setup kernel fmt help

all: test

## test: install, build, check style, boot, run KUnit + selftests
test:
	@build/run-tests.sh

## check: style checks, then the series applied with git am to a pristine tree and built after every patch
check:
	@build/setup.sh
	@build/prepare.sh >/dev/null
	@build/lint.sh
	@build/check-series.sh

## patches: write the upstream series (git format-patch, cover letter) to out/series/
patches:
	@build/setup.sh
	@build/patches.sh

## demo: boot the kernel and run the multi-device atomic contention workload
demo:
	@build/demo.sh

## bench: boot once and run the benchmarks (medians, spreads, ratios)
bench:
	@build/bench.sh

## setup: install the packages and tools
setup:
	@build/setup.sh

## kernel: prepare and build the kernel only
kernel:
	@build/setup.sh
	@build/kernel.sh

## fmt: format the project's Rust files
fmt:
	@build/fmt.sh

help:
	@sed -n 's/^## //p' Makefile

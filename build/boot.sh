#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Boots the kernel under QEMU with the given initramfs and writes the serial
# console to LOG.  TCG with one thread per guest CPU: nested KVM fails on the
# machines this was developed on (an emulation failure on cmpxchg16b with the
# default CPU model, an MSR assertion with -cpu host); SVM_KVM=1 opts in to KVM
# where it works.
# Usage: boot.sh OUT INITRAMFS LOG [extra kernel args]

. "$(dirname "$0")/lib.sh"

OUT=$1
INITRD=$2
LOG=$3
shift 3
CPUS=${SVM_CPUS:-2}
TIMEOUT=${SVM_TIMEOUT:-1800}
clock=()
if [ "${SVM_KVM:-0}" = 1 ]; then
	accel=(-accel kvm -cpu host)
else
	accel=(-accel tcg,thread=multi -cpu max)
	# The minimal guest has no PIT/HPET/ACPI PM timer to calibrate the TSC
	# against, and would fall back to a 4 ms jiffies clock.  Under TCG the
	# guest reads the host's TSC: tell it the host's rate.
	khz=$(awk -F: '/^cpu MHz/ { printf "%d", $2 * 1000; exit }' /proc/cpuinfo)
	[ -n "$khz" ] && clock=(tsc_early_khz="$khz" tsc=reliable)
fi
rc=0
timeout --foreground -k 10 "$TIMEOUT" qemu-system-x86_64 "${accel[@]}" \
	-smp "$CPUS" -m "${SVM_MEM:-1G}" -bios qboot.rom -no-reboot \
	-monitor none -serial stdio -display none \
	-kernel "$OUT/arch/x86/boot/bzImage" -initrd "$INITRD" \
	-append "console=ttyS0 panic=-1 oops=panic loglevel=7 ${clock[*]} $*" \
	< /dev/null > "$LOG" 2>&1 || rc=$?
if [ "$rc" -eq 124 ]; then
	echo "SVM-TIMEOUT after ${TIMEOUT}s" >> "$LOG"
fi
exit 0

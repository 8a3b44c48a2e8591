#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs in the guest (busybox sh) for `make bench`: every figure, variants
# alternated, the vsvm module reloaded where a variant needs other parameters.

B=/bench/svm_bench
load() {
	rmmod vsvm 2>/dev/null
	insmod /modules/vsvm.ko "$@" || echo "BENCH-ERROR insmod $*"
}
run() {
	"$B" "$@" || echo "BENCH-ERROR $*"
}

# The floor and the backend's grants in the kernel, and the CPU's revocation,
# without and with residency; then user space's view.
load devices=2
run floor
load devices=2 residency_us=5000
run floor residency
load devices=2
run grant
run batch
run noise
run sweep
run async

# Notifier strategy: alternate nouveau's per-fault notifiers and long-lived ones.
for rep in 1 2 3 4 5; do
	load devices=2 per_fault_notifiers=1
	run single per-fault
	load devices=2
	run single long-lived
done

# One job sweeping a fresh THP; random single-page faults with and without
# fault-around, alternated.
load devices=2
run fresh
for rep in 1 2 3; do
	load devices=2 fault_around=0
	run scatter single
	load devices=2
	run scatter around
done

# Contention on one page: 1-8 devices, without and with a 5 ms residency,
# alternated, five times.
for rep in 1 2 3 4 5; do
	for policy in 0 5000; do
		load devices=8 residency_us=$policy
		for ndev in 1 2 4 8; do
			run contention $ndev 0 1 "res$policy"
		done
	done
done
# Contention on a shared buffer: 1-8 devices sweeping one THP, alone and with
# two CPU threads sweeping it too, residency on, five times; then once without
# residency, and the one page with CPU threads.
for rep in 1 2 3 4 5; do
	load devices=8 residency_us=5000
	for ndev in 1 2 4 8; do
		run contention $ndev 0 512 res5000
		run contention $ndev 2 512 res5000
	done
done
for policy in 0 5000; do
	load devices=8 residency_us=$policy
	for ndev in 1 2 4 8; do
		run contention $ndev 2 1 "res$policy"
		[ $policy = 0 ] && run contention $ndev 0 512 res0
	done
done
rmmod vsvm
echo "BENCH-DONE"

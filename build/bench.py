#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Summarises the BENCH lines of `make bench`: medians and spreads of each
variant, and the ratios each figure compares.  Writes the raw and summarised
numbers as JSON.  Usage: bench.py RESULTS.csv RESULTS.json"""

import json
import statistics
import sys
from collections import defaultdict


def plot(runs, path):
    """Contention throughput and fairness against the number of GPUs, as SVG."""
    try:
        import matplotlib

        matplotlib.use("svg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("(matplotlib missing: no plot)")
        return False
    series = defaultdict(dict)
    for (fig, name), values in runs.items():
        if not fig.startswith("contention-"):
            continue
        policy, who, pages = name.split(":")
        gpus, cpus = who.split("gpu+")
        key = f"{policy} {cpus}, {pages}"
        series[(fig, key)][int(gpus)] = statistics.median(values)
    fig_, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for (fig, key), points in sorted(series.items()):
        xs = sorted(points)
        if fig == "contention-opss":
            ax1.plot(xs, [points[x] for x in xs], marker="o", label=key)
        elif fig == "contention-fairness":
            ax2.plot(xs, [points[x] for x in xs], marker="o", label=key)
    ax1.set(xlabel="GPUs", ylabel="atomic ops/s (all participants)", xscale="log", yscale="log",
            title="throughput")
    ax2.set(xlabel="GPUs", ylabel="min/max progress", xscale="log", title="fairness")
    for ax in (ax1, ax2):
        ax.set_xticks([1, 2, 4, 8], labels=["1", "2", "4", "8"])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.grid(True, alpha=0.3)
    ax2.legend(fontsize=7, loc="best")
    fig_.suptitle("vsvm contention (res0: no residency, res5000: 5 ms; cpu threads; pages)")
    fig_.tight_layout()
    fig_.savefig(path)
    return True


def main():
    csv_path, json_path = sys.argv[1], sys.argv[2]
    runs = defaultdict(list)
    units = {}
    with open(csv_path) as f:
        for line in f:
            _, fig, variant, value, unit = line.strip().split(",")
            runs[(fig, variant)].append(float(value))
            units[(fig, variant)] = unit

    def med(fig, variant):
        v = runs.get((fig, variant))
        return statistics.median(v) if v else float("nan")

    def spread(fig, variant):
        v = runs.get((fig, variant), [])
        return f"{min(v):.2f}-{max(v):.2f}" if v else "-"

    print("figure                     compared                                  median (spread)               ratio")
    def row(fig, label, a, b, target):
        ma, mb = med(fig, a), med(fig, b)
        ratio = ma / mb if mb else float("nan")
        u = units.get((fig, a), "")
        print(f"{fig:<26} {a} vs {b:<22} {ma:8.2f} ({spread(fig, a)}) vs {mb:8.2f} ({spread(fig, b)}) {u}  {ratio:6.2f}x  (target {target})")

    row("floor", "backend vs bare", "backend", "bare", "<= 1.25")
    row("grant", "vsvm vs C, 4 KiB", "vsvm-4k", "test_hmm-4k", "<= 0.25")
    row("grant", "vsvm vs C, THP", "vsvm-thp", "test_hmm-thp", "<= 0.25")
    row("notifiers", "per-fault vs long-lived", "per-fault", "long-lived", ">= 2")
    row("batching", "512 x 1 page vs 1 x 512", "512x1", "1x512", ">= 3")
    phases = [(v, med("profile", v)) for (fig, v) in runs if fig == "profile"]
    if phases:
        total = sum(t for _, t in phases)
        print("profile of a single-page backend fault (us per page): " +
              ", ".join(f"{v.removesuffix('_ns_per_page')} {t:.2f} ({100 * t / total:.0f}%)"
                        for v, t in phases))
    print(f"{'noise':<26} retries per fault on P while P+1 ping-pongs: "
          f"{med('noise', 'retries-per-fault'):.4f} (target ~0)")
    print()
    print("contention (0.4 s per run; res0 = no residency policy, res5000 = 5 ms)")
    print(f"{'variant':<30} {'ops/s':>10} {'min/max':>8} {'retries/op':>11} {'revoked/op':>11}")
    names = sorted({v for (fig, v) in runs if fig == "contention-opss"},
                   key=lambda n: (n.split(":")[0], int(n.split(":")[1].split("gpu")[0]), n))
    for n in names:
        print(f"{n:<30} {med('contention-opss', n):10.0f} {med('contention-fairness', n):8.2f} "
              f"{med('contention-retries', n):11.4f} {med('contention-revocations', n):11.4f}")

    svg = json_path.rsplit(".", 1)[0] + ".svg"
    if plot(runs, svg):
        print(f"plot: {svg}")

    out = {f"{fig}/{variant}": {"unit": units[(fig, variant)], "values": v,
                                 "median": statistics.median(v)}
           for (fig, variant), v in runs.items()}
    with open(json_path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"\nraw numbers: {csv_path}, {json_path}")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Summarises the BENCH lines of `make bench`: medians and spreads of each
variant, every target with its measured ratio and whether it is met, the
scaling sweep, and an SVG plot.  Writes the raw numbers as JSON and the
results page as Markdown.  Usage: bench.py RESULTS.csv RESULTS.json RESULTS.md"""

import datetime
import json
import statistics
import sys
from collections import defaultdict

SIZES = [1, 8, 64, 512, 4096]


class Runs:
    def __init__(self, path):
        self.values = defaultdict(list)
        self.units = {}
        with open(path) as f:
            for line in f:
                _, fig, variant, value, unit = line.strip().split(",")
                self.values[(fig, variant)].append(float(value))
                self.units[(fig, variant)] = unit

    def get(self, fig, variant):
        return self.values.get((fig, variant), [])

    def med(self, fig, variant):
        v = self.get(fig, variant)
        return statistics.median(v) if v else float("nan")

    def spread(self, fig, variant):
        v = self.get(fig, variant)
        return f"{min(v):.2f}-{max(v):.2f}" if v else "-"

    def cell(self, fig, variant):
        """Median (spread, runs) of a variant, for the tables."""
        return f"{self.med(fig, variant):.2f} ({self.spread(fig, variant)}, n={len(self.get(fig, variant))})"


def targets(r):
    """(figure, measured, how it is computed, target text, met) for every target."""
    rows = []

    def ratio(fig, a, b, what, op, limit):
        va, vb = r.get(fig, a), r.get(fig, b)
        if va and len(va) == len(vb) and all(vb):
            # The i-th runs of both variants come from the same repetition, back to back:
            # the median of their ratios does not move with the host's speed between
            # repetitions, as a ratio of medians would.
            value = statistics.median(x / y for x, y in zip(va, vb))
        else:
            mb = r.med(fig, b)
            value = r.med(fig, a) / mb if mb else float("nan")
        met = value <= limit if op == "<=" else value >= limit
        unit = r.units.get((fig, a), "")
        rows.append((what, value, f"{r.cell(fig, a)} / {r.cell(fig, b)} {unit}", f"{op} {limit}",
                     met))

    ratio("floor", "backend", "floor", "single-page atomic_fault / correct floor", "<=", 1.25)
    ratio("floor", "backend_batch", "floor_batch",
          "512-page batch / correct floor (batch), per page", "<=", 1.15)
    for kind in ("4k", "thp"):
        for order in ("vsvm-first", "hmm-first"):
            ratio("grant", f"vsvm:{kind}:{order}", f"test_hmm:{kind}:{order}",
                  f"vsvm / test_hmm EXCLUSIVE, {kind}, {order}", "<=", 0.33)
    noise = r.get("noise", "retries-per-fault")
    worst = max(noise) if noise else float("nan")
    rows.append(("retries per fault on P while P+1 ping-pongs", worst,
                 f"worst of {len(noise)} runs; neighbours did "
                 f"{r.med('noise', 'neighbour-gpu-ops'):.0f} GPU and "
                 f"{r.med('noise', 'neighbour-cpu-ops'):.0f} CPU ops per run (median)",
                 "<= 0.01", worst <= 0.01))
    for n in (2, 4, 8):
        runs = r.get("contention-fairness", f"res5000:{n}gpu+0cpu:1pages")
        worst = min(runs) if runs else float("nan")
        rows.append((f"{n} devices on one page, min/max progress (residency on)", worst,
                     f"worst of {len(runs)} runs: " + ", ".join(f"{v:.2f}" for v in runs),
                     ">= 0.5 every run", bool(runs) and worst >= 0.5))
    ratio("contention-opss", "res5000:8gpu+0cpu:1pages", "res0:8gpu+0cpu:1pages",
          "8 devices on one page, throughput with residency / without", ">=", 2.0)
    ratio("revoke-residency", "backend", "bare",
          "CPU store to a device-held page: revocation / bare restore (residency on)", "<=", 1.2)
    ratio("fresh", "sweep", "prefetch",
          "one job sweeping a fresh THP, one op per page: per page / 512-page PREFETCH", "<=", 1.3)
    ratio("scatter", "around", "single",
          "random single-page faults, one per chunk: fault-around on / off, per fault", "<=", 1.1)
    alone = "res5000:1gpu+0cpu:512pages"
    for n in (2, 4, 8):
        name = f"res5000:{n}gpu+0cpu:512pages"
        ratio("contention-opss", name, alone,
              f"{n} devices sweeping one THP: aggregate / one device alone", ">=", 0.5)
        runs = r.get("contention-fairness", name)
        worst = min(runs) if runs else float("nan")
        rows.append((f"{n} devices sweeping one THP, min/max progress", worst,
                     f"worst of {len(runs)} runs: " + ", ".join(f"{v:.2f}" for v in runs),
                     ">= 0.5 every run", bool(runs) and worst >= 0.5))
    for n in (1, 2, 4, 8):
        name = f"res5000:{n}gpu+2cpu:512pages"
        slow, solo = r.get("contention-slowest", name), r.get("contention-opss", alone)
        runs = [s / a for s, a in zip(slow, solo) if a]
        worst = min(runs) if runs else float("nan")
        rows.append((f"{n} devices and 2 CPU threads sweeping one THP: slowest device / one "
                     "device alone", worst,
                     f"worst of {len(runs)} runs: " + ", ".join(f"{v:.2f}" for v in runs) +
                     f"; devices {r.med('contention-opss', name):.0f} ops/s, CPU threads "
                     f"{r.med('contention-cpu', name):.0f} ops/s (medians)",
                     ">= 0.1 every run", bool(runs) and worst >= 0.1))
    return rows


def plot(r, path):
    """Per-page cost against batch size, and contention against devices, as SVG."""
    try:
        import matplotlib

        matplotlib.use("svg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("(matplotlib missing: no plot)")
        return False
    fig_, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(16, 4.5))
    for kind in ("4k", "thp"):
        for what, style in (("backend_batch", "-"), ("floor_batch", "--")):
            xs = [n for n in SIZES if r.get("sweep", f"{kind}:{what}:{n}")]
            ax0.plot(xs, [r.med("sweep", f"{kind}:{what}:{n}") for n in xs], style, marker="o",
                     label=f"{what.split('_')[0]}, {kind}")
    ax0.set(xlabel="pages per fault", ylabel="us per page", xscale="log",
            title="grant cost per page")
    ax0.legend(fontsize=7)
    series = defaultdict(dict)
    for (fig, name), values in r.values.items():
        if fig not in ("contention-opss", "contention-fairness"):
            continue
        policy, who, pages = name.split(":")
        gpus, cpus = who.split("gpu+")
        series[(fig, f"{policy} {cpus}, {pages}")][int(gpus)] = statistics.median(values)
    for (fig, key), points in sorted(series.items()):
        xs = sorted(points)
        ax = {"contention-opss": ax1, "contention-fairness": ax2}.get(fig)
        if ax:
            ax.plot(xs, [points[x] for x in xs], marker="o", label=key)
    ax1.set(xlabel="GPUs", ylabel="device atomic ops/s", xscale="log",
            yscale="log", title="contention throughput")
    ax2.set(xlabel="GPUs", ylabel="min/max progress", xscale="log", title="fairness")
    for ax in (ax1, ax2):
        ax.set_xticks([1, 2, 4, 8], labels=["1", "2", "4", "8"])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    for ax in (ax0, ax1, ax2):
        ax.grid(True, alpha=0.3)
    ax2.legend(fontsize=7, loc="best")
    fig_.tight_layout()
    fig_.savefig(path)
    return True


def report(r):
    """The results page, as Markdown lines."""
    out = []
    out.append("Measured: the median of the ratios of each repetition, whose variants ran back to "
               "back (the medians of each variant, their spread and number of runs follow).")
    out.append("")
    out.append("| target | measured | from (median (spread, runs)) | target | met |")
    out.append("|---|---|---|---|---|")
    for what, value, how, target, met in targets(r):
        out.append(f"| {what} | {value:.3f} | {how} | {target} | {'met' if met else 'NOT met'} |")
    out.append("")
    out.append("In-kernel grant cost, us per page (512 pages of 4 KiB; `bare`: no notifier, no "
               "device page table, not a correct driver):")
    out.append("")
    out.append("| loop | us/page |")
    out.append("|---|---|")
    for v in ("bare", "floor", "floor_batch", "backend", "backend_batch"):
        out.append(f"| {v} | {r.cell('floor', v)} |")
    out.append("")
    out.append("CPU touch of a page the device holds, us per page: "
               f"through the backend's revocation {r.cell('revoke', 'backend')}, "
               f"restoring a bare exclusive entry (no notifier) {r.cell('revoke', 'bare')}, "
               f"ratio {r.med('revoke', 'backend') / r.med('revoke', 'bare'):.2f}.")
    out.append("")
    out.append("test_hmm copies each page twice besides granting it; without that copy "
               "(timed alone in user space and subtracted, an estimate): " +
               ", ".join(f"{k} {o} {r.med('grant', f'test_hmm-nocopy:{k}:{o}'):.2f} us/page "
                         f"(vsvm/that {r.med('grant', f'vsvm:{k}:{o}') / r.med('grant', f'test_hmm-nocopy:{k}:{o}'):.2f})"
                         for k in ("4k", "thp") for o in ("vsvm-first", "hmm-first")) + ".")
    out.append("")
    if r.get("batching", "512x1"):
        out.append("512 single-page faults / one 512-page batch (THP), no longer a target: "
                   f"{r.med('batching', '512x1') / r.med('batching', '1x512'):.2f} "
                   f"({r.cell('batching', '512x1')} vs {r.cell('batching', '1x512')} us/page).")
        out.append("")
    out.append("Per-fault notifiers (nouveau) / long-lived ones, 512 single-page faults: "
               f"{r.med('notifiers', 'per-fault') / r.med('notifiers', 'long-lived'):.2f}x "
               f"({r.cell('notifiers', 'per-fault')} vs {r.cell('notifiers', 'long-lived')} us).")
    out.append("")
    phases = [(v, r.med("profile", v)) for (fig, v) in r.values if fig == "profile"]
    if phases:
        total = sum(t for _, t in phases)
        out.append("Profile of a single-page backend fault (us per page), from the drm_svm:svm_phase "
                   "tracepoint (each phase also holds the cost of recording its event: the phases add "
                   f"up to {total:.2f} us, against {r.med('floor', 'backend'):.2f} untraced): " +
                   ", ".join(f"{v} {t:.2f} ({100 * t / total:.0f}%)" for v, t in phases) + ".")
        out.append("")
    if r.get("async", "atomic"):
        q = r.med("async", "query")
        out.append("The asynchronous path, us per operation on a granted page (each job runs on an "
                   "engine, a kernel worker: submission, engine and completion): " +
                   ", ".join(f"{v} {r.cell('async', v)} ({r.med('async', v) / q:.1f}x QUERY)"
                             for v in ("atomic", "submit256", "range256")) +
                   f"; QUERY, the ioctl alone, {r.cell('async', 'query')}.")
        out.append("")
    if r.get("async", "fault-by-worker"):
        w, i = r.med("async", "fault-by-worker"), r.med("async", "fault-in-ioctl")
        out.append("A grant through the fault worker (ATOMIC on a page the device does not hold: "
                   "the engine faults, the worker grants, the job replays) against the same grant "
                   "by PREFETCH in the ioctl's task followed by the same ATOMIC, us per page: "
                   f"{r.cell('async', 'fault-by-worker')} vs {r.cell('async', 'fault-in-ioctl')}, "
                   f"ratio {w / i:.2f}.")
        out.append("")
    out.append("Scaling: per page, backend batch / correct floor batch:")
    out.append("")
    out.append("| pages | " + " | ".join(f"{k} backend | {k} floor | {k} ratio" for k in ("4k", "thp")) + " |")
    out.append("|---|" + "---|" * 6)
    for n in SIZES:
        cells = []
        for k in ("4k", "thp"):
            b, f = r.med("sweep", f"{k}:backend_batch:{n}"), r.med("sweep", f"{k}:floor_batch:{n}")
            cells += [f"{b:.2f}", f"{f:.2f}", f"{b / f:.2f}"]
        out.append(f"| {n} | " + " | ".join(cells) + " |")
    out.append("")
    out.append("Contention (0.4 s per run on one page, 2 s on 512; res0 = no residency policy, res5000 = 5 ms; medians). "
               "Each device runs jobs, as a GPU runs kernels: on one page, 256 operations on it "
               "per job; on 512 pages, one pass over the buffer per job, one operation per page. "
               "CPU threads do one atomic at a time. ops/s and min/max are the devices' "
               "(the CPU threads' rate is its own column). A job whose access kept faulting "
               "for 2 s gives up with EBUSY (the last column, summed over the runs; its "
               "operations are not counted, and the sum check allows for them):")
    out.append("")
    out.append("| variant | device ops/s | per device | slowest device | min/max | CPU ops/s | "
               "retries/op | revoked/op | granted/op | jobs that gave up |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    names = sorted({v for (fig, v) in r.values if fig == "contention-opss"},
                   key=lambda n: (n.split(":")[0], n.split(":")[2], n.split(":")[1].split("gpu")[1],
                                  int(n.split(":")[1].split("gpu")[0])))
    for n in names:
        gpus = int(n.split(":")[1].split("gpu")[0])
        ops = r.med("contention-opss", n)
        out.append(f"| {n} | {ops:.0f} | {ops / gpus:.0f} | {r.med('contention-slowest', n):.0f} | "
                   f"{r.med('contention-fairness', n):.2f} | {r.med('contention-cpu', n):.0f} | "
                   f"{r.med('contention-retries', n):.4f} | {r.med('contention-revocations', n):.4f} | "
                   f"{r.med('contention-grants', n):.4f} | "
                   f"{sum(r.get('contention-gave-up', n)):.0f} |")
    return out


def main():
    csv_path, json_path, md_path = sys.argv[1], sys.argv[2], sys.argv[3]
    r = Runs(csv_path)
    lines = report(r)
    print("\n".join(lines))
    svg = json_path.rsplit(".", 1)[0] + ".svg"
    if plot(r, svg):
        print(f"\nplot: {svg}")
    with open(md_path, "w") as f:
        f.write("# svm-atomic benchmark results\n\n")
        f.write(f"Generated by `make bench` on {datetime.date.today().isoformat()} "
                "(one boot of the benchmark kernel, TCG, 2 vCPUs; ratios are measured side "
                "by side in that boot; absolute times move 10-20% between runs).\n\n")
        f.write("\n".join(lines) + "\n")
    out = {f"{fig}/{variant}": {"unit": r.units[(fig, variant)], "values": v,
                                 "median": statistics.median(v)}
           for (fig, variant), v in r.values.items()}
    with open(json_path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"\nraw numbers: {csv_path}, {json_path}; results page: {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

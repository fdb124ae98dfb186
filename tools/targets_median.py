#!/usr/bin/env python3
"""The issue-6 DRAM targets against the median of every copy probe of one run.

Usage: tools/targets_median.py out/s9/final
Reads the run's dram-*.csv (normbench sweep --csv) and every *.json of the run
(start and end copy probes at 2 threads), and prints the targets table with two
fractions: against the row's own set probe (the better of its start and end,
as `compare_table.py --targets`) and against the median of all probes.

With the run's bandwidth.csv (`normbench bandwidth --kernels read,copy,nt-copy,nt-triad`,
written by tools/perf-sets.sh right after the BatchNorm DRAM set) it also prints
the two-pass ceiling of BatchNorm NHWC: every row holds every channel, so no
output can be written before the whole tensor is reduced, and x (and dy) come
from DRAM twice once the tensor is past the cache. For S bytes per tensor:
  forward:  S / read + 2S / nt-copy        (statistics pass, then read x, write y)
  backward: 2S / read + 3S / nt-triad      (sums over x and dy, then read both, write dx)
"""
import csv, glob, json, os, statistics, sys

TARGETS = {"forward-training": 0.85, "backward": 0.80}

def main():
    run = sys.argv[1]
    probes = []
    for path in sorted(glob.glob(os.path.join(run, "*.json"))):
        bw = json.load(open(path)).get("copy_bandwidth_gbps", {})
        for when in ("start", "end"):
            if "2" in bw.get(when, {}):
                probes.append(bw[when]["2"])
    median = statistics.median(probes)
    print(f"copy probes at 2 threads: {len(probes)}, {min(probes):.1f}–{max(probes):.1f} GB/s, median {median:.1f}")
    print()
    print("| op | direction | layout | shape | median ms | GB/s | × own probe | × run median | target | reached (own / median) |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---|")
    for path in sorted(glob.glob(os.path.join(run, "dram-*.csv"))):
        if path.endswith(".torch.csv"):
            continue
        for r in csv.DictReader(open(path)):
            target = TARGETS.get(r["direction"])
            if target is None or r["threads"] != "2":
                continue
            gbps, own = float(r["gbps"]), float(r["fraction_of_copy"])
            byMedian = gbps / median
            shape = f"{r['N']}x{r['C']}x{r['H']}x{r['W']}" + (f" G{r['G']}" if r["G"] not in ("", "-") else "")
            verdict = f"{'yes' if own >= target else 'no'} / {'yes' if byMedian >= target else 'no'}"
            print(f"| {r['op']} | {r['direction']} | {r['layout']} | {shape} | {float(r['median_ms']):.2f} | {gbps:.1f} | "
                  f"{own:.2f} | {byMedian:.2f} | {target:.2f} | {verdict} |")
    two_pass_ceiling(run, median)

def bandwidth_probes(run):
    """The run's bandwidth.csv at 2 threads ({kernel: GB/s}), or None."""
    path = os.path.join(run, "bandwidth.csv")
    if not os.path.exists(path):
        return None
    probe = {r["kernel"]: float(r["gbps"]) for r in csv.DictReader(open(path)) if r["threads"] == "2"}
    return probe if all(k in probe for k in ("read", "copy", "nt-copy", "nt-triad")) else None

def ceiling_ms(r, probe):
    """Two-pass ceiling of a sweep row (BatchNorm NHWC), in ms, from the probes."""
    counted = float(r["bytes"])
    if r["direction"] == "forward-training":
        s = counted / 2
        ns = s / probe["read"] + 2 * s / probe["nt-copy"]
    else:
        s = counted / 3
        ns = 2 * s / probe["read"] + 3 * s / probe["nt-triad"]
    return ns / 1e6                          # bytes / (GB/s) = ns

def two_pass_ceiling(run, median):
    probe = bandwidth_probes(run)
    if probe is None:
        return
    print()
    print(f"two-pass ceiling (BatchNorm NHWC), probes at 2 threads: read {probe['read']:.1f}, copy {probe['copy']:.1f}, "
          f"nt-copy {probe['nt-copy']:.1f}, nt-triad {probe['nt-triad']:.1f} GB/s")
    print()
    print("| direction | shape | median ms | ceiling ms | ceiling ms / median ms | ceiling × copy (bandwidth.csv) | ceiling × run median | target |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in csv.DictReader(open(os.path.join(run, "dram-batchnorm.csv"))):
        if r["layout"] != "nhwc" or r["threads"] != "2" or r["direction"] not in TARGETS:
            continue
        c = ceiling_ms(r, probe)
        gbps = float(r["bytes"]) / c / 1e6
        shape = f"{r['N']}x{r['C']}x{r['H']}x{r['W']}"
        print(f"| {r['direction']} | {shape} | {float(r['median_ms']):.2f} | {c:.2f} | "
              f"{c / float(r['median_ms']):.2f} | {gbps / probe['copy']:.2f} | {gbps / median:.2f} | "
              f"{TARGETS[r['direction']]:.2f} |")

if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The issue-6 DRAM targets against the median of every copy probe of one run.

Usage: tools/targets_median.py out/s9/final
Reads the run's dram-*.csv (normbench sweep --csv) and every *.json of the run
(start and end copy probes at 2 threads), and prints the targets table with two
fractions: against the row's own set probe (the better of its start and end,
as `compare_table.py --targets`) and against the median of all probes.
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

if __name__ == "__main__":
    main()

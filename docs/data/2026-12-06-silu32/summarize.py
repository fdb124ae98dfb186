#!/usr/bin/env python3
"""Paired A/B table: per case, base and new medians (median over rounds) and the
median of the per-round ratios new/base (< 1: new faster). usage: summarize.py DIR"""
import csv, glob, statistics, sys, re
d = sys.argv[1]
runs = {}
for f in glob.glob(f"{d}/*-*.csv"):
    m = re.match(r".*/(base|new)-(\d+)\.csv$", f)
    if not m: continue
    for row in csv.DictReader(open(f)):
        key = (row["op"], row["dtype"], row["direction"], row["layout"], f'{row["N"]}x{row["C"]}x{row["H"]}x{row["W"]}', row["threads"])
        runs.setdefault(key, {}).setdefault(m.group(2), {})[m.group(1)] = float(row["median_ms"])
print("| op | dtype | dir | layout | shape | t | base ms | new ms | new/base (median of rounds) | rounds |")
print("|---|---|---|---|---|---:|---:|---:|---:|---|")
for key in sorted(runs):
    rounds = [v for v in runs[key].values() if "base" in v and "new" in v]
    ratios = [v["new"] / v["base"] for v in rounds]
    b = statistics.median(v["base"] for v in rounds); n = statistics.median(v["new"] for v in rounds)
    print(f"| {' | '.join(key)} | {b:.3f} | {n:.3f} | {statistics.median(ratios):.2f} | {' / '.join(f'{r:.2f}' for r in ratios)} |")

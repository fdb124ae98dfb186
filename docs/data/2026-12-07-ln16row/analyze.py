#!/usr/bin/env python3
"""(copied from 2026-12-06-ln16) Medians of base/new per case and the median of per-round ratios (base ms / new ms; > 1: new faster)."""
import csv, glob, statistics, sys, os
d = sys.argv[1]
def load(tag):
    rounds = []
    for f in sorted(glob.glob(os.path.join(d, f"{tag}-r*.csv")), key=lambda p: int(p.rsplit("-r", 1)[1][:-4])):
        rows = {}
        for r in csv.DictReader(open(f)):
            rows[(r["dtype"], f'{r["N"]}x{r["C"]}', int(r["threads"]))] = float(r["median_ms"])
        rounds.append(rows)
    return rounds
base, new = load("base"), load("new")
print(f"| dtype | shape | threads | base ms (median) | new ms (median) | speedup (median of {len(base)} round ratios) | min / max round ratio |")
print("|---|---|---:|---:|---:|---:|---|")
for k in sorted(base[0], key=lambda k: (k[0], k[1], k[2])):
    b = [r[k] for r in base]; n = [r[k] for r in new]
    ratios = [x / y for x, y in zip(b, n)]
    print(f"| {k[0]} | {k[1]} | {k[2]} | {statistics.median(b):.3f} | {statistics.median(n):.3f} | "
          f"{statistics.median(ratios):.3f}× | {min(ratios):.2f} / {max(ratios):.2f} |")

#!/usr/bin/env python3
"""Median of the per-round ratios (base ms / new ms) pooled over the A/B folders given, and how many rounds > 1."""
import csv, glob, statistics, sys, os
ratios = {}
for d in sys.argv[1:]:
    for f in glob.glob(os.path.join(d, "base-r*.csv")):
        nf = f.replace("base-r", "new-r")
        b = {(r["dtype"], f'{r["N"]}x{r["C"]}', int(r["threads"])): float(r["median_ms"]) for r in csv.DictReader(open(f))}
        n = {(r["dtype"], f'{r["N"]}x{r["C"]}', int(r["threads"])): float(r["median_ms"]) for r in csv.DictReader(open(nf))}
        for k in b: ratios.setdefault(k, []).append(b[k] / n[k])
print(f"| dtype | shape | threads | rounds | median round ratio | rounds > 1 | quartiles |")
print("|---|---|---:|---:|---:|---:|---|")
for k in sorted(ratios):
    r = sorted(ratios[k]); q = statistics.quantiles(r, n=4)
    print(f"| {k[0]} | {k[1]} | {k[2]} | {len(r)} | {statistics.median(r):.3f}× | {sum(x > 1 for x in r)} | {q[0]:.2f} / {q[2]:.2f} |")

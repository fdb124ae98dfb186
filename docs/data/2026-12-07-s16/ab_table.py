#!/usr/bin/env python3
"""base-rN.csv / new-rN.csv (normbench sweep CSVs) -> median ms of each and the median of per-round base/new ratios (> 1: new faster)."""
import csv, glob, os, statistics, sys
folder = sys.argv[1]
def load(kind):
    rounds = []
    for path in sorted(glob.glob(os.path.join(folder, f"{kind}-r*.csv"))):
        with open(path) as f:
            rounds.append({(r["op"], r["direction"], r["layout"], f'{r["N"]}x{r["C"]}x{r["H"]}x{r["W"]}', r["dtype"], r["threads"]):
                           float(r["median_ms"]) for r in csv.DictReader(f)})
    return rounds
base, new = load("base"), load("new")
print("| op | direction | layout | shape | dtype | t | base ms | new ms | base ÷ new (per-round median, min–max) |")
print("|---|---|---|---|---|---:|---:|---:|---|")
for key in base[0]:
    b = [r[key] for r in base if key in r]; n = [r[key] for r in new if key in r]
    ratios = [x / y for x, y in zip(b, n)]
    print(f"| {' | '.join(key[:5])} | {key[5]} | {statistics.median(b):.3f} | {statistics.median(n):.3f} | "
          f"**{statistics.median(ratios):.2f}** ({min(ratios):.2f}–{max(ratios):.2f}) |")

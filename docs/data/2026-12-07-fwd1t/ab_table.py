#!/usr/bin/env python3
"""base-rN-*.csv / new-rN-*.csv (normbench sweep CSVs) -> median ms of each and the median of per-round base/new ratios (> 1: new faster)."""
import csv, glob, os, re, statistics, sys, collections
folder = sys.argv[1]
def load(kind):
    rounds = collections.defaultdict(dict)
    for path in glob.glob(os.path.join(folder, f"{kind}-r*-*.csv")):
        rnd = int(re.search(r"-r(\d+)-", os.path.basename(path)).group(1))
        for r in csv.DictReader(open(path)):
            key = (r["op"], r["direction"], r["layout"], f'{r["N"]}x{r["C"]}x{r["H"]}x{r["W"]}', r["threads"])
            rounds[rnd][key] = float(r["median_ms"])
    return [rounds[k] for k in sorted(rounds)]
base, new = load("base"), load("new")
print("| op | direction | layout | shape | t | base ms | new ms | base ÷ new (per-round median, min–max) |")
print("|---|---|---|---|---:|---:|---:|---|")
for key in sorted(base[0], key=lambda k: (k[1], k[0], k[2], k[4])):
    b = [r[key] for r in base if key in r]; n = [r[key] for r in new if key in r]
    ratios = [x / y for x, y in zip(b, n)]
    print(f"| {' | '.join(key[:4])} | {key[4]} | {statistics.median(b):.3f} | {statistics.median(n):.3f} | "
          f"**{statistics.median(ratios):.2f}** ({min(ratios):.2f}–{max(ratios):.2f}) |")

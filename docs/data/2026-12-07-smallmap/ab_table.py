#!/usr/bin/env python3
"""Median ms per case of base and new over the rounds of ab.sh, and the median of per-round ratios base/new."""
import csv, glob, os, statistics, sys
out = sys.argv[1]
key = ("op", "direction", "layout", "N", "C", "H", "W", "threads")
data = {}
for path in glob.glob(os.path.join(out, "*-r*.csv")):
    tag, rest = os.path.basename(path).split("-", 1)
    rnd = rest.rsplit("-r", 1)[1][:-4]
    for row in csv.DictReader(open(path)):
        data.setdefault(tuple(row[k] for k in key), {}).setdefault(rnd, {})[tag] = (float(row["median_ms"]), row["checked"])
print("| op | direction | shape | t | base ms | new ms | base/new (median of rounds) | rounds | checked |")
print("|---|---|---|---:|---:|---:|---:|---:|---|")
for k in sorted(data):
    rounds = data[k]
    both = [v for v in rounds.values() if "base" in v and "new" in v]
    b = statistics.median(v["base"][0] for v in both); n = statistics.median(v["new"][0] for v in both)
    ratio = statistics.median(v["base"][0] / v["new"][0] for v in both)
    ok = ",".join(sorted({v["new"][1] for v in both}))
    print(f"| {k[0]} | {k[1]} | {k[3]}x{k[4]}x{k[5]}x{k[6]} {k[2]} | {k[7]} | {b:.4f} | {n:.4f} | {ratio:.2f}× | {len(both)} | {ok} |")

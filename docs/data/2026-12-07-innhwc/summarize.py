#!/usr/bin/env python3
# usage: summarize.py OUTDIR A B   -> medians over rounds, ratio A/B (> 1: B faster), per-round ratios
import csv, glob, os, statistics, sys
from collections import defaultdict
out, A, B = sys.argv[1], sys.argv[2], sys.argv[3]
times = defaultdict(lambda: defaultdict(dict))
for f in sorted(glob.glob(os.path.join(out, "*.csv"))):
    name = os.path.basename(f)[:-4]
    v, r = name.rsplit("-", 1)
    for row in csv.DictReader(open(f)):
        if row["checked"] != "ok" or not row["median_ms"]: continue
        key = (row["op"], row["direction"], row["layout"], f'{row["N"]}x{row["C"]}x{row["H"]}x{row["W"]}', row["G"], row["threads"])
        times[key][v][int(r)] = float(row["median_ms"])
print(f"| op | layout | shape | G | threads | {A} ms | {B} ms | {A}/{B} (median of per-round ratios) | per-round {A}/{B} |")
print("|---|---|---|---|---:|---:|---:|---:|---|")
for key in sorted(times):
    a, b = times[key][A], times[key][B]
    rounds = sorted(set(a) & set(b))
    if not rounds: continue
    ratios = [a[r] / b[r] for r in rounds]
    print(f"| {key[0]} | {key[2]} | {key[3]} | {key[4]} | {key[5]} | {statistics.median(a.values()):.3f} | {statistics.median(b.values()):.3f} | **{statistics.median(ratios):.3f}** | {' '.join(f'{x:.2f}' for x in ratios)} |")

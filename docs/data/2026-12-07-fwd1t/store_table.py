#!/usr/bin/env python3
"""never-*/always-* CSVs -> per case: median ms of each kind, median of per-round never/always (> 1: streaming faster), x+y / 32 MiB."""
import csv, glob, os, statistics, sys, collections
folder = sys.argv[1]; l3 = 32 * 2**20
data = collections.defaultdict(lambda: collections.defaultdict(dict))
for path in glob.glob(os.path.join(folder, "*-r*.csv")):
    kind, _, rnd = os.path.basename(path)[:-4].split("-")
    for r in csv.DictReader(open(path)):
        key = (r["op"], r["layout"], f'{r["N"]}x{r["C"]}x{r["H"]}x{r["W"]}', r["threads"])
        n = int(r["N"]) * int(r["C"]) * int(r["H"]) * int(r["W"])
        data[key][rnd][kind] = float(r["median_ms"]); data[key]["elements"] = n
print("| op | layout | shape | t | x+y ÷ L3 | cached ms | streaming ms | cached ÷ streaming time (per-round median, min–max) |")
print("|---|---|---|---:|---:|---:|---:|---|")
for key in sorted(data, key=lambda k: (k[0], k[1], k[3], data[k]["elements"])):
    d = data[key]; rounds = [v for k, v in d.items() if k != "elements" and "never" in v and "always" in v]
    ratios = [v["never"] / v["always"] for v in rounds]
    print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {8 * d['elements'] / l3:.2f} | "
          f"{statistics.median(v['never'] for v in rounds):.3f} | {statistics.median(v['always'] for v in rounds):.3f} | "
          f"**{statistics.median(ratios):.2f}** ({min(ratios):.2f}–{max(ratios):.2f}) |")

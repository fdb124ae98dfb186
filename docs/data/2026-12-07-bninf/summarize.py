#!/usr/bin/env python3
"""Medians of base/new per case over the rounds of measure.sh, and the median of per-round
ratios (base ms / new ms: > 1 means the branch is faster). Writes OUT/ab.csv."""
import csv, glob, re, statistics, sys
out = sys.argv[1]
rows = {}
for path in glob.glob(f"{out}/*-r*.csv"):
    v, r = re.match(r".*/(base|new)-\w+-r(\d+)\.csv", path).groups()
    for row in csv.DictReader(open(path)):
        key = (row["op"], row["direction"], f'{row["N"]}x{row["C"]}x{row["H"]}x{row["W"]}', row["threads"], row["dtype"])
        rows.setdefault(key, {}).setdefault(v, {})[int(r)] = (float(row["median_ms"]), row["checked"])
w = csv.writer(open(f"{out}/ab.csv", "w"))
w.writerow(["op", "direction", "shape", "threads", "dtype", "rounds", "base_median_ms", "new_median_ms",
            "median_round_ratio", "checked"])
print(f"{'op':10} {'direction':18} {'shape':14} thr dtype  base ms   new ms  ratio(base/new)  checked")
for key in sorted(rows):
    d = rows[key]
    common = sorted(set(d.get("base", {})) & set(d.get("new", {})))
    if not common:
        continue
    b = statistics.median(d["base"][r][0] for r in common)
    n = statistics.median(d["new"][r][0] for r in common)
    ratio = statistics.median(d["base"][r][0] / d["new"][r][0] for r in common)
    checks = ",".join(sorted({d[v][r][1] for v in ("base", "new") for r in common}))
    w.writerow(list(key) + [len(common), f"{b:.4f}", f"{n:.4f}", f"{ratio:.3f}", checks])
    print(f"{key[0]:10} {key[1]:18} {key[2]:14} {key[3]:>3} {key[4]:5} {b:8.4f} {n:8.4f} {ratio:8.3f}         {checks}")

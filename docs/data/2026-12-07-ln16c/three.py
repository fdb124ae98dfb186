#!/usr/bin/env python3
"""Three-binary table: per case the median ms of base, v1, v2, and the medians of per-round ratios base/v1, base/v2."""
import csv, glob, statistics, sys, os
d = sys.argv[1]
def load(tag):
    out = {}
    for f in glob.glob(os.path.join(d, f"{tag}-r*.csv")):
        r_ = int(f.rsplit("-r", 1)[1][:-4])
        out[r_] = {(r["op"], r["dtype"], f'{r["N"]}x{r["C"]}', int(r["threads"])): float(r["median_ms"]) for r in csv.DictReader(open(f))}
    return out
b, v1, v2 = load("base"), load("v1"), load("v2")
rounds = sorted(b)
med = statistics.median
print(f"| op | dtype | shape | t | base ms | v1 ms | v2 ms | base/v1 | base/v2 | v1 ÷ f32 | v2 ÷ f32 |  ({len(rounds)} rounds)")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for k in sorted(b[rounds[0]]):
    f = (k[0], "f32", k[2], k[3])
    rel = lambda s: "" if k[1] == "f32" else f"{med([s[r][k] / s[r][f] for r in rounds]):.2f}"
    print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {med([b[r][k] for r in rounds]):.3f} | {med([v1[r][k] for r in rounds]):.3f} | "
          f"{med([v2[r][k] for r in rounds]):.3f} | {med([b[r][k] / v1[r][k] for r in rounds]):.3f} | "
          f"{med([b[r][k] / v2[r][k] for r in rounds]):.3f} | {rel(v1)} | {rel(v2)} |")

#!/usr/bin/env python3
"""Distance table: median ms of d4, d8, d16 per case, and the medians of the per-round ratios d8/d4 and d8/d16
(> 1: the other distance faster than 8 KiB)."""
import csv, glob, os, statistics, sys
d = sys.argv[1]; med = statistics.median
def load(tag):
    out = {}
    for f in glob.glob(os.path.join(d, f"{tag}-r*.csv")):
        r_ = int(f.rsplit("-r", 1)[1][:-4])
        for r in csv.DictReader(open(f)):
            out.setdefault((r["op"], r["dtype"], f'{r["N"]}x{r["C"]}', int(r["threads"])), {})[r_] = float(r["median_ms"])
    return out
d4, d8, d16 = load("d4"), load("d8"), load("d16")
print("| op | dtype | shape | t | 4 KiB ms | 8 KiB ms | 16 KiB ms | 8 KiB ÷ 4 KiB | 8 KiB ÷ 16 KiB |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|")
for k in sorted(d8):
    rs = sorted(d8[k])
    a = med([d8[k][r] / d4[k][r] for r in rs]); b = med([d8[k][r] / d16[k][r] for r in rs])
    print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {med(d4[k].values()):.3f} | {med(d8[k].values()):.3f} | "
          f"{med(d16[k].values()):.3f} | {a:.3f} | {b:.3f} |")

#!/usr/bin/env python3
"""A/B table: medians of base/new per case, the median of per-round ratios (base ms / new ms; > 1: new faster),
and each 16-bit case's time ÷ Float32's time (median of per-round ratios): base ÷ base f32 → new ÷ new f32,
and new ÷ base f32 (main's Float32)."""
import csv, glob, statistics, sys, os
d = sys.argv[1]
def load(tag):
    rounds = []
    for f in sorted(glob.glob(os.path.join(d, f"{tag}-r*.csv")), key=lambda p: int(p.rsplit("-r", 1)[1][:-4])):
        rows = {}
        for r in csv.DictReader(open(f)):
            rows[(r["op"], r["dtype"], f'{r["N"]}x{r["C"]}', int(r["threads"]))] = float(r["median_ms"])
        rounds.append(rows)
    return rounds
base, new = load("base"), load("new")
med = statistics.median
print(f"| op | dtype | shape | threads | base ms | new ms | new speedup (median of {len(base)} round ratios) | min / max | 16-bit ÷ f32 base → new | new ÷ main f32 |")
print("|---|---|---|---:|---:|---:|---:|---|---|---:|")
for k in sorted(base[0]):
    b = [r[k] for r in base]; n = [r[k] for r in new]
    ratios = [x / y for x, y in zip(b, n)]
    rel = rm = ""
    if k[1] != "f32":
        f = (k[0], "f32", k[2], k[3])
        rb = med([r[k] / r[f] for r in base]); rn = med([r[k] / r[f] for r in new])
        rel = f"{rb:.2f} → {rn:.2f}"
        rm = f"{med([r[k] / q[f] for r, q in zip(new, base)]):.2f}"
    print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {med(b):.3f} | {med(n):.3f} | {med(ratios):.3f}× | "
          f"{min(ratios):.2f} / {max(ratios):.2f} | {rel} | {rm} |")

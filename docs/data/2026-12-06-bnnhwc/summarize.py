#!/usr/bin/env python3
"""Medians of base/new per case over the rounds of measure.sh, and the median of
per-round ratios (base ms / new ms: > 1 means the branch is faster); paired
fractions of copy from the DRAM rounds' text output. Writes ab.csv."""
import csv, glob, re, statistics, sys, os
out = sys.argv[1]
rows = {}
for path in glob.glob(f"{out}/*-r*.csv"):
    v, r = re.match(r".*/(base|new)-\w+-r(\d+)\.csv", path).groups()
    for row in csv.DictReader(open(path)):
        key = (row["op"], row["direction"], row["layout"], f'{row["N"]}x{row["C"]}x{row["H"]}x{row["W"]}', row["threads"], row["dtype"])
        rows.setdefault(key, {}).setdefault(v, {})[int(r)] = (float(row["median_ms"]), row["checked"])
paired = {}
for path in glob.glob(f"{out}/*-dram-r*.txt"):
    v, r = re.match(r".*/(base|new)-dram-r(\d+)\.txt", path).groups()
    for line in open(path):
        m = re.match(r"paired with copy: (\S+) (\S+) (\S+) (\S+) t(\d+): ([\d.]+)", line)
        if m:
            paired.setdefault((m.group(4), m.group(5)), {}).setdefault(v, []).append(float(m.group(6)))
w = csv.writer(open(f"{out}/ab.csv", "w"))
w.writerow(["shape", "threads", "dtype", "rounds", "base_median_ms", "new_median_ms", "median_round_ratio",
            "base_paired_copy", "new_paired_copy", "checked"])
print(f"{'shape':16} thr  base ms   new ms  ratio(base/new)  paired base/new  checked")
for key in sorted(rows):
    d = rows[key]
    common = sorted(set(d.get("base", {})) & set(d.get("new", {})))
    if not common:
        continue
    b = statistics.median(d["base"][r][0] for r in common)
    n = statistics.median(d["new"][r][0] for r in common)
    ratio = statistics.median(d["base"][r][0] / d["new"][r][0] for r in common)
    checks = ",".join(sorted({d[v][r][1] for v in ("base", "new") for r in common}))
    p = paired.get((key[3], key[4]), {})
    pb = statistics.median(p["base"]) if p.get("base") else ""
    pn = statistics.median(p["new"]) if p.get("new") else ""
    w.writerow([key[3], key[4], key[5], len(common), f"{b:.3f}", f"{n:.3f}", f"{ratio:.3f}", pb, pn, checks])
    print(f"{key[3]:16} {key[4]:>3} {b:8.3f} {n:8.3f} {ratio:8.3f}        {pb!s:>5} / {pn!s:<5}  {checks}")

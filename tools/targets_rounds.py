#!/usr/bin/env python3
"""The issue-6 DRAM targets over several rounds of the DRAM sets.

Usage:
  for r in 1 2 3; do SETS=dram-batchnorm,dram-layernorm,dram-groupnorm,dram-instancenorm \\
      BUDGET_MS=200 tools/perf-sets.sh out/rounds/r$r 2; done
  python3 tools/targets_rounds.py out/rounds/r*

The copy probe of this VM is bimodal (the same command reads ~45 or ~85 GB/s
from one minute to the next), so one run's fraction of copy can move by 1.7×.
Each round's fraction uses that round's own set probe (the better of its start
and end, as the sweep does), and, where the sets ran with `--paired-copy` (as
perf-sets.sh runs the DRAM sets), the paired fraction: copy-probe passes and the
case's repetitions alternated, median of the pairs' ratios. The table gives
every round and their median, and,
where the rounds have bandwidth.csv, BatchNorm NHWC's two-pass ceiling
(tools/targets_median.py) the same way.
"""
import csv, os, statistics, sys

from targets_median import TARGETS, bandwidth_probes, ceiling_ms   # tools/ is the script's directory

def rows(run):
    out = {}
    for name in sorted(os.listdir(run)):
        if not (name.startswith("dram-") and name.endswith(".csv")) or name.endswith(".torch.csv"):
            continue
        for r in csv.DictReader(open(os.path.join(run, name))):
            if r["direction"] in TARGETS and r["threads"] == "2":
                shape = f"{r['N']}x{r['C']}x{r['H']}x{r['W']}" + (f" G{r['G']}" if r["G"] not in ("", "-") else "")
                out[(r["op"], r["direction"], r["layout"], shape)] = r
    return out

def ceiling(run, r):
    """BatchNorm NHWC's two-pass ceiling for row r: (× copy, ceiling time / ours)."""
    probe = bandwidth_probes(run)
    if r["op"] != "batchnorm" or r["layout"] != "nhwc" or probe is None:
        return None
    c = ceiling_ms(r, probe)
    return float(r["bytes"]) / c / 1e6 / probe["copy"], c / float(r["median_ms"])

def main():
    runs = sys.argv[1:]
    per = [rows(run) for run in runs]
    keys = sorted(set().union(*per))
    print(f"rounds: {len(runs)} ({', '.join(os.path.basename(r) for r in runs)})")
    print()
    print("| op | direction | layout | shape | × copy, each round (paired where measured) | median | target | reached (median) | rounds reaching | two-pass ceiling × copy (median) | ceiling time / ours (median) |")
    print("|---|---|---|---|---|---:|---:|---|---:|---:|---:|")
    for k in keys:
        paired = all(k not in p or p[k].get("paired_fraction") for p in per)
        column = "paired_fraction" if paired else "fraction_of_copy"
        fractions = [float(p[k][column]) for p in per if k in p]
        ceilings = [c for run, p in zip(runs, per) if k in p for c in [ceiling(run, p[k])] if c is not None]
        med, target = statistics.median(fractions), TARGETS[k[1]]
        reached = sum(f >= target for f in fractions)
        print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {' / '.join(f'{f:.2f}' for f in fractions)} | {med:.2f} | "
              f"{target:.2f} | {'yes' if med >= target else 'no'} | {reached} of {len(fractions)} | "
              f"{statistics.median(c[0] for c in ceilings):.2f} | {statistics.median(c[1] for c in ceilings):.2f} |" if ceilings else
              f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {' / '.join(f'{f:.2f}' for f in fractions)} | {med:.2f} | "
              f"{target:.2f} | {'yes' if med >= target else 'no'} | {reached} of {len(fractions)} | – | – |")

if __name__ == "__main__":
    main()

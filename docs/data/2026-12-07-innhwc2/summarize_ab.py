#!/usr/bin/env python3
"""Median ms per case of base and new over the rounds of ab.sh, and the median of per-round ratios."""
import csv, glob, statistics, re, collections, sys
d = collections.defaultdict(lambda: collections.defaultdict(dict))
for f in glob.glob(sys.argv[1] + '/r*-*.csv'):
    r, tool = re.match(r'r(\d+)-(base|new)-', f.split('/')[-1]).groups()
    for row in csv.DictReader(open(f)):
        case = f"{row['op']} {row['direction']} {row['layout']} {row['N']}x{row['C']}x{row['H']}x{row['W']} t{row['threads']}"
        d[case][tool][int(r)] = float(row['median_ms'])
print("| case | base ms | new ms | base/new (median of rounds) | rounds new faster |")
print("|---|---:|---:|---:|---:|")
for case in sorted(d):
    b, n = d[case]['base'], d[case]['new']
    rounds = sorted(set(b) & set(n))
    ratios = [b[r] / n[r] for r in rounds]
    print(f"| {case} | {statistics.median(b.values()):.3f} | {statistics.median(n.values()):.3f} | "
          f"{statistics.median(ratios):.3f}× | {sum(x > 1 for x in ratios)}/{len(ratios)} |")

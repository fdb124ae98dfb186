#!/usr/bin/env python3
"""Median of per-round base/new ratios of measure.sh's CSVs. Usage: summarize.py <folder>"""
import csv, glob, os, statistics as st, sys, collections
d = collections.defaultdict(lambda: collections.defaultdict(dict))
for f in glob.glob(os.path.join(sys.argv[1], '*-r*.csv')):
    w, _, r = os.path.basename(f)[:-4].split('-'); r = int(r[1:])
    for row in csv.DictReader(open(f)):
        key = (row['op'], row['direction'], f"{row['N']}x{row['C']}x{row['H']}x{row['W']}", row['threads'])
        d[key][r][w] = float(row['median_ms'])
print("| op | direction | shape | t | base ms | new ms | base/new (median of rounds) | min / max |")
print("|---|---|---|---:|---:|---:|---:|---|")
for key in sorted(d):
    rs = d[key]; ratios = [rs[r]['base'] / rs[r]['new'] for r in rs if len(rs[r]) == 2]
    b = st.median(rs[r]['base'] for r in rs); n = st.median(rs[r]['new'] for r in rs)
    print(f"| {' | '.join(key)} | {b:.3f} | {n:.3f} | {st.median(ratios):.2f} | {min(ratios):.2f} / {max(ratios):.2f} |")

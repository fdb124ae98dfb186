#!/usr/bin/env python3
"""Streaming against cached dx on one binary: median time per case over the rounds and the
median of the per-round ratios default ÷ always (> 1: streaming faster), with the bytes the
pass moves (x + dy + dx) as a fraction of a 32 MiB L3.
Usage: python3 summarize.py <folder with {gn,bn,ln}-{default,always}-r*.csv>"""
import csv, glob, statistics as st, collections, sys
folder = sys.argv[1]
def load(pat):
    d = collections.defaultdict(list)
    for f in sorted(glob.glob(f"{folder}/{pat}")):
        for r in csv.DictReader(open(f)):
            k = (r['op'], r['direction'], r['layout'], f"{r['N']}x{r['C']}x{r['H']}x{r['W']}", r['threads'], int(r['bytes']))
            d[k].append(float(r['median_ms']))
    return d
print("| op | direction | layout | shape | threads | MB moved | × L3 | default ms | always ms | default ÷ always (rounds) |")
print("|---|---|---|---|---:|---:|---:|---:|---:|---|")
for op in ['gn', 'bn', 'ln']:
    D, A = load(f'{op}-default-r*.csv'), load(f'{op}-always-r*.csv')
    for k in D:
        rs = [d / a for d, a in zip(D[k], A[k])]
        print(f"| {' | '.join(k[:5])} | {k[5]/1e6:.0f} | {k[5]/(32<<20):.2f} | {st.median(D[k]):.3f} | {st.median(A[k]):.3f} | "
              f"**{st.median(rs):.2f}** ({' '.join(f'{x:.2f}' for x in rs)}) |")

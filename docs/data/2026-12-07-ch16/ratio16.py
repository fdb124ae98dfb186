#!/usr/bin/env python3
"""16-bit ÷ Float32 time per side from the same rounds of a tools/ab.py folder (median over rounds, min–max)."""
import csv, glob, os, sys, statistics, collections
folder = sys.argv[1]
t = collections.defaultdict(dict)  # (side, round, shape, threads) -> dtype -> median ms
for f in glob.glob(os.path.join(folder, '*-r*-*.csv')):
    side, r, _ = os.path.basename(f)[:-4].split('-')
    for row in csv.DictReader(open(f)):
        if row['op'] != 'batchnorm' or row['direction'] != 'forward-training':
            continue
        shape = f"{row['N']}x{row['C']}x{row['H']}x{row['W']}"
        t[(side, r, shape, row['threads'])][row['dtype']] = float(row['median_ms'])
out = collections.defaultdict(list)
for (side, r, shape, th), d in t.items():
    for dt in ('bf16', 'f16'):
        if dt in d and 'f32' in d:
            out[(shape, th, dt, side)].append(d[dt] / d['f32'])
print('| shape | t | dtype | side | 16-bit ÷ f32 (median of rounds, min–max) |')
print('|---|---:|---|---|---|')
for k in sorted(out):
    v = out[k]
    print(f'| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {statistics.median(v):.2f} ({min(v):.2f}–{max(v):.2f}) |')

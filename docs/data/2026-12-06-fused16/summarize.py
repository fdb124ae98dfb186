#!/usr/bin/env python3
"""Base against new (measure.sh): the best median ms of the alternating rounds per case."""
import csv, glob, sys, os, collections
d = sys.argv[1] if len(sys.argv) > 1 else '.'
best = collections.defaultdict(dict); checked = {}
for f in sorted(glob.glob(os.path.join(d, '*-r[0-9].csv'))):
    name = os.path.basename(f); which = 'base' if '-base-' in name else 'new'
    for r in csv.DictReader(open(f)):
        k = (r['op'], r['dtype'], r['direction'], r['layout'], f"{r['N']}x{r['C']}x{r['H']}x{r['W']}", r['threads'])
        m = float(r['median_ms'])
        best[k][which] = min(best[k].get(which, 1e9), m)
        if r['checked'] != 'ok': checked[k] = r['checked']
print('| op | dtype | direction | layout | shape | t | base ms | new ms | base ÷ new |')
print('|---|---|---|---|---|---:|---:|---:|---:|')
for k in sorted(best):
    b, n = best[k].get('base'), best[k].get('new')
    if b is None or n is None: continue
    print(f"| {' | '.join(k)} | {b:.3f} | {n:.3f} | {b/n:.2f} |")
print(f"\nchecked not ok: {len(checked)} {sorted(checked.items())[:5]}")

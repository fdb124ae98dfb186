#!/usr/bin/env python3
"""Paired A/B of the prefetch distance in nk_hw_shifted_sums (experiment.patch: NK_PF_DIST, bytes;
-k = k rows of 2n bytes; 0 = no prefetch). Eight alternating rounds, medians of the paired ratios."""
import csv, collections, statistics, os
d = os.path.dirname(os.path.abspath(__file__))
runs = collections.defaultdict(list)
W = ['0', '4096', '-1', '-2']
for r in range(1, 9):
    for s in W:
        for row in csv.DictReader(open(os.path.join(d, f'pf6-{s}-{r}.csv'))):
            runs[(f"{row['N']}x{row['C']}", row['threads'], s)].append(float(row['median_ms']))
print('| shape | t | no prefetch ms | 4096 B ms | × | 1 row ms | × | 2 rows ms | × |')
print('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
for k in sorted({k[:2] for k in runs}, key=lambda k: (int(k[0].split('x')[0]) * int(k[0].split('x')[1]), k[1])):
    a = runs[k + ('0',)]
    cells = [f"{statistics.median(a):.3f}"]
    for s in W[1:]:
        b = runs[k + (s,)]
        cells += [f"{statistics.median(b):.3f}", f"{statistics.median([x / y for x, y in zip(a, b)]):.2f}"]
    print(f"| {k[0]} | {k[1]} | " + ' | '.join(cells) + ' |')

#!/usr/bin/env python3
"""Table of raw/*.csv from measure.sh: per op, direction, threads, dtype the median over rounds of base and new
median_ms, the median of per-round new/base ratios, and 16-bit time / Float32 time (same binary, same round,
median over rounds)."""
import csv, glob, os, re, statistics, sys
d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), 'raw')
ms = {}  # (which, op, direction, t, dtype, round) -> ms
for f in glob.glob(os.path.join(d, '*.csv')):
    which, _, t, r = re.match(r'(base|new)-(\w+)-t(\d)-r(\d+)\.csv', os.path.basename(f)).groups()
    for row in csv.DictReader(open(f)):
        ms[(which, row['op'], row['direction'], int(t), row['dtype'], int(r))] = float(row['median_ms'])
        if row['checked'] != 'ok': print('CHECK', f, row['op'], row['dtype'], row['checked'], file=sys.stderr)
rounds = sorted({k[5] for k in ms})
print(f'rounds: {rounds}\n')
print('| op | direction | t | dtype | base ms | new ms | new/base (median of rounds) | base /f32 | new /f32 |')
print('|---|---|---|---|---|---|---|---|---|')
for op in ['batchnorm', 'groupnorm', 'instancenorm']:
  for dr in ['forward-training', 'backward']:
    for t in [1, 2]:
        for dt in ['f32', 'bf16', 'f16']:
            key = lambda w, r, dt=dt: (w, op, dr, t, dt, r)
            b = [ms[key('base', r)] for r in rounds if key('base', r) in ms]
            n = [ms[key('new', r)] for r in rounds if key('new', r) in ms]
            if not b or not n: continue
            ratio = statistics.median(ms[key('new', r)] / ms[key('base', r)] for r in rounds
                                      if key('new', r) in ms and key('base', r) in ms)
            def vs32(w):
                v = [ms[key(w, r)] / ms[key(w, r, 'f32')] for r in rounds if key(w, r) in ms and key(w, r, 'f32') in ms]
                return f'{statistics.median(v):.2f}' if dt != 'f32' else ''
            print(f'| {op} | {dr} | {t} | {dt} | {statistics.median(b):.2f} | {statistics.median(n):.2f} | '
                  f'{ratio:.3f} ({len(b)}/{len(n)}) | {vs32("base")} | {vs32("new")} |')

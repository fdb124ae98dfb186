#!/usr/bin/env python3
"""Table of raw/*.csv from measure.sh: per op, threads, dtype the median over rounds of base and new
median_ms, the median of per-round new/base ratios, and 16-bit time / Float32 time (same binary, same round,
median over rounds)."""
import csv, glob, os, re, statistics, sys
# The raw folder: the first argument (col16hw's runs: ../2026-12-07-col16hw/raw), else raw/ beside this file.
d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), 'raw')
ms = {}  # (which, op, t, dtype, round) -> ms
for f in glob.glob(os.path.join(d, '*.csv')):
    which, _, t, r = re.match(r'(base|new)-(\w+)-t(\d)-r(\d+)\.csv', os.path.basename(f)).groups()
    for row in csv.DictReader(open(f)):
        if row['direction'] != 'backward' or row['layout'] != 'nhwc': continue
        ms[(which, row['op'], int(t), row['dtype'], int(r))] = float(row['median_ms'])
        if row['checked'] != 'ok': print('CHECK', f, row['op'], row['dtype'], row['checked'], file=sys.stderr)
rounds = sorted({k[4] for k in ms})
print(f'rounds: {rounds}\n')
print('| op | t | dtype | base ms | new ms | new/base (median of rounds) | base /f32 | new /f32 |')
print('|---|---|---|---|---|---|---|---|')
for op in ['batchnorm', 'instancenorm', 'groupnorm']:
    for t in [1, 2]:
        for dt in ['f32', 'bf16', 'f16']:
            b = [ms[('base', op, t, dt, r)] for r in rounds if ('base', op, t, dt, r) in ms]
            n = [ms[('new', op, t, dt, r)] for r in rounds if ('new', op, t, dt, r) in ms]
            if not b or not n: continue
            ratio = statistics.median(ms[('new', op, t, dt, r)] / ms[('base', op, t, dt, r)] for r in rounds
                                      if ('new', op, t, dt, r) in ms and ('base', op, t, dt, r) in ms)
            def vs32(w):
                v = [ms[(w, op, t, dt, r)] / ms[(w, op, t, 'f32', r)] for r in rounds
                     if (w, op, t, dt, r) in ms and (w, op, t, 'f32', r) in ms]
                return f'{statistics.median(v):.2f}' if dt != 'f32' else ''
            print(f'| {op} | {t} | {dt} | {statistics.median(b):.2f} | {statistics.median(n):.2f} | '
                  f'{ratio:.3f} ({len(b)}/{len(n)} rounds) | {vs32("base")} | {vs32("new")} |')

#!/usr/bin/env python3
"""Table of raw/*.csv from measure.sh: per shape, direction, threads, dtype the median over rounds of each
binary's median_ms, the median of per-round variant/base ratios, and 16-bit time / Float32 time (same binary,
same round, median over rounds)."""
import csv, glob, os, re, statistics, sys
d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), 'raw')
ms = {}  # (which, shape, direction, t, dtype, round) -> ms
for f in glob.glob(os.path.join(d, '*.csv')):
    which, _, t, r = re.match(r'(\w+)-(\w+)-t(\d+)-r(\d+)\.csv', os.path.basename(f)).groups()
    for row in csv.DictReader(open(f)):
        if not row['median_ms']: continue
        shape = f"{row['N']}x{row['C']}x{row['H']}x{row['W']}"
        ms[(which, shape, row['direction'], int(t), row['dtype'], int(r))] = float(row['median_ms'])
        if row['checked'] != 'ok': print('CHECK', f, row['op'], row['dtype'], row['checked'], file=sys.stderr)
rounds = sorted({k[5] for k in ms})
variants = [w for w in ['new', 'nodx', 'nopf', 'cached'] if any(k[0] == w for k in ms)]
print(f'rounds: {rounds}\n')
head = '| shape | direction | t | dtype | base ms | ' + ' | '.join(f'{v} ms | {v}/base' for v in variants) + \
       ' | base /f32 | ' + ' | '.join(f'{v} /f32' for v in variants) + ' |'
print(head)
print('|' + '---|' * (head.count('|') - 1))
med = statistics.median
for shape in sorted({k[1] for k in ms}, key=lambda s: -int(s.split('x')[1]) * 0 + int(s.split('x')[0]) * -1):
  for dr in ['forward-training', 'backward']:
    for t in [1, 2]:
        for dt in ['f32', 'bf16', 'f16']:
            key = lambda w, r, dt=dt: (w, shape, dr, t, dt, r)
            b = [ms[key('base', r)] for r in rounds if key('base', r) in ms]
            if not b: continue
            cells = [shape, dr, str(t), dt, f'{med(b):.2f}']
            for v in variants:
                n = [ms[key(v, r)] for r in rounds if key(v, r) in ms]
                ratios = [ms[key(v, r)] / ms[key('base', r)] for r in rounds if key(v, r) in ms and key('base', r) in ms]
                cells += [f'{med(n):.2f}' if n else '', f'{med(ratios):.3f} ({len(ratios)})' if ratios else '']
            def vs32(w):
                v = [ms[key(w, r)] / ms[key(w, r, 'f32')] for r in rounds if key(w, r) in ms and key(w, r, 'f32') in ms]
                return f'{med(v):.2f}' if dt != 'f32' and v else ''
            cells += [vs32('base')] + [vs32(v) for v in variants]
            print('| ' + ' | '.join(cells) + ' |')

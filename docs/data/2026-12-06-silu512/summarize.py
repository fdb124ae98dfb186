# Medians over rounds per case (ms) of measure.sh's CSVs; fused ÷ plain per binary.
import csv, glob, os, sys, statistics as st
out = sys.argv[1]
data = {}
for f in glob.glob(os.path.join(out, '*-*.csv')):
    which = os.path.basename(f).split('-')[0]
    for r in csv.DictReader(open(f)):
        if not r['median_ms']: continue
        key = (r['op'], r['direction'], r['layout'], f"{r['N']}x{r['C']}x{r['H']}x{r['W']}", r['threads'], r['dtype'])
        data.setdefault((which, key), []).append(float(r['median_ms']))
        if r['checked'] != 'ok': print('CHECK', which, key, r['checked'])
med = {k: st.median(v) for k, v in data.items()}
keys = sorted({k for (_, k) in med if k[0] == 'groupnorm-silu'}, key=lambda k: (k[1] != 'forward-training', k[3], k[2], k[4]))
print('| case | plain base | fused base | fused ÷ plain base | plain new | fused new | fused ÷ plain new | fused base ÷ new |')
print('|---|---|---|---|---|---|---|---|')
for k in keys:
    op, d, l, s, t, dt = k
    pk = ('groupnorm',) + k[1:]
    fb, fn, pb, pn = med.get(('base', k)), med.get(('new', k)), med.get(('base', pk)), med.get(('new', pk))
    if None in (fb, fn, pb, pn): continue
    dname = 'fwd' if d == 'forward-training' else 'bwd'
    print(f"| {dt} {dname} {l} `[{s.replace('x', ',')}]` {t}t | {pb:.3f} | {fb:.3f} | {fb/pb:.2f} | {pn:.3f} | {fn:.3f} | {fn/pn:.2f} | {fb/fn:.2f} |")
print()
print('rounds per case:', sorted({len(v) for v in data.values()}))

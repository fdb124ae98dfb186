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
keys = sorted({k for (_, k) in med})
print('| case | base ms | new ms | base/new | fused/plain base → new | unfused/fused base → new |')
print('|---|---|---|---|---|---|')
for k in keys:
    op, d, l, s, t, dt = k
    if op != 'groupnorm-silu': continue
    b, n = med.get(('base', k)), med.get(('new', k))
    if b is None or n is None: continue
    pk = ('groupnorm',) + k[1:]; uk = ('groupnorm-then-silu',) + k[1:]
    pb, pn = med.get(('base', pk)), med.get(('new', pk))
    ub, un = med.get(('base', uk)), med.get(('new', uk))
    fp = f"{b/pb:.2f} → {n/pn:.2f}" if pb and pn else '-'
    uf = f"{ub/b:.2f} → {un/n:.2f}" if ub and un else '-'
    print(f"| {dt} {d} {l} {s} {t}t | {b:.3f} | {n:.3f} | {b/n:.2f} | {fp} | {uf} |")
print()
print('plain groupnorm base/new (should be ~1):')
for k in keys:
    if k[0] != 'groupnorm': continue
    b, n = med.get(('base', k)), med.get(('new', k))
    if b and n: print(' ', k, f"{b:.3f} {n:.3f} {b/n:.2f}")
print('rounds:', {w: len(v) for (w, k), v in list(data.items())[:2]})

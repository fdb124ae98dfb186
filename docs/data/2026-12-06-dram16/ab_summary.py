# A/B table: per (op, layout, threads, dtype) median ms base/new over rounds, median of per-round ratios new/base,
# and 16-bit/f32 time ratios (each binary's own f32 in the same run).
import csv, glob, statistics, sys, collections, re
d = collections.defaultdict(dict)   # (variant, op, layout, t, dtype) -> {round: (ms, paired)}
for f in glob.glob(sys.argv[1] + "/*.csv"):
    m = re.match(r".*/(base|new)-(\w+)-t(\d+)-r(\d+)\.csv", f)
    v, _, t, r = m.groups()
    for row in csv.DictReader(open(f)):
        d[(v, row['op'], row['layout'], t, row['dtype'])][int(r)] = (float(row['median_ms']), float(row['paired_fraction']))
print("| op | layout | t | dtype | base ms | new ms | new/base (median of rounds) | base ×copy | new ×copy | base 16/f32 | new 16/f32 |")
print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
keys = sorted({k[1:] for k in d})
for k in keys:
    b, n = d[('base',) + k], d[('new',) + k]
    rounds = sorted(set(b) & set(n))
    bm = statistics.median(b[r][0] for r in rounds); nm = statistics.median(n[r][0] for r in rounds)
    ratio = statistics.median(n[r][0] / b[r][0] for r in rounds)
    bp = statistics.median(b[r][1] for r in rounds); np_ = statistics.median(n[r][1] for r in rounds)
    if k[3] == 'f32':
        rb = rn = ''
    else:
        fb, fn = d[('base',) + k[:3] + ('f32',)], d[('new',) + k[:3] + ('f32',)]
        rb = f"{statistics.median(b[r][0] / fb[r][0] for r in rounds):.2f}"
        rn = f"{statistics.median(n[r][0] / fn[r][0] for r in rounds):.2f}"
    print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {bm:.2f} | {nm:.2f} | {ratio:.3f} ({len(rounds)} rounds) | {bp:.2f} | {np_:.2f} | {rb} | {rn} |")

# Median over rounds of the DRAM set: ms and paired fraction of copy per dtype, and 16-bit/f32 time ratios.
import csv, glob, statistics, sys, collections
d = collections.defaultdict(list)
for f in sorted(glob.glob(sys.argv[1] + "/*.csv")):
    for r in csv.DictReader(open(f)):
        k = (r['op'], r['direction'], r['layout'], r['threads'], r['dtype'])
        pf = r.get('paired_fraction') or r.get('fraction_of_copy')
        d[k].append((float(r['median_ms']), float(pf) if pf else float('nan')))
print("| op | direction | layout | t | f32 ms | f32 ×copy | bf16 ms | bf16 ×copy | bf16/f32 | f16 ms | f16 ×copy | f16/f32 |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for k in sorted({k[:4] for k in d}):
    def med(dt, i):
        v = d.get(k + (dt,))
        return statistics.median(x[i] for x in v) if v else float('nan')
    f, b, h = med('f32', 0), med('bf16', 0), med('f16', 0)
    def mark(r, fr, bwd):
        miss = r > 0.55 or fr < (0.80 if bwd else 0.85)
        return "**" if miss else ""
    bwd = k[1] == 'backward'
    mb, mh = mark(b/f, med('bf16',1), bwd), mark(h/f, med('f16',1), bwd)
    print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {f:.2f} | {med('f32',1):.2f} | {b:.2f} | {med('bf16',1):.2f} | {mb}{b/f:.2f}{mb} | {h:.2f} | {med('f16',1):.2f} | {mh}{h/f:.2f}{mh} |")

import csv,sys,glob,statistics as st
tag=sys.argv[1]
d={}
for v in ('base','new'):
    for f in sorted(glob.glob(f'docs/data/2026-12-05-accuracy-ab/{tag}-{v}-*.csv')):
        for r in csv.DictReader(open(f)):
            k=(r['op'],r['direction'],r['layout'],f"{r['N']}x{r['C']}x{r['H']}x{r['W']}",r['G'],r['threads'])
            d.setdefault(k,{}).setdefault(v,[]).append(float(r['median_ms']))
print(f"{'case':70s} {'base ms':>9s} {'new ms':>9s} {'new/base':>8s}  n")
for k,v in d.items():
    b=st.median(v['base']); n=st.median(v['new'])
    print(f"{' '.join(k):70s} {b:9.4f} {n:9.4f} {n/b:8.3f}  {len(v['base'])}")

import re,collections,statistics,sys
reps=collections.defaultdict(dict)
for l in open(sys.argv[1]):
    m=re.search(r'rep (\d+) out \d (bf16|f32) +mode (\d) stats ([\d.]+) ms.*out ([\d.]+) ms total ([\d.]+)',l)
    if m: reps[int(m[1])][(m[2],m[3])]=(float(m[4]),float(m[6]))
keys=sorted({k for r in reps.values() for k in r})
ref={'bf16':('bf16','1'),'f32':('f32','1')}
for k in keys:
    rs=[r[ref[k[0]]][0]/r[k][0] for r in reps.values() if k in r]
    rt=[r[ref[k[0]]][1]/r[k][1] for r in reps.values() if k in r]
    print(k,'stats med %.2f'%statistics.median(r[k][0] for r in reps.values()),'speedup vs mode1: stats med %.2f [%.2f-%.2f] total med %.2f'%(statistics.median(rs),min(rs),max(rs),statistics.median(rt)))

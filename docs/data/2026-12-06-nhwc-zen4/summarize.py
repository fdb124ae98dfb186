import csv, glob, os, statistics, sys
from collections import defaultdict
out = sys.argv[1]
times = defaultdict(lambda: defaultdict(list))
for f in sorted(glob.glob(os.path.join(out, "*.csv"))):
    v = os.path.basename(f).split("-")[0]
    if v not in ("base", "new"): continue
    for row in csv.DictReader(open(f)):
        if row["checked"] != "ok" or not row["median_ms"]: continue
        key = (row["op"], row["direction"], row["layout"], f'{row["N"]}x{row["C"]}x{row["H"]}x{row["W"]}', row["G"], row["threads"])
        times[key][v].append(float(row["median_ms"]))
print("| op | direction | layout | shape | G | threads | base ms (median) | new ms (median) | base/new | rounds base/new | per-round base/new |")
print("|---|---|---|---|---|---:|---:|---:|---:|---|---|")
for key in sorted(times):
    b, n = times[key]["base"], times[key]["new"]
    if not b or not n: continue
    mb, mn = statistics.median(b), statistics.median(n)
    pr = " ".join(f"{x/y:.3f}" for x, y in zip(b, n))
    print(f"| {' | '.join(key)} | {mb:.3f} | {mn:.3f} | **{mb/mn:.3f}** | {len(b)}/{len(n)} | {pr} |")

import csv, glob, statistics, sys, os
d = sys.argv[1]
data = {}
for b in ("base", "new"):
    for f in sorted(glob.glob(f"{d}/{b}-r*.csv")):
        for row in csv.DictReader(open(f)):
            if not row["median_ms"]: continue
            key = (row["op"], row["direction"], f'{row["N"]}x{row["C"]}', int(row["threads"]), row["dtype"])
            data.setdefault((b,) + key, []).append(float(row["median_ms"]))
keys = sorted({k[1:] for k in data})
med = {k: statistics.median(v) for k, v in data.items()}
print("| op | dir | shape | t | dtype | base ms | new ms | base/new | base ×f32 | new ×f32 | rounds |")
print("|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
for k in keys:
    op, dr, sh, t, dt = k
    b, n = med.get(("base",) + k), med.get(("new",) + k)
    if b is None or n is None: continue
    bf = med.get(("base", op, dr, sh, t, "f32")); nf = med.get(("new", op, dr, sh, t, "f32"))
    x1 = f"{b/bf:.2f}" if dt != "f32" and bf else "–"
    x2 = f"{n/nf:.2f}" if dt != "f32" and nf else "–"
    print(f"| {op} | {dr} | [{sh.replace('x', ', ')}] | {t} | {dt} | {b:.3f} | {n:.3f} | {b/n:.2f} | {x1} | {x2} | {len(data[('new',)+k])} |")

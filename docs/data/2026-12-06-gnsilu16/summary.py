#!/usr/bin/env python3
"""summary.py DIR: median over rounds of each case's median_ms, base vs new (DIR/base-*.csv, DIR/new-*.csv)."""
import csv, glob, statistics, sys, os
d = sys.argv[1]
def load(v):
    rows = {}
    for p in sorted(glob.glob(os.path.join(d, f"{v}-*.csv"))):
        for r in csv.DictReader(open(p)):
            k = (r["op"], r["direction"], r["layout"], f'{r["N"]}x{r["C"]}x{r["H"]}x{r["W"]}', r["threads"], r["dtype"])
            rows.setdefault(k, []).append(float(r["median_ms"]))
    return {k: statistics.median(v) for k, v in rows.items()}, max((len(v) for v in rows.values()), default=0)
base, nb = load("base"); new, nn = load("new")
cases = sorted({k[1:] for k in base if k[0] == "groupnorm-silu"},
               key=lambda k: (k[0], k[2], k[1], k[3], ["f32", "bf16", "f16"].index(k[4])))
short = {"forward-training": "fwd", "backward": "bwd"}
out = []
out.append("| case | plain base | fused base | fused ÷ plain base | plain new | fused new | fused ÷ plain new | fused base ÷ new |")
out.append("|---|---|---|---|---|---|---|---|")
for c in cases:
    dr, lay, shp, th, dt = c
    pb, fb = base.get(("groupnorm",) + c), base.get(("groupnorm-silu",) + c)
    pn, fn = new.get(("groupnorm",) + c), new.get(("groupnorm-silu",) + c)
    if None in (pb, fb, pn, fn): continue
    out.append(f"| {dt} {short[dr]} {lay} `[{shp.replace('x', ',')}]` {th}t | {pb:.3f} | {fb:.3f} | {fb/pb:.2f} | {pn:.3f} | {fn:.3f} | {fn/pn:.2f} | {fb/fn:.2f} |")
out.append("")
out.append("16-bit fused ÷ Float32 fused (same binary, same rounds; ≤ 1 is the target):")
out.append("")
out.append("| case | bf16 ÷ f32 base | bf16 ÷ f32 new | f16 ÷ f32 base | f16 ÷ f32 new | f32 fused base → new (ms) |")
out.append("|---|---|---|---|---|---|")
for c in sorted({k[1:5] for k in base if k[0] == "groupnorm-silu"}, key=lambda k: (k[0], k[2], k[1], k[3])):
    dr, lay, shp, th = c
    f = lambda tab, dt: tab.get(("groupnorm-silu", dr, lay, shp, th, dt))
    b32, n32 = f(base, "f32"), f(new, "f32")
    cells = []
    for dt in ("bf16", "f16"):
        b, n = f(base, dt), f(new, dt)
        cells += [f"{b/b32:.2f}" if b and b32 else "–", f"{n/n32:.2f}" if n and n32 else "–"]
    out.append(f"| {short[dr]} {lay} `[{shp.replace('x', ',')}]` {th}t | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} | {b32:.3f} → {n32:.3f} |")
out.append("")
out.append(f"rounds per case: base {nb}, new {nn} (median of the per-round medians)")
print("\n".join(out))

#!/usr/bin/env python3
"""Issue 20's view of a peers.py folder (merged.csv, best round of each tool): ours, oneDNN, PyTorch recycling,
ours ÷ each (speed; ≥ 1: ours faster), and (with f32 rows) the 16-bit time ÷ our Float32 time.
Usage: peertable.py FOLDER [F32_FOLDER]"""
import csv, sys
def load(p):
    return {(r["op"], f'{r["N"]}x{r["C"]}', int(r["threads"])): r for r in csv.DictReader(open(p + "/merged.csv"))}
rows = load(sys.argv[1]); f32 = load(sys.argv[2]) if len(sys.argv) > 2 else rows
print("| dtype | shape | t | ours ms | oneDNN ms | PyTorch recycling ms | vs oneDNN | vs PyTorch | ÷ our f32 |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
def num(v):
    try: return float(v)
    except (TypeError, ValueError): return None
for k in sorted(rows, key=lambda k: (k[0], k[1], k[2])):
    r = rows[k]; ours = float(r["ours_ms"]); d = num(r["onednn_ms"]); t = num(r.get("torch-recycling_ms", ""))
    dt = k[0].split(" ")[1] if " " in k[0] else "f32"
    base = f32.get(("layernorm", k[1], k[2]))
    rel = f"{ours / float(base['ours_ms']):.2f}" if base and dt != "f32" else ""
    print(f"| {dt} | {k[1]} | {k[2]} | {ours:.3f} | {d and f'{d:.3f}' or '–'} | {t and f'{t:.3f}' or '–'} | "
          f"{d and f'{d / ours:.2f}×' or '–'} | {t and f'{t / ours:.2f}×' or '–'} | {rel} |")

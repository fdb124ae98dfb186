#!/usr/bin/env python3
"""Joins normbench CSVs with tools/torch_compare.py CSVs of the same cases into a
Markdown table: our median, PyTorch's median, the speedup, and both fractions of
copy bandwidth. Usage: tools/compare_table.py out/after   (reads *.csv, *.torch.csv)
Also: tools/compare_table.py --before out/before out/after  (before/after table),
      tools/compare_table.py --targets out/after  (issue-6 DRAM targets from dram-*.csv),
      tools/compare_table.py --rounds out/r1 out/r2 out/r3  (several runs of perf-sets:
        each round's ratio PyTorch / ours, their median, and in how many rounds we led;
        the VM's speed changes between a set and PyTorch's run of it, so one
        round's ratio can be off by 1.5× either way).
Standard library only."""
import csv, glob, os, statistics, sys

KEY = ("op", "direction", "layout", "N", "C", "H", "W", "G", "threads")

def load(paths):
    rows = {}
    for p in paths:
        with open(p) as f:
            for r in csv.DictReader(f):
                rows[tuple(r[k] for k in KEY)] = r
    return rows

def shape(k):
    return f"{k[3]}x{k[4]}x{k[5]}x{k[6]}" + (f" G{k[7]}" if k[7] not in ("", "-", "1") or k[0] == "groupnorm" else "")

def main():
    args = sys.argv[1:]
    if args and args[0] == "--before":
        before_dir, after_dir = args[1], args[2]
        b = load(sorted(set(glob.glob(f"{before_dir}/*.csv")) - set(glob.glob(f"{before_dir}/*.torch.csv"))))
        a = load(sorted(set(glob.glob(f"{after_dir}/*.csv")) - set(glob.glob(f"{after_dir}/*.torch.csv"))))
        print("| op | direction | layout | shape | before ms | after ms | speedup | before ×copy | after ×copy |")
        print("|---|---|---|---|---:|---:|---:|---:|---:|")
        for k in sorted(a):
            if k not in b: continue
            rb, ra = b[k], a[k]
            sp = float(rb["median_ms"]) / float(ra["median_ms"])
            print(f"| {k[0]} | {k[1]} | {k[2]} | {shape(k)} | {float(rb['median_ms']):.3f} | {float(ra['median_ms']):.3f} | {sp:.2f}× | {float(rb['fraction_of_copy']):.2f} | {float(ra['fraction_of_copy']):.2f} |")
        return
    if args and args[0] == "--targets":
        # Forward training ≥ 0.85 of copy, backward ≥ 0.80 (issue 6, DRAM set).
        rows = load(sorted(set(glob.glob(f"{args[1]}/dram-*.csv")) - set(glob.glob(f"{args[1]}/dram-*.torch.csv"))))
        targets = {"forward-training": 0.85, "backward": 0.80}
        print("| op | direction | layout | shape | median ms | GB/s | × copy | target | reached? |")
        print("|---|---|---|---|---:|---:|---:|---:|---|")
        for k in sorted(rows, key=lambda k: (k[0], k[1] != "forward-training", k[2])):
            if k[1] not in targets: continue
            r = rows[k]
            frac, t = float(r["fraction_of_copy"]), targets[k[1]]
            verdict = "yes" if frac >= t else f"no, by {round(100 * (1 - frac / t))} %"
            print(f"| {k[0]} | {k[1]} | {k[2]} | {shape(k)} | {float(r['median_ms']):.2f} | {float(r['gbps']):.1f} | {frac:.2f} | {t:.2f} | {verdict} |")
        return
    if args and args[0] == "--rounds":
        rounds = []
        for d in args[1:]:
            ours = load(sorted(set(glob.glob(f"{d}/*-*.csv")) - set(glob.glob(f"{d}/*.torch.csv"))))
            torch = load(sorted(glob.glob(f"{d}/*.torch.csv")))
            rounds.append({k: float(torch[k]["median_ms"]) / float(ours[k]["median_ms"])
                           for k in ours if k in torch and ours[k]["median_ms"] and torch[k]["median_ms"]})
        keys = sorted(set().union(*rounds))
        print("| op | direction | layout | shape | threads | PyTorch / ours, each round | median | rounds ahead |")
        print("|---|---|---|---|---:|---|---:|---:|")
        for k in keys:
            ratios = [r[k] for r in rounds if k in r]
            print(f"| {k[0]} | {k[1]} | {k[2]} | {shape(k)} | {k[8]} | {' / '.join(f'{x:.2f}' for x in ratios)} | "
                  f"{statistics.median(ratios):.2f}× | {sum(x >= 1 for x in ratios)} of {len(ratios)} |")
        return
    d = args[0]
    ours = load(sorted(set(glob.glob(f"{d}/*-*.csv")) - set(glob.glob(f"{d}/*.torch.csv"))))   # peer-*, dram-*; not bandwidth.csv
    torch = load(sorted(glob.glob(f"{d}/*.torch.csv")))
    print("| op | direction | layout | shape | ours ms | torch ms | ours faster by | ours ×copy | torch ×copy | checked |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---|")
    for k in sorted(ours):
        o = ours[k]; t = torch.get(k)
        tm = f"{float(t['median_ms']):.3f}" if t else "–"
        sp = f"{float(t['median_ms']) / float(o['median_ms']):.2f}×" if t else "–"
        tf = f"{float(t['fraction_of_copy']):.2f}" if t and t["fraction_of_copy"] else "–"
        print(f"| {k[0]} | {k[1]} | {k[2]} | {shape(k)} | {float(o['median_ms']):.3f} | {tm} | {sp} | {float(o['fraction_of_copy']):.2f} | {tf} | {o['checked']} |")

if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Turn normbench (or tools/torch_compare.py) CSVs into PNG plots.

    python tools/plot.py sweep sweep.csv [--compare torch.csv] [--out plots/]
    python tools/plot.py scale scale.csv [--compare torch_scale.csv] [--out plots/]

Needs matplotlib (`python3 -m venv .venv && .venv/bin/pip install matplotlib`;
/work/torchvenv has it).

sweep: one PNG per (op, direction): GB/s for each case (x axis: shape, layout,
groups), one line per thread count, and a dotted horizontal line per thread
count at the copy bandwidth of the same run (recovered from the CSV as
gbps / fraction_of_copy). With --compare, the second CSV's cases are drawn
dashed with hollow markers on the same axes (rows matched by op, direction,
layout, N, C, H, W, G, threads).

scale: one PNG per (op, direction): speedup against thread count, one line per
case, with the ideal (linear) line. Speedup is relative to the smallest thread
count of each case, so a sweep CSV with several thread counts works too.
"""

import argparse
import csv
import os
import sys
from collections import defaultdict

KEY = ("op", "direction", "layout", "N", "C", "H", "W", "G")


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for column in ("median_ms", "min_ms", "gbps", "fraction_of_copy"):
            r[column] = float(r[column]) if r.get(column) not in (None, "") else None
        r["threads"] = int(r["threads"])
    return rows


def case_label(r):
    label = f"{r['N']}x{r['C']}x{r['H']}x{r['W']}"
    if r["layout"] != "-":
        label += f" {r['layout']}"
    if r["G"] != "-":
        label += f" G{r['G']}"
    return label


def copy_lines(rows):
    """Copy GB/s per thread count, as the sweep measured it (gbps / fraction)."""
    per_thread = defaultdict(list)
    for r in rows:
        if r["gbps"] and r["fraction_of_copy"]:
            per_thread[r["threads"]].append(r["gbps"] / r["fraction_of_copy"])
    return {t: sorted(v)[len(v) // 2] for t, v in per_thread.items()}


def plot_sweep(plt, rows, compare, names, out):
    groups = defaultdict(list)
    for r in rows:
        groups[(r["op"], r["direction"])].append(r)
    other = {tuple(r[k] for k in KEY) + (r["threads"],): r for r in compare or []}
    copy = copy_lines(rows)
    written = []
    for (op, direction), cases in groups.items():
        labels = []
        for r in cases:
            if case_label(r) not in labels:
                labels.append(case_label(r))
        x = {label: i for i, label in enumerate(labels)}
        fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(labels) + 2), 4.5))
        threads = sorted({r["threads"] for r in cases})
        for i, t in enumerate(threads):
            color = f"C{i}"
            series = [r for r in cases if r["threads"] == t and r["gbps"] is not None]
            ax.plot([x[case_label(r)] for r in series], [r["gbps"] for r in series], "o-", color=color,
                    label=f"{names[0]}, {t} thread{'s' if t > 1 else ''}")
            if compare:
                matched = [(r, other.get(tuple(r[k] for k in KEY) + (t,))) for r in series]
                matched = [(r, o) for r, o in matched if o and o["gbps"] is not None]
                ax.plot([x[case_label(r)] for r, _ in matched], [o["gbps"] for _, o in matched], "o--",
                        color=color, markerfacecolor="none", label=f"{names[1]}, {t} thread{'s' if t > 1 else ''}")
            if t in copy:
                ax.axhline(copy[t], color=color, linestyle=":", linewidth=1,
                           label=f"copy bandwidth, {t} thread{'s' if t > 1 else ''} ({copy[t]:.1f} GB/s)")
            failed = [r for r in cases if r["threads"] == t and r["checked"] in ("fail", "error")]
            for r in failed:
                ax.annotate(r["checked"], (x[case_label(r)], 0), color="red", ha="center", fontsize=7)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("GB/s (minimum bytes / median time)")
        ax.set_title(f"{op} {direction}")
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = os.path.join(out, f"sweep_{op}_{direction}.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


def speedups(rows):
    """{case key: [(threads, speedup)]} relative to each case's smallest thread count."""
    by_case = defaultdict(list)
    for r in rows:
        if r["median_ms"]:
            by_case[tuple(r[k] for k in KEY)].append((r["threads"], r["median_ms"]))
    result = {}
    for key, points in by_case.items():
        points.sort()
        base_threads, base = points[0]
        result[key] = [(t, base / m, t / base_threads) for t, m in points]
    return result


def plot_scale(plt, rows, compare, names, out):
    ours, theirs = speedups(rows), speedups(compare or [])
    groups = defaultdict(list)
    for key in ours:
        groups[(key[0], key[1])].append(key)
    written = []
    for (op, direction), keys in groups.items():
        fig, ax = plt.subplots(figsize=(6, 4.5))
        top = 1
        for i, key in enumerate(keys):
            label = case_label(dict(zip(KEY, key)))
            points = ours[key]
            ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color=f"C{i % 10}",
                    label=f"{names[0]} {label}")
            top = max(top, max(p[0] for p in points))
            if key in theirs:
                points = theirs[key]
                ax.plot([p[0] for p in points], [p[1] for p in points], "o--", color=f"C{i % 10}",
                        markerfacecolor="none", label=f"{names[1]} {label}")
        ax.plot([1, top], [1, top], color="gray", linestyle=":", label="ideal")
        ax.set_xlabel("threads")
        ax.set_ylabel("speedup vs the smallest thread count")
        ax.set_title(f"{op} {direction}: thread scaling")
        ax.set_xticks(range(1, top + 1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = os.path.join(out, f"scale_{op}_{direction}.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=["sweep", "scale"])
    p.add_argument("csv")
    p.add_argument("--compare", help="a second CSV with the same columns (e.g. from tools/torch_compare.py)")
    p.add_argument("--names", default="normbench,torch", help="legend names of the first and second CSV")
    p.add_argument("--out", default="plots", help="output directory")
    args = p.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("matplotlib is missing: python3 -m venv .venv && .venv/bin/pip install matplotlib")
    os.makedirs(args.out, exist_ok=True)
    rows = load(args.csv)
    compare = load(args.compare) if args.compare else None
    names = (args.names.split(",") + ["second"])[:2]
    plot = plot_sweep if args.kind == "sweep" else plot_scale
    for path in plot(plt, rows, compare, names, args.out):
        print(path)


if __name__ == "__main__":
    main()

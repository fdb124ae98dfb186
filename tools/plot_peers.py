#!/usr/bin/env python3
"""One PNG per peer-comparison run: our speed against the best peer, per case.

    /work/torchvenv/bin/python tools/plot_peers.py docs/data/<run>/merged.csv --out docs/img

Reads the merged.csv that tools/peers.py writes and draws, for 1 and 2 threads
side by side, one horizontal bar per case: speed = best peer's median ms / ours
(> 1: we are faster), on a log axis with the line at 1. Bars are labelled with
the best peer's name. Writes peers_speed.png (about 100 KB).
"""

import argparse
import csv
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PEER_NAMES = {"onednn": "oneDNN", "torch-recycling": "PyTorch (recycling)", "torch": "PyTorch",
              "ort": "ONNX Runtime"}
COLORS = {"onednn": "#1f77b4", "torch-recycling": "#d62728", "torch": "#ff7f0e", "ort": "#2ca02c"}


def case_label(row):
    shape = "x".join(row[k] for k in ("N", "C", "H", "W"))
    layout = "" if row["layout"] in ("-", "") else f" {row['layout']}"
    groups = "" if row["G"] in ("-", "") else f" G{row['G']}"
    direction = {"forward-training": "fwd", "forward-inference": "inf", "backward": "bwd"}[row["direction"]]
    return f"{row['op']} {direction}{layout} {shape}{groups}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("merged")
    p.add_argument("--out", default="docs/img")
    args = p.parse_args()
    with open(args.merged) as f:
        rows = [r for r in csv.DictReader(f) if r["speed_vs_best"]]
    threads = sorted({r["threads"] for r in rows}, key=int)
    labels = []
    for r in rows:
        if case_label(r) not in labels:
            labels.append(case_label(r))
    fig, axes = plt.subplots(1, len(threads), figsize=(6 * len(threads), 0.22 * len(labels) + 1.5),
                             sharey=True, squeeze=False)
    for ax, t in zip(axes[0], threads):
        by_label = {case_label(r): r for r in rows if r["threads"] == t}
        ys, speeds, colors = [], [], []
        for i, label in enumerate(labels):
            r = by_label.get(label)
            if r is None:
                continue
            ys.append(i)
            speeds.append(float(r["speed_vs_best"]))
            colors.append(COLORS.get(r["best_peer"], "gray"))
        ax.barh(ys, [math.log2(s) for s in speeds], color=colors, height=0.7)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(f"{t} thread{'s' if t != '1' else ''}: best peer ms / ours (log2; right = we are faster)",
                     fontsize=9)
        ticks = [-2, -1, 0, 1, 2, 3, 4]
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{2.0 ** k:g}×" for k in ticks], fontsize=8)
        ax.set_xlim(-2.5, 4.5)
        ax.grid(axis="x", linewidth=0.3)
    axes[0][0].set_yticks(range(len(labels)))
    axes[0][0].set_yticklabels(labels, fontsize=7)
    axes[0][0].invert_yaxis()
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLORS.values()]
    fig.legend(handles, [f"best peer: {PEER_NAMES[k]}" for k in COLORS], loc="lower center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "peers_speed.png")
    fig.savefig(path, dpi=80)
    print(path)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Table of a same-minutes.sh or eighths.sh folder: per case, each tool's median
over rounds (ms) and ours (argument 2, default `default`) against the best peer,
per round. Usage: summarize.py FOLDER [REFERENCE]"""
import collections, csv, glob, os, re, statistics, sys

folder = sys.argv[1]
reference = sys.argv[2] if len(sys.argv) > 2 else "default"   # ours: the tool the ratio is of
data = collections.defaultdict(lambda: collections.defaultdict(dict))  # case -> tool -> round -> ms
tools = []
for path in sorted(glob.glob(os.path.join(folder, "r*-*.csv"))):
    m = re.match(r"r(\d+)-(.+)\.csv", os.path.basename(path))
    r, tool = int(m.group(1)), m.group(2)
    if tool not in tools:
        tools.append(tool)
    for row in csv.DictReader(open(path)):
        if not row.get("median_ms"):
            continue
        try:
            ms = float(row["median_ms"])
        except ValueError:
            continue
        key = (row["layout"], f'{row["N"]}x{row["C"]}x{row["H"]}x{row["W"]}', int(row["threads"]))
        data[key][tool][r] = ms
ours = [t for t in tools if t not in ("torch", "ort")]
peers = [t for t in tools if t in ("torch", "ort")]
print("| layout | shape | t | " + " | ".join(f"{t} ms" for t in tools) + f" | best peer ÷ {reference} (per round) |")
print("|---|---|---:|" + "---:|" * len(tools) + "---|")
for key in sorted(data, key=lambda k: (k[1], k[0], k[2])):
    d = data[key]
    med = {t: statistics.median(d[t].values()) if d.get(t) else None for t in tools}
    rounds = sorted(d.get(reference, {}))
    per = []
    for r in rounds:
        best = min((d[p][r] for p in peers if r in d.get(p, {})), default=None)
        per.append(f"{best / d[reference][r]:.2f}" if best else "–")
    cells = [f"{med[t]:.3f}" if med[t] else "–" for t in tools]
    print(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " | " + " / ".join(per) + " |")

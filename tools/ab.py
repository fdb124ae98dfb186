#!/usr/bin/env python3
"""Two normbench binaries (or one binary under two environments) side by side, in
alternating rounds, and the table of their medians and per-round ratios.

    python3 tools/ab.py --base /tmp/nb-main --new .build-release/release/normbench \\
        --rounds 6 --out docs/data/<date>-<name>/ab \\
        --case "--ops layernorm --directions backward --shapes 8192x1024x1x1 --threads 1,2" \\
        --case "--ops batchnorm --layouts nchw --directions forward-training --shapes 32x64x56x56 --threads 1"
    python3 tools/ab.py --table docs/data/<date>-<name>/ab      # the table again from the CSVs

One binary, two store policies: `--base B --new B --base-env NORMKERNELS_STREAMING=never
--new-env NORMKERNELS_STREAMING=always`.

Why alternating rounds: on a shared VM the machine's state drifts by ±15 % over
minutes; each round runs every case with both sides, and which side goes first
alternates, so a drift hits both. The figure to quote is the median over rounds of
base ms ÷ new ms of the same round (> 1: new faster), with its spread; keep an
unchanged case among the cases as the control.

The folder gets each run's CSV (`base-r<round>-<case>.csv`, `new-…`), `machine.txt`
(CPU model, hwloc's caches when lstopo is there, the two binaries and environments,
uptime before and after) and `table.md`. Standard library only.
"""
import argparse
import collections
import csv
import glob
import os
import re
import shlex
import statistics
import subprocess
import sys

KEY = ("op", "dtype", "direction", "layout", "N", "C", "H", "W", "G", "threads")


def environment(pairs):
    env = dict(os.environ)
    for pair in pairs:
        name, _, value = pair.partition("=")
        env[name] = value
    return env


def shell(command):
    try:
        return subprocess.run(command, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def measure(args):
    os.makedirs(args.out, exist_ok=True)
    sides = {"base": (args.base, environment(args.base_env)), "new": (args.new, environment(args.new_env))}
    with open(os.path.join(args.out, "machine.txt"), "w") as f:
        # lscpu's model name alone does not tell the kind ("AMD EPYC" is a Zen 3 at
        # family 25 model 1 and a Zen 4 at model 17); the caches come from
        # normbench's own hwloc reading (lstopo is not among the project's deps).
        f.write(shell("lscpu | grep -E 'Model name|^CPU family|^Model:|^CPU\\(s\\)|Thread|L3'") + "\n")
        f.write("avx512: " + (shell("grep -o -w -E 'avx512(f|bw|vl|dq|_bf16|_fp16)' /proc/cpuinfo | sort -u | tr '\\n' ' '") or "none") + "\n")
        f.write(shell(f"{shlex.quote(args.base)} topology --op layernorm 2>/dev/null | head -4") + "\n")
        for side in ("base", "new"):
            f.write(f"{side}: {sides[side][0]} env {' '.join(getattr(args, side + '_env')) or '-'}\n")
        for i, case in enumerate(args.case):
            f.write(f"case {i}: {case}\n")
        f.write("start: " + shell("date -u +%FT%TZ; uptime") + "\n")
    for r in range(1, args.rounds + 1):
        order = ("base", "new") if r % 2 else ("new", "base")
        for side in order:
            binary, env = sides[side]
            for i, case in enumerate(args.case):
                path = os.path.join(args.out, f"{side}-r{r}-{i}.csv")
                command = [binary, "sweep", *shlex.split(case), "--budget-ms", str(args.budget_ms), "--csv", path]
                done = subprocess.run(command, env=env, capture_output=True, text=True)
                if done.returncode != 0:
                    sys.exit(f"{side} round {r} case {i} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        print(f"round {r} done", file=sys.stderr)
    with open(os.path.join(args.out, "machine.txt"), "a") as f:
        f.write("end: " + shell("date -u +%FT%TZ; uptime") + "\n")


def load(folder, side):
    """side -> [round -> {case key: median ms}] in round order."""
    rounds = collections.defaultdict(dict)
    for path in glob.glob(os.path.join(folder, f"{side}-r*-*.csv")):
        r = int(re.search(r"-r(\d+)-", os.path.basename(path)).group(1))
        for row in csv.DictReader(open(path)):
            rounds[r][tuple(row.get(k, "") for k in KEY)] = float(row["median_ms"])
    return [rounds[r] for r in sorted(rounds)]


def table(folder):
    base, new = load(folder, "base"), load(folder, "new")
    if not base or not new:
        sys.exit(f"no base-r*/new-r* CSVs in {folder}")
    lines = ["| op | dtype | direction | layout | shape | G | t | base ms | new ms | base ÷ new (median of rounds, min–max) | rounds |",
             "|---|---|---|---|---|---:|---:|---:|---:|---|---:|"]
    keys = sorted(set(base[0]) | set(new[0]), key=lambda k: (k[2], k[0], k[1], k[3], k[4:]))
    for key in keys:
        pairs = [(b[key], n[key]) for b, n in zip(base, new) if key in b and key in n]
        if not pairs:
            continue
        ratios = [b / n for b, n in pairs]
        op, dtype, direction, layout, n, c, h, w, g, t = key
        lines.append(f"| {op} | {dtype or 'f32'} | {direction} | {layout} | {n}x{c}x{h}x{w} | {g} | {t} | "
                     f"{statistics.median(b for b, _ in pairs):.3f} | {statistics.median(n for _, n in pairs):.3f} | "
                     f"**{statistics.median(ratios):.2f}** ({min(ratios):.2f}–{max(ratios):.2f}) | {len(pairs)} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(folder, "table.md"), "w") as f:
        f.write(text)
    print(text, end="")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", help="normbench binary of the base")
    p.add_argument("--new", help="normbench binary of the change")
    p.add_argument("--base-env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--new-env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--case", action="append", default=[], help="normbench sweep arguments of one case set (repeatable)")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--budget-ms", type=int, default=150,
                   help="time budget per case, passed after each --case's arguments (so it wins over a --budget-ms there)")
    p.add_argument("--out", help="folder for the CSVs and table.md")
    p.add_argument("--table", metavar="FOLDER", help="only print (and write) the table of FOLDER")
    args = p.parse_args()
    if args.table:
        table(args.table)
        return
    if not (args.base and args.new and args.case and args.out):
        p.error("--base, --new, --case and --out are needed to measure")
    measure(args)
    table(args.out)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The peer comparison of issue 18 in one command: ours against oneDNN, PyTorch with
a recycling allocator, PyTorch as users run it, and ONNX Runtime, in alternating
rounds, on the issue-6 peer set at 1 and 2 threads.

    python3 tools/peers.py                       # 2 rounds, docs/data/<date>-peers-<commit>/
    python3 tools/peers.py --rounds 3 --out out/peers --budget-ms 300 --sets peer-layernorm

Each round runs, set by set (tools/perf-sets.sh's peer sets), our normbench, then
tools/onednn (oneDNN's C API), then tools/torch_compare.py with
MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 (glibc keeps freed blocks,
so outputs over 32 MiB are not page-faulted in on every call), then the same
without them, then tools/ort_compare.py: a change in the machine's state hits
ours and the peers alike. The folder gets, per round, each tool's CSV (normbench's
columns), normbench's JSON, and the tools' logs; `machine.txt` (CPU model,
hwloc's caches, copy bandwidth probes, commit, versions, uptime before and after);
`merged.csv` and `table.md`: per case ours, each peer and the best of them, best
round against best round, and speed = best peer ms / ours ms (≥ 1: ours ahead).

`--dtype f32,bf16,f16` runs every tool on the element types ours runs for the set
(normbench's CSV says which): oneDNN in bf16 (its 2.6 CPU engine has no f16
normalization: those rows say `unsupported`), PyTorch in both, ONNX Runtime's
LayerNormalization / SimplifiedLayerNormalization in both. 16-bit rows are
'op dtype' (e.g. 'layernorm bf16') in merged.csv and table.md, with their best peer.

Needs: Swift (normbench), cc and Debian's libdnnl-dev (installed by
tools/onednn/build.sh when missing), and a Python with torch (and onnxruntime,
onnx, numpy) given by --torch-py (default /work/torchvenv/bin/python; set it up
with `python3 -m venv /work/torchvenv && /work/torchvenv/bin/pip install torch
numpy onnxruntime onnx`). A peer that is not installed is left out, with a line
in machine.txt. Standard library only.
"""
import argparse
import csv
import datetime
import glob
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = ("op", "direction", "layout", "N", "C", "H", "W", "G", "threads")
DIRECTIONS = "forward-training,forward-inference,backward"
# The issue-6 peer set (tools/perf-sets.sh): name -> normbench case flags.
SETS = {
    "peer-batchnorm": ["--ops", "batchnorm", "--shapes", "32x64x56x56,8x256x28x28,64x512x7x7,4096x1024x1x1"],
    "peer-layernorm": ["--ops", "layernorm", "--shapes", "8192x1024x1x1,2048x4096x1x1,16384x768x1x1"],
    "peer-groupnorm": ["--ops", "groupnorm", "--groups", "32", "--shapes", "32x64x56x56,2x320x64x64,2x1280x16x16"],
    "peer-instancenorm": ["--ops", "instancenorm", "--shapes", "32x64x56x56,1x64x256x256"],
    # Not in issue 6's set (so not in the default --sets): RMSNorm on LayerNorm's rows,
    # against PyTorch's rms_norm and ONNX Runtime's SimplifiedLayerNormalization.
    "peer-rmsnorm": ["--ops", "rmsnorm", "--shapes", "8192x1024x1x1,2048x4096x1x1,16384x768x1x1"],
    # Small maps and feature vectors (issue 18's follow-up survey, docs/data/2026-12-07-gnsmall):
    # also not in the default --sets.
    "small-groupnorm": ["--ops", "groupnorm", "--groups", "32", "--layouts", "nchw,nhwc", "--shapes",
                        "128x256x4x4,64x512x7x7,32x256x8x8,256x128x2x2,1024x512x1x1"],
    "small-batchnorm": ["--ops", "batchnorm", "--layouts", "nchw", "--shapes",
                        "256x512x2x2,128x256x4x4,512x1024x1x1,256x256x3x3,128x512x5x5"],
}
DEFAULT_SETS = "peer-batchnorm,peer-layernorm,peer-groupnorm,peer-instancenorm"
RECYCLING = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}
# Peers in the order they run after ours; suffix of their CSV files.
PEERS = [("onednn", "oneDNN"), ("torch-recycling", "PyTorch recycling"), ("torch", "PyTorch default"),
         ("ort", "ONNX Runtime")]


def arguments():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help="results folder (default docs/data/<date>-peers-<commit>)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--budget-ms", default="300")
    p.add_argument("--directions", default=DIRECTIONS,
                   help="comma-separated subset of " + DIRECTIONS + " (default all), passed to every tool")
    p.add_argument("--sets", default=DEFAULT_SETS, help="comma-separated subset of " + ",".join(SETS)
                   + f" (default {DEFAULT_SETS})")
    p.add_argument("--dtype", default="f32",
                   help="element types, comma-separated (f32, f16, bf16), passed to normbench; each peer then "
                        "runs the ones normbench ran for the set (oneDNN 2.6: bf16 only, f16 rows 'unsupported'; "
                        "ONNX Runtime: LayerNorm and RMSNorm forward). 16-bit rows show as "
                        "'op dtype' (e.g. 'layernorm bf16') in merged.csv and table.md")
    p.add_argument("--peers", default=",".join(k for k, _ in PEERS), help="subset of " + ",".join(k for k, _ in PEERS))
    p.add_argument("--normbench", default=None, help="a built normbench (default: build into --scratch-path)")
    p.add_argument("--scratch-path", default=".build-release")
    p.add_argument("--torch-py", default=os.environ.get("TORCH_PY", "/work/torchvenv/bin/python"))
    p.add_argument("--table-only", action="store_true", help="only rebuild merged.csv and table.md of --out")
    return p.parse_args()


def sh(cmd, log=None, env=None, check=True):
    """Runs cmd (a list) from the repository root; stderr (and stdout with log) to the log file."""
    full_env = dict(os.environ, **(env or {}))
    with open(log, "a") if log else open(os.devnull, "w") as f:
        if log:   # the load average before each tool: the machine may be shared
            load = open("/proc/loadavg").read().split()[:3]
            f.write(f"# {time.strftime('%H:%M:%S')} load average {' '.join(load)}\n$ {' '.join(cmd)}\n")
            f.flush()
        r = subprocess.run(cmd, cwd=ROOT, env=full_env, stdout=f if log else subprocess.PIPE, stderr=f if log else None,
                           text=True)
    if check and r.returncode != 0:
        print(f"peers: {' '.join(cmd)} exited {r.returncode}" + (f" (see {log})" if log else ""), file=sys.stderr)
    return r


def capture(cmd, env=None):
    try:
        return subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, **(env or {})), capture_output=True, text=True,
                              timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"({' '.join(cmd)}: {e})\n"


def python_has(py, modules):
    return os.path.exists(py) and subprocess.run([py, "-c", f"import {modules}"], capture_output=True).returncode == 0


def prepare(args):
    """Builds normbench and the oneDNN benchmark; returns (normbench, onednn, available peers, notes)."""
    notes = []
    sh(["tools/ensure-deps.sh"])
    normbench = args.normbench
    if not normbench:
        flags = []
        cpu = open("/proc/cpuinfo").read().split()
        if "avx2" in cpu and "fma" in cpu:
            flags = ["-Xcc", "-march=x86-64-v3"]   # as tools/sweep.sh
        print("peers: building normbench ...", file=sys.stderr)
        r = sh(["swift", "build", "-c", "release", "--package-path", "Harness", "--scratch-path", args.scratch_path]
               + flags)
        if r.returncode != 0:
            sys.exit("peers: the normbench build failed")
        normbench = os.path.join(args.scratch_path, "release", "normbench")
        notes.append(f"normbench: swift build -c release --package-path Harness {' '.join(flags)}")
    wanted = set(args.peers.split(","))
    peers = []
    onednn = None
    if "onednn" in wanted:
        r = subprocess.run(["tools/onednn/build.sh"], cwd=ROOT, capture_output=True, text=True)
        if r.returncode == 0:
            onednn = r.stdout.strip().splitlines()[-1]
            peers.append("onednn")
        else:
            notes.append("oneDNN: left out, tools/onednn/build.sh failed: " + r.stderr.strip()[-300:])
    if wanted & {"torch", "torch-recycling"}:
        if python_has(args.torch_py, "torch"):
            peers += [p for p in ("torch-recycling", "torch") if p in wanted]
        else:
            notes.append(f"PyTorch: left out, no torch in {args.torch_py}")
    if "ort" in wanted:
        if python_has(args.torch_py, "onnxruntime, onnx, numpy"):
            peers.append("ort")
        else:
            notes.append(f"ONNX Runtime: left out, no onnxruntime/onnx/numpy in {args.torch_py}")
    return normbench, onednn, peers, notes


def machine_header(args, normbench, notes):
    rev = capture(["git", "rev-parse", "HEAD"]).strip()
    dirty = bool(capture(["git", "status", "--porcelain", "--untracked-files=no"]).strip())
    started = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
    lines = [f"# Peer comparison (tools/peers.py), started {started}",
             f"commit: {rev}{' (tracked files modified)' if dirty else ''}",
             f"command: python3 tools/peers.py {' '.join(sys.argv[1:])}",
             f"rounds: {args.rounds}, threads {args.threads}, budget {args.budget_ms} ms per case",
             f"uptime before: {capture(['uptime']).strip()}", ""]
    lines += notes + [""]
    lines += ["## lscpu", capture(["lscpu"]).rstrip(), ""]
    lines += ["## caches (hwloc: lstopo-no-graphics --no-io)", capture(["lstopo-no-graphics", "--no-io"]).rstrip(), ""]
    lines += ["## normbench topology", capture([normbench, "topology", "--op", "batchnorm", "--shape", "32,64,56,56"]).rstrip(), ""]
    return lines


def versions(args, onednn):
    out = []
    out.append("swift: " + capture(["swift", "--version"]).strip().splitlines()[0] if capture(["swift", "--version"]) else "swift: ?")
    if onednn:
        out.append("oneDNN: " + capture(["sh", "-c", "dpkg-query -W libdnnl-dev 2>/dev/null"]).strip()
                   + ", runtime " + capture(["sh", "-c", "grep -h 'define DNNL_CPU_RUNTIME' /usr/include/oneapi/dnnl/dnnl_config.h"]).strip())
    if os.path.exists(args.torch_py):
        out.append("python peers: " + capture([args.torch_py, "-c",
                   "import importlib\nfor m in ('torch','onnxruntime','numpy'):\n"
                   "  try: print(m, importlib.import_module(m).__version__, end='; ')\n"
                   "  except Exception as e: print(m, 'missing', end='; ')"]).strip())
    return out


def copy_gbps(json_path):
    with open(json_path) as f:
        used = json.load(f).get("copy_bandwidth_gbps", {}).get("used", {})
    return ",".join(f"{k}:{v}" for k, v in used.items())


def dtypes_run(path):
    """The element types of the rows in normbench's CSV (in --dtype's order)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        found = {row.get("dtype") or "f32" for row in csv.DictReader(f)}
    return [d for d in ("f32", "bf16", "f16") if d in found]


def run_round(args, r, folder, normbench, onednn, peers):
    common = ["--threads", args.threads, "--budget-ms", args.budget_ms, "--directions", args.directions]
    only_f32 = args.dtype == "f32"
    log = os.path.join(folder, "log.txt")
    for name in args.sets.split(","):
        flags = SETS[name]
        base = os.path.join(folder, name)
        print(f"peers: round {r}, {name}: ours", file=sys.stderr)
        sh([normbench, "sweep"] + common + ["--dtype", args.dtype] + flags
           + ["--csv", base + ".csv", "--json", base + ".json"], log,
           check=only_f32)   # a set without 16-bit ops has no case: normbench refuses the dtype
        if not os.path.exists(base + ".json"):
            continue
        # The peers run the element types ours ran (normbench skips (op, dtype) pairs it lacks).
        typed = ["--dtype", ",".join(dtypes_run(base + ".csv")) or "f32"]
        for peer in peers:
            print(f"peers: round {r}, {name}: {peer}", file=sys.stderr)
            if peer == "onednn":
                sh([onednn] + common + typed + flags
                   + ["--copy-gbps", copy_gbps(base + ".json"), "--csv", base + ".onednn.csv"], log, check=False)
            elif peer.startswith("torch"):
                sh([args.torch_py, "tools/torch_compare.py"] + common + typed + flags
                   + ["--normbench-json", base + ".json", "--csv", f"{base}.{peer}.csv"],
                   log, env=RECYCLING if peer == "torch-recycling" else None)
            elif peer == "ort":
                sh([args.torch_py, "tools/ort_compare.py"] + common + typed + flags
                   + ["--normbench-json", base + ".json", "--csv", base + ".ort.csv"], log)


def load(path):
    rows = {}
    if os.path.exists(path):
        with open(path) as f:
            for row in csv.DictReader(f):
                if row["median_ms"]:
                    # 16-bit rows (the last CSV column, absent in older files) are told apart by op.
                    dtype = row.get("dtype") or "f32"
                    if dtype != "f32":
                        row["op"] = f"{row['op']} {dtype}"
                    rows[tuple(row[k] for k in KEY)] = row
    return rows


def merge(out):
    """Best round per tool and case; writes merged.csv and table.md."""
    rounds = sorted(glob.glob(os.path.join(out, "round*")))
    tools = [("ours", "")] + [(p, "." + p) for p, _ in PEERS]
    best = {t: {} for t, _ in tools}           # tool -> key -> (ms, fraction_of_copy)
    per_round = {}                              # key -> [ours/best-peer speed of each round]
    for folder in rounds:
        round_rows = {}
        for name in SETS:
            for tool, suffix in tools:
                for k, row in load(os.path.join(folder, name + suffix + ".csv")).items():
                    if tool == "ours" and row["checked"] != "ok":
                        continue
                    ms = float(row["median_ms"])
                    frac = float(row["fraction_of_copy"]) if row["fraction_of_copy"] else None
                    round_rows.setdefault(k, {})[tool] = ms
                    if k not in best[tool] or ms < best[tool][k][0]:
                        best[tool][k] = (ms, frac)
        for k, times in round_rows.items():
            peer_times = [v for t, v in times.items() if t != "ours"]
            if "ours" in times and peer_times:
                per_round.setdefault(k, []).append(min(peer_times) / times["ours"])
    # Set order, then f32 before 'op bf16' before 'op f16', then direction, layout, size, threads.
    set_index = lambda op: list(SETS).index(f"peer-{op.split()[0]}") if f"peer-{op.split()[0]}" in SETS else 9
    keys = sorted(best["ours"], key=lambda k: (set_index(k[0]), k[0], DIRECTIONS.split(",").index(k[1]), k[2],
                                               int(k[3]) * int(k[4]) * int(k[5]) * int(k[6]), k[3:8], int(k[8])))
    present = [(t, label) for t, label in PEERS if best[t]]
    rows = []
    for k in keys:
        ours_ms, ours_frac = best["ours"][k]
        peer = {t: best[t][k] for t, _ in present if k in best[t]}
        row = dict(zip(KEY, k), ours_ms=ours_ms, ours_frac=ours_frac, peers=peer)
        if peer:
            name = min(peer, key=lambda t: peer[t][0])
            row.update(best=name, best_ms=peer[name][0], best_frac=peer[name][1], speed=peer[name][0] / ours_ms)
            # Issue 18's target: ≥ 1.0× the best peer, ≥ 1.5× where that peer is below half of copy bandwidth.
            row["target"] = 1.5 if peer[name][1] is not None and peer[name][1] < 0.5 else 1.0
        rows.append(row)
    with open(os.path.join(out, "merged.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(list(KEY) + ["ours_ms"] + [f"{t}_ms" for t, _ in present]
                   + ["best_peer", "best_peer_ms", "speed_vs_best", "best_peer_fraction_of_copy", "target", "rounds_speed"])
        for row in rows:
            w.writerow([row[k] for k in KEY] + [f"{row['ours_ms']:.6f}"]
                       + [f"{row['peers'][t][0]:.6f}" if t in row["peers"] else "" for t, _ in present]
                       + ([row["best"], f"{row['best_ms']:.6f}", f"{row['speed']:.4f}",
                           "" if row["best_frac"] is None else f"{row['best_frac']:.4f}", row["target"]]
                          if "best" in row else ["", "", "", "", ""])
                       + ["/".join(f"{x:.3f}" for x in per_round.get(tuple(row[k] for k in KEY), []))])
    label = dict(PEERS)
    compared = [r for r in rows if "best" in r]
    ahead = [r for r in compared if r["speed"] >= 1]
    met = [r for r in compared if r["speed"] >= r["target"]]
    lines = [f"# Ours against the best peer ({len(rounds)} round{'s' if len(rounds) != 1 else ''}, "
             "best round of each tool)", "",
             "speed = best peer's median ms / ours (≥ 1: ours faster); ×copy = GB/s / copy GB/s of the same set; "
             "target 1.5 where the best peer is below half of copy bandwidth (issue 18). "
             "Each round's speed: ours and peers of that round."
             + (" 16-bit rows ('op bf16', 'op f16'): issue 20 asks ≥ 1.5× PyTorch recycling and ≥ 1.0× oneDNN "
                "(their columns give both); the target column is issue 18's."
                if any(" " in r["op"] for r in rows) else ""), "",
             f"**{len(ahead)} of {len(compared)} cases ahead of the best peer, {len(compared) - len(ahead)} behind; "
             f"{len(met)} of {len(compared)} meet the target.**", ""]
    by_op = {}
    for r in compared:
        by_op.setdefault((r["op"], r["direction"], r["layout"]), []).append(r["speed"])
    lines += ["| op | direction | layout | cases | ahead | speed min | speed median |", "|---|---|---|---:|---:|---:|---:|"]
    for (op, d, lay), v in by_op.items():
        lines.append(f"| {op} | {d} | {lay} | {len(v)} | {sum(x >= 1 for x in v)} | {min(v):.2f}× | {statistics.median(v):.2f}× |")
    worst = sorted(compared, key=lambda r: r["speed"])[:10]
    lines += ["", "Worst cases: " + "; ".join(
        f"{r['op']} {r['direction']} {r['layout']} {r['N']}x{r['C']}x{r['H']}x{r['W']} t{r['threads']} "
        f"{r['speed']:.2f}× ({label[r['best']]})" for r in worst), ""]
    head = "| op | direction | layout | shape | t | ours ms | " + " | ".join(f"{l} ms" for _, l in present) + \
           " | best peer | speed | ours ×copy | best ×copy | target | each round |"
    lines += [head, "|" + "---|" * 4 + "---:|" * (2 + len(present)) + "---|---:|---:|---:|---:|---|"]
    for r in rows:
        shape = f"{r['N']}x{r['C']}x{r['H']}x{r['W']}" + (f" G{r['G']}" if r["G"] not in ("-", "") else "")
        cells = [f"{r['peers'][t][0]:.3f}" if t in r["peers"] else "–" for t, _ in present]
        frac = lambda v: "–" if v is None else f"{v:.2f}"
        if "best" in r:
            verdict = f"**{r['speed']:.2f}×**" if r["speed"] < r["target"] else f"{r['speed']:.2f}×"
            tail = [label[r["best"]], verdict, frac(r["ours_frac"]), frac(r["best_frac"]), f"{r['target']:.1f}"]
        else:
            tail = ["–", "–", frac(r["ours_frac"]), "–", "–"]
        rounds_speed = " / ".join(f"{x:.2f}" for x in per_round.get(tuple(r[k] for k in KEY), []))
        lines.append(f"| {r['op']} | {r['direction']} | {r['layout']} | {shape} | {r['threads']} | {r['ours_ms']:.3f} | "
                     + " | ".join(cells + tail) + f" | {rounds_speed} |")
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return len(ahead), len(compared), worst


def probes(out):
    """Copy bandwidth probes of every normbench run: set, round, start/end per thread count."""
    lines = ["## copy bandwidth probes (normbench, GB/s read + written, start / end of each set)"]
    for path in sorted(glob.glob(os.path.join(out, "round*", "peer-*.json"))):
        with open(path) as f:
            cb = json.load(f).get("copy_bandwidth_gbps", {})
        fmt = lambda v: f"{v:.1f}" if isinstance(v, (int, float)) else "?"
        cells = [f"{t} thr {fmt(cb.get('start', {}).get(t))} / {fmt(cb.get('end', {}).get(t))}"
                 for t in sorted(cb.get("used", {}))]
        lines.append(f"{os.path.relpath(path, out)}: " + "; ".join(cells))
    return lines


def main():
    args = arguments()
    if args.table_only:
        ahead, total, _ = merge(args.out)
        print(f"peers: {ahead} of {total} ahead; wrote {args.out}/table.md", file=sys.stderr)
        return
    started = time.time()
    normbench, onednn, peers, notes = prepare(args)
    if not args.out:
        short = capture(["git", "rev-parse", "--short", "HEAD"]).strip()
        args.out = os.path.join("docs", "data", f"{datetime.datetime.now(datetime.timezone.utc).date().isoformat()}-peers-{short}")
    out = os.path.join(ROOT, args.out)
    os.makedirs(out, exist_ok=True)
    header = machine_header(args, normbench, notes) + versions(args, onednn)
    if onednn:   # oneDNN computes the ops we time: its self-test against a Float64 reference
        with open(os.path.join(out, "onednn-selftest.txt"), "w") as f:
            subprocess.run([onednn, "--selftest"], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    print(f"peers: peers {', '.join(peers) or 'none'}; results in {args.out}", file=sys.stderr)
    for r in range(1, args.rounds + 1):
        folder = os.path.join(out, f"round{r}")
        os.makedirs(folder, exist_ok=True)
        run_round(args, r, folder, normbench, onednn, peers)
    header += ["", f"uptime after: {capture(['uptime']).strip()}",
               f"wall time: {(time.time() - started) / 60:.1f} min", ""] + probes(out)
    with open(os.path.join(out, "machine.txt"), "w") as f:
        f.write("\n".join(header) + "\n")
    ahead, total, worst = merge(out)
    print(f"peers: {ahead} of {total} cases ahead of the best peer; table {args.out}/table.md", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Run normbench's cases through PyTorch and write the same CSV columns.

    /work/torchvenv/bin/python tools/torch_compare.py --csv torch.csv \
        [--normbench-json sweep.json] [same case flags as `normbench sweep`]

The case grid follows `normbench sweep` (same flags, same defaults, same
skipping rules, same byte counts), so the two CSVs line up row by row and
`tools/plot.py --compare` can overlay them. Differences:

* `checked` is "torch": PyTorch is the comparison, not the thing under test.
* `affinity` is "none": PyTorch does not pin threads here.
* `fraction_of_copy` needs a copy bandwidth: pass normbench's `--json` file of a
  run on the same machine (`--normbench-json`) or `--copy-gbps 1:20.5,2:30`;
  otherwise the column is empty.
* backward is timed with autograd (`torch.autograd.grad(y, inputs, dy,
  retain_graph=True)`), gradients for x and the affine parameters.
* `--dtype f32,f16,bf16` as normbench's: x, dy (and AdaIN's style) in that
  type, generated in float32 and rounded once; bytes count them at the element
  size and the parameters at 4 bytes, as normbench. The parameters are in the
  same 16-bit type by default (a module converted with `.to(torch.bfloat16)`,
  PyTorch's fused path; RMSNorm with a float32 weight falls back to a composite),
  or float32 with `--torch-params f32` (the library's mixed layout); running
  statistics follow the parameters, and weight norm's g is always in v's type
  (PyTorch's `_weight_norm` takes no other). An op runs the 16-bit dtypes that
  normbench runs for it (`DTYPE_OPS`: every op); a `dtype` column is appended at
  the end of the CSV, as normbench's.

Ops: F.batch_norm (training with running statistics, or eval),
F.layer_norm / F.rms_norm over [C, H, W], F.instance_norm (use_input_stats, or
running statistics for inference), F.group_norm, AdaIN composed from torch ops
(mean/var over H, W), torch._weight_norm(v, g, 0) with v = [N, C, H, W].
nhwc means torch.channels_last.
"""

import argparse
import csv
import json
import os
import statistics
import sys
import time

COLUMNS = ["op", "direction", "layout", "N", "C", "H", "W", "G", "threads", "affinity",
           "median_ms", "min_ms", "bytes", "gbps", "fraction_of_copy", "checked", "dtype"]
DTYPES = ["f32", "f16", "bf16"]
ELEMENT_BYTES = {"f32": 4, "f16": 2, "bf16": 2}
# The ops normbench runs in each 16-bit dtype (its BenchOp.dtypes): every op of
# OPS has 16-bit kernels in the library.
DTYPE_OPS = {d: {"batchnorm", "layernorm", "rmsnorm", "instancenorm", "groupnorm", "adain", "weightnorm"}
             for d in ("f16", "bf16")}
OPS = ["batchnorm", "layernorm", "rmsnorm", "instancenorm", "groupnorm", "adain", "weightnorm"]
DIRECTIONS = ["forward-training", "forward-inference", "backward"]
LAYOUT_OPS = {"batchnorm", "instancenorm", "groupnorm", "adain"}
INFERENCE_OPS = {"batchnorm", "instancenorm"}
EPS = 1e-5


def int_list(text):
    return [int(v) for v in text.split(",") if v.strip()]


def str_list(text):
    return [v.strip() for v in text.split(",") if v.strip()]


def parse_shape(text):
    dims = [int(v) for v in text.replace("X", "x").replace(",", "x").split("x")]
    if len(dims) != 4 or min(dims) <= 0:
        raise argparse.ArgumentTypeError(f"shape {text!r} is not NxCxHxW")
    return tuple(dims)


def arguments():
    cores = os.cpu_count() or 1
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ops", default=",".join(OPS))
    p.add_argument("--dtype", default="f32", help="comma-separated: f32, f16, bf16")
    p.add_argument("--torch-params", default="same", choices=["same", "f32"],
                   help="16-bit cases: parameters in the same dtype (default) or float32")
    p.add_argument("--directions", default=",".join(DIRECTIONS))
    p.add_argument("--layouts", default="nchw,nhwc")
    p.add_argument("--batch", default="1,16")
    p.add_argument("--channels", default="64,256")
    p.add_argument("--spatial", default="7,56")
    p.add_argument("--shapes", default=None, help="NxCxHxW,... (replaces batch x channels x spatial)")
    p.add_argument("--groups", default="1,32")
    p.add_argument("--threads", default="1" if cores == 1 else f"1,{cores}")
    p.add_argument("--budget-ms", type=float, default=150)
    p.add_argument("--min-reps", type=int, default=5)
    p.add_argument("--paired-copy", action="store_true", help="accepted for normbench's arguments; ignored")
    p.add_argument("--config", default=None, help="normbench-style JSON config (same keys as the flags)")
    p.add_argument("--csv", required=True)
    p.add_argument("--normbench-json", default=None, help="normbench --json output: copy bandwidth for fraction_of_copy")
    p.add_argument("--copy-gbps", default=None, help="copy GB/s per thread count, e.g. 1:20.5,2:30")
    args = p.parse_args()
    if args.config:
        # Config values apply where the flag was left at its default (as in normbench).
        with open(args.config) as f:
            config = json.load(f)
        for key, value in config.items():
            attr = key.replace("-", "_")
            if hasattr(args, attr) and getattr(args, attr) == p.get_default(attr):
                if isinstance(value, list):
                    value = ",".join("x".join(map(str, v)) if isinstance(v, list) else str(v) for v in value)
                setattr(args, attr, value)
    return args


def case_grid(args):
    """Same order and rules as normbench's CaseGrid."""
    ops = OPS if args.ops == "all" else str_list(args.ops)
    directions = DIRECTIONS if args.directions == "all" else str_list(args.directions)
    layouts = str_list(args.layouts)
    if args.shapes:
        shapes = [parse_shape(s) for s in str_list(args.shapes)]
    else:
        shapes = [(n, c, s, s) for n in int_list(args.batch) for c in int_list(args.channels)
                  for s in int_list(args.spatial)]
    groups = int_list(args.groups)
    threads = int_list(args.threads)
    dtypes = str_list(args.dtype)
    for d in dtypes:
        if d not in DTYPES:
            sys.exit(f"--dtype: {d!r} is not one of {','.join(DTYPES)}")
    seen = set()
    for op in ops:
      for dtype in dtypes:
        if dtype != "f32" and op not in DTYPE_OPS.get(dtype, set()):
            continue
        for direction in directions:
            if direction == "forward-inference" and op not in INFERENCE_OPS:
                continue
            for layout in (layouts if op in LAYOUT_OPS else ["-"]):
                for shape in shapes:
                    for g in (groups if op == "groupnorm" else [None]):
                        n, c, h, w = shape
                        if g is not None and c % g != 0:
                            continue
                        if direction != "forward-inference":
                            if op == "batchnorm" and n * h * w < 2:
                                continue
                            if op == "instancenorm" and h * w < 2:
                                continue
                        key = (op, dtype, direction, layout, shape, g)
                        if key in seen:
                            continue
                        seen.add(key)
                        for t in threads:
                            yield op, direction, layout, shape, g, t, dtype


def traffic_bytes(op, direction, shape, dtype="f32"):
    """normbench's Traffic.bytes (docs/HARNESS.md): activation tensors at the
    element size, parameters at 4 bytes."""
    n, c, h, w = shape
    t, features = n * c * h * w, c * h * w
    if direction == "forward-training":
        tensors = 2 * t + (t if op == "adain" else 0)
        params = {"batchnorm": 6 * c, "instancenorm": 2 * c, "groupnorm": 2 * c,
                  "layernorm": 2 * features, "rmsnorm": features, "adain": 0, "weightnorm": n}[op]
    elif direction == "forward-inference":
        tensors, params = 2 * t, 4 * c
    else:
        tensors = 3 * t
        params = {"batchnorm": 3 * c, "instancenorm": 3 * c, "groupnorm": 3 * c,
                  "layernorm": 3 * features, "rmsnorm": 2 * features, "adain": 0, "weightnorm": 2 * n}[op]
    return ELEMENT_BYTES[dtype] * tensors + 4 * params


def make_case(torch, F, op, direction, layout, shape, groups, dtype="f32", params="same"):
    """Returns a zero-argument callable that runs one repetition."""
    n, c, h, w = shape
    gen = torch.Generator().manual_seed(1)
    element = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype]
    parameter = element if params == "same" else torch.float32

    def tensor(*dims, offset=True):
        x = torch.rand(*dims, generator=gen) * 2 - 1
        if offset and len(dims) == 4:
            ch = torch.arange(dims[1])
            x = x * (1 + (ch % 3) * 0.25).view(1, -1, 1, 1) + ((ch % 7 - 3) * 0.5).view(1, -1, 1, 1)
        return x.to(element) if len(dims) == 4 else x

    memory = torch.channels_last if layout == "nhwc" else torch.contiguous_format
    backward = direction == "backward"
    x = tensor(n, c, h, w).contiguous(memory_format=memory).requires_grad_(backward)
    per_channel = lambda: (1 + 0.25 * (torch.rand(c, generator=gen) * 2 - 1)).to(parameter).requires_grad_(backward)
    # Running statistics in the parameters' type (a module converted with .to()
    # converts its buffers too; F.batch_norm refuses float32 ones beside 16-bit γ).
    running_mean = ((torch.arange(c) % 7 - 3) * 0.5).to(parameter)
    running_var = torch.ones(c).to(parameter)

    if op == "batchnorm":
        weight, bias = per_channel(), per_channel()
        training = direction != "forward-inference"
        rm, rv = running_mean.clone(), running_var.clone()
        forward = lambda: F.batch_norm(x, rm, rv, weight, bias, training=training, momentum=0.1, eps=EPS)
        inputs = [x, weight, bias]
    elif op == "instancenorm":
        weight, bias = per_channel(), per_channel()
        if direction == "forward-inference":
            forward = lambda: F.instance_norm(x, running_mean, running_var, weight, bias,
                                              use_input_stats=False, eps=EPS)
        else:
            forward = lambda: F.instance_norm(x, weight=weight, bias=bias, eps=EPS)
        inputs = [x, weight, bias]
    elif op == "groupnorm":
        weight, bias = per_channel(), per_channel()
        forward = lambda: F.group_norm(x, groups, weight, bias, eps=EPS)
        inputs = [x, weight, bias]
    elif op == "layernorm":
        weight = (1 + 0.25 * (torch.rand(c, h, w, generator=gen) * 2 - 1)).to(parameter).requires_grad_(backward)
        bias = (0.25 * (torch.rand(c, h, w, generator=gen) * 2 - 1)).to(parameter).requires_grad_(backward)
        forward = lambda: F.layer_norm(x, [c, h, w], weight, bias, eps=EPS)
        inputs = [x, weight, bias]
    elif op == "rmsnorm":
        weight = (1 + 0.25 * (torch.rand(c, h, w, generator=gen) * 2 - 1)).to(parameter).requires_grad_(backward)
        forward = lambda: F.rms_norm(x, [c, h, w], weight, eps=None)
        inputs = [x, weight]
    elif op == "adain":
        style = tensor(n, c, h, w).contiguous(memory_format=memory)

        def forward():
            cm = x.mean(dim=(2, 3), keepdim=True)
            cv = x.var(dim=(2, 3), keepdim=True, unbiased=False)
            sm = style.mean(dim=(2, 3), keepdim=True)
            sv = style.var(dim=(2, 3), keepdim=True, unbiased=False)
            return (x - cm) * torch.rsqrt(cv + EPS) * torch.sqrt(sv + EPS) + sm
        inputs = [x]
    elif op == "weightnorm":
        # g in v's type whatever --torch-params: _weight_norm refuses a float32 g
        # beside a 16-bit v ("expected scalar type BFloat16 but found Float").
        g = (1 + 0.25 * (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1)).to(element).requires_grad_(backward)
        forward = lambda: torch._weight_norm(x, g, 0)
        inputs = [x, g]
    else:
        raise ValueError(op)

    if not backward:
        def run():
            with torch.no_grad():
                return forward()
        return run
    y = forward()
    dy = (torch.rand(y.shape, generator=gen) * 2 - 1).to(element).contiguous(memory_format=memory)
    return lambda: torch.autograd.grad(y, inputs, dy, retain_graph=True)


def measure(run, budget, min_reps):
    """Warm-up (~10 % of the budget, ≥ 2 runs), then samples until the budget is spent."""
    start = time.perf_counter()
    warmups = 0
    while warmups < 2 or time.perf_counter() - start < budget * 0.1:
        run()
        warmups += 1
    samples = []
    start = time.perf_counter()
    while len(samples) < min_reps or (time.perf_counter() - start < budget and len(samples) < 20000):
        t0 = time.perf_counter()
        run()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), min(samples)


def copy_bandwidth(args):
    if args.copy_gbps:
        return {int(k): float(v) for k, v in (item.split(":") for item in str_list(args.copy_gbps))}
    if args.normbench_json:
        with open(args.normbench_json) as f:
            used = json.load(f).get("copy_bandwidth_gbps", {}).get("used", {})
        return {int(k): float(v) for k, v in used.items()}
    return {}


def main():
    args = arguments()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        sys.exit("torch is not installed: use /work/torchvenv/bin/python or `pip install torch` in a venv")
    copy = copy_bandwidth(args)
    cases = list(case_grid(args))
    # Run all cases of one thread count together: resizing PyTorch's OpenMP pool
    # between every case made the next few calls tens of ms slower here.
    # Rows are written in normbench's order afterwards.
    order = sorted(range(len(cases)), key=lambda i: cases[i][5])
    rows = [None] * len(cases)
    started = time.perf_counter()
    tty = sys.stderr.isatty()
    for done, index in enumerate(order, 1):
        op, direction, layout, shape, groups, threads, dtype = cases[index]
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        label = (f"{op}{'' if dtype == 'f32' else ' ' + dtype} {direction} {layout} {'x'.join(map(str, shape))}"
                 + (f" G{groups}" if groups else ""))
        if tty:
            print(f"\r\033[K[{done}/{len(cases)}] {label} t{threads}", end="", file=sys.stderr, flush=True)
        n, c, h, w = shape
        nbytes = traffic_bytes(op, direction, shape, dtype)
        row = dict(op=op, direction=direction, layout=layout, N=n, C=c, H=h, W=w,
                   G=groups if groups else "-", threads=threads, affinity="none", bytes=nbytes,
                   median_ms="", min_ms="", gbps="", fraction_of_copy="", checked="torch", dtype=dtype)
        try:
            run = make_case(torch, F, op, direction, layout, shape, groups, dtype, args.torch_params)
            median, minimum = measure(run, args.budget_ms / 1e3, args.min_reps)
            gbps = nbytes / median / 1e9
            row.update(median_ms=f"{median * 1e3:.6f}", min_ms=f"{minimum * 1e3:.6f}", gbps=f"{gbps:.3f}")
            if threads in copy:
                row["fraction_of_copy"] = f"{gbps / copy[threads]:.4f}"
        except Exception as error:  # an op this torch lacks (e.g. F.rms_norm before 2.4)
            row["checked"] = "error"
            print(f"\nerror: {label} t{threads}: {error}", file=sys.stderr)
        rows[index] = row
    print(f"\r\033[K" if tty else "", end="", file=sys.stderr)
    print(f"{len(cases)} cases in {time.perf_counter() - started:.1f} s (torch {torch.__version__})",
          file=sys.stderr)
    with open(args.csv, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.csv}", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""PyTorch eager timings of the unfused sequences that issue 21's fused kernels replace.

    /work/torchvenv/bin/python tools/fused_compare.py --op groupnorm-silu \
        --shapes 2x320x64x64,2x1280x16x16 --groups 32 --layouts nchw,nhwc --threads 1,2

Ops (the composed PyTorch sequence, float32, eager):

* ``groupnorm-silu``: ``F.silu(F.group_norm(x, G, g, b) * (1 + scale) + shift)``,
  scale and shift ``[N, C, 1, 1]``; backward = autograd for x, g, b, scale, shift.
* ``batchnorm-add-relu``: ``F.relu(F.batch_norm(x, rm, rv, g, b, training=True) + identity)``;
  backward = autograd for x, identity, g, b.

The script re-executes itself with glibc's recycling settings
(``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736``: freed blocks are kept,
so eager temporaries do not pay page faults each call) unless ``--default-malloc``.
Prints one CSV row per case: op, direction, layout, shape, G, threads, median and
min ms over ``--reps`` timed calls after ``--warmup`` calls. nhwc = channels_last.
"""

import argparse
import os
import statistics
import sys
import time

RECYCLING = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--op", choices=["groupnorm-silu", "batchnorm-add-relu"], required=True)
    p.add_argument("--shapes", default="2x320x64x64,2x1280x16x16")
    p.add_argument("--groups", type=int, default=32)
    p.add_argument("--layouts", default="nchw,nhwc")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--directions", default="forward,backward")
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--default-malloc", action="store_true")
    args = p.parse_args()
    if not args.default_malloc and any(os.environ.get(k) != v for k, v in RECYCLING.items()):
        os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, **RECYCLING})

    import torch
    import torch.nn.functional as F

    def fmt(t):
        return t.contiguous(memory_format=torch.channels_last)

    print("op,direction,layout,shape,G,threads,median_ms,min_ms")
    for shape_text in args.shapes.split(","):
        N, C, H, W = (int(v) for v in shape_text.split("x"))
        for layout in args.layouts.split(","):
            for threads in (int(t) for t in args.threads.split(",")):
                torch.set_num_threads(threads)
                torch.manual_seed(0)
                x = torch.randn(N, C, H, W)
                if layout == "nhwc":
                    x = fmt(x)
                g = 1 + 0.25 * torch.randn(C)
                b = 0.25 * torch.randn(C)
                if args.op == "groupnorm-silu":
                    scale = 0.25 * torch.randn(N, C, 1, 1)
                    shift = 0.25 * torch.randn(N, C, 1, 1)
                    leaves = [x, g, b, scale, shift]

                    def run(x, g, b, scale, shift):
                        return F.silu(F.group_norm(x, args.groups, g, b, 1e-5) * (1 + scale) + shift)
                else:
                    identity = torch.randn(N, C, H, W)
                    if layout == "nhwc":
                        identity = fmt(identity)
                    rm, rv = torch.zeros(C), torch.ones(C)
                    leaves = [x, identity, g, b]

                    def run(x, identity, g, b):
                        return F.relu(F.batch_norm(x, rm, rv, g, b, True, 0.1, 1e-5) + identity)
                for direction in args.directions.split(","):
                    if direction == "forward":
                        with torch.no_grad():
                            call = lambda: run(*leaves)
                    else:
                        grads = [t.detach().clone().requires_grad_(True) for t in leaves]
                        y = run(*grads)
                        dy = torch.randn_like(y)
                        call = lambda: torch.autograd.grad(y, grads, dy, retain_graph=True)
                    for _ in range(args.warmup):
                        call()
                    times = []
                    for _ in range(args.reps):
                        t0 = time.perf_counter()
                        call()
                        times.append((time.perf_counter() - t0) * 1e3)
                    G = args.groups if args.op == "groupnorm-silu" else ""
                    print(f"{args.op},{direction},{layout},{shape_text},{G},{threads},"
                          f"{statistics.median(times):.4f},{min(times):.4f}", flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Time PyTorch eager's unfused sequences that the fused row kernels replace (issue 21).

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 \\
        /work/torchvenv/bin/python tools/fused_rows_torch.py --shapes 8192x1024,2048x4096 --threads 1,2

Run it with the recycling allocator settings above (glibc keeps freed tensors
instead of returning them to the kernel), as tools/torch_compare.py's runs are.
Ops, on [N, D] float32 rows:

* layernorm-residual: s = x + r; y = F.layer_norm(s, [D], w, b)   (s kept: the residual stream)
* rmsnorm-residual:   s = x + r; y = F.rms_norm(s, [D], w)
* rmsnorm-gate:       y = F.rms_norm(x, [D], w) * gate

Backward is autograd of the forward's outputs: (y, s) with (dy, ds) for the
residual ops (gradients for x, r, w, b), y with dy for the gate (x, gate, w),
timed with retain_graph as torch_compare.py does. Prints CSV:
op,direction,N,D,threads,median_ms,min_ms.
"""

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def measure(run, budget, min_reps):
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


def make(op, direction, n, d):
    gen = torch.Generator().manual_seed(1)
    rand = lambda *dims: torch.rand(*dims, generator=gen) * 2 - 1
    back = direction == "backward"
    x = rand(n, d).requires_grad_(back)
    other = rand(n, d).requires_grad_(back)
    w = (1 + 0.25 * rand(d)).requires_grad_(back)
    b = (0.25 * rand(d)).requires_grad_(back)

    def forward():
        if op == "layernorm-residual":
            s = x + other
            return F.layer_norm(s, [d], w, b, eps=1e-5), s
        if op == "rmsnorm-residual":
            s = x + other
            return F.rms_norm(s, [d], w, eps=None), s
        return F.rms_norm(x, [d], w, eps=None) * other, None

    if not back:
        def run():
            with torch.no_grad():
                return forward()
        return run
    y, s = forward()
    dy = rand(n, d)
    if s is None:
        return lambda: torch.autograd.grad(y, [x, other, w], dy, retain_graph=True)
    ds = rand(n, d)
    inputs = [x, other, w, b] if op == "layernorm-residual" else [x, other, w]
    return lambda: torch.autograd.grad([y, s], inputs, [dy, ds], retain_graph=True, allow_unused=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ops", default="layernorm-residual,rmsnorm-residual,rmsnorm-gate")
    p.add_argument("--directions", default="forward-training,backward")
    p.add_argument("--shapes", default="8192x1024,2048x4096")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--budget-ms", type=float, default=400)
    p.add_argument("--min-reps", type=int, default=5)
    a = p.parse_args()
    print("op,direction,N,D,threads,median_ms,min_ms")
    for threads in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(threads)
        for shape in a.shapes.split(","):
            n, d = (int(v) for v in shape.split("x"))
            for op in a.ops.split(","):
                for direction in a.directions.split(","):
                    med, low = measure(make(op, direction, n, d), a.budget_ms / 1000, a.min_reps)
                    print(f"{op},{direction},{n},{d},{threads},{med * 1e3:.3f},{low * 1e3:.3f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())

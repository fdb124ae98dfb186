"""16-bit (bf16, fp16) PyTorch fixtures, imported by make_fixtures.py.

LayerNorm and RMSNorm (layernorm_16bit, rmsnorm_16bit) and the channel ops
(batchnorm_16bit, groupnorm_16bit, instancenorm_16bit, adain_16bit,
weightnorm_16bit). x and dy are drawn in float32 and rounded once to the 16-bit
type (so the stored bits are the values PyTorch reads); gamma, beta, running
statistics stay float32 (PyTorch's mixed-dtype path, as the library's API).
16-bit tensors are stored as their raw bit patterns (integers 0...65535),
float32 ones as values. Each file is seeded on its own (make_fixtures.main).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import numpy as np

DT = torch.float32

HALF_TYPES = {"bf16": torch.bfloat16, "f16": torch.float16}
# torch.testing's default tolerances per dtype (rtol; atol 1e-5), of the row's scale.
HALF_RTOL = {"bf16": 1.6e-2, "f16": 1e-3}


def flist(t):
    """A float32 tensor as a flat list of its exact values (None stays None)."""
    if t is None:
        return None
    a = t.detach().cpu().to(DT).contiguous().numpy().astype(np.float32).ravel()
    return [float(np.float32(v)) for v in a]


def to_layout(x, layout):
    """Give a logical NCHW tensor the memory format of `layout`."""
    return x.contiguous(memory_format=torch.channels_last) if layout == "nhwc" else x.contiguous()


def gamma_beta(c, affine):
    if not affine:
        return None, None
    return 1.0 + 0.1 * torch.randn(c, dtype=DT), 0.1 * torch.randn(c, dtype=DT)


def bits16(t):
    """A 16-bit tensor's raw bit patterns, flattened, as integers 0...65535."""
    return [int(v) & 0xFFFF for v in t.detach().contiguous().view(torch.int16).flatten().tolist()]


def mem16(t, layout):
    """Logical NCHW 16-bit tensor -> raw bits in the memory order of `layout`."""
    if t is None:
        return None
    t = t.detach()
    if layout == "nhwc":
        t = t.permute(0, 2, 3, 1)
    return bits16(t.contiguous().flatten())


def half_close(got, ref, dtype, what):
    """torch.testing's default tolerance for `dtype`, relative to the row's scale."""
    got = got.detach().double()
    scale = ref.abs().max(dim=-1, keepdim=True).values.clamp_min(1e-30)
    err = ((got - ref).abs() / (1e-5 + HALF_RTOL[dtype] * scale)).max().item()
    assert err <= 1, f"self-check failed for {what}: {err} of the tolerance"


def ulp_gap(got, ref, dtype):
    """Largest distance, in ulps of `dtype`, between the 16-bit tensor `got` and
    the float64 `ref` rounded to `dtype` (for the self-checks and the notes)."""
    def pos(t):
        b = t.detach().contiguous().view(torch.int16).to(torch.int64) & 0xFFFF
        return torch.where(b >= 0x8000, -(b & 0x7FFF), b)
    r = ref.detach().to(torch.float32).to(HALF_TYPES[dtype])
    return (pos(got) - pos(r)).abs().max().item() if got.numel() else 0


def drawn(shape, dtype, mean=0.0, std=1.0):
    """float32 normal values rounded once to the 16-bit type."""
    return (mean + std * torch.randn(*shape, dtype=DT)).to(HALF_TYPES[dtype])


# --------------------------------------------------------------------------
# LayerNorm and RMSNorm
# --------------------------------------------------------------------------
#
# PyTorch computes in float32 and rounds y and dx once (layer_norm), or runs
# the composite rms_norm (no fused kernel for mixed dtypes); the tests compare
# the library against a float64 reference of the stored inputs (1 ulp forward,
# 2 ulp backward) and PyTorch against the same reference within
# torch.testing's default tolerance for the dtype (bf16: rtol 1.6e-2, fp16:
# rtol 1e-3, atol 1e-5, of the row's scale), which the self-check asserts.

def ln_half_case(dtype, rows, feats, affine, eps=1e-5):
    dt = HALF_TYPES[dtype]
    x = torch.randn(rows, feats, dtype=DT).mul_(1.5).add_(0.5).to(dt).requires_grad_(True)
    g = (1.0 + 0.1 * torch.randn(feats, dtype=DT)).requires_grad_(True) if affine else None
    b = (0.1 * torch.randn(feats, dtype=DT)).requires_grad_(True) if affine else None
    y = F.layer_norm(x, [feats], g, b, eps)
    dy = torch.randn(rows, feats, dtype=DT).to(dt)
    y.backward(dy)
    xd = x.detach().double()
    m = xd.mean(1, keepdim=True)
    r = 1.0 / torch.sqrt(xd.var(1, unbiased=False, keepdim=True) + eps)
    xhat = (xd - m) * r
    gd = g.detach().double() if affine else torch.ones(feats, dtype=torch.float64)
    ref = xhat * gd + (b.detach().double() if affine else 0)
    name = f"ln_{dtype}_{rows}x{feats}_{'affine' if affine else 'noaffine'}"
    half_close(y, ref, dtype, name + " output")
    gg = dy.double() * gd
    dref = r * (gg - gg.mean(1, keepdim=True) - xhat * (gg * xhat).mean(1, keepdim=True))
    half_close(x.grad, dref, dtype, name + " dx")
    return {
        "name": name, "dtype": dtype, "rows": rows, "features": feats, "eps": eps, "affine": affine,
        "gamma": flist(g), "beta": flist(b),
        "input": bits16(x), "output": bits16(y), "dy": bits16(dy), "dx": bits16(x.grad),
        "dgamma": flist(g.grad) if affine else None, "dbeta": flist(b.grad) if affine else None,
    }


def rms_half_case(dtype, rows, feats, weighted, eps):
    dt = HALF_TYPES[dtype]
    x = torch.randn(rows, feats, dtype=DT).mul_(1.5).add_(0.5).to(dt).requires_grad_(True)
    w = (1.0 + 0.1 * torch.randn(feats, dtype=DT)).requires_grad_(True) if weighted else None
    y = F.rms_norm(x, [feats], w, eps)
    dy = torch.randn(rows, feats, dtype=DT).to(dt)
    y.backward(dy)
    e = torch.finfo(DT).eps if eps is None else eps
    xd = x.detach().double()
    r = 1.0 / torch.sqrt((xd * xd).mean(1, keepdim=True) + e)
    wd = w.detach().double() if weighted else torch.ones(feats, dtype=torch.float64)
    ref = xd * r * wd
    name = (f"rms_{dtype}_{rows}x{feats}_{'weight' if weighted else 'noweight'}_"
            f"{'epsNone' if eps is None else 'eps1e-6'}")
    half_close(y, ref, dtype, name + " output")
    gg = dy.double() * wd
    xhat = xd * r
    dref = r * (gg - xhat * (gg * xhat).mean(1, keepdim=True))
    half_close(x.grad, dref, dtype, name + " dx")
    return {
        "name": name, "dtype": dtype, "rows": rows, "features": feats, "eps": e,
        "weight": flist(w), "input": bits16(x), "output": bits16(y), "dy": bits16(dy), "dx": bits16(x.grad),
        "dweight": flist(w.grad) if weighted else None,
    }


def make_layernorm_16bit():
    cases = []
    for dtype in HALF_TYPES:
        for rows, feats, affine in [(4, 10, True), (3, 33, False), (2, 200, True), (2, 67, True)]:
            cases.append(ln_half_case(dtype, rows, feats, affine))
    notes = ("F.layer_norm on bf16/fp16 x with float32 gamma/beta (PyTorch's mixed-dtype path); "
             "input, output, dy, dx are raw 16-bit patterns, gamma/beta/dgamma/dbeta float32 values. "
             "dtype: bf16 or f16.")
    return "layernorm_16bit", cases, notes


def make_rmsnorm_16bit():
    cases = []
    for dtype in HALF_TYPES:
        for rows, feats, weighted, eps in [(4, 16, True, None), (3, 13, False, 1e-6), (2, 100, True, None)]:
            cases.append(rms_half_case(dtype, rows, feats, weighted, eps))
    notes = ("F.rms_norm on bf16/fp16 x with a float32 weight (composite: no fused kernel for mixed "
             "dtypes); 16-bit tensors as raw bit patterns, weight/dweight float32. eps is the value used "
             "(epsNone: torch.finfo(float32).eps).")
    return "rmsnorm_16bit", cases, notes

#!/usr/bin/env python3
"""Generate PyTorch conformance fixtures for the NormKernels tests.

Writes one small JSON file per operation into
``Tests/NormKernelsTests/Fixtures/`` (batchnorm, layernorm, groupnorm,
instancenorm, rmsnorm, adain, weightnorm, batchnorm_fold, groupnorm_silu,
batchnorm_add_relu, fused_rows, fused_rows_16bit, and the 16-bit layernorm_16bit,
rmsnorm_16bit, batchnorm_16bit, groupnorm_16bit, instancenorm_16bit, adain_16bit,
weightnorm_16bit: tools/fixtures16.py, tools/fixtures16_channels.py;
groupnorm_silu_16bit, batchnorm_add_relu_16bit).
The generated JSON
files are committed to the repository, so the Swift tests never need PyTorch;
this script is only needed to regenerate or extend them.

Setup (once) and run from the repository root::

    python3 -m venv ~/torchvenv && ~/torchvenv/bin/pip install torch numpy
    ~/torchvenv/bin/python tools/make_fixtures.py        # or: python3 tools/make_fixtures.py
                                                           # with torch importable

Options: ``--out DIR`` writes somewhere else (default: the Fixtures folder next
to this repository's tests); ``--only FILE`` (repeatable) writes only the named
files, e.g. ``--only layernorm_16bit.json --only rmsnorm_16bit.json``, leaving the
others as committed.

Conventions shared by all files
-------------------------------
* Every file is ``{"op", "torch_version", "notes", "cases": [...]}``.
* All numbers are float32 values written at full precision: each value is the
  exact float32 converted to a double (``float(np.float32(v))``), so parsing it
  as Double and converting to Float is exact.
* Generation is deterministic: float32 tensors, ``torch.set_num_threads(1)``,
  ``torch.manual_seed(0)`` at the start of every file.
* Shapes of activations are recorded logically as ``[N, C, H, W]``.  Tensors
  are stored flattened in the memory order of the case's ``layout``:
  ``"nchw"`` -> ``[N][C][H][W]``; ``"nhwc"`` -> ``[N][H][W][C]`` (i.e.
  ``x.permute(0, 2, 3, 1).contiguous().flatten()``).  ``[N, D]`` data is shape
  ``[N, D, 1, 1]`` with layout ``"nhwc"`` (memory ``[N][D]``).
* Per-channel vectors (gamma, beta, running stats, dgamma, ...) have length C;
  per-(n, c) or per-(n, g) statistics are stored n-major.
* Gradients come from autograd with a random upstream gradient ``dy`` (stored
  in the same memory order as the output).
* Absent optional tensors are ``null``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    sys.exit(
        f"make_fixtures.py needs torch and numpy ({e}).\n"
        "  python3 -m venv ~/torchvenv && ~/torchvenv/bin/pip install torch numpy\n"
        "  ~/torchvenv/bin/python tools/make_fixtures.py"
    )

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO_ROOT, "Tests", "NormKernelsTests", "Fixtures")

DT = torch.float32


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def flist(t):
    """Flatten a tensor (already in the wanted memory order) to a list of
    exact float32 values as Python floats; None stays None."""
    if t is None:
        return None
    a = t.detach().cpu().to(DT).contiguous().numpy().astype(np.float32).ravel()
    return [float(np.float32(v)) for v in a]


def mem(t, layout):
    """Logical NCHW tensor -> flat list in the memory order of `layout`."""
    if t is None:
        return None
    t = t.detach()
    if layout == "nchw":
        return flist(t.contiguous().flatten())
    if layout == "nhwc":
        return flist(t.permute(0, 2, 3, 1).contiguous().flatten())
    raise ValueError(layout)


def to_layout(x, layout):
    """Give a logical NCHW tensor the memory format of `layout`."""
    if layout == "nhwc":
        return x.contiguous(memory_format=torch.channels_last)
    return x.contiguous()


def gamma_beta(c, affine):
    if not affine:
        return None, None
    g = 1.0 + 0.1 * torch.randn(c, dtype=DT)
    b = 0.1 * torch.randn(c, dtype=DT)
    return g, b


def close(a, b, tol=1e-4, what=""):
    a = a.detach().double()
    b = b.detach().double()
    err = (a - b).abs().max().item() if a.numel() else 0.0
    scale = max(1.0, b.abs().max().item() if b.numel() else 1.0)
    assert err <= tol * scale, f"self-check failed for {what}: max err {err}"


def write(out_dir, fname, op, cases, notes):
    doc = {"op": op, "torch_version": torch.__version__, "notes": notes}
    path = os.path.join(out_dir, fname)
    # Compact, but one case per line so diffs stay readable.
    head = json.dumps(doc, separators=(",", ":"))[:-1]
    lines = [json.dumps(c, separators=(",", ":"), allow_nan=False) for c in cases]
    text = head + ',"cases":[\n' + ",\n".join(lines) + "\n]}\n"
    with open(path, "w") as f:
        f.write(text)
    with open(path) as f:
        loaded = json.load(f)
    assert loaded["op"] == op and len(loaded["cases"]) == len(cases)
    size = os.path.getsize(path)
    print(f"  {fname}: {len(cases)} cases, {size} bytes")
    return size


# --------------------------------------------------------------------------
# 1. batch norm
# --------------------------------------------------------------------------

def bn_case(name, shape, layout, *, eps=1e-5, momentum=0.1, affine=True,
            relu=False, steps=3, mean=0.0, std=1.0, eval_=False):
    N, C, H, W = shape
    is_nd = H == 1 and W == 1 and layout == "nhwc"
    mod = (nn.BatchNorm1d if is_nd else nn.BatchNorm2d)(
        C, eps=eps, momentum=momentum, affine=affine, track_running_stats=True)
    gamma, beta = gamma_beta(C, affine)
    if affine:
        with torch.no_grad():
            mod.weight.copy_(gamma)
            mod.bias.copy_(beta)
    mod.train()

    def run(x4):
        xin = x4.reshape(N, C) if is_nd else to_layout(x4, layout)
        y = mod(xin)
        if relu:
            y = F.relu(y)
        return y.reshape(N, C, H, W)

    recs = []
    dy = dx = dgamma = dbeta = None
    for s in range(steps):
        x = (mean + std * torch.randn(N, C, H, W, dtype=DT)).detach()
        last = s == steps - 1
        if last:
            x.requires_grad_(True)
            mod.zero_grad(set_to_none=True)
        y = run(x)
        # batch statistics as PyTorch computes them (no running update here)
        _, smean, sinvstd = torch.native_batch_norm(
            x.detach(), None, None, None, None, True, 0.0, eps)
        xd = x.detach().double()
        m64 = xd.mean(dim=(0, 2, 3))
        v64 = xd.var(dim=(0, 2, 3), unbiased=False)
        close(smean, m64, 1e-5, name + " save_mean")
        close(sinvstd, 1.0 / torch.sqrt(v64 + eps), 1e-4, name + " save_invstd")
        ref = (xd - m64.view(1, C, 1, 1)) / torch.sqrt(v64 + eps).view(1, C, 1, 1)
        if affine:
            ref = ref * gamma.double().view(1, C, 1, 1) + beta.double().view(1, C, 1, 1)
        if relu:
            ref = ref.clamp_min(0)
        close(y, ref, 1e-4, name + " output")
        recs.append({
            "input": mem(x, layout),
            "output": mem(y, layout),
            "save_mean": flist(smean),
            "save_invstd": flist(sinvstd),
        })
        if last:
            dy = torch.randn(N, C, H, W, dtype=DT)
            y.backward(dy)
            dx = x.grad
            if affine:
                dgamma, dbeta = mod.weight.grad, mod.bias.grad

    case = {
        "name": name, "shape": list(shape), "layout": layout,
        "eps": eps, "momentum": momentum, "affine": affine,
        "relu": relu, "gamma": flist(gamma), "beta": flist(beta),
        "steps": recs,
        "running_mean": flist(mod.running_mean),
        "running_var": flist(mod.running_var),
        "dy": mem(dy, layout), "dx": mem(dx, layout),
        "dgamma": flist(dgamma), "dbeta": flist(dbeta),
        "eval_input": None, "eval_output": None,
    }
    if eval_:
        mod.eval()
        with torch.no_grad():
            xe = torch.randn(N, C, H, W, dtype=DT)
            ye = run(xe)
        rm, rv = mod.running_mean.double(), mod.running_var.double()
        ref = (xe.double() - rm.view(1, C, 1, 1)) / torch.sqrt(rv + eps).view(1, C, 1, 1)
        if affine:
            ref = ref * gamma.double().view(1, C, 1, 1) + beta.double().view(1, C, 1, 1)
        if relu:
            ref = ref.clamp_min(0)
        close(ye, ref, 1e-4, name + " eval")
        case["eval_input"] = mem(xe, layout)
        case["eval_output"] = mem(ye, layout)
    return case


def make_batchnorm():
    cases = [
        bn_case("bn_nchw_4x3x5x5_affine", (4, 3, 5, 5), "nchw"),
        bn_case("bn_nhwc_4x3x5x5_affine", (4, 3, 5, 5), "nhwc"),
        bn_case("bn_nchw_4x3x5x5_noaffine", (4, 3, 5, 5), "nchw", affine=False),
        bn_case("bn_nhwc_2x16x3x3_noaffine_mom0.3", (2, 16, 3, 3), "nhwc",
                affine=False, momentum=0.3),
        bn_case("bn_nhwc_2x16x3x3_affine", (2, 16, 3, 3), "nhwc"),
        bn_case("bn_nd_8x5_affine_cumulative", (8, 5, 1, 1), "nhwc", momentum=None),
        bn_case("bn_nd_8x5_noaffine", (8, 5, 1, 1), "nhwc", affine=False),
        bn_case("bn_nchw_3x4x7x1_affine_eps1e-3_mean5std3", (3, 4, 7, 1), "nchw",
                eps=1e-3, mean=5.0, std=3.0),
        bn_case("bn_nchw_3x4x7x1_noaffine", (3, 4, 7, 1), "nchw", affine=False),
        bn_case("bn_nchw_4x3x5x5_affine_relu", (4, 3, 5, 5), "nchw", relu=True),
        bn_case("bn_nhwc_2x16x3x3_affine_eval", (2, 16, 3, 3), "nhwc", eval_=True),
    ]
    notes = ("F.batch_norm training=True via nn.BatchNorm2d/1d(track_running_stats=True); "
             "running stats start at mean 0, var 1 and are PyTorch's own update "
             "(unbiased var; momentum null = cumulative average 1/num_batches_tracked). "
             "save_invstd = 1/sqrt(biased var + eps). dy/dx/dgamma/dbeta are for the last "
             "step only. relu=true: output = relu(bn(x)), backward through the relu. "
             "eval_output: eval mode (running stats) on eval_input after all steps.")
    return "batchnorm", cases, notes


# --------------------------------------------------------------------------
# 2. layer norm
# --------------------------------------------------------------------------

def ln_case(name, rows, norm_shape, affine, eps=1e-5):
    feats = math.prod(norm_shape)
    x = torch.randn(rows, *norm_shape, dtype=DT, requires_grad=True)
    if affine:
        g = (1.0 + 0.1 * torch.randn(*norm_shape, dtype=DT)).requires_grad_(True)
        b = (0.1 * torch.randn(*norm_shape, dtype=DT)).requires_grad_(True)
    else:
        g = b = None
    y = F.layer_norm(x, list(norm_shape), g, b, eps)
    _, mean, rstd = torch.native_layer_norm(
        x.detach(), list(norm_shape), None if g is None else g.detach(),
        None if b is None else b.detach(), eps)
    xd = x.detach().double().reshape(rows, feats)
    m64 = xd.mean(1)
    r64 = 1.0 / torch.sqrt(xd.var(1, unbiased=False) + eps)
    close(mean.flatten(), m64, 1e-5, name + " mean")
    close(rstd.flatten(), r64, 1e-4, name + " rstd")
    ref = (xd - m64[:, None]) * r64[:, None]
    if affine:
        ref = ref * g.detach().double().flatten() + b.detach().double().flatten()
    close(y.reshape(rows, feats), ref, 1e-4, name + " output")
    dy = torch.randn_like(y)
    y.backward(dy)
    return {
        "name": name, "rows": rows, "features": feats, "eps": eps, "affine": affine,
        "gamma": flist(g), "beta": flist(b),
        "input": flist(x.flatten()), "output": flist(y.flatten()),
        "mean": flist(mean), "rstd": flist(rstd),
        "dy": flist(dy), "dx": flist(x.grad),
        "dgamma": flist(g.grad) if affine else None,
        "dbeta": flist(b.grad) if affine else None,
    }


def make_layernorm():
    cases = []
    for rows, feats in [(4, 10), (3, 33), (1, 64), (2, 7)]:
        for affine in (True, False):
            nm = f"ln_{rows}x{feats}_{'affine' if affine else 'noaffine'}"
            cases.append(ln_case(nm, rows, (feats,), affine))
    cases.append(ln_case("ln_nchw_2x3x4x5_over_chw_affine", 2, (3, 4, 5), True))
    notes = ("F.layer_norm over the last `features` elements of each of `rows` rows; "
             "mean/rstd per row (rstd = 1/sqrt(biased var + eps)). The case "
             "ln_nchw_2x3x4x5_over_chw_affine normalizes an NCHW [2,3,4,5] tensor over "
             "[C,H,W] (gamma/beta of shape [3,4,5], flattened row-major).")
    return "layernorm", cases, notes


# --------------------------------------------------------------------------
# 3. group norm
# --------------------------------------------------------------------------

def gn_case(name, shape, layout, groups, affine, eps=1e-5):
    N, C, H, W = shape
    x = torch.randn(N, C, H, W, dtype=DT)
    xin = to_layout(x, layout).requires_grad_(True)
    gamma, beta = gamma_beta(C, affine)
    g = gamma.clone().requires_grad_(True) if affine else None
    b = beta.clone().requires_grad_(True) if affine else None
    y = F.group_norm(xin, groups, g, b, eps)
    _, mean, rstd = torch.native_group_norm(
        x, None, None, N, C, H * W, groups, eps)
    xd = x.double().reshape(N, groups, -1)
    m64 = xd.mean(2)
    r64 = 1.0 / torch.sqrt(xd.var(2, unbiased=False) + eps)
    close(mean.flatten(), m64.flatten(), 1e-5, name + " mean")
    close(rstd.flatten(), r64.flatten(), 1e-4, name + " rstd")
    ref = ((xd - m64[..., None]) * r64[..., None]).reshape(N, C, H, W)
    if affine:
        ref = ref * gamma.double().view(1, C, 1, 1) + beta.double().view(1, C, 1, 1)
    close(y, ref, 1e-4, name + " output")
    dy = torch.randn(N, C, H, W, dtype=DT)
    y.backward(to_layout(dy, layout))
    return {
        "name": name, "shape": list(shape), "layout": layout, "groups": groups,
        "eps": eps, "affine": affine, "gamma": flist(gamma), "beta": flist(beta),
        "input": mem(x, layout), "output": mem(y, layout),
        "mean": flist(mean), "rstd": flist(rstd),
        "dy": mem(dy, layout), "dx": mem(xin.grad, layout),
        "dgamma": flist(g.grad) if affine else None,
        "dbeta": flist(b.grad) if affine else None,
    }


def make_groupnorm():
    cases = []
    for shape, G in [((2, 6, 4, 4), 3), ((2, 4, 3, 5), 2), ((1, 8, 2, 2), 8),
                     ((3, 6, 5, 1), 1)]:
        for layout in ("nchw", "nhwc"):
            for affine in (True, False):
                nm = (f"gn_{layout}_{'x'.join(map(str, shape))}_g{G}_"
                      f"{'affine' if affine else 'noaffine'}")
                cases.append(gn_case(nm, shape, layout, G, affine))
    notes = ("F.group_norm; nhwc cases feed a channels_last input. mean/rstd per "
             "(n, g), n-major (rstd = 1/sqrt(biased var + eps)).")
    return "groupnorm", cases, notes


def bn_add_relu_case(name, shape, layout, affine, relu=True, eps=1e-5, momentum=0.1):
    """BatchNorm + add + ReLU, the composed sequence relu(bn(x) + identity):
    training (one step from zero/one running statistics, autograd for x,
    identity, gamma, beta), then eval on a fresh x and identity."""
    N, C, H, W = shape
    is_nd = H == 1 and W == 1 and layout == "nhwc"
    gamma, beta = gamma_beta(C, affine)
    g = gamma.clone().requires_grad_(True) if affine else None
    b = beta.clone().requires_grad_(True) if affine else None
    rm, rv = torch.zeros(C, dtype=DT), torch.ones(C, dtype=DT)

    def run(x, identity, training):
        xin = x.reshape(N, C) if is_nd else to_layout(x, layout)
        rin = identity.reshape(N, C) if is_nd else to_layout(identity, layout)
        u = F.batch_norm(xin, rm, rv, g, b, training, momentum, eps) + rin
        return (F.relu(u) if relu else u).reshape(N, C, H, W)

    x = torch.randn(N, C, H, W, dtype=DT).requires_grad_(True)
    identity = (2 * torch.randn(N, C, H, W, dtype=DT)).requires_grad_(True)
    y = run(x, identity, True)
    xd = x.detach().double()
    m64, v64 = xd.mean(dim=(0, 2, 3)), xd.var(dim=(0, 2, 3), unbiased=False)
    ref = (xd - m64.view(1, C, 1, 1)) / torch.sqrt(v64 + eps).view(1, C, 1, 1)
    if affine:
        ref = ref * gamma.double().view(1, C, 1, 1) + beta.double().view(1, C, 1, 1)
    ref = ref + identity.detach().double()
    close(y, ref.clamp_min(0) if relu else ref, 1e-4, name + " output")
    dy = torch.randn(N, C, H, W, dtype=DT)
    y.backward(dy)
    case = {
        "name": name, "shape": list(shape), "layout": layout, "eps": eps, "momentum": momentum,
        "affine": affine, "relu": relu, "gamma": flist(gamma), "beta": flist(beta),
        "input": mem(x, layout), "identity": mem(identity, layout), "output": mem(y, layout),
        "running_mean": flist(rm), "running_var": flist(rv),
        "dy": mem(dy, layout), "dx": mem(x.grad, layout), "didentity": mem(identity.grad, layout),
        "dgamma": flist(g.grad) if affine else None, "dbeta": flist(b.grad) if affine else None,
    }
    with torch.no_grad():
        xe = torch.randn(N, C, H, W, dtype=DT)
        ie = torch.randn(N, C, H, W, dtype=DT)
        ye = run(xe, ie, False)
    case["eval_input"] = mem(xe, layout)
    case["eval_identity"] = mem(ie, layout)
    case["eval_output"] = mem(ye, layout)
    return case


def make_batchnorm_add_relu():
    cases = []
    for shape, layout in [((2, 3, 4, 5), "nchw"), ((2, 5, 3, 3), "nhwc"), ((2, 3, 7, 7), "nchw"),
                          ((8, 6, 1, 1), "nhwc")]:
        for affine, relu in ((True, True), (False, False)):
            nm = (f"bnaddrelu_{layout}_{'x'.join(map(str, shape))}_"
                  f"{'affine' if affine else 'noaffine'}_{'relu' if relu else 'norelu'}")
            cases.append(bn_add_relu_case(nm, shape, layout, affine, relu))
    notes = ("relu(F.batch_norm(x, running_mean, running_var, gamma, beta, training) + identity) "
             "(relu false: without the relu). Training from running statistics 0/1 (running_mean, "
             "running_var: after the step), autograd dx, didentity, dgamma, dbeta; then eval on "
             "eval_input and eval_identity with those running statistics. [N, D] data is "
             "[N, D, 1, 1] nhwc (F.batch_norm on [N, D]).")
    return "batchnorm_add_relu", cases, notes


def gn_silu_case(name, shape, layout, groups, affine, modulated, eps=1e-5, gain=1.0):
    """GroupNorm + SiLU, the composed sequence
    F.silu(F.group_norm(x, G, g, b) * (1 + scale) + shift), scale/shift [N, C, 1, 1]."""
    N, C, H, W = shape
    x = torch.randn(N, C, H, W, dtype=DT)
    xin = to_layout(x, layout).requires_grad_(True)
    gamma, beta = gamma_beta(C, affine)
    if affine:
        gamma = gamma * gain
    g = gamma.clone().requires_grad_(True) if affine else None
    b = beta.clone().requires_grad_(True) if affine else None
    scale = (0.5 * torch.randn(N, C, 1, 1, dtype=DT)).requires_grad_(True) if modulated else None
    shift = (0.5 * torch.randn(N, C, 1, 1, dtype=DT)).requires_grad_(True) if modulated else None
    z = F.group_norm(xin, groups, g, b, eps)
    if modulated:
        z = z * (1 + scale) + shift
    y = F.silu(z)
    xd = x.double().reshape(N, groups, -1)
    m64 = xd.mean(2, keepdim=True)
    r64 = 1.0 / torch.sqrt(xd.var(2, unbiased=False, keepdim=True) + eps)
    ref = ((xd - m64) * r64).reshape(N, C, H, W)
    if affine:
        ref = ref * gamma.double().view(1, C, 1, 1) + beta.double().view(1, C, 1, 1)
    if modulated:
        ref = ref * (1 + scale.double()) + shift.double()
    close(y, F.silu(ref), 1e-4, name + " output")
    dy = torch.randn(N, C, H, W, dtype=DT)
    y.backward(to_layout(dy, layout))
    return {
        "name": name, "shape": list(shape), "layout": layout, "groups": groups,
        "eps": eps, "affine": affine, "gamma": flist(gamma), "beta": flist(beta),
        "scale": flist(scale.flatten()) if modulated else None,
        "shift": flist(shift.flatten()) if modulated else None,
        "input": mem(x, layout), "output": mem(y, layout),
        "dy": mem(dy, layout), "dx": mem(xin.grad, layout),
        "dgamma": flist(g.grad) if affine else None,
        "dbeta": flist(b.grad) if affine else None,
        "dscale": flist(scale.grad.flatten()) if modulated else None,
        "dshift": flist(shift.grad.flatten()) if modulated else None,
    }


def make_groupnorm_silu():
    cases = []
    # channel groups NCHW and NHWC, small maps (expanded affine NCHW, group
    # segments NHWC), feature vectors; one case with gamma ~ 30 for large |z|.
    for shape, G, layout in [((1, 4, 8, 8), 2, "nchw"), ((2, 4, 5, 5), 2, "nhwc"),
                             ((2, 6, 3, 3), 3, "nchw"), ((1, 16, 3, 3), 2, "nhwc"),
                             ((4, 16, 1, 1), 2, "nchw"), ((1, 5, 4, 5), 5, "nhwc")]:
        for affine, modulated in ((True, True), (False, False)):
            nm = (f"gnsilu_{layout}_{'x'.join(map(str, shape))}_g{G}_"
                  f"{'affine' if affine else 'noaffine'}_{'mod' if modulated else 'plain'}")
            cases.append(gn_silu_case(nm, shape, layout, G, affine, modulated))
    cases.append(gn_silu_case("gnsilu_nchw_1x4x8x8_g2_large", (1, 4, 8, 8), "nchw", 2, True, True, gain=30.0))
    notes = ("F.silu(F.group_norm(x, G, gamma, beta, eps) * (1 + scale) + shift), scale and shift "
             "[N, C, 1, 1] stored n-major (null = that term absent); autograd dx, dgamma, dbeta, "
             "dscale, dshift. nhwc cases feed a channels_last input.")
    return "groupnorm_silu", cases, notes


# --------------------------------------------------------------------------
# 4. instance norm
# --------------------------------------------------------------------------

def in_case(name, shape, layout, affine, *, track=False, momentum=0.1, eps=1e-5,
            steps=None, eval_=False):
    N, C, H, W = shape
    steps = steps or (3 if track else 1)
    gamma, beta = gamma_beta(C, affine)
    mod = None
    if track:
        mod = nn.InstanceNorm2d(C, eps=eps, momentum=momentum, affine=affine,
                                track_running_stats=True)
        if affine:
            with torch.no_grad():
                mod.weight.copy_(gamma)
                mod.bias.copy_(beta)
        mod.train()
        params = (mod.weight, mod.bias) if affine else (None, None)
    else:
        params = ((gamma.clone().requires_grad_(True), beta.clone().requires_grad_(True))
                  if affine else (None, None))

    def run(xin):
        if mod is not None:
            return mod(xin)
        return F.instance_norm(xin, None, None, params[0], params[1],
                               use_input_stats=True, momentum=0.1, eps=eps)

    recs = []
    dy = dx = dgamma = dbeta = None
    for s in range(steps):
        x = torch.randn(N, C, H, W, dtype=DT)
        last = s == steps - 1
        xin = to_layout(x, layout)
        if last:
            xin.requires_grad_(True)
            if mod is not None:
                mod.zero_grad(set_to_none=True)
        y = run(xin)
        _, smean, sinvstd = torch.native_batch_norm(
            x.reshape(1, N * C, H, W), None, None, None, None, True, 0.0, eps)
        xd = x.double().reshape(N, C, -1)
        m64 = xd.mean(2)
        v64 = xd.var(2, unbiased=False)
        close(smean, m64.flatten(), 1e-5, name + " save_mean")
        close(sinvstd, (1.0 / torch.sqrt(v64 + eps)).flatten(), 1e-4, name + " save_invstd")
        ref = ((xd - m64[..., None]) / torch.sqrt(v64 + eps)[..., None]).reshape(N, C, H, W)
        if affine:
            ref = ref * gamma.double().view(1, C, 1, 1) + beta.double().view(1, C, 1, 1)
        close(y, ref, 1e-4, name + " output")
        recs.append({"input": mem(x, layout), "output": mem(y, layout),
                     "save_mean": flist(smean), "save_invstd": flist(sinvstd)})
        if last:
            dy = torch.randn(N, C, H, W, dtype=DT)
            y.backward(to_layout(dy, layout))
            dx = xin.grad
            if affine:
                dgamma, dbeta = params[0].grad, params[1].grad

    case = {
        "name": name, "shape": list(shape), "layout": layout, "eps": eps,
        "momentum": momentum if track else None, "affine": affine, "relu": False,
        "track_running_stats": track,
        "gamma": flist(gamma), "beta": flist(beta), "steps": recs,
        "running_mean": flist(mod.running_mean) if track else None,
        "running_var": flist(mod.running_var) if track else None,
        "dy": mem(dy, layout), "dx": mem(dx, layout),
        "dgamma": flist(dgamma), "dbeta": flist(dbeta),
        "eval_input": None, "eval_output": None,
    }
    if eval_:
        assert track
        mod.eval()
        with torch.no_grad():
            xe = torch.randn(N, C, H, W, dtype=DT)
            ye = mod(to_layout(xe, layout))
        rm, rv = mod.running_mean.double(), mod.running_var.double()
        ref = (xe.double() - rm.view(1, C, 1, 1)) / torch.sqrt(rv + eps).view(1, C, 1, 1)
        if affine:
            ref = ref * gamma.double().view(1, C, 1, 1) + beta.double().view(1, C, 1, 1)
        close(ye, ref, 1e-4, name + " eval")
        case["eval_input"] = mem(xe, layout)
        case["eval_output"] = mem(ye, layout)
    return case


def make_instancenorm():
    cases = []
    for shape, layout in [((2, 3, 4, 4), "nchw"), ((2, 3, 4, 4), "nhwc"),
                          ((1, 5, 3, 7), "nchw"), ((3, 2, 1, 9), "nhwc")]:
        for affine in (True, False):
            nm = f"in_{layout}_{'x'.join(map(str, shape))}_{'affine' if affine else 'noaffine'}"
            cases.append(in_case(nm, shape, layout, affine))
    cases.append(in_case("in_nchw_2x3x4x4_affine_running", (2, 3, 4, 4), "nchw", True,
                         track=True, momentum=0.1, eval_=True))
    notes = ("F.instance_norm (use_input_stats). save_mean/save_invstd per (n, c), "
             "n-major (invstd = 1/sqrt(biased var + eps)). Without running stats: "
             "one step, momentum/running_mean/running_var/eval_* are null. The "
             "track_running_stats case uses nn.InstanceNorm2d(track_running_stats=True, "
             "momentum=0.1): 3 steps, running stats start at 0/1 and get PyTorch's update "
             "(batch-averaged per-instance mean and unbiased var); eval_output uses the "
             "running stats. dy/dx/dgamma/dbeta are for the last step.")
    return "instancenorm", cases, notes


# --------------------------------------------------------------------------
# 5. RMS norm
# --------------------------------------------------------------------------

def make_rmsnorm():
    cases = []
    for rows, feats in [(4, 16), (3, 13), (1, 7)]:
        for weighted in (True, False):
            for eps in (None, 1e-6):
                x = torch.randn(rows, feats, dtype=DT, requires_grad=True)
                w = ((1.0 + 0.1 * torch.randn(feats, dtype=DT)).requires_grad_(True)
                     if weighted else None)
                y = F.rms_norm(x, [feats], w, eps)
                e = torch.finfo(DT).eps if eps is None else eps
                xd = x.detach().double()
                ref = xd / torch.sqrt((xd * xd).mean(1, keepdim=True) + e)
                if weighted:
                    ref = ref * w.detach().double()
                nm = (f"rms_{rows}x{feats}_{'weight' if weighted else 'noweight'}_"
                      f"{'epsNone' if eps is None else 'eps1e-6'}")
                close(y, ref, 1e-4, nm)
                dy = torch.randn_like(y)
                y.backward(dy)
                cases.append({
                    "name": nm, "rows": rows, "features": feats, "eps": e,
                    "weight": flist(w), "input": flist(x), "output": flist(y),
                    "dy": flist(dy), "dx": flist(x.grad),
                    "dweight": flist(w.grad) if weighted else None,
                })
    notes = ("F.rms_norm over the last dim: y = x / sqrt(mean(x^2) + eps) * weight. "
             "eps is the value actually used; cases named epsNone passed eps=None, which "
             "PyTorch maps to torch.finfo(float32).eps = 1.1920928955078125e-07.")
    return "rmsnorm", cases, notes


# --------------------------------------------------------------------------
# 6. AdaIN
# --------------------------------------------------------------------------

def adain(x, y, eps):
    mx = x.mean(dim=(2, 3), keepdim=True)
    sx = torch.sqrt(x.var(dim=(2, 3), keepdim=True, unbiased=False) + eps)
    my = y.mean(dim=(2, 3), keepdim=True)
    sy = torch.sqrt(y.var(dim=(2, 3), keepdim=True, unbiased=False) + eps)
    return sy * (x - mx) / sx + my


def make_adain():
    eps = 1e-5
    cases = []
    for cs, ss in [((2, 3, 4, 4), (2, 3, 5, 3)), ((1, 4, 3, 3), (1, 4, 6, 6))]:
        for layout in ("nchw", "nhwc"):
            x = to_layout(torch.randn(*cs, dtype=DT), layout).requires_grad_(True)
            s = to_layout(torch.randn(*ss, dtype=DT), layout).requires_grad_(True)
            out = adain(x, s, eps)
            close(out, adain(x.detach().double(), s.detach().double(), eps), 1e-4, "adain")
            dy = torch.randn(*cs, dtype=DT)
            out.backward(to_layout(dy, layout))
            nm = f"adain_{layout}_{'x'.join(map(str, cs))}_style_{'x'.join(map(str, ss))}"
            cases.append({
                "name": nm, "content_shape": list(cs), "style_shape": list(ss),
                "layout": layout, "eps": eps,
                "content": mem(x, layout), "style": mem(s, layout),
                "output": mem(out, layout), "dy": mem(dy, layout),
                "dcontent": mem(x.grad, layout), "dstyle": mem(s.grad, layout),
            })
    notes = ("AdaIN: out = sigma(style) * (content - mu(content)) / sigma(content) + "
             "mu(style), per (n, c) over H*W; sigma = sqrt(biased var + eps). Content and "
             "style share N and C but not H, W; both use the case's layout.")
    return "adain", cases, notes


# --------------------------------------------------------------------------
# 7. weight norm
# --------------------------------------------------------------------------

def make_weightnorm():
    cases = []
    for vshape, dim in [((4, 3), 0), ((3, 2, 2, 2), 0), ((4, 3), 1), ((2, 3, 4), 2),
                        ((3, 4), None), ((2, 3, 2), None)]:
        tdim = -1 if dim is None else dim
        if dim is None:
            gshape = ()
        else:
            gshape = tuple(s if i == dim else 1 for i, s in enumerate(vshape))
        v = torch.randn(*vshape, dtype=DT, requires_grad=True)
        g = torch.randn(gshape, dtype=DT).requires_grad_(True)
        w = torch._weight_norm(v, g, tdim)
        vd = v.detach().double()
        if dim is None:
            ref = g.detach().double() * vd / vd.norm()
        else:
            red = tuple(i for i in range(len(vshape)) if i != dim)
            ref = g.detach().double() * vd / vd.pow(2).sum(red, keepdim=True).sqrt()
        close(w, ref, 1e-5, f"weightnorm {vshape} {dim}")
        dw = torch.randn_like(w)
        w.backward(dw)
        nm = f"wn_{'x'.join(map(str, vshape))}_dim{'None' if dim is None else dim}"
        cases.append({
            "name": nm, "shape": list(vshape), "dim": dim, "g_shape": list(gshape),
            "v": flist(v), "g": flist(g), "w": flist(w),
            "dw": flist(dw), "dv": flist(v.grad), "dg": flist(g.grad),
        })
    notes = ("w = g * v / ||v||, torch._weight_norm(v, g, dim). The norm is taken over "
             "every dim except `dim`; dim null = norm of the whole tensor (g has one "
             "element; torch dim=-1, as nn.utils.weight_norm(dim=None)). v, w, dw, dv are "
             "row-major; g, dg are flattened (g_shape keeps size-1 dims, [] for dim null).")
    return "weightnorm", cases, notes


# --------------------------------------------------------------------------
# 8. batch-norm folding
# --------------------------------------------------------------------------

def make_batchnorm_fold():
    from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights
    eps = 1e-5
    cases = []
    specs = [
        ("fold_conv_4x3x2x2_bias", "conv", (4, 3, 2, 2), True, True),
        ("fold_conv_4x3x2x2_nobias", "conv", (4, 3, 2, 2), False, True),
        ("fold_conv_4x3x2x2_nobias_bn_noaffine", "conv", (4, 3, 2, 2), False, False),
        ("fold_linear_5x3_bias", "linear", (5, 3), True, True),
        ("fold_linear_5x3_nobias", "linear", (5, 3), False, True),
    ]
    for nm, kind, wshape, has_bias, bn_affine in specs:
        cout = wshape[0]
        w = torch.randn(*wshape, dtype=DT)
        b = torch.randn(cout, dtype=DT) if has_bias else None
        rm = 0.5 * torch.randn(cout, dtype=DT)
        rv = 0.5 + torch.rand(cout, dtype=DT)
        gamma, beta = gamma_beta(cout, bn_affine)
        if kind == "conv":
            fw, fb = fuse_conv_bn_weights(w, b, rm, rv, eps, gamma, beta)
        else:
            fw, fb = fuse_linear_bn_weights(w, b, rm, rv, eps, gamma, beta)
        gd = gamma.double() if bn_affine else torch.ones(cout, dtype=torch.float64)
        bd = beta.double() if bn_affine else torch.zeros(cout, dtype=torch.float64)
        sc = gd / torch.sqrt(rv.double() + eps)
        bias0 = b.double() if has_bias else torch.zeros(cout, dtype=torch.float64)
        close(fw, w.double() * sc.view(-1, *([1] * (len(wshape) - 1))), 1e-5, nm + " w")
        close(fb, (bias0 - rm.double()) * sc + bd, 1e-5, nm + " b")
        cases.append({
            "name": nm, "kind": kind, "weight_shape": list(wshape),
            "weight": flist(w), "bias": flist(b),
            "running_mean": flist(rm), "running_var": flist(rv),
            "gamma": flist(gamma), "beta": flist(beta), "eps": eps,
            "fused_weight": flist(fw), "fused_bias": flist(fb),
        })
    notes = ("Fold eval-mode BatchNorm into the preceding conv/linear: "
             "torch.nn.utils.fusion.fuse_conv_bn_weights / fuse_linear_bn_weights. "
             "scale = gamma * rsqrt(running_var + eps); fused_weight = weight * scale "
             "(per output channel = dim 0); fused_bias = (bias - running_mean) * scale + beta. "
             "bias null = no conv/linear bias (treated as 0); gamma/beta null = BN without "
             "affine (treated as 1/0; only used with the conv fold, fuse_linear_bn_weights "
             "requires them). Weights are row-major [out, in, kh, kw] / [out, in].")
    return "batchnorm_fold", cases, notes

# --------------------------------------------------------------------------
# 9. 16-bit tensors (bf16, fp16): LayerNorm and RMSNorm (fixtures16.py) and the
# channel ops (fixtures16_channels.py)
# --------------------------------------------------------------------------

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures16 import (HALF_RTOL, HALF_TYPES, bits16, half_close,  # noqa: E402
                        make_layernorm_16bit, make_rmsnorm_16bit)
from fixtures16_channels import (make_adain_16bit, make_batchnorm_16bit, make_groupnorm_16bit,  # noqa: E402
                                 make_instancenorm_16bit, make_weightnorm_16bit)


# --------------------------------------------------------------------------
# 10. fused rows: residual LayerNorm/RMSNorm, RMSNorm x gate (issue 21)
# --------------------------------------------------------------------------

def make_fused_rows():
    """Autograd of the unfused PyTorch sequences the fused row kernels replace."""
    cases = []
    for kind in ("layer", "rms"):
        for rows, feats in [(4, 16), (3, 13), (2, 40)]:
            for with_bias, with_ds in ((True, True), (False, False)):
                x = torch.randn(rows, feats, dtype=DT, requires_grad=True)
                r = torch.randn(rows, feats, dtype=DT, requires_grad=True)
                b = (0.5 * torch.randn(feats, dtype=DT)).requires_grad_(True) if with_bias else None
                g = (1.0 + 0.1 * torch.randn(feats, dtype=DT)).requires_grad_(True)
                beta = (0.1 * torch.randn(feats, dtype=DT)).requires_grad_(True) if kind == "layer" else None
                s = x + r
                if with_bias:
                    s = s + b
                s.retain_grad()
                if kind == "layer":
                    eps = 1e-5
                    y = F.layer_norm(s, [feats], g, beta, eps)
                else:
                    eps = torch.finfo(DT).eps
                    y = F.rms_norm(s, [feats], g, None)
                dy = torch.randn_like(y)
                ds = torch.randn_like(s) if with_ds else None
                loss = (y * dy).sum() + ((s * ds).sum() if with_ds else 0)
                loss.backward()
                nm = f"{kind}_residual_{rows}x{feats}_{'bias' if with_bias else 'nobias'}_{'ds' if with_ds else 'nods'}"
                cases.append({
                    "name": nm, "kind": kind, "rows": rows, "features": feats, "eps": eps,
                    "input": flist(x), "residual": flist(r), "input_bias": flist(b),
                    "weight": flist(g), "bias": flist(beta),
                    "sum": flist(s), "output": flist(y), "dy": flist(dy), "ds": flist(ds),
                    "dx": flist(x.grad), "dresidual": flist(r.grad), "dinput_bias": flist(b.grad) if with_bias else None,
                    "dweight": flist(g.grad), "dbias": flist(beta.grad) if beta is not None else None,
                })
    for rows, feats in [(4, 16), (3, 13), (2, 40)]:
        for weighted in (True, False):
            x = torch.randn(rows, feats, dtype=DT, requires_grad=True)
            gate = torch.randn(rows, feats, dtype=DT, requires_grad=True)
            w = (1.0 + 0.1 * torch.randn(feats, dtype=DT)).requires_grad_(True) if weighted else None
            y = F.rms_norm(x, [feats], w, None) * gate
            dy = torch.randn_like(y)
            y.backward(dy)
            nm = f"rms_gate_{rows}x{feats}_{'weight' if weighted else 'noweight'}"
            cases.append({
                "name": nm, "kind": "gate", "rows": rows, "features": feats, "eps": torch.finfo(DT).eps,
                "input": flist(x), "gate": flist(gate), "weight": flist(w), "output": flist(y), "dy": flist(dy),
                "dx": flist(x.grad), "dgate": flist(gate.grad), "dweight": flist(w.grad) if weighted else None,
            })
    notes = ("Unfused PyTorch sequences, autograd. Residual (kind layer/rms): s = x + residual (+ input_bias), "
             "y = F.layer_norm(s, [D], weight, bias, 1e-5) or F.rms_norm(s, [D], weight, None); "
             "loss = sum(y*dy) + sum(s*ds) (ds null: no upstream gradient of s); dx = dresidual = total "
             "gradient of s, dinput_bias its column sums. Gate (kind gate): y = F.rms_norm(x, [D], weight, None) * gate.")
    return "fused_rows", cases, notes


# 11. GroupNorm + SiLU and BatchNorm + add + ReLU on 16-bit tensors (issues 20, 21)
# --------------------------------------------------------------------------
#
# The composed sequences as a bf16/fp16 model runs them: x (and identity) in the
# 16-bit type, gamma/beta float32 (PyTorch's mixed-dtype group_norm/batch_norm,
# output rounded to the 16-bit type), then the modulation, add and activation in
# the 16-bit type (each op rounds). scale and shift are drawn as 16-bit values
# and stored as their exact float32 values (the library takes them in float32).
# PyTorch rounds between the ops, so its results are a witness within
# torch.testing's tolerance of the float64 reference (asserted here), not the
# library's target (which rounds once).

def half_mem_bits(t, layout):
    """A logical NCHW 16-bit tensor's raw bit patterns in the memory order of `layout`."""
    t = t.detach()
    if layout == "nhwc":
        t = t.permute(0, 2, 3, 1)
    return bits16(t.contiguous())


# PyTorch rounds after each op of the composed sequence (norm, ·(1 + scale),
# + shift, silu; or norm, + identity, relu): up to four roundings, so its
# witness tolerance is four times torch.testing's for the dtype.
COMPOSED_ROUNDINGS = 4


def half_close_nchw(got, ref, dtype, what):
    """half_close per sample (the scale of each n), COMPOSED_ROUNDINGS times as wide."""
    N = ref.shape[0]
    got = got.detach().double().reshape(N, -1)
    ref = ref.reshape(N, -1)
    scale = ref.abs().max(dim=-1, keepdim=True).values.clamp_min(1e-30)
    err = ((got - ref).abs() / (1e-5 + COMPOSED_ROUNDINGS * HALF_RTOL[dtype] * scale)).max().item()
    assert err <= 1, f"self-check failed for {what}: {err} of the tolerance"


def gn_silu_half_case(dtype, shape, layout, groups, affine, modulated, eps=1e-5):
    dt = HALF_TYPES[dtype]
    N, C, H, W = shape
    x = torch.randn(N, C, H, W, dtype=DT).mul_(1.5).add_(0.5).to(dt)
    xin = to_layout(x, layout).requires_grad_(True)
    gamma, beta = gamma_beta(C, affine)
    g = gamma.clone().requires_grad_(True) if affine else None
    b = beta.clone().requires_grad_(True) if affine else None
    scale = (0.5 * torch.randn(N, C, 1, 1, dtype=DT)).to(dt).requires_grad_(True) if modulated else None
    shift = (0.5 * torch.randn(N, C, 1, 1, dtype=DT)).to(dt).requires_grad_(True) if modulated else None
    z = F.group_norm(xin, groups, g, b, eps)
    if modulated:
        z = z * (1 + scale) + shift
    y = F.silu(z)
    assert y.dtype == dt
    xd = x.double().reshape(N, groups, -1)
    m64 = xd.mean(2, keepdim=True)
    r64 = 1.0 / torch.sqrt(xd.var(2, unbiased=False, keepdim=True) + eps)
    ref = ((xd - m64) * r64).reshape(N, C, H, W)
    if affine:
        ref = ref * gamma.double().view(1, C, 1, 1) + beta.double().view(1, C, 1, 1)
    if modulated:
        ref = ref * (1 + scale.detach().double()) + shift.detach().double()
    name = (f"gnsilu_{dtype}_{layout}_{'x'.join(map(str, shape))}_g{groups}_"
            f"{'affine' if affine else 'noaffine'}_{'mod' if modulated else 'plain'}")
    half_close_nchw(y, F.silu(ref), dtype, name + " output")
    dy = torch.randn(N, C, H, W, dtype=DT).to(dt)
    y.backward(to_layout(dy, layout))
    return {
        "name": name, "dtype": dtype, "shape": list(shape), "layout": layout, "groups": groups,
        "eps": eps, "affine": affine, "gamma": flist(gamma), "beta": flist(beta),
        "scale": flist(scale.flatten()) if modulated else None,
        "shift": flist(shift.flatten()) if modulated else None,
        "input": half_mem_bits(x, layout), "output": half_mem_bits(y, layout),
        "dy": half_mem_bits(dy, layout), "dx": half_mem_bits(xin.grad, layout),
        "dgamma": flist(g.grad) if affine else None,
        "dbeta": flist(b.grad) if affine else None,
        "dscale": flist(scale.grad.flatten()) if modulated else None,
        "dshift": flist(shift.grad.flatten()) if modulated else None,
    }


def make_groupnorm_silu_16bit():
    cases = []
    for dtype in HALF_TYPES:
        # channel groups NCHW and NHWC, expanded affine, group segments, feature vectors.
        for shape, G, layout, affine, modulated in [
                ((1, 4, 8, 8), 2, "nchw", True, True), ((2, 4, 5, 5), 2, "nhwc", True, True),
                ((2, 6, 3, 3), 3, "nchw", False, False), ((1, 16, 3, 3), 2, "nhwc", True, True),
                ((4, 16, 1, 1), 2, "nchw", True, False)]:
            cases.append(gn_silu_half_case(dtype, shape, layout, G, affine, modulated))
    notes = ("F.silu(F.group_norm(x, G, gamma, beta, eps) * (1 + scale) + shift) on bf16/fp16 x with "
             "float32 gamma/beta; scale and shift are 16-bit values ([N, C, 1, 1], stored n-major as "
             "float32), the modulation and silu in the 16-bit type. input, output, dy, dx: raw 16-bit "
             "patterns in memory order; dgamma, dbeta, dscale, dshift float32. dtype: bf16 or f16.")
    return "groupnorm_silu_16bit", cases, notes


def bn_add_relu_half_case(dtype, shape, layout, affine, relu=True, eps=1e-5, momentum=0.1):
    dt = HALF_TYPES[dtype]
    N, C, H, W = shape
    is_nd = H == 1 and W == 1 and layout == "nhwc"
    gamma, beta = gamma_beta(C, affine)
    g = gamma.clone().requires_grad_(True) if affine else None
    b = beta.clone().requires_grad_(True) if affine else None
    rm, rv = torch.zeros(C, dtype=DT), torch.ones(C, dtype=DT)

    def run(x, identity, training):
        xin = x.reshape(N, C) if is_nd else to_layout(x, layout)
        rin = identity.reshape(N, C) if is_nd else to_layout(identity, layout)
        u = F.batch_norm(xin, rm, rv, g, b, training, momentum, eps) + rin
        return (F.relu(u) if relu else u).reshape(N, C, H, W)

    x = torch.randn(N, C, H, W, dtype=DT).to(dt).requires_grad_(True)
    identity = (2 * torch.randn(N, C, H, W, dtype=DT)).to(dt).requires_grad_(True)
    y = run(x, identity, True)
    assert y.dtype == dt
    xd = x.detach().double()
    m64, v64 = xd.mean(dim=(0, 2, 3)), xd.var(dim=(0, 2, 3), unbiased=False)
    ref = (xd - m64.view(1, C, 1, 1)) / torch.sqrt(v64 + eps).view(1, C, 1, 1)
    if affine:
        ref = ref * gamma.double().view(1, C, 1, 1) + beta.double().view(1, C, 1, 1)
    ref = ref + identity.detach().double()
    name = (f"bnaddrelu_{dtype}_{layout}_{'x'.join(map(str, shape))}_"
            f"{'affine' if affine else 'noaffine'}_{'relu' if relu else 'norelu'}")
    half_close_nchw(y, ref.clamp_min(0) if relu else ref, dtype, name + " output")
    dy = torch.randn(N, C, H, W, dtype=DT).to(dt)
    y.backward(dy)
    case = {
        "name": name, "dtype": dtype, "shape": list(shape), "layout": layout, "eps": eps,
        "momentum": momentum, "affine": affine, "relu": relu, "gamma": flist(gamma), "beta": flist(beta),
        "input": half_mem_bits(x, layout), "identity": half_mem_bits(identity, layout),
        "output": half_mem_bits(y, layout), "running_mean": flist(rm), "running_var": flist(rv),
        "dy": half_mem_bits(dy, layout), "dx": half_mem_bits(x.grad, layout),
        "didentity": half_mem_bits(identity.grad, layout),
        "dgamma": flist(g.grad) if affine else None, "dbeta": flist(b.grad) if affine else None,
    }
    with torch.no_grad():
        xe = torch.randn(N, C, H, W, dtype=DT).to(dt)
        ie = torch.randn(N, C, H, W, dtype=DT).to(dt)
        ye = run(xe, ie, False)
    case["eval_input"] = half_mem_bits(xe, layout)
    case["eval_identity"] = half_mem_bits(ie, layout)
    case["eval_output"] = half_mem_bits(ye, layout)
    return case


def make_batchnorm_add_relu_16bit():
    cases = []
    for dtype in HALF_TYPES:
        for shape, layout, affine, relu in [((2, 3, 4, 5), "nchw", True, True), ((2, 5, 3, 3), "nhwc", True, True),
                                            ((2, 3, 7, 7), "nchw", False, False), ((8, 6, 1, 1), "nhwc", True, True)]:
            cases.append(bn_add_relu_half_case(dtype, shape, layout, affine, relu))
    notes = ("relu(F.batch_norm(x, running_mean, running_var, gamma, beta, training) + identity) on "
             "bf16/fp16 x and identity with float32 gamma/beta and running statistics (the add and "
             "relu in the 16-bit type). Training from running statistics 0/1 (after the step), autograd "
             "dx, didentity, dgamma, dbeta; then eval. 16-bit tensors are raw bit patterns in memory "
             "order; [N, D] data is [N, D, 1, 1] nhwc. dtype: bf16 or f16.")
    return "batchnorm_add_relu_16bit", cases, notes
def make_fused_rows_16bit():
    """The fused row sequences on bf16/fp16 tensors, float32 parameters (issue 20 x 21).

    s = (x + r + input_bias) computed in float32 and rounded once to the dtype
    (the library's semantics; PyTorch's own bf16 `x + r` rounds before the
    float32 bias), y = F.layer_norm / F.rms_norm of s (mixed-dtype path), the
    gradients of y and s from autograd: PyTorch adds the two 16-bit gradients
    of s in 16 bits, as the library does. Gate: y = F.rms_norm(x, w) * gate,
    both 16-bit.
    """
    cases = []
    for dtype, dt in HALF_TYPES.items():
        for kind in ("layer", "rms"):
            for rows, feats, with_bias, with_ds in [(4, 16, True, True), (3, 13, False, False), (2, 40, True, False)]:
                x = torch.randn(rows, feats, dtype=DT).to(dt).requires_grad_(True)
                r = torch.randn(rows, feats, dtype=DT).to(dt).requires_grad_(True)
                b = (0.5 * torch.randn(feats, dtype=DT)).requires_grad_(True) if with_bias else None
                g = (1.0 + 0.1 * torch.randn(feats, dtype=DT)).requires_grad_(True)
                beta = (0.1 * torch.randn(feats, dtype=DT)).requires_grad_(True) if kind == "layer" else None
                s32 = x.float() + r.float()
                if with_bias:
                    s32 = s32 + b
                s = s32.to(dt)
                if kind == "layer":
                    eps = 1e-5
                    y = F.layer_norm(s, [feats], g, beta, eps)
                else:
                    eps = torch.finfo(DT).eps
                    y = F.rms_norm(s, [feats], g, None)
                assert y.dtype == dt, y.dtype
                dy = torch.randn(rows, feats, dtype=DT).to(dt)
                ds = torch.randn(rows, feats, dtype=DT).to(dt) if with_ds else None
                if with_ds:
                    torch.autograd.backward([y, s], [dy, ds])
                else:
                    y.backward(dy)
                nm = (f"{kind}_residual_{dtype}_{rows}x{feats}_{'bias' if with_bias else 'nobias'}_"
                      f"{'ds' if with_ds else 'nods'}")
                cases.append({
                    "name": nm, "kind": kind, "dtype": dtype, "rows": rows, "features": feats, "eps": eps,
                    "input": bits16(x), "residual": bits16(r), "input_bias": flist(b),
                    "weight": flist(g), "bias": flist(beta),
                    "sum": bits16(s), "output": bits16(y), "dy": bits16(dy), "ds": bits16(ds) if with_ds else None,
                    "dx": bits16(x.grad), "dresidual": bits16(r.grad),
                    "dinput_bias": flist(b.grad) if with_bias else None,
                    "dweight": flist(g.grad), "dbias": flist(beta.grad) if beta is not None else None,
                })
        for rows, feats, weighted in [(4, 16, True), (3, 13, False)]:
            x = torch.randn(rows, feats, dtype=DT).to(dt).requires_grad_(True)
            gate = torch.randn(rows, feats, dtype=DT).to(dt).requires_grad_(True)
            w = (1.0 + 0.1 * torch.randn(feats, dtype=DT)).requires_grad_(True) if weighted else None
            y = F.rms_norm(x, [feats], w, None) * gate
            assert y.dtype == dt, y.dtype
            dy = torch.randn(rows, feats, dtype=DT).to(dt)
            y.backward(dy)
            nm = f"rms_gate_{dtype}_{rows}x{feats}_{'weight' if weighted else 'noweight'}"
            cases.append({
                "name": nm, "kind": "gate", "dtype": dtype, "rows": rows, "features": feats,
                "eps": torch.finfo(DT).eps, "input": bits16(x), "gate": bits16(gate), "weight": flist(w),
                "output": bits16(y), "dy": bits16(dy), "dx": bits16(x.grad), "dgate": bits16(gate.grad),
                "dweight": flist(w.grad) if weighted else None,
            })
    notes = ("fused_rows on bf16/fp16: 16-bit tensors as raw bit patterns, parameters float32. Residual: "
             "s = (x.float() + residual.float() + input_bias).to(dtype); y = F.layer_norm(s, [D], weight, bias, "
             "1e-5) or F.rms_norm(s, [D], weight, None); autograd of (y, s) with (dy, ds) (ds null: y only). "
             "Gate: y = F.rms_norm(x, [D], weight, None) * gate.")
    return "fused_rows_16bit", cases, notes


GENERATORS = [
    ("batchnorm.json", make_batchnorm),
    ("layernorm.json", make_layernorm),
    ("groupnorm.json", make_groupnorm),
    ("instancenorm.json", make_instancenorm),
    ("rmsnorm.json", make_rmsnorm),
    ("adain.json", make_adain),
    ("weightnorm.json", make_weightnorm),
    ("batchnorm_fold.json", make_batchnorm_fold),
    ("groupnorm_silu.json", make_groupnorm_silu),
    ("batchnorm_add_relu.json", make_batchnorm_add_relu),
    ("fused_rows.json", make_fused_rows),
    ("layernorm_16bit.json", make_layernorm_16bit),
    ("rmsnorm_16bit.json", make_rmsnorm_16bit),
    ("batchnorm_16bit.json", make_batchnorm_16bit),
    ("groupnorm_16bit.json", make_groupnorm_16bit),
    ("instancenorm_16bit.json", make_instancenorm_16bit),
    ("adain_16bit.json", make_adain_16bit),
    ("weightnorm_16bit.json", make_weightnorm_16bit),
    ("groupnorm_silu_16bit.json", make_groupnorm_silu_16bit),
    ("batchnorm_add_relu_16bit.json", make_batchnorm_add_relu_16bit),
    ("fused_rows_16bit.json", make_fused_rows_16bit),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    ap.add_argument("--only", action="append", metavar="FILE",
                    help="write only this fixture file (repeatable), e.g. fused_rows.json")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    torch.set_default_dtype(DT)
    print(f"torch {torch.__version__}, numpy {np.__version__} -> {args.out}")
    total = 0
    for fname, gen in GENERATORS:
        if args.only and fname not in args.only:
            continue
        torch.manual_seed(0)
        op, cases, notes = gen()
        total += write(args.out, fname, op, cases, notes)
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()

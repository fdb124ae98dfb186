"""16-bit PyTorch fixtures of the channel ops, imported by make_fixtures.py:
batchnorm_16bit, groupnorm_16bit, instancenorm_16bit, adain_16bit,
weightnorm_16bit (conventions: fixtures16.py and make_fixtures.py; shapes are
logical [N, C, H, W], 16-bit tensors stored as raw bits in the layout's memory
order, [N, D] data as [N, D, 1, 1] "nhwc").

Every case runs once per dtype (bf16, f16) on small shapes whose sizes are odd
(no SIMD vector filled), plus one offset case (mean 1e3 over a small spread:
std 0.1 in f16, whose ulp at 1e3 is 0.5; std 2 in bf16, whose ulp there is 4,
so that the rounded inputs still take a few distinct values).

Each generator self-checks PyTorch against a float64 reference of the stored
inputs within torch.testing's default tolerance for the dtype, and prints the
largest distance in ulps (`ulp_gap`), which the notes of each file report.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fixtures16 import (DT, HALF_TYPES, bits16, drawn, flist, gamma_beta, half_close, mem16, to_layout,
                        ulp_gap)

F64 = torch.float64
GAPS = {}
# Set while an offset case runs: its distances are reported apart, and checked
# against OFFSET_BOUND instead of torch.testing's tolerance (PyTorch's float32
# statistics lose digits to the offset: measured up to 2.95 ulps of the largest
# value). WITNESS[0] False: PyTorch's result is kept but not checked (channels-last
# GroupNorm at an offset, which PyTorch computes as E[x^2] - E[x]^2 in float32).
OFFSET = [False]
WITNESS = [True]
OFFSET_BOUND = 4.0


def gap(key, got, ref, dtype):
    """Records the largest distance of PyTorch from the reference under `key`:
    in ulps of each value, and in ulps of the tensor's largest value (normwise)."""
    g = ulp_gap(got, ref, dtype)
    ref = ref.detach().double()
    scale = ref.abs().max().item()
    unit = 2.0 ** (math.floor(math.log2(scale)) - (7 if dtype == "bf16" else 10)) if scale > 0 else 1.0
    n = (got.detach().double() - ref).abs().max().item() / unit
    if OFFSET[0] and WITNESS[0] and not key.startswith("native"):
        assert n <= OFFSET_BOUND, f"self-check failed for an offset case's {key}: {n} ulps of the largest value"
    key = f"{dtype} {'offset ' if OFFSET[0] else ''}{key}"
    old = GAPS.get(key, (0, 0.0))
    GAPS[key] = (max(old[0], g), max(old[1], n))


def check(got, ref, dtype, what):
    """half_close, except on an offset case (`gap` checks those)."""
    if not OFFSET[0]:
        half_close(got, ref, dtype, what)


def report_gaps(title):
    """Prints and returns (for the file's notes) the distances `gap` recorded."""
    text = ("PyTorch's largest distance from the float64 reference of the stored inputs, in ulps "
            "(and in ulps of the tensor's largest value): "
            + ", ".join(f"{k} {v[0]} ({v[1]:.2f})" for k, v in sorted(GAPS.items())) + ".")
    print(f"  {title}: {text}")
    GAPS.clear()
    return text


def offset(dtype):
    """(mean, std) of the offset case."""
    return (1e3, 0.1) if dtype == "f16" else (1e3, 2.0)


def float_affine(gamma, beta, c):
    """γ and β as float32 tensors (ones and zeros when absent), so that PyTorch's
    statistics functions take their mixed-dtype path and return float32 statistics."""
    return (gamma if gamma is not None else torch.ones(c, dtype=DT),
            beta if beta is not None else torch.zeros(c, dtype=DT))


def flat_rows(t, rows):
    """A float64 view [rows, -1] for half_close (scale per row)."""
    return t.detach().double().reshape(rows, -1)


# --------------------------------------------------------------------------
# BatchNorm: NCHW, NHWC (channels_last), [N, D]; training with the running
# update, inference, both backwards; fused ReLU as relu(bn(x)) (exact in 16 bits)
# --------------------------------------------------------------------------

def bn_reference(xd, mean, var, eps, gamma, beta, relu):
    C = xd.shape[1]
    xhat = (xd - mean.view(1, C, 1, 1)) / torch.sqrt(var + eps).view(1, C, 1, 1)
    g = gamma.double() if gamma is not None else torch.ones(C, dtype=F64)
    y = xhat * g.view(1, C, 1, 1) + (beta.double().view(1, C, 1, 1) if beta is not None else 0)
    return (y.clamp_min(0) if relu else y), xhat, g


def bn16_case(dtype, shape, layout, *, affine=True, relu=False, momentum=0.1, eps=1e-5,
              mean=0.0, std=1.0, steps=2, tag=""):
    OFFSET[0] = tag == "_offset"
    N, C, H, W = shape
    is_nd = H == 1 and W == 1 and layout == "nhwc"
    dt = HALF_TYPES[dtype]
    gamma, beta = gamma_beta(C, affine)
    g = gamma.clone().requires_grad_(True) if affine else None
    b = beta.clone().requires_grad_(True) if affine else None
    rm, rv = torch.zeros(C, dtype=DT), torch.ones(C, dtype=DT)
    name = (f"bn_{dtype}_{'nd' if is_nd else layout}_{'x'.join(map(str, shape))}_"
            f"{'affine' if affine else 'noaffine'}{'_relu' if relu else ''}{tag}")

    def run(x, training):
        xin = x.reshape(N, C) if is_nd else to_layout(x, layout)
        y = F.batch_norm(xin, rm, rv, g, b, training, momentum, eps)
        return (F.relu(y) if relu else y).reshape(N, C, H, W)

    recs = []
    for s in range(steps):
        x = drawn((N, C, H, W), dtype, mean, std)
        last = s == steps - 1
        if last:
            x.requires_grad_(True)
        y = run(x, True)
        xin = x.detach().reshape(N, C) if is_nd else to_layout(x.detach(), layout)
        # float32 γ, β (ones and zeros without affine): the mixed-dtype path, whose
        # saved statistics are float32 (with no weight they come back 16-bit).
        _, smean, sinvstd = torch.native_batch_norm(xin, *float_affine(gamma, beta, C), None, None, True, 0.0, eps)
        xd = x.detach().double()
        m64, v64 = xd.mean(dim=(0, 2, 3)), xd.var(dim=(0, 2, 3), unbiased=False)
        ref, xhat, gd = bn_reference(xd, m64, v64, eps, gamma, beta, relu)
        check(flat_rows(y.transpose(0, 1), C), flat_rows(ref.transpose(0, 1), C), dtype, name + " y")
        gap("y", y, ref, dtype)
        recs.append({"input": mem16(x, layout), "output": mem16(y, layout),
                     "save_mean": flist(smean), "save_invstd": flist(sinvstd)})
        if last:
            dy = drawn((N, C, H, W), dtype)
            y.backward(dy)
            gg = dy.double() * (ref > 0 if relu else 1) * gd.view(1, C, 1, 1)
            r = (1.0 / torch.sqrt(v64 + eps)).view(1, C, 1, 1)
            dref = r * (gg - gg.mean(dim=(0, 2, 3), keepdim=True)
                        - xhat * (gg * xhat).mean(dim=(0, 2, 3), keepdim=True))
            check(flat_rows(x.grad.transpose(0, 1), C), flat_rows(dref.transpose(0, 1), C), dtype,
                       name + " dx")
            gap("dx", x.grad, dref, dtype)
            dx, dgamma, dbeta = x.grad, (g.grad if affine else None), (b.grad if affine else None)

    case = {
        "name": name, "dtype": dtype, "shape": list(shape), "layout": layout, "eps": eps,
        "momentum": momentum, "affine": affine, "relu": relu,
        "gamma": flist(gamma), "beta": flist(beta), "steps": recs,
        "running_mean": flist(rm), "running_var": flist(rv),
        "dy": mem16(dy, layout), "dx": mem16(dx, layout), "dgamma": flist(dgamma), "dbeta": flist(dbeta),
    }
    # Inference with the running statistics, and its backward (statistics constant).
    if affine:
        g.grad = None
        b.grad = None
    xe = drawn((N, C, H, W), dtype, mean, std).requires_grad_(True)
    ye = run(xe, False)
    ref, _, gd = bn_reference(xe.detach().double(), rm.double(), rv.double(), eps, gamma, beta, relu)
    gap("eval y", ye, ref, dtype)
    check(flat_rows(ye.transpose(0, 1), C), flat_rows(ref.transpose(0, 1), C), dtype, name + " eval y")
    dye = drawn((N, C, H, W), dtype)
    ye.backward(dye)
    dref = dye.double() * (ref > 0 if relu else 1) * (gd / torch.sqrt(rv.double() + eps)).view(1, C, 1, 1)
    gap("eval dx", xe.grad, dref, dtype)
    case.update({
        "eval_input": mem16(xe, layout), "eval_output": mem16(ye, layout),
        "eval_dy": mem16(dye, layout), "eval_dx": mem16(xe.grad, layout),
        "eval_dgamma": flist(g.grad) if affine else None, "eval_dbeta": flist(b.grad) if affine else None,
    })
    return case


def make_batchnorm_16bit():
    cases = []
    for dtype in HALF_TYPES:
        cases += [
            bn16_case(dtype, (3, 5, 3, 3), "nchw"),
            bn16_case(dtype, (2, 3, 7, 5), "nchw", affine=False, momentum=0.3),
            bn16_case(dtype, (3, 5, 3, 3), "nhwc"),
            bn16_case(dtype, (2, 11, 3, 1), "nhwc", relu=True),
            bn16_case(dtype, (9, 7, 1, 1), "nhwc"),
            bn16_case(dtype, (7, 13, 1, 1), "nhwc", affine=False, relu=True),
            bn16_case(dtype, (3, 5, 3, 3), "nchw", relu=True),
            bn16_case(dtype, (2, 5, 5, 3), "nchw", mean=offset(dtype)[0], std=offset(dtype)[1], tag="_offset"),
            bn16_case(dtype, (2, 5, 5, 3), "nhwc", mean=offset(dtype)[0], std=offset(dtype)[1], tag="_offset"),
        ]
    measured = report_gaps("batchnorm_16bit")
    notes = ("F.batch_norm on bf16/fp16 x (channels_last for nhwc, [N, D] for [N, D, 1, 1] nhwc) with float32 "
             "gamma, beta and running statistics (PyTorch's mixed-dtype path): `steps` training calls from "
             "running statistics 0/1 (running_mean/var: after them; save_mean/save_invstd of each step from "
             "torch.native_batch_norm, float32), dy/dx/dgamma/dbeta for the last step; then inference on "
             "eval_input with the running statistics and its backward (eval_dy, eval_dx, eval_dgamma, "
             "eval_dbeta). relu: relu(bn(x)), exact in 16 bits. 16-bit tensors are raw bit patterns in "
             "the layout's memory order.")
    return "batchnorm_16bit", cases, notes + " " + measured


# --------------------------------------------------------------------------
# GroupNorm, both layouts
# --------------------------------------------------------------------------

def gn16_case(dtype, shape, layout, groups, affine, eps=1e-5, mean=0.0, std=1.0, tag=""):
    OFFSET[0] = tag == "_offset"
    WITNESS[0] = not (OFFSET[0] and layout == "nhwc")
    N, C, H, W = shape
    x = drawn((N, C, H, W), dtype, mean, std)
    xin = to_layout(x, layout).requires_grad_(True)
    gamma, beta = gamma_beta(C, affine)
    g = gamma.clone().requires_grad_(True) if affine else None
    b = beta.clone().requires_grad_(True) if affine else None
    y = F.group_norm(xin, groups, g, b, eps)
    _, smean, srstd = torch.native_group_norm(x, *float_affine(gamma, beta, C), N, C, H * W, groups, eps)
    name = (f"gn_{dtype}_{layout}_{'x'.join(map(str, shape))}_g{groups}_"
            f"{'affine' if affine else 'noaffine'}{tag}")
    xd = x.double().reshape(N, groups, -1)
    m64 = xd.mean(2, keepdim=True)
    r64 = 1.0 / torch.sqrt(xd.var(2, unbiased=False, keepdim=True) + eps)
    xhat = ((xd - m64) * r64).reshape(N, C, H, W)
    gd = gamma.double() if affine else torch.ones(C, dtype=F64)
    ref = xhat * gd.view(1, C, 1, 1) + (beta.double().view(1, C, 1, 1) if affine else 0)
    check(flat_rows(y, N * groups), flat_rows(ref, N * groups), dtype, name + " y")
    gap("y", y, ref, dtype)
    dy = drawn((N, C, H, W), dtype)
    y.backward(to_layout(dy, layout))
    gg = (dy.double() * gd.view(1, C, 1, 1)).reshape(N, groups, -1)
    xh = xhat.reshape(N, groups, -1)
    dref = (r64 * (gg - gg.mean(2, keepdim=True) - xh * (gg * xh).mean(2, keepdim=True))).reshape(N, C, H, W)
    check(flat_rows(xin.grad, N * groups), flat_rows(dref, N * groups), dtype, name + " dx")
    gap("dx", xin.grad, dref, dtype)
    return {
        "name": name, "dtype": dtype, "shape": list(shape), "layout": layout, "groups": groups,
        "eps": eps, "affine": affine, "gamma": flist(gamma), "beta": flist(beta),
        "input": mem16(x, layout), "output": mem16(y, layout), "mean": flist(smean), "rstd": flist(srstd),
        "dy": mem16(dy, layout), "dx": mem16(xin.grad, layout),
        "dgamma": flist(g.grad) if affine else None, "dbeta": flist(b.grad) if affine else None,
    }


def make_groupnorm_16bit():
    cases = []
    for dtype in HALF_TYPES:
        for shape, groups, layout, affine in [((2, 6, 3, 3), 3, "nchw", True), ((3, 4, 5, 1), 2, "nchw", False),
                                              ((2, 6, 3, 3), 2, "nhwc", True), ((1, 10, 3, 5), 5, "nhwc", False),
                                              ((2, 9, 1, 1), 3, "nchw", True)]:
            cases.append(gn16_case(dtype, shape, layout, groups, affine))
        m, s = offset(dtype)
        for layout in ("nchw", "nhwc"):
            cases.append(gn16_case(dtype, (2, 6, 5, 3), layout, 3, True, mean=m, std=s, tag="_offset"))
    WITNESS[0] = True
    measured = report_gaps("groupnorm_16bit")
    notes = ("F.group_norm on bf16/fp16 x (channels_last for nhwc) with float32 gamma/beta; mean/rstd per "
             "(n, g), n-major, from torch.native_group_norm (float32). 16-bit tensors are raw bit patterns "
             "in the layout's memory order. The offset cases' channels-last PyTorch results are kept but "
             "are no witness: PyTorch forms their variance as E[x^2] - E[x]^2 in float32 (f16 offset below).")
    return "groupnorm_16bit", cases, notes + " " + measured


# --------------------------------------------------------------------------
# InstanceNorm (with and without running statistics)
# --------------------------------------------------------------------------

def in16_case(dtype, shape, layout, affine, *, track=False, momentum=0.1, eps=1e-5, mean=0.0, std=1.0, tag=""):
    OFFSET[0] = tag == "_offset"
    N, C, H, W = shape
    gamma, beta = gamma_beta(C, affine)
    g = gamma.clone().requires_grad_(True) if affine else None
    b = beta.clone().requires_grad_(True) if affine else None
    rm, rv = (torch.zeros(C, dtype=DT), torch.ones(C, dtype=DT)) if track else (None, None)
    name = (f"in_{dtype}_{layout}_{'x'.join(map(str, shape))}_{'affine' if affine else 'noaffine'}"
            f"{'_running' if track else ''}{tag}")
    steps = 2 if track else 1
    recs = []
    for s in range(steps):
        x = drawn((N, C, H, W), dtype, mean, std)
        xin = to_layout(x, layout)
        last = s == steps - 1
        if last:
            xin.requires_grad_(True)
        y = F.instance_norm(xin, rm, rv, g, b, use_input_stats=True, momentum=momentum, eps=eps)
        _, smean, sinvstd = torch.native_batch_norm(x.reshape(1, N * C, H, W), *float_affine(None, None, N * C),
                                                    None, None, True, 0.0, eps)
        xd = x.double().reshape(N, C, -1)
        m64 = xd.mean(2, keepdim=True)
        r64 = 1.0 / torch.sqrt(xd.var(2, unbiased=False, keepdim=True) + eps)
        xhat = ((xd - m64) * r64).reshape(N, C, H, W)
        gd = gamma.double() if affine else torch.ones(C, dtype=F64)
        ref = xhat * gd.view(1, C, 1, 1) + (beta.double().view(1, C, 1, 1) if affine else 0)
        check(flat_rows(y, N * C), flat_rows(ref, N * C), dtype, name + " y")
        gap("y", y, ref, dtype)
        recs.append({"input": mem16(x, layout), "output": mem16(y, layout),
                     "save_mean": flist(smean), "save_invstd": flist(sinvstd)})
        if last:
            dy = drawn((N, C, H, W), dtype)
            y.backward(to_layout(dy, layout))
            gg = (dy.double() * gd.view(1, C, 1, 1)).reshape(N, C, -1)
            xh = xhat.reshape(N, C, -1)
            dref = (r64 * (gg - gg.mean(2, keepdim=True) - xh * (gg * xh).mean(2, keepdim=True))).reshape(N, C, H, W)
            check(flat_rows(xin.grad, N * C), flat_rows(dref, N * C), dtype, name + " dx")
            gap("dx", xin.grad, dref, dtype)
            dx = xin.grad
    case = {
        "name": name, "dtype": dtype, "shape": list(shape), "layout": layout, "eps": eps,
        "momentum": momentum if track else None, "affine": affine, "track_running_stats": track,
        "gamma": flist(gamma), "beta": flist(beta), "steps": recs,
        "running_mean": flist(rm), "running_var": flist(rv),
        "dy": mem16(dy, layout), "dx": mem16(dx, layout),
        "dgamma": flist(g.grad) if affine else None, "dbeta": flist(b.grad) if affine else None,
        "eval_input": None, "eval_output": None,
    }
    if track:
        with torch.no_grad():
            xe = drawn((N, C, H, W), dtype, mean, std)
            ye = F.instance_norm(to_layout(xe, layout), rm, rv, g, b, use_input_stats=False, eps=eps)
        ref = ((xe.double() - rm.double().view(1, C, 1, 1)) / torch.sqrt(rv.double() + eps).view(1, C, 1, 1))
        if affine:
            ref = ref * gamma.double().view(1, C, 1, 1) + beta.double().view(1, C, 1, 1)
        gap("eval y", ye, ref, dtype)
        case["eval_input"], case["eval_output"] = mem16(xe, layout), mem16(ye, layout)
    return case


def make_instancenorm_16bit():
    cases = []
    for dtype in HALF_TYPES:
        m, s = offset(dtype)
        cases += [
            in16_case(dtype, (2, 3, 5, 3), "nchw", True),
            in16_case(dtype, (2, 3, 5, 3), "nhwc", False),
            in16_case(dtype, (1, 5, 3, 7), "nchw", False),
            in16_case(dtype, (3, 9, 1, 7), "nhwc", True),
            in16_case(dtype, (2, 3, 5, 3), "nchw", True, track=True),
            in16_case(dtype, (2, 3, 7, 5), "nchw", True, mean=m, std=s, tag="_offset"),
            in16_case(dtype, (2, 3, 7, 5), "nhwc", True, mean=m, std=s, tag="_offset"),
        ]
    measured = report_gaps("instancenorm_16bit")
    notes = ("F.instance_norm (use_input_stats) on bf16/fp16 x (channels_last for nhwc) with float32 "
             "gamma/beta; save_mean/save_invstd per (n, c), n-major (torch.native_batch_norm of the "
             "[1, N*C, H, W] view, float32). Without running statistics one step (running_*, eval_* null); "
             "the _running case: 2 steps from running statistics 0/1 (float32, after the steps), then "
             "eval_output with them (use_input_stats=False). dy/dx/dgamma/dbeta for the last step.")
    return "instancenorm_16bit", cases, notes + " " + measured


# --------------------------------------------------------------------------
# AdaIN, composed as the float32 adain fixture
# --------------------------------------------------------------------------

def adain(x, y, eps):
    mx = x.mean(dim=(2, 3), keepdim=True)
    sx = torch.sqrt(x.var(dim=(2, 3), keepdim=True, unbiased=False) + eps)
    my = y.mean(dim=(2, 3), keepdim=True)
    sy = torch.sqrt(y.var(dim=(2, 3), keepdim=True, unbiased=False) + eps)
    return sy * (x - mx) / sx + my


def adain16_case(dtype, cs, ss, layout, eps=1e-5, mean=0.0, std=1.0, tag=""):
    """Two compositions of the same 16-bit inputs: `output`/`dcontent`/`dstyle`
    from adain() on float32 copies, rounded once to the 16-bit type (autograd
    through .float(): the gradients rounded once too), as the library computes;
    `native_*` from adain() run on the 16-bit tensors themselves, every
    intermediate (means, sigmas, x − μ, the quotient) rounded to the 16-bit type."""
    OFFSET[0] = tag == "_offset"
    dt = HALF_TYPES[dtype]
    x = to_layout(drawn(cs, dtype, mean, std), layout)
    s = to_layout(drawn(ss, dtype, 0.5, 2.0), layout)
    dy = drawn(cs, dtype)
    xf, sf = x.float().requires_grad_(True), s.float().requires_grad_(True)
    out = adain(xf, sf, eps).to(dt)
    out.backward(to_layout(dy, layout))
    xn, sn = x.clone().requires_grad_(True), s.clone().requires_grad_(True)
    native = adain(xn, sn, eps)
    native.backward(to_layout(dy, layout))
    name = f"adain_{dtype}_{layout}_{'x'.join(map(str, cs))}_style_{'x'.join(map(str, ss))}{tag}"
    xd, sd = x.double().requires_grad_(True), s.double().requires_grad_(True)
    ref = adain(xd, sd, eps)
    ref.backward(dy.double())
    N, C = cs[0], cs[1]
    check(flat_rows(out, N * C), flat_rows(ref, N * C), dtype, name + " y")
    check(flat_rows(xf.grad, N * C), flat_rows(xd.grad, N * C), dtype, name + " dcontent")
    gap("y", out, ref, dtype)
    gap("dcontent", xf.grad.to(dt), xd.grad, dtype)
    gap("dstyle", sf.grad.to(dt), sd.grad, dtype)
    gap("native y", native, ref, dtype)
    gap("native dcontent", xn.grad, xd.grad, dtype)
    gap("native dstyle", sn.grad, sd.grad, dtype)
    return {
        "name": name, "dtype": dtype, "content_shape": list(cs), "style_shape": list(ss), "layout": layout,
        "eps": eps, "content": mem16(x, layout), "style": mem16(s, layout), "dy": mem16(dy, layout),
        "output": mem16(out, layout), "dcontent": mem16(xf.grad.to(dt), layout),
        "dstyle": mem16(sf.grad.to(dt), layout),
        "native_output": mem16(native, layout), "native_dcontent": mem16(xn.grad, layout),
        "native_dstyle": mem16(sn.grad, layout),
    }


def make_adain_16bit():
    cases = []
    for dtype in HALF_TYPES:
        m, s = offset(dtype)
        for cs, ss, layout in [((2, 3, 5, 3), (2, 3, 3, 7), "nchw"), ((2, 3, 5, 3), (2, 3, 3, 7), "nhwc"),
                               ((1, 5, 3, 3), (1, 5, 1, 9), "nchw")]:
            cases.append(adain16_case(dtype, cs, ss, layout))
        cases.append(adain16_case(dtype, (2, 3, 5, 3), (2, 3, 3, 7), "nchw", mean=m, std=s, tag="_offset"))
    measured = report_gaps("adain_16bit")
    notes = ("AdaIN (adain.json's composition: sigma(style) * (content - mu(content)) / sigma(content) + "
             "mu(style), per (n, c), sigma = sqrt(biased var + eps)) on bf16/fp16 content and style. "
             "output/dcontent/dstyle: the composition on float32 copies of the 16-bit tensors, rounded once "
             "to the 16-bit type (autograd through .float()). native_*: the same composition run on the "
             "16-bit tensors (every intermediate rounded to the 16-bit type; PyTorch has no AdaIN kernel).")
    return "adain_16bit", cases, notes + " " + measured


# --------------------------------------------------------------------------
# Weight norm
# --------------------------------------------------------------------------

def make_weightnorm_16bit():
    cases = []
    for dtype in HALF_TYPES:
        dt = HALF_TYPES[dtype]
        for vshape, dim in [((5, 3), 0), ((3, 2, 3, 3), 0), ((5, 3), 1), ((3, 5, 7), 2), ((3, 5), None),
                            ((9, 7), 0)]:
            tdim = -1 if dim is None else dim
            gshape = () if dim is None else tuple(s if i == dim else 1 for i, s in enumerate(vshape))
            big = vshape == (9, 7)
            OFFSET[0] = big
            v = drawn(vshape, dtype, *(offset(dtype) if big else (0.0, 1.0))).requires_grad_(True)
            g = torch.randn(gshape, dtype=DT).to(dt).requires_grad_(True)
            w = torch._weight_norm(v, g, tdim)
            dw = drawn(vshape, dtype)
            w.backward(dw)
            vd, gd = v.detach().double().requires_grad_(True), g.detach().double().requires_grad_(True)
            ref = torch._weight_norm(vd, gd, tdim)
            ref.backward(dw.double())
            nm = f"wn_{dtype}_{'x'.join(map(str, vshape))}_dim{'None' if dim is None else dim}{'_offset' if big else ''}"
            check(w.reshape(1, -1), ref.detach().reshape(1, -1), dtype, nm + " w")
            check(v.grad.reshape(1, -1), vd.grad.reshape(1, -1), dtype, nm + " dv")
            gap("w", w, ref, dtype)
            gap("dv", v.grad, vd.grad, dtype)
            gap("dg", g.grad, gd.grad, dtype)
            cases.append({
                "name": nm, "dtype": dtype, "shape": list(vshape), "dim": dim, "g_shape": list(gshape),
                "v": bits16(v), "g": flist(g.float()), "w": bits16(w), "dw": bits16(dw),
                "dv": bits16(v.grad), "dg": bits16(g.grad),
            })
    measured = report_gaps("weightnorm_16bit")
    notes = ("torch._weight_norm(v, g, dim) on bf16/fp16 v (w = g * v / ||v||, the norm over every dim but "
             "`dim`; dim null: the whole tensor, torch dim=-1). PyTorch requires g of v's dtype (a float32 g "
             "fails: 'expected scalar type BFloat16 but found Float'), so g is drawn and rounded to the "
             "16-bit type and stored as float32 values (exact), and PyTorch's dg is 16-bit (raw bits); "
             "v, w, dw, dv are raw bits, row-major. The _offset case has v of mean 1e3.")
    return "weightnorm_16bit", cases, notes + " " + measured

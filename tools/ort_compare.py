#!/usr/bin/env python3
"""Run normbench's cases through ONNX Runtime where it has the op; same CSV columns.

    /work/torchvenv/bin/python tools/ort_compare.py --csv ort.csv \
        [--normbench-json sweep.json] [same case flags as `normbench sweep`]

The case grid, byte counts, timing loop and flags are tools/torch_compare.py's
(imported from it). ONNX Runtime's CPU provider runs inference graphs only, so
only the cases it computes are written (`checked` = "ort"):

* layernorm forward-training: LayerNormalization (opset 17), axis -1 over C·H·W
  (the output is the same as training's; ORT does not return the statistics here);
* rmsnorm forward-training: SimplifiedLayerNormalization (ORT's RMSNorm, registered
  in the ONNX domain), axis -1 over C·H·W, scale only;
* batchnorm forward-inference, nchw: BatchNormalization with running statistics;
* instancenorm forward-training, nchw: InstanceNormalization (batch statistics);
* groupnorm forward-training, nchw: GroupNormalization (opset 21, γ, β per channel),
  where this onnxruntime has it.

`--dtype f16,bf16` (torch_compare.py's flag and grid: LayerNorm and RMSNorm):
the same two nodes with X, Y and the scale and bias in that type (ORT binds
them to one type T, so the parameters are 16-bit here, not Float32 as ours);
ORT 1.32's CPU provider runs both in f16 and bf16. Inputs and outputs are
OrtValues of the ONNX element type (numpy has no bfloat16; ml_dtypes, an onnx
dependency, rounds to it). The check is against the Float64 reference of the
rounded input: |y − ref| / (|ref| + rms(ref)) ≤ 4 half-ulps of the type.

nhwc cases, backward and batch-statistics BatchNorm are not in ORT's CPU
inference ops (a user would add Transposes), so those rows are absent. Threads:
SessionOptions.intra_op_num_threads. Input and output stay bound to the same
numpy buffers (IOBinding), so no call allocates its output. The first run is
checked against a Float64 numpy reference (f32: max error 1e-4 of the output's rms).
"""
import csv
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_compare as tc  # noqa: E402  (the grid, bytes and timing loop)

EPS = 1e-5


def supported(op, direction, layout):
    return (op, direction, layout) in {("layernorm", "forward-training", "-"), ("rmsnorm", "forward-training", "-"),
                                       ("batchnorm", "forward-inference", "nchw"),
                                       ("instancenorm", "forward-training", "nchw"),
                                       ("groupnorm", "forward-training", "nchw")}


def build(onnx, op, shape, groups, params, elem):
    """The one-node model and its numpy reference (Float64)."""
    from onnx import TensorProto, helper, numpy_helper
    n, c, h, w = shape
    rows = op in ("layernorm", "rmsnorm")
    x_shape = [n, c * h * w] if rows else [n, c, h, w]
    # Parameters in the data's type (16-bit values as their float32 widening, which is exact).
    inits = [helper.make_tensor(k, elem, v.shape, v.astype("float32").ravel().tolist()) for k, v in params.items()]
    if op == "layernorm":
        node = helper.make_node("LayerNormalization", ["X", "scale", "bias"], ["Y"], axis=-1, epsilon=EPS)
    elif op == "rmsnorm":
        node = helper.make_node("SimplifiedLayerNormalization", ["X", "scale"], ["Y"], axis=-1, epsilon=EPS)
    elif op == "batchnorm":
        node = helper.make_node("BatchNormalization", ["X", "scale", "bias", "mean", "var"], ["Y"], epsilon=EPS)
    elif op == "instancenorm":
        node = helper.make_node("InstanceNormalization", ["X", "scale", "bias"], ["Y"], epsilon=EPS)
    else:
        node = helper.make_node("GroupNormalization", ["X", "scale", "bias"], ["Y"], epsilon=EPS, num_groups=groups)
    graph = helper.make_graph([node], "norm", [helper.make_tensor_value_info("X", elem, x_shape)],
                              [helper.make_tensor_value_info("Y", elem, x_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21 if op == "groupnorm" else 17)])
    model.ir_version = 8   # old enough for any onnxruntime that has opset 17
    return model.SerializeToString(), x_shape


def reference(np, op, x, params, groups):
    x = x.astype(np.float64)
    params = {k: v.astype(np.float64) for k, v in params.items()}
    if op == "layernorm":
        m, v = x.mean(1, keepdims=True), x.var(1, keepdims=True)
        return (x - m) / np.sqrt(v + EPS) * params["scale"] + params["bias"]
    if op == "rmsnorm":
        return x / np.sqrt((x * x).mean(1, keepdims=True) + EPS) * params["scale"]
    ch = lambda a: a.astype(np.float64).reshape(1, -1, 1, 1)
    if op == "batchnorm":
        return (x - ch(params["mean"])) / np.sqrt(ch(params["var"]) + EPS) * ch(params["scale"]) + ch(params["bias"])
    n, c, h, w = x.shape
    g = c if op == "instancenorm" else groups
    xg = x.reshape(n, g, -1)
    y = ((xg - xg.mean(2, keepdims=True)) / np.sqrt(xg.var(2, keepdims=True) + EPS)).reshape(x.shape)
    return y * ch(params["scale"]) + ch(params["bias"])


def main():
    args = tc.arguments()
    import ctypes
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto
    try:
        import ml_dtypes
    except ImportError:
        ml_dtypes = None
    # dtype -> (numpy type to round to, ONNX element type, half an ulp relative to the value)
    types = {"f32": (np.float32, TensorProto.FLOAT, None), "f16": (np.float16, TensorProto.FLOAT16, 2.0 ** -12),
             "bf16": (ml_dtypes.bfloat16 if ml_dtypes else None, TensorProto.BFLOAT16, 2.0 ** -9)}
    copy = tc.copy_bandwidth(args)
    # 16-bit: the row ops only. torch_compare's grid holds the channel ops in 16 bits
    # too, but ORT 1.32's CPU InstanceNormalization and GroupNormalization reject bf16.
    cases = [case for case in tc.case_grid(args)
             if supported(*case[:3]) and (case[6] == "f32" or case[0] in ("layernorm", "rmsnorm"))]
    order = sorted(range(len(cases)), key=lambda i: cases[i][5])
    rows = [None] * len(cases)
    started = time.perf_counter()
    for index in order:
        op, direction, layout, shape, groups, threads, dtype = cases[index]
        n, c, h, w = shape
        nbytes = tc.traffic_bytes(op, direction, shape, dtype)
        row = dict(op=op, direction=direction, layout=layout, N=n, C=c, H=h, W=w, G=groups if groups else "-",
                   threads=threads, affinity="none", bytes=nbytes, median_ms="", min_ms="", gbps="",
                   fraction_of_copy="", checked="ort", dtype=dtype)
        label = (f"{op}{'' if dtype == 'f32' else ' ' + dtype} {direction} {layout} {'x'.join(map(str, shape))} "
                 f"t{threads}")
        try:
            narrow, elem, half_ulp = types[dtype]
            if narrow is None:
                raise RuntimeError("bf16 needs ml_dtypes (pip install ml_dtypes)")
            rng = np.random.default_rng(1)
            p = c * h * w if op in ("layernorm", "rmsnorm") else c
            round_ = lambda a: a.astype(np.float32).astype(narrow)   # rounded once, to the case's type
            params = {"scale": round_(1 + 0.25 * rng.uniform(-1, 1, p))}
            if op != "rmsnorm":
                params["bias"] = round_(0.25 * rng.uniform(-1, 1, p))
            if op == "batchnorm":
                params["mean"] = ((np.arange(c) % 7 - 3) * 0.5).astype(np.float32)
                params["var"] = np.ones(c, np.float32)
            model, x_shape = build(onnx, op, shape, groups, params, elem)
            x = rng.uniform(-1, 1, x_shape).astype(np.float32)
            if op not in ("layernorm", "rmsnorm"):
                ch = np.arange(c).reshape(1, -1, 1, 1)
                x = (x * (1 + (ch % 3) * 0.25) + (ch % 7 - 3) * 0.5).astype(np.float32)
            x = round_(x)
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
            # OrtValues of the element type, bound once (numpy has no bfloat16 ORT accepts).
            x_value = ort.OrtValue.ortvalue_from_shape_and_type(x_shape, elem, "cpu", 0)
            y_value = ort.OrtValue.ortvalue_from_shape_and_type(x_shape, elem, "cpu", 0)
            ctypes.memmove(x_value.data_ptr(), x.ctypes.data, x.nbytes)
            io = sess.io_binding()
            io.bind_ortvalue_input("X", x_value)
            io.bind_ortvalue_output("Y", y_value)
            run = lambda: sess.run_with_iobinding(io)
            run()
            y = np.empty(x_shape, narrow)
            ctypes.memmove(y.ctypes.data, y_value.data_ptr(), y.nbytes)
            expected = reference(np, op, x.astype(np.float64), params, groups)
            rms = np.sqrt((expected ** 2).mean())
            got = y.astype(np.float64)
            if half_ulp is None:
                error, limit = np.abs(got - expected).max() / rms, 1e-4
            else:   # 4 half-ulps of the 16-bit type (tools/onednn's measure)
                error, limit = (np.abs(got - expected) / (np.abs(expected) + rms)).max(), 4 * half_ulp
            if not error <= limit:
                raise RuntimeError(f"max error {error:.3g} (limit {limit:.3g})")
            median, minimum = tc.measure(run, args.budget_ms / 1e3, args.min_reps)
            gbps = nbytes / median / 1e9
            row.update(median_ms=f"{median * 1e3:.6f}", min_ms=f"{minimum * 1e3:.6f}", gbps=f"{gbps:.3f}")
            if threads in copy:
                row["fraction_of_copy"] = f"{gbps / copy[threads]:.4f}"
            print(f"{label}: {median * 1e3:.3f} ms", file=sys.stderr)
        except Exception as error:   # an op this onnxruntime lacks (GroupNormalization-21)
            row["checked"] = "error"
            print(f"error: {label}: {str(error)[:300]}", file=sys.stderr)
        rows[index] = row
    print(f"{len(cases)} cases in {time.perf_counter() - started:.1f} s (onnxruntime {ort.__version__})", file=sys.stderr)
    with open(args.csv, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=tc.COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.csv}", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Run normbench's cases through ONNX Runtime where it has the op; same CSV columns.

    /work/torchvenv/bin/python tools/ort_compare.py --csv ort.csv \
        [--normbench-json sweep.json] [same case flags as `normbench sweep`]

The case grid, byte counts, timing loop and flags are tools/torch_compare.py's
(imported from it). ONNX Runtime's CPU provider runs inference graphs only, so
only the cases it computes are written (`checked` = "ort"):

* layernorm forward-training: LayerNormalization (opset 17), axis -1 over C·H·W
  (the output is the same as training's; ORT does not return the statistics here);
* batchnorm forward-inference, nchw: BatchNormalization with running statistics;
* instancenorm forward-training, nchw: InstanceNormalization (batch statistics);
* groupnorm forward-training, nchw: GroupNormalization (opset 21, γ, β per channel),
  where this onnxruntime has it.

nhwc cases, backward and batch-statistics BatchNorm are not in ORT's CPU
inference ops (a user would add Transposes), so those rows are absent. Threads:
SessionOptions.intra_op_num_threads. Input and output stay bound to the same
numpy buffers (IOBinding), so no call allocates its output. The first run is
checked against a Float64 numpy reference (max error 1e-4 of the output's rms).
"""
import csv
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_compare as tc  # noqa: E402  (the grid, bytes and timing loop)

EPS = 1e-5


def supported(op, direction, layout):
    return (op, direction, layout) in {("layernorm", "forward-training", "-"), ("batchnorm", "forward-inference", "nchw"),
                                       ("instancenorm", "forward-training", "nchw"),
                                       ("groupnorm", "forward-training", "nchw")}


def build(onnx, op, shape, groups, params):
    """The one-node model and its numpy reference (Float64)."""
    from onnx import TensorProto, helper, numpy_helper
    n, c, h, w = shape
    x_shape = [n, c * h * w] if op == "layernorm" else [n, c, h, w]
    inits = [numpy_helper.from_array(v, name=k) for k, v in params.items()]
    if op == "layernorm":
        node = helper.make_node("LayerNormalization", ["X", "scale", "bias"], ["Y"], axis=-1, epsilon=EPS)
    elif op == "batchnorm":
        node = helper.make_node("BatchNormalization", ["X", "scale", "bias", "mean", "var"], ["Y"], epsilon=EPS)
    elif op == "instancenorm":
        node = helper.make_node("InstanceNormalization", ["X", "scale", "bias"], ["Y"], epsilon=EPS)
    else:
        node = helper.make_node("GroupNormalization", ["X", "scale", "bias"], ["Y"], epsilon=EPS, num_groups=groups)
    graph = helper.make_graph([node], "norm", [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, x_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21 if op == "groupnorm" else 17)])
    model.ir_version = 8   # old enough for any onnxruntime that has opset 17
    return model.SerializeToString(), x_shape


def reference(np, op, x, params, groups):
    x = x.astype(np.float64)
    if op == "layernorm":
        m, v = x.mean(1, keepdims=True), x.var(1, keepdims=True)
        return (x - m) / np.sqrt(v + EPS) * params["scale"] + params["bias"]
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
    import numpy as np
    import onnx
    import onnxruntime as ort
    copy = tc.copy_bandwidth(args)
    cases = [case for case in tc.case_grid(args) if supported(*case[:3])]
    order = sorted(range(len(cases)), key=lambda i: cases[i][5])
    rows = [None] * len(cases)
    started = time.perf_counter()
    for index in order:
        op, direction, layout, shape, groups, threads = cases[index]
        n, c, h, w = shape
        nbytes = tc.traffic_bytes(op, direction, shape)
        row = dict(op=op, direction=direction, layout=layout, N=n, C=c, H=h, W=w, G=groups if groups else "-",
                   threads=threads, affinity="none", bytes=nbytes, median_ms="", min_ms="", gbps="",
                   fraction_of_copy="", checked="ort")
        label = f"{op} {direction} {layout} {'x'.join(map(str, shape))} t{threads}"
        try:
            rng = np.random.default_rng(1)
            p = c * h * w if op == "layernorm" else c
            params = {"scale": (1 + 0.25 * rng.uniform(-1, 1, p)).astype(np.float32),
                      "bias": (0.25 * rng.uniform(-1, 1, p)).astype(np.float32)}
            if op == "batchnorm":
                params["mean"] = ((np.arange(c) % 7 - 3) * 0.5).astype(np.float32)
                params["var"] = np.ones(c, np.float32)
            model, x_shape = build(onnx, op, shape, groups, params)
            x = rng.uniform(-1, 1, x_shape).astype(np.float32)
            if op != "layernorm":
                ch = np.arange(c).reshape(1, -1, 1, 1)
                x = (x * (1 + (ch % 3) * 0.25) + (ch % 7 - 3) * 0.5).astype(np.float32)
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
            y = np.empty(x_shape, np.float32)
            io = sess.io_binding()
            io.bind_cpu_input("X", x)
            io.bind_output("Y", "cpu", 0, np.float32, list(y.shape), y.ctypes.data)
            run = lambda: sess.run_with_iobinding(io)
            run()
            expected = reference(np, op, x, params, groups)
            error = np.abs(y - expected).max() / np.sqrt((expected ** 2).mean())
            if not error <= 1e-4:
                raise RuntimeError(f"max error {error:.3g} of the output's rms")
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

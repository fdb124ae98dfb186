// PyTorch fixtures of 16-bit BatchNorm and GroupNorm (batchnorm_16bit.json,
// groupnorm_16bit.json; bf16 and fp16 tensors, Float32 γ, β and running
// statistics, as PyTorch's mixed-dtype path takes them): every 16-bit output
// against PyTorch's under `TorchBound` (HalfPrecisionTests+TorchBounds.swift
// says which bound where, and why), the Float32 results normwise:
// - statistics (saved and running): both libraries accumulate the exactly
//   widened 16-bit values in Float32 or wider: 1e-5 relative (measured ≤ 9.2e-7;
//   offset cases 1e-4, measured 4.8e-6);
// - dγ, dβ: 1e-5 (measured ≤ 2.9e-7), offset cases 1e-3 (3.6e-5); PyTorch's
//   channels-last BatchNorm backward returns them rounded to the 16-bit type
//   (measured 1.7e-3 in BFloat16): one ulp of the type there; GroupNorm's offset
//   dγ 5e-2 (below).
// PyTorch's channels-last GroupNorm is no witness on the offset cases: it forms
// the variance as E[x²] − E[x]² in Float32 (even its Float32 kernel is off by
// 147 on outputs of size 5; its Float16 dx is infinite); y is checked against
// the Float64 reference of the inputs there instead.

import Testing
@testable import NormKernels

extension HalfPrecisionTests {
    @Test("PyTorch fixtures (bf16, fp16): BatchNorm NCHW, NHWC, [N, D], training, inference, ReLU, backward")
    func pytorchBatchNormFixtures() throws {
        var checked = 0, relu = 0, nd = 0
        for f in try Fixture.cases("batchnorm_16bit", atLeast: 18) {
            if try f.withDtype({ try checkBatchNormFixture($0, f) }) { checked += 1 }
            if f.bool("relu") { relu += 1 }
            if f.name.contains("_nd_") { nd += 1 }
        }
        #expect(checked >= 18 && relu >= 6 && nd >= 4, "\(checked) cases, \(relu) with ReLU, \(nd) [N, D]")
    }

    private func checkBatchNormFixture<E: SixteenBitElement>(_: E.Type, _ f: Fixture) throws {
        let name = "\(f.name) (\(E.typeName))"
        let shape = try f.shape(), count = shape.count, fused = f.bool("relu")
        let channelsLast = shape.layout == .nhwc && shape.spatial > 1
        let out: TorchBound = f.isOffset ? .offsetOutput : .output
        let grad: TorchBound = f.isOffset || channelsLast ? .intermediate : .gradient
        let rounded = channelsLast ? 0x1p0 / Double(1 << E.format.fractionBits) : 0
        let statistics = f.isOffset ? 1e-4 : 1e-5, parameterGradients = max(rounded, f.isOffset ? 1e-3 : 1e-5)
        let bn = try BatchNormalization(shape: shape, epsilon: Float(try #require(f.double("eps"))), fusedReLU: fused)
        let running = try RunningStatistics(channels: shape.c,
                                            update: .exponential(momentum: try #require(f.double("momentum"))))
        let gamma = f.floats("gamma"), beta = f.floats("beta")
        try #require(f.steps.count >= 2, "\(name): \(f.steps.count) training steps")
        var last: (x: [E], y: [E], saved: SavedStatistics)?
        for (k, step) in f.steps.enumerated() {
            let x: [E] = try step.halfTensor("input", count: count)
            let (y, saved) = try bn.forwardTraining(x, scale: gamma, bias: beta, running: running)
            expectNearTorch(y, try step.halfTensor("output", count: count), out, "\(name) step \(k) y")
            expectNearTorch(saved.mean.map(Float.init), step.doubles("save_mean"), tolerance: statistics,
                            "\(name) step \(k) mean")
            expectNearTorch(saved.invStd.map(Float.init), step.doubles("save_invstd"), tolerance: statistics,
                            "\(name) step \(k) 1/σ")
            last = (x, y, saved)
        }
        expectNearTorch(running.mean, f.doubles("running_mean"), tolerance: statistics, "\(name) running mean")
        expectNearTorch(running.variance, f.doubles("running_var"), tolerance: statistics, "\(name) running var")

        // Training backward (the last step), with the forward output as the ReLU mask.
        let (x, y, saved) = try #require(last)
        let dy: [E] = try f.halfTensor("dy", count: count)
        let training = try withGradients(E.self, count, parameters: shape.c) { dx, dg, db in
            try withBuffers(x, dy) { xp, dyp in
                try withOptionalBuffer(gamma) { g in
                    try y.withUnsafeBufferPointer { yp in
                        try bn.backwardTraining(input: xp, gradOutput: dyp, saved: saved, scale: g,
                                                output: fused ? yp : nil, gradInput: dx, gradScale: dg, gradBias: db)
                    }
                }
            }
        }
        expectNearTorch(training.dx, try f.halfTensor("dx", count: count), grad, "\(name) dx")
        if gamma != nil {
            expectNearTorch(training.dScale, f.doubles("dgamma"), tolerance: parameterGradients, "\(name) dγ")
            expectNearTorch(training.dBias, f.doubles("dbeta"), tolerance: parameterGradients, "\(name) dβ")
        }

        // Inference with the running statistics, and its backward.
        let xe: [E] = try f.halfTensor("eval_input", count: count), dye: [E] = try f.halfTensor("eval_dy", count: count)
        let ye = try bn.forwardInference(xe, scale: gamma, bias: beta, running: running)
        expectNearTorch(ye, try f.halfTensor("eval_output", count: count), out, "\(name) eval y")
        let inference = try withGradients(E.self, count, parameters: shape.c) { dx, dg, db in
            try withBuffers(xe, dye) { xp, dyp in
                try withOptionalBuffer(gamma) { g in
                    try ye.withUnsafeBufferPointer { yp in
                        try bn.backwardInference(input: xp, gradOutput: dyp, running: running, scale: g,
                                                 output: fused ? yp : nil, gradInput: dx, gradScale: dg, gradBias: db)
                    }
                }
            }
        }
        expectNearTorch(inference.dx, try f.halfTensor("eval_dx", count: count), .gradient, "\(name) eval dx")
        if gamma != nil {
            expectNearTorch(inference.dScale, f.doubles("eval_dgamma"), tolerance: parameterGradients, "\(name) eval dγ")
            expectNearTorch(inference.dBias, f.doubles("eval_dbeta"), tolerance: parameterGradients, "\(name) eval dβ")
        }
    }

    @Test("PyTorch fixtures (bf16, fp16): GroupNorm NCHW and NHWC, forward and backward")
    func pytorchGroupNormFixtures() throws {
        var checked = 0, nhwc = 0
        for f in try Fixture.cases("groupnorm_16bit", atLeast: 14) {
            if try f.withDtype({ try checkGroupNormFixture($0, f) }) { checked += 1 }
            if f.string("layout") == "nhwc" { nhwc += 1 }
        }
        #expect(checked >= 14 && nhwc >= 6, "\(checked) cases, \(nhwc) NHWC")
    }

    private func checkGroupNormFixture<E: SixteenBitElement>(_: E.Type, _ f: Fixture) throws {
        let name = "\(f.name) (\(E.typeName))"
        let shape = try f.shape(), count = shape.count
        let op = try GroupNormalization(shape: shape, groups: try #require(f.int("groups")),
                                        epsilon: Float(try #require(f.double("eps"))))
        let gamma = f.floats("gamma"), beta = f.floats("beta")
        let x: [E] = try f.halfTensor("input", count: count), dy: [E] = try f.halfTensor("dy", count: count)
        let (y, saved) = try op.forward(x, scale: gamma, bias: beta)
        let grads = try withGradients(E.self, count, parameters: shape.c) { dx, dg, db in
            try withBuffers(x, dy) { xp, dyp in
                try withOptionalBuffer(gamma) { g in
                    try op.backward(input: xp, gradOutput: dyp, saved: saved, scale: g, gradInput: dx, gradScale: dg,
                                    gradBias: db)
                }
            }
        }
        // Channels-last offset cases: y against the Float64 reference of the inputs
        // (β of channel i % C), PyTorch being no witness there (see above).
        if f.isOffset && shape.layout == .nhwc {
            let reference = Reference.groupNorm(x.map { E.widen($0) }, shape, groups: op.groups, epsilon: op.epsilon,
                                                scale: gamma, bias: beta)
            expectNearReference(y, reference.output, beta: beta, features: shape.c, "\(name) y (Float64 reference)")
            return
        }
        let out: TorchBound = f.isOffset ? .offsetOutput : .output
        // Offset dγ: in a group whose 16-bit values are all equal, x̂ = 0 and dγ = 0
        // exactly, where PyTorch's folded terms leave x̂ ≠ 0 (measured 3.2e-2 relative).
        let statistics = f.isOffset ? 1e-4 : 1e-5, parameterGradients = f.isOffset ? 5e-2 : 1e-5
        expectNearTorch(y, try f.halfTensor("output", count: count), out, "\(name) y")
        expectNearTorch(saved.mean.map(Float.init), f.doubles("mean"), tolerance: statistics, "\(name) mean")
        expectNearTorch(saved.invStd.map(Float.init), f.doubles("rstd"), tolerance: statistics, "\(name) 1/σ")
        expectNearTorch(grads.dx, try f.halfTensor("dx", count: count), .intermediate, "\(name) dx")
        if gamma != nil {
            expectNearTorch(grads.dScale, f.doubles("dgamma"), tolerance: parameterGradients, "\(name) dγ")
            expectNearTorch(grads.dBias, f.doubles("dbeta"), tolerance: parameterGradients, "\(name) dβ")
        }
    }
}

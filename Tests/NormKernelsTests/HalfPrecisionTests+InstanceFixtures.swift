// PyTorch fixtures of 16-bit InstanceNorm, AdaIN and weight normalization
// (instancenorm_16bit.json, adain_16bit.json, weightnorm_16bit.json): every
// 16-bit output against PyTorch's under `TorchBound`
// (HalfPrecisionTests+TorchBounds.swift), Float32 results normwise.
//
// AdaIN has no PyTorch kernel: the fixture composes it (adain.json's formula)
// twice. `output`, `dcontent`, `dstyle` compose it on Float32 copies of the
// 16-bit tensors and round once, as the library computes: compared under the
// usual bounds. `native_*` run the composition on the 16-bit tensors, every
// intermediate (μ, σ, x − μ, the quotient) rounded to the 16-bit type:
// measured up to 1.73 ulps of the largest value from the Float64 reference
// (bf16 dcontent; 1.59 in Float16; from ours up to 2.0), so ours is compared
// with them within 3; on the offset cases they are meaningless (μ rounded to
// the 16-bit type: 40–128 ulps of the largest value) and not compared.
//
// Weight norm: PyTorch's `_weight_norm` needs g of v's type, so the fixture's g
// is a 16-bit value (exact in Float) and PyTorch's dg is 16-bit: ours (Float)
// rounded to the 16-bit type is compared with it as dv is (`intermediate`).
// Float32 results (statistics, dγ, dβ) as in HalfPrecisionTests+BatchNormFixtures
// (InstanceNorm offset dγ measured 2.2e-4).

import Testing
@testable import NormKernels

/// The AdaIN composition on 16-bit tensors (see above).
private let nativeAdaIN = TorchBound(ulps: 2, normwise: 3)

extension HalfPrecisionTests {
    @Test("PyTorch fixtures (bf16, fp16): InstanceNorm NCHW and NHWC, running statistics, backward")
    func pytorchInstanceNormFixtures() throws {
        var checked = 0, tracked = 0
        for f in try Fixture.cases("instancenorm_16bit", atLeast: 14) {
            if try f.withDtype({ try checkInstanceNormFixture($0, f) }) { checked += 1 }
            if f.bool("track_running_stats") { tracked += 1 }
        }
        #expect(checked >= 14 && tracked >= 2, "\(checked) cases, \(tracked) with running statistics")
    }

    private func checkInstanceNormFixture<E: SixteenBitElement>(_: E.Type, _ f: Fixture) throws {
        let name = "\(f.name) (\(E.typeName))"
        let shape = try f.shape(), count = shape.count
        // Without γ PyTorch runs its pure 16-bit path, which rounds μ to the 16-bit type.
        let out: TorchBound = f.isOffset ? .offsetOutput : f.bool("affine") ? .output : .intermediate
        let statistics = f.isOffset ? 1e-4 : 1e-5, parameterGradients = f.isOffset ? 1e-3 : 1e-5
        let op = try InstanceNormalization(shape: shape, epsilon: Float(try #require(f.double("eps"))))
        let running = f.bool("track_running_stats")
            ? try RunningStatistics(channels: shape.c, update: .exponential(momentum: try #require(f.double("momentum"))))
            : nil
        let gamma = f.floats("gamma"), beta = f.floats("beta")
        var last: (x: [E], saved: SavedStatistics)?
        for (k, step) in f.steps.enumerated() {
            let x: [E] = try step.halfTensor("input", count: count)
            let (y, saved) = try op.forwardTraining(x, scale: gamma, bias: beta, running: running)
            expectNearTorch(y, try step.halfTensor("output", count: count), out, "\(name) step \(k) y")
            expectNearTorch(saved.mean.map(Float.init), step.doubles("save_mean"), tolerance: statistics,
                            "\(name) step \(k) mean")
            expectNearTorch(saved.invStd.map(Float.init), step.doubles("save_invstd"), tolerance: statistics,
                            "\(name) step \(k) 1/σ")
            last = (x, saved)
        }
        let (x, saved) = try #require(last, "\(name): no training step")
        let dy: [E] = try f.halfTensor("dy", count: count)
        let grads = try withGradients(E.self, count, parameters: shape.c) { dx, dg, db in
            try withBuffers(x, dy) { xp, dyp in
                try withOptionalBuffer(gamma) { g in
                    try op.backwardTraining(input: xp, gradOutput: dyp, saved: saved, scale: g, gradInput: dx,
                                            gradScale: dg, gradBias: db)
                }
            }
        }
        expectNearTorch(grads.dx, try f.halfTensor("dx", count: count), .intermediate, "\(name) dx")
        if gamma != nil {
            expectNearTorch(grads.dScale, f.doubles("dgamma"), tolerance: parameterGradients, "\(name) dγ")
            expectNearTorch(grads.dBias, f.doubles("dbeta"), tolerance: parameterGradients, "\(name) dβ")
        }
        if let running {
            expectNearTorch(running.mean, f.doubles("running_mean"), tolerance: statistics, "\(name) running mean")
            expectNearTorch(running.variance, f.doubles("running_var"), tolerance: statistics, "\(name) running var")
            let xe: [E] = try f.halfTensor("eval_input", count: count)
            let ye = try op.forwardInference(xe, scale: gamma, bias: beta, running: running)
            expectNearTorch(ye, try f.halfTensor("eval_output", count: count), .output, "\(name) eval y")
        }
    }

    @Test("PyTorch fixtures (bf16, fp16): AdaIN NCHW and NHWC, forward and backward")
    func pytorchAdaINFixtures() throws {
        var checked = 0
        for f in try Fixture.cases("adain_16bit", atLeast: 8) {
            if try f.withDtype({ try checkAdaINFixture($0, f) }) { checked += 1 }
        }
        #expect(checked >= 8)
    }

    private func checkAdaINFixture<E: SixteenBitElement>(_: E.Type, _ f: Fixture) throws {
        let name = "\(f.name) (\(E.typeName))"
        let cs = try f.shape("content_shape"), ss = try f.shape("style_shape")
        let op = try AdaptiveInstanceNormalization(content: cs, style: ss, epsilon: Float(try #require(f.double("eps"))))
        let x: [E] = try f.halfTensor("content", count: cs.count), s: [E] = try f.halfTensor("style", count: ss.count)
        let dy: [E] = try f.halfTensor("dy", count: cs.count)
        let (y, saved) = try op.forward(content: x, style: s)
        var dx = [E](repeating: E.narrow(0), count: cs.count), ds = [E](repeating: E.narrow(0), count: ss.count)
        try withBuffers(x, s) { xp, sp in
            try dy.withUnsafeBufferPointer { dyp in
                try dx.withUnsafeMutableBufferPointer { dxp in
                    try ds.withUnsafeMutableBufferPointer { dsp in
                        try op.backward(content: xp, style: sp, gradOutput: dyp, saved: saved, gradContent: dxp,
                                        gradStyle: dsp)
                    }
                }
            }
        }
        expectNearTorch(y, try f.halfTensor("output", count: cs.count), .output, "\(name) y")
        let grad: TorchBound = f.isOffset ? .intermediate : .gradient
        expectNearTorch(dx, try f.halfTensor("dcontent", count: cs.count), grad, "\(name) dcontent")
        expectNearTorch(ds, try f.halfTensor("dstyle", count: ss.count), grad, "\(name) dstyle")
        guard !f.isOffset else { return }
        expectNearTorch(y, try f.halfTensor("native_output", count: cs.count), nativeAdaIN, "\(name) y vs native")
        expectNearTorch(dx, try f.halfTensor("native_dcontent", count: cs.count), nativeAdaIN,
                        "\(name) dcontent vs native")
        expectNearTorch(ds, try f.halfTensor("native_dstyle", count: ss.count), nativeAdaIN, "\(name) dstyle vs native")
    }

    @Test("PyTorch fixtures (bf16, fp16): weight norm, every dim, forward and backward")
    func pytorchWeightNormFixtures() throws {
        var checked = 0
        for f in try Fixture.cases("weightnorm_16bit", atLeast: 12) {
            if try f.withDtype({ try checkWeightNormFixture($0, f) }) { checked += 1 }
        }
        #expect(checked >= 12)
    }

    private func checkWeightNormFixture<E: SixteenBitElement>(_: E.Type, _ f: Fixture) throws {
        let name = "\(f.name) (\(E.typeName))"
        let shape = try #require(f.ints("shape")), count = shape.reduce(1, *)
        let op = try WeightNormalization(shape: shape, dim: f.int("dim"))
        let v: [E] = try f.halfTensor("v", count: count), dw: [E] = try f.halfTensor("dw", count: count)
        let g = try #require(f.floats("g"))
        var w = [E](repeating: E.narrow(0), count: count)
        let norms = try v.withUnsafeBufferPointer { vp in
            try g.withUnsafeBufferPointer { gp in try w.withUnsafeMutableBufferPointer { try op.forward(v: vp, g: gp, output: $0) } }
        }
        var dv = [E](repeating: E.narrow(0), count: count), dg = [Float](repeating: 0, count: g.count)
        try withBuffers(v, dw) { vp, dwp in
            try g.withUnsafeBufferPointer { gp in
                try dv.withUnsafeMutableBufferPointer { dvp in
                    try dg.withUnsafeMutableBufferPointer { dgp in
                        try op.backward(v: vp, g: gp, gradWeight: dwp, norms: norms, gradV: dvp, gradG: dgp)
                    }
                }
            }
        }
        expectNearTorch(w, try f.halfTensor("w", count: count), .output, "\(name) w")
        expectNearTorch(dv, try f.halfTensor("dv", count: count), .intermediate, "\(name) dv")
        expectNearTorch(dg.map { E.narrow($0) }, try f.halfTensor("dg", count: g.count), .intermediate, "\(name) dg")
    }
}

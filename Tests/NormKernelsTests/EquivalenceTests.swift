// Kernels that must agree with each other: the two layouts of one kernel,
// GroupNorm at its extremes (G = 1 is LayerNorm, G = C is InstanceNorm),
// BatchNorm on [N, D] and on NCHW with H = W = 1, InstanceNorm inference
// backward and BatchNorm's, and each gradient alone and with the others.
// In place vs out of place: InPlaceTests.swift.

import Testing
@testable import NormKernels

@Suite("Equivalence: NCHW and NHWC agree after transposing")
struct EquivalenceLayoutTests {
    static let shapes = [TensorShape(n: 2, c: 33, h: 9, w: 13), TensorShape(n: 1, c: 100, h: 64, w: 65),
                         TensorShape(n: 3, c: 8, h: 1, w: 1), TensorShape(n: 2, c: 3, h: 70, w: 61),
                         TensorShape(n: 4, c: 40, h: 7, w: 1)]

    /// Runs `kernel` on the NCHW tensor and on its NHWC transpose and compares.
    func compareLayouts(_ shape: TensorShape, _ context: String, count: Int, sameGeometryWhenOneByOne: Bool = true,
                        _ kernel: (TensorShape, [Float]) throws -> ([Float], [Double], [Double])) throws {
        var rng = SplitMix64("layouts \(context)")
        let nchw = shape.with(layout: .nchw), nhwc = shape.with(layout: .nhwc)
        let x = activations(nchw, &rng)
        let (y1, mean1, inv1) = try kernel(nchw, x)
        let (y2, mean2, inv2) = try kernel(nhwc, relayout(x, nchw, to: .nhwc))
        let tol = reductionTolerance(count)
        expectAllClose(relayout(y2, nhwc, to: .nchw), y1.map(Double.init), atol: tol, rtol: tol, "NHWC output vs NCHW", context)
        expectAllClose(mean2, mean1, atol: tol / 10, rtol: tol / 10, "saved mean NHWC vs NCHW", context)
        expectAllClose(inv2, inv1, atol: 0, rtol: tol, "saved invStd NHWC vs NCHW", context)
        if shape.spatial == 1 && sameGeometryWhenOneByOne {
            // Same memory, same geometry: the same bits.
            expectIdentical(y2, y1, "H·W = 1 output", context)
        }
    }

    @Test("BatchNorm training and inference")
    func batchNorm() throws {
        sweep(product(Self.shapes, [false, true])) { item, context in
            let (shape, relu) = item
            var rng = SplitMix64("bn-params \(context)")
            let (scale, bias) = Affine.both.parameters(shape.c, &rng)
            try compareLayouts(shape, context, count: shape.n * shape.spatial) { s, x in
                let (y, saved) = try BatchNormalization(shape: s, fusedReLU: relu).forwardTraining(x, scale: scale, bias: bias)
                return (y, saved.mean, saved.invStd)
            }
            let running = try RunningStatistics(channels: shape.c, mean: rng.uniforms(shape.c, -1...1),
                                                variance: rng.uniforms(shape.c, 0.5...2))
            try compareLayouts(shape, context + " inference", count: 1) { s, x in
                (try BatchNormalization(shape: s, fusedReLU: relu).forwardInference(x, scale: scale, bias: bias, running: running), [], [])
            }
        }
    }

    @Test("InstanceNorm training")
    func instanceNorm() throws {
        sweep(Self.shapes.filter { $0.spatial > 1 }) { shape, context in
            var rng = SplitMix64("in-params \(context)")
            let (scale, bias) = Affine.both.parameters(shape.c, &rng)
            try compareLayouts(shape, context, count: shape.spatial) { s, x in
                let (y, saved) = try InstanceNormalization(shape: s).forwardTraining(x, scale: scale, bias: bias)
                return (y, saved.mean, saved.invStd)
            }
        }
    }

    @Test("GroupNorm for several G")
    func groupNorm() throws {
        let cases = product(Self.shapes, [1, 2, 4]).filter { $0.0.c % $0.1 == 0 }
            + [(TensorShape(n: 2, c: 33, h: 9, w: 13), 3), (TensorShape(n: 2, c: 33, h: 9, w: 13), 11)]
        sweep(cases) { item, context in
            let (shape, groups) = item
            var rng = SplitMix64("gn-params \(context)")
            let (scale, bias) = Affine.both.parameters(shape.c, &rng)
            try compareLayouts(shape, context, count: shape.c / groups * shape.spatial) { s, x in
                let (y, saved) = try GroupNormalization(shape: s, groups: groups).forward(x, scale: scale, bias: bias)
                return (y, saved.mean, saved.invStd)
            }
        }
    }

    @Test("AdaIN: content layout, style layout")
    func adaIN() throws {
        sweep(product(Self.shapes, [false, true])) { item, context in
            let (shape, unbiased) = item
            guard !unbiased || shape.spatial > 1 else { return }
            var rng = SplitMix64("adain-style \(context)")
            let ss = TensorShape(n: shape.n, c: shape.c, h: 5, w: 3)
            let style = activations(ss, &rng)
            let styleNHWC = relayout(style, ss, to: .nhwc)
            // (The style's layout changes its geometry, so H·W = 1 content is not bitwise equal.)
            try compareLayouts(shape, context, count: shape.spatial, sameGeometryWhenOneByOne: false) { s, x in
                // Content NCHW with style NCHW; content NHWC with style NHWC.
                let styleShape = ss.with(layout: s.layout)
                let (y, saved) = try AdaptiveInstanceNormalization(content: s, style: styleShape, unbiasedVariance: unbiased)
                    .forward(content: x, style: s.layout == .nchw ? style : styleNHWC)
                return (y, saved.contentMean + saved.styleMean, saved.contentInvStd + saved.styleStd)
            }
        }
    }
}

@Suite("Equivalence: GroupNorm extremes, BatchNorm 1-D")
struct EquivalenceKernelTests {
    static let shapes = [TensorShape(n: 2, c: 33, h: 9, w: 13), TensorShape(n: 3, c: 8, h: 1, w: 1),
                         TensorShape(n: 1, c: 3, h: 70, w: 61), TensorShape(n: 2, c: 40, h: 4, w: 8)]

    @Test("GroupNorm G = 1 equals LayerNorm over C·H·W (γ = 1, β = 0, and per-channel γ/β expanded)")
    func groupsOneIsLayerNorm() throws {
        sweep(product(Self.shapes, Layout.allCases, [false, true])) { item, context in
            let (base, layout, affine) = item
            let shape = base.with(layout: layout)
            var rng = SplitMix64("g1 \(context)")
            let x = activations(shape, &rng)
            let (scale, bias) = affine ? Affine.both.parameters(shape.c, &rng) : (nil, nil)
            let (yg, sg) = try GroupNormalization(shape: shape, groups: 1).forward(x, scale: scale, bias: bias)
            // LayerNorm's γ/β are per element in memory order: expand the per-channel ones.
            func expand(_ p: [Float]?) -> [Float]? {
                p.map { p in
                    var e = [Float](repeating: 0, count: shape.c * shape.spatial)
                    let one = TensorShape(n: 1, c: shape.c, h: shape.h, w: shape.w, layout: shape.layout)
                    for c in 0..<shape.c { for s in 0..<shape.spatial { e[one.offset(0, c, s)] = p[c] } }
                    return e
                }
            }
            let (yl, sl) = try LayerNormalization(shape: shape).forward(x, scale: expand(scale), bias: expand(bias))
            let tol = reductionTolerance(shape.c * shape.spatial)
            expectAllClose(yg, yl.map(Double.init), atol: tol, rtol: tol, "GroupNorm(G = 1) vs LayerNorm output", context)
            expectAllClose(sg.mean, sl.mean, atol: tol / 10, rtol: tol / 10, "saved mean", context)
            expectAllClose(sg.invStd, sl.invStd, atol: 0, rtol: tol, "saved invStd", context)
        }
    }

    @Test("GroupNorm G = C equals InstanceNorm")
    func groupsEqualChannelsIsInstanceNorm() throws {
        sweep(product(Self.shapes.filter { $0.spatial > 1 }, Layout.allCases)) { item, context in
            let shape = item.0.with(layout: item.1)
            var rng = SplitMix64("gc \(context)")
            let x = activations(shape, &rng)
            let (scale, bias) = Affine.both.parameters(shape.c, &rng)
            let (yg, sg) = try GroupNormalization(shape: shape, groups: shape.c).forward(x, scale: scale, bias: bias)
            let (yi, si) = try InstanceNormalization(shape: shape).forwardTraining(x, scale: scale, bias: bias)
            let tol = reductionTolerance(shape.spatial)
            expectAllClose(yg, yi.map(Double.init), atol: tol, rtol: tol, "GroupNorm(G = C) vs InstanceNorm output", context)
            expectAllClose(sg.mean, si.mean, atol: tol / 10, rtol: tol / 10, "saved mean", context)
            expectAllClose(sg.invStd, si.invStd, atol: 0, rtol: tol, "saved invStd", context)
        }
    }

    @Test("BatchNorm on TensorShape.matrix(N, D) equals NCHW [N, D, 1, 1] and NHWC [N, 1, 1, D] bit for bit")
    func matrixIsOneByOne() throws {
        sweep(product([2, 7, 300, 20000], [1, 8, 33, 100])) { item, context in
            let (n, d) = item
            var rng = SplitMix64("bn1d \(context)")
            let x = rng.normals(n * d, mean: 1, std: 2)
            let (scale, bias) = Affine.both.parameters(d, &rng)
            let (ym, sm) = try BatchNormalization(shape: .matrix(n, d)).forwardTraining(x, scale: scale, bias: bias)
            for layout in Layout.allCases {
                let (y, s) = try BatchNormalization(shape: TensorShape(n: n, c: d, layout: layout))
                    .forwardTraining(x, scale: scale, bias: bias)
                expectIdentical(y, ym, "\(layout) output vs matrix", context)
                expectIdentical(s.mean, sm.mean, "\(layout) saved mean vs matrix", context)
                expectIdentical(s.invStd, sm.invStd, "\(layout) saved invStd vs matrix", context)
            }
        }
    }
}

/// Seeds of the backward streams (the data these tests were tuned on).
private let streams = SeededStreams.backward

@Suite("Equivalence: backward kernels and gradient subsets")
struct BackwardEquivalenceTests {
    @Test("InstanceNorm inference backward is BatchNorm inference backward with the same running statistics")
    func instanceNormInference() throws {
        for shape in [TensorShape(n: 2, c: 5, h: 6, w: 7, layout: .nchw), TensorShape(n: 2, c: 5, h: 6, w: 7, layout: .nhwc)] {
            let x = streams.uniforms(shape.count, seed: 59), dy = streams.uniforms(shape.count, seed: 60)
            let gamma = streams.uniforms(shape.c, seed: 61, 0.5...1.5)
            let running = try RunningStatistics(channels: shape.c, mean: streams.uniforms(shape.c, seed: 62),
                                                variance: streams.uniforms(shape.c, seed: 63, 0.5...2))
            let viaInstance = try InstanceNormalization(shape: shape, epsilon: 1e-3)
                .backwardInference(x, gradOutput: dy, running: running, scale: gamma)
            let viaBatch = try BatchNormalization(shape: shape, epsilon: 1e-3)
                .backwardInference(x, gradOutput: dy, running: running, scale: gamma)
            #expect(viaInstance == viaBatch)
            // dx = γ·dy/√(running_var + ε), exactly the per-channel scale.
            let dx = try #require(viaInstance.input)
            for i in 0..<shape.count {
                let c = shape.layout == .nchw ? (i / shape.spatial) % shape.c : i % shape.c
                let expected = Double(gamma[c]) / (Double(running.variance[c]) + Double(Float(1e-3))).squareRoot() * Double(dy[i])
                #expect(abs(Double(dx[i]) - expected) <= 1e-6 * max(1, abs(expected)))
            }
        }
    }

    @Test("Each gradient computed alone equals the same gradient computed with the others")
    func subsetsMatchFullCalls() throws {
        let threading = Threading(threads: 2, parallelThreshold: 4096)
        for shape in [TensorShape(n: 8, c: 3, h: 128, w: 130, layout: .nchw), TensorShape(n: 4, c: 64, h: 24, w: 24, layout: .nhwc)] {
            let x = streams.uniforms(shape.count, seed: 21, -2...2), dy = streams.uniforms(shape.count, seed: 22)
            let gamma = streams.uniforms(shape.c, seed: 23, 0.5...1.5)
            let bn = try BatchNormalization(shape: shape, threading: threading)
            let (_, saved) = try bn.forwardTraining(x, scale: gamma)
            let all = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma)
            let dxOnly = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma, computing: .input)
            let parameters = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma, computing: .parameters)
            #expect(dxOnly.scale == nil && dxOnly.bias == nil && parameters.input == nil)
            #expect(bitPatterns(dxOnly.input) == bitPatterns(all.input), "BN \(shape) dx alone")
            #expect(bitPatterns(parameters.scale) == bitPatterns(all.scale) && bitPatterns(parameters.bias) == bitPatterns(all.bias), "BN \(shape) dγ/dβ alone")

            let gn = try GroupNormalization(shape: shape, groups: shape.c == 3 ? 3 : 16, threading: threading)
            let (_, gnSaved) = try gn.forward(x, scale: gamma)
            let gnAll = try gn.backward(x, gradOutput: dy, saved: gnSaved, scale: gamma)
            let gnDx = try gn.backward(x, gradOutput: dy, saved: gnSaved, scale: gamma, computing: .input)
            let gnScale = try gn.backward(x, gradOutput: dy, saved: gnSaved, scale: gamma, computing: .scale)
            #expect(bitPatterns(gnDx.input) == bitPatterns(gnAll.input) && bitPatterns(gnScale.scale) == bitPatterns(gnAll.scale))
            #expect(gnScale.bias == nil)
        }
        for (rows, features) in [(512, 300), (3, 70_000)] {
            let x = streams.uniforms(rows * features, seed: 24, -2...2), dy = streams.uniforms(rows * features, seed: 25)
            let gamma = streams.uniforms(features, seed: 26, 0.5...1.5)
            let ln = try LayerNormalization(rows: rows, features: features, threading: threading)
            let (_, saved) = try ln.forward(x, scale: gamma)
            let all = try ln.backward(x, gradOutput: dy, saved: saved, scale: gamma)
            let dxOnly = try ln.backward(x, gradOutput: dy, saved: saved, scale: gamma, computing: .input)
            let parameters = try ln.backward(x, gradOutput: dy, saved: saved, scale: gamma, computing: .parameters)
            #expect(bitPatterns(dxOnly.input) == bitPatterns(all.input), "LN dx alone")
            #expect(bitPatterns(parameters.scale) == bitPatterns(all.scale) && bitPatterns(parameters.bias) == bitPatterns(all.bias), "LN dγ/dβ alone")
        }
        let content = TensorShape(n: 2, c: 4, h: 130, w: 130), style = TensorShape(n: 2, c: 4, h: 64, w: 64)
        let x = streams.uniforms(content.count, seed: 27), s = streams.uniforms(style.count, seed: 28), dy = streams.uniforms(content.count, seed: 29)
        let ada = try AdaptiveInstanceNormalization(content: content, style: style, threading: threading)
        let (_, saved) = try ada.forward(content: x, style: s)
        let both = try ada.backward(content: x, style: s, gradOutput: dy, saved: saved)
        let styleOnly = try ada.backward(content: x, style: s, gradOutput: dy, saved: saved, gradContent: false)
        #expect(styleOnly.content == nil && bitPatterns(styleOnly.style) == bitPatterns(both.style))
    }
}

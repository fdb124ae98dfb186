// Kernels that must agree with each other: the two layouts of one kernel,
// GroupNorm at its extremes (G = 1 is LayerNorm, G = C is InstanceNorm),
// BatchNorm on [N, D] and on NCHW with H = W = 1, and in place vs out of place.

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

@Suite("Equivalence: GroupNorm extremes, BatchNorm 1-D, in place")
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

    /// Runs `kernel` out of place and in place (output = input buffer) and expects the same bits.
    func expectInPlaceMatches(_ x: [Float], _ context: String,
                              _ kernel: (UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) throws -> [Double]) throws {
        var out = [Float](repeating: sentinel, count: x.count)
        let saved = try x.withUnsafeBufferPointer { xp in try out.withUnsafeMutableBufferPointer { try kernel(xp, $0) } }
        var buffer = x
        let savedInPlace = try buffer.withUnsafeMutableBufferPointer { p in try kernel(UnsafeBufferPointer(p), p) }
        expectIdentical(buffer, out, "in-place output", context)
        expectIdentical(savedInPlace, saved, "in-place saved statistics", context)
    }

    @Test("in place equals out of place, every kernel and layout")
    func inPlace() throws {
        let shapes = Self.shapes + [TensorShape(n: 1, c: 2, h: 300, w: 300), TensorShape(n: 16, c: 4, h: 40, w: 50)]
        sweep(product(shapes, Layout.allCases)) { item, context in
            let shape = item.0.with(layout: item.1)
            var rng = SplitMix64("inplace \(context)")
            let x = activations(shape, &rng)
            let (scale, bias) = Affine.both.parameters(shape.c, &rng)
            let running = try RunningStatistics(channels: shape.c, mean: rng.uniforms(shape.c, -1...1),
                                                variance: rng.uniforms(shape.c, 0.5...2))
            let bn = try BatchNormalization(shape: shape, fusedReLU: true)
            try scale!.withUnsafeBufferPointer { g in
                try bias!.withUnsafeBufferPointer { b in
                    try expectInPlaceMatches(x, "BatchNorm training \(context)") { i, o in
                        let s = try bn.forwardTraining(input: i, output: o, scale: g, bias: b)
                        return s.mean + s.invStd
                    }
                    try expectInPlaceMatches(x, "BatchNorm inference \(context)") { i, o in
                        try bn.forwardInference(input: i, output: o, scale: g, bias: b, running: running)
                        return []
                    }
                    if shape.spatial > 1 {
                        let instance = try InstanceNormalization(shape: shape)
                        try expectInPlaceMatches(x, "InstanceNorm training \(context)") { i, o in
                            let s = try instance.forwardTraining(input: i, output: o, scale: g, bias: b)
                            return s.mean + s.invStd
                        }
                        try expectInPlaceMatches(x, "InstanceNorm inference \(context)") { i, o in
                            try instance.forwardInference(input: i, output: o, scale: g, bias: b, running: running)
                            return []
                        }
                    }
                    let gn = try GroupNormalization(shape: shape, groups: shape.c % 2 == 0 ? 2 : 1)
                    try expectInPlaceMatches(x, "GroupNorm \(context)") { i, o in
                        let s = try gn.forward(input: i, output: o, scale: g, bias: b)
                        return s.mean + s.invStd
                    }
                }
            }
            let ln = try LayerNormalization(shape: shape)
            try expectInPlaceMatches(x, "LayerNorm \(context)") { i, o in
                let s = try ln.forward(input: i, output: o)
                return s.mean + s.invStd
            }
            let rms = try RMSNormalization(rows: shape.n, features: shape.c * shape.spatial)
            try expectInPlaceMatches(x, "RMSNorm \(context)") { i, o in try rms.forward(input: i, output: o).invStd }
            let ss = TensorShape(n: shape.n, c: shape.c, h: 3, w: 3)
            let style = activations(ss, &rng)
            let ada = try AdaptiveInstanceNormalization(content: shape, style: ss)
            try style.withUnsafeBufferPointer { st in
                try expectInPlaceMatches(x, "AdaIN \(context)") { i, o in
                    let s = try ada.forward(content: i, style: st, output: o)
                    return s.contentMean + s.contentInvStd + s.styleMean + s.styleStd
                }
            }
            let wn = try WeightNormalization(shape: [shape.n, shape.c, shape.h, shape.w], dim: 1)
            let gains = rng.uniforms(shape.c, 0.5...2)
            try gains.withUnsafeBufferPointer { gp in
                try expectInPlaceMatches(x, "WeightNorm \(context)") { i, o in try wn.forward(v: i, g: gp, output: o) }
            }
        }
    }
}

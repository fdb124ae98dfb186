// Inputs that break naive implementations: a large offset with a tiny spread
// (E[x²] − E[x]² cancels completely), constant inputs (zero variance), values
// near 1e30 (x² overflows Float32), and 1e7 values in one reduction.

import Testing
@testable import NormKernels

/// x = offset + std·z in Float32 (the reference sees the same rounded inputs).
func offsetData(_ count: Int, offset: Double, std: Double, _ rng: inout SplitMix64) -> [Float] {
    (0..<count).map { _ in Float(offset + std * rng.normal()) }
}

/// x = 1e30·(1 + 0.1·z): x² overflows Float32, (x − mean)² does too.
func hugeData(_ count: Int, _ rng: inout SplitMix64) -> [Float] {
    (0..<count).map { _ in Float(1e30 * (1 + 0.1 * rng.normal())) }
}

@Suite("HardNumerics: mean 1e4, std 1e-2")
struct HardNumericsOffsetTests {
    // Outputs within 1e-3 of the reference from the same Float32 inputs; the
    // mean to ~1e-10 relative, 1/σ to 1e-4 relative and
    // within a quarter of 1/(2n) (a biased/unbiased swap must fail).
    static let outputTolerance = 1e-3

    func check(_ y: [Float], _ saved: SavedStatistics, _ ref: Reference.Normalized, _ context: String,
               sourceLocation: SourceLocation = #_sourceLocation) {
        // 1/σ within a quarter of the 1/(2n) a biased/unbiased swap would move it.
        let count = ref.statistics.map(\.count).max() ?? 1
        #expect(y.allSatisfy { $0.isFinite }, "non-finite output — \(context)", sourceLocation: sourceLocation)
        expectAllClose(y, ref.output, atol: Self.outputTolerance, "output", context, sourceLocation: sourceLocation)
        expectAllClose(saved.mean, ref.mean, atol: 1e-6, "saved mean", context, sourceLocation: sourceLocation)
        expectAllClose(saved.invStd, ref.invStd, atol: 0, rtol: min(1e-4, invStdTolerance(count)), "saved invStd", context,
                       sourceLocation: sourceLocation)
    }

    @Test("BatchNorm NCHW and NHWC (contiguous blocks, 32/8/scalar column tiles)")
    func batchNorm() throws {
        let cases = product([TensorShape(n: 3, c: 4, h: 70, w: 61), TensorShape(n: 2, c: 41, h: 9, w: 13),
                             TensorShape(n: 64, c: 33, h: 1, w: 1)], Layout.allCases)
        sweep(cases) { item, context in
            let shape = item.0.with(layout: item.1)
            var rng = SplitMix64("hard-bn \(context)")
            let x = offsetData(shape.count, offset: 1e4, std: 1e-2, &rng)
            let (scale, bias) = Affine.both.parameters(shape.c, &rng)
            let (y, saved) = try BatchNormalization(shape: shape).forwardTraining(x, scale: scale, bias: bias)
            check(y, saved, Reference.batchNorm(x, shape, scale: scale, bias: bias), context)
        }
    }

    @Test("LayerNorm rows: 8 per vector, one row at a time (up to 16 384 values), rows geometry over several blocks")
    func layerNorm() throws {
        // Rows longer than `rowByRowMoments` and than two blocks (any L1d size) take the geometry.
        let geometryRow = max(16_385, 2 * Sizes.block + 5)
        let cases = [(4, 9000), (1, 33), (16, 4096), (2, geometryRow)]
        for (rows, features) in cases {
            let geometry = try LayerNormalization(rows: rows, features: features).plan().geometry
            #expect(geometry.contains("one row at a time") == (129...16_384).contains(features), "\(features): \(geometry)")
            #expect(geometry.contains("tiny units") == (features <= 16_384), "\(features): \(geometry)")
        }
        sweep(cases) { item, context in
            let (rows, features) = item
            var rng = SplitMix64("hard-ln \(context)")
            let x = offsetData(rows * features, offset: 1e4, std: 1e-2, &rng)
            let (scale, bias) = Affine.both.parameters(features, &rng)
            let (y, saved) = try LayerNormalization(rows: rows, features: features).forward(x, scale: scale, bias: bias)
            check(y, saved, Reference.layerNorm(x, rows: rows, features: features, scale: scale, bias: bias), context)
        }
    }

    @Test("InstanceNorm NCHW and NHWC")
    func instanceNorm() throws {
        // 4×4 and 1×3 NCHW take the small-instance lanes (`TinyUnits`).
        let cases = product([TensorShape(n: 2, c: 3, h: 65, w: 65), TensorShape(n: 2, c: 41, h: 7, w: 5),
                             TensorShape(n: 3, c: 17, h: 4, w: 4), TensorShape(n: 2, c: 9, h: 1, w: 3)], Layout.allCases)
        sweep(cases) { item, context in
            let shape = item.0.with(layout: item.1)
            var rng = SplitMix64("hard-in \(context)")
            let x = offsetData(shape.count, offset: 1e4, std: 1e-2, &rng)
            let (y, saved) = try InstanceNormalization(shape: shape).forwardTraining(x)
            check(y, saved, Reference.instanceNorm(x, shape), context)
        }
    }

    @Test("GroupNorm NCHW and NHWC")
    func groupNorm() throws {
        // [3, 32, 2, 3] G = 4 takes the small-map paths (NCHW rows, NHWC group segments of 8).
        let cases = product([(TensorShape(n: 2, c: 8, h: 33, w: 33), 2), (TensorShape(n: 2, c: 40, h: 5, w: 5), 5),
                             (TensorShape(n: 3, c: 32, h: 2, w: 3), 4)],
                            Layout.allCases)
        sweep(cases) { item, context in
            let ((base, groups), layout) = item
            let shape = base.with(layout: layout)
            var rng = SplitMix64("hard-gn \(context)")
            let x = offsetData(shape.count, offset: 1e4, std: 1e-2, &rng)
            let (y, saved) = try GroupNormalization(shape: shape, groups: groups).forward(x)
            check(y, saved, Reference.groupNorm(x, shape, groups: groups), context)
        }
    }

    @Test("AdaIN content at mean 1e4, std 1e-2, NCHW and NHWC")
    func adaIN() throws {
        sweep(product(Layout.allCases, Layout.allCases)) { item, context in
            let cs = TensorShape(n: 2, c: 3, h: 40, w: 40, layout: item.0)
            let ss = TensorShape(n: 2, c: 3, h: 9, w: 9, layout: item.1)
            var rng = SplitMix64("hard-adain \(context)")
            let content = offsetData(cs.count, offset: 1e4, std: 1e-2, &rng)
            let style = rng.normals(ss.count, mean: 1, std: 2)
            let (y, saved) = try AdaptiveInstanceNormalization(content: cs, style: ss).forward(content: content, style: style)
            let ref = Reference.adaIN(content: content, cs, style: style, ss)
            expectAllClose(y, ref.output, atol: Self.outputTolerance, "output", context)
            expectAllClose(saved.contentMean, ref.contentMean, atol: 1e-6, "content mean", context)
            expectAllClose(saved.contentInvStd, ref.contentInvStd, atol: 0, rtol: min(1e-4, invStdTolerance(cs.spatial)),
                           "content invStd", context)
        }
    }
}

@Suite("HardNumerics: constant input")
struct HardNumericsConstantTests {
    /// 1/√ε exactly as the kernels form it (ε is a Float).
    static let invSqrtEps = 1 / Double(Float(1e-5)).squareRoot()
    static let constants: [Float] = [0, 0.1, -7.25, 1e4 + 0.5, 3e7]

    func checkConstant(_ y: [Float], expected: [Double], _ saved: SavedStatistics, _ context: String,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!y.contains { $0.isNaN }, "NaN output — \(context)", sourceLocation: sourceLocation)
        expectAllClose(y, expected, atol: 1e-6, "output (= β)", context, sourceLocation: sourceLocation)
        #expect(saved.invStd.allSatisfy { $0 == Self.invSqrtEps },
                "saved invStd \(Set(saved.invStd)) ≠ 1/√ε = \(Self.invSqrtEps) — \(context)", sourceLocation: sourceLocation)
    }

    /// β[c] at every position of the shape.
    func betaTensor(_ bias: [Float], _ shape: TensorShape) -> [Double] {
        var y = [Double](repeating: .nan, count: shape.count)
        for n in 0..<shape.n { for c in 0..<shape.c { for s in 0..<shape.spatial { y[shape.offset(n, c, s)] = Double(bias[c]) } } }
        return y
    }

    @Test("BatchNorm NCHW/NHWC: output = β, invStd = 1/√ε (constant per channel)")
    func batchNorm() throws {
        let cases = product([TensorShape(n: 2, c: 41, h: 5, w: 7), TensorShape(n: 2, c: 3, h: 70, w: 61),
                             TensorShape(n: 40000, c: 2)], Layout.allCases)
        sweep(cases) { item, context in
            let shape = item.0.with(layout: item.1)
            var rng = SplitMix64("const-bn \(context)")
            var x = [Float](repeating: 0, count: shape.count)
            for n in 0..<shape.n { for c in 0..<shape.c { for s in 0..<shape.spatial {
                x[shape.offset(n, c, s)] = Self.constants[c % Self.constants.count]
            } } }
            let (scale, bias) = Affine.both.parameters(shape.c, &rng)
            for relu in [false, true] {
                let (y, saved) = try BatchNormalization(shape: shape, fusedReLU: relu).forwardTraining(x, scale: scale, bias: bias!)
                checkConstant(y, expected: betaTensor(bias!.map { relu ? max($0, 0) : $0 }, shape), saved, "\(context) relu \(relu)")
                #expect(saved.mean == (0..<shape.c).map { Double(Self.constants[$0 % Self.constants.count]) },
                        "saved mean must be the constant — \(context)")
            }
        }
    }

    @Test("LayerNorm: output = β per feature")
    func layerNorm() throws {
        sweep(product(Self.constants, [1, 33, 9000])) { item, context in
            let (value, features) = item
            var rng = SplitMix64("const-ln \(context)")
            let (scale, bias) = Affine.both.parameters(features, &rng)
            let x = [Float](repeating: value, count: 3 * features)
            let (y, saved) = try LayerNormalization(rows: 3, features: features).forward(x, scale: scale, bias: bias)
            checkConstant(y, expected: (0..<(3 * features)).map { Double(bias![$0 % features]) }, saved, context)
        }
    }

    @Test("InstanceNorm and GroupNorm NCHW/NHWC: output = β[c]")
    func instanceAndGroupNorm() throws {
        sweep(product([TensorShape(n: 2, c: 40, h: 9, w: 9), TensorShape(n: 1, c: 8, h: 70, w: 61),
                       TensorShape(n: 3, c: 16, h: 3, w: 3)],   // small maps: tiny instances, GroupNorm rows/segments
                      Layout.allCases, [0, 1, 4, 8])) { item, context in
            let (base, layout, groups) = item
            let shape = base.with(layout: layout)
            var rng = SplitMix64("const-in \(context)")
            let (scale, bias) = Affine.both.parameters(shape.c, &rng)
            // Constant per (n, group): groups = 0 means InstanceNorm (one per (n, c)).
            let size = groups == 0 ? 1 : shape.c / groups
            var x = [Float](repeating: 0, count: shape.count)
            for n in 0..<shape.n { for c in 0..<shape.c { for s in 0..<shape.spatial {
                x[shape.offset(n, c, s)] = Self.constants[(n + c / size) % Self.constants.count]
            } } }
            let (y, saved) = groups == 0
                ? try InstanceNormalization(shape: shape).forwardTraining(x, scale: scale, bias: bias)
                : try GroupNormalization(shape: shape, groups: groups).forward(x, scale: scale, bias: bias)
            checkConstant(y, expected: betaTensor(bias!, shape), saved, context)
        }
    }

    @Test("AdaIN: constant content gives the style mean, content invStd = 1/√ε")
    func adaIN() throws {
        sweep(product(Layout.allCases, Self.constants)) { item, context in
            let cs = TensorShape(n: 2, c: 33, h: 6, w: 7, layout: item.0), ss = TensorShape(n: 2, c: 33, h: 5, w: 5)
            var rng = SplitMix64("const-adain \(context)")
            let content = [Float](repeating: item.1, count: cs.count)
            let style = activations(ss, &rng)
            let (y, saved) = try AdaptiveInstanceNormalization(content: cs, style: ss).forward(content: content, style: style)
            #expect(!y.contains { $0.isNaN }, "NaN output — \(context)")
            #expect(saved.contentInvStd.allSatisfy { $0 == Self.invSqrtEps }, "content invStd — \(context)")
            var expected = [Double](repeating: .nan, count: cs.count)
            for n in 0..<cs.n { for c in 0..<cs.c { for s in 0..<cs.spatial {
                expected[cs.offset(n, c, s)] = saved.styleMean[n * cs.c + c]
            } } }
            expectAllClose(y, expected, atol: 1e-6, rtol: 1e-6, "output (= style mean)", context)
            expectAllClose(saved.styleMean, Reference.adaIN(content: content, cs, style: style, ss).styleMean,
                        atol: 1e-6, rtol: 1e-6, "style mean", context)
        }
    }
}

@Suite("HardNumerics: values near 1e30")
struct HardNumericsHugeTests {
    @Test("BatchNorm NCHW/NHWC: finite, correct outputs and statistics")
    func batchNorm() throws {
        let cases = product([TensorShape(n: 2, c: 41, h: 9, w: 13), TensorShape(n: 3, c: 2, h: 70, w: 61)], Layout.allCases)
        sweep(cases) { item, context in
            let shape = item.0.with(layout: item.1)
            var rng = SplitMix64("huge-bn \(context)")
            let x = hugeData(shape.count, &rng)
            let (scale, bias) = Affine.both.parameters(shape.c, &rng)
            let (y, saved) = try BatchNormalization(shape: shape).forwardTraining(x, scale: scale, bias: bias)
            let ref = Reference.batchNorm(x, shape, scale: scale, bias: bias)
            #expect(y.allSatisfy { $0.isFinite }, "non-finite output — \(context)")
            expectAllClose(y, ref.output, atol: 1e-4, rtol: 1e-4, "output", context)
            expectAllClose(saved.mean, ref.mean, atol: 0, rtol: 1e-6, "saved mean", context)
            expectAllClose(saved.invStd, ref.invStd, atol: 0, rtol: min(1e-4, invStdTolerance(shape.n * shape.spatial)),
                           "saved invStd", context)
        }
    }

    @Test("LayerNorm and GroupNorm NCHW/NHWC")
    func layerAndGroupNorm() throws {
        sweep([(3, 4100), (2, 31)]) { item, context in
            var rng = SplitMix64("huge-ln \(context)")
            let x = hugeData(item.0 * item.1, &rng)
            let (y, saved) = try LayerNormalization(rows: item.0, features: item.1).forward(x)
            let ref = Reference.layerNorm(x, rows: item.0, features: item.1)
            #expect(y.allSatisfy { $0.isFinite }, "non-finite output — \(context)")
            expectAllClose(y, ref.output, atol: 1e-4, rtol: 1e-4, "LayerNorm output", context)
            expectAllClose(saved.mean, ref.mean, atol: 0, rtol: 1e-6, "LayerNorm saved mean", context)
            expectAllClose(saved.invStd, ref.invStd, atol: 0, rtol: min(1e-4, invStdTolerance(item.1)), "LayerNorm saved invStd", context)
        }
        sweep(product([(TensorShape(n: 2, c: 41, h: 9, w: 9), 41), (TensorShape(n: 2, c: 8, h: 9, w: 9), 4),
                       (TensorShape(n: 2, c: 40, h: 9, w: 9), 1), (TensorShape(n: 2, c: 16, h: 3, w: 3), 2)],
                      Layout.allCases)) { item, context in
            let ((base, groups), layout) = item
            let shape = base.with(layout: layout)
            var rng = SplitMix64("huge-gn \(context)")
            let x = hugeData(shape.count, &rng)
            let (y, saved) = try GroupNormalization(shape: shape, groups: groups).forward(x)
            let ref = Reference.groupNorm(x, shape, groups: groups)
            #expect(y.allSatisfy { $0.isFinite }, "non-finite output — \(context)")
            expectAllClose(y, ref.output, atol: 1e-4, rtol: 1e-4, "GroupNorm output", context)
            expectAllClose(saved.mean, ref.mean, atol: 0, rtol: 1e-6, "GroupNorm saved mean", context)
            expectAllClose(saved.invStd, ref.invStd, atol: 0, rtol: min(1e-4, invStdTolerance(shape.c / groups * shape.spatial)),
                           "GroupNorm saved invStd", context)
        }
    }

    @Test("InstanceNorm on small maps (8 instances or 8 channels per vector): Float64 redo of overflowing lanes")
    func tinyInstanceNorm() throws {
        sweep([TensorShape(n: 2, c: 13, h: 2, w: 2), TensorShape(n: 1, c: 9, h: 4, w: 4), TensorShape(n: 2, c: 11, h: 7, w: 7),
               TensorShape(n: 1, c: 9, h: 8, w: 8), TensorShape(n: 2, c: 16, h: 2, w: 2, layout: .nhwc),
               TensorShape(n: 1, c: 8, h: 4, w: 4, layout: .nhwc)]) { shape, context in
            var rng = SplitMix64("huge-in \(context)")
            let x = hugeData(shape.count, &rng)
            let (y, saved) = try InstanceNormalization(shape: shape).forwardTraining(x)
            let ref = Reference.instanceNorm(x, shape)
            #expect(y.allSatisfy { $0.isFinite }, "non-finite output — \(context)")
            expectAllClose(y, ref.output, atol: 1e-4, rtol: 1e-4, "InstanceNorm output", context)
            expectAllClose(saved.mean, ref.mean, atol: 0, rtol: 1e-6, "InstanceNorm saved mean", context)
            expectAllClose(saved.invStd, ref.invStd, atol: 0, rtol: min(1e-4, invStdTolerance(shape.spatial)),
                           "InstanceNorm saved invStd", context)
        }
    }

    @Test("LayerNorm and RMSNorm backward on short rows: Σ dy·γ overflows Float32, the row is redone in Float64")
    func shortRowBackwardOverflow() throws {
        sweep(product([17, 32, 100, 256], [true, false])) { item, context in
            let (features, centered) = item
            let rows = 20
            var rng = SplitMix64("huge-ln-backward \(context)")
            let x = rng.uniforms(rows * features, -2...3)
            // dy ≈ 2e37, all positive: 17 of them already pass Float32's 3.4e38.
            let dy = (0..<(rows * features)).map { _ in Float(2e37 * (1 + 0.1 * rng.normal())) }
            let gamma = rng.uniforms(features, 0.5...1.5)
            let dx: [Float], saved: SavedStatistics
            if centered {
                let ln = try LayerNormalization(rows: rows, features: features)
                saved = try ln.forward(x, scale: gamma).saved
                dx = try #require(try ln.backward(x, gradOutput: dy, saved: saved, scale: gamma, computing: .input).input)
            } else {
                let rms = try RMSNormalization(rows: rows, features: features)
                saved = try rms.forward(x, scale: gamma).saved
                dx = try #require(try rms.backward(x, gradOutput: dy, saved: saved, scale: gamma, computing: .input).input)
            }
            // Float64: dx = r·(g − mean(g) − x̂·mean(g·x̂)), g = dy·γ (RMSNorm: no mean(g), x̂ = x·r).
            var worst = 0.0, largest = 0.0
            for row in 0..<rows {
                let r = saved.invStd[row], mu = centered ? saved.mean[row] : 0
                let idx = (row * features)..<((row + 1) * features)
                let g = idx.map { Double(dy[$0]) * Double(gamma[$0 - row * features]) }
                let xhat = idx.map { (Double(x[$0]) - mu) * r }
                let m1 = centered ? g.reduce(0, +) / Double(features) : 0
                let m2 = zip(g, xhat).reduce(0) { $0 + $1.0 * $1.1 } / Double(features)
                for (k, i) in idx.enumerated() {
                    let expected = r * (g[k] - m1 - xhat[k] * m2)
                    worst = max(worst, abs(Double(dx[i]) - expected))
                    largest = max(largest, abs(expected))
                }
            }
            #expect(dx.allSatisfy { $0.isFinite }, "non-finite dx — \(context)")
            #expect(worst / largest < 1e-5, "dx relative error \(worst / largest) — \(context)")
        }
    }

    @Test("RMSNorm: x² overflows Float32 but 1/rms is right")
    func rmsNorm() throws {
        sweep([(3, 4100), (2, 31), (1, 1)]) { item, context in
            var rng = SplitMix64("huge-rms \(context)")
            let x = hugeData(item.0 * item.1, &rng)
            let scale = rng.uniforms(item.1, -2...2)
            let (y, saved) = try RMSNormalization(rows: item.0, features: item.1).forward(x, scale: scale)
            let ref = Reference.rmsNorm(x, rows: item.0, features: item.1, scale: scale)
            #expect(y.allSatisfy { $0.isFinite }, "non-finite output — \(context)")
            expectAllClose(y, ref.output, atol: 1e-5, rtol: 1e-5, "output", context)
            expectAllClose(saved.invStd, ref.invRMS, atol: 0, rtol: 1e-6, "saved 1/rms", context)
        }
    }

    @Test("WeightNorm: ‖v‖ of 1e30 values without overflow")
    func weightNorm() throws {
        sweep([([8, 4100], 0 as Int?), ([8, 4100], nil), ([3, 40, 7], 1), ([5, 33], 1)]) { item, context in
            var rng = SplitMix64("huge-wn \(context)")
            let wn = try WeightNormalization(shape: item.0, dim: item.1)
            let v = hugeData(wn.count, &rng)
            let g = rng.uniforms(wn.normCount, 0.5...2)
            let (w, norms) = try wn.forward(v: v, g: g)
            let ref = Reference.weightNorm(v, shape: item.0, dim: item.1, g: g)
            #expect(w.allSatisfy { $0.isFinite } && norms.allSatisfy { $0.isFinite }, "non-finite result — \(context)")
            expectAllClose(norms, ref.norms, atol: 0, rtol: 1e-6, "norms", context)
            expectAllClose(w, ref.weight, atol: 0, rtol: 1e-5, "weight", context)
        }
    }
}

@Suite("HardNumerics: tiny values (x² underflows Float32)")
struct HardNumericsTinyTests {
    /// w = g·v/‖v‖ for v = magnitude·z: ‖v‖ ≈ magnitude·√n is an ordinary Float64
    /// and w is O(1/√n) — the mirror image of the 1e30 case.
    func check(_ cases: [([Int], Int?, Double)], sourceLocation: SourceLocation = #_sourceLocation) {
        sweep(cases, sourceLocation: sourceLocation) { item, context in
            let (shape, dim, magnitude) = item
            var rng = SplitMix64("tiny-wn \(context)")
            let wn = try WeightNormalization(shape: shape, dim: dim)
            let v = (0..<wn.count).map { _ in Float(magnitude * rng.normal()) }
            let g = rng.uniforms(wn.normCount, 0.5...2)
            let (w, norms) = try wn.forward(v: v, g: g)
            let ref = Reference.weightNorm(v, shape: shape, dim: dim, g: g)
            #expect(w.allSatisfy { $0.isFinite } && norms.allSatisfy { $0.isFinite }, "non-finite result — \(context)",
                    sourceLocation: sourceLocation)
            expectAllClose(norms, ref.norms, atol: 0, rtol: 1e-6, "norms", context, sourceLocation: sourceLocation)
            expectAllClose(w, ref.weight, atol: 0, rtol: 1e-5, "weight", context, sourceLocation: sourceLocation)
        }
    }

    @Test("WeightNorm: subnormal squares (v ≈ 1e-20), and 1e-25 values that only reach the Float64 tail loop")
    func weightNormSubnormal() {
        // [3, 40, 7] dim 1: every block is a 7-value run, below the 32-lane loop.
        check([([8, 4100], 0, 1e-20), ([3, 40, 7], 1, 1e-25)])
    }

    @Test("WeightNorm: v ≈ 1e-25, whose squares flush to zero in the Float32 lanes")
    func weightNormUnderflow() {
        // Squares below Float32's normal range: BlockMoments.meanSquare redoes such
        // blocks in Float64 (it once computed ‖v‖ from the scalar tails alone).
        check([([8, 4100], 0, 1e-25), ([64, 4097], nil, 1e-25), ([4, 33], 0, 1e-25)])
    }
}

@Suite("HardNumerics: 1e7 values in one channel")
struct HardNumericsLargeReductionTests {
    @Test("BatchNorm [10, 1, 1000, 1000] NCHW (rows) and NHWC (columns) against the Float64 reference")
    func tenMillion() throws {
        // With C = 1 the NCHW and NHWC tensors are the same memory, but NCHW
        // reduces contiguous blocks of L1d/8 values and NHWC column blocks of
        // ~L2/2 bytes (38 blocks of 262144 rows on a 2 MiB L2).
        var rng = SplitMix64("1e7")
        let base = TensorShape(n: 10, c: 1, h: 1000, w: 1000)
        let x = rng.normals(base.count, mean: 50, std: 5)
        let ref = Reference.batchNorm(x, base)
        let mean = ref.mean[0], variance = ref.statistics[0].biasedVariance
        for layout in Layout.allCases {
            let shape = base.with(layout: layout)
            let running = try RunningStatistics(channels: 1, update: .population)
            let (y, saved) = try BatchNormalization(shape: shape).forwardTraining(x, running: running)
            let context = "\(shape)"
            #expect(abs(saved.mean[0] - mean) < 1e-9 * abs(mean) + 1e-7,
                    "mean \(saved.mean[0]) vs \(mean): error \(abs(saved.mean[0] - mean)) — \(context)")
            let kernelVariance = 1 / (saved.invStd[0] * saved.invStd[0]) - Double(Float(1e-5))
            #expect(abs(kernelVariance - variance) < 1e-6 * variance,
                    "variance \(kernelVariance) vs \(variance): relative error \(abs(kernelVariance / variance - 1)) — \(context)")
            let population = running.population[0]
            #expect(population.count == Double(base.count), "population count — \(context)")
            #expect(abs(population.mean - mean) < 1e-9 * abs(mean) + 1e-7, "population mean — \(context)")
            #expect(abs(population.unbiasedVariance - ref.statistics[0].unbiasedVariance) < 1e-6 * variance,
                    "population unbiased variance — \(context)")
            expectAllClose(y, ref.output, atol: reductionTolerance(base.count), rtol: reductionTolerance(base.count), "output", context)
        }
    }

    @Test("BatchNorm NHWC [1, 1250, 1000, 8]: 1.25e6 values per channel through the 8-wide column tiles")
    func columnTiles() throws {
        // C = 8 runs the Float32 Welford column tiles; their lanes fold into
        // Float64 every 128 rows, so the mean is as good as the contiguous path's.
        var rng = SplitMix64("1e7 columns")
        let shape = TensorShape(n: 1, c: 8, h: 1250, w: 1000, layout: .nhwc)
        let x = rng.normals(shape.count, mean: 50, std: 5)
        let ref = Reference.batchNorm(x, shape)
        let (y, saved) = try BatchNormalization(shape: shape).forwardTraining(x)
        for c in 0..<shape.c {
            let mean = ref.mean[c], variance = ref.statistics[c].biasedVariance
            #expect(abs(saved.mean[c] - mean) < 1e-9 * abs(mean) + 1e-7,
                    "channel \(c): mean \(saved.mean[c]) vs \(mean), error \(abs(saved.mean[c] - mean))")
            let kernelVariance = 1 / (saved.invStd[c] * saved.invStd[c]) - Double(Float(1e-5))
            #expect(abs(kernelVariance - variance) < 1e-6 * variance,
                    "channel \(c): variance relative error \(abs(kernelVariance / variance - 1))")
        }
        expectAllClose(y, ref.output, atol: reductionTolerance(x.count), rtol: reductionTolerance(x.count), "output", "\(shape)")
    }
}

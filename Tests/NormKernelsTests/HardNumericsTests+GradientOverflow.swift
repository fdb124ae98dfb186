// Gradient sums whose Float32 partials overflow while the exact sums are finite:
// dy ≈ ±2e37, positive in the first half of the rows and negative in the second,
// so 17 rows of one sign already pass Float32's 3.4e38 but the column sums
// (dβ = Σ dy, dγ = Σ dy·x̂) cancel to ~1e37. Every such Float32 partial must be
// redone in Float64 (issue 19), with the same bits for any thread count.

import Testing
@testable import NormKernels

/// dy of `rows` rows of `features` values: +2e37·(1 + 0.1·z) in rows < ⌈rows/2⌉, −2e37·(1 + 0.1·z) after.
private func cancellingHugeGradient(rows: Int, features: Int, _ rng: inout SplitMix64) -> [Float] {
    (0..<(rows * features)).map { i in
        let sign: Double = i / features < (rows + 1) / 2 ? 1 : -1
        return Float(sign * 2e37 * (1 + 0.1 * rng.normal()))
    }
}

/// x whose columns keep their place in every row (base[j] + small noise), so x̂ of
/// a column has one sign down the rows and Σ dy·x̂ overflows as Σ dy does.
private func columnPatternedInput(rows: Int, features: Int, _ rng: inout SplitMix64) -> [Float] {
    let base = rng.uniforms(features, -2...3)
    return (0..<(rows * features)).map { i in Float(Double(base[i % features]) + 0.05 * rng.normal()) }
}

/// Float64 reference of the row-normalization backward (LayerNorm, RMSNorm, GroupNorm
/// on feature vectors: row r, group g = j / (D/G) uses slot r·G + g), and for each
/// column the sums of |terms| (Σ|dy|, Σ|dy·x̂|) that bound the rounding of dβ, dγ.
private struct RowGradientReference {
    var dx: [Double]
    var dScale: [Double], dBias: [Double]
    var scaleMagnitude: [Double], biasMagnitude: [Double]

    init(x: [Float], dy: [Float], gamma: [Float], rows: Int, features D: Int, groups G: Int,
         mean: [Double]?, invStd: [Double]) {
        let S = D / G
        dx = [Double](repeating: 0, count: rows * D)
        dScale = [Double](repeating: 0, count: D); dBias = dScale
        scaleMagnitude = dScale; biasMagnitude = dScale
        for r in 0..<rows {
            for g in 0..<G {
                let slot = r * G + g, mu = mean?[slot] ?? 0, rs = invStd[slot]
                let idx = (r * D + g * S)..<(r * D + (g + 1) * S)
                let grad = idx.map { Double(dy[$0]) * Double(gamma[$0 - r * D]) }
                let xhat = idx.map { (Double(x[$0]) - mu) * rs }
                let m1 = mean != nil ? grad.reduce(0, +) / Double(S) : 0
                let m2 = zip(grad, xhat).reduce(0) { $0 + $1.0 * $1.1 } / Double(S)
                for (k, i) in idx.enumerated() {
                    dx[i] = rs * (grad[k] - m1 - xhat[k] * m2)
                    let j = i - r * D, d = Double(dy[i])
                    dBias[j] += d; biasMagnitude[j] += abs(d)
                    dScale[j] += d * xhat[k]; scaleMagnitude[j] += abs(d * xhat[k])
                }
            }
        }
    }
}

/// |actual − expected| ≤ 2·ε·Σ|terms| for every column (ε = Float32's epsilon), one
/// expectation naming the worst column.
private func expectColumnSums(_ actual: [Float]?, _ expected: [Double], magnitude: [Double], _ what: String,
                              _ context: String, sourceLocation: SourceLocation = #_sourceLocation) {
    guard let actual else {
        Issue.record("\(what) missing — \(context)", sourceLocation: sourceLocation)
        return
    }
    var worst = 0.0, at = 0
    for j in expected.indices {
        let a = Double(actual[j])
        let ratio = a.isFinite ? abs(a - expected[j]) / (2 * Double(Float.ulpOfOne) * magnitude[j]) : .infinity
        if !(ratio <= worst) { worst = ratio; at = j }
    }
    let message = "\(what)[\(at)] = \(actual[at]), expected \(expected[at]) (Σ|terms| \(magnitude[at]), "
        + "error/tolerance \(worst)) — \(context)"
    #expect(worst <= 1, Comment(rawValue: message), sourceLocation: sourceLocation)
}

/// dx finite and within 1e-5 of the largest |dx| of the Float64 reference.
private func expectInputGradient(_ actual: [Float]?, _ expected: [Double], _ context: String,
                                 sourceLocation: SourceLocation = #_sourceLocation) {
    guard let actual else { return }
    #expect(actual.allSatisfy { $0.isFinite }, "non-finite dx — \(context)", sourceLocation: sourceLocation)
    let largest = maxAbs(expected)
    let worst = zip(actual, expected).reduce(0.0) { max($0, abs(Double($1.0) - $1.1)) }
    #expect(worst <= 1e-5 * largest, "dx error \(worst) vs largest \(largest) — \(context)", sourceLocation: sourceLocation)
}

/// One thread and several (a low threshold, so small calls split): the same bits.
private let threadings = [Threading.serial, Threading(threads: 3, parallelThreshold: 4096, spinMicroseconds: 0)]

@Suite("Gradient sums: Float32 column partials that overflow are redone in Float64")
struct GradientOverflowTests {
    /// Rows below, at and above `BlockGradients.flushRows` (128); features below the
    /// tiny-row limit, short rows, past the short-row sweep (512) and past one tile
    /// of fused rows, none a multiple of 8.
    static let rows = [40, 200, 300]
    static let features = [13, 37, 100, 515, 1030]
    static let selections: [GradientSelection] = [.all, .parameters]

    @Test("LayerNorm dγ, dβ (and dx) with cancelling dy ≈ ±2e37")
    func layerNorm() throws {
        sweep(product(Self.rows, Self.features, Self.selections)) { item, context in
            let (rows, features, selection) = item
            var rng = SplitMix64("overflow-ln \(context)")
            let x = columnPatternedInput(rows: rows, features: features, &rng)
            let dy = cancellingHugeGradient(rows: rows, features: features, &rng)
            let gamma = rng.uniforms(features, 0.5...1.5)
            var results: [NormGradients] = []
            for threading in threadings {
                let ln = try LayerNormalization(rows: rows, features: features, threading: threading)
                let saved = try ln.forward(x, scale: gamma).saved
                let grads = try ln.backward(x, gradOutput: dy, saved: saved, scale: gamma, computing: selection)
                if results.isEmpty {
                    let ref = RowGradientReference(x: x, dy: dy, gamma: gamma, rows: rows, features: features, groups: 1,
                                                   mean: saved.mean, invStd: saved.invStd)
                    expectColumnSums(grads.scale, ref.dScale, magnitude: ref.scaleMagnitude, "dγ", context)
                    expectColumnSums(grads.bias, ref.dBias, magnitude: ref.biasMagnitude, "dβ", context)
                    expectInputGradient(grads.input, ref.dx, context)
                }
                results.append(grads)
            }
            #expect(results[0] == results[1], "gradients differ between 1 and 3 threads — \(context)")
        }
    }

    @Test("RMSNorm dγ (and dx) with cancelling dy ≈ ±2e37")
    func rmsNorm() throws {
        sweep(product(Self.rows, Self.features, Self.selections)) { item, context in
            let (rows, features, selection) = item
            var rng = SplitMix64("overflow-rms \(context)")
            let x = columnPatternedInput(rows: rows, features: features, &rng)
            let dy = cancellingHugeGradient(rows: rows, features: features, &rng)
            let gamma = rng.uniforms(features, 0.5...1.5)
            var results: [NormGradients] = []
            for threading in threadings {
                let rms = try RMSNormalization(rows: rows, features: features, threading: threading)
                let saved = try rms.forward(x, scale: gamma).saved
                let grads = try rms.backward(x, gradOutput: dy, saved: saved, scale: gamma, computing: selection)
                if results.isEmpty {
                    let ref = RowGradientReference(x: x, dy: dy, gamma: gamma, rows: rows, features: features, groups: 1,
                                                   mean: nil, invStd: saved.invStd)
                    expectColumnSums(grads.scale, ref.dScale, magnitude: ref.scaleMagnitude, "dγ", context)
                    expectInputGradient(grads.input, ref.dx, context)
                }
                results.append(grads)
            }
            #expect(results[0] == results[1], "gradients differ between 1 and 3 threads — \(context)")
        }
    }

    @Test("GroupNorm on feature vectors (H·W = 1) dγ, dβ (and dx) with cancelling dy ≈ ±2e37")
    func groupNormFeatureVectors() throws {
        // (C, G): groups of 9 (tiny rows), 20 (short rows), 103 and 515 values.
        let channelGroups = [(36, 4), (100, 5), (515, 5), (1030, 2)]
        sweep(product(Self.rows, channelGroups, Self.selections)) { item, context in
            let (rows, (channels, groups), selection) = item
            var rng = SplitMix64("overflow-gn \(context)")
            let x = columnPatternedInput(rows: rows, features: channels, &rng)
            let dy = cancellingHugeGradient(rows: rows, features: channels, &rng)
            let gamma = rng.uniforms(channels, 0.5...1.5)
            let shape = TensorShape(n: rows, c: channels, h: 1, w: 1)
            var results: [NormGradients] = []
            for threading in threadings {
                let gn = try GroupNormalization(shape: shape, groups: groups, threading: threading)
                let saved = try gn.forward(x, scale: gamma).saved
                let grads = try gn.backward(x, gradOutput: dy, saved: saved, scale: gamma, computing: selection)
                if results.isEmpty {
                    let ref = RowGradientReference(x: x, dy: dy, gamma: gamma, rows: rows, features: channels,
                                                   groups: groups, mean: saved.mean, invStd: saved.invStd)
                    expectColumnSums(grads.scale, ref.dScale, magnitude: ref.scaleMagnitude, "dγ", context)
                    expectColumnSums(grads.bias, ref.dBias, magnitude: ref.biasMagnitude, "dβ", context)
                    expectInputGradient(grads.input, ref.dx, context)
                }
                results.append(grads)
            }
            #expect(results[0] == results[1], "gradients differ between 1 and 3 threads — \(context)")
        }
    }

    @Test("GroupNorm on small maps (LayerNorm's engine: NCHW expanded γ, NHWC group segments) dγ, dβ")
    func groupNormSmallMaps() throws {
        let shapes = [TensorShape(n: 40, c: 32, h: 2, w: 2), TensorShape(n: 150, c: 12, h: 3, w: 1),
                      TensorShape(n: 40, c: 32, h: 2, w: 2, layout: .nhwc), TensorShape(n: 150, c: 24, h: 1, w: 3, layout: .nhwc)]
        sweep(product(shapes, Self.selections)) { item, context in
            let (shape, selection) = item
            let groups = 2
            #expect(GroupNormalization.smallMapPath(shape, groups: groups) != nil, "not a small-map path — \(context)")
            var rng = SplitMix64("overflow-gn-small \(context)")
            // Per channel a fixed place in its group; dy by sample: + in the first half, − after.
            let channelBase = rng.uniforms(shape.c, -2...3)
            var x = [Float](repeating: 0, count: shape.count), dy = x
            for n in 0..<shape.n {
                for c in 0..<shape.c {
                    for s in 0..<shape.spatial {
                        let o = shape.offset(n, c, s)
                        x[o] = Float(Double(channelBase[c]) + 0.05 * rng.normal())
                        dy[o] = Float((n < (shape.n + 1) / 2 ? 1.0 : -1.0) * 2e37 * (1 + 0.1 * rng.normal()))
                    }
                }
            }
            var results: [NormGradients] = []
            for threading in threadings {
                let gn = try GroupNormalization(shape: shape, groups: groups, threading: threading)
                let saved = try gn.forward(x).saved
                let grads = try gn.backward(x, gradOutput: dy, saved: saved, computing: selection)
                if results.isEmpty {
                    let size = shape.c / groups
                    var dScale = [Double](repeating: 0, count: shape.c), dBias = dScale, scaleMagnitude = dScale, biasMagnitude = dScale
                    for n in 0..<shape.n {
                        for c in 0..<shape.c {
                            let slot = n * groups + c / size
                            for s in 0..<shape.spatial {
                                let o = shape.offset(n, c, s), d = Double(dy[o])
                                let xhat = (Double(x[o]) - saved.mean[slot]) * saved.invStd[slot]
                                dBias[c] += d; biasMagnitude[c] += abs(d)
                                dScale[c] += d * xhat; scaleMagnitude[c] += abs(d * xhat)
                            }
                        }
                    }
                    expectColumnSums(grads.scale, dScale, magnitude: scaleMagnitude, "dγ", context)
                    expectColumnSums(grads.bias, dBias, magnitude: biasMagnitude, "dβ", context)
                    if let dx = grads.input { #expect(dx.allSatisfy { $0.isFinite }, "non-finite dx — \(context)") }
                }
                results.append(grads)
            }
            #expect(results[0] == results[1], "gradients differ between 1 and 3 threads — \(context)")
        }
    }

    @Test("In place (dx over dy or over x) with dγ, dβ: the overflowing chunks are summed before dx replaces them")
    func inPlace() throws {
        // LayerNorm: short-row sweep (37), fused rows (515), tiles (1030); GroupNorm H·W = 1 with 5 groups.
        let cases: [(rows: Int, features: Int, groups: Int?)] = [(200, 37, nil), (300, 515, nil), (150, 1030, nil), (200, 100, 5)]
        sweep(product(cases.indices.map { $0 }, [false, true])) { item, context in
            let (index, overX) = item
            let (rows, features, groups) = cases[index]
            var rng = SplitMix64("overflow-inplace \(context)")
            let x = columnPatternedInput(rows: rows, features: features, &rng)
            let dy = cancellingHugeGradient(rows: rows, features: features, &rng)
            let gamma = rng.uniforms(features, 0.5...1.5)
            let threading = Threading(threads: 2, parallelThreshold: 4096, spinMicroseconds: 0)
            let shape = TensorShape(n: rows, c: features, h: 1, w: 1)
            let ln = try LayerNormalization(rows: rows, features: features, threading: threading)
            let gn = try groups.map { try GroupNormalization(shape: shape, groups: $0, threading: threading) }
            let saved = try gn.map { try $0.forward(x, scale: gamma).saved } ?? ln.forward(x, scale: gamma).saved
            let expected = try gn.map { try $0.backward(x, gradOutput: dy, saved: saved, scale: gamma) }
                ?? ln.backward(x, gradOutput: dy, saved: saved, scale: gamma)
            var buffer = overX ? x : dy
            let other = overX ? dy : x
            var dScale = [Float](repeating: 0, count: features), dBias = dScale
            try other.withUnsafeBufferPointer { op in
                try gamma.withUnsafeBufferPointer { gp in
                    try buffer.withUnsafeMutableBufferPointer { b in
                        try dScale.withUnsafeMutableBufferPointer { ds in
                            try dBias.withUnsafeMutableBufferPointer { db in
                                let (input, gradOutput) = overX ? (UnsafeBufferPointer(b), op) : (op, UnsafeBufferPointer(b))
                                if let gn {
                                    try gn.backward(input: input, gradOutput: gradOutput, saved: saved, scale: gp,
                                                    gradInput: b, gradScale: ds, gradBias: db)
                                } else {
                                    try ln.backward(input: input, gradOutput: gradOutput, saved: saved, scale: gp,
                                                    gradInput: b, gradScale: ds, gradBias: db)
                                }
                            }
                        }
                    }
                }
            }
            #expect(expected.scale?.allSatisfy { $0.isFinite } == true, "non-finite dγ — \(context)")
            expectIdentical(buffer, try #require(expected.input), "in-place dx", context)
            expectIdentical(dScale, try #require(expected.scale), "in-place dγ", context)
            expectIdentical(dBias, try #require(expected.bias), "in-place dβ", context)
        }
    }

    @Test("GroupNorm NCHW small maps: per-position sums past Float32's range, channel sums finite")
    func groupNormExpandedPositions() throws {
        // dy of sign (−1)^s at position s of every sample: each position's sum over the
        // 60 samples is ~±1.2e39 (no Float32), each channel's over its positions ~1e37.
        sweep(product([TensorShape(n: 60, c: 12, h: 2, w: 2), TensorShape(n: 60, c: 6, h: 3, w: 2)], Self.selections)) { item, context in
            let (shape, selection) = item
            let groups = 3
            #expect(GroupNormalization.smallMapPath(shape, groups: groups) == .expandedAffine, "not expanded γ — \(context)")
            var rng = SplitMix64("overflow-gn-positions \(context)")
            // x of positions 2k and 2k + 1 alike (one base per channel and pair), so Σ dy·x̂
            // cancels over a channel's positions as Σ dy does.
            let pairBase = rng.uniforms(shape.c * shape.spatial / 2, -2...3)
            var x = [Float](repeating: 0, count: shape.count), dy = x
            for n in 0..<shape.n {
                for c in 0..<shape.c {
                    for s in 0..<shape.spatial {
                        let o = shape.offset(n, c, s)
                        x[o] = Float(Double(pairBase[(c * shape.spatial + s) / 2]) + 0.05 * rng.normal())
                        dy[o] = Float((s % 2 == 0 ? 1.0 : -1.0) * 2e37 * (1 + 0.1 * rng.normal()))
                    }
                }
            }
            let gn = try GroupNormalization(shape: shape, groups: groups)
            let saved = try gn.forward(x).saved
            let grads = try gn.backward(x, gradOutput: dy, saved: saved, computing: selection)
            let size = shape.c / groups
            var dScale = [Double](repeating: 0, count: shape.c), dBias = dScale, scaleMagnitude = dScale, biasMagnitude = dScale
            for n in 0..<shape.n {
                for c in 0..<shape.c {
                    let slot = n * groups + c / size
                    for s in 0..<shape.spatial {
                        let o = shape.offset(n, c, s), d = Double(dy[o])
                        let xhat = (Double(x[o]) - saved.mean[slot]) * saved.invStd[slot]
                        dBias[c] += d; biasMagnitude[c] += abs(d)
                        dScale[c] += d * xhat; scaleMagnitude[c] += abs(d * xhat)
                    }
                }
            }
            expectColumnSums(grads.scale, dScale, magnitude: scaleMagnitude, "dγ", context)
            expectColumnSums(grads.bias, dBias, magnitude: biasMagnitude, "dβ", context)
        }
    }
}

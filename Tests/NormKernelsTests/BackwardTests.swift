// Backward kernels: bitwise determinism across thread counts, gradient subsets
// and in-place calls, bad-input errors with nothing written, and accuracy of dx
// for data with a large offset (mean 1e4, std 1e-2).
import Testing
@testable import NormKernels

// MARK: - Helpers (fileprivate, prefixed bw)

fileprivate func bwValues(_ count: Int, seed: UInt64, _ lo: Double = -1, _ hi: Double = 1) -> [Float] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 0x51ED_270B
    return (0..<count).map { _ in
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Float(lo + (hi - lo) * Double(z >> 11) / Double(1 << 53))
    }
}

/// Approximately normal values (sum of 4 uniforms, rescaled): mean `mean`, std `std`.
fileprivate func bwGaussian(_ count: Int, seed: UInt64, mean: Double, std: Double) -> [Float] {
    let u = bwValues(4 * count, seed: seed, -1, 1)
    return (0..<count).map { i in
        let s = Double(u[4 * i]) + Double(u[4 * i + 1]) + Double(u[4 * i + 2]) + Double(u[4 * i + 3])
        return Float(mean + std * s * (3.0 / 4).squareRoot())   // var of a sum of 4 U(−1,1) is 4/3
    }
}

fileprivate func bwBits(_ a: [Float]?) -> [UInt32]? { a?.map(\.bitPattern) }

fileprivate let bwThreadCounts = [2, 3, 5, 8]

/// Runs `body` with 1 thread and each of `bwThreadCounts`; every gradient must be bitwise equal.
/// Doubles as pairs of Float32 bit patterns, for bitwise comparisons.
fileprivate func bwDoubleBits(_ values: [Double]) -> [Float] {
    values.flatMap { [Float(bitPattern: UInt32(truncatingIfNeeded: $0.bitPattern)), Float(bitPattern: UInt32($0.bitPattern >> 32))] }
}

fileprivate func bwExpectDeterministic(
    _ what: String, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (Threading) throws -> [[Float]?]
) throws {
    let reference = try body(Threading(threads: 1, parallelThreshold: 4096)).map(bwBits)
    #expect(reference.allSatisfy { $0 != nil }, "\(what): a gradient is missing", sourceLocation: sourceLocation)
    // Parked workers (phases as tickets) at every count, warm workers (one call per phase) at two.
    let threadings = bwThreadCounts.map { Threading(threads: $0, parallelThreshold: 4096, spinMicroseconds: 0) }
        + [2, 3].map { Threading(threads: $0, parallelThreshold: 4096, spinMicroseconds: 200) }
    for threading in threadings {
        let got = try body(threading).map(bwBits)
        for i in 0..<reference.count where got[i] != reference[i] {
            let differing = zip(got[i] ?? [], reference[i] ?? []).filter { $0 != $1 }.count
            Issue.record("\(what): gradient \(i) differs with \(threading) (\(differing) values)",
                         sourceLocation: sourceLocation)
        }
    }
}

/// GroupNorm backward with `saved` from a serial forward: every gradient bitwise
/// equal for 1 and `bwThreadCounts` threads.
fileprivate func bwExpectGroupNormBackwardDeterministic(
    _ shape: TensorShape, groups: Int, x: [Float], dy: [Float], gamma: [Float], beta: [Float]
) throws {
    let (_, saved) = try GroupNormalization(shape: shape, groups: groups, threading: .serial).forward(x, scale: gamma, bias: beta)
    try bwExpectDeterministic("GN \(shape) G \(groups)") { threading in
        let g = try GroupNormalization(shape: shape, groups: groups, threading: threading)
            .backward(x, gradOutput: dy, saved: saved, scale: gamma)
        return [g.input, g.scale, g.bias]
    }
}

/// A recognisable NaN: gradient buffers are filled with it before a call that must throw.
fileprivate let bwSentinel = Float(bitPattern: 0x7FC0_BEEF)

fileprivate func bwUntouched(_ buffer: UnsafeMutableBufferPointer<Float>) -> Bool {
    buffer.allSatisfy { $0.bitPattern == bwSentinel.bitPattern }
}

/// Expects `body` to throw `expected` and every sentinel buffer to stay untouched.
fileprivate func bwExpectRejected(
    _ expected: NormError, _ buffers: [UnsafeMutableBufferPointer<Float>],
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
    for b in buffers { b.update(repeating: bwSentinel) }
    do {
        try body()
        Issue.record("expected \(expected), nothing thrown", sourceLocation: sourceLocation)
    } catch let error as NormError {
        #expect(error == expected, sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
    for (i, b) in buffers.enumerated() where !bwUntouched(b) {
        Issue.record("buffer \(i) was written although the call threw", sourceLocation: sourceLocation)
    }
}

/// Normwise relative error max|a − e| / max|e|.
fileprivate func bwRelativeError(_ a: [Float], _ e: [Double]) -> Double {
    var worst = 0.0, scale = 0.0
    for i in 0..<e.count {
        worst = max(worst, abs(Double(a[i]) - e[i]))
        scale = max(scale, abs(e[i]))
    }
    return worst / scale
}

/// Float64 closed form of the centered backward for one slot of values at `idx`:
/// dx = k·r·(g − mean(g) − x̂·mean(g·x̂)) with the slot's exact Float64 statistics.
fileprivate func bwCenteredReference(_ x: [Float], _ dy: [Float], _ slots: [[Int]], eps: Double,
                                     gain: (Int) -> Double) -> [Double] {
    var dx = [Double](repeating: 0, count: x.count)
    for slot in slots {
        let m = Double(slot.count)
        let mean = slot.reduce(0.0) { $0 + Double(x[$1]) } / m
        let variance = slot.reduce(0.0) { $0 + (Double(x[$1]) - mean) * (Double(x[$1]) - mean) } / m
        let r = 1 / (variance + eps).squareRoot()
        var sumG = 0.0, sumGX = 0.0
        for i in slot {
            let g = gain(i) * Double(dy[i])
            sumG += g
            sumGX += g * (Double(x[i]) - mean) * r
        }
        for i in slot {
            let xhat = (Double(x[i]) - mean) * r
            dx[i] = r * (gain(i) * Double(dy[i]) - sumG / m - xhat * sumGX / m)
        }
    }
    return dx
}

/// Float64 dγ and dβ when value i uses parameter i % `parameters` (LayerNorm
/// features, NHWC channels): dγ[j] = Σ dy·x̂, dβ[j] = Σ dy, x̂ from each slot's
/// exact Float64 statistics (ε = Float(1e-5)).
fileprivate func bwAffineGradientReference(_ x: [Float], _ dy: [Float], _ slots: [[Int]], parameters: Int)
    -> (scale: [Double], bias: [Double]) {
    var dgamma = [Double](repeating: 0, count: parameters), dbeta = dgamma
    for slot in slots {
        let m = Double(slot.count)
        let mean = slot.reduce(0.0) { $0 + Double(x[$1]) } / m
        let variance = slot.reduce(0.0) { $0 + (Double(x[$1]) - mean) * (Double(x[$1]) - mean) } / m
        let r = 1 / (variance + Double(Float(1e-5))).squareRoot()
        for i in slot {
            dgamma[i % parameters] += Double(dy[i]) * (Double(x[i]) - mean) * r
            dbeta[i % parameters] += Double(dy[i])
        }
    }
    return (dgamma, dbeta)
}

fileprivate func bwOffset(_ shape: TensorShape, _ n: Int, _ c: Int, _ s: Int) -> Int {
    shape.layout == .nchw ? (n * shape.c + c) * shape.spatial + s : (n * shape.spatial + s) * shape.c + c
}

struct BackwardTests {
    // MARK: - Determinism across thread counts

    static let batchShapes: [TensorShape] = [
        TensorShape(n: 8, c: 3, h: 128, w: 130, layout: .nchw),     // few channels: blocks split across workers
        TensorShape(n: 4, c: 64, h: 24, w: 24, layout: .nchw),      // many channels: whole channels per worker
        nhwcShape(n: 8, c: 3, spanning: 2),                         // few channels, ≥ 2 row blocks on any L2
        TensorShape(n: 4, c: 64, h: 24, w: 24, layout: .nhwc),
        TensorShape.matrix(4096, 40),
        TensorShape(n: 3, c: 13, h: 61, w: 67, layout: .nhwc),      // odd channel count (SIMD remainder)
    ]

    @Test("BatchNorm backward is bitwise identical for 1, 2, 3, 5, 8 threads", arguments: batchShapes)
    func batchNormDeterminism(shape: TensorShape) throws {
        let x = bwValues(shape.count, seed: 1, -3, 5), dy = bwValues(shape.count, seed: 2)
        let gamma = bwValues(shape.c, seed: 3, 0.5, 1.5), beta = bwValues(shape.c, seed: 4)
        for relu in [false, true] {
            let forward = try BatchNormalization(shape: shape, fusedReLU: relu, threading: .serial)
            let (y, saved) = try forward.forwardTraining(x, scale: gamma, bias: beta)
            try bwExpectDeterministic("BN training \(shape) relu \(relu)") { threading in
                let bn = try BatchNormalization(shape: shape, fusedReLU: relu, threading: threading)
                let g = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma, output: y)
                return [g.input, g.scale, g.bias]
            }
            let running = try RunningStatistics(channels: shape.c, mean: bwValues(shape.c, seed: 5),
                                                variance: bwValues(shape.c, seed: 6, 0.5, 2))
            try bwExpectDeterministic("BN inference \(shape) relu \(relu)") { threading in
                let bn = try BatchNormalization(shape: shape, fusedReLU: relu, threading: threading)
                let g = try bn.backwardInference(x, gradOutput: dy, running: running, scale: gamma, output: y)
                return [g.input, g.scale, g.bias]
            }
        }
    }

    static let groupedShapes: [TensorShape] = [
        TensorShape(n: 2, c: 3, h: 150, w: 150, layout: .nchw),    // few instances: blocks split across workers
        TensorShape(n: 2, c: 3, h: 150, w: 150, layout: .nhwc),
        TensorShape(n: 16, c: 32, h: 17, w: 17, layout: .nchw),    // many instances: whole units per worker
        TensorShape(n: 16, c: 32, h: 17, w: 17, layout: .nhwc),
        TensorShape(n: 1, c: 16, h: 16, w: 20, layout: .nchw),     // short channels: a loop over units on one thread, spread on many
    ]

    @Test("InstanceNorm and GroupNorm backward are bitwise identical for any thread count", arguments: groupedShapes)
    func groupedDeterminism(shape: TensorShape) throws {
        let x = bwValues(shape.count, seed: 7, -2, 4), dy = bwValues(shape.count, seed: 8)
        let gamma = bwValues(shape.c, seed: 9, 0.5, 1.5), beta = bwValues(shape.c, seed: 10)
        let (_, inSaved) = try InstanceNormalization(shape: shape, threading: .serial).forwardTraining(x, scale: gamma, bias: beta)
        try bwExpectDeterministic("IN \(shape)") { threading in
            let g = try InstanceNormalization(shape: shape, threading: threading)
                .backwardTraining(x, gradOutput: dy, saved: inSaved, scale: gamma)
            return [g.input, g.scale, g.bias]
        }
        for groups in [1, shape.c == 3 ? 3 : 8] {
            try bwExpectGroupNormBackwardDeterministic(shape, groups: groups, x: x, dy: dy, gamma: gamma, beta: beta)
        }
    }

    @Test("GroupNorm backward on feature vectors (H·W = 1) is bitwise identical for any thread count",
          arguments: [(2048, 96, 3), (300, 60, 4), (4, 20_000, 5), (1024, 64, 64)])
    func groupedRowDeterminism(rows: Int, channels: Int, groups: Int) throws {
        // Many row blocks, groups whose width is not a multiple of 8, long rows
        // (row sums spread over workers), and one value per group.
        for layout in [Layout.nchw, .nhwc] {
            let shape = TensorShape(n: rows, c: channels, h: 1, w: 1, layout: layout)
            let x = bwValues(shape.count, seed: 15, -2, 3), dy = bwValues(shape.count, seed: 16)
            let gamma = bwValues(channels, seed: 17, 0.5, 1.5), beta = bwValues(channels, seed: 18)
            try bwExpectGroupNormBackwardDeterministic(shape, groups: groups, x: x, dy: dy, gamma: gamma, beta: beta)
        }
    }

    @Test("GroupNorm on small maps (H·W < 64 NCHW, ≤ 16 NHWC) and InstanceNorm on tiny instances (H·W ≤ 64) are bitwise identical for any thread count",
          arguments: [
              (TensorShape(n: 1024, c: 32, h: 4, w: 4, layout: .nchw), 8),   // many row blocks (one row per sample)
              (TensorShape(n: 2, c: 64, h: 7, w: 7, layout: .nchw), 4),      // two long rows
              (TensorShape(n: 3, c: 40, h: 3, w: 5, layout: .nchw), 5),      // odd everything
              (TensorShape(n: 512, c: 32, h: 4, w: 4, layout: .nhwc), 4),    // groups of 8 channels, many row blocks
              (TensorShape(n: 3, c: 48, h: 3, w: 3, layout: .nhwc), 3),      // groups of 16, one row block
              (TensorShape(n: 64, c: 72, h: 2, w: 2, layout: .nhwc), 3),     // groups of 24, rows of 72
              (TensorShape(n: 5, c: 18, h: 2, w: 3, layout: .nhwc), 2),      // groups of 9 (vector + 1)
              (TensorShape(n: 40, c: 27, h: 7, w: 7, layout: .nchw), 3),     // tiny instances of 49, 1080 of them
              (TensorShape(n: 3, c: 21, h: 9, w: 7, layout: .nchw), 7),      // tiny instances of 63
              (TensorShape(n: 70, c: 16, h: 2, w: 2, layout: .nhwc), 2),     // tiny channels, 1120 instances
              (TensorShape(n: 9, c: 24, h: 3, w: 5, layout: .nhwc), 3),      // tiny channels forward, per-column backward
          ])
    func groupedSmallMapDeterminism(shape: TensorShape, groups: Int) throws {
        #expect(GroupNormalization.smallMapPath(shape, groups: groups) != nil, "\(shape) G \(groups) takes the small-map path")
        let x = bwValues(shape.count, seed: 19, -2, 3), dy = bwValues(shape.count, seed: 20)
        let gamma = bwValues(shape.c, seed: 21, 0.5, 1.5), beta = bwValues(shape.c, seed: 22)
        try bwExpectDeterministic("GN forward \(shape) G \(groups)") { threading in
            let (y, saved) = try GroupNormalization(shape: shape, groups: groups, threading: threading)
                .forward(x, scale: gamma, bias: beta)
            return [y, bwDoubleBits(saved.mean), bwDoubleBits(saved.invStd)]
        }
        try bwExpectGroupNormBackwardDeterministic(shape, groups: groups, x: x, dy: dy, gamma: gamma, beta: beta)
        guard InstanceNormalization.usesTinyUnits(shape) || InstanceNormalization.usesTinyChannels(shape) else { return }
        let (_, inSaved) = try InstanceNormalization(shape: shape, threading: .serial).forwardTraining(x, scale: gamma, bias: beta)
        try bwExpectDeterministic("IN (tiny instances) \(shape)") { threading in
            let norm = try InstanceNormalization(shape: shape, threading: threading)
            let running = try RunningStatistics(channels: shape.c)
            let (y, saved) = try norm.forwardTraining(x, scale: gamma, bias: beta, running: running)
            let g = try norm.backwardTraining(x, gradOutput: dy, saved: inSaved, scale: gamma)
            return [y, bwDoubleBits(saved.mean), bwDoubleBits(saved.invStd), running.mean, running.variance,
                    g.input, g.scale, g.bias]
        }
    }

    @Test("LayerNorm and RMSNorm backward are bitwise identical for any thread count",
          arguments: [(512, 300), (3, 70_000), (8192, 32), (2048, 97), (1, 200_000), (4100, 13), (1100, 600), (700, 1030)])
    func rowDeterminism(rows: Int, features: Int) throws {
        let x = bwValues(rows * features, seed: 11, -2, 3), dy = bwValues(rows * features, seed: 12)
        let gamma = bwValues(features, seed: 13, 0.5, 1.5), beta = bwValues(features, seed: 14)
        let (_, saved) = try LayerNormalization(rows: rows, features: features, threading: .serial).forward(x, scale: gamma, bias: beta)
        try bwExpectDeterministic("LN \(rows)×\(features)") { threading in
            let g = try LayerNormalization(rows: rows, features: features, threading: threading)
                .backward(x, gradOutput: dy, saved: saved, scale: gamma)
            return [g.input, g.scale, g.bias]
        }
        let (_, rmsSaved) = try RMSNormalization(rows: rows, features: features, threading: .serial).forward(x, scale: gamma)
        try bwExpectDeterministic("RMS \(rows)×\(features)") { threading in
            let g = try RMSNormalization(rows: rows, features: features, threading: threading)
                .backward(x, gradOutput: dy, saved: rmsSaved, scale: gamma)
            return [g.input, g.scale]
        }
    }

    @Test("AdaIN backward is bitwise identical for any thread count", arguments: [Layout.nchw, .nhwc])
    func adainDeterminism(layout: Layout) throws {
        for unbiased in [false, true] {
            let content = TensorShape(n: 2, c: 4, h: 130, w: 130, layout: layout)
            let style = TensorShape(n: 2, c: 4, h: 100, w: 90, layout: layout)
            let x = bwValues(content.count, seed: 15, -2, 2), s = bwValues(style.count, seed: 16, -1, 3)
            let dy = bwValues(content.count, seed: 17)
            let (_, saved) = try AdaptiveInstanceNormalization(content: content, style: style, unbiasedVariance: unbiased,
                                                               threading: .serial).forward(content: x, style: s)
            try bwExpectDeterministic("AdaIN \(layout) unbiased \(unbiased)") { threading in
                let g = try AdaptiveInstanceNormalization(content: content, style: style, unbiasedVariance: unbiased,
                                                          threading: threading)
                    .backward(content: x, style: s, gradOutput: dy, saved: saved)
                return [g.content, g.style]
            }
        }
    }

    @Test("WeightNorm backward is bitwise identical for any thread count",
          arguments: [([512, 300], Optional(0)), ([300, 512], 1), ([600, 300], nil), ([4, 200, 200], 0)])
    func weightNormDeterminism(shape: [Int], dim: Int?) throws {
        let count = shape.reduce(1, *)
        let wn = try WeightNormalization(shape: shape, dim: dim, threading: .serial)
        let v = bwValues(count, seed: 18, -2, 2), g = bwValues(wn.normCount, seed: 19), dw = bwValues(count, seed: 20)
        let (_, norms) = try wn.forward(v: v, g: g)
        try bwExpectDeterministic("WN \(shape) dim \(String(describing: dim))") { threading in
            let r = try WeightNormalization(shape: shape, dim: dim, threading: threading)
                .backward(v: v, g: g, gradWeight: dw, norms: norms)
            return [r.v, r.g]
        }
    }

    @Test("InstanceNorm inference backward is BatchNorm inference backward with the same running statistics")
    func instanceNormInference() throws {
        for shape in [TensorShape(n: 2, c: 5, h: 6, w: 7, layout: .nchw), TensorShape(n: 2, c: 5, h: 6, w: 7, layout: .nhwc)] {
            let x = bwValues(shape.count, seed: 59), dy = bwValues(shape.count, seed: 60)
            let gamma = bwValues(shape.c, seed: 61, 0.5, 1.5)
            let running = try RunningStatistics(channels: shape.c, mean: bwValues(shape.c, seed: 62),
                                                variance: bwValues(shape.c, seed: 63, 0.5, 2))
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

    // MARK: - Gradient subsets and in-place calls

    @Test("Each gradient computed alone equals the same gradient computed with the others")
    func subsetsMatchFullCalls() throws {
        let threading = Threading(threads: 2, parallelThreshold: 4096)
        for shape in [TensorShape(n: 8, c: 3, h: 128, w: 130, layout: .nchw), TensorShape(n: 4, c: 64, h: 24, w: 24, layout: .nhwc)] {
            let x = bwValues(shape.count, seed: 21, -2, 2), dy = bwValues(shape.count, seed: 22)
            let gamma = bwValues(shape.c, seed: 23, 0.5, 1.5)
            let bn = try BatchNormalization(shape: shape, threading: threading)
            let (_, saved) = try bn.forwardTraining(x, scale: gamma)
            let all = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma)
            let dxOnly = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma, computing: .input)
            let parameters = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma, computing: .parameters)
            #expect(dxOnly.scale == nil && dxOnly.bias == nil && parameters.input == nil)
            #expect(bwBits(dxOnly.input) == bwBits(all.input), "BN \(shape) dx alone")
            #expect(bwBits(parameters.scale) == bwBits(all.scale) && bwBits(parameters.bias) == bwBits(all.bias), "BN \(shape) dγ/dβ alone")

            let gn = try GroupNormalization(shape: shape, groups: shape.c == 3 ? 3 : 16, threading: threading)
            let (_, gnSaved) = try gn.forward(x, scale: gamma)
            let gnAll = try gn.backward(x, gradOutput: dy, saved: gnSaved, scale: gamma)
            let gnDx = try gn.backward(x, gradOutput: dy, saved: gnSaved, scale: gamma, computing: .input)
            let gnScale = try gn.backward(x, gradOutput: dy, saved: gnSaved, scale: gamma, computing: .scale)
            #expect(bwBits(gnDx.input) == bwBits(gnAll.input) && bwBits(gnScale.scale) == bwBits(gnAll.scale))
            #expect(gnScale.bias == nil)
        }
        for (rows, features) in [(512, 300), (3, 70_000)] {
            let x = bwValues(rows * features, seed: 24, -2, 2), dy = bwValues(rows * features, seed: 25)
            let gamma = bwValues(features, seed: 26, 0.5, 1.5)
            let ln = try LayerNormalization(rows: rows, features: features, threading: threading)
            let (_, saved) = try ln.forward(x, scale: gamma)
            let all = try ln.backward(x, gradOutput: dy, saved: saved, scale: gamma)
            let dxOnly = try ln.backward(x, gradOutput: dy, saved: saved, scale: gamma, computing: .input)
            let parameters = try ln.backward(x, gradOutput: dy, saved: saved, scale: gamma, computing: .parameters)
            #expect(bwBits(dxOnly.input) == bwBits(all.input), "LN dx alone")
            #expect(bwBits(parameters.scale) == bwBits(all.scale) && bwBits(parameters.bias) == bwBits(all.bias), "LN dγ/dβ alone")
        }
        let content = TensorShape(n: 2, c: 4, h: 130, w: 130), style = TensorShape(n: 2, c: 4, h: 64, w: 64)
        let x = bwValues(content.count, seed: 27), s = bwValues(style.count, seed: 28), dy = bwValues(content.count, seed: 29)
        let ada = try AdaptiveInstanceNormalization(content: content, style: style, threading: threading)
        let (_, saved) = try ada.forward(content: x, style: s)
        let both = try ada.backward(content: x, style: s, gradOutput: dy, saved: saved)
        let styleOnly = try ada.backward(content: x, style: s, gradOutput: dy, saved: saved, gradContent: false)
        #expect(styleOnly.content == nil && bwBits(styleOnly.style) == bwBits(both.style))
    }

    @Test("In place: dx may replace dy or x, dstyle the style, dv the upstream dw")
    func inPlace() throws {
        let shape = TensorShape(n: 4, c: 64, h: 24, w: 24, layout: .nchw)
        let x = bwValues(shape.count, seed: 30, -2, 2), dy = bwValues(shape.count, seed: 31)
        let gamma = bwValues(shape.c, seed: 32, 0.5, 1.5)
        let bn = try BatchNormalization(shape: shape, threading: Threading(threads: 2, parallelThreshold: 4096))
        let (_, saved) = try bn.forwardTraining(x, scale: gamma)
        let expected = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma)
        var buffer = dy
        try x.withUnsafeBufferPointer { xp in
            try gamma.withUnsafeBufferPointer { gp in
                try buffer.withUnsafeMutableBufferPointer { b in
                    try bn.backwardTraining(input: xp, gradOutput: UnsafeBufferPointer(b), saved: saved, scale: gp, gradInput: b)
                }
            }
        }
        #expect(bwBits(buffer) == bwBits(expected.input), "BN dx over dy")
        var xBuffer = x
        try dy.withUnsafeBufferPointer { dyp in
            try gamma.withUnsafeBufferPointer { gp in
                try xBuffer.withUnsafeMutableBufferPointer { b in
                    try bn.backwardTraining(input: UnsafeBufferPointer(b), gradOutput: dyp, saved: saved, scale: gp, gradInput: b)
                }
            }
        }
        #expect(bwBits(xBuffer) == bwBits(expected.input), "BN dx over x")

        let (rows, features) = (256, 1000)
        let lx = bwValues(rows * features, seed: 33), ldy = bwValues(rows * features, seed: 34)
        let ln = try LayerNormalization(rows: rows, features: features, threading: Threading(threads: 2, parallelThreshold: 4096))
        let (_, lsaved) = try ln.forward(lx)
        let lexpected = try ln.backward(lx, gradOutput: ldy, saved: lsaved)
        var lbuffer = ldy
        var dGamma = [Float](repeating: 0, count: features)
        try lx.withUnsafeBufferPointer { xp in
            try lbuffer.withUnsafeMutableBufferPointer { b in
                try dGamma.withUnsafeMutableBufferPointer { dg in
                    try ln.backward(input: xp, gradOutput: UnsafeBufferPointer(b), saved: lsaved, gradInput: b, gradScale: dg)
                }
            }
        }
        #expect(bwBits(lbuffer) == bwBits(lexpected.input) && bwBits(dGamma) == bwBits(lexpected.scale), "LN dx over dy")
        // Short rows (`ShortRowsBackward`: each row's dx written after its sums), over dy and over x, with γ.
        let (shortRows, shortFeatures) = (301, 100)
        let shortX = bwValues(shortRows * shortFeatures, seed: 38), shortDy = bwValues(shortRows * shortFeatures, seed: 39)
        let shortGamma = bwValues(shortFeatures, seed: 40, 0.5, 1.5)
        let shortLN = try LayerNormalization(rows: shortRows, features: shortFeatures, threading: Threading(threads: 2, parallelThreshold: 4096))
        let (_, shortSaved) = try shortLN.forward(shortX, scale: shortGamma)
        let shortExpected = try shortLN.backward(shortX, gradOutput: shortDy, saved: shortSaved, scale: shortGamma)
        for overX in [false, true] {
            var shortBuffer = overX ? shortX : shortDy
            let other = overX ? shortDy : shortX
            try other.withUnsafeBufferPointer { op in
                try shortGamma.withUnsafeBufferPointer { gp in
                    try shortBuffer.withUnsafeMutableBufferPointer { b in
                        if overX {
                            try shortLN.backward(input: UnsafeBufferPointer(b), gradOutput: op, saved: shortSaved, scale: gp, gradInput: b)
                        } else {
                            try shortLN.backward(input: op, gradOutput: UnsafeBufferPointer(b), saved: shortSaved, scale: gp, gradInput: b)
                        }
                    }
                }
            }
            #expect(bwBits(shortBuffer) == bwBits(shortExpected.input), "LN short rows dx over \(overX ? "x" : "dy")")
        }

        let content = TensorShape(n: 2, c: 3, h: 40, w: 40), style = TensorShape(n: 2, c: 3, h: 30, w: 30, layout: .nhwc)
        let cx = bwValues(content.count, seed: 35), sx = bwValues(style.count, seed: 36), cdy = bwValues(content.count, seed: 37)
        let ada = try AdaptiveInstanceNormalization(content: content, style: style)
        let (_, asaved) = try ada.forward(content: cx, style: sx)
        let aexpected = try ada.backward(content: cx, style: sx, gradOutput: cdy, saved: asaved)
        var sBuffer = sx
        try cx.withUnsafeBufferPointer { xp in
            try cdy.withUnsafeBufferPointer { dyp in
                try sBuffer.withUnsafeMutableBufferPointer { sb in
                    try ada.backward(content: xp, style: UnsafeBufferPointer(sb), gradOutput: dyp, saved: asaved, gradStyle: sb)
                }
            }
        }
        #expect(bwBits(sBuffer) == bwBits(aexpected.style), "AdaIN dstyle over style")

        let wn = try WeightNormalization(shape: [64, 300], dim: 0)
        let v = bwValues(64 * 300, seed: 38), g = bwValues(64, seed: 39), dw = bwValues(64 * 300, seed: 40)
        let (_, norms) = try wn.forward(v: v, g: g)
        let wexpected = try wn.backward(v: v, g: g, gradWeight: dw, norms: norms)
        var dwBuffer = dw
        try v.withUnsafeBufferPointer { vp in
            try g.withUnsafeBufferPointer { gp in
                try dwBuffer.withUnsafeMutableBufferPointer { b in
                    try wn.backward(v: vp, g: gp, gradWeight: UnsafeBufferPointer(b), norms: norms, gradV: b)
                }
            }
        }
        #expect(bwBits(dwBuffer) == bwBits(wexpected.v), "WN dv over dw")
    }

    // MARK: - Bad inputs: the right error, nothing written

    @Test("BatchNorm backward rejects bad arguments before writing anything")
    func batchNormErrors() throws {
        let shape = TensorShape(n: 2, c: 3, h: 4, w: 4)
        let count = shape.count
        let x = bwValues(count, seed: 41), dy = bwValues(count, seed: 42)
        let bn = try BatchNormalization(shape: shape)
        let (_, saved) = try bn.forwardTraining(x)
        let relu = try BatchNormalization(shape: shape, fusedReLU: true)
        // One allocation holding dx, dγ, dβ and spare room, so overlaps can be built.
        let storage = UnsafeMutableBufferPointer<Float>.allocate(capacity: 2 * count + 16)
        defer { storage.deallocate() }
        let dx = UnsafeMutableBufferPointer(rebasing: storage[0..<count])
        let dg = UnsafeMutableBufferPointer(rebasing: storage[count..<(count + 3)])
        let db = UnsafeMutableBufferPointer(rebasing: storage[(count + 3)..<(count + 6)])
        let all = [dx, dg, db]
        try x.withUnsafeBufferPointer { xp in
            try dy.withUnsafeBufferPointer { dyp in
                let shortDy = UnsafeBufferPointer(rebasing: dyp[1...])
                bwExpectRejected(.lengthMismatch(argument: "gradOutput", expected: count, actual: count - 1), all) {
                    try bn.backwardTraining(input: xp, gradOutput: shortDy, saved: saved, gradInput: dx, gradScale: dg, gradBias: db)
                }
                let badSaved = SavedStatistics(mean: Array(saved.mean.prefix(2)), invStd: saved.invStd)
                bwExpectRejected(.lengthMismatch(argument: "saved.mean", expected: 3, actual: 2), all) {
                    try bn.backwardTraining(input: xp, gradOutput: dyp, saved: badSaved, gradInput: dx, gradScale: dg, gradBias: db)
                }
                let noStats = SavedStatistics(mean: saved.mean, invStd: [])
                bwExpectRejected(.lengthMismatch(argument: "saved.invStd", expected: 3, actual: 0), all) {
                    try bn.backwardTraining(input: xp, gradOutput: dyp, saved: noStats, gradInput: dx, gradScale: dg, gradBias: db)
                }
                let longScale = UnsafeMutableBufferPointer(rebasing: storage[count..<(count + 4)])
                bwExpectRejected(.lengthMismatch(argument: "gradScale (dγ)", expected: 3, actual: 4), [dx, longScale]) {
                    try bn.backwardTraining(input: xp, gradOutput: dyp, saved: saved, gradInput: dx, gradScale: longScale)
                }
                let shortDx = UnsafeMutableBufferPointer(rebasing: storage[0..<(count - 1)])
                bwExpectRejected(.lengthMismatch(argument: "gradInput", expected: count, actual: count - 1), [shortDx, dg]) {
                    try bn.backwardTraining(input: xp, gradOutput: dyp, saved: saved, gradInput: shortDx, gradScale: dg)
                }
                let gamma2 = [Float](repeating: 1, count: 2)
                gamma2.withUnsafeBufferPointer { gp in
                    bwExpectRejected(.lengthMismatch(argument: "scale (γ)", expected: 3, actual: 2), all) {
                        try bn.backwardTraining(input: xp, gradOutput: dyp, saved: saved, scale: gp, gradInput: dx, gradScale: dg, gradBias: db)
                    }
                }
                bwExpectRejected(.invalidArgument(argument: "output", reason: "fusedReLU backward needs the forward output (the ReLU mask)"), all) {
                    try relu.backwardTraining(input: xp, gradOutput: dyp, saved: saved, gradInput: dx, gradScale: dg, gradBias: db)
                }
                bwExpectRejected(.overlappingBuffers(argument: "gradScale", other: "gradBias"), [dx, dg]) {
                    try bn.backwardTraining(input: xp, gradOutput: dyp, saved: saved, gradInput: dx, gradScale: dg, gradBias: dg)
                }
                let straddling = UnsafeMutableBufferPointer(rebasing: storage[(count - 1)..<(count + 2)])
                bwExpectRejected(.overlappingBuffers(argument: "gradInput", other: "gradScale"), [dx, straddling]) {
                    try bn.backwardTraining(input: xp, gradOutput: dyp, saved: saved, gradInput: dx, gradScale: straddling)
                }
                let running = try RunningStatistics(channels: 4)
                bwExpectRejected(.lengthMismatch(argument: "running statistics channels", expected: 3, actual: 4), all) {
                    try bn.backwardInference(input: xp, gradOutput: dyp, running: running, gradInput: dx, gradScale: dg, gradBias: db)
                }
            }
        }
        // gradInput partially overlapping gradOutput (shifted by one value).
        let shared = UnsafeMutableBufferPointer<Float>.allocate(capacity: count + 1)
        defer { shared.deallocate() }
        shared.initialize(repeating: 0.5)
        let sharedDy = UnsafeBufferPointer(rebasing: shared[0..<count])
        let shiftedDx = UnsafeMutableBufferPointer(rebasing: shared[1...])
        try x.withUnsafeBufferPointer { xp in
            do {
                try bn.backwardTraining(input: xp, gradOutput: sharedDy, saved: saved, gradInput: shiftedDx)
                Issue.record("partial overlap of gradInput and gradOutput was accepted")
            } catch let error as NormError {
                #expect(error == .partialOverlap(argument: "gradInput (against gradOutput)"))
            }
            #expect(shared.allSatisfy { $0 == 0.5 }, "nothing written on partial overlap")
        }
    }

    @Test("Every other backward rejects bad arguments before writing anything")
    func otherErrors() throws {
        // LayerNorm: wrong dy, wrong saved, wrong dγ length, dx partially over x.
        let (rows, features) = (4, 10)
        let x = bwValues(rows * features, seed: 43), dy = bwValues(rows * features, seed: 44)
        let ln = try LayerNormalization(rows: rows, features: features)
        let (_, saved) = try ln.forward(x)
        var dxArray = [Float](repeating: 0, count: rows * features), dgArray = [Float](repeating: 0, count: features + 1)
        try x.withUnsafeBufferPointer { xp in
            try dy.withUnsafeBufferPointer { dyp in
                try dxArray.withUnsafeMutableBufferPointer { dx in
                    try dgArray.withUnsafeMutableBufferPointer { dgAll in
                        let dg = UnsafeMutableBufferPointer(rebasing: dgAll[0..<features])
                        bwExpectRejected(.lengthMismatch(argument: "gradOutput", expected: 40, actual: 39), [dx, dg]) {
                            try ln.backward(input: xp, gradOutput: UnsafeBufferPointer(rebasing: dyp[1...]), saved: saved, gradInput: dx, gradScale: dg)
                        }
                        bwExpectRejected(.lengthMismatch(argument: "saved.mean", expected: 4, actual: 3),  [dx, dg]) {
                            try ln.backward(input: xp, gradOutput: dyp, saved: SavedStatistics(mean: [0, 0, 0], invStd: saved.invStd), gradInput: dx, gradScale: dg)
                        }
                        bwExpectRejected(.lengthMismatch(argument: "gradScale (dγ)", expected: 10, actual: 11), [dx, dgAll]) {
                            try ln.backward(input: xp, gradOutput: dyp, saved: saved, gradInput: dx, gradScale: dgAll)
                        }
                        let rms = try RMSNormalization(rows: rows, features: features)
                        bwExpectRejected(.lengthMismatch(argument: "saved.invStd", expected: 4, actual: 5), [dx, dg]) {
                            try rms.backward(input: xp, gradOutput: dyp, saved: SavedStatistics(mean: [], invStd: [1, 1, 1, 1, 1]), gradInput: dx, gradScale: dg)
                        }
                    }
                }
            }
        }
        // dx partially over x (shifted by one value): documented as in place or
        // disjoint only, so the call must throw before writing dx, dγ or x.
        var shared = [Float](repeating: 0, count: rows * features + 1)
        shared.replaceSubrange(0..<(rows * features), with: x)
        let sharedBefore = shared
        var partialDg = [Float](repeating: bwSentinel, count: features)
        try dy.withUnsafeBufferPointer { dyp in
            try partialDg.withUnsafeMutableBufferPointer { dg in
                try shared.withUnsafeMutableBufferPointer { all in
                    let input = UnsafeBufferPointer(rebasing: all[0..<(rows * features)])
                    let gradInput = UnsafeMutableBufferPointer(rebasing: all[1...])
                    do {
                        try ln.backward(input: input, gradOutput: dyp, saved: saved, gradInput: gradInput, gradScale: dg)
                        Issue.record("LayerNorm dx partially over x was accepted")
                    } catch let error as NormError {
                        #expect(error == .partialOverlap(argument: "gradInput (against input)"), "LN dx partially over x: \(error)")
                    }
                    #expect(bwUntouched(dg), "LN dx partially over x: dγ written before the error")
                    #expect(bwBits(Array(all)) == bwBits(sharedBefore), "LN dx partially over x: x or dx written before the error")
                }
            }
        }
        // GroupNorm / InstanceNorm: saved per (n, g) / (n, c).
        let shape = TensorShape(n: 2, c: 6, h: 3, w: 3, layout: .nhwc)
        let gx = bwValues(shape.count, seed: 45), gdy = bwValues(shape.count, seed: 46)
        let gn = try GroupNormalization(shape: shape, groups: 3)
        let (_, gsaved) = try gn.forward(gx)
        let inorm = try InstanceNormalization(shape: shape)
        var gdx = [Float](repeating: 0, count: shape.count), gdb = [Float](repeating: 0, count: 6)
        gx.withUnsafeBufferPointer { xp in
            gdy.withUnsafeBufferPointer { dyp in
                gdx.withUnsafeMutableBufferPointer { dx in
                    gdb.withUnsafeMutableBufferPointer { db in
                        bwExpectRejected(.lengthMismatch(argument: "saved.mean", expected: 12, actual: 6), [dx, db]) {
                            try inorm.backwardTraining(input: xp, gradOutput: dyp, saved: gsaved, gradInput: dx, gradBias: db)
                        }
                        bwExpectRejected(.overlappingBuffers(argument: "gradInput", other: "gradBias"), [dx]) {
                            try gn.backward(input: xp, gradOutput: dyp, saved: gsaved, gradInput: dx,
                                            gradBias: UnsafeMutableBufferPointer(rebasing: dx[0..<6]))
                        }
                    }
                }
            }
        }
        // AdaIN: wrong style length, dstyle sharing the content.
        let content = TensorShape(n: 1, c: 2, h: 3, w: 3), style = TensorShape(n: 1, c: 2, h: 2, w: 2)
        let ada = try AdaptiveInstanceNormalization(content: content, style: style)
        let cx = bwValues(content.count, seed: 47), sx = bwValues(style.count, seed: 48), cdy = bwValues(content.count, seed: 49)
        let (_, asaved) = try ada.forward(content: cx, style: sx)
        var adx = [Float](repeating: 0, count: content.count), ads = [Float](repeating: 0, count: style.count)
        var contentCopy = cx
        try cdy.withUnsafeBufferPointer { dyp in
            try sx.withUnsafeBufferPointer { sp in
                try adx.withUnsafeMutableBufferPointer { dc in
                    try ads.withUnsafeMutableBufferPointer { ds in
                        try contentCopy.withUnsafeMutableBufferPointer { cm in
                            let cp = UnsafeBufferPointer(cm)
                            bwExpectRejected(.lengthMismatch(argument: "style", expected: 8, actual: 7), [dc, ds]) {
                                try ada.backward(content: cp, style: UnsafeBufferPointer(rebasing: sp[1...]), gradOutput: dyp,
                                                 saved: asaved, gradContent: dc, gradStyle: ds)
                            }
                            bwExpectRejected(.lengthMismatch(argument: "saved.styleStd", expected: 2, actual: 1), [dc, ds]) {
                                var bad = asaved
                                bad.styleStd = [1]
                                try ada.backward(content: cp, style: sp, gradOutput: dyp, saved: bad, gradContent: dc, gradStyle: ds)
                            }
                            let dsInContent = UnsafeMutableBufferPointer(rebasing: cm[0..<8])
                            let before = Array(cm)
                            do {
                                try ada.backward(content: cp, style: sp, gradOutput: dyp, saved: asaved, gradContent: dc, gradStyle: dsInContent)
                                Issue.record("dstyle inside the content was accepted")
                            } catch let error as NormError {
                                #expect(error == .overlappingBuffers(argument: "gradStyle", other: "content"))
                            }
                            #expect(Array(cm) == before)
                        }
                    }
                }
            }
        }
        // WeightNorm: wrong norms, wrong dw.
        let wn = try WeightNormalization(shape: [3, 4], dim: 0)
        let v = bwValues(12, seed: 50), g = bwValues(3, seed: 51), dw = bwValues(12, seed: 52)
        let (_, norms) = try wn.forward(v: v, g: g)
        var dv = [Float](repeating: 0, count: 12), dgw = [Float](repeating: 0, count: 3)
        v.withUnsafeBufferPointer { vp in
            g.withUnsafeBufferPointer { gp in
                dw.withUnsafeBufferPointer { dwp in
                    dv.withUnsafeMutableBufferPointer { dvp in
                        dgw.withUnsafeMutableBufferPointer { dgp in
                            bwExpectRejected(.lengthMismatch(argument: "norms", expected: 3, actual: 2), [dvp, dgp]) {
                                try wn.backward(v: vp, g: gp, gradWeight: dwp, norms: Array(norms.prefix(2)), gradV: dvp, gradG: dgp)
                            }
                            bwExpectRejected(.lengthMismatch(argument: "gradWeight", expected: 12, actual: 11), [dvp, dgp]) {
                                try wn.backward(v: vp, g: gp, gradWeight: UnsafeBufferPointer(rebasing: dwp[1...]), norms: norms,
                                                gradV: dvp, gradG: dgp)
                            }
                        }
                    }
                }
            }
        }
    }

    // MARK: - Short rows and groups (8 per vector)

    @Test("short rows (one sweep, 8 rows at a time) and groups (row sums 8 per vector): dx against the Float64 closed form, dγ and dβ against Float64 sums",
          arguments: [(1037, 5, 1), (1037, 16, 1), (1037, 17, 1), (600, 48, 12), (600, 48, 3), (64, 13, 1),
                      (1037, 100, 1), (300, 301, 1), (261, 512, 1)],
          [false, true])
    func shortRows(size item: (rows: Int, features: Int, groups: Int), offset: Bool) throws {
        // (64, 13) is one row block; the others span several, 1037, 301 and 261 rows
        // end in a partial group of 8, and row blocks of more than 128 rows flush
        // their column sums more than once.
        try checkRowBackward(item, offset: offset, threading: Threading(threads: 2, parallelThreshold: 4096))
    }

    @Test("long rows (row sums a sub-block ahead of the dx sweep, one thread; spread over workers, two): dx, dγ and dβ against Float64",
          arguments: [(1100, 600, 1), (700, 1030, 1)], [false, true])
    func longRows(size item: (rows: Int, features: Int, groups: Int), offset: Bool) throws {
        // Several row blocks of 128–218 rows whose sub-blocks (15–27 rows on a 1 MiB L2)
        // end inside a block; 1030 values leave a SIMD tail.
        try checkRowBackward(item, offset: offset, threading: .serial)
        try checkRowBackward(item, offset: offset, threading: Threading(threads: 2, parallelThreshold: 4096))
    }

    /// LayerNorm (groups 1) or GroupNorm on feature vectors: dx against the Float64
    /// closed form, dγ and dβ against Float64 sums. `offset`: mean 1e4, std 1e-2.
    private func checkRowBackward(_ item: (rows: Int, features: Int, groups: Int), offset: Bool, threading: Threading) throws {
        let (rows, features, groups) = item
        let count = rows * features, size = features / groups
        let x = offset ? bwGaussian(count, seed: 61, mean: 1e4, std: 1e-2) : bwValues(count, seed: 61, -2, 3)
        let dy = bwValues(count, seed: 62), gamma = bwValues(features, seed: 63, 0.5, 1.5)
        let grads: NormGradients
        if groups == 1 {
            let ln = try LayerNormalization(rows: rows, features: features, threading: threading)
            let (_, saved) = try ln.forward(x, scale: gamma)
            grads = try ln.backward(x, gradOutput: dy, saved: saved, scale: gamma)
        } else {
            let gn = try GroupNormalization(shape: .matrix(rows, features), groups: groups, threading: threading)
            let (_, saved) = try gn.forward(x, scale: gamma)
            grads = try gn.backward(x, gradOutput: dy, saved: saved, scale: gamma)
        }
        let slots = (0..<(rows * groups)).map { u in Array((u * size)..<((u + 1) * size)) }
        let what = "\(groups == 1 ? "LN" : "GN G \(groups)") \(rows)×\(features) offset \(offset)"
        let dx = try #require(grads.input)
        let reference = bwCenteredReference(x, dy, slots, eps: Double(Float(1e-5))) { Double(gamma[$0 % features]) }
        let error = bwRelativeError(dx, reference)
        #expect(error < (offset ? 1e-5 : 1e-6), "\(what) dx: relative error \(error)")
        let (dgamma, dbeta) = bwAffineGradientReference(x, dy, slots, parameters: features)
        let gError = bwRelativeError(try #require(grads.scale), dgamma)
        let bError = bwRelativeError(try #require(grads.bias), dbeta)
        #expect(gError < (offset ? 1e-4 : 1e-5), "\(what) dγ: relative error \(gError)")
        #expect(bError < 1e-5, "\(what) dβ: relative error \(bError)")
    }

    @Test("InstanceNorm NHWC small maps (8 channels per vector): dx against the Float64 closed form, dγ and dβ against Float64 sums",
          arguments: [TensorShape(n: 70, c: 16, h: 2, w: 2, layout: .nhwc), TensorShape(n: 3, c: 24, h: 1, w: 4, layout: .nhwc),
                      TensorShape(n: 3, c: 8, h: 1, w: 2, layout: .nhwc)], [false, true])
    func tinyChannels(shape: TensorShape, offset: Bool) throws {
        #expect(InstanceNormalization.usesTinyChannels(shape, backward: true), "\(shape) takes the tiny-channels backward")
        let x = offset ? bwGaussian(shape.count, seed: 71, mean: 1e4, std: 1e-2) : bwValues(shape.count, seed: 71, -2, 3)
        let dy = bwValues(shape.count, seed: 72), gamma = bwValues(shape.c, seed: 73, 0.5, 1.5)
        let norm = try InstanceNormalization(shape: shape, threading: Threading(threads: 2, parallelThreshold: 256))
        let (_, saved) = try norm.forwardTraining(x, scale: gamma)
        let grads = try norm.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma)
        let slots = (0..<shape.n).flatMap { n in (0..<shape.c).map { c in (0..<shape.spatial).map { bwOffset(shape, n, c, $0) } } }
        let what = "IN \(shape) offset \(offset)"
        let reference = bwCenteredReference(x, dy, slots, eps: Double(Float(1e-5))) { Double(gamma[$0 % shape.c]) }
        let error = bwRelativeError(try #require(grads.input), reference)
        #expect(error < (offset ? 1e-4 : 1e-6), "\(what) dx: relative error \(error)")
        let (dgamma, dbeta) = bwAffineGradientReference(x, dy, slots, parameters: shape.c)
        let gError = bwRelativeError(try #require(grads.scale), dgamma)
        let bError = bwRelativeError(try #require(grads.bias), dbeta)
        #expect(gError < (offset ? 1e-3 : 1e-5), "\(what) dγ: relative error \(gError)")
        #expect(bError < 1e-5, "\(what) dβ: relative error \(bError)")
    }

    // MARK: - Columns merged over channel ranges

    @Test("NHWC with more than 128 merge slots (merged in channel ranges, several row blocks) and ≥ 1280 channels (sums and dx in strips): BatchNorm and GroupNorm forward and backward against Float64",
          // The first four span ≥ 3 row blocks whatever the L2 (sizes derived from the geometry).
          arguments: [(nhwcShape(n: 2, c: 300, spanning: 3, side: 20), 0),     // BatchNorm: 3 ranges of channels
                      (nhwcShape(n: 1, c: 300, spanning: 3, side: 30), 300),   // G = C: 3 ranges of groups
                      (nhwcShape(n: 1, c: 300, spanning: 3, side: 30), 100),   // groups of 3: backward ranges of 129
                      (nhwcShape(n: 2, c: 260, spanning: 3, side: 24), 4),     // groups of 65: ranges of 130
                      (TensorShape(n: 1, c: 1299, h: 12, w: 12, layout: .nhwc), 0),    // BatchNorm + ReLU: sums in strips, 3 columns left
                      (TensorShape(n: 1, c: 1304, h: 12, w: 12, layout: .nhwc), 8)])   // groups of 163, strips, aligned rows
    func channelRangeMerges(shape: TensorShape, groups: Int) throws {
        let x = bwValues(shape.count, seed: 81, -2, 3), dy = bwValues(shape.count, seed: 82)
        let gamma = bwValues(shape.c, seed: 83, 0.5, 1.5), beta = bwValues(shape.c, seed: 84)
        let threading = Threading(threads: 2, parallelThreshold: 4096)
        // BatchNorm with 1299 channels fuses a ReLU: dy is masked where y ≤ 0.
        let relu = groups == 0 && shape.c == 1299
        let y: [Float], saved: SavedStatistics, grads: NormGradients, slots: [[Int]]
        if groups == 0 {
            let bn = try BatchNormalization(shape: shape, fusedReLU: relu, threading: threading)
            (y, saved) = try bn.forwardTraining(x, scale: gamma, bias: beta)
            grads = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma, output: relu ? y : nil)
            slots = (0..<shape.c).map { c in (0..<shape.n).flatMap { n in (0..<shape.spatial).map { bwOffset(shape, n, c, $0) } } }
        } else {
            let gn = try GroupNormalization(shape: shape, groups: groups, threading: threading)
            (y, saved) = try gn.forward(x, scale: gamma, bias: beta)
            grads = try gn.backward(x, gradOutput: dy, saved: saved, scale: gamma)
            let size = shape.c / groups
            slots = (0..<(shape.n * groups)).map { u in
                let n = u / groups, g = u % groups
                return (0..<shape.spatial).flatMap { s in (0..<size).map { bwOffset(shape, n, g * size + $0, s) } }
            }
        }
        let what = groups == 0 ? "BN \(shape)" : "GN \(shape) G \(groups)"
        if shape.c < 1000 {
            // Several row blocks per matrix, on any cache size.
            #expect(ColumnsGeometry(matrices: shape.n, rows: shape.spatial * (groups == 0 ? shape.n : 1), columns: shape.c)
                        .blocksPerMatrix > 1, "\(what) spans one row block")
            let plan = groups == 0 ? try BatchNormalization(shape: shape).plan() : try GroupNormalization(shape: shape, groups: groups).plan()
            #expect(plan.blocks > shape.n, "\(what): \(plan)")
        }
        // Forward: every slot's saved statistics and output against Float64.
        var yReference = [Double](repeating: 0, count: x.count)
        for (k, slot) in slots.enumerated() {
            let m = Double(slot.count)
            let mean = slot.reduce(0.0) { $0 + Double(x[$1]) } / m
            let variance = slot.reduce(0.0) { $0 + (Double(x[$1]) - mean) * (Double(x[$1]) - mean) } / m
            let r = 1 / (variance + Double(Float(1e-5))).squareRoot()
            // Float32 lanes: the mean's error grows with the count (in units of σ).
            let tolerance = reductionTolerance(slot.count)
            #expect(abs(saved.mean[k] - mean) * r < tolerance / 10 && abs(saved.invStd[k] / r - 1) < invStdTolerance(slot.count),
                    "\(what) slot \(k) statistics: mean \(saved.mean[k]) vs \(mean), invStd \(saved.invStd[k]) vs \(r)")
            for i in slot {
                let affine = (Double(x[i]) - mean) * r * Double(gamma[i % shape.c]) + Double(beta[i % shape.c])
                yReference[i] = relu ? max(0, affine) : affine
            }
        }
        #expect(bwRelativeError(y, yReference) < 1e-6, "\(what) y")
        let g = relu ? zip(dy, y).map { $1 > 0 ? $0 : 0 } : dy
        let dxReference = bwCenteredReference(x, g, slots, eps: Double(Float(1e-5))) { Double(gamma[$0 % shape.c]) }
        let error = bwRelativeError(try #require(grads.input), dxReference)
        #expect(error < 1e-5, "\(what) dx: relative error \(error)")
        let (dgamma, dbeta) = bwAffineGradientReference(x, g, slots, parameters: shape.c)
        #expect(bwRelativeError(try #require(grads.scale), dgamma) < 1e-5, "\(what) dγ")
        #expect(bwRelativeError(try #require(grads.bias), dbeta) < 1e-5, "\(what) dβ")
        try bwExpectDeterministic("\(what) forward") { threading in
            if groups == 0 {
                let (y, saved) = try BatchNormalization(shape: shape, fusedReLU: relu, threading: threading)
                    .forwardTraining(x, scale: gamma, bias: beta)
                return [y, bwDoubleBits(saved.mean), bwDoubleBits(saved.invStd)]
            }
            let (y, saved) = try GroupNormalization(shape: shape, groups: groups, threading: threading).forward(x, scale: gamma, bias: beta)
            return [y, bwDoubleBits(saved.mean), bwDoubleBits(saved.invStd)]
        }
        try bwExpectDeterministic("\(what) backward") { threading in
            let g = groups == 0
                ? try BatchNormalization(shape: shape, fusedReLU: relu, threading: threading)
                    .backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma, output: relu ? y : nil)
                : try GroupNormalization(shape: shape, groups: groups, threading: threading).backward(x, gradOutput: dy, saved: saved, scale: gamma)
            return [g.input, g.scale, g.bias]
        }
    }

    // MARK: - BatchNorm NCHW: reductions that prefetch along runs far apart

    @Test("BatchNorm NCHW over runs far apart (reductions prefetch the next run or block): forward and backward against Float64, 1 and 2 threads",
          arguments: [(TensorShape(n: 4, c: 16, h: 24, w: 24), false),   // runs of 576, 4 per block: the next block is the next channel
                      (TensorShape(n: 3, c: 5, h: 80, w: 80), true),     // runs of 6400 in 2 blocks; few channels: blocks split; ReLU mask
                      (TensorShape(n: 6, c: 9, h: 17, w: 19), true)])    // runs of 323: 32-value steps, 8-value steps and a tail
    func batchNormFarApartRuns(shape: TensorShape, relu: Bool) throws {
        let x = bwValues(shape.count, seed: 91, -2, 3), dy = bwValues(shape.count, seed: 92)
        let gamma = bwValues(shape.c, seed: 93, 0.5, 1.5), beta = bwValues(shape.c, seed: 94)
        let slots = (0..<shape.c).map { c in (0..<shape.n).flatMap { n in (0..<shape.spatial).map { bwOffset(shape, n, c, $0) } } }
        let channel = { (i: Int) in (i / shape.spatial) % shape.c }
        for threading in [Threading.serial, Threading(threads: 2, parallelThreshold: 4096)] {
            let what = "BN \(shape) relu \(relu) threads \(threading.threads)"
            let bn = try BatchNormalization(shape: shape, fusedReLU: relu, threading: threading)
            let (y, saved) = try bn.forwardTraining(x, scale: gamma, bias: beta)
            var yReference = [Double](repeating: 0, count: x.count)
            var dgamma = [Double](repeating: 0, count: shape.c), dbeta = dgamma
            let g = relu ? zip(dy, y).map { $1 > 0 ? $0 : 0 } : dy
            for (c, slot) in slots.enumerated() {
                let m = Double(slot.count)
                let mean = slot.reduce(0.0) { $0 + Double(x[$1]) } / m
                let variance = slot.reduce(0.0) { $0 + (Double(x[$1]) - mean) * (Double(x[$1]) - mean) } / m
                let r = 1 / (variance + Double(Float(1e-5))).squareRoot()
                let tolerance = reductionTolerance(slot.count)
                #expect(abs(saved.mean[c] - mean) * r < tolerance / 10 && abs(saved.invStd[c] / r - 1) < invStdTolerance(slot.count),
                        "\(what) channel \(c): mean \(saved.mean[c]) vs \(mean), invStd \(saved.invStd[c]) vs \(r)")
                for i in slot {
                    let xhat = (Double(x[i]) - mean) * r
                    let affine = xhat * Double(gamma[c]) + Double(beta[c])
                    yReference[i] = relu ? max(0, affine) : affine
                    dgamma[c] += Double(g[i]) * xhat
                    dbeta[c] += Double(g[i])
                }
            }
            #expect(bwRelativeError(y, yReference) < 1e-6, "\(what) y")
            let grads = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma, output: relu ? y : nil)
            let dxReference = bwCenteredReference(x, g, slots, eps: Double(Float(1e-5))) { Double(gamma[channel($0)]) }
            let error = bwRelativeError(try #require(grads.input), dxReference)
            #expect(error < 1e-5, "\(what) dx: relative error \(error)")
            #expect(bwRelativeError(try #require(grads.scale), dgamma) < 1e-5, "\(what) dγ")
            #expect(bwRelativeError(try #require(grads.bias), dbeta) < 1e-5, "\(what) dβ")
        }
    }

    // MARK: - Large offset: mean 1e4, std 1e-2

    @Test("dx keeps its accuracy for data at mean 1e4, std 1e-2 (centered sums, pivot split)")
    func largeOffset() throws {
        let tolerance = 1e-5
        for shape in [TensorShape(n: 4, c: 3, h: 32, w: 33, layout: .nchw), TensorShape(n: 4, c: 3, h: 32, w: 33, layout: .nhwc),
                      TensorShape.matrix(512, 17)] {
            let x = bwGaussian(shape.count, seed: 53, mean: 1e4, std: 1e-2), dy = bwValues(shape.count, seed: 54)
            let gamma = bwValues(shape.c, seed: 55, 0.5, 1.5)
            let bn = try BatchNormalization(shape: shape, threading: Threading(threads: 2, parallelThreshold: 4096))
            let (_, saved) = try bn.forwardTraining(x, scale: gamma)
            let dx = try #require(try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma, computing: .input).input)
            let slots = (0..<shape.c).map { c in
                (0..<shape.n).flatMap { n in (0..<shape.spatial).map { bwOffset(shape, n, c, $0) } }
            }
            let channel = { (i: Int) in shape.layout == .nchw && shape.spatial > 1 ? (i / shape.spatial) % shape.c : i % shape.c }
            let reference = bwCenteredReference(x, dy, slots, eps: Double(Float(1e-5))) { Double(gamma[channel($0)]) }
            let error = bwRelativeError(dx, reference)
            #expect(error < tolerance, "BN \(shape): relative error \(error)")

            let gn = try GroupNormalization(shape: shape, groups: shape.c == 3 ? 3 : 1, threading: Threading(threads: 2, parallelThreshold: 4096))
            let (_, gsaved) = try gn.forward(x, scale: gamma)
            let gdx = try #require(try gn.backward(x, gradOutput: dy, saved: gsaved, scale: gamma, computing: .input).input)
            // Every GroupNorm dx is checked: G = 3 (per channel, = InstanceNorm) and G = 1 ([512, 17]: per row).
            let groups = shape.c == 3 ? 3 : 1, size = shape.c / groups
            let groupSlots = (0..<shape.n).flatMap { n in
                (0..<groups).map { g in
                    (g * size..<(g + 1) * size).flatMap { c in (0..<shape.spatial).map { bwOffset(shape, n, c, $0) } }
                }
            }
            let greference = bwCenteredReference(x, dy, groupSlots, eps: Double(Float(1e-5))) { Double(gamma[channel($0)]) }
            let gerror = bwRelativeError(gdx, greference)
            #expect(gerror < tolerance, "GN G = \(groups) \(shape): relative error \(gerror)")
        }
        let (rows, features) = (64, 1000)
        let x = bwGaussian(rows * features, seed: 56, mean: 1e4, std: 1e-2), dy = bwValues(rows * features, seed: 57)
        let gamma = bwValues(features, seed: 58, 0.5, 1.5)
        let ln = try LayerNormalization(rows: rows, features: features)
        let (_, saved) = try ln.forward(x, scale: gamma)
        let dx = try #require(try ln.backward(x, gradOutput: dy, saved: saved, scale: gamma).input)
        let slots = (0..<rows).map { r in Array((r * features)..<((r + 1) * features)) }
        let reference = bwCenteredReference(x, dy, slots, eps: Double(Float(1e-5))) { Double(gamma[$0 % features]) }
        let error = bwRelativeError(dx, reference)
        #expect(error < tolerance, "LN: relative error \(error)")
    }
}

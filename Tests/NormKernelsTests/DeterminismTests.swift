import Testing
@testable import NormKernels

// Forward kernels: results must be bitwise identical for any thread count and
// affinity (TestSupport+Determinism.swift). Shapes are chosen to exercise both
// strategies of each geometry (whole units per worker, and units split across
// workers) above the serial threshold. Backward: DeterminismTests+Backward.swift.

/// Seeds 1, 2, … of the forward determinism streams (state = seed).
private let streams = SeededStreams.plain

@Suite struct DeterminismTests {
    static let imageShapes: [TensorShape] = [
        TensorShape(n: 2, c: 3, h: 160, w: 160),   // few channels: units split
        TensorShape(n: 4, c: 64, h: 28, w: 28),    // many channels: whole units
        TensorShape(n: 1, c: 2, h: 300, w: 301),   // N·C = 2, odd sizes
        TensorShape(n: 64, c: 64, h: 7, w: 7),     // short runs: grouped blocks, memory-order output
        nhwcShape(n: 2, c: 3, spanning: 2),        // NHWC few channels: ≥ 2 column row blocks on any L2, split
    ]

    @Test("the shapes split blocks across workers in both geometries on this machine's caches")
    func shapesSplit() throws {
        let threading = Threading(threads: 2, parallelThreshold: 4096)
        // ([2, 160, 160, 3] NHWC alone is one row block on a 2 MiB L2: nothing to split.)
        for layout in Layout.allCases {
            let plans = try Self.imageShapes.map { try BatchNormalization(shape: $0.with(layout: layout), threading: threading).plan() }
            #expect(plans.contains { $0.blocks > 1 && $0.strategy.hasPrefix("split") },
                    "no \(layout) BatchNorm shape splits its blocks: \(plans.map(\.description))")
        }
    }

    static func allLayouts(_ s: TensorShape) -> [TensorShape] {
        [s.with(layout: .nchw), s.with(layout: .nhwc)]
    }

    @Test(arguments: imageShapes.flatMap(allLayouts))
    func batchNorm(shape: TensorShape) throws {
        let x = streams.uniforms(shape.count, seed: 1, -2...2, offset: 3)
        let gamma = streams.uniforms(shape.c, seed: 2, -2...2), beta = streams.uniforms(shape.c, seed: 3, -2...2)
        try expectSameBitsForAnyThreading("BatchNorm training \(shape)") { t in
            let running = try RunningStatistics(channels: shape.c)
            let bn = try BatchNormalization(shape: shape, fusedReLU: true, threading: t)
            let (y, saved) = try bn.forwardTraining(x, scale: gamma, bias: beta, running: running)
            return y + doubleBits(saved.mean) + doubleBits(saved.invStd) + running.mean + running.variance
        }
        let running = try RunningStatistics(channels: shape.c, mean: gamma, variance: gamma.map { $0 * $0 + 0.5 })
        try expectSameBitsForAnyThreading("BatchNorm inference \(shape)") { t in
            try BatchNormalization(shape: shape, threading: t).forwardInference(x, scale: gamma, bias: beta, running: running)
        }
    }

    /// The columns geometry merges partials whole rows at a time (`RowTree`); each
    /// column must come out with the bits of the per-column tree.
    @Test func rowTreeMatchesPerColumnTree() {
        let width = 5
        for rows in 0...37 {
            let values = streams.uniforms(3 * rows * width, seed: UInt64(rows) + 40, -2...2)
            let moments = (0..<(rows * width)).map { i in
                Moments(count: Double(1 + i % 3), mean: Double(values[3 * i]) * 100, m2: Double(abs(values[3 * i + 1])))
            }
            let sums = (0..<(rows * width)).map { GradientSums(dy: Double(values[3 * $0]), dyXhat: Double(values[3 * $0 + 2]) * 1e3) }
            var mergedMoments = [Moments](repeating: .empty, count: width)
            var mergedSums = [GradientSums](repeating: .zero, count: width)
            let scratch = RowTree.scratchCount(rows: rows, width: width)
            moments.withUnsafeBufferPointer { m in
                withUnsafeTemporaryAllocation(of: Moments.self, capacity: scratch) { s in
                    RowTree.merge(m.baseAddress ?? UnsafePointer(s.baseAddress!), stride: width, rows: 0, rows,
                                  width: width, into: &mergedMoments, scratch: s.baseAddress!)
                }
            }
            sums.withUnsafeBufferPointer { g in
                withUnsafeTemporaryAllocation(of: GradientSums.self, capacity: scratch) { s in
                    RowTree.merge(g.baseAddress ?? UnsafePointer(s.baseAddress!), stride: width, rows: 0, rows,
                                  width: width, into: &mergedSums, scratch: s.baseAddress!)
                }
            }
            for j in 0..<width {
                let tree = Moments.treeMerge(count: rows) { moments[$0 * width + j] }
                #expect(mergedMoments[j] == tree, "moments: \(rows) rows, column \(j)")
                #expect(mergedSums[j] == GradientSums.treeSum(count: rows) { sums[$0 * width + j] }, "sums: \(rows) rows, column \(j)")
            }
        }
    }

    @Test func batchNormMatrix() throws {
        for shape in [TensorShape.matrix(4096, 64), TensorShape.matrix(300, 1024), TensorShape.matrix(70000, 3)] {
            let x = streams.uniforms(shape.count, seed: 4, -2...2)
            try expectSameBitsForAnyThreading("BatchNorm1d \(shape)") { t in
                let (y, saved) = try BatchNormalization(shape: shape, threading: t).forwardTraining(x)
                return y + doubleBits(saved.mean) + doubleBits(saved.invStd)
            }
        }
    }

    @Test(arguments: imageShapes.flatMap(allLayouts))
    func instanceAndGroupNorm(shape: TensorShape) throws {
        let x = streams.uniforms(shape.count, seed: 5, -2...2, offset: -1)
        let gamma = streams.uniforms(shape.c, seed: 6, -2...2), beta = streams.uniforms(shape.c, seed: 7, -2...2)
        try expectSameBitsForAnyThreading("InstanceNorm \(shape)") { t in
            let running = try RunningStatistics(channels: shape.c)
            let (y, saved) = try InstanceNormalization(shape: shape, threading: t)
                .forwardTraining(x, scale: gamma, bias: beta, running: running)
            return y + doubleBits(saved.mean) + doubleBits(saved.invStd) + running.mean + running.variance
        }
        for groups in [1, shape.c] + (shape.c % 2 == 0 ? [2] : []) {
            try expectSameBitsForAnyThreading("GroupNorm G=\(groups) \(shape)") { t in
                let (y, saved) = try GroupNormalization(shape: shape, groups: groups, threading: t)
                    .forward(x, scale: gamma, bias: beta)
                return y + doubleBits(saved.mean) + doubleBits(saved.invStd)
            }
        }
        let styleShape = TensorShape(n: shape.n, c: shape.c, h: 37, w: 41, layout: shape.layout)
        let style = streams.uniforms(styleShape.count, seed: 8, -2...2, offset: 2)
        try expectSameBitsForAnyThreading("AdaIN \(shape)") { t in
            let (y, saved) = try AdaptiveInstanceNormalization(content: shape, style: styleShape, threading: t)
                .forward(content: x, style: style)
            return y + doubleBits(saved.contentMean) + doubleBits(saved.contentInvStd) + doubleBits(saved.styleMean) + doubleBits(saved.styleStd)
        }
    }

    @Test func rowKernels() throws {
        for (rows, features) in [(512, 1024), (2, 100_003), (3000, 77), (4100, 13), (1037, 128), (1100, 201)] {
            let x = streams.uniforms(rows * features, seed: 9, -2...2, offset: 0.5)
            let gamma = streams.uniforms(features, seed: 10, -2...2), beta = streams.uniforms(features, seed: 11, -2...2)
            try expectSameBitsForAnyThreading("LayerNorm \(rows)×\(features)") { t in
                let (y, saved) = try LayerNormalization(rows: rows, features: features, threading: t)
                    .forward(x, scale: gamma, bias: beta)
                return y + doubleBits(saved.mean) + doubleBits(saved.invStd)
            }
            try expectSameBitsForAnyThreading("RMSNorm \(rows)×\(features)") { t in
                let (y, saved) = try RMSNormalization(rows: rows, features: features, threading: t).forward(x, scale: gamma)
                return y + doubleBits(saved.invStd)
            }
        }
    }

    @Test func weightNorm() throws {
        for (shape, dim) in [([512, 1024], 0 as Int?), ([64, 128, 3, 3], 1), ([300, 700], nil), ([1000, 300], 1)] {
            let v = streams.uniforms(shape.reduce(1, *), seed: 12, -2...2)
            let count = dim.map { shape[$0] } ?? 1
            let g = streams.uniforms(count, seed: 13, -2...2)
            try expectSameBitsForAnyThreading("WeightNorm \(shape) dim \(String(describing: dim))") { t in
                let (w, norms) = try WeightNormalization(shape: shape, dim: dim, threading: t).forward(v: v, g: g)
                return w + doubleBits(norms)
            }
        }
    }
}

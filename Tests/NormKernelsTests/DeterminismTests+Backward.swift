// Backward kernels: every gradient bitwise identical for 1, 2, 3, 5 and 8
// threads (parked and warm workers), with saved statistics from a serial
// forward (TestSupport+Determinism.swift). Forward: DeterminismTests.swift.
import Testing
@testable import NormKernels

/// Seeds 1, 2, … of the backward streams (the data these tests were tuned on).
private let streams = SeededStreams.backward

@Suite("Determinism: backward kernels for any thread count")
struct BackwardDeterminismTests {
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
        let x = streams.uniforms(shape.count, seed: 1, -3...5), dy = streams.uniforms(shape.count, seed: 2)
        let gamma = streams.uniforms(shape.c, seed: 3, 0.5...1.5), beta = streams.uniforms(shape.c, seed: 4)
        for relu in [false, true] {
            let forward = try BatchNormalization(shape: shape, fusedReLU: relu, threading: .serial)
            let (y, saved) = try forward.forwardTraining(x, scale: gamma, bias: beta)
            try expectGradientsDeterministic("BN training \(shape) relu \(relu)") { threading in
                let bn = try BatchNormalization(shape: shape, fusedReLU: relu, threading: threading)
                let g = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma, output: y)
                return [g.input, g.scale, g.bias]
            }
            let running = try RunningStatistics(channels: shape.c, mean: streams.uniforms(shape.c, seed: 5),
                                                variance: streams.uniforms(shape.c, seed: 6, 0.5...2))
            try expectGradientsDeterministic("BN inference \(shape) relu \(relu)") { threading in
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
        let x = streams.uniforms(shape.count, seed: 7, -2...4), dy = streams.uniforms(shape.count, seed: 8)
        let gamma = streams.uniforms(shape.c, seed: 9, 0.5...1.5), beta = streams.uniforms(shape.c, seed: 10)
        let (_, inSaved) = try InstanceNormalization(shape: shape, threading: .serial).forwardTraining(x, scale: gamma, bias: beta)
        try expectGradientsDeterministic("IN \(shape)") { threading in
            let g = try InstanceNormalization(shape: shape, threading: threading)
                .backwardTraining(x, gradOutput: dy, saved: inSaved, scale: gamma)
            return [g.input, g.scale, g.bias]
        }
        for groups in [1, shape.c == 3 ? 3 : 8] {
            try Self.expectGroupNormBackwardDeterministic(shape, groups: groups, x: x, dy: dy, gamma: gamma, beta: beta)
        }
    }

    @Test("GroupNorm NCHW small-map backward: one-tile rows in row blocks that do not depend on the thread count")
    func smallMapRowBlocks() throws {
        // (shape, G, row blocks): one tile and ≤ 128 rows: split in two (rows rounded
        // up to 8 per block); several tiles or many rows: the natural blocks.
        var cases: [(TensorShape, Int, Int)] = [
            (TensorShape(n: 128, c: 256, h: 4, w: 4, layout: .nchw), 32, 2),
            (TensorShape(n: 256, c: 128, h: 2, w: 2, layout: .nchw), 32, 2),
            (TensorShape(n: 40, c: 27, h: 7, w: 7, layout: .nchw), 3, 2),     // blocks of 24 and 16 rows
            (TensorShape(n: 6, c: 16, h: 4, w: 4, layout: .nchw), 4, 1),      // fewer than 9 rows: one block
            (TensorShape(n: 64, c: 512, h: 7, w: 7, layout: .nchw), 32, 1),   // several tiles already
        ]
        // Many rows: the natural blocks (their size follows the L2).
        let natural = ColumnsGeometry(matrices: 1, rows: 1024, columns: 512).rowBlock
        cases.append((TensorShape(n: 1024, c: 32, h: 4, w: 4, layout: .nchw), 8, (1024 + natural - 1) / natural))
        for (shape, groups, expected) in cases {
            for threads in [1, 2, 5] {
                let gn = try GroupNormalization(shape: shape, groups: groups, threading: Threading(threads: threads))
                guard case .expandedAffine(_, let backward) = gn.path else {
                    Issue.record("\(shape) G \(groups) takes the expanded-affine path"); continue
                }
                #expect(backward.rowBlocks == expected, "\(shape) G \(groups) threads \(threads): \(backward.rowBlocks) row blocks")
            }
        }
    }

    @Test("GroupNorm backward on feature vectors (H·W = 1) is bitwise identical for any thread count",
          arguments: [(2048, 96, 3), (300, 60, 4), (4, 20_000, 5), (1024, 64, 64)])
    func groupedRowDeterminism(rows: Int, channels: Int, groups: Int) throws {
        // Many row blocks, groups whose width is not a multiple of 8, long rows
        // (row sums spread over workers), and one value per group.
        for layout in [Layout.nchw, .nhwc] {
            let shape = TensorShape(n: rows, c: channels, h: 1, w: 1, layout: layout)
            let x = streams.uniforms(shape.count, seed: 15, -2...3), dy = streams.uniforms(shape.count, seed: 16)
            let gamma = streams.uniforms(channels, seed: 17, 0.5...1.5), beta = streams.uniforms(channels, seed: 18)
            try Self.expectGroupNormBackwardDeterministic(shape, groups: groups, x: x, dy: dy, gamma: gamma, beta: beta)
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
        let x = streams.uniforms(shape.count, seed: 19, -2...3), dy = streams.uniforms(shape.count, seed: 20)
        let gamma = streams.uniforms(shape.c, seed: 21, 0.5...1.5), beta = streams.uniforms(shape.c, seed: 22)
        try expectGradientsDeterministic("GN forward \(shape) G \(groups)") { threading in
            let (y, saved) = try GroupNormalization(shape: shape, groups: groups, threading: threading)
                .forward(x, scale: gamma, bias: beta)
            return [y, doubleBits(saved.mean), doubleBits(saved.invStd)]
        }
        try Self.expectGroupNormBackwardDeterministic(shape, groups: groups, x: x, dy: dy, gamma: gamma, beta: beta)
        guard InstanceNormalization.usesTinyUnits(shape) || InstanceNormalization.usesTinyChannels(shape) else { return }
        let (_, inSaved) = try InstanceNormalization(shape: shape, threading: .serial).forwardTraining(x, scale: gamma, bias: beta)
        try expectGradientsDeterministic("IN (tiny instances) \(shape)") { threading in
            let norm = try InstanceNormalization(shape: shape, threading: threading)
            let running = try RunningStatistics(channels: shape.c)
            let (y, saved) = try norm.forwardTraining(x, scale: gamma, bias: beta, running: running)
            let g = try norm.backwardTraining(x, gradOutput: dy, saved: inSaved, scale: gamma)
            return [y, doubleBits(saved.mean), doubleBits(saved.invStd), running.mean, running.variance,
                    g.input, g.scale, g.bias]
        }
    }

    @Test("LayerNorm and RMSNorm backward are bitwise identical for any thread count",
          arguments: [(512, 300), (3, 70_000), (8192, 32), (2048, 97), (1, 200_000), (4100, 13), (1100, 600), (700, 1030)])
    func rowDeterminism(rows: Int, features: Int) throws {
        let x = streams.uniforms(rows * features, seed: 11, -2...3), dy = streams.uniforms(rows * features, seed: 12)
        let gamma = streams.uniforms(features, seed: 13, 0.5...1.5), beta = streams.uniforms(features, seed: 14)
        let (_, saved) = try LayerNormalization(rows: rows, features: features, threading: .serial).forward(x, scale: gamma, bias: beta)
        try expectGradientsDeterministic("LN \(rows)×\(features)") { threading in
            let g = try LayerNormalization(rows: rows, features: features, threading: threading)
                .backward(x, gradOutput: dy, saved: saved, scale: gamma)
            return [g.input, g.scale, g.bias]
        }
        let (_, rmsSaved) = try RMSNormalization(rows: rows, features: features, threading: .serial).forward(x, scale: gamma)
        try expectGradientsDeterministic("RMS \(rows)×\(features)") { threading in
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
            let x = streams.uniforms(content.count, seed: 15, -2...2), s = streams.uniforms(style.count, seed: 16, -1...3)
            let dy = streams.uniforms(content.count, seed: 17)
            let (_, saved) = try AdaptiveInstanceNormalization(content: content, style: style, unbiasedVariance: unbiased,
                                                               threading: .serial).forward(content: x, style: s)
            try expectGradientsDeterministic("AdaIN \(layout) unbiased \(unbiased)") { threading in
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
        let v = streams.uniforms(count, seed: 18, -2...2), g = streams.uniforms(wn.normCount, seed: 19), dw = streams.uniforms(count, seed: 20)
        let (_, norms) = try wn.forward(v: v, g: g)
        try expectGradientsDeterministic("WN \(shape) dim \(String(describing: dim))") { threading in
            let r = try WeightNormalization(shape: shape, dim: dim, threading: threading)
                .backward(v: v, g: g, gradWeight: dw, norms: norms)
            return [r.v, r.g]
        }
    }

    /// GroupNorm backward with `saved` from a serial forward: every gradient bitwise
    /// equal for 1 and `Threadings.backward`.
    static func expectGroupNormBackwardDeterministic(
        _ shape: TensorShape, groups: Int, x: [Float], dy: [Float], gamma: [Float], beta: [Float]
    ) throws {
        let (_, saved) = try GroupNormalization(shape: shape, groups: groups, threading: .serial).forward(x, scale: gamma, bias: beta)
        try expectGradientsDeterministic("GN \(shape) G \(groups)") { threading in
            let g = try GroupNormalization(shape: shape, groups: groups, threading: threading)
                .backward(x, gradOutput: dy, saved: saved, scale: gamma)
            return [g.input, g.scale, g.bias]
        }
    }
}

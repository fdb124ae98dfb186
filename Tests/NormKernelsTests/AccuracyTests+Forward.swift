// Forward kernels against the Float64 two-pass references (Reference.swift):
// BatchNorm, InstanceNorm and GroupNorm over sizes named by their relation to the
// SIMD tiles (8 and 32 lanes, 4096-value blocks, NHWC column tiles of 32 then 8
// then scalar columns), both layouts, with and without γ/β and the fused ReLU.
// Row kernels, AdaIN, WeightNorm, folding: AccuracyTests+ForwardRows.swift.

import Foundation
import Testing
@testable import NormKernels

@Suite("Forward: BatchNormalization")
struct ForwardBatchNormTests {
    @Test("training matches the reference over tile-relative H·W × C × layout")
    func trainingSweep() throws {
        sweep(activationShapes()) { shape, context in
            var rng = SplitMix64("bn-train \(shape)")
            let x = activations(shape, &rng)
            let (scale, bias) = Affine.both.parameters(shape.c, &rng)
            let bn = try BatchNormalization(shape: shape)
            let (y, saved) = try bn.forwardTraining(x, scale: scale, bias: bias)
            let ref = Reference.batchNorm(x, shape, scale: scale, bias: bias)
            expectMatches(y, saved, ref, count: shape.n * shape.spatial, context)
            #expect(saved.runningStatisticsUpdated == false, "no running statistics given — \(context)")
        }
    }

    @Test("every γ/β combination, with and without the fused ReLU")
    func affineAndReLU() throws {
        let shapes = [TensorShape(n: 3, c: 33, h: 5, w: 7), TensorShape(n: 2, c: 40, h: 1, w: 33),
                      TensorShape(n: 2, c: 3, h: 17, w: 241), TensorShape(n: 7, c: 8, h: 1, w: 1)]
        let cases = product(shapes, Layout.allCases, Affine.allCases, [false, true])
        sweep(cases) { item, context in
            let (base, layout, affine, relu) = item
            let shape = base.with(layout: layout)
            var rng = SplitMix64("bn-affine \(context)")
            let x = activations(shape, &rng)
            let (scale, bias) = affine.parameters(shape.c, &rng)
            let bn = try BatchNormalization(shape: shape, fusedReLU: relu)
            let (y, saved) = try bn.forwardTraining(x, scale: scale, bias: bias)
            let ref = Reference.batchNorm(x, shape, scale: scale, bias: bias, relu: relu)
            expectMatches(y, saved, ref, count: shape.n * shape.spatial, context)
            if relu {
                #expect(y.allSatisfy { $0 >= 0 }, "ReLU output has a negative value — \(context)")
                #expect(y.contains(0), "ReLU clamped nothing — \(context)")
            }

            // Inference with arbitrary running statistics, same γ/β/ReLU.
            let running = try RunningStatistics(channels: shape.c, mean: rng.uniforms(shape.c, -2...2),
                                                variance: rng.uniforms(shape.c, 0.1...4))
            let yi = try bn.forwardInference(x, scale: scale, bias: bias, running: running)
            let refi = Reference.inference(x, shape, mean: running.mean, variance: running.variance,
                                           scale: scale, bias: bias, relu: relu)
            expectAllClose(yi, refi, atol: 1e-6, rtol: 1e-6, "inference output", context)
        }
    }

    @Test("fused ReLU lets NaN through (no clamp to 0) in the 16-wide, 8-wide and scalar paths")
    func reluKeepsNaN() throws {
        // NCHW H·W = 37: positions 3 (16-wide loop) and 36 (scalar tail);
        // NHWC C = 41: channels 5 and 35 (8-wide column loop), 40 (scalar column).
        let cases: [(TensorShape, [(Int, Int)])] = [
            (TensorShape(n: 2, c: 3, h: 37, w: 1), [(1, 3), (2, 36)]),
            (TensorShape(n: 2, c: 41, h: 3, w: 1, layout: .nhwc), [(5, 1), (35, 2), (40, 0)]),
        ]
        sweep(cases) { item, context in
            let (shape, poisoned) = item
            var rng = SplitMix64("relu-nan \(context)")
            var x = activations(shape, &rng)
            for (c, s) in poisoned { x[shape.offset(1, c, s)] = .nan }
            let running = try RunningStatistics(channels: shape.c)
            let bn = try BatchNormalization(shape: shape, fusedReLU: true)
            let y = try bn.forwardInference(x, running: running)
            var expected = Reference.inference(x, shape, mean: running.mean, variance: running.variance, relu: true)
            for (c, s) in poisoned { expected[shape.offset(1, c, s)] = .nan }
            expectAllClose(y, expected, atol: 1e-6, rtol: 1e-6, "ReLU output with NaN inputs", context)
        }
    }

    @Test("inference matches the reference over tile-relative sizes")
    func inferenceSweep() throws {
        sweep(activationShapes(nsForSmall: [1])) { shape, context in
            var rng = SplitMix64("bn-infer \(shape)")
            let x = activations(shape, &rng)
            let (scale, bias) = Affine.both.parameters(shape.c, &rng)
            let running = try RunningStatistics(channels: shape.c, mean: rng.uniforms(shape.c, -2...2),
                                                variance: rng.uniforms(shape.c, 0.1...4))
            let y = try BatchNormalization(shape: shape).forwardInference(x, scale: scale, bias: bias, running: running)
            let ref = Reference.inference(x, shape, mean: running.mean, variance: running.variance, scale: scale, bias: bias)
            expectAllClose(y, ref, atol: 1e-6, rtol: 1e-6, "inference output", context)
        }
    }

    @Test("[N, D] via TensorShape.matrix: row counts around the column blocks")
    func matrixSweep() throws {
        // Column row blocks hold ~L2/2 bytes (32768 rows at D = 1 on a 256 KiB L2,
        // 262144 on 2 MiB): row counts derive from this machine's block, so the
        // last ones span 2 and 3 blocks on any cache size.
        let cases = [1, 8, 33, 100].flatMap { d -> [(Int, Int)] in
            let b = columnsRowBlock(d)
            return [2, 7, 64, 65, 129, b - 1, b + 1, 2 * b + 3].map { ($0, d) }
        }
        sweep(cases) { item, context in
            let (n, d) = item
            let shape = TensorShape.matrix(n, d)
            if n > columnsRowBlock(d) {
                let plan = try BatchNormalization(shape: shape).plan()
                #expect(plan.blocks > 1, "[\(n), \(d)] must span several row blocks: \(plan) — \(context)")
            }
            var rng = SplitMix64("bn-matrix \(context)")
            let x = activations(shape, &rng)
            let (scale, bias) = Affine.both.parameters(d, &rng)
            let (y, saved) = try BatchNormalization(shape: shape).forwardTraining(x, scale: scale, bias: bias)
            expectMatches(y, saved, Reference.batchNorm(x, shape, scale: scale, bias: bias), count: n, context)
        }
    }

    @Test("large C (1030 = 32·32 + 6, 1046 = 32·32 + 2·8 + 6) in both layouts")
    func largeChannelCount() throws {
        let cases = product([1030, 1046], [(7, 7), (1, 1), (33, 1)], Layout.allCases)
        sweep(cases) { item, context in
            let (c, (h, w), layout) = item
            let shape = TensorShape(n: 3, c: c, h: h, w: w, layout: layout)
            var rng = SplitMix64("bn-largeC \(context)")
            let x = activations(shape, &rng)
            let (scale, bias) = Affine.both.parameters(c, &rng)
            let (y, saved) = try BatchNormalization(shape: shape).forwardTraining(x, scale: scale, bias: bias)
            expectMatches(y, saved, Reference.batchNorm(x, shape, scale: scale, bias: bias), count: 3 * h * w, context)
        }
    }

    @Test("large N·H·W: several row blocks (NHWC) and many contiguous blocks (NCHW)")
    func largeSpatial() throws {
        // N·H·W = 2.5 row blocks of this machine's columns geometry (45000 rows were
        // one block at C = 1 on a 2 MiB L2); NCHW: blocks of L1d/8 values.
        let cases = product([1, 3, 41], Layout.allCases)
        sweep(cases) { item, context in
            let (c, layout) = item
            let w = 100, h = (5 * columnsRowBlock(c) / 2 + 5 * w - 1) / (5 * w)
            let shape = TensorShape(n: 5, c: c, h: h, w: w, layout: layout)
            let bn = try BatchNormalization(shape: shape)
            #expect(bn.plan().blocks > 1, "\(bn.plan()) — \(context)")
            if layout == .nhwc { #expect(bn.columns.blocksPerMatrix > 2, "\(bn.columns) — \(context)") }
            var rng = SplitMix64("bn-largeHW \(context)")
            let x = activations(shape, &rng)
            let (y, saved) = try BatchNormalization(shape: shape).forwardTraining(x)
            expectMatches(y, saved, Reference.batchNorm(x, shape), count: shape.n * shape.spatial, context)
        }
    }

    @Test("known-statistics fill: saved mean and invStd equal the closed form")
    func knownStatistics() throws {
        // Channel c holds a shuffled progression with mean c − 1.5 and step 2^-(c % 4):
        // mean exact, biased variance step²·(count² − 1)/12.
        let cases = product([TensorShape(n: 4, c: 41, h: 9, w: 128), TensorShape(n: 2, c: 3, h: 70, w: 61)],
                            Layout.allCases)
        sweep(cases) { item, context in
            let shape = item.0.with(layout: item.1)
            var rng = SplitMix64("bn-known \(context)")
            let count = shape.n * shape.spatial
            var x = [Float](repeating: 0, count: shape.count)
            var expectedMean: [Double] = [], expectedInv: [Double] = [], expectedStd: [Double] = []
            for c in 0..<shape.c {
                let mean = Double(c) - 1.5, step = 1 / Double(1 << (c % 4))
                let values = progression(count, mean: mean, step: step, &rng)
                for (k, v) in values.enumerated() { x[shape.offset(k / shape.spatial, c, k % shape.spatial)] = v }
                expectedMean.append(mean)
                let variance = step * step * (Double(count) * Double(count) - 1) / 12
                expectedInv.append(1 / (variance + Double(Float(1e-5))).squareRoot())
                expectedStd.append(variance.squareRoot())
            }
            let (_, saved) = try BatchNormalization(shape: shape).forwardTraining(x)
            // Float32 lanes hold x − K to ~1e-7 of the spread: the mean to 1e-6·σ, σ² to 1e-6.
            for c in 0..<shape.c {
                #expect(abs(saved.mean[c] - expectedMean[c]) <= 1e-6 * expectedStd[c],
                        "saved mean[\(c)] = \(saved.mean[c]), exactly \(expectedMean[c]) — \(context)")
            }
            expectAllClose(saved.invStd, expectedInv, atol: 0, rtol: 1e-6, "saved invStd (closed form)", context)
        }
    }

    @Test("the sweeps reach every tile path and both parallel strategies")
    func sweepCoverage() throws {
        // Contiguous rows: one block, several blocks, a short tail block.
        let shapes = activationShapes()
        let rowBlocks = Set(shapes.filter { !$0.isChannelsLast }.map { try! BatchNormalization(shape: $0).rows.blocksPerSegment })
        #expect(rowBlocks.contains(1) && rowBlocks.contains(2) && rowBlocks.contains(3), "blocks per segment seen: \(rowBlocks)")
        // NHWC column tiles: C mod 32 ≥ 8 (a tile of 8) and C mod 8 ≠ 0 (scalar columns).
        #expect(Sizes.channels.contains { $0 % 32 >= 8 } && Sizes.channels.contains { $0 % 8 != 0 }
                && Sizes.channels.contains { $0 >= 32 })
        // Several row blocks in the columns geometry.
        let nhwc = try BatchNormalization(shape: nhwcShape(n: 2, c: 100, spanning: 3))
        #expect(nhwc.columns.blocksPerMatrix > 1 && nhwc.plan().blocks > 1, "\(nhwc.columns)")
        // Both strategies of each geometry occur in the sweeps (with the default threading).
        if Threading.default.threads > 1 {
            let strategies = Set(shapes.map { try! BatchNormalization(shape: $0).plan().strategy.hasPrefix("split") })
            #expect(strategies == [true, false], "BatchNorm strategies seen: \(strategies)")
        }
    }
}

@Suite("Forward: InstanceNormalization")
struct ForwardInstanceNormTests {
    @Test("training matches the reference over tile-relative H·W × C × layout")
    func trainingSweep() throws {
        sweep(activationShapes(includeSingleSpatial: false)) { shape, context in
            var rng = SplitMix64("in-train \(shape)")
            let x = activations(shape, &rng)
            let (scale, bias) = Affine.both.parameters(shape.c, &rng)
            let (y, saved) = try InstanceNormalization(shape: shape).forwardTraining(x, scale: scale, bias: bias)
            expectMatches(y, saved, Reference.instanceNorm(x, shape, scale: scale, bias: bias), count: shape.spatial, context)
        }
    }

    @Test("NHWC small maps, 8 channels per vector: several 512-instance chunks, every γ/β combination")
    func tinyChannels() throws {
        let cases = product([TensorShape(n: 70, c: 16, h: 2, w: 2, layout: .nhwc), TensorShape(n: 3, c: 24, h: 3, w: 5, layout: .nhwc),
                             TensorShape(n: 2, c: 8, h: 4, w: 4, layout: .nhwc)], Affine.allCases)
        sweep(cases) { item, context in
            let (shape, affine) = item
            #expect(InstanceNormalization.usesTinyChannels(shape), "\(shape) takes the tiny-channels path")
            var rng = SplitMix64("in-tiny-channels \(context)")
            let x = activations(shape, &rng)
            let (scale, bias) = affine.parameters(shape.c, &rng)
            let (y, saved) = try InstanceNormalization(shape: shape).forwardTraining(x, scale: scale, bias: bias)
            expectMatches(y, saved, Reference.instanceNorm(x, shape, scale: scale, bias: bias), count: shape.spatial, context)
        }
    }

    @Test("every γ/β combination")
    func affine() throws {
        let cases = product([TensorShape(n: 2, c: 33, h: 5, w: 7), TensorShape(n: 1, c: 3, h: 70, w: 61)],
                            Layout.allCases, Affine.allCases)
        sweep(cases) { item, context in
            let shape = item.0.with(layout: item.1)
            var rng = SplitMix64("in-affine \(context)")
            let x = activations(shape, &rng)
            let (scale, bias) = item.2.parameters(shape.c, &rng)
            let (y, saved) = try InstanceNormalization(shape: shape).forwardTraining(x, scale: scale, bias: bias)
            expectMatches(y, saved, Reference.instanceNorm(x, shape, scale: scale, bias: bias), count: shape.spatial, context)
        }
    }

    @Test("inference with running statistics matches the reference (H·W = 1 allowed)")
    func inference() throws {
        let shapes = activationShapes(nsForSmall: [2]).filter { $0.c <= 40 }
        sweep(shapes) { shape, context in
            var rng = SplitMix64("in-infer \(shape)")
            let x = activations(shape, &rng)
            let (scale, bias) = Affine.both.parameters(shape.c, &rng)
            let running = try RunningStatistics(channels: shape.c, mean: rng.uniforms(shape.c, -2...2),
                                                variance: rng.uniforms(shape.c, 0.1...4))
            let y = try InstanceNormalization(shape: shape).forwardInference(x, scale: scale, bias: bias, running: running)
            let ref = Reference.inference(x, shape, mean: running.mean, variance: running.variance, scale: scale, bias: bias)
            expectAllClose(y, ref, atol: 1e-6, rtol: 1e-6, "inference output", context)
        }
    }
}

@Suite("Forward: GroupNormalization")
struct ForwardGroupNormTests {
    /// 1, C and the divisors in between that make groups of several tiles.
    static func groupCounts(_ c: Int) -> [Int] {
        let middle: [Int: [Int]] = [8: [2], 32: [4], 33: [3, 11], 40: [5], 100: [10]]
        return Array(Set([1, c] + (middle[c] ?? []))).sorted()
    }

    @Test("matches the reference over H·W × C × G × layout")
    func sweepAll() throws {
        var cases: [(TensorShape, Int)] = []
        for shape in activationShapes(nsForSmall: [1, 2]) {
            let gs = Self.groupCounts(shape.c)
            // Keep the large-H·W part of the sweep small: one middle G per C.
            let chosen = shape.spatial > 1000 ? [gs[gs.count / 2]] : gs
            for g in chosen { cases.append((shape, g)) }
        }
        sweep(cases) { item, context in
            let (shape, groups) = item
            var rng = SplitMix64("gn \(context)")
            let x = activations(shape, &rng)
            let (scale, bias) = Affine.both.parameters(shape.c, &rng)
            let (y, saved) = try GroupNormalization(shape: shape, groups: groups).forward(x, scale: scale, bias: bias)
            let ref = Reference.groupNorm(x, shape, groups: groups, scale: scale, bias: bias)
            expectMatches(y, saved, ref, count: shape.c / groups * shape.spatial, context)
        }
    }

    @Test("feature vectors (H·W = 1): one contiguous run per group, per-element coefficients")
    func featureVectors() throws {
        // Wide rows (a run of 1024 split into 32 groups of 32), odd group sizes
        // that end inside a SIMD vector, groups of one value (variance 0).
        // Groups of ≤ 128 values go 8 per vector: 1037 samples × 12 groups span
        // several chunks of 512 and end in a partial group of 8.
        let cases = product([(TensorShape(n: 9, c: 1024, h: 1, w: 1), 32), (TensorShape(n: 5, c: 36, h: 1, w: 1), 12),
                             (TensorShape(n: 3, c: 45, h: 1, w: 1), 5), (TensorShape(n: 2, c: 19, h: 1, w: 1), 19),
                             (TensorShape(n: 1037, c: 60, h: 1, w: 1), 12), (TensorShape(n: 7, c: 1024, h: 1, w: 1), 8)],
                            Layout.allCases)
        sweep(cases) { item, context in
            let ((base, groups), layout) = item
            let shape = base.with(layout: layout)
            var rng = SplitMix64("gn-features \(context)")
            let x = activations(shape, &rng)
            let (scale, bias) = Affine.both.parameters(shape.c, &rng)
            let (y, saved) = try GroupNormalization(shape: shape, groups: groups).forward(x, scale: scale, bias: bias)
            let ref = Reference.groupNorm(x, shape, groups: groups, scale: scale, bias: bias)
            expectMatches(y, saved, ref, count: shape.c / groups, context)
        }
    }

    @Test("every γ/β combination")
    func affine() throws {
        let cases = product([TensorShape(n: 2, c: 40, h: 5, w: 7)], Layout.allCases, Affine.allCases, [1, 5, 8])
        sweep(cases) { item, context in
            let shape = item.0.with(layout: item.1)
            var rng = SplitMix64("gn-affine \(context)")
            let x = activations(shape, &rng)
            let (scale, bias) = item.2.parameters(shape.c, &rng)
            let (y, saved) = try GroupNormalization(shape: shape, groups: item.3).forward(x, scale: scale, bias: bias)
            let ref = Reference.groupNorm(x, shape, groups: item.3, scale: scale, bias: bias)
            expectMatches(y, saved, ref, count: shape.c / item.3 * shape.spatial, context)
        }
    }
}

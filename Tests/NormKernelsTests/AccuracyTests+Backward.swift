// Backward kernels against Float64: dx against the closed form of the centered
// backward, dγ and dβ against Float64 sums (Reference+Backward.swift), for the
// paths the geometry picks (short and long rows, tiny channels, channel ranges,
// NCHW runs far apart) and for data at mean 1e4, std 1e-2. Issue 19's targets
// per op and layout: AccuracyTests.swift.
import Testing
@testable import NormKernels

/// Seeds 1, 2, … of the backward streams (the data these tests were tuned on).
private let streams = SeededStreams.backward

@Suite("Accuracy: backward against Float64")
struct BackwardAccuracyTests {
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

    @Test("long rows (one sweep of 8 rows up to 4096 values; beyond, row sums by blocks then tiles of 4096 columns; one thread and spread over two): dx, dγ and dβ against Float64",
          arguments: [(1100, 600, 1), (700, 1030, 1), (40, 5000, 1)], [false, true])
    func longRows(size item: (rows: Int, features: Int, groups: Int), offset: Bool) throws {
        // 600 and 1030 values take `ShortRowsBackward` (several row blocks; 1030 leaves a
        // SIMD tail); 5000 values (> `ShortRowsBackward.maxLength`) the block row sums and
        // two column tiles per row block.
        #expect(RowBackwardPlan(rows: item.rows, features: item.features, centered: true, threading: .serial)
                    .strategy(gradInput: true) == (item.features <= ShortRowsBackward.maxLength ? .shortRowSweep : .wholeRowBlocks))
        try checkRowBackward(item, offset: offset, threading: .serial)
        try checkRowBackward(item, offset: offset, threading: Threading(threads: 2, parallelThreshold: 4096))
    }

    /// LayerNorm (groups 1) or GroupNorm on feature vectors: dx against the Float64
    /// closed form, dγ and dβ against Float64 sums. `offset`: mean 1e4, std 1e-2.
    private func checkRowBackward(_ item: (rows: Int, features: Int, groups: Int), offset: Bool, threading: Threading) throws {
        let (rows, features, groups) = item
        let count = rows * features, size = features / groups
        let x = offset ? streams.normals(count, seed: 61, mean: 1e4, std: 1e-2) : streams.uniforms(count, seed: 61, -2...3)
        let dy = streams.uniforms(count, seed: 62), gamma = streams.uniforms(features, seed: 63, 0.5...1.5)
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
        let reference = Reference.centeredBackward(x, dy, slots, eps: Double(Float(1e-5))) { Double(gamma[$0 % features]) }
        let error = normwiseRelativeError(dx, reference)
        #expect(error < (offset ? 1e-5 : 1e-6), "\(what) dx: relative error \(error)")
        let (dgamma, dbeta) = Reference.affineGradients(x, dy, slots, parameters: features)
        let gError = normwiseRelativeError(try #require(grads.scale), dgamma)
        let bError = normwiseRelativeError(try #require(grads.bias), dbeta)
        #expect(gError < (offset ? 1e-4 : 1e-5), "\(what) dγ: relative error \(gError)")
        #expect(bError < 1e-5, "\(what) dβ: relative error \(bError)")
    }

    @Test("InstanceNorm NHWC small maps (8 channels per vector): dx against the Float64 closed form, dγ and dβ against Float64 sums",
          arguments: [TensorShape(n: 70, c: 16, h: 2, w: 2, layout: .nhwc), TensorShape(n: 3, c: 24, h: 1, w: 4, layout: .nhwc),
                      TensorShape(n: 3, c: 8, h: 1, w: 2, layout: .nhwc)], [false, true])
    func tinyChannels(shape: TensorShape, offset: Bool) throws {
        #expect(InstanceNormalization.usesTinyChannels(shape, backward: true), "\(shape) takes the tiny-channels backward")
        let x = offset ? streams.normals(shape.count, seed: 71, mean: 1e4, std: 1e-2) : streams.uniforms(shape.count, seed: 71, -2...3)
        let dy = streams.uniforms(shape.count, seed: 72), gamma = streams.uniforms(shape.c, seed: 73, 0.5...1.5)
        let norm = try InstanceNormalization(shape: shape, threading: Threading(threads: 2, parallelThreshold: 256))
        let (_, saved) = try norm.forwardTraining(x, scale: gamma)
        let grads = try norm.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma)
        let slots = (0..<shape.n).flatMap { n in (0..<shape.c).map { c in (0..<shape.spatial).map { shape.offset(n, c, $0) } } }
        let what = "IN \(shape) offset \(offset)"
        let reference = Reference.centeredBackward(x, dy, slots, eps: Double(Float(1e-5))) { Double(gamma[$0 % shape.c]) }
        let error = normwiseRelativeError(try #require(grads.input), reference)
        #expect(error < (offset ? 1e-4 : 1e-6), "\(what) dx: relative error \(error)")
        let (dgamma, dbeta) = Reference.affineGradients(x, dy, slots, parameters: shape.c)
        let gError = normwiseRelativeError(try #require(grads.scale), dgamma)
        let bError = normwiseRelativeError(try #require(grads.bias), dbeta)
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
        let x = streams.uniforms(shape.count, seed: 81, -2...3), dy = streams.uniforms(shape.count, seed: 82)
        let gamma = streams.uniforms(shape.c, seed: 83, 0.5...1.5), beta = streams.uniforms(shape.c, seed: 84)
        let threading = Threading(threads: 2, parallelThreshold: 4096)
        // BatchNorm with 1299 channels fuses a ReLU: dy is masked where y ≤ 0.
        let relu = groups == 0 && shape.c == 1299
        let y: [Float], saved: SavedStatistics, grads: NormGradients, slots: [[Int]]
        if groups == 0 {
            let bn = try BatchNormalization(shape: shape, fusedReLU: relu, threading: threading)
            (y, saved) = try bn.forwardTraining(x, scale: gamma, bias: beta)
            grads = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma, output: relu ? y : nil)
            slots = (0..<shape.c).map { c in (0..<shape.n).flatMap { n in (0..<shape.spatial).map { shape.offset(n, c, $0) } } }
        } else {
            let gn = try GroupNormalization(shape: shape, groups: groups, threading: threading)
            (y, saved) = try gn.forward(x, scale: gamma, bias: beta)
            grads = try gn.backward(x, gradOutput: dy, saved: saved, scale: gamma)
            let size = shape.c / groups
            slots = (0..<(shape.n * groups)).map { u in
                let n = u / groups, g = u % groups
                return (0..<shape.spatial).flatMap { s in (0..<size).map { shape.offset(n, g * size + $0, s) } }
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
        #expect(normwiseRelativeError(y, yReference) < 1e-6, "\(what) y")
        let g = relu ? zip(dy, y).map { $1 > 0 ? $0 : 0 } : dy
        let dxReference = Reference.centeredBackward(x, g, slots, eps: Double(Float(1e-5))) { Double(gamma[$0 % shape.c]) }
        let error = normwiseRelativeError(try #require(grads.input), dxReference)
        #expect(error < 1e-5, "\(what) dx: relative error \(error)")
        let (dgamma, dbeta) = Reference.affineGradients(x, g, slots, parameters: shape.c)
        #expect(normwiseRelativeError(try #require(grads.scale), dgamma) < 1e-5, "\(what) dγ")
        #expect(normwiseRelativeError(try #require(grads.bias), dbeta) < 1e-5, "\(what) dβ")
        try expectGradientsDeterministic("\(what) forward") { threading in
            if groups == 0 {
                let (y, saved) = try BatchNormalization(shape: shape, fusedReLU: relu, threading: threading)
                    .forwardTraining(x, scale: gamma, bias: beta)
                return [y, doubleBits(saved.mean), doubleBits(saved.invStd)]
            }
            let (y, saved) = try GroupNormalization(shape: shape, groups: groups, threading: threading).forward(x, scale: gamma, bias: beta)
            return [y, doubleBits(saved.mean), doubleBits(saved.invStd)]
        }
        try expectGradientsDeterministic("\(what) backward") { threading in
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
        let x = streams.uniforms(shape.count, seed: 91, -2...3), dy = streams.uniforms(shape.count, seed: 92)
        let gamma = streams.uniforms(shape.c, seed: 93, 0.5...1.5), beta = streams.uniforms(shape.c, seed: 94)
        let slots = (0..<shape.c).map { c in (0..<shape.n).flatMap { n in (0..<shape.spatial).map { shape.offset(n, c, $0) } } }
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
            #expect(normwiseRelativeError(y, yReference) < 1e-6, "\(what) y")
            let grads = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma, output: relu ? y : nil)
            let dxReference = Reference.centeredBackward(x, g, slots, eps: Double(Float(1e-5))) { Double(gamma[channel($0)]) }
            let error = normwiseRelativeError(try #require(grads.input), dxReference)
            #expect(error < 1e-5, "\(what) dx: relative error \(error)")
            #expect(normwiseRelativeError(try #require(grads.scale), dgamma) < 1e-5, "\(what) dγ")
            #expect(normwiseRelativeError(try #require(grads.bias), dbeta) < 1e-5, "\(what) dβ")
        }
    }

    // MARK: - Large offset: mean 1e4, std 1e-2

    @Test("dx keeps its accuracy for data at mean 1e4, std 1e-2 (centered sums, pivot split)")
    func largeOffset() throws {
        let tolerance = 1e-5
        for shape in [TensorShape(n: 4, c: 3, h: 32, w: 33, layout: .nchw), TensorShape(n: 4, c: 3, h: 32, w: 33, layout: .nhwc),
                      TensorShape.matrix(512, 17)] {
            let x = streams.normals(shape.count, seed: 53, mean: 1e4, std: 1e-2), dy = streams.uniforms(shape.count, seed: 54)
            let gamma = streams.uniforms(shape.c, seed: 55, 0.5...1.5)
            let bn = try BatchNormalization(shape: shape, threading: Threading(threads: 2, parallelThreshold: 4096))
            let (_, saved) = try bn.forwardTraining(x, scale: gamma)
            let dx = try #require(try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma, computing: .input).input)
            let slots = (0..<shape.c).map { c in
                (0..<shape.n).flatMap { n in (0..<shape.spatial).map { shape.offset(n, c, $0) } }
            }
            let channel = { (i: Int) in shape.layout == .nchw && shape.spatial > 1 ? (i / shape.spatial) % shape.c : i % shape.c }
            let reference = Reference.centeredBackward(x, dy, slots, eps: Double(Float(1e-5))) { Double(gamma[channel($0)]) }
            let error = normwiseRelativeError(dx, reference)
            #expect(error < tolerance, "BN \(shape): relative error \(error)")

            let gn = try GroupNormalization(shape: shape, groups: shape.c == 3 ? 3 : 1, threading: Threading(threads: 2, parallelThreshold: 4096))
            let (_, gsaved) = try gn.forward(x, scale: gamma)
            let gdx = try #require(try gn.backward(x, gradOutput: dy, saved: gsaved, scale: gamma, computing: .input).input)
            // Every GroupNorm dx is checked: G = 3 (per channel, = InstanceNorm) and G = 1 ([512, 17]: per row).
            let groups = shape.c == 3 ? 3 : 1, size = shape.c / groups
            let groupSlots = (0..<shape.n).flatMap { n in
                (0..<groups).map { g in
                    (g * size..<(g + 1) * size).flatMap { c in (0..<shape.spatial).map { shape.offset(n, c, $0) } }
                }
            }
            let greference = Reference.centeredBackward(x, dy, groupSlots, eps: Double(Float(1e-5))) { Double(gamma[channel($0)]) }
            let gerror = normwiseRelativeError(gdx, greference)
            #expect(gerror < tolerance, "GN G = \(groups) \(shape): relative error \(gerror)")
        }
        let (rows, features) = (64, 1000)
        let x = streams.normals(rows * features, seed: 56, mean: 1e4, std: 1e-2), dy = streams.uniforms(rows * features, seed: 57)
        let gamma = streams.uniforms(features, seed: 58, 0.5...1.5)
        let ln = try LayerNormalization(rows: rows, features: features)
        let (_, saved) = try ln.forward(x, scale: gamma)
        let dx = try #require(try ln.backward(x, gradOutput: dy, saved: saved, scale: gamma).input)
        let slots = (0..<rows).map { r in Array((r * features)..<((r + 1) * features)) }
        let reference = Reference.centeredBackward(x, dy, slots, eps: Double(Float(1e-5))) { Double(gamma[$0 % features]) }
        let error = normwiseRelativeError(dx, reference)
        #expect(error < tolerance, "LN: relative error \(error)")
    }
}

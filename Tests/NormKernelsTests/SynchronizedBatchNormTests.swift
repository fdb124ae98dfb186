// SynchronizedBatchNormalization over the in-process exchange (simulated ranks
// on threads): against single-process BatchNorm on the concatenated batch
// (bitwise where `singleProcessEquivalence` promises it, within rounding of the
// Float64 merge otherwise), uneven splits, an empty rank, NaN on one rank,
// collective errors with nothing written, running statistics over several steps.
import Foundation
import Testing
@testable import NormKernels

// MARK: - Helpers (fileprivate, prefixed sb)

/// One rank's results of a forward (and, when asked, backward) step.
fileprivate struct SBStep: Sendable {
    var y: [Float]
    var saved: SavedStatistics
    var dx: [Float] = []
    var dScale: [Float] = []
    var dBias: [Float] = []
    var localDScale: [Float] = []
}

/// The shapes of `counts.count` ranks holding `counts[r]` samples of `template`.
fileprivate func sbShapes(_ template: TensorShape, _ counts: [Int]) -> [TensorShape] {
    counts.map { var s = template; s.n = $0; return s }
}

/// Rank r's samples of the batch `x` (samples are contiguous in NCHW and NHWC).
fileprivate func sbSlice(_ x: [Float], _ template: TensorShape, _ counts: [Int], _ r: Int) -> [Float] {
    let perSample = template.c * template.spatial
    let first = counts[..<r].reduce(0, +)
    return Array(x[(first * perSample)..<((first + counts[r]) * perSample)])
}

/// Runs a synchronized forward (and backward with `dy`) on `counts.count` simulated ranks.
fileprivate func sbRun(
    _ x: [Float], _ template: TensorShape, _ counts: [Int], dy: [Float]? = nil, scale: [Float]? = nil,
    bias: [Float]? = nil, relu: Bool = false, threads: Int = 2, running: [RunningStatistics]? = nil, steps: Int = 1
) -> [Result<SBStep, any Error>] {
    let shapes = sbShapes(template, counts)
    return try! InProcessExchange.run(ranks: counts.count, timeout: 120) { exchange in
        let r = exchange.rank
        let bn = try SynchronizedBatchNormalization(
            shape: shapes[r], fusedReLU: relu, threading: Threading(threads: threads, parallelThreshold: 4096),
            exchange: exchange)
        let xs = sbSlice(x, template, counts, r)
        var step = SBStep(y: [Float](repeating: .nan, count: xs.count), saved: SavedStatistics(mean: [], invStd: []))
        for _ in 0..<steps {
            step.saved = try xs.withUnsafeBufferPointer { xb in
                try step.y.withUnsafeMutableBufferPointer { yb in
                    try bn.forwardTraining(input: xb, output: yb, scale: sbBuffer(scale), bias: sbBuffer(bias),
                                           running: running?[r])
                }
            }
        }
        guard let dy else { return step }
        let dys = sbSlice(dy, template, counts, r)
        let c = template.c
        step.dx = [Float](repeating: .nan, count: xs.count)
        step.dScale = [Float](repeating: .nan, count: c)
        step.dBias = [Float](repeating: .nan, count: c)
        step.localDScale = [Float](repeating: .nan, count: c)
        for scope in [ParameterGradients.local, .global] {
            var dScale = [Float](repeating: .nan, count: c)
            try xs.withUnsafeBufferPointer { xb in
                try dys.withUnsafeBufferPointer { db in
                    try step.y.withUnsafeBufferPointer { yb in
                        try step.dx.withUnsafeMutableBufferPointer { dxb in
                            try dScale.withUnsafeMutableBufferPointer { gs in
                                try step.dBias.withUnsafeMutableBufferPointer { gb in
                                    try bn.backwardTraining(input: xb, gradOutput: db, saved: step.saved,
                                                            scale: sbBuffer(scale), output: yb, gradInput: dxb,
                                                            gradScale: gs, gradBias: gb, parameterGradients: scope)
                                }
                            }
                        }
                    }
                }
            }
            if scope == .local { step.localDScale = dScale } else { step.dScale = dScale }
        }
        return step
    }
}

/// A buffer over an optional array, never freed (γ, β: a few values per test case).
fileprivate func sbBuffer(_ values: [Float]?) -> UnsafeBufferPointer<Float>? {
    guard let values else { return nil }
    let p = UnsafeMutableBufferPointer<Float>.allocate(capacity: values.count)
    _ = p.initialize(from: values)
    return UnsafeBufferPointer(p)
}

/// Single-process BatchNorm on the whole batch: forward, then backward when `dy` is given.
fileprivate func sbSingle(
    _ x: [Float], _ shape: TensorShape, dy: [Float]? = nil, scale: [Float]? = nil, bias: [Float]? = nil,
    relu: Bool = false, running: RunningStatistics? = nil, steps: Int = 1
) throws -> SBStep {
    let bn = try BatchNormalization(shape: shape, fusedReLU: relu)
    var step = SBStep(y: [Float](repeating: .nan, count: x.count), saved: SavedStatistics(mean: [], invStd: []))
    for _ in 0..<steps {
        step.saved = try x.withUnsafeBufferPointer { xb in
            try step.y.withUnsafeMutableBufferPointer { yb in
                try bn.forwardTraining(input: xb, output: yb, scale: sbBuffer(scale), bias: sbBuffer(bias), running: running)
            }
        }
    }
    guard let dy else { return step }
    step.dx = [Float](repeating: .nan, count: x.count)
    step.dScale = [Float](repeating: .nan, count: shape.c)
    step.dBias = [Float](repeating: .nan, count: shape.c)
    try x.withUnsafeBufferPointer { xb in
        try dy.withUnsafeBufferPointer { db in
            try step.y.withUnsafeBufferPointer { yb in
                try step.dx.withUnsafeMutableBufferPointer { dxb in
                    try step.dScale.withUnsafeMutableBufferPointer { gs in
                        try step.dBias.withUnsafeMutableBufferPointer { gb in
                            try bn.backwardTraining(input: xb, gradOutput: db, saved: step.saved, scale: sbBuffer(scale),
                                                    output: yb, gradInput: dxb, gradScale: gs, gradBias: gb)
                        }
                    }
                }
            }
        }
    }
    return step
}

fileprivate func sbSteps(_ results: [Result<SBStep, any Error>], _ context: String,
                         sourceLocation: SourceLocation = #_sourceLocation) -> [SBStep]? {
    var steps: [SBStep] = []
    for (r, result) in results.enumerated() {
        switch result {
        case let .success(step): steps.append(step)
        case let .failure(error):
            Issue.record("rank \(r) threw \(error) — \(context)", sourceLocation: sourceLocation)
            return nil
        }
    }
    return steps
}

/// Compares a synchronized run (ranks' outputs concatenated) with single-process
/// BatchNorm: bitwise where promised, else within the rounding of the merge order.
fileprivate func sbCompare(_ steps: [SBStep], _ single: SBStep, _ equivalence: SingleProcessEquivalence,
                           backward: Bool, _ context: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let y = steps.flatMap(\.y), dx = steps.flatMap(\.dx)
    let perChannel = single.y.count / max(1, single.saved.mean.count)
    for (r, step) in steps.enumerated() {   // every rank holds the same statistics
        expectIdentical(step.saved.mean, steps[0].saved.mean, "rank \(r) mean", context, sourceLocation: sourceLocation)
        expectIdentical(step.saved.invStd, steps[0].saved.invStd, "rank \(r) invStd", context, sourceLocation: sourceLocation)
        if backward {
            expectIdentical(step.dScale, steps[0].dScale, "rank \(r) global dγ", context, sourceLocation: sourceLocation)
        }
    }
    if equivalence.forward {
        expectIdentical(y, single.y, "y", context, sourceLocation: sourceLocation)
        expectIdentical(steps[0].saved.mean, single.saved.mean, "mean", context, sourceLocation: sourceLocation)
        expectIdentical(steps[0].saved.invStd, single.saved.invStd, "invStd", context, sourceLocation: sourceLocation)
    } else {
        // Blocks cut elsewhere: each block's partial is formed in Float32 lanes, so
        // the statistics differ from single-process BatchNorm by about as much as
        // either differs from the Float64 reference (~1e-7 of σ), not by a Float64 ulp.
        let tol = reductionTolerance(perChannel)
        expectAllClose(y, single.y.map(Double.init), atol: 2 * tol, "y vs BatchNorm", context, sourceLocation: sourceLocation)
        expectAllClose(steps[0].saved.mean, single.saved.mean, atol: tol, rtol: tol, "mean vs BatchNorm", context,
                       sourceLocation: sourceLocation)
        expectAllClose(steps[0].saved.invStd, single.saved.invStd, atol: 0, rtol: 2 * invStdTolerance(perChannel),
                       "invStd vs BatchNorm", context, sourceLocation: sourceLocation)
    }
    guard backward else { return }
    if equivalence.forward && equivalence.backward {
        expectIdentical(dx, single.dx, "dx", context, sourceLocation: sourceLocation)
        expectIdentical(steps[0].dScale, single.dScale, "dγ", context, sourceLocation: sourceLocation)
        expectIdentical(steps[0].dBias, single.dBias, "dβ", context, sourceLocation: sourceLocation)
    } else {
        let tol = reductionTolerance(perChannel)
        expectAllClose(dx, single.dx.map(Double.init), atol: 4 * tol, "dx vs BatchNorm", context, sourceLocation: sourceLocation)
        // Sums of `perChannel` terms of size ~1, each block's in Float32.
        let sumTol = 1e-6 * Double(perChannel)
        expectAllClose(steps[0].dScale, single.dScale.map(Double.init), atol: sumTol, "dγ vs BatchNorm", context,
                       sourceLocation: sourceLocation)
        expectAllClose(steps[0].dBias, single.dBias.map(Double.init), atol: sumTol, "dβ vs BatchNorm", context,
                       sourceLocation: sourceLocation)
    }
    // Local dγ: this rank's Σ g·x̂ only; they add up to the global one.
    for ch in 0..<single.dScale.count {
        let sum = steps.reduce(0.0) { $0 + Double($1.localDScale[ch]) }
        #expect(abs(sum - Double(steps[0].dScale[ch])) <= 1e-4 * (1 + abs(sum)), "Σ local dγ[\(ch)] — \(context)",
                sourceLocation: sourceLocation)
    }
}

// MARK: - Tests

@Suite("SynchronizedBatchNorm: in-process exchange")
struct SynchronizedBatchNormTests {
    /// NCHW short runs (7×7), NCHW long runs of two blocks (70×61), NHWC, [N, D].
    static let templates = [TensorShape(n: 0, c: 5, h: 7, w: 7), TensorShape(n: 0, c: 3, h: 70, w: 61),
                            TensorShape(n: 0, c: 33, h: 5, w: 3, layout: .nhwc), TensorShape.matrix(0, 40)]

    @Test("one rank is BatchNorm itself, bit for bit, forward and backward")
    func oneRank() throws {
        sweep(product(Self.templates, [false, true])) { item, context in
            let (template, relu) = item
            let whole = sbShapes(template, [6])[0]
            var rng = SplitMix64("one \(context)")
            let x = activations(whole, &rng), dy = rng.normals(whole.count)
            let scale = rng.uniforms(whole.c, 0.5...2), bias = rng.uniforms(whole.c, -1...1)
            guard let steps = sbSteps(sbRun(x, template, [6], dy: dy, scale: scale, bias: bias, relu: relu), context) else { return }
            let single = try sbSingle(x, whole, dy: dy, scale: scale, bias: bias, relu: relu)
            #expect(SynchronizedBatchNormalization.singleProcessEquivalence(rankShapes: [whole])
                    == SingleProcessEquivalence(forward: true, backward: true))
            sbCompare(steps, single, SingleProcessEquivalence(forward: true, backward: true), backward: true, context)
        }
    }

    @Test("2 and 4 ranks, even and uneven splits, an empty rank: against BatchNorm on the concatenated batch")
    func ranksAgainstSingleProcess() throws {
        let splits = [[3, 3], [2, 2, 2, 2], [5, 1], [1, 0, 4, 2], [0, 3]]
        sweep(product(Self.templates, splits, [false, true])) { item, context in
            let (template, counts, relu) = item
            let whole = sbShapes(template, [counts.reduce(0, +)])[0]
            var rng = SplitMix64("ranks \(context)")
            let x = activations(whole, &rng), dy = rng.normals(whole.count)
            let scale = rng.uniforms(whole.c, 0.5...2), bias = rng.uniforms(whole.c, -1...1)
            guard let steps = sbSteps(sbRun(x, template, counts, dy: dy, scale: scale, bias: bias, relu: relu), context)
            else { return }
            let single = try sbSingle(x, whole, dy: dy, scale: scale, bias: bias, relu: relu)
            let equivalence = SynchronizedBatchNormalization.singleProcessEquivalence(rankShapes: sbShapes(template, counts))
            sbCompare(steps, single, equivalence, backward: true, context + " \(equivalence)")
            // Against the Float64 reference as well, whatever the split.
            let reference = Reference.batchNorm(x, whole, scale: scale, bias: bias, relu: relu)
            expectAllClose(steps.flatMap(\.y), reference.output, atol: reductionTolerance(whole.count), "y vs reference", context)
        }
    }

    @Test("promised equivalence: any split at block boundaries, any rank count, empty ranks anywhere")
    func promisedEquivalence() throws {
        let long = TensorShape(n: 0, c: 3, h: 70, w: 61)   // 4270 values per run: blocks within samples
        let rows = columnsRowBlock(8)
        let matrix = TensorShape.matrix(0, 8)
        let cases: [(TensorShape, [Int])] = [
            (long, [2, 2]), (long, [1, 1, 1, 1]), (long, [3, 1]), (long, [2, 2, 2]), (long, [1, 1, 1]),
            (matrix, [rows, rows]), (matrix, [2 * rows, 2 * rows, 2 * rows, 2 * rows]), (matrix, [rows / 2, rows / 2]),
            // Uneven splits at block boundaries: ranks send several subtrees of BatchNorm's tree.
            (long, [1, 0, 3]), (long, [4, 1, 2]), (matrix, [rows, 2 * rows, rows / 2]), (matrix, [0, 3 * rows, rows]),
        ]
        sweep(cases) { item, context in
            let (template, counts) = item
            let shapes = sbShapes(template, counts)
            let equivalence = SynchronizedBatchNormalization.singleProcessEquivalence(rankShapes: shapes)
            let whole = sbShapes(template, [counts.reduce(0, +)])[0]
            var rng = SplitMix64("promised \(context)")
            let x = activations(whole, &rng), dy = rng.normals(whole.count)
            guard let steps = sbSteps(sbRun(x, template, counts, dy: dy), context) else { return }
            let single = try sbSingle(x, whole, dy: dy)
            sbCompare(steps, single, equivalence, backward: true, context + " \(equivalence)")
        }
        // The rule's cases, decided without running anything.
        // Any split at sample boundaries when blocks never span samples (long runs),
        // empty ranks anywhere; [N, D] when every rank before the last holds whole row blocks.
        let both = SingleProcessEquivalence(forward: true, backward: true)
        for counts in [[2, 2], [1, 1, 1, 1], [3, 1], [1, 1, 1], [2, 0, 2], [5, 2, 0, 1], [1, 6]] {
            #expect(SynchronizedBatchNormalization.singleProcessEquivalence(rankShapes: sbShapes(long, counts)) == both,
                    "long runs \(counts)")
        }
        #expect(SynchronizedBatchNormalization.singleProcessEquivalence(rankShapes: sbShapes(matrix, [rows, rows])) == both)
        #expect(SynchronizedBatchNormalization.singleProcessEquivalence(rankShapes: sbShapes(matrix, [rows, 2 * rows, 5])) == both)
        #expect(!SynchronizedBatchNormalization.singleProcessEquivalence(rankShapes: sbShapes(matrix, [rows / 2, rows / 2])).forward)
        #expect(!SynchronizedBatchNormalization.singleProcessEquivalence(rankShapes: sbShapes(matrix, [rows + 1, rows])).forward)
        // Ranks that differ in H·W never match a single batch.
        #expect(!SynchronizedBatchNormalization.singleProcessEquivalence(
            rankShapes: [TensorShape(n: 1, c: 3, h: 70, w: 61), TensorShape(n: 1, c: 3, h: 61, w: 70)]).forward)
    }

    @Test("bitwise identical for any thread count on every rank")
    func threadCounts() throws {
        sweep(Self.templates) { template, context in
            let counts = [3, 1, 2]
            let whole = sbShapes(template, [6])[0]
            var rng = SplitMix64("threads \(context)")
            let x = activations(whole, &rng), dy = rng.normals(whole.count)
            guard let one = sbSteps(sbRun(x, template, counts, dy: dy, threads: 1), context),
                  let many = sbSteps(sbRun(x, template, counts, dy: dy, threads: 3), context) else { return }
            expectIdentical(many.flatMap(\.y), one.flatMap(\.y), "y", context)
            expectIdentical(many.flatMap(\.dx), one.flatMap(\.dx), "dx", context)
            expectIdentical(many[0].dScale, one[0].dScale, "dγ", context)
            expectIdentical(many[0].saved.invStd, one[0].saved.invStd, "invStd", context)
        }
    }

    @Test("in place (output = input, gradInput = gradOutput): the same bits as separate buffers")
    func inPlace() throws {
        sweep(Self.templates) { template, context in
            let counts = [2, 3]
            let whole = sbShapes(template, [5])[0]
            var rng = SplitMix64("in place \(context)")
            let x = activations(whole, &rng), dy = rng.normals(whole.count)
            guard let separate = sbSteps(sbRun(x, template, counts, dy: dy), context) else { return }
            let shapes = sbShapes(template, counts)
            let results = try InProcessExchange.run(ranks: 2) { exchange -> ([Float], [Float]) in
                let r = exchange.rank
                let bn = try SynchronizedBatchNormalization(shape: shapes[r], exchange: exchange)
                var buffer = sbSlice(x, template, counts, r)
                let xs = buffer
                let saved = try buffer.withUnsafeMutableBufferPointer { b in
                    try bn.forwardTraining(input: UnsafeBufferPointer(b), output: b)
                }
                let y = buffer
                var g = sbSlice(dy, template, counts, r)
                try xs.withUnsafeBufferPointer { xb in
                    try g.withUnsafeMutableBufferPointer { gb in
                        try bn.backwardTraining(input: xb, gradOutput: UnsafeBufferPointer(gb), saved: saved,
                                                gradInput: gb, parameterGradients: .global)
                    }
                }
                return (y, g)
            }
            for (r, result) in results.enumerated() {
                guard let (y, dx) = try? result.get() else { Issue.record("rank \(r) threw — \(context)"); continue }
                expectIdentical(y, separate[r].y, "in-place y, rank \(r)", context)
                expectIdentical(dx, separate[r].dx, "in-place dx, rank \(r)", context)
            }
        }
    }

    @Test("running statistics after several steps, every mode: equal on all ranks, as single-process BatchNorm")
    func runningStatistics() throws {
        let updates: [RunningStatistics.Update] = [.exponential(momentum: 0.1), .cumulativeAverage, .population]
        sweep(product(Self.templates, updates, [[3, 3], [2, 2, 2, 2], [1, 0, 4, 2]])) { item, context in
            let (template, update, counts) = item
            let whole = sbShapes(template, [counts.reduce(0, +)])[0]
            var rng = SplitMix64("running \(context)")
            let x = activations(whole, &rng)
            let ranks = try counts.map { _ in try RunningStatistics(channels: whole.c, update: update) }
            let single = try RunningStatistics(channels: whole.c, update: update)
            guard let steps = sbSteps(sbRun(x, template, counts, running: ranks, steps: 3), context) else { return }
            _ = try sbSingle(x, whole, running: single, steps: 3)
            #expect(steps.allSatisfy { $0.saved.runningStatisticsUpdated }, "\(context)")
            for r in ranks.indices { #expect(RunningSnapshot(ranks[r]) == RunningSnapshot(ranks[0]), "rank \(r) — \(context)") }
            #expect(ranks[0].batchesTracked == 3)
            if SynchronizedBatchNormalization.singleProcessEquivalence(rankShapes: sbShapes(template, counts)).forward {
                #expect(RunningSnapshot(ranks[0]) == RunningSnapshot(single), "\(context)")
            } else {
                // Statistics within Float32-block rounding (see sbCompare), then rounded to Float32.
                expectAllClose(ranks[0].mean, single.mean.map(Double.init), atol: 1e-6, rtol: 1e-6, "running mean", context)
                expectAllClose(ranks[0].variance, single.variance.map(Double.init), atol: 1e-6, rtol: 1e-6,
                               "running variance", context)
            }
        }
    }

    @Test("NaN on one rank: every rank skips the running update; its channel is NaN everywhere")
    func nanOnOneRank() throws {
        let template = TensorShape(n: 0, c: 4, h: 3, w: 5)
        let counts = [2, 2, 2]
        let whole = sbShapes(template, [6])[0]
        var rng = SplitMix64("nan")
        var x = activations(whole, &rng)
        x[whole.offset(3, 2, 7)] = .nan   // rank 1, channel 2
        let ranks = try counts.map { _ in try RunningStatistics(channels: 4) }
        guard let steps = sbSteps(sbRun(x, template, counts, running: ranks), "nan") else { return }
        for (r, step) in steps.enumerated() {
            #expect(!step.saved.runningStatisticsUpdated, "rank \(r)")
            #expect(ranks[r].skippedUpdates == 1 && ranks[r].batchesTracked == 0 && ranks[r].mean == [0, 0, 0, 0], "rank \(r)")
            #expect(step.saved.mean[2].isNaN && step.saved.mean[1].isFinite, "rank \(r)")
        }
    }

    @Test("mismatched channel counts: every rank throws at construction")
    func channelMismatch() throws {
        let results = try InProcessExchange.run(ranks: 3) { exchange in
            _ = try SynchronizedBatchNormalization(
                shape: TensorShape(n: 2, c: exchange.rank == 1 ? 5 : 4, h: 3, w: 3), exchange: exchange)
        }
        for (r, result) in results.enumerated() {
            #expect(throws: SynchronizationError.channelMismatch(channels: [4, 5, 4]), "rank \(r)") { try result.get() }
        }
        let epsilon = try InProcessExchange.run(ranks: 2) { exchange in
            _ = try SynchronizedBatchNormalization(shape: TensorShape(n: 2, c: 4), epsilon: exchange.rank == 0 ? 1e-5 : 1e-3,
                                                   exchange: exchange)
        }
        for result in epsilon {
            #expect(throws: SynchronizationError.self) { try result.get() }
        }
    }

    @Test("a rank with a wrong buffer: it throws its NormError, the others peerRejectedArguments; nothing written anywhere")
    func collectiveRejection() throws {
        let template = TensorShape(n: 0, c: 3, h: 4, w: 4)
        let ranks = try (0..<3).map { _ in try RunningStatistics(channels: 3) }
        // Each rank reports its error and whether its output stayed untouched.
        let results = try InProcessExchange.run(ranks: 3) { exchange -> (error: (any Error)?, untouched: Bool) in
            let shape = sbShapes(template, [2, 2, 2])[exchange.rank]
            let bn = try SynchronizedBatchNormalization(shape: shape, exchange: exchange)
            let x = (0..<shape.count).map { Float($0 % 7) }
            var y = [Float](repeating: sentinel, count: shape.count + (exchange.rank == 1 ? 1 : 0))
            do {
                try x.withUnsafeBufferPointer { xb in
                    try y.withUnsafeMutableBufferPointer { _ = try bn.forwardTraining(input: xb, output: $0, running: ranks[exchange.rank]) }
                }
                return (nil, true)
            } catch {
                return (error, y.allSatisfy { $0 == sentinel })
            }
        }
        let outcomes = try results.map { try $0.get() }
        let untouched = outcomes.map { $0.untouched }
        #expect(untouched == [true, true, true], "an output was written before the error")
        #expect(outcomes[1].error as? NormError == .lengthMismatch(argument: "output", expected: 96, actual: 97))
        for r in [0, 2] {
            #expect(outcomes[r].error as? SynchronizationError == .peerRejectedArguments(ranks: [1]), "rank \(r)")
        }
        for r in ranks { #expect(r.batchesTracked == 0 && r.skippedUpdates == 0) }
    }

    @Test("one value per channel over all ranks: every rank throws singleValuePerChannel")
    func singleValueOverAllRanks() throws {
        let results = try InProcessExchange.run(ranks: 2) { exchange in
            let shape = TensorShape.matrix(exchange.rank == 0 ? 1 : 0, 3)
            let bn = try SynchronizedBatchNormalization(shape: shape, exchange: exchange)
            let x = [Float](repeating: 1, count: shape.count)
            var y = [Float](repeating: sentinel, count: shape.count)
            _ = try x.withUnsafeBufferPointer { xb in try y.withUnsafeMutableBufferPointer { try bn.forwardTraining(input: xb, output: $0) } }
        }
        for result in results {
            #expect(throws: NormError.singleValuePerChannel(argument: "input (all ranks)", valuesPerChannel: 1)) { try result.get() }
        }
    }

    @Test("a forward meeting a backward, and a missing rank: errors, not hangs")
    func protocolErrors() throws {
        let shape = TensorShape.matrix(4, 2)
        let mixed = try InProcessExchange.run(ranks: 2) { exchange in
            let bn = try SynchronizedBatchNormalization(shape: shape, exchange: exchange)
            let x: [Float] = [1, 2, 3, 4, 5, 6, 7, 9]
            var y = [Float](repeating: 0, count: 8)
            if exchange.rank == 0 {
                _ = try x.withUnsafeBufferPointer { xb in try y.withUnsafeMutableBufferPointer { try bn.forwardTraining(input: xb, output: $0) } }
            } else {
                let saved = SavedStatistics(mean: [0, 0], invStd: [1, 1])
                try x.withUnsafeBufferPointer { xb in
                    try bn.backwardTraining(input: xb, gradOutput: xb, saved: saved, parameterGradients: .global)
                }
            }
        }
        for result in mixed {
            #expect(throws: SynchronizationError.self) { try result.get() }
        }
        let exchanges = try InProcessExchange.group(size: 2, timeout: 0.3)
        #expect(throws: SynchronizationError.timedOut(seconds: 0.3)) {
            _ = try SynchronizedBatchNormalization(shape: shape, exchange: exchanges[0])
        }
        #expect(throws: SynchronizationError.timedOut(seconds: 0.3)) {   // the group stays unusable
            _ = try SynchronizedBatchNormalization(shape: shape, exchange: exchanges[1])
        }
    }
}
